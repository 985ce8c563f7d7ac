//! The one place where a failure becomes an HTTP status + JSON body (per protocol) or a
//! gRPC status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use seldon_protocol::ProtocolError;

use crate::error::ModelError;

/// Seldon's reason for a request the model cannot use.
pub const BAD_DATA: &str = "MICROSERVICE_BAD_DATA";
/// Seldon's reason for a model failure.
pub const INTERNAL_ERROR: &str = "MICROSERVICE_INTERNAL_ERROR";
/// Reason for a body over the configured limit.
pub const TOO_LARGE: &str = "MICROSERVICE_REQUEST_TOO_LARGE";
/// Reason for a v2 call naming another model.
pub const UNKNOWN_MODEL: &str = "MICROSERVICE_UNKNOWN_MODEL";
/// Reason for a path no route serves.
pub const NOT_FOUND: &str = "NOT_FOUND";
/// Reason for a served path called with the wrong method.
pub const METHOD_NOT_ALLOWED: &str = "METHOD_NOT_ALLOWED";

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The body is not the protocol's JSON (malformed, wrong types, two payload forms).
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("the request body is empty")]
    EmptyBody,
    /// Valid JSON but not an object (serde would read an array as a struct's fields).
    #[error("the request body must be a JSON object, found {0}")]
    NotAnObject(&'static str),
    #[error("the request body exceeds the {limit}-byte limit")]
    TooLarge { limit: usize },
    #[error("reading the request body failed: {0}")]
    Body(String),
    #[error("model `{0}` is not served here")]
    UnknownModel(String),
    /// No route serves the path (axum's fallback, which would answer an empty 404).
    #[error(
        "no route for {method} {path}: this server serves /predict, /api/v1.0/predictions, /api/v1.0/feedback, /health/ping, /health/status, /metadata and /v2/..."
    )]
    NoRoute { method: String, path: String },
    /// The path is served, not with this method (axum would answer an empty 405).
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    /// Decoding or encoding on the blocking pool did not finish (it panicked or the runtime
    /// is shutting down).
    #[error("decoding the request failed: {0}")]
    Worker(String),
}

impl ServeError {
    /// HTTP status and Seldon reason.
    pub fn status(&self) -> (StatusCode, &str) {
        match self {
            ServeError::Model(ModelError::BadData(_) | ModelError::NotImplemented(_))
            | ServeError::Protocol(_)
            | ServeError::EmptyBody
            | ServeError::NotAnObject(_)
            | ServeError::Body(_) => (StatusCode::BAD_REQUEST, BAD_DATA),
            ServeError::Model(ModelError::Status {
                http_status,
                reason,
                ..
            }) => (
                StatusCode::from_u16(*http_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                reason.as_str(),
            ),
            ServeError::Model(_) | ServeError::Worker(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_ERROR)
            }
            ServeError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE),
            ServeError::UnknownModel(_) => (StatusCode::NOT_FOUND, UNKNOWN_MODEL),
            ServeError::NoRoute { .. } => (StatusCode::NOT_FOUND, NOT_FOUND),
            ServeError::MethodNotAllowed { .. } => {
                (StatusCode::METHOD_NOT_ALLOWED, METHOD_NOT_ALLOWED)
            }
        }
    }
}

/// Which error body shape the caller speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `{"status":{"status":1,"info":..,"code":-1,"reason":..}}` (Seldon's wrapper).
    V1,
    /// `{"error":".."}` (Open Inference Protocol).
    V2,
}

/// A [`ServeError`] on its way to a REST client.
#[derive(Debug)]
pub struct ApiError {
    pub api: Api,
    pub error: ServeError,
}

impl ApiError {
    pub fn v1(error: impl Into<ServeError>) -> Self {
        ApiError {
            api: Api::V1,
            error: error.into(),
        }
    }

    pub fn v2(error: impl Into<ServeError>) -> Self {
        ApiError {
            api: Api::V2,
            error: error.into(),
        }
    }

    /// In the shape of the protocol `path` belongs to: v2 under `/v2`, v1 elsewhere.
    pub fn for_path(path: &str, error: impl Into<ServeError>) -> Self {
        if path == "/v2" || path.starts_with("/v2/") {
            Self::v2(error)
        } else {
            Self::v1(error)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, reason) = self.error.status();
        let info = self.error.to_string();
        if status.is_server_error() {
            tracing::error!(error = %info, "request failed");
        } else {
            tracing::debug!(error = %info, %status, "request rejected");
        }
        let body = match self.api {
            Api::V1 => {
                serde_json::json!({"status": {"status": 1, "info": info, "code": -1, "reason": reason}})
            }
            Api::V2 => serde_json::json!({"error": info}),
        };
        let mut response = (status, axum::Json(body)).into_response();
        if matches!(self.error, ServeError::Body(_)) {
            // The body could not be read (a broken chunked encoding, a reset): hyper closes
            // the connection after this answer, so the client is told not to reuse it.
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

impl From<ServeError> for tonic::Status {
    fn from(e: ServeError) -> Self {
        let msg = e.to_string();
        match e {
            ServeError::Model(ModelError::NotImplemented(_)) => tonic::Status::unimplemented(msg),
            ServeError::UnknownModel(_) => tonic::Status::not_found(msg),
            ServeError::TooLarge { .. } => tonic::Status::resource_exhausted(msg),
            other => match other.status().0 {
                s if s.is_client_error() => tonic::Status::invalid_argument(msg),
                _ => tonic::Status::internal(msg),
            },
        }
    }
}
