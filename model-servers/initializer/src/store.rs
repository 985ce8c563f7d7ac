//! S3, GCS and Azure Blob Storage through `object_store` (Apache Arrow's storage library):
//! credential chains, request signing, retries and listing come from it. This module maps
//! Seldon's configuration (rclone's `RCLONE_CONFIG_<REMOTE>_*` variables, what Seldon's docs
//! put in `envSecretRefName` secrets, then each cloud's standard variables) onto
//! `object_store`'s config keys ([`s3_options`], [`gcs_options`], [`azure_options`], pure),
//! and copies a prefix ([`copy`]).
//!
//! Credentials: explicit ones (keys, tokens, a service account, a connection string) are
//! used as given; the cloud's ambient chain (instance metadata, workload identity) only when
//! its variables are set or `RCLONE_CONFIG_<R>_ENV_AUTH=true`; otherwise requests are
//! anonymous (public buckets such as `gs://seldon-models`), as with rclone's `env_auth =
//! false` default. So an unconfigured fetch never calls a metadata endpoint.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt as _, RetryConfig};
use tokio::io::AsyncWriteExt as _;

use crate::{InitError, fetch, paths};

/// `object_store` config keys and values (secrets included), in the order they apply.
pub type StoreOptions = Vec<(&'static str, String)>;

/// The first non-blank value of `names`.
fn first(env: &dyn Fn(&str) -> Option<String>, names: &[String]) -> Option<String> {
    names
        .iter()
        .find_map(|n| env(n).filter(|v| !v.trim().is_empty()))
        .map(|v| v.trim().to_owned())
}

fn truthy(v: Option<String>) -> bool {
    v.is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
}

fn rc(remote: &str, key: &str) -> String {
    format!("RCLONE_CONFIG_{remote}_{key}")
}

/// The options of rclone remote `remote` (`S3` for `s3://`) for `bucket`:
///
/// | setting | read from, first set wins |
/// |---|---|
/// | access key / secret / session token | `RCLONE_CONFIG_<R>_ACCESS_KEY_ID`, `AWS_ACCESS_KEY_ID` / `…_SECRET_ACCESS_KEY`, `AWS_SECRET_ACCESS_KEY` / `…_SESSION_TOKEN`, `AWS_SESSION_TOKEN` |
/// | endpoint | `RCLONE_CONFIG_<R>_ENDPOINT`, `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, `S3_ENDPOINT` (no scheme: https unless `S3_USE_HTTPS=0`/`USE_SSL=0`); default AWS |
/// | region | `RCLONE_CONFIG_<R>_REGION`, `AWS_REGION`, `AWS_DEFAULT_REGION`; default `us-east-1` |
/// | addressing | path-style for a custom endpoint, virtual-hosted for AWS; `RCLONE_CONFIG_<R>_FORCE_PATH_STYLE` overrides |
/// | ambient chain | `AWS_WEB_IDENTITY_TOKEN_FILE` (+`AWS_ROLE_ARN`, IRSA), `AWS_CONTAINER_CREDENTIALS_*` (ECS/EKS pod identity), or `RCLONE_CONFIG_<R>_ENV_AUTH=true` (adds EC2 instance metadata) |
///
/// Neither keys nor a chain: anonymous (unsigned) requests.
pub fn s3_options(
    remote: &str,
    bucket: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<StoreOptions, String> {
    let get = |names: &[&str]| {
        first(
            env,
            &names
                .iter()
                .map(|n| match n.strip_prefix("rc:") {
                    Some(k) => rc(remote, k),
                    None => (*n).to_owned(),
                })
                .collect::<Vec<_>>(),
        )
    };
    let mut out: StoreOptions = vec![("aws_bucket", bucket.to_owned())];
    let region = get(&["rc:REGION", "AWS_REGION", "AWS_DEFAULT_REGION"])
        .unwrap_or_else(|| "us-east-1".into());
    out.push(("aws_region", region));
    let custom = get(&[
        "rc:ENDPOINT",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL",
        "S3_ENDPOINT",
    ]);
    let path_style = match env(&rc(remote, "FORCE_PATH_STYLE")).map(|v| v.to_ascii_lowercase()) {
        Some(v) if v == "true" || v == "1" => true,
        Some(v) if v == "false" || v == "0" => false,
        _ => custom.is_some() || bucket.contains('.'),
    };
    if let Some(e) = custom {
        let e = e.trim_end_matches('/');
        let https = !["S3_USE_HTTPS", "USE_SSL"]
            .iter()
            .any(|n| env(n).is_some_and(|v| v == "0" || v.eq_ignore_ascii_case("false")));
        let with_scheme = if e.contains("://") {
            e.to_owned()
        } else {
            format!("{}://{e}", if https { "https" } else { "http" })
        };
        let mut url =
            url::Url::parse(&with_scheme).map_err(|err| format!("endpoint {e:?}: {err}"))?;
        if !path_style {
            // object_store takes a virtual-hosted custom endpoint with the bucket in it
            let host = url.host_str().ok_or("endpoint has no host")?.to_owned();
            url.set_host(Some(&format!("{bucket}.{host}")))
                .map_err(|err| format!("bucket {bucket:?}: {err}"))?;
        }
        if url.scheme() == "http" {
            out.push(("aws_allow_http", "true".into()));
        }
        out.push((
            "aws_endpoint",
            url.as_str().trim_end_matches('/').to_owned(),
        ));
    }
    out.push((
        "aws_virtual_hosted_style_request",
        (!path_style).to_string(),
    ));
    let access = get(&["rc:ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"]);
    let secret = get(&["rc:SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"]);
    match (access, secret) {
        (Some(a), Some(s)) => {
            out.push(("aws_access_key_id", a));
            out.push(("aws_secret_access_key", s));
            if let Some(t) = get(&["rc:SESSION_TOKEN", "AWS_SESSION_TOKEN"]) {
                out.push(("aws_session_token", t));
            }
        }
        (Some(_), None) => return Err("an access key id is set but no secret access key".into()),
        (None, Some(_)) => return Err("a secret access key is set but no access key id".into()),
        (None, None) => {
            let chain = [
                ("AWS_WEB_IDENTITY_TOKEN_FILE", "aws_web_identity_token_file"),
                ("AWS_ROLE_ARN", "aws_role_arn"),
                ("AWS_ROLE_SESSION_NAME", "aws_role_session_name"),
                ("AWS_ENDPOINT_URL_STS", "aws_endpoint_url_sts"),
                (
                    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                    "aws_container_credentials_relative_uri",
                ),
                (
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                    "aws_container_credentials_full_uri",
                ),
                (
                    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                    "aws_container_authorization_token_file",
                ),
                ("AWS_METADATA_ENDPOINT", "aws_metadata_endpoint"),
            ];
            let mut ambient = truthy(env(&rc(remote, "ENV_AUTH")));
            for (var, key) in chain {
                if let Some(v) = get(&[var]) {
                    ambient |= var != "AWS_METADATA_ENDPOINT";
                    out.push((key, v));
                }
            }
            if !ambient {
                out.push(("aws_skip_signature", "true".into()));
            }
        }
    }
    Ok(out)
}

/// The options of rclone remote `remote` (`GS` for `gs://`) for `bucket`:
///
/// | setting | read from |
/// |---|---|
/// | endpoint | `STORAGE_EMULATOR_HOST` (what Google's clients read; anonymous then), `RCLONE_CONFIG_<R>_ENDPOINT`; default `https://storage.googleapis.com` |
/// | service account | `RCLONE_CONFIG_<R>_SERVICE_ACCOUNT_FILE`, `GOOGLE_SERVICE_ACCOUNT`, `GOOGLE_APPLICATION_CREDENTIALS` (a file) / `RCLONE_CONFIG_<R>_SERVICE_ACCOUNT_CREDENTIALS`, `GOOGLE_SERVICE_ACCOUNT_KEY` (the JSON) |
/// | ambient chain | `RCLONE_CONFIG_<R>_ENV_AUTH=true`: gcloud's application default credentials, then the metadata server |
///
/// None of these, or `RCLONE_CONFIG_<R>_ANONYMOUS=true`: anonymous.
pub fn gcs_options(
    remote: &str,
    bucket: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<StoreOptions, String> {
    let mut out: StoreOptions = vec![("google_bucket", bucket.to_owned())];
    let emulator = first(env, &["STORAGE_EMULATOR_HOST".into()]);
    let endpoint = emulator
        .clone()
        .or_else(|| first(env, &[rc(remote, "ENDPOINT")]));
    if let Some(e) = endpoint {
        let e = e.trim_end_matches('/');
        let with_scheme = if e.contains("://") {
            e.to_owned()
        } else {
            format!("http://{e}")
        };
        let url = url::Url::parse(&with_scheme).map_err(|err| format!("endpoint {e:?}: {err}"))?;
        if url.scheme() == "http" {
            out.push(("google_allow_http", "true".into()));
        }
        out.push((
            "google_base_url",
            url.as_str().trim_end_matches('/').to_owned(),
        ));
    }
    let file = first(
        env,
        &[
            rc(remote, "SERVICE_ACCOUNT_FILE"),
            "GOOGLE_SERVICE_ACCOUNT".into(),
            "GOOGLE_SERVICE_ACCOUNT_PATH".into(),
        ],
    );
    let key = first(
        env,
        &[
            rc(remote, "SERVICE_ACCOUNT_CREDENTIALS"),
            "GOOGLE_SERVICE_ACCOUNT_KEY".into(),
        ],
    );
    let adc = first(env, &["GOOGLE_APPLICATION_CREDENTIALS".into()]);
    let anonymous = emulator.is_some() || truthy(env(&rc(remote, "ANONYMOUS")));
    if anonymous {
        out.push(("google_skip_signature", "true".into()));
    } else if let Some(f) = file {
        out.push(("google_service_account", f));
    } else if let Some(k) = key {
        out.push(("google_service_account_key", k));
    } else if let Some(a) = adc {
        out.push(("google_application_credentials", a));
    } else if !truthy(env(&rc(remote, "ENV_AUTH"))) {
        out.push(("google_skip_signature", "true".into()));
    }
    Ok(out)
}

/// `AZURE_STORAGE_CONNECTION_STRING`'s `Key=Value;…` pairs.
fn connection_string(s: &str) -> Vec<(String, String)> {
    s.split(';')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect()
}

/// The options of rclone remote `remote` (`AZUREBLOB` for `az://` and KServe's
/// `https://<account>.blob.core.windows.net/…`) for `container`; `account` is the URI's:
///
/// | setting | read from, first set wins |
/// |---|---|
/// | account | the URI, `RCLONE_CONFIG_<R>_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT`, the connection string's `AccountName` |
/// | shared key | `RCLONE_CONFIG_<R>_KEY`, `AZURE_STORAGE_ACCOUNT_KEY`, `AZURE_STORAGE_KEY`, `AccountKey` |
/// | SAS | `RCLONE_CONFIG_<R>_SAS_URL` (its query), `AZURE_STORAGE_SAS_TOKEN`, `SharedAccessSignature` |
/// | endpoint | `RCLONE_CONFIG_<R>_ENDPOINT`, `AZURE_STORAGE_ENDPOINT`, `BlobEndpoint`; default `https://<account>.blob.core.windows.net` |
/// | emulator (Azurite) | `RCLONE_CONFIG_<R>_USE_EMULATOR`, `AZURE_STORAGE_USE_EMULATOR`, `UseDevelopmentStorage=true` (then `AZURITE_BLOB_STORAGE_URL`, default `http://127.0.0.1:10000`, and Azurite's well-known account) |
/// | service principal | `AZURE_CLIENT_ID` + `AZURE_TENANT_ID` + `AZURE_CLIENT_SECRET` (KServe's names; `RCLONE_CONFIG_<R>_CLIENT_ID`/`_TENANT`/`_CLIENT_SECRET`), or + `AZURE_FEDERATED_TOKEN_FILE` (workload identity) |
/// | ambient chain | `RCLONE_CONFIG_<R>_ENV_AUTH=true`: managed identity |
///
/// The connection string is `AZURE_STORAGE_CONNECTION_STRING` (or
/// `RCLONE_CONFIG_<R>_CONNECTION_STRING`). None of the credentials: anonymous (a public
/// container).
pub fn azure_options(
    remote: &str,
    account: Option<&str>,
    container: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<StoreOptions, String> {
    let cs = first(
        env,
        &[
            rc(remote, "CONNECTION_STRING"),
            "AZURE_STORAGE_CONNECTION_STRING".into(),
        ],
    )
    .map(|s| connection_string(&s))
    .unwrap_or_default();
    let cs_get = |k: &str| {
        cs.iter()
            .find(|(n, _)| n == &k.to_ascii_lowercase())
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let get = |rclone: &str, vars: &[&str], cs_key: &str| {
        let mut names = vec![rc(remote, rclone)];
        names.extend(vars.iter().map(|v| (*v).to_owned()));
        first(env, &names).or_else(|| cs_get(cs_key))
    };
    let mut out: StoreOptions = vec![("azure_container_name", container.to_owned())];
    let emulator = truthy(first(
        env,
        &[
            rc(remote, "USE_EMULATOR"),
            "AZURE_STORAGE_USE_EMULATOR".into(),
        ],
    )) || truthy(cs_get("UseDevelopmentStorage"));
    let account = account.map(str::to_owned).or_else(|| {
        get(
            "ACCOUNT",
            &["AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT"],
            "AccountName",
        )
    });
    match &account {
        Some(a) => out.push(("azure_storage_account_name", a.clone())),
        None if emulator => {}
        None => {
            return Err(
                "no storage account: name it in the URI (https://<account>.blob.core.windows.net/<container>/…) or set AZURE_STORAGE_ACCOUNT_NAME".into(),
            );
        }
    }
    if emulator {
        out.push(("azure_storage_use_emulator", "true".into()));
    } else {
        let endpoint = get("ENDPOINT", &["AZURE_STORAGE_ENDPOINT"], "BlobEndpoint").or_else(|| {
            let suffix = cs_get("EndpointSuffix")?;
            let proto = cs_get("DefaultEndpointsProtocol").unwrap_or_else(|| "https".into());
            Some(format!(
                "{proto}://{}.blob.{suffix}",
                account.as_deref().unwrap_or_default()
            ))
        });
        if let Some(e) = endpoint {
            let url = url::Url::parse(&e).map_err(|err| format!("endpoint {e:?}: {err}"))?;
            if url.scheme() == "http" {
                out.push(("azure_allow_http", "true".into()));
            }
            out.push((
                "azure_storage_endpoint",
                url.as_str().trim_end_matches('/').to_owned(),
            ));
        }
    }
    let key = get(
        "KEY",
        &["AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_KEY"],
        "AccountKey",
    );
    let sas = first(env, &[rc(remote, "SAS_URL")])
        .map(|u| u.split_once('?').map_or(u.clone(), |(_, q)| q.to_owned()))
        .or_else(|| first(env, &["AZURE_STORAGE_SAS_TOKEN".into()]))
        .or_else(|| cs_get("SharedAccessSignature"))
        .map(|s| s.trim_start_matches('?').to_owned());
    let client_id = get("CLIENT_ID", &["AZURE_CLIENT_ID"], "");
    let tenant = get("TENANT", &["AZURE_TENANT_ID"], "");
    let client_secret = get("CLIENT_SECRET", &["AZURE_CLIENT_SECRET"], "");
    let token_file = first(env, &["AZURE_FEDERATED_TOKEN_FILE".into()]);
    if let Some(k) = key {
        out.push(("azure_storage_account_key", k));
    } else if let Some(s) = sas {
        out.push(("azure_storage_sas_key", s));
    } else if let (Some(id), Some(t)) = (client_id, tenant)
        && (client_secret.is_some() || token_file.is_some())
    {
        out.push(("azure_storage_client_id", id));
        out.push(("azure_storage_tenant_id", t));
        if let Some(s) = client_secret {
            out.push(("azure_storage_client_secret", s));
        } else if let Some(f) = token_file {
            out.push(("azure_federated_token_file", f));
        }
    } else if !emulator && !truthy(env(&rc(remote, "ENV_AUTH"))) {
        out.push(("azure_skip_signature", "true".into()));
    }
    Ok(out)
}

/// Where the bytes of a remote source come from, without secrets: the endpoint options
/// (`*_endpoint`, `*_base_url`, the emulator switch, the region). Local mode keys its
/// cache on this and the URI, so the same `s3://…` on MinIO and on AWS are two entries.
pub fn origin(options: &StoreOptions) -> String {
    options
        .iter()
        .filter(|(k, _)| {
            k.ends_with("_endpoint")
                || k.ends_with("_base_url")
                || k.ends_with("_use_emulator")
                || *k == "aws_region"
        })
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// Retries (with exponential backoff) of a failed request: a few, within a minute, so a
/// wrong endpoint fails in seconds rather than `object_store`'s default three minutes.
fn retry() -> RetryConfig {
    RetryConfig {
        max_retries: 4,
        retry_timeout: Duration::from_secs(60),
        ..RetryConfig::default()
    }
}

fn client_options() -> ClientOptions {
    ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(30))
        // a model of several GB over a slow link: no overall deadline per request
        .with_timeout_disabled()
        .with_user_agent(reqwest::header::HeaderValue::from_static(concat!(
            "seldon-mesh-initializer/",
            env!("CARGO_PKG_VERSION")
        )))
}

/// What [`copy`] needs of a backend: gets, and listing under a raw prefix.
///
/// `ObjectStore::list` appends `/` to its prefix, so listing `iris` asks for `prefix=iris%2F`;
/// [`PaginatedListStore::list_paginated`] sends the prefix as given, as the AWS SDKs and
/// rclone do: one listing of `iris` finds the "directory" `iris/…` and the object `iris`
/// ([`paths::plan`] keeps the right ones), and moto, which checks signatures against the
/// *decoded* query, accepts a signed listing of a one-segment prefix (see the README).
pub trait Store: ObjectStore + PaginatedListStore {}

impl<T: ObjectStore + PaginatedListStore> Store for T {}

/// The store for `source` (S3, GCS or Azure) with `options` applied.
pub fn build(kind: Kind, options: &StoreOptions) -> Result<Arc<dyn Store>, String> {
    let bad = |k: &str, e: object_store::Error| format!("{k}: {e}");
    Ok(match kind {
        Kind::S3 => {
            let mut b = object_store::aws::AmazonS3Builder::new()
                .with_retry(retry())
                .with_client_options(client_options());
            for (k, v) in options {
                b = b.with_config(k.parse().map_err(|e| bad(k, e))?, v);
            }
            Arc::new(b.build().map_err(|e| e.to_string())?)
        }
        Kind::Gcs => {
            let mut b = object_store::gcp::GoogleCloudStorageBuilder::new()
                .with_retry(retry())
                .with_client_options(client_options());
            for (k, v) in options {
                b = b.with_config(k.parse().map_err(|e| bad(k, e))?, v);
            }
            Arc::new(b.build().map_err(|e| e.to_string())?)
        }
        Kind::Azure => {
            let mut b = object_store::azure::MicrosoftAzureBuilder::new()
                .with_retry(retry())
                .with_client_options(client_options());
            for (k, v) in options {
                b = b.with_config(k.parse().map_err(|e| bad(k, e))?, v);
            }
            Arc::new(b.build().map_err(|e| e.to_string())?)
        }
    })
}

/// Which `object_store` backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    S3,
    Gcs,
    Azure,
}

/// One line saying why a storage request failed: `HTTP <status>: <Code>: <Message>` when the
/// server answered with the XML error body S3, GCS and Azure share, else the error itself
/// (shortened).
pub fn reason(e: &object_store::Error) -> String {
    let text = e.to_string();
    let status = text.find("status code: ").and_then(|i| {
        let rest = &text[i + "status code: ".len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        (digits.len() == 3).then_some(digits)
    });
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find(&format!("</{name}>"))? + start;
        let value = text[start..end].trim();
        // moto wraps its messages in CDATA
        let value = value
            .strip_prefix("<![CDATA[")
            .and_then(|v| v.strip_suffix("]]>"))
            .unwrap_or(value);
        let value = value.lines().next().unwrap_or_default().trim();
        (!value.is_empty()).then(|| value.to_owned())
    };
    match (status, tag("Code")) {
        (Some(s), Some(code)) => match tag("Message") {
            Some(m) => format!("HTTP {s}: {code}: {m}"),
            None => format!("HTTP {s}: {code}"),
        },
        _ => fetch::shorten(&text),
    }
}

/// Copies every object under `prefix` (or the single object `prefix`, as `dest/<name>`)
/// into `dest`; `base` is `scheme://bucket` for the object URIs in errors. Returns (files,
/// bytes).
pub async fn copy(
    store: &dyn Store,
    uri: &str,
    base: &str,
    prefix: &str,
    dest: &Path,
) -> Result<(usize, u64), InitError> {
    let failed = |uri: &str, e: &object_store::Error| InitError::Store {
        uri: uri.to_owned(),
        reason: reason(e),
    };
    let mut keys = Vec::new();
    let mut page_token = None;
    loop {
        let opts = PaginatedListOptions {
            page_token: page_token.take(),
            ..PaginatedListOptions::default()
        };
        let page = store
            .list_paginated((!prefix.is_empty()).then_some(prefix), opts)
            .await
            .map_err(|e| failed(uri, &e))?;
        keys.extend(
            page.result
                .objects
                .into_iter()
                .map(|meta| meta.location.to_string()),
        );
        match page.page_token {
            Some(t) => page_token = Some(t),
            None => break,
        }
    }
    let mut plan = paths::plan(prefix, keys).map_err(|(name, reason)| InitError::UnsafeName {
        uri: uri.to_owned(),
        name,
        reason,
    })?;
    if plan.is_empty() && !prefix.is_empty() {
        // Azure's listing leaves out a blob named exactly like the prefix: ask for it
        match store.head(&ObjectPath::from(prefix)).await {
            Ok(meta) => {
                plan = paths::plan(prefix, vec![meta.location.to_string()]).map_err(
                    |(name, reason)| InitError::UnsafeName {
                        uri: uri.to_owned(),
                        name,
                        reason,
                    },
                )?;
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(failed(uri, &e)),
        }
    }
    if plan.is_empty() {
        return Err(InitError::NotFound {
            uri: uri.to_owned(),
        });
    }
    let (mut files, mut bytes) = (0, 0);
    for (key, rel) in plan {
        let object = format!("{base}/{key}");
        let got = store
            .get(&ObjectPath::from(key.as_str()))
            .await
            .map_err(|e| failed(&object, &e))?;
        bytes += to_file(&object, got.into_stream(), &dest.join(rel)).await?;
        files += 1;
    }
    Ok((files, bytes))
}

/// Streams `body` into `path` through `.<name>.part`, renamed at the end.
async fn to_file(
    uri: &str,
    mut body: futures::stream::BoxStream<'static, object_store::Result<bytes::Bytes>>,
    path: &Path,
) -> Result<u64, InitError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| InitError::io(uri, dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let part = dir.join(format!(".{name}.part"));
    let mut file = tokio::fs::File::create(&part)
        .await
        .map_err(|e| InitError::io(uri, &part, e))?;
    let mut bytes = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| InitError::Store {
            uri: uri.to_owned(),
            reason: reason(&e),
        })?;
        file.write_all(&chunk)
            .await
            .map_err(|e| InitError::io(uri, &part, e))?;
        bytes += chunk.len() as u64;
    }
    file.flush()
        .await
        .map_err(|e| InitError::io(uri, &part, e))?;
    drop(file);
    tokio::fs::rename(&part, path)
        .await
        .map_err(|e| InitError::io(uri, path, e))?;
    Ok(bytes)
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

    fn get<'a>(o: &'a StoreOptions, k: &str) -> Option<&'a str> {
        o.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn s3_rclone_names_win_and_custom_endpoint_is_path_style() {
        let env = env_of(&[
            ("RCLONE_CONFIG_S3_ACCESS_KEY_ID", "minioadmin"),
            ("RCLONE_CONFIG_S3_SECRET_ACCESS_KEY", "minio-secret"),
            (
                "RCLONE_CONFIG_S3_ENDPOINT",
                "http://minio.minio-system.svc.cluster.local:9000/",
            ),
            ("AWS_ACCESS_KEY_ID", "ignored"),
            ("AWS_SECRET_ACCESS_KEY", "ignored"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
        ]);
        let o = s3_options("S3", "sklearn", &env).unwrap();
        assert_eq!(get(&o, "aws_access_key_id"), Some("minioadmin"));
        assert_eq!(get(&o, "aws_secret_access_key"), Some("minio-secret"));
        assert_eq!(get(&o, "aws_region"), Some("eu-west-1"));
        assert_eq!(
            get(&o, "aws_endpoint"),
            Some("http://minio.minio-system.svc.cluster.local:9000")
        );
        assert_eq!(get(&o, "aws_allow_http"), Some("true"));
        assert_eq!(get(&o, "aws_virtual_hosted_style_request"), Some("false"));
        assert_eq!(get(&o, "aws_skip_signature"), None);
        build(Kind::S3, &o).unwrap();
    }

    #[test]
    fn s3_aws_default_is_virtual_hosted_and_anonymous_without_keys() {
        let o = s3_options("S3", "models", &env_of(&[("AWS_REGION", "us-west-2")])).unwrap();
        assert_eq!(get(&o, "aws_endpoint"), None);
        assert_eq!(get(&o, "aws_virtual_hosted_style_request"), Some("true"));
        assert_eq!(get(&o, "aws_skip_signature"), Some("true"));
        assert_eq!(origin(&o), "aws_region=us-west-2");
        // a dotted bucket cannot be a host name label: path style
        let o = s3_options("S3", "my.models", &env_of(&[])).unwrap();
        assert_eq!(get(&o, "aws_virtual_hosted_style_request"), Some("false"));
    }

    #[test]
    fn s3_legacy_endpoint_forced_virtual_hosting_and_ambient_chain() {
        let env = env_of(&[
            ("S3_ENDPOINT", "minio:9000"),
            ("S3_USE_HTTPS", "0"),
            ("RCLONE_CONFIG_S3_FORCE_PATH_STYLE", "false"),
        ]);
        let o = s3_options("S3", "b", &env).unwrap();
        assert_eq!(get(&o, "aws_endpoint"), Some("http://b.minio:9000"));
        assert_eq!(get(&o, "aws_virtual_hosted_style_request"), Some("true"));
        let irsa = env_of(&[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/token"),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
        ]);
        let o = s3_options("S3", "b", &irsa).unwrap();
        assert_eq!(
            get(&o, "aws_web_identity_token_file"),
            Some("/var/run/token")
        );
        assert_eq!(get(&o, "aws_skip_signature"), None);
        let env_auth = env_of(&[("RCLONE_CONFIG_MINIO_ENV_AUTH", "true")]);
        let o = s3_options("MINIO", "b", &env_auth).unwrap();
        assert_eq!(get(&o, "aws_skip_signature"), None);
    }

    #[test]
    fn s3_half_credentials_and_bad_endpoints_are_errors() {
        let env = env_of(&[("AWS_ACCESS_KEY_ID", "AK")]);
        assert!(
            s3_options("S3", "b", &env)
                .unwrap_err()
                .contains("no secret access key")
        );
        let env = env_of(&[("AWS_SECRET_ACCESS_KEY", "SK")]);
        assert!(
            s3_options("S3", "b", &env)
                .unwrap_err()
                .contains("no access key id")
        );
        let env = env_of(&[("RCLONE_CONFIG_S3_ENDPOINT", "http://[::1")]);
        assert!(
            s3_options("S3", "b", &env)
                .unwrap_err()
                .contains("endpoint")
        );
    }

    #[test]
    fn gcs_emulator_service_accounts_and_anonymous() {
        let o = gcs_options("GS", "seldon-models", &env_of(&[])).unwrap();
        assert_eq!(get(&o, "google_skip_signature"), Some("true"));
        assert_eq!(get(&o, "google_base_url"), None);
        let emu = env_of(&[
            ("STORAGE_EMULATOR_HOST", "localhost:4443"),
            ("GOOGLE_APPLICATION_CREDENTIALS", "/ignored.json"),
        ]);
        let o = gcs_options("GS", "b", &emu).unwrap();
        assert_eq!(get(&o, "google_base_url"), Some("http://localhost:4443"));
        assert_eq!(get(&o, "google_skip_signature"), Some("true"));
        assert_eq!(
            origin(&o),
            "google_base_url=http://localhost:4443",
            "the cache key sees the emulator"
        );
        let sa = env_of(&[
            ("RCLONE_CONFIG_GS_SERVICE_ACCOUNT_FILE", "/secret/sa.json"),
            ("GOOGLE_APPLICATION_CREDENTIALS", "/other.json"),
        ]);
        let o = gcs_options("GS", "b", &sa).unwrap();
        assert_eq!(get(&o, "google_service_account"), Some("/secret/sa.json"));
        assert_eq!(get(&o, "google_skip_signature"), None);
        let adc = env_of(&[("GOOGLE_APPLICATION_CREDENTIALS", "/adc.json")]);
        let o = gcs_options("GS", "b", &adc).unwrap();
        assert_eq!(get(&o, "google_application_credentials"), Some("/adc.json"));
        assert!(
            gcs_options(
                "GS",
                "b",
                &env_of(&[("STORAGE_EMULATOR_HOST", "http://[x")])
            )
            .unwrap_err()
            .contains("endpoint")
        );
    }

    const AZURITE: &str = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;";

    #[test]
    fn azure_connection_string_and_uri_account() {
        let env = |k: &str| (k == "AZURE_STORAGE_CONNECTION_STRING").then(|| AZURITE.to_owned());
        let o = azure_options("AZUREBLOB", None, "models", &env).unwrap();
        assert_eq!(
            get(&o, "azure_storage_account_name"),
            Some("devstoreaccount1")
        );
        assert_eq!(
            get(&o, "azure_storage_endpoint"),
            Some("http://127.0.0.1:10000/devstoreaccount1")
        );
        assert_eq!(get(&o, "azure_allow_http"), Some("true"));
        assert!(
            get(&o, "azure_storage_account_key")
                .unwrap()
                .starts_with("Eby8")
        );
        build(Kind::Azure, &o).unwrap();
        // the URI's account wins
        let o = azure_options("AZUREBLOB", Some("acct"), "models", &env).unwrap();
        assert_eq!(get(&o, "azure_storage_account_name"), Some("acct"));
    }

    #[test]
    fn azure_rclone_names_sas_service_principal_and_anonymous() {
        let env = env_of(&[
            ("RCLONE_CONFIG_MYBLOB_ACCOUNT", "acct"),
            (
                "RCLONE_CONFIG_MYBLOB_SAS_URL",
                "https://acct.blob.core.windows.net/models?sv=2022&sig=abc",
            ),
        ]);
        let o = azure_options("MYBLOB", None, "models", &env).unwrap();
        assert_eq!(get(&o, "azure_storage_account_name"), Some("acct"));
        assert_eq!(get(&o, "azure_storage_sas_key"), Some("sv=2022&sig=abc"));
        assert_eq!(get(&o, "azure_storage_endpoint"), None);
        let sp = env_of(&[
            ("AZURE_CLIENT_ID", "id"),
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_SECRET", "s"),
        ]);
        let o = azure_options("AZUREBLOB", Some("acct"), "models", &sp).unwrap();
        assert_eq!(get(&o, "azure_storage_client_secret"), Some("s"));
        assert_eq!(get(&o, "azure_skip_signature"), None);
        let o = azure_options("AZUREBLOB", Some("acct"), "models", &env_of(&[])).unwrap();
        assert_eq!(get(&o, "azure_skip_signature"), Some("true"));
        let err = azure_options("AZUREBLOB", None, "models", &env_of(&[])).unwrap_err();
        assert!(err.contains("no storage account"), "{err}");
        let emu = env_of(&[("AZURE_STORAGE_USE_EMULATOR", "true")]);
        let o = azure_options("AZUREBLOB", None, "models", &emu).unwrap();
        assert_eq!(get(&o, "azure_storage_use_emulator"), Some("true"));
        assert_eq!(get(&o, "azure_skip_signature"), None);
    }

    #[test]
    fn reasons_quote_the_servers_code_and_message() {
        let e = object_store::Error::Generic {
            store: "S3",
            source: "Error performing GET http://x/b in 1ms - Server returned non-2xx status code: 404 Not Found: <?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>".into(),
        };
        assert_eq!(
            reason(&e),
            "HTTP 404: NoSuchBucket: The specified bucket does not exist"
        );
        let e = object_store::Error::Generic {
            store: "S3",
            source: "Error performing GET http://x/b in 1ms - Server returned non-2xx status code: 403 Forbidden: <Error><Code>SignatureDoesNotMatch</Code><Message><![CDATA[The request signature we calculated does not match.]]></Message></Error>".into(),
        };
        assert_eq!(
            reason(&e),
            "HTTP 403: SignatureDoesNotMatch: The request signature we calculated does not match."
        );
        let e = object_store::Error::Generic {
            store: "S3",
            source: "connection refused\n  twice".into(),
        };
        assert_eq!(reason(&e), "Generic S3 error: connection refused twice");
    }
}
