//! Copies a model URI (`file://`, `http(s)://`, `s3://`, `gs://`) into the model directory, as Seldon's storage initializer does.
//!
//! ```text
//! modelUri ──uri::parse──► Source ──┬─ Local ─► local::copy
//!   (pure, env lookup)              ├─ Http ──► fetch::to_file ─► archive::unpack (.tar.gz/.tgz/.tar/.zip)
//!                                   ├─ S3 ────► s3::S3 (ListObjectsV2 + GET, sigv4) ─► fetch::to_file
//!                                   └─ Gcs ───► gcs::copy (JSON API list + alt=media) ─► fetch::to_file
//!                          then, for SKLEARN_SERVER: sklearn::convert (model.joblib → model.onnx)
//! ```

pub mod archive;
mod error;
pub mod fetch;
pub mod gcs;
pub mod local;
pub mod paths;
pub mod s3;
pub mod sklearn;
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
    /// The prepackaged server the model is for (`SKLEARN_SERVER` triggers the conversion).
    pub implementation: Option<String>,
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

/// Copies `opts.uri` into `opts.dest` (created if missing), then runs the SKLEARN_SERVER
/// conversion when it applies. `env` reads configuration (credentials, endpoints).
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
        Source::S3 {
            remote,
            bucket,
            prefix,
        } => {
            let config = s3::config_from_env(remote, env).map_err(config_err)?;
            s3::S3::new(config, http()?)
                .copy(uri, bucket, prefix, dest)
                .await?
        }
        Source::Gcs { bucket, prefix } => {
            let endpoint = gcs::endpoint_from_env(env).map_err(config_err)?;
            gcs::copy(&http()?, &endpoint, uri, bucket, prefix, dest).await?
        }
    };
    let converted = sklearn::needs_conversion(opts.implementation.as_deref(), dest);
    if converted {
        tracing::info!(dir = %dest.display(), script = %opts.converter.script.display(), "converting model.joblib to ONNX");
        let (conv, dir) = (opts.converter.clone(), dest.to_owned());
        tokio::task::spawn_blocking(move || sklearn::convert(&conv, &dir))
            .await
            .map_err(|e| InitError::Convert {
                dir: dest.to_owned(),
                reason: e.to_string(),
            })??;
    }
    Ok(Summary {
        files,
        bytes,
        unpacked,
        converted,
    })
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
        .map_err(|e| e.to_string())
        .and_then(|r| r);
    std::fs::remove_dir_all(&scratch).map_err(|e| InitError::io(uri, &scratch, e))?;
    unpacked.map_err(|reason| InitError::Archive {
        uri: uri.to_owned(),
        path: PathBuf::from(&name),
        reason,
    })?;
    Ok((bytes, true))
}
