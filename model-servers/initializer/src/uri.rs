//! Parsing a `modelUri` into where to copy from (pure).

use std::path::PathBuf;

use crate::InitError;

/// Where a model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A local file or directory (`/path`, `file:///path`, a mounted PVC).
    Local(PathBuf),
    /// One file over HTTP(S); archives are unpacked.
    Http(url::Url),
    /// Every object under `prefix` of an S3 bucket. `remote` names the rclone remote whose
    /// `RCLONE_CONFIG_<REMOTE>_*` variables configure it (`S3` for `s3://`).
    S3 {
        remote: String,
        bucket: String,
        prefix: String,
    },
    /// Every object under `prefix` of a GCS bucket. `remote` as for S3 (`GS` for `gs://`).
    Gcs {
        remote: String,
        bucket: String,
        prefix: String,
    },
    /// Every blob under `prefix` of an Azure Blob Storage container. `account` is set when
    /// the URI names it (`https://<account>.blob.core.windows.net/...`); `remote` as for S3
    /// (`AZUREBLOB` for `az://`).
    Azure {
        remote: String,
        account: Option<String>,
        container: String,
        prefix: String,
    },
}

/// The host suffix of Azure Blob Storage account URLs (KServe's `https://` form).
pub const AZURE_BLOB_HOST: &str = ".blob.core.windows.net";

/// Parses `uri` the way Seldon's rclone initializer resolves it: `s3://b/p`, `gs://b/p`,
/// `az://container/p`, `https://<account>.blob.core.windows.net/<container>/p` (KServe's
/// Azure form), other `http(s)://…`, `file://…` and plain paths, and rclone's
/// `remote:bucket/path` when `RCLONE_CONFIG_<REMOTE>_TYPE` is `s3`, `gcs` or `azureblob`
/// (`s3:`, `gs:`/`gcs:` and `azureblob:`/`azure:`/`az:` need no config).
pub fn parse(uri: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Source, InitError> {
    let bad = |reason: &str| InitError::BadUri {
        uri: uri.to_owned(),
        reason: reason.to_owned(),
    };
    if uri.trim().is_empty() {
        return Err(bad("empty"));
    }
    if traversal(uri) {
        return Err(bad(
            "`..` in the path: a model URI may not climb out of the folder, prefix or URL it names",
        ));
    }
    if let Some((scheme, rest)) = uri.split_once("://") {
        return match scheme.to_ascii_lowercase().as_str() {
            "file" if rest.is_empty() => Err(bad("no path after file://")),
            "file" => Ok(Source::Local(PathBuf::from(rest))),
            "http" | "https" => {
                let url = url::Url::parse(uri).map_err(|e| bad(&e.to_string()))?;
                if let Some(account) = url
                    .host_str()
                    .and_then(|h| h.strip_suffix(AZURE_BLOB_HOST))
                    .filter(|a| !a.is_empty() && !a.contains('.'))
                {
                    let path = percent_encoding::percent_decode_str(url.path())
                        .decode_utf8()
                        .map_err(|e| bad(&e.to_string()))?;
                    return bucket_path(path.trim_start_matches('/'))
                        .map(|(container, prefix)| Source::Azure {
                            remote: "AZUREBLOB".into(),
                            account: Some(account.to_owned()),
                            container,
                            prefix,
                        })
                        .map_err(|_| bad("no container name after the account"));
                }
                if url.path().ends_with('/') {
                    return Err(bad(
                        "an HTTP URI must name a file or an archive (.tar.gz, .tgz, .tar, .zip), not a directory",
                    ));
                }
                Ok(Source::Http(url))
            }
            "s3" => bucket_path(rest)
                .map(|(bucket, prefix)| Source::S3 {
                    remote: "S3".into(),
                    bucket,
                    prefix,
                })
                .map_err(bad),
            "gs" | "gcs" => bucket_path(rest)
                .map(|(bucket, prefix)| Source::Gcs {
                    remote: "GS".into(),
                    bucket,
                    prefix,
                })
                .map_err(bad),
            "az" | "azure" => bucket_path(rest)
                .map(|(container, prefix)| Source::Azure {
                    remote: "AZUREBLOB".into(),
                    account: None,
                    container,
                    prefix,
                })
                .map_err(|_| bad("no container name")),
            "pvc" => Err(bad(
                "pvc:// is mounted by the operator at /mnt/pvc/<path>; pass that path",
            )),
            other => Err(bad(&format!(
                "unsupported scheme {other}:// (use file, http, https, s3, gs or az)"
            ))),
        };
    }
    // rclone's `remote:bucket/path`.
    if let Some((remote, rest)) = uri.split_once(':')
        && !remote.is_empty()
        && remote
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !uri.starts_with('/')
    {
        let name = remote.to_ascii_uppercase().replace('-', "_");
        let kind = env(&format!("RCLONE_CONFIG_{name}_TYPE")).map(|t| t.to_ascii_lowercase());
        let kind = kind.as_deref().or(match name.as_str() {
            "S3" => Some("s3"),
            "GS" | "GCS" => Some("gcs"),
            "AZUREBLOB" | "AZURE" | "AZ" => Some("azureblob"),
            _ => None,
        });
        let (bucket, prefix) = bucket_path(rest.trim_start_matches('/')).map_err(bad)?;
        return match kind {
            Some("s3") => Ok(Source::S3 {
                remote: name,
                bucket,
                prefix,
            }),
            Some("gcs" | "google cloud storage") => Ok(Source::Gcs {
                remote: name,
                bucket,
                prefix,
            }),
            Some("azureblob") => Ok(Source::Azure {
                remote: name,
                account: None,
                container: bucket,
                prefix,
            }),
            Some(other) => Err(bad(&format!(
                "rclone remote {remote}: type {other} is not supported (s3, gcs or azureblob)"
            ))),
            None => Err(bad(&format!(
                "unknown rclone remote {remote}: set RCLONE_CONFIG_{name}_TYPE=s3"
            ))),
        };
    }
    Ok(Source::Local(PathBuf::from(uri)))
}

/// Whether `uri` has a `..` segment, in any scheme: a bucket prefix, a local path, an rclone
/// remote's path, or an HTTP(S) path, percent-decoded and with `\` as a separator (`url`
/// would resolve `a/../b` silently, so the raw text is checked).
fn traversal(uri: &str) -> bool {
    let (scheme, rest) = uri.split_once("://").unwrap_or(("", uri));
    let path = if matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
        let path = rest.split(['?', '#']).next().unwrap_or_default();
        percent_encoding::percent_decode_str(path)
            .decode_utf8_lossy()
            .into_owned()
    } else {
        rest.to_owned()
    };
    path.split(['/', '\\']).any(|segment| segment == "..")
}

fn bucket_path(rest: &str) -> Result<(String, String), &'static str> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err("no bucket name");
    }
    Ok((bucket.to_owned(), prefix.trim_matches('/').to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn schemes() {
        let p = |u| parse(u, &no_env).unwrap();
        // `..` inside a name, or in a query, is no traversal
        assert!(
            matches!(p("s3://b/v1..2/iris"), Source::S3 { prefix, .. } if prefix == "v1..2/iris")
        );
        assert!(matches!(
            p("https://h/m/model.tgz?after=.."),
            Source::Http(_)
        ));
        assert_eq!(p("/mnt/pvc/iris"), Source::Local("/mnt/pvc/iris".into()));
        assert_eq!(
            p("file:///models/iris"),
            Source::Local("/models/iris".into())
        );
        assert_eq!(
            p("s3://sklearn/iris/"),
            Source::S3 {
                remote: "S3".into(),
                bucket: "sklearn".into(),
                prefix: "iris".into()
            }
        );
        assert_eq!(
            p("s3:sklearn"),
            Source::S3 {
                remote: "S3".into(),
                bucket: "sklearn".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            p("gs://seldon-models/v1.19/sklearn/iris"),
            Source::Gcs {
                remote: "GS".into(),
                bucket: "seldon-models".into(),
                prefix: "v1.19/sklearn/iris".into()
            }
        );
        assert_eq!(
            p("az://models/sklearn/iris"),
            Source::Azure {
                remote: "AZUREBLOB".into(),
                account: None,
                container: "models".into(),
                prefix: "sklearn/iris".into()
            }
        );
        // KServe's form: the account in the host, then container and path
        assert_eq!(
            p("https://myacct.blob.core.windows.net/models/v1/my%20model/"),
            Source::Azure {
                remote: "AZUREBLOB".into(),
                account: Some("myacct".into()),
                container: "models".into(),
                prefix: "v1/my model".into()
            }
        );
        assert_eq!(
            p("azureblob:models/iris"),
            Source::Azure {
                remote: "AZUREBLOB".into(),
                account: None,
                container: "models".into(),
                prefix: "iris".into()
            }
        );
        assert!(
            matches!(p("https://example.com/m/model.tar.gz"), Source::Http(u) if u.path() == "/m/model.tar.gz")
        );
    }

    #[test]
    fn rclone_remote_from_env() {
        let env = |k: &str| (k == "RCLONE_CONFIG_MINIO_TYPE").then(|| "s3".to_owned());
        assert_eq!(
            parse("minio:models/iris", &env).unwrap(),
            Source::S3 {
                remote: "MINIO".into(),
                bucket: "models".into(),
                prefix: "iris".into()
            }
        );
    }

    #[test]
    fn rejects_with_reason() {
        for (uri, why) in [
            ("", "empty"),
            ("s3://", "no bucket"),
            ("ftp://x/y", "unsupported scheme ftp"),
            ("pvc://claim/x", "/mnt/pvc"),
            ("https://example.com/models/", "not a directory"),
            ("blob:container/x", "unknown rclone remote blob"),
            // traversal, in every form
            ("s3://models/iris/../secrets", "`..` in the path"),
            ("gs://b/../other-bucket/x", "`..` in the path"),
            ("az://models/..", "`..` in the path"),
            ("minio:models/a/../../b", "`..` in the path"),
            ("file:///mnt/models/../../etc", "`..` in the path"),
            ("/mnt/pvc/../../etc", "`..` in the path"),
            (
                "https://example.com/m/../../etc/model.tgz",
                "`..` in the path",
            ),
            ("https://example.com/m/%2E%2e/x.tgz", "`..` in the path"),
            ("https://example.com/m/..%5Cx.tgz", "`..` in the path"),
            (
                "https://acct.blob.core.windows.net/models/a/%2e%2e/b",
                "`..` in the path",
            ),
            ("az://", "no container name"),
            (
                "https://acct.blob.core.windows.net/",
                "no container name after the account",
            ),
        ] {
            let err = parse(uri, &no_env).unwrap_err().to_string();
            assert!(err.starts_with(uri) && err.contains(why), "{uri}: {err}");
        }
        let env = |_: &str| Some("swift".to_owned());
        assert!(
            parse("az:c/x", &env)
                .unwrap_err()
                .to_string()
                .contains("type swift is not supported")
        );
    }
}
