//! S3 (and S3-compatible: MinIO, Ceph, moto) as a model source: ListObjectsV2 + GetObject,
//! signed with SigV4 when credentials are set, anonymous otherwise.

pub mod sigv4;

use std::path::Path;

use sigv4::Credentials;
use url::Url;

use crate::{InitError, fetch, paths};

/// Where and how to talk to S3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    pub endpoint: Url,
    pub region: String,
    pub credentials: Option<Credentials>,
    /// `endpoint/bucket/key` (MinIO, moto, any custom endpoint) rather than `bucket.endpoint/key`.
    pub path_style: bool,
}

/// Reads the configuration of rclone remote `remote` (`S3` for `s3://`) from the environment.
/// rclone's names (what Seldon documents for `envSecretRefName` secrets) win over AWS's:
///
/// | setting | read from, first set wins |
/// |---|---|
/// | access key | `RCLONE_CONFIG_<R>_ACCESS_KEY_ID`, `AWS_ACCESS_KEY_ID` |
/// | secret | `RCLONE_CONFIG_<R>_SECRET_ACCESS_KEY`, `AWS_SECRET_ACCESS_KEY` |
/// | session token | `RCLONE_CONFIG_<R>_SESSION_TOKEN`, `AWS_SESSION_TOKEN` |
/// | endpoint | `RCLONE_CONFIG_<R>_ENDPOINT`, `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, `S3_ENDPOINT` (default AWS) |
/// | region | `RCLONE_CONFIG_<R>_REGION`, `AWS_REGION`, `AWS_DEFAULT_REGION` (default `us-east-1`) |
/// | path style | `RCLONE_CONFIG_<R>_FORCE_PATH_STYLE` (default: true for a custom endpoint) |
///
/// An endpoint without a scheme is `https://` unless `S3_USE_HTTPS=0` or `USE_SSL=0`. No
/// access key means anonymous (unsigned) requests, as for public buckets.
pub fn config_from_env(
    remote: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<S3Config, String> {
    let first = |names: &[String]| {
        names
            .iter()
            .find_map(|n| env(n).filter(|v| !v.trim().is_empty()))
    };
    let rc = |key: &str| format!("RCLONE_CONFIG_{remote}_{key}");
    let access = first(&[rc("ACCESS_KEY_ID"), "AWS_ACCESS_KEY_ID".into()]);
    let secret = first(&[rc("SECRET_ACCESS_KEY"), "AWS_SECRET_ACCESS_KEY".into()]);
    let token = first(&[rc("SESSION_TOKEN"), "AWS_SESSION_TOKEN".into()]);
    let credentials = match (access, secret) {
        (Some(access_key), Some(secret_key)) => Some(Credentials {
            access_key,
            secret_key,
            session_token: token,
        }),
        (None, None) => None,
        (Some(_), None) => return Err("an access key id is set but no secret access key".into()),
        (None, Some(_)) => return Err("a secret access key is set but no access key id".into()),
    };
    let region = first(&[
        rc("REGION"),
        "AWS_REGION".into(),
        "AWS_DEFAULT_REGION".into(),
    ])
    .unwrap_or_else(|| "us-east-1".into());
    let custom = first(&[
        rc("ENDPOINT"),
        "AWS_ENDPOINT_URL_S3".into(),
        "AWS_ENDPOINT_URL".into(),
        "S3_ENDPOINT".into(),
    ]);
    let (endpoint, custom) = match custom {
        Some(e) => {
            let e = e.trim().trim_end_matches('/');
            let https = !["S3_USE_HTTPS", "USE_SSL"]
                .iter()
                .any(|n| env(n).is_some_and(|v| v == "0" || v.eq_ignore_ascii_case("false")));
            let with_scheme = if e.contains("://") {
                e.to_owned()
            } else {
                format!("{}://{e}", if https { "https" } else { "http" })
            };
            (
                Url::parse(&with_scheme).map_err(|err| format!("endpoint {e:?}: {err}"))?,
                true,
            )
        }
        None => (
            Url::parse(&format!("https://s3.{region}.amazonaws.com"))
                .map_err(|err| format!("region {region:?}: {err}"))?,
            false,
        ),
    };
    let path_style = match env(&rc("FORCE_PATH_STYLE")).map(|v| v.to_ascii_lowercase()) {
        Some(v) if v == "true" || v == "1" => true,
        Some(v) if v == "false" || v == "0" => false,
        _ => custom,
    };
    Ok(S3Config {
        endpoint,
        region,
        credentials,
        path_style,
    })
}

impl S3Config {
    /// The URL of `key` in `bucket` (`key` empty: the bucket, for listing) with the canonical
    /// `query`, and the canonical path that was signed.
    pub fn url(&self, bucket: &str, key: &str, query: &str) -> Result<(Url, String), String> {
        let base = self.endpoint.path().trim_end_matches('/');
        let enc_key = sigv4::uri_encode(key, true);
        let mut url = self.endpoint.clone();
        let path = if self.path_style || bucket.contains('.') {
            // `GET /bucket?list-type=2`, no trailing slash: what AWS SDKs send and sign.
            let bucket = sigv4::uri_encode(bucket, false);
            if key.is_empty() {
                format!("{base}/{bucket}")
            } else {
                format!("{base}/{bucket}/{enc_key}")
            }
        } else {
            let host = self.endpoint.host_str().ok_or("endpoint has no host")?;
            url.set_host(Some(&format!("{bucket}.{host}")))
                .map_err(|e| format!("bucket {bucket:?}: {e}"))?;
            format!("{base}/{enc_key}")
        };
        url.set_path(&path);
        url.set_query((!query.is_empty()).then_some(query));
        // What the server will see: the url crate keeps our encoding, this is just a read-back.
        let signed_path = url.path().to_owned();
        Ok((url, signed_path))
    }
}

/// One page of a ListObjectsV2 answer.
#[derive(Debug, PartialEq, Eq)]
pub struct ListPage {
    pub keys: Vec<String>,
    pub next: Option<String>,
}

/// Parses a ListObjectsV2 XML body.
pub fn parse_list(xml: &str) -> Result<ListPage, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| format!("not XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "ListBucketResult" {
        return Err(format!(
            "expected <ListBucketResult>, got <{}>",
            root.tag_name().name()
        ));
    }
    let text = |n: roxmltree::Node<'_, '_>, tag: &str| {
        n.children()
            .find(|c| c.tag_name().name() == tag)
            .map(|c| c.text().unwrap_or_default().to_owned())
    };
    let keys = root
        .children()
        .filter(|c| c.tag_name().name() == "Contents")
        .map(|c| text(c, "Key").ok_or_else(|| "<Contents> without <Key>".to_owned()))
        .collect::<Result<Vec<_>, _>>()?;
    let truncated = text(root, "IsTruncated").is_some_and(|t| t == "true");
    let next = if truncated {
        Some(
            text(root, "NextContinuationToken")
                .ok_or("IsTruncated without NextContinuationToken")?,
        )
    } else {
        None
    };
    Ok(ListPage { keys, next })
}

/// `Code: Message` of an S3 error body, or the body itself (shortened).
pub fn error_reason(body: &str) -> String {
    if let Ok(doc) = roxmltree::Document::parse(body) {
        let root = doc.root_element();
        let get = |t: &str| {
            root.children()
                .find(|c| c.tag_name().name() == t)
                .and_then(|c| c.text())
        };
        if let Some(code) = get("Code") {
            return match get("Message") {
                Some(msg) => format!("{code}: {msg}"),
                None => code.to_owned(),
            };
        }
    }
    fetch::shorten(body)
}

/// A client for one configured S3 endpoint.
#[derive(Debug)]
pub struct S3 {
    pub config: S3Config,
    http: reqwest::Client,
}

impl S3 {
    pub fn new(config: S3Config, http: reqwest::Client) -> Self {
        Self { config, http }
    }

    fn request(
        &self,
        uri: &str,
        bucket: &str,
        key: &str,
        query: &[(&str, &str)],
    ) -> Result<reqwest::RequestBuilder, InitError> {
        let config_err = |reason: String| InitError::Config {
            uri: uri.to_owned(),
            reason,
        };
        let query = sigv4::canonical_query(query);
        let (url, path) = self.config.url(bucket, key, &query).map_err(config_err)?;
        // reqwest would add `accept: */*` itself; set and sign it, since some S3 servers
        // (moto) recompute the signature over every header received, not just SignedHeaders.
        let mut req = self.http.get(url.clone()).header("accept", "*/*");
        if let Some(creds) = &self.config.credentials {
            let host = match url.port() {
                Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
                None => url.host_str().unwrap_or_default().to_owned(),
            };
            let amz_date = jiff::Timestamp::now()
                .strftime("%Y%m%dT%H%M%SZ")
                .to_string();
            let signed = sigv4::sign(
                creds,
                &sigv4::Request {
                    method: "GET",
                    host: &host,
                    path: &path,
                    query: &query,
                    headers: &[("accept", "*/*")],
                    amz_date: &amz_date,
                    region: &self.config.region,
                },
            );
            for (k, v) in signed {
                req = req.header(k, v);
            }
        }
        Ok(req)
    }

    /// Every key under `prefix` (all pages).
    pub async fn list(
        &self,
        uri: &str,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<String>, InitError> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut q = vec![("list-type", "2"), ("prefix", prefix)];
            if let Some(t) = &token {
                q.push(("continuation-token", t));
            }
            let body = fetch::text(uri, self.request(uri, bucket, "", &q)?, error_reason).await?;
            let page = parse_list(&body).map_err(|reason| InitError::Listing {
                uri: uri.to_owned(),
                reason,
            })?;
            keys.extend(page.keys);
            match page.next {
                Some(next) => token = Some(next),
                None => return Ok(keys),
            }
        }
    }

    /// Copies every object under `s3://bucket/prefix` into `dest` (or the single object
    /// `prefix` when nothing is under it). Returns (files, bytes).
    pub async fn copy(
        &self,
        uri: &str,
        bucket: &str,
        prefix: &str,
        dest: &Path,
    ) -> Result<(usize, u64), InitError> {
        // List `prefix` itself, not `prefix/`, and filter: one call finds a directory or a
        // single object, and no `/` goes into the signed query (moto 5 checks signatures
        // against the decoded query, so `prefix=a%2Fb` fails there; nested prefixes still do).
        let keys = self.list(uri, bucket, prefix).await?;
        let plan = paths::plan(prefix, keys).map_err(|(name, reason)| InitError::UnsafeName {
            uri: uri.to_owned(),
            name,
            reason,
        })?;
        if plan.is_empty() {
            return Err(InitError::NotFound {
                uri: uri.to_owned(),
            });
        }
        let (mut files, mut bytes) = (0, 0);
        for (key, rel) in plan {
            let object = format!("s3://{bucket}/{key}");
            let req = self.request(&object, bucket, &key, &[])?;
            bytes += fetch::to_file(&object, req, &dest.join(rel), error_reason).await?;
            files += 1;
        }
        Ok((files, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn rclone_names_win_and_custom_endpoint_is_path_style() {
        let env = env_of(&[
            ("RCLONE_CONFIG_S3_ACCESS_KEY_ID", "minioadmin"),
            ("RCLONE_CONFIG_S3_SECRET_ACCESS_KEY", "minio-secret"),
            (
                "RCLONE_CONFIG_S3_ENDPOINT",
                "http://minio.minio-system.svc.cluster.local:9000",
            ),
            ("AWS_ACCESS_KEY_ID", "ignored"),
            ("AWS_SECRET_ACCESS_KEY", "ignored"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
        ]);
        let c = config_from_env("S3", &env).unwrap();
        assert_eq!(c.credentials.as_ref().unwrap().access_key, "minioadmin");
        assert_eq!(c.region, "eu-west-1");
        assert!(c.path_style);
        let (url, path) = c.url("sklearn", "iris/model a.joblib", "").unwrap();
        assert_eq!(
            url.as_str(),
            "http://minio.minio-system.svc.cluster.local:9000/sklearn/iris/model%20a.joblib"
        );
        assert_eq!(path, "/sklearn/iris/model%20a.joblib");
    }

    #[test]
    fn aws_env_and_virtual_hosted_default() {
        let env = env_of(&[
            ("AWS_ACCESS_KEY_ID", "AK"),
            ("AWS_SECRET_ACCESS_KEY", "SK"),
            ("AWS_REGION", "us-west-2"),
        ]);
        let c = config_from_env("S3", &env).unwrap();
        assert!(!c.path_style);
        let (url, _) = c.url("models", "", "list-type=2&prefix=iris%2F").unwrap();
        assert_eq!(
            url.as_str(),
            "https://models.s3.us-west-2.amazonaws.com/?list-type=2&prefix=iris%2F"
        );
    }

    #[test]
    fn legacy_s3_endpoint_without_scheme() {
        let env = env_of(&[("S3_ENDPOINT", "minio:9000"), ("S3_USE_HTTPS", "0")]);
        let c = config_from_env("S3", &env).unwrap();
        assert_eq!(c.endpoint.as_str(), "http://minio:9000/");
        assert_eq!(c.credentials, None);
    }

    #[test]
    fn half_credentials_are_an_error() {
        let env = env_of(&[("AWS_ACCESS_KEY_ID", "AK")]);
        assert!(
            config_from_env("S3", &env)
                .unwrap_err()
                .contains("no secret access key")
        );
        let env = env_of(&[("RCLONE_CONFIG_S3_ENDPOINT", "http://[::1")]);
        assert!(
            config_from_env("S3", &env)
                .unwrap_err()
                .contains("endpoint")
        );
    }

    #[test]
    fn list_pages() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>iris/</Prefix>
<IsTruncated>true</IsTruncated><NextContinuationToken>tok&amp;1</NextContinuationToken>
<Contents><Key>iris/model.joblib</Key><Size>3</Size></Contents><Contents><Key>iris/a&amp;b.txt</Key></Contents></ListBucketResult>"#;
        assert_eq!(
            parse_list(xml).unwrap(),
            ListPage {
                keys: vec!["iris/model.joblib".into(), "iris/a&b.txt".into()],
                next: Some("tok&1".into())
            }
        );
        let last = "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>";
        assert_eq!(
            parse_list(last).unwrap(),
            ListPage {
                keys: vec![],
                next: None
            }
        );
    }

    #[test]
    fn bad_list_bodies() {
        assert!(parse_list("nope").unwrap_err().contains("not XML"));
        assert!(
            parse_list("<Error><Code>NoSuchBucket</Code></Error>")
                .unwrap_err()
                .contains("<Error>")
        );
        assert!(
            parse_list("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>")
                .unwrap_err()
                .contains("NextContinuationToken")
        );
        assert_eq!(
            error_reason(
                "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>"
            ),
            "NoSuchBucket: The specified bucket does not exist"
        );
    }
}
