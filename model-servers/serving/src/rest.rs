//! REST edge: Seldon v1 and Open Inference Protocol v2 routes on one axum router.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use seldon_protocol::v1::{Feedback, SeldonMessage, SeldonMessageList};
use seldon_protocol::v2::{self, binary};

use crate::api_error::{ApiError, ServeError};
use crate::offload::on_pool;
use crate::service::{Hook, Service};

/// Router state: the service and the body limit (for the 413 message).
#[derive(Debug, Clone)]
pub struct AppState {
    pub service: Service,
    pub max_body_bytes: usize,
}

/// All REST routes.
pub fn app(service: Service, max_body_bytes: usize) -> Router {
    let state = AppState {
        service,
        max_body_bytes,
    };
    Router::new()
        // Seldon v1 (the wrapper's routes and aliases)
        .route("/predict", get(predict).post(predict))
        .route("/api/v1.0/predictions", get(predict).post(predict))
        .route("/api/v0.1/predictions", get(predict).post(predict))
        .route(
            "/transform-input",
            get(transform_input).post(transform_input),
        )
        .route(
            "/transform-output",
            get(transform_output).post(transform_output),
        )
        .route("/route", get(route).post(route))
        .route("/aggregate", get(aggregate).post(aggregate))
        .route("/send-feedback", get(feedback).post(feedback))
        .route("/api/v1.0/feedback", get(feedback).post(feedback))
        .route("/health/ping", get(|| async { "pong" }))
        .route("/health/status", get(health_status))
        .route("/api/v1.0/health/status", get(health_status))
        .route("/metadata", get(metadata_v1))
        .route("/api/v1.0/metadata", get(metadata_v1))
        // Open Inference Protocol v2
        .route("/v2", get(server_metadata))
        .route(
            "/v2/health/live",
            get(|| async { axum::Json(v2::ServerLive { live: true }) }),
        )
        .route("/v2/health/ready", get(server_ready))
        .route("/v2/models/{model}", get(model_metadata))
        .route(
            "/v2/models/{model}/versions/{version}",
            get(model_metadata_version),
        )
        .route("/v2/models/{model}/ready", get(model_ready))
        .route(
            "/v2/models/{model}/versions/{version}/ready",
            get(model_ready_version),
        )
        .route("/v2/models/{model}/infer", post(infer))
        .route(
            "/v2/models/{model}/versions/{version}/infer",
            post(infer_version),
        )
        // Unknown paths and wrong methods answer JSON like every other error (axum's own
        // answers are empty bodies).
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    let path = uri.path().to_string();
    ApiError::for_path(
        &path.clone(),
        ServeError::NoRoute {
            method: method.to_string(),
            path,
        },
    )
}

async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    let path = uri.path().to_string();
    ApiError::for_path(
        &path.clone(),
        ServeError::MethodNotAllowed {
            method: method.to_string(),
            path,
        },
    )
}

fn body_error(state: &AppState, e: BytesRejection) -> ServeError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ServeError::TooLarge {
            limit: state.max_body_bytes,
        }
    } else {
        ServeError::Body(with_cause(&e))
    }
}

/// axum's rejection text plus the innermost cause, which says what was wrong with the bytes
/// (hyper's "Invalid chunk size line" for a broken chunked body) where axum's own text only
/// says that reading failed.
fn with_cause(e: &BytesRejection) -> String {
    let mut text = e.body_text();
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut innermost = None;
    while let Some(c) = cause {
        innermost = Some(c);
        cause = c.source();
    }
    if let Some(c) = innermost.map(ToString::to_string)
        && !text.contains(&c)
    {
        text = format!("{text}: {c}");
    }
    text
}

/// The body, or why there is none usable (413 over the limit, 400 empty).
fn body(state: &AppState, body: Result<Bytes, BytesRejection>) -> Result<Bytes, ServeError> {
    let bytes = body.map_err(|e| body_error(state, e))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ServeError::EmptyBody);
    }
    not_an_object(&bytes)?;
    Ok(bytes)
}

/// A body that starts as a JSON value other than an object is refused by its first byte (no
/// second pass over a large body); anything else is left to the decoder's own errors.
fn not_an_object(bytes: &[u8]) -> Result<(), ServeError> {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    let rest = &bytes[start.unwrap_or(bytes.len())..];
    let found = match rest.first() {
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b'-' | b'0'..=b'9') => "a number",
        _ if rest.starts_with(b"true") || rest.starts_with(b"false") => "a boolean",
        _ if rest.starts_with(b"null") => "null",
        _ => return Ok(()),
    };
    Err(ServeError::NotAnObject(found))
}

/// v1 body: the JSON body, or the wrapper's `?json=` query form.
fn v1_body(
    state: &AppState,
    query: &HashMap<String, String>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Bytes, ServeError> {
    match (query.get("json"), &raw) {
        (Some(q), Ok(b)) if b.is_empty() => {
            not_an_object(q.as_bytes())?;
            Ok(Bytes::from(q.clone().into_bytes()))
        }
        _ => body(state, raw),
    }
}

fn json(bytes: Vec<u8>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
}

fn v1_reply(msg: SeldonMessage) -> Result<Response, ApiError> {
    Ok(json(msg.to_vec().map_err(ApiError::v1)?))
}

async fn call(
    state: AppState,
    hook: Hook,
    query: HashMap<String, String>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = v1_body(&state, &query, raw).map_err(ApiError::v1)?;
    let size = bytes.len();
    let work = async move {
        let msg = SeldonMessage::from_slice(&bytes)?;
        drop(bytes);
        let out = state.service.call_v1(hook, msg).await?;
        Ok::<_, ServeError>(out.to_vec()?)
    };
    Ok(json(on_pool(size, work).await.map_err(ApiError::v1)?))
}

async fn predict(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    call(s, Hook::Predict, q, raw).await
}

async fn transform_input(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    call(s, Hook::TransformInput, q, raw).await
}

async fn transform_output(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    call(s, Hook::TransformOutput, q, raw).await
}

async fn route(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    call(s, Hook::Route, q, raw).await
}

async fn aggregate(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // a JSON array of messages, or `{"seldonMessages": [...]}`: no object check here
    let bytes = match (q.get("json"), raw) {
        (Some(q), Ok(b)) if b.is_empty() => Bytes::from(q.clone().into_bytes()),
        (_, raw) => raw.map_err(|e| ApiError::v1(body_error(&s, e)))?,
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::v1(ServeError::EmptyBody));
    }
    let size = bytes.len();
    let work = async move {
        let list = SeldonMessageList::from_slice(&bytes)?;
        drop(bytes);
        let out = s.service.aggregate_v1(list).await?;
        Ok::<_, ServeError>(out.to_vec()?)
    };
    Ok(json(on_pool(size, work).await.map_err(ApiError::v1)?))
}

async fn feedback(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = v1_body(&s, &q, raw).map_err(ApiError::v1)?;
    let size = bytes.len();
    let work = async move {
        let fb = Feedback::from_slice(&bytes)?;
        drop(bytes);
        let out = s.service.feedback_v1(fb).await?;
        Ok::<_, ServeError>(out.to_vec()?)
    };
    Ok(json(on_pool(size, work).await.map_err(ApiError::v1)?))
}

async fn health_status(State(s): State<AppState>) -> Result<Response, ApiError> {
    v1_reply(s.service.health_v1().await.map_err(ApiError::v1)?)
}

async fn metadata_v1(State(s): State<AppState>) -> Response {
    axum::Json(s.service.metadata_v1()).into_response()
}

async fn server_metadata() -> Response {
    axum::Json(v2::ServerMetadata {
        name: "seldon-serving".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        extensions: vec![binary::EXTENSION.into()],
    })
    .into_response()
}

async fn server_ready(State(s): State<AppState>) -> Response {
    let ready = s.service.model.ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(v2::ServerReady { ready })).into_response()
}

async fn model_metadata(
    State(s): State<AppState>,
    Path(model): Path<String>,
) -> Result<Response, ApiError> {
    Ok(axum::Json(s.service.metadata_v2(&model, None).map_err(ApiError::v2)?).into_response())
}

async fn model_metadata_version(
    State(s): State<AppState>,
    Path((model, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(axum::Json(
        s.service
            .metadata_v2(&model, Some(&version))
            .map_err(ApiError::v2)?,
    )
    .into_response())
}

fn ready_reply(s: &AppState, model: String, version: Option<&str>) -> Result<Response, ApiError> {
    let ready = s.service.ready_v2(&model, version).map_err(ApiError::v2)?;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((status, axum::Json(v2::ModelReady { name: model, ready })).into_response())
}

async fn model_ready(
    State(s): State<AppState>,
    Path(model): Path<String>,
) -> Result<Response, ApiError> {
    ready_reply(&s, model, None)
}

async fn model_ready_version(
    State(s): State<AppState>,
    Path((model, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    ready_reply(&s, model, Some(&version))
}

async fn infer_inner(
    s: AppState,
    model: String,
    version: Option<String>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ServeError> {
    // The model is checked before the body so an unknown model is a 404 whatever was sent.
    s.service.check_model(&model, version.as_deref())?;
    let bytes = body(&s, raw)?;
    let header_length = headers
        .get(binary::HEADER_CONTENT_LENGTH)
        .map(|v| binary::parse_header_length(v.as_bytes()))
        .transpose()?;
    let size = bytes.len();
    on_pool(size, async move {
        let request = binary::decode_request(&bytes, header_length)?;
        drop(bytes);
        let wants_binary = crate::v2::wants_binary(&request);
        let response = s
            .service
            .infer_v2(&model, version.as_deref(), request)
            .await?;
        if !wants_binary {
            return Ok(json(response.to_vec()?));
        }
        let encoded = binary::encode_response(&response)?;
        Ok((
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                ),
                (
                    header::HeaderName::from_static(binary::HEADER_CONTENT_LENGTH),
                    HeaderValue::from(encoded.header_length),
                ),
            ],
            encoded.body,
        )
            .into_response())
    })
    .await
}

async fn infer(
    State(s): State<AppState>,
    Path(model): Path<String>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    infer_inner(s, model, None, headers, raw)
        .await
        .map_err(ApiError::v2)
}

async fn infer_version(
    State(s): State<AppState>,
    Path((model, version)): Path<(String, String)>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    infer_inner(s, model, Some(version), headers, raw)
        .await
        .map_err(ApiError::v2)
}
