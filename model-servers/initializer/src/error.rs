//! What can go wrong while fetching a model; every message starts with the URI.

use std::path::PathBuf;

/// Why the model could not be copied.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{uri}: not a model URI we can copy from: {reason}")]
    BadUri { uri: String, reason: String },
    #[error("{uri}: bad storage configuration: {reason}")]
    Config { uri: String, reason: String },
    #[error("{uri}: request failed: {source}")]
    Request {
        uri: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{uri}: HTTP {status}: {reason}")]
    Status {
        uri: String,
        status: u16,
        reason: String,
    },
    /// A storage service (S3, GCS, Azure) refused or failed a request.
    #[error("{uri}: {reason}")]
    Store { uri: String, reason: String },
    #[error("{uri}: nothing there (no object, file or prefix with that name)")]
    NotFound { uri: String },
    #[error("{uri}: unexpected listing response: {reason}")]
    Listing { uri: String, reason: String },
    #[error("{uri}: refusing object {name:?}: {reason}")]
    UnsafeName {
        uri: String,
        name: String,
        reason: &'static str,
    },
    #[error("{uri}: {}: {source}", path.display())]
    Io {
        uri: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{uri}: cannot unpack {}: {source}", path.display())]
    Archive {
        uri: String,
        path: PathBuf,
        #[source]
        source: crate::archive::ArchiveError,
    },
    #[error("sklearn → ONNX conversion of {}: {reason}", dir.display())]
    Convert { dir: PathBuf, reason: String },
    /// Another runtime's fetch-time conversion (`convert.rs`) failed.
    #[error("{what} of {}: {reason}", dir.display())]
    Conversion {
        what: &'static str,
        dir: PathBuf,
        reason: String,
    },
}

impl InitError {
    pub(crate) fn io(uri: &str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            uri: uri.to_owned(),
            path: path.into(),
            source,
        }
    }
}
