//! A Seldon v1 (and v2) REST node whose behaviour is chosen by flags; end-to-end tests run
//! many of them behind Envoy and read `/_calls` to see what each node received.
//!
//! It also serves the same behaviours over gRPC on the same port (h2c): Seldon's
//! `seldon.protos.{Model,Transformer,OutputTransformer,Router,Combiner}` methods and OIP v2
//! `ModelInfer`. The message is turned into its REST JSON (`seldon_protocol`), the REST handler
//! runs, and its answer goes back framed with `grpc-status: 0` in the trailers; a failing
//! answer (mode fail) is a trailers-only `grpc-status` (400 → 3 INVALID_ARGUMENT, else 13
//! INTERNAL) with the failure body as `grpc-message`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Parser;
use seldon_e2e::payload::{self, PayloadError};
use seldon_e2e::{Call, Mode};
use serde_json::{Value, json};

/// Largest body the server reads (bigger than any Envoy buffer limit the tests use).
const MAX_BODY: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, Parser)]
#[command(about = "Seldon v1/v2 REST test node")]
struct Args {
    /// Node name: added to `meta.tags` of every response.
    #[arg(long, env = "SELDON_TESTMODEL_NAME", default_value = "testmodel")]
    name: String,
    /// Port on --host; 0 picks a free one (printed as `listening on <addr>`).
    #[arg(long, env = "SELDON_TESTMODEL_PORT", default_value_t = 9000)]
    port: u16,
    #[arg(long, env = "SELDON_TESTMODEL_HOST", default_value = "127.0.0.1")]
    host: String,
    #[arg(long, env = "SELDON_TESTMODEL_MODE", value_enum, default_value_t = Mode::Echo)]
    mode: Mode,
    /// Added to every number of `data.ndarray` (mode add) and of FP32/FP64 v2 inputs.
    #[arg(long, env = "SELDON_TESTMODEL_ADD", default_value_t = 0.0)]
    add: f64,
    /// What `/route` answers, as `{"data":{"ndarray":[[n]]}}`.
    #[arg(
        long,
        env = "SELDON_TESTMODEL_ROUTE",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    route: i32,
    /// Status of every POST in mode fail.
    #[arg(long, env = "SELDON_TESTMODEL_FAIL_STATUS", default_value_t = 500)]
    fail_status: u16,
    /// Body of every POST in mode fail; default a Seldon error JSON naming the node.
    #[arg(long, env = "SELDON_TESTMODEL_FAIL_BODY")]
    fail_body: Option<String>,
    /// Mode fail: answer a JSON object of exactly this many bytes (`{"pad":"xxx…"}`) instead
    /// of --fail-body (bodies too big for a command line).
    #[arg(long, env = "SELDON_TESTMODEL_FAIL_BODY_BYTES")]
    fail_body_bytes: Option<usize>,
    /// Delay before every POST answer (any mode; mode slow defaults it to 1000).
    #[arg(long, env = "SELDON_TESTMODEL_DELAY_MS")]
    delay_ms: Option<u64>,
    /// Mode fail: fail only requests whose body contains this text; the others are echoed
    /// (so a test can send a good request after a bad one to the same node).
    #[arg(long, env = "SELDON_TESTMODEL_FAIL_WHEN")]
    fail_when: Option<String>,
}

#[derive(Debug)]
struct AppState {
    args: Args,
    calls: Mutex<Vec<Call>>,
    feedback: Mutex<Vec<Value>>,
}

type Shared = Arc<AppState>;

/// The one place errors become responses: 400 with a Seldon error body.
#[derive(Debug)]
struct ApiError(PayloadError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = payload::seldon_error(400, &self.0.to_string(), "MICROSERVICE_BAD_DATA");
        (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
    }
}

impl From<PayloadError> for ApiError {
    fn from(e: PayloadError) -> Self {
        Self(e)
    }
}

fn json_response(v: Value) -> Response {
    axum::Json(v).into_response()
}

/// Delay (mode slow / --delay-ms), then fail (mode fail) or run `f`.
async fn answer(
    state: &AppState,
    request: &[u8],
    f: impl FnOnce() -> Result<Value, ApiError>,
) -> Result<Response, ApiError> {
    let delay = match (state.args.delay_ms, state.args.mode) {
        (Some(ms), _) => ms,
        (None, Mode::Slow) => 1000,
        (None, _) => 0,
    };
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let fails = match &state.args.fail_when {
        Some(marker) => contains(request, marker.as_bytes()),
        None => true,
    };
    if state.args.mode == Mode::Fail && fails {
        let status = StatusCode::from_u16(state.args.fail_status)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = match (&state.args.fail_body, state.args.fail_body_bytes) {
            (_, Some(n)) => {
                let pad = n.saturating_sub(r#"{"pad":""}"#.len());
                format!(r#"{{"pad":"{}"}}"#, "x".repeat(pad))
            }
            (Some(b), None) => b.clone(),
            (None, None) => payload::seldon_error(
                state.args.fail_status,
                &format!("{} failed", state.args.name),
                "MICROSERVICE_INTERNAL_ERROR",
            )
            .to_string(),
        };
        return Ok((status, [("content-type", "application/json")], body).into_response());
    }
    f().map(json_response)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// `/predict`, `/transform-input`, `/transform-output`: echo, or add in mode add/v2-add.
async fn message(State(s): State<Shared>, body: Bytes) -> Result<Response, ApiError> {
    answer(&s, &body, || {
        let mut msg = payload::parse(&body)?;
        if matches!(s.args.mode, Mode::Add | Mode::V2Add) {
            payload::add_to_message(&mut msg, s.args.add);
        }
        payload::tag(&mut msg, &s.args.name);
        Ok(msg)
    })
    .await
}

async fn route(State(s): State<Shared>, body: Bytes) -> Result<Response, ApiError> {
    answer(&s, &body, || {
        let req = payload::parse(&body)?;
        let mut out = payload::route_answer(s.args.route);
        if let Some(meta) = req.get("meta") {
            out["meta"] = meta.clone();
        }
        payload::tag(&mut out, &s.args.name);
        Ok(out)
    })
    .await
}

async fn aggregate(State(s): State<Shared>, body: Bytes) -> Result<Response, ApiError> {
    answer(&s, &body, || {
        let msgs = payload::aggregate_inputs(payload::parse(&body)?)?;
        let mut out = payload::aggregate(&msgs)?;
        payload::tag(&mut out, &s.args.name);
        Ok(out)
    })
    .await
}

async fn send_feedback(State(s): State<Shared>, body: Bytes) -> Result<Response, ApiError> {
    answer(&s, &body, || {
        let fb = payload::parse(&body)?;
        if let Ok(mut all) = s.feedback.lock() {
            all.push(fb);
        }
        let mut out = json!({ "data": { "ndarray": [] } });
        payload::tag(&mut out, &s.args.name);
        Ok(out)
    })
    .await
}

async fn v2_infer(
    State(s): State<Shared>,
    Path(model): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    answer(&s, &body, || {
        let req = payload::parse(&body)?;
        Ok(payload::v2_infer(&model, &s.args.name, &req, s.args.add)?)
    })
    .await
}

/// The gRPC methods served, and what each runs.
#[derive(Clone, Copy)]
enum GrpcMethod {
    Message,
    Route,
    Aggregate,
    Feedback,
    ModelInfer,
}

/// One gRPC call: unframe, to JSON, the REST handler, back to a framed message.
async fn grpc_call(State(s): State<Shared>, uri: Uri, body: Bytes) -> Response {
    use seldon_protocol::{grpc, grpc_v2};
    let method = match uri.path() {
        "/seldon.protos.Model/Predict"
        | "/seldon.protos.Transformer/TransformInput"
        | "/seldon.protos.OutputTransformer/TransformOutput" => GrpcMethod::Message,
        "/seldon.protos.Router/Route" => GrpcMethod::Route,
        "/seldon.protos.Combiner/Aggregate" => GrpcMethod::Aggregate,
        "/seldon.protos.Model/SendFeedback" | "/seldon.protos.Router/SendFeedback" => {
            GrpcMethod::Feedback
        }
        "/inference.GRPCInferenceService/ModelInfer" => GrpcMethod::ModelInfer,
        _ => return grpc_error(12, "method not served by testmodel"),
    };
    let pb = match grpc::unframe(&body) {
        Ok(pb) => pb,
        Err(e) => return grpc_error(3, &e.to_string()),
    };
    let json = match method {
        GrpcMethod::Message | GrpcMethod::Route => grpc::seldon_message_to_json(pb),
        GrpcMethod::Aggregate => grpc::seldon_message_list_to_json(pb),
        GrpcMethod::Feedback => grpc::feedback_to_json(pb),
        GrpcMethod::ModelInfer => grpc_v2::infer_request_to_json(pb).map(|r| r.json),
    };
    let json = match json {
        Ok(j) => Bytes::from(j),
        Err(e) => return grpc_error(3, &e.to_string()),
    };
    let model = match method {
        GrpcMethod::ModelInfer => grpc_v2::infer_request_to_json(pb)
            .map(|r| r.model_name)
            .unwrap_or_default(),
        _ => String::new(),
    };
    let st = State(Arc::clone(&s));
    let rest = match method {
        GrpcMethod::Message => message(st, json).await,
        GrpcMethod::Route => route(st, json).await,
        GrpcMethod::Aggregate => aggregate(st, json).await,
        GrpcMethod::Feedback => send_feedback(st, json).await,
        GrpcMethod::ModelInfer => v2_infer(st, Path(model), json).await,
    };
    let rest = rest.unwrap_or_else(IntoResponse::into_response);
    let status = rest.status();
    let body = match to_bytes(rest.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return grpc_error(13, &e.to_string()),
    };
    if !status.is_success() {
        let code = if status == StatusCode::BAD_REQUEST {
            3
        } else {
            13
        };
        return grpc_error(code, &String::from_utf8_lossy(&body));
    }
    let pb = match method {
        GrpcMethod::ModelInfer => grpc_v2::infer_response_from_json(&body),
        _ => grpc::seldon_message_from_json(&body),
    };
    match pb {
        Ok(pb) => grpc_ok(grpc::frame(&pb)),
        Err(e) => grpc_error(13, &e.to_string()),
    }
}

/// A gRPC answer: the frame, then `grpc-status: 0` as a trailer.
fn grpc_ok(frame: Vec<u8>) -> Response {
    use hyper::body::Frame;
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", axum::http::HeaderValue::from_static("0"));
    let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = vec![
        Ok(Frame::data(Bytes::from(frame))),
        Ok(Frame::trailers(trailers)),
    ];
    let body = http_body_util::StreamBody::new(futures::stream::iter(frames));
    (
        StatusCode::OK,
        [("content-type", "application/grpc")],
        Body::new(body),
    )
        .into_response()
}

/// A trailers-only gRPC error (status and message in the headers, no body).
fn grpc_error(code: u32, message: &str) -> Response {
    let encoded: String = message
        .bytes()
        .map(|b| {
            if (0x20..=0x7e).contains(&b) && b != b'%' {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    (
        StatusCode::OK,
        [
            ("content-type", "application/grpc".to_string()),
            ("grpc-status", code.to_string()),
            ("grpc-message", encoded),
        ],
    )
        .into_response()
}

async fn metadata(State(s): State<Shared>) -> Response {
    json_response(json!({
        "name": s.args.name,
        "versions": ["testmodel/v1"],
        "platform": "seldon-mesh-testmodel",
        "inputs": [{"messagetype": "tensor", "schema": {"names": []}}],
        "outputs": [{"messagetype": "tensor", "schema": {"names": []}}],
        "custom": {"mode": format!("{:?}", s.args.mode)},
    }))
}

/// `/health/status`: what Seldon's Python wrapper answers for a model without its own
/// `health_status` (`{"strData": "healthy"}`), tagged with the node's name.
async fn health_status(State(s): State<Shared>) -> Response {
    let mut out = json!({ "strData": "healthy" });
    payload::tag(&mut out, &s.args.name);
    json_response(out)
}

/// `GET /v2/models/{model}`: Open Inference Protocol model metadata; the tensor names say which
/// node answered (`<node>-in`, `<node>-out`).
async fn v2_metadata(State(s): State<Shared>, Path(model): Path<String>) -> Response {
    let name = &s.args.name;
    json_response(json!({
        "name": model,
        "versions": ["1"],
        "platform": "seldon-mesh-testmodel",
        "inputs": [{"name": format!("{name}-in"), "datatype": "FP32", "shape": [-1, -1]}],
        "outputs": [{"name": format!("{name}-out"), "datatype": "FP32", "shape": [-1, -1]}],
    }))
}

async fn calls(State(s): State<Shared>) -> Response {
    let calls = s.calls.lock().map(|c| c.clone()).unwrap_or_default();
    json_response(serde_json::to_value(calls).unwrap_or_default())
}

/// `DELETE /_calls`: forget the calls so far (the harness does it once the node is ready,
/// so its health pings never show up).
async fn clear_calls(State(s): State<Shared>) -> StatusCode {
    if let Ok(mut all) = s.calls.lock() {
        all.clear();
    }
    StatusCode::NO_CONTENT
}

async fn feedback(State(s): State<Shared>) -> Response {
    let fb = s.feedback.lock().map(|c| c.clone()).unwrap_or_default();
    json_response(Value::Array(fb))
}

/// Records every request except the inspection endpoints (`/_…`), body included.
async fn record(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if path.starts_with("/_") {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return (StatusCode::PAYLOAD_TOO_LARGE, e.to_string()).into_response(),
    };
    let call = call_of(&parts.method, &parts.uri, &parts.headers, &bytes);
    if let Ok(mut all) = s.calls.lock() {
        all.push(call);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn call_of(method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Call {
    Call {
        method: method.to_string(),
        path: uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(body).into_owned(),
    }
}

fn app(state: Shared) -> Router {
    Router::new()
        .route("/predict", post(message))
        .route("/transform-input", post(message))
        .route("/transform-output", post(message))
        .route("/route", post(route))
        .route("/aggregate", post(aggregate))
        .route("/send-feedback", post(send_feedback))
        .route("/health/ping", get(|| async { "pong" }))
        .route("/health/status", get(health_status))
        .route("/metadata", get(metadata))
        .route("/v2/models/{model}", get(v2_metadata))
        .route("/v2/models/{model}/infer", post(v2_infer))
        .route(
            "/v2/models/{model}/ready",
            get(|Path(model): Path<String>| async move {
                json_response(json!({"name": model, "ready": true}))
            }),
        )
        .route(
            "/v2/health/ready",
            get(|| async { json_response(json!({"ready": true})) }),
        )
        .route(
            "/v2/health/live",
            get(|| async { json_response(json!({"live": true})) }),
        )
        .route("/seldon.protos.Model/Predict", post(grpc_call))
        .route("/seldon.protos.Transformer/TransformInput", post(grpc_call))
        .route(
            "/seldon.protos.OutputTransformer/TransformOutput",
            post(grpc_call),
        )
        .route("/seldon.protos.Router/Route", post(grpc_call))
        .route("/seldon.protos.Combiner/Aggregate", post(grpc_call))
        .route("/seldon.protos.Model/SendFeedback", post(grpc_call))
        .route("/seldon.protos.Router/SendFeedback", post(grpc_call))
        .route(
            "/inference.GRPCInferenceService/ModelInfer",
            post(grpc_call),
        )
        // Not served: UNIMPLEMENTED, as a real gRPC server answers an unknown method (the
        // filter's readiness probe of a seldon gRPC node).
        .route("/seldon.protos.Model/Metadata", post(grpc_call))
        .route("/_calls", get(calls).delete(clear_calls))
        .route("/_feedback", get(feedback))
        .layer(middleware::from_fn_with_state(state.clone(), record))
        .with_state(state)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let addr: SocketAddr = format!("{}:{}", args.host, args.port).parse()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let state = Arc::new(AppState {
        args,
        calls: Mutex::new(Vec::new()),
        feedback: Mutex::new(Vec::new()),
    });
    // The harness reads this line to learn the port; println! flushes at the newline.
    println!("listening on {bound}");
    axum::serve(listener, app(state)).await?;
    Ok(())
}
