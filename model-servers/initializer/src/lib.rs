//! Copies a model URI (`file://`, `http(s)://`, `s3://`, `gs://`, `az://`) into the model
//! directory, as Seldon's storage initializer does.
//!
//! ```text
//! modelUri ──uri::parse──► Source ──┬─ Local ─► local::copy
//!   (pure, env lookup)              ├─ Http ──► fetch::to_file ─► archive::unpack (.tar.gz/.tgz/.tar/.zip)
//!                                   └─ S3 / Gcs / Azure ─► store::*_options (env → object_store keys, pure)
//!                                                        ─► store::copy (object_store: list + get)
//!                          then convert::plan → convert::run: SKLEARN_SERVER model.joblib → model.onnx,
//!                          XGBOOST_SERVER legacy model.bst → model.ubj, TENSORFLOW_SERVER SavedModel → model.onnx
//! ```

pub mod archive;
pub mod convert;
mod error;
pub mod fetch;
pub mod local;
pub mod paths;
pub mod sklearn;
pub mod store;
pub mod uri;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::InitError;
pub use uri::Source;

/// What to copy where, and what to do after.
#[derive(Debug, Clone)]
pub struct Options {
    pub uri: String,
    pub dest: PathBuf,
    /// The prepackaged server the model is for: it decides the fetch-time conversion
    /// (`convert::plan`).
    pub implementation: Option<String>,
    /// The Python and `convert_sklearn.py`; the other scripts are looked for beside it.
    pub converter: sklearn::Converter,
}

/// What was copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub files: usize,
    pub bytes: u64,
    /// An HTTP archive was unpacked (then `files` = 1, the archive).
    pub unpacked: bool,
    pub converted: bool,
}

/// Copies `opts.uri` into `opts.dest` (created if missing), then runs the runtime's
/// fetch-time conversion when one applies (`convert::plan`). `env` reads configuration
/// (credentials, endpoints, `SELDON_TF_PYTHON`).
pub async fn run(
    opts: &Options,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Summary, InitError> {
    let uri = opts.uri.as_str();
    let source = uri::parse(uri, env)?;
    let dest = opts.dest.as_path();
    std::fs::create_dir_all(dest).map_err(|e| InitError::io(uri, dest, e))?;
    let http = || {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .user_agent(concat!(
                "seldon-mesh-initializer/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|source| InitError::Request {
                uri: uri.to_owned(),
                source,
            })
    };
    let config_err = |reason: String| InitError::Config {
        uri: uri.to_owned(),
        reason,
    };
    let mut unpacked = false;
    let (files, bytes) = match &source {
        Source::Local(path) => local::copy(uri, path, dest)?,
        Source::Http(url) => {
            let (n, archived) = copy_http(&http()?, uri, url, dest).await?;
            unpacked = archived;
            (1, n)
        }
        Source::S3 { .. } | Source::Gcs { .. } | Source::Azure { .. } => {
            let remote = remote_store(&source, env).map_err(config_err)?;
            store::copy(
                remote.store.as_ref(),
                uri,
                &remote.base,
                remote.prefix,
                dest,
            )
            .await?
        }
    };
    let conversion = convert::plan(opts.implementation.as_deref(), dest);
    if let Some(conversion) = conversion {
        tracing::info!(dir = %dest.display(), ?conversion, script = conversion.script(), "converting the model at fetch time");
        let (conv, dir) = (opts.converter.clone(), dest.to_owned());
        let tf_python = env(convert::TF_PYTHON_ENV);
        let env = move |k: &str| (k == convert::TF_PYTHON_ENV).then(|| tf_python.clone())?;
        tokio::task::spawn_blocking(move || convert::run(conversion, &conv, &env, &dir))
            .await
            .map_err(|e| InitError::Conversion {
                what: conversion.what(),
                dir: dest.to_owned(),
                reason: e.to_string(),
            })??;
    }
    let converted = conversion.is_some();
    Ok(Summary {
        files,
        bytes,
        unpacked,
        converted,
    })
}

/// An object store source, built.
struct Remote<'a> {
    store: std::sync::Arc<dyn store::Store>,
    /// `scheme://bucket`, for the URIs of single objects in errors.
    base: String,
    prefix: &'a str,
}

/// The `object_store` options of a bucket source (`None` for local and HTTP sources).
fn store_options(
    source: &Source,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<Result<(store::Kind, store::StoreOptions), String>> {
    Some(match source {
        Source::Local(_) | Source::Http(_) => return None,
        Source::S3 { remote, bucket, .. } => {
            store::s3_options(remote, bucket, env).map(|o| (store::Kind::S3, o))
        }
        Source::Gcs { remote, bucket, .. } => {
            store::gcs_options(remote, bucket, env).map(|o| (store::Kind::Gcs, o))
        }
        Source::Azure {
            remote,
            account,
            container,
            ..
        } => store::azure_options(remote, account.as_deref(), container, env)
            .map(|o| (store::Kind::Azure, o)),
    })
}

fn remote_store<'a>(
    source: &'a Source,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Remote<'a>, String> {
    let (kind, options) = store_options(source, env).ok_or("not a bucket source")??;
    let (base, prefix) = match source {
        Source::S3 { bucket, prefix, .. } => (format!("s3://{bucket}"), prefix),
        Source::Gcs { bucket, prefix, .. } => (format!("gs://{bucket}"), prefix),
        Source::Azure {
            container, prefix, ..
        } => (format!("az://{container}"), prefix),
        Source::Local(_) | Source::Http(_) => return Err("not a bucket source".into()),
    };
    Ok(Remote {
        store: store::build(kind, &options)?,
        base,
        prefix,
    })
}

/// Where `uri`'s bytes come from, without secrets: the URI itself for local and HTTP
/// sources, and for buckets the URI plus the endpoint it resolves to in `env` (a custom S3
/// endpoint, a GCS or Azure emulator, the region). Local mode keys its model cache on it.
pub fn origin(uri: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, InitError> {
    let source = uri::parse(uri, env)?;
    match store_options(&source, env) {
        None => Ok(uri.to_owned()),
        Some(Ok((_, options))) => Ok(format!("{uri}\n{}", store::origin(&options))),
        Some(Err(reason)) => Err(InitError::Config {
            uri: uri.to_owned(),
            reason,
        }),
    }
}

/// One HTTP file into `dest`; archives are unpacked there. Returns (bytes, unpacked).
async fn copy_http(
    http: &reqwest::Client,
    uri: &str,
    url: &url::Url,
    dest: &Path,
) -> Result<(u64, bool), InitError> {
    let raw_name = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .unwrap_or_default();
    let name = percent_encoding::percent_decode_str(raw_name)
        .decode_utf8_lossy()
        .into_owned();
    let rel = paths::relative(&name).map_err(|reason| InitError::UnsafeName {
        uri: uri.to_owned(),
        name: name.clone(),
        reason,
    })?;
    let Some(kind) = archive::ArchiveKind::from_name(&name) else {
        let bytes =
            fetch::to_file(uri, http.get(url.clone()), &dest.join(rel), fetch::shorten).await?;
        return Ok((bytes, false));
    };
    let scratch = dest.join(".seldon-mesh-download");
    let file = scratch.join(&rel);
    let bytes = fetch::to_file(uri, http.get(url.clone()), &file, fetch::shorten).await?;
    let (f, d) = (file.clone(), dest.to_owned());
    let unpacked = tokio::task::spawn_blocking(move || archive::unpack(kind, &f, &d))
        .await
        .unwrap_or_else(|e| Err(archive::ArchiveError::Read(e.to_string())));
    std::fs::remove_dir_all(&scratch).map_err(|e| InitError::io(uri, &scratch, e))?;
    unpacked.map_err(|source| InitError::Archive {
        uri: uri.to_owned(),
        path: PathBuf::from(&name),
        source,
    })?;
    Ok((bytes, true))
}
