//! What a model (or the conversion into its inputs) reports as failed.

/// An error from a [`crate::Model`] hook or from decoding a payload for it.
///
/// The server maps each variant to a status and body in one place (`api_error.rs`), as
/// Seldon's Python wrapper does: `BadData`/`NotImplemented` → 400
/// `MICROSERVICE_BAD_DATA`, `Internal` → 500 `MICROSERVICE_INTERNAL_ERROR`,
/// `Status` → the given HTTP status (a user exception with its own `status_code`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The input is unusable: wrong feature count, dtype, shape, missing data.
    #[error("{0}")]
    BadData(String),
    /// The model does not implement this hook (Seldon: `SeldonNotImplementedError`, 400).
    #[error("{0} is not implemented by this model")]
    NotImplemented(&'static str),
    /// The model failed (Seldon: an unhandled exception, 500).
    #[error("{0}")]
    Internal(String),
    /// A user error with its own HTTP status and reason (Seldon's
    /// `SeldonMicroserviceException(message, status_code, reason)`).
    #[error("{message}")]
    Status {
        http_status: u16,
        reason: String,
        message: String,
    },
    /// The model could not be loaded (startup only, never served).
    #[error("loading the model failed: {0}")]
    Load(String),
}

impl ModelError {
    /// Shorthand for [`ModelError::BadData`].
    pub fn bad_data(msg: impl Into<String>) -> Self {
        ModelError::BadData(msg.into())
    }

    /// Shorthand for [`ModelError::Internal`].
    pub fn internal(msg: impl Into<String>) -> Self {
        ModelError::Internal(msg.into())
    }
}
