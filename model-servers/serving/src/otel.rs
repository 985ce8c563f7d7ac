//! Server spans: one SERVER span per REST or gRPC request that continues the caller's W3C
//! `traceparent` (or B3), exported as OTLP/HTTP protobuf by the OpenTelemetry SDK's batch
//! processor, off the request path.
//!
//! ```text
//!  request ─► Traced (tower layer, REST and gRPC) ─► handler
//!               │ parent = traceparent | b3 | none (new root)
//!               └─ span ends with the status ─► BatchSpanProcessor (own thread)
//!                                                └─► Counting ─► OTLP exporter
//!                                                     │           └─► reqwest on the server's runtime
//!                                                     └─ seldon_otlp_* counters on /prometheus
//! ```
//!
//! A collector that is down or refuses a batch costs the batch (no retry), a warning in the
//! log and the `seldon_otlp_*` counters; requests are never delayed by it.
//!
//! Off (no layer at all, no SDK objects) unless an OTLP endpoint is configured
//! (`OTEL_EXPORTER_OTLP_ENDPOINT` / `--otlp-endpoint`). Naming, attributes and defaults:
//! `README.md` ("Traces").

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use http::{HeaderMap, StatusCode};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{Bytes, HeaderExtractor, HttpClient, HttpError};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanData, SpanExporter};
use prometheus_client::metrics::counter::Counter;

use crate::config::Config;

/// Instrumentation scope of every span this crate makes.
pub const SCOPE: &str = "seldon-serving";
/// `service.name` when neither `OTEL_SERVICE_NAME` nor `PREDICTIVE_UNIT_ID` is set.
pub const DEFAULT_SERVICE_NAME: &str = "seldon-server";
/// How long one export may take (the OTLP default).
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why tracing could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    #[error(
        "OTEL_EXPORTER_OTLP_ENDPOINT `{0}` is not an http:// URL (OTLP/HTTP without TLS is supported)"
    )]
    Endpoint(String),
    #[error("OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("OTLP exporter client: {0}")]
    Client(#[from] reqwest::Error),
}

/// `<base>/v1/traces`, the OTLP/HTTP traces path under `OTEL_EXPORTER_OTLP_ENDPOINT`.
pub fn traces_url(base: &str) -> Result<String, OtelError> {
    let trimmed = base.trim().trim_end_matches('/');
    let host = trimmed
        .strip_prefix("http://")
        .ok_or_else(|| OtelError::Endpoint(base.to_string()))?;
    if host.is_empty() || trimmed.parse::<http::Uri>().is_err() {
        return Err(OtelError::Endpoint(base.to_string()));
    }
    Ok(format!("{trimmed}/v1/traces"))
}

/// The SDK's tracer provider for this process, and the identity its spans carry.
#[derive(Debug)]
pub struct Otel {
    provider: SdkTracerProvider,
    spans: ServerSpans,
    stats: ExportStats,
}

/// What the exporter did, for `/prometheus` (clones share the counts).
#[derive(Debug, Clone, Default)]
pub struct ExportStats {
    /// Spans the collector accepted.
    pub spans_exported: Counter,
    /// Spans lost because their batch failed (collector down, refused, timed out).
    pub spans_failed: Counter,
    /// Export calls (batches) that failed.
    pub export_failures: Counter,
}

impl ExportStats {
    /// `(name, help, counter)` as registered (`_total` is appended on exposition).
    pub fn counters(&self) -> [(&'static str, &'static str, Counter); 3] {
        [
            (
                "seldon_otlp_spans_exported",
                "server spans the OTLP collector accepted",
                self.spans_exported.clone(),
            ),
            (
                "seldon_otlp_spans_failed",
                "server spans lost in failed OTLP exports",
                self.spans_failed.clone(),
            ),
            (
                "seldon_otlp_export_failures",
                "OTLP export calls (batches) that failed",
                self.export_failures.clone(),
            ),
        ]
    }
}

/// The OTLP exporter, counting what it sends and logging what fails (the SDK alone would
/// only report failures through its internal logs, which are compiled out here).
#[derive(Debug)]
struct Counting<E> {
    inner: E,
    stats: ExportStats,
    url: String,
}

impl<E: SpanExporter> SpanExporter for Counting<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let result = self.inner.export(batch).await;
        match &result {
            Ok(()) => {
                self.stats.spans_exported.inc_by(n);
            }
            Err(e) => {
                self.stats.spans_failed.inc_by(n);
                self.stats.export_failures.inc();
                tracing::warn!(endpoint = %self.url, spans = n, error = %e, "OTLP span export failed; spans dropped");
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl Otel {
    /// Sets up export to `config.otlp_endpoint`; `None` when it is unset (tracing off).
    /// Must run inside a tokio runtime: exports run on it.
    pub fn from_config(config: &Config) -> Result<Option<Self>, OtelError> {
        let Some(base) = config
            .otlp_endpoint
            .as_deref()
            .filter(|e| !e.trim().is_empty())
        else {
            return Ok(None);
        };
        let url = traces_url(base)?;
        let client = OnRuntime {
            client: reqwest::Client::builder().timeout(EXPORT_TIMEOUT).build()?,
            runtime: tokio::runtime::Handle::current(),
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_endpoint(url.clone())
            .with_timeout(EXPORT_TIMEOUT)
            .build()?;
        let service = config
            .otel_service_name
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| Some(config.unit_id.clone()).filter(|s| !s.is_empty()))
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.into());
        // The builder's default detectors add OTEL_RESOURCE_ATTRIBUTES and the SDK's own
        // attributes; the sampler and batch settings come from OTEL_TRACES_SAMPLER(_ARG) and
        // OTEL_BSP_* (SDK defaults: parent-based always-on, 2048 queued, 5 s, 512 per batch).
        let resource = Resource::builder()
            .with_service_name(service.clone())
            .build();
        let stats = ExportStats::default();
        let exporter = Counting {
            inner: exporter,
            stats: stats.clone(),
            url: url.clone(),
        };
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        tracing::info!(endpoint = %url, service = %service, "exporting server spans (OTLP/HTTP)");
        let spans = ServerSpans {
            tracer: provider.tracer(SCOPE),
            model: Arc::from(config.model_name()),
            node: Arc::from(config.unit_id.as_str()),
        };
        Ok(Some(Otel {
            provider,
            spans,
            stats,
        }))
    }

    /// The layer that makes one span per request.
    pub fn spans(&self) -> ServerSpans {
        self.spans.clone()
    }

    /// The exporter's counters.
    pub fn stats(&self) -> &ExportStats {
        &self.stats
    }

    /// Exports what is queued and stops the exporter (graceful stop). Runs the blocking SDK
    /// call off the async workers, which the export itself needs.
    pub async fn shutdown(self) {
        let provider = self.provider;
        match tokio::task::spawn_blocking(move || provider.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "flushing spans on shutdown failed"),
            Err(e) => tracing::warn!(error = %e, "flushing spans on shutdown failed"),
        }
    }
}

/// The SDK's HTTP client seam: the batch processor exports from its own thread with a plain
/// `block_on`, so the request runs as a task on the server's tokio runtime (reqwest needs one)
/// and the processor waits for its result.
#[derive(Debug)]
struct OnRuntime {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        let task = self.runtime.spawn(async move {
            let response = client.execute(request).await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, body))
        });
        let (status, headers, body) = task.await??;
        let mut out = http::Response::new(body);
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        Ok(out)
    }
}

// ------------------------------------------------------------------ parent context (pure)

/// The caller's context: W3C `traceparent`/`tracestate`, else B3 (`b3` single header or
/// `X-B3-*`), else none — a malformed header counts as none, so the span starts a new trace.
pub fn parent_context(headers: &HeaderMap) -> Context {
    if header(headers, "traceparent").is_some_and(w3c_well_formed) {
        let cx = TraceContextPropagator::new()
            .extract_with_context(&Context::new(), &HeaderExtractor(headers));
        if cx.span().span_context().is_valid() {
            return cx;
        }
    }
    b3_span_context(headers).map_or_else(Context::new, |sc| {
        Context::new().with_remote_span_context(sc)
    })
}

/// `traceparent`'s shape per W3C Trace Context: `vv-<32 hex>-<16 hex>-ff` in lowercase (more
/// fields only after a version above 00). The SDK's parser also takes shorter ids (it pads
/// them); the spec says such a header is invalid, so it starts a new trace here.
fn w3c_well_formed(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    parts.len() >= 4
        && hex(parts[0], 2)
        && (parts[0] != "00" || parts.len() == 4)
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// A B3 trace id: 16 or 32 lowercase-or-uppercase hex digits (64-bit ids are left-padded).
fn b3_trace_id(s: &str) -> Option<TraceId> {
    if !(s.len() == 16 || s.len() == 32) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let id = TraceId::from_hex(s).ok()?;
    (id != TraceId::INVALID).then_some(id)
}

fn b3_span_id(s: &str) -> Option<SpanId> {
    if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let id = SpanId::from_hex(s).ok()?;
    (id != SpanId::INVALID).then_some(id)
}

/// B3 sampling state: `1`/`d` (debug)/`true` sample, `0`/`false` do not; absent = sampled
/// (the caller made no decision, so ours — parent-based — follows the default).
fn b3_sampled(s: Option<&str>) -> Option<bool> {
    match s {
        None => Some(true),
        Some("1" | "d" | "true") => Some(true),
        Some("0" | "false") => Some(false),
        Some(_) => None,
    }
}

/// The remote span context in B3 headers, if any is well-formed.
pub fn b3_span_context(headers: &HeaderMap) -> Option<SpanContext> {
    let (trace_id, span_id, sampled) = if let Some(single) = header(headers, "b3") {
        // {trace}-{span}[-{sampled}[-{parent}]]; a bare "0"/"1"/"d" carries no ids
        let mut parts = single.split('-');
        let trace_id = b3_trace_id(parts.next()?)?;
        let span_id = b3_span_id(parts.next()?)?;
        (trace_id, span_id, b3_sampled(parts.next())?)
    } else {
        let trace_id = b3_trace_id(header(headers, "x-b3-traceid")?)?;
        let span_id = b3_span_id(header(headers, "x-b3-spanid")?)?;
        let sampled = if header(headers, "x-b3-flags") == Some("1") {
            true
        } else {
            b3_sampled(header(headers, "x-b3-sampled"))?
        };
        (trace_id, span_id, sampled)
    };
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    Some(SpanContext::new(
        trace_id,
        span_id,
        flags,
        true,
        TraceState::default(),
    ))
}

// ------------------------------------------------------------------ names (pure)

/// Which API a request used: Seldon's (`/api/v1.0/...`, `seldon.protos.*`) or the Open
/// Inference Protocol v2 (`/v2/...`, `inference.GRPCInferenceService`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Seldon,
    V2,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Seldon => "seldon",
            Protocol::V2 => "v2",
        }
    }
}

/// The v1 routes of `rest::app` (their paths are their own templates).
const V1_ROUTES: &[&str] = &[
    "/predict",
    "/api/v1.0/predictions",
    "/api/v0.1/predictions",
    "/transform-input",
    "/transform-output",
    "/route",
    "/aggregate",
    "/send-feedback",
    "/api/v1.0/feedback",
    "/health/ping",
    "/health/status",
    "/api/v1.0/health/status",
    "/metadata",
    "/api/v1.0/metadata",
];

/// `http.route` for a REST path (v2 model names and versions become `{model}`/`{version}`),
/// and its protocol; `None` for a path no route serves (the span is then named by the method
/// alone, so unknown paths cannot blow up span-name cardinality).
pub fn rest_route(path: &str) -> Option<(String, Protocol)> {
    if let Some(route) = V1_ROUTES.iter().find(|r| **r == path) {
        return Some(((*route).to_string(), Protocol::Seldon));
    }
    if matches!(path, "/v2" | "/v2/health/live" | "/v2/health/ready") {
        return Some((path.to_string(), Protocol::V2));
    }
    let rest = path.strip_prefix("/v2/models/")?;
    let segments: Vec<&str> = rest.split('/').collect();
    let route = match segments.as_slice() {
        [m] if !m.is_empty() => "/v2/models/{model}",
        [m, tail @ ("ready" | "infer")] if !m.is_empty() => match *tail {
            "ready" => "/v2/models/{model}/ready",
            _ => "/v2/models/{model}/infer",
        },
        [m, "versions", v] if !m.is_empty() && !v.is_empty() => {
            "/v2/models/{model}/versions/{version}"
        }
        [m, "versions", v, tail @ ("ready" | "infer")] if !m.is_empty() && !v.is_empty() => {
            match *tail {
                "ready" => "/v2/models/{model}/versions/{version}/ready",
                _ => "/v2/models/{model}/versions/{version}/infer",
            }
        }
        _ => return None,
    };
    Some((route.to_string(), Protocol::V2))
}

/// (`rpc.service`, `rpc.method`, protocol) of a gRPC path `/package.Service/Method`.
pub fn grpc_names(path: &str) -> Option<(&str, &str, Protocol)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    if service.is_empty() || method.is_empty() || method.contains('/') {
        return None;
    }
    let protocol = if service.starts_with("inference.") {
        Protocol::V2
    } else {
        Protocol::Seldon
    };
    Some((service, method, protocol))
}

/// gRPC codes that mark a server span as failed (OpenTelemetry's RPC conventions: UNKNOWN,
/// DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS).
pub fn grpc_code_is_error(code: i64) -> bool {
    matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
}

/// The gRPC status of a response as far as its headers tell: `grpc-status` is there for
/// errors (tonic answers them trailers-only); a unary success carries it in the trailers, so
/// a 200 without it is OK (0). Any other HTTP status is UNKNOWN (2).
pub fn grpc_status(status: StatusCode, headers: &HeaderMap) -> i64 {
    match header(headers, "grpc-status").map(str::parse::<i64>) {
        Some(Ok(code)) => code,
        Some(Err(_)) => 2,
        None if status == StatusCode::OK => 0,
        None => 2,
    }
}

// ------------------------------------------------------------------ the layer

/// Which edge a layer sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    Rest,
    Grpc,
}

/// Tower layer making one SERVER span per request; the same for REST and gRPC.
#[derive(Debug, Clone)]
pub struct ServerSpans {
    tracer: SdkTracer,
    model: Arc<str>,
    node: Arc<str>,
}

impl ServerSpans {
    /// This layer for one edge.
    pub fn on(&self, edge: Edge) -> SpansLayer {
        SpansLayer {
            spans: self.clone(),
            edge,
        }
    }

    fn start<B>(&self, edge: Edge, req: &http::Request<B>) -> opentelemetry_sdk::trace::Span {
        let parent = parent_context(req.headers());
        let path = req.uri().path();
        let mut attributes = Vec::with_capacity(8);
        let name = match edge {
            Edge::Rest => {
                let method = req.method().as_str();
                attributes.push(KeyValue::new("http.request.method", method.to_string()));
                attributes.push(KeyValue::new("url.path", path.to_string()));
                match rest_route(path) {
                    Some((route, protocol)) => {
                        attributes.push(KeyValue::new("seldon.protocol", protocol.as_str()));
                        let name = format!("{method} {route}");
                        attributes.push(KeyValue::new("http.route", route));
                        name
                    }
                    None => method.to_string(),
                }
            }
            Edge::Grpc => {
                attributes.push(KeyValue::new("rpc.system", "grpc"));
                match grpc_names(path) {
                    Some((service, method, protocol)) => {
                        attributes.push(KeyValue::new("rpc.service", service.to_string()));
                        attributes.push(KeyValue::new("rpc.method", method.to_string()));
                        attributes.push(KeyValue::new("seldon.protocol", protocol.as_str()));
                        format!("{service}/{method}")
                    }
                    None => "grpc".to_string(),
                }
            }
        };
        attributes.push(KeyValue::new("seldon.model.name", self.model.to_string()));
        if !self.node.is_empty() {
            attributes.push(KeyValue::new("seldon.node.name", self.node.to_string()));
        }
        self.tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent)
    }
}

fn finish<RB>(
    edge: Edge,
    span: &mut opentelemetry_sdk::trace::Span,
    response: &http::Response<RB>,
) {
    let status = response.status();
    match edge {
        Edge::Rest => {
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status.as_u16()),
            ));
            if status.is_server_error() {
                span.set_status(Status::error(status.to_string()));
            }
        }
        Edge::Grpc => {
            let code = grpc_status(status, response.headers());
            span.set_attribute(KeyValue::new("rpc.grpc.status_code", code));
            if grpc_code_is_error(code) {
                span.set_status(Status::error(format!("gRPC status {code}")));
            }
        }
    }
}

/// [`ServerSpans`] for one edge.
#[derive(Debug, Clone)]
pub struct SpansLayer {
    spans: ServerSpans,
    edge: Edge,
}

impl<S> tower::Layer<S> for SpansLayer {
    type Service = Traced<S>;
    fn layer(&self, inner: S) -> Traced<S> {
        Traced {
            inner,
            layer: self.clone(),
        }
    }
}

/// A service whose every call is a SERVER span.
#[derive(Debug, Clone)]
pub struct Traced<S> {
    inner: S,
    layer: SpansLayer,
}

impl<S, B, RB> tower::Service<http::Request<B>> for Traced<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let edge = self.layer.edge;
        let mut span = self.layer.spans.start(edge, &req);
        let response = self.inner.call(req);
        Box::pin(async move {
            let result = response.await;
            match &result {
                Ok(response) => finish(edge, &mut span, response),
                Err(e) => span.set_status(Status::error(e.to_string())),
            }
            span.end();
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn ids(cx: &Context) -> (String, String, bool) {
        let span = cx.span();
        let sc = span.span_context();
        (
            sc.trace_id().to_string(),
            sc.span_id().to_string(),
            sc.is_sampled(),
        )
    }

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    #[test]
    fn w3c_traceparent_is_the_parent() {
        let cx = parent_context(&headers(&[(
            "traceparent",
            &format!("00-{TRACE}-{SPAN}-01"),
        )]));
        assert_eq!(ids(&cx), (TRACE.into(), SPAN.into(), true));
        assert!(cx.span().span_context().is_remote());
        let cx = parent_context(&headers(&[(
            "traceparent",
            &format!("00-{TRACE}-{SPAN}-00"),
        )]));
        assert!(!ids(&cx).2, "unsampled flag kept");
    }

    #[test]
    fn malformed_or_missing_context_is_a_new_root() {
        for bad in [
            "garbage",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", // short trace id
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01", // all-zero trace id
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // all-zero span id
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // forbidden version
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", // uppercase
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", // extra field in 00
        ] {
            let cx = parent_context(&headers(&[("traceparent", bad)]));
            assert!(!cx.span().span_context().is_valid(), "{bad}");
        }
        assert!(
            !parent_context(&HeaderMap::new())
                .span()
                .span_context()
                .is_valid()
        );
    }

    #[test]
    fn b3_single_and_multi_headers_are_parents_when_no_traceparent() {
        let cx = parent_context(&headers(&[("b3", &format!("{TRACE}-{SPAN}-1"))]));
        assert_eq!(ids(&cx), (TRACE.into(), SPAN.into(), true));
        let cx = parent_context(&headers(&[("b3", &format!("{TRACE}-{SPAN}-0-abc"))]));
        assert_eq!(ids(&cx), (TRACE.into(), SPAN.into(), false));
        // 64-bit trace ids are left-padded
        let cx = parent_context(&headers(&[
            ("x-b3-traceid", "a3ce929d0e0e4736"),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "1"),
        ]));
        assert_eq!(
            ids(&cx),
            ("0000000000000000a3ce929d0e0e4736".into(), SPAN.into(), true)
        );
        // debug flag samples
        let cx = parent_context(&headers(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "0"),
            ("x-b3-flags", "1"),
        ]));
        assert!(ids(&cx).2);
        // traceparent wins over B3
        let other = "0af7651916cd43dd8448eb211c80319c";
        let cx = parent_context(&headers(&[
            ("traceparent", &format!("00-{other}-{SPAN}-01")),
            ("b3", &format!("{TRACE}-{SPAN}-1")),
        ]));
        assert_eq!(ids(&cx).0, other);
    }

    #[test]
    fn malformed_b3_is_ignored() {
        for bad in [
            "0",
            "1",
            "xyz-00f067aa0ba902b7",
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-maybe",
            "4bf92f3577b34da6a-00f067aa0ba902b7", // 17 hex digits
            "00000000000000000000000000000000-00f067aa0ba902b7",
        ] {
            assert!(b3_span_context(&headers(&[("b3", bad)])).is_none(), "{bad}");
        }
        assert!(b3_span_context(&headers(&[("x-b3-traceid", TRACE)])).is_none());
    }

    #[test]
    fn rest_routes_template_model_names() {
        let r = |p: &str| rest_route(p).map(|(r, p)| (r, p.as_str()));
        assert_eq!(r("/predict"), Some(("/predict".into(), "seldon")));
        assert_eq!(
            r("/api/v1.0/predictions"),
            Some(("/api/v1.0/predictions".into(), "seldon"))
        );
        assert_eq!(
            r("/v2/models/iris/infer"),
            Some(("/v2/models/{model}/infer".into(), "v2"))
        );
        assert_eq!(
            r("/v2/models/iris/versions/3/ready"),
            Some(("/v2/models/{model}/versions/{version}/ready".into(), "v2"))
        );
        assert_eq!(
            r("/v2/models/iris"),
            Some(("/v2/models/{model}".into(), "v2"))
        );
        assert_eq!(
            r("/v2/health/ready"),
            Some(("/v2/health/ready".into(), "v2"))
        );
        for unknown in [
            "/",
            "/nope",
            "/v2/models/",
            "/v2/models/a/b",
            "/v2/models//infer",
        ] {
            assert_eq!(r(unknown), None, "{unknown}");
        }
    }

    #[test]
    fn grpc_paths_name_service_method_and_protocol() {
        assert_eq!(
            grpc_names("/seldon.protos.Model/Predict"),
            Some(("seldon.protos.Model", "Predict", Protocol::Seldon))
        );
        assert_eq!(
            grpc_names("/inference.GRPCInferenceService/ModelInfer"),
            Some(("inference.GRPCInferenceService", "ModelInfer", Protocol::V2))
        );
        for bad in ["", "/", "/x", "/x/", "//m", "/a/b/c"] {
            assert_eq!(grpc_names(bad), None, "{bad}");
        }
    }

    #[test]
    fn grpc_status_from_headers() {
        assert_eq!(grpc_status(StatusCode::OK, &HeaderMap::new()), 0);
        assert_eq!(
            grpc_status(StatusCode::OK, &headers(&[("grpc-status", "3")])),
            3
        );
        assert_eq!(
            grpc_status(StatusCode::OK, &headers(&[("grpc-status", "x")])),
            2
        );
        assert_eq!(grpc_status(StatusCode::BAD_GATEWAY, &HeaderMap::new()), 2);
        assert!(grpc_code_is_error(13) && !grpc_code_is_error(3) && !grpc_code_is_error(0));
    }

    #[test]
    fn endpoint_must_be_plain_http() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318").unwrap(),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/").unwrap(),
            "http://collector:4318/v1/traces"
        );
        for bad in ["https://c:4318", "c:4318", "http://", "http://a b"] {
            assert!(
                matches!(traces_url(bad), Err(OtelError::Endpoint(_))),
                "{bad}"
            );
        }
    }
}
