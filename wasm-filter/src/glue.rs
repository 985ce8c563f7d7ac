//! proxy-wasm edge: the only code that talks to Envoy.
//!
//! Host calls go through `proxy_wasm::hostcalls` (which return `Result`) rather than the SDK's
//! trait helpers, several of which unwrap internally; a panic would abort the VM for every
//! request on this worker. `hostcalls` still panics on a status it does not map to `Err`
//! (e.g. `set_map_value` on request headers that already continued): each call here is made
//! only where Envoy answers with the statuses it maps (wasm-filter/README.md).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{
    Action, BufferType, ContextType, GrpcStatusCode, LogLevel, MapType, MetricType,
};
use seldon_executor::host::GrpcStatus;
use seldon_executor::names::{TIMEOUT_HEADER, UPSTREAM_HEADER};
use seldon_executor::{Call, CallDone, CallResponse, Host, RequestExecutor, Response, Span, Step};
use seldon_graph::{FilterConfig, Plan, compile};

use crate::export::{self, Exporter};
use crate::metrics::{self, Kind, TraceCounter};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(GraphRoot::default()) });
}}

/// Payload logs waiting for the root context's next tick; beyond this many, new ones are dropped
/// (and counted), as Seldon's executor drops when its queue is full.
const LOG_QUEUE_LIMIT: usize = 10_000;
/// How often the root context sends queued payload logs.
const LOG_TICK: Duration = Duration::from_millis(100);
/// The VM's environment variable (`vm_config.environment_variables`) that turns tail calls on:
/// set by `seldon-envoy` on listeners with `allow_on_headers_stop_iteration: true` and a
/// `cluster_header` route on [`UPSTREAM_HEADER`]. Without both the filter must not hold
/// request headers nor rewrite them late, so it keeps to callouts (the mesh's WasmPlugin).
pub const TAIL_CALLS_ENV: &str = "SELDON_TAIL_CALLS";

/// Holds the compiled plan, the metric ids, the payload-log queue and the span queue for this
/// VM (one per worker thread). Payload logs (CloudEvent calls the executor built) and span
/// exports are sent from here, not from the request: Envoy cancels a request's pending calls
/// when the request ends, and the request never waits on the collector.
#[derive(Default)]
struct GraphRoot {
    plan: Option<Rc<Plan>>,
    metrics: Rc<RefCell<Metrics>>,
    logs: Rc<RefCell<VecDeque<Call>>>,
    /// Finished spans waiting for export (tracing on).
    spans: Option<Rc<RefCell<Exporter>>>,
    /// Export POSTs in flight: token → spans in the body.
    exports: HashMap<u32, usize>,
    /// The listener routes tail calls ([`TAIL_CALLS_ENV`]).
    tail_calls: bool,
}

impl GraphRoot {
    fn count_trace(&self, counter: TraceCounter, n: u64) {
        if let Some(plan) = &self.plan {
            let name = metrics::trace(counter, &plan.deployment, &plan.predictor);
            self.metrics.borrow_mut().add(name, n);
        }
    }

    /// Sends what the span queue has due, as OTLP/HTTP POSTs to the collector cluster.
    fn export_spans(&mut self) {
        let Some(spans) = &self.spans else { return };
        let due = spans.borrow_mut().due(unix_ns());
        for x in due {
            let headers: Vec<(&str, &str)> =
                x.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            match hostcalls::dispatch_http_call(
                &x.cluster,
                headers,
                Some(&x.body),
                vec![],
                x.timeout,
            ) {
                Ok(token) => {
                    self.exports.insert(token, x.spans);
                }
                Err(status) => {
                    log::warn!(
                        "seldon filter: span export to {} failed: {status:?}",
                        x.cluster
                    );
                    self.count_trace(TraceCounter::ExportFailures, 1);
                }
            }
        }
    }
}

impl Context for GraphRoot {
    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        _body_size: usize,
        _trailers: usize,
    ) {
        let (_, status) = call_response_headers(num_headers);
        let ok = status.is_some_and(|s| (200..300).contains(&s));
        if let Some(spans) = self.exports.remove(&token) {
            if ok {
                self.count_trace(TraceCounter::Exported, spans as u64);
            } else {
                self.count_trace(TraceCounter::ExportFailures, 1);
            }
            return;
        }
        if !ok {
            self.metrics
                .borrow_mut()
                .count(format!("{}payload_log_failures_total", metrics::PREFIX));
        }
    }
}

impl RootContext for GraphRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(Some(b)) => b,
            _ => {
                log::error!("seldon filter: no plugin configuration");
                return false;
            }
        };
        let config = match FilterConfig::from_json(&bytes) {
            Ok(c) => c,
            Err(e) => {
                log::error!("seldon filter: configuration is not a FilterConfig: {e}");
                return false;
            }
        };
        self.tail_calls = std::env::var(TAIL_CALLS_ENV).is_ok_and(|v| v == "enabled");
        match compile(&config) {
            Ok(plan) => {
                let logs = plan
                    .nodes
                    .iter()
                    .any(|n| n.logger.is_some())
                    .then_some(LOG_TICK);
                let flush = plan.tracing.as_ref().map(export::tick_period);
                if let Some(tick) = [logs, flush].into_iter().flatten().min() {
                    let _ = hostcalls::set_tick_period(tick);
                }
                self.spans = plan
                    .tracing
                    .clone()
                    .map(|t| Rc::new(RefCell::new(Exporter::new(t))));
                self.plan = Some(Rc::new(plan));
                true
            }
            Err(e) => {
                log::error!("seldon filter: invalid graph: {e}");
                false
            }
        }
    }

    fn on_tick(&mut self) {
        let pending: Vec<Call> = self.logs.borrow_mut().drain(..).collect();
        for call in pending {
            if dispatch(&call).is_err() {
                self.metrics
                    .borrow_mut()
                    .count(format!("{}payload_log_failures_total", metrics::PREFIX));
            }
        }
        self.export_spans();
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(GraphRequest {
            logs: Rc::clone(&self.logs),
            spans: self.spans.clone(),
            exec: self
                .plan
                .clone()
                .map(|p| RequestExecutor::new(p).with_tail_calls(self.tail_calls)),
            plan: self.plan.clone(),
            metrics: Rc::clone(&self.metrics),
            started: now(),
            method: String::new(),
            body_seen: 0,
            responded: false,
            tail_calls: self.tail_calls,
            tail: Tail::None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Metric ids, defined on first use.
#[derive(Default)]
struct Metrics {
    ids: HashMap<String, u32>,
}

impl Metrics {
    fn id(&mut self, name: String, kind: Kind) -> Option<u32> {
        if let Some(id) = self.ids.get(&name) {
            return Some(*id);
        }
        let metric_type = match kind {
            Kind::Total => MetricType::Counter,
            Kind::Ms => MetricType::Histogram,
        };
        let id = hostcalls::define_metric(metric_type, &name).ok()?;
        self.ids.insert(name, id);
        Some(id)
    }

    fn count(&mut self, name: String) {
        self.add(name, 1);
    }

    fn add(&mut self, name: String, n: u64) {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        if let Some(id) = self.id(name, Kind::Total) {
            let _ = hostcalls::increment_metric(id, n);
        }
    }

    fn record(&mut self, name: impl Fn(Kind) -> String, elapsed: Duration) {
        if let Some(id) = self.id(name(Kind::Total), Kind::Total) {
            let _ = hostcalls::increment_metric(id, 1);
        }
        if let Some(id) = self.id(name(Kind::Ms), Kind::Ms) {
            let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
            let _ = hostcalls::record_metric(id, ms);
        }
    }
}

struct GraphRequest {
    logs: Rc<RefCell<VecDeque<Call>>>,
    spans: Option<Rc<RefCell<Exporter>>>,
    exec: Option<RequestExecutor>,
    plan: Option<Rc<Plan>>,
    metrics: Rc<RefCell<Metrics>>,
    started: SystemTime,
    method: String,
    body_seen: usize,
    responded: bool,
    /// Request headers are held until the body arrived, so a tail call can rewrite them.
    tail_calls: bool,
    tail: Tail,
}

/// Where the tail call (`Step::Tail`) is.
enum Tail {
    None,
    /// Handed to the router; the response callbacks wait for its answer.
    Sent,
    /// The answer's headers arrived (held); the body is being buffered.
    Headers {
        status: Option<u16>,
        headers: Vec<(String, String)>,
        body_seen: usize,
    },
    /// Answered: the response passes unchanged.
    Done,
}

/// Starts an HTTP call through Envoy.
fn dispatch(call: &Call) -> Result<u32, String> {
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(call.headers.len() + 3);
    headers.push((":method", call.method));
    headers.push((":path", &call.path));
    headers.push((":authority", &call.authority));
    headers.extend(call.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let timeout = Duration::from_millis(call.timeout_ms);
    hostcalls::dispatch_http_call(
        &call.cluster,
        headers,
        call.body.as_deref(),
        vec![],
        timeout,
    )
    .map_err(|status| format!("dispatch to cluster {} failed: {status:?}", call.cluster))
}

/// `Host` over proxy-wasm hostcalls. Keeps no state of its own: what a token was for lives in
/// the executor's one map.
struct EnvoyHost<'a> {
    plan: &'a Plan,
    logs: &'a RefCell<VecDeque<Call>>,
    spans: Option<&'a RefCell<Exporter>>,
    metrics: &'a RefCell<Metrics>,
}

impl Host for EnvoyHost<'_> {
    fn dispatch(&mut self, call: &Call) -> Result<u32, String> {
        dispatch(call)
    }

    fn send_later(&mut self, call: Call) {
        let mut queue = self.logs.borrow_mut();
        if queue.len() < LOG_QUEUE_LIMIT {
            queue.push_back(call);
        } else {
            self.metrics
                .borrow_mut()
                .count(format!("{}payload_log_dropped_total", metrics::PREFIX));
        }
    }

    fn random_f64(&mut self) -> f64 {
        let bits = u64::from_le_bytes(random_bytes::<8>());
        (bits >> 11) as f64 / (1u64 << 53) as f64
    }

    fn random_u128(&mut self) -> u128 {
        u128::from_le_bytes(random_bytes::<16>())
    }

    fn now_ns(&mut self) -> u64 {
        unix_ns()
    }

    fn call_done(&mut self, done: &CallDone<'_>) {
        let elapsed = Duration::from_nanos(done.elapsed_ns);
        let (d, p) = (&self.plan.deployment, &self.plan.predictor);
        let (node, service, code) = (done.node, done.service.label(), done.status.unwrap_or(0));
        self.metrics
            .borrow_mut()
            .record(|k| metrics::client(k, d, p, node, service, code), elapsed);
    }

    fn span_done(&mut self, span: Span) {
        let Some(spans) = self.spans else { return };
        if !spans.borrow_mut().push(span) {
            let name = metrics::trace(
                TraceCounter::Dropped,
                &self.plan.deployment,
                &self.plan.predictor,
            );
            self.metrics.borrow_mut().count(name);
        }
    }
}

/// WASI `random_get`; falls back to the clock if the host refuses (never panics).
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    if getrandom::fill(&mut buf).is_err() {
        let nanos = now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (nanos >> ((i % 16) * 8)) as u8;
        }
    }
    buf
}

/// The headers of a call's response and its `:status`; a failed call has no headers.
fn call_response_headers(num_headers: usize) -> (Vec<(String, String)>, Option<u16>) {
    if num_headers == 0 {
        return (Vec::new(), None);
    }
    let headers = hostcalls::get_map(MapType::HttpCallResponseHeaders).unwrap_or_default();
    let status = headers
        .iter()
        .find(|(k, _)| k == ":status")
        .and_then(|(_, v)| v.parse::<u16>().ok());
    (headers, status)
}

fn now() -> SystemTime {
    hostcalls::get_current_time().unwrap_or(UNIX_EPOCH)
}

/// Envoy's wall clock in nanoseconds since the Unix epoch (span times, latencies).
fn unix_ns() -> u64 {
    now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl GraphRequest {
    /// Carries out a step. While the body is still coming, the headers continue — to the
    /// buffer filter that must follow this one, which holds them until the body has passed,
    /// and it never passes: the filter buffers it (`Pause` in body callbacks) and answers. So
    /// the request never reaches Envoy's router (the header trap, DESIGN.md, fix 2; it works
    /// with or without `allow_on_headers_stop_iteration`). With tail calls on, the headers are
    /// held instead (fix 1), to be rewritten for the tail call, whose request alone goes on to
    /// the router (`Continue`). Anything else pauses.
    fn apply(&mut self, step: Step) -> Action {
        match step {
            Step::WaitBody if self.tail_calls => Action::Pause,
            Step::WaitBody => Action::Continue,
            Step::Wait => Action::Pause,
            Step::Respond(response) => {
                self.send(response);
                Action::Pause
            }
            Step::Tail(call) => {
                if let Err(detail) = self.hand_over(&call) {
                    let step = self.with_executor(|exec, host| exec.on_tail_failed(host, detail));
                    return match step {
                        Some(step) => self.apply(step),
                        None => self.not_configured(),
                    };
                }
                self.tail = Tail::Sent;
                Action::Continue
            }
        }
    }

    /// Turns the held request into the tail call: its headers (pseudo-headers, the forwarded
    /// ones, the cluster for the `cluster_header` route, the node's timeout for the router)
    /// and its body. Envoy clears the route cache when a filter changes request headers, so
    /// the router picks the tail route. Only called with the headers held and the body
    /// buffered (tail calls on), where Envoy accepts both writes.
    fn hand_over(&mut self, call: &Call) -> Result<(), String> {
        let scheme = hostcalls::get_map_value(MapType::HttpRequestHeaders, ":scheme")
            .ok()
            .flatten()
            .unwrap_or_else(|| "http".into());
        let body = call.body.as_deref().unwrap_or_default();
        let length = body.len().to_string();
        let timeout = call.timeout_ms.to_string();
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(call.headers.len() + 7);
        headers.push((":method", call.method));
        headers.push((":path", &call.path));
        headers.push((":authority", &call.authority));
        headers.push((":scheme", &scheme));
        headers.push((UPSTREAM_HEADER, &call.cluster));
        headers.push((TIMEOUT_HEADER, &timeout));
        headers.push(("content-length", &length));
        headers.extend(call.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        hostcalls::set_map(MapType::HttpRequestHeaders, headers)
            .map_err(|s| format!("rewriting the request headers failed: {s:?}"))?;
        hostcalls::set_buffer(BufferType::HttpRequestBody, 0, self.body_seen, body)
            .map_err(|s| format!("rewriting the request body failed: {s:?}"))
    }

    /// The tail call's whole answer arrived: the executor checks it and says what the client
    /// gets, which replaces the node's answer (status, headers, body) in place. With no body
    /// to replace (the answer ended with its headers), the filter answers with a local reply,
    /// which Envoy still allows while the response headers are held.
    ///
    /// `trailers` are the answer's trailers when it had some (a gRPC node's `grpc-status`):
    /// the executor reads them after the headers, and they are replaced by the client's own
    /// (a gRPC client's status) or emptied (a REST client gets none).
    fn tail_answered(
        &mut self,
        body: Vec<u8>,
        body_size: usize,
        headers_only: bool,
        trailers: Option<Vec<(String, String)>>,
    ) -> Action {
        let Tail::Headers {
            status,
            mut headers,
            ..
        } = std::mem::replace(&mut self.tail, Tail::Done)
        else {
            return Action::Continue;
        };
        let had_trailers = trailers.is_some();
        headers.extend(trailers.unwrap_or_default());
        let from_upstream = headers
            .iter()
            .any(|(k, _)| k == "x-envoy-upstream-service-time");
        // Envoy's own answer for the node (503 connect failure, 504 timeout) had its body
        // rewritten by the listener's local_reply_config; the executor quotes the cause.
        // For a gRPC request Envoy's own answer is already gRPC (trailers-only, `:status` 200):
        // its `grpc-status` says what happened.
        let grpc_status = headers
            .iter()
            .find(|(k, _)| k == "grpc-status")
            .map(|(_, v)| v.as_str());
        let status = match (from_upstream, grpc_status) {
            (false, Some("14")) => Some(503),
            (false, Some("4")) => Some(504),
            _ => status,
        };
        let body = if from_upstream {
            body
        } else {
            hostcalls::get_property(vec!["response", "code_details"])
                .ok()
                .flatten()
                .map(|d| format!("Envoy: {}", String::from_utf8_lossy(&d)).into_bytes())
                .unwrap_or(body)
        };
        let response = CallResponse {
            status,
            headers,
            body,
        };
        let step = self.with_executor(|exec, host| exec.on_tail_response(host, response));
        let Some(Step::Respond(response)) = step else {
            log::error!("seldon filter: the tail call's answer left the request unanswered");
            return Action::Continue;
        };
        if let Some(grpc) = &response.grpc {
            if headers_only {
                self.rewrite_grpc_trailers_only(&response, grpc);
            } else {
                self.rewrite_grpc(&response, grpc, body_size, had_trailers);
            }
            return Action::Continue;
        }
        if headers_only {
            self.send(response);
            return Action::Pause;
        }
        self.responded = true;
        let status = response.status.to_string();
        let length = response.body.len().to_string();
        let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(response.headers.len() + 2);
        pairs.push((":status", &status));
        pairs.push(("content-length", &length));
        pairs.extend(
            response
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let rewritten = hostcalls::set_map(MapType::HttpResponseHeaders, pairs).and_then(|()| {
            hostcalls::set_buffer(BufferType::HttpResponseBody, 0, body_size, &response.body)
        });
        if let Err(status) = rewritten {
            log::error!("seldon filter: rewriting the tail call's answer failed: {status:?}");
        }
        if had_trailers
            && let Err(status) = hostcalls::set_map(MapType::HttpResponseTrailers, vec![])
        {
            log::error!("seldon filter: dropping the gRPC node's trailers failed: {status:?}");
        }
        self.record_server(response.status);
        Action::Continue
    }

    /// The tail call's answer as a gRPC answer: `:status` 200, `content-type:
    /// application/grpc`, the framed message (none on an error), and `grpc-status` (with
    /// `grpc-message` and `seldon-node` on an error) added as response trailers, which Envoy
    /// allows at the end of the response body (`experiments/grpc-entry`).
    /// When the node's answer had trailers (a gRPC node), they are replaced as a whole.
    fn rewrite_grpc(
        &mut self,
        response: &Response,
        grpc: &GrpcStatus,
        body_size: usize,
        had_trailers: bool,
    ) {
        self.responded = true;
        let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(response.headers.len() + 1);
        pairs.push((":status", "200"));
        pairs.extend(
            response
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let code = grpc.code.to_string();
        let message = grpc.encoded_message();
        let rewritten = hostcalls::set_map(MapType::HttpResponseHeaders, pairs)
            .and_then(|()| {
                hostcalls::set_buffer(BufferType::HttpResponseBody, 0, body_size, &response.body)
            })
            .and_then(|()| {
                if had_trailers {
                    hostcalls::set_map(MapType::HttpResponseTrailers, vec![])
                } else {
                    Ok(())
                }
            })
            .and_then(|()| {
                hostcalls::add_map_value(MapType::HttpResponseTrailers, "grpc-status", &code)
            })
            .and_then(|()| {
                if grpc.code == 0 {
                    return Ok(());
                }
                hostcalls::add_map_value(MapType::HttpResponseTrailers, "grpc-message", &message)?;
                match response.header(seldon_executor::names::NODE_HEADER) {
                    Some(node) => hostcalls::add_map_value(
                        MapType::HttpResponseTrailers,
                        seldon_executor::names::NODE_HEADER,
                        node,
                    ),
                    None => Ok(()),
                }
            });
        if let Err(status) = rewritten {
            log::error!("seldon filter: rewriting the tail call's gRPC answer failed: {status:?}");
        }
        self.record_server(response.status);
    }

    /// A gRPC error for an answer that ended with its headers (Envoy's own trailers-only
    /// answer for an unreachable or late tail node): its headers rewritten in place.
    fn rewrite_grpc_trailers_only(&mut self, response: &Response, grpc: &GrpcStatus) {
        self.responded = true;
        let code = grpc.code.to_string();
        let message = grpc.encoded_message();
        let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(response.headers.len() + 3);
        pairs.push((":status", "200"));
        pairs.extend(
            response
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        pairs.push(("grpc-status", &code));
        pairs.push(("grpc-message", &message));
        if let Err(status) = hostcalls::set_map(MapType::HttpResponseHeaders, pairs) {
            log::error!("seldon filter: rewriting Envoy's gRPC answer failed: {status:?}");
        }
        self.record_server(response.status);
    }

    fn send(&mut self, response: Response) {
        if self.responded {
            return;
        }
        self.responded = true;
        if let Some(grpc) = &response.grpc {
            // A gRPC local reply is trailers-only (Envoy drops any body): status, message
            // naming the node, and the rest of the headers as metadata.
            let metadata: Vec<(&str, &[u8])> = response
                .headers
                .iter()
                .filter(|(k, _)| k != "content-type")
                .map(|(k, v)| (k.as_str(), v.as_bytes()))
                .collect();
            if let Err(status) =
                hostcalls::send_grpc_response(grpc_code(grpc), Some(&grpc.message), metadata)
            {
                log::error!("seldon filter: send_grpc_response failed: {status:?}");
            }
            self.record_server(response.status);
            return;
        }
        let headers: Vec<(&str, &str)> = response
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if let Err(status) =
            hostcalls::send_http_response(u32::from(response.status), headers, Some(&response.body))
        {
            log::error!("seldon filter: send_http_response failed: {status:?}");
        }
        self.record_server(response.status);
    }

    /// The server metrics of the request's answer.
    fn record_server(&mut self, code: u16) {
        if let Some(plan) = &self.plan {
            let service = self
                .exec
                .as_ref()
                .and_then(RequestExecutor::endpoint)
                .map_or("unknown", |e| e.metric_service());
            let elapsed = now().duration_since(self.started).unwrap_or_default();
            let (d, p, m) = (&plan.deployment, &plan.predictor, &self.method);
            self.metrics
                .borrow_mut()
                .record(|k| metrics::server(k, d, p, service, m, code), elapsed);
        }
    }

    fn not_configured(&mut self) -> Action {
        let body = br#"{"status":{"code":500,"info":"the seldon filter has no valid configuration","reason":"NOT_CONFIGURED","status":"FAILURE"}}"#;
        self.send(Response::json(500, body.to_vec()));
        Action::Pause
    }
}

impl Context for GraphRequest {
    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        num_trailers: usize,
    ) {
        let (mut headers, status) = call_response_headers(num_headers);
        if num_trailers > 0 {
            // A gRPC node's `grpc-status` and `grpc-message` come as trailers: the executor
            // reads the answer's headers followed by its trailers.
            headers
                .extend(hostcalls::get_map(MapType::HttpCallResponseTrailers).unwrap_or_default());
        }
        let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let response = CallResponse {
            status,
            headers,
            body,
        };
        let step = self.with_executor(|exec, host| exec.on_call_response(host, token, response));
        if let Some(step) = step
            && self.apply(step) == Action::Continue
        {
            // The tail call was made from here: the held request goes on to the router.
            if let Err(status) = hostcalls::resume_http_request() {
                log::error!("seldon filter: resuming the tail call failed: {status:?}");
            }
        }
    }
}

impl HttpContext for GraphRequest {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let headers = hostcalls::get_map(MapType::HttpRequestHeaders).unwrap_or_default();
        self.method = headers
            .iter()
            .find(|(k, _)| k == ":method")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        match self.with_executor(|exec, host| exec.on_headers(host, headers, end_of_stream)) {
            Some(step) => self.apply(step),
            None => self.not_configured(),
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.responded {
            return Action::Pause;
        }
        self.body_seen = body_size;
        match self.with_executor(|exec, host| exec.on_body_size(host, body_size)) {
            None => return self.not_configured(),
            Some(Some(step)) => return self.apply(step),
            Some(None) => {}
        }
        if !end_of_stream {
            // Pause here means "buffer": Envoy keeps adding chunks until end of stream.
            return Action::Pause;
        }
        self.run_body()
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.responded {
            return Action::Pause;
        }
        self.run_body()
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if !matches!(self.tail, Tail::Sent) {
            return Action::Continue;
        }
        let headers = hostcalls::get_map(MapType::HttpResponseHeaders).unwrap_or_default();
        let status = headers
            .iter()
            .find(|(k, _)| k == ":status")
            .and_then(|(_, v)| v.parse::<u16>().ok());
        self.tail = Tail::Headers {
            status,
            headers,
            body_seen: 0,
        };
        if end_of_stream {
            return self.tail_answered(Vec::new(), 0, true, None);
        }
        // Held until the whole answer is checked: it may still turn into an error.
        Action::Pause
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Tail::Headers { body_seen, .. } = &mut self.tail else {
            return Action::Continue;
        };
        *body_seen = body_size;
        if !end_of_stream {
            return Action::Pause;
        }
        let body = hostcalls::get_buffer(BufferType::HttpResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        self.tail_answered(body, body_size, false, None)
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        let Tail::Headers { body_seen, .. } = self.tail else {
            return Action::Continue;
        };
        let body = hostcalls::get_buffer(BufferType::HttpResponseBody, 0, body_seen)
            .ok()
            .flatten()
            .unwrap_or_default();
        let trailers = hostcalls::get_map(MapType::HttpResponseTrailers).unwrap_or_default();
        self.tail_answered(body, body_seen, false, Some(trailers))
    }
}

impl GraphRequest {
    fn run_body(&mut self) -> Action {
        let body = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, self.body_seen)
            .ok()
            .flatten()
            .unwrap_or_default();
        match self.with_executor(|exec, host| exec.on_body(host, body)) {
            Some(step) => self.apply(step),
            None => self.not_configured(),
        }
    }

    /// Runs `f` with the executor and a host over this request's plan; `None` when the plugin
    /// has no valid configuration.
    fn with_executor<T>(
        &mut self,
        f: impl FnOnce(&mut RequestExecutor, &mut dyn Host) -> T,
    ) -> Option<T> {
        let (exec, plan) = (self.exec.as_mut()?, self.plan.as_deref()?);
        let mut host = EnvoyHost {
            plan,
            logs: &self.logs,
            spans: self.spans.as_deref(),
            metrics: &self.metrics,
        };
        Some(f(exec, &mut host))
    }
}

/// proxy-wasm's enum for a gRPC status code (an unknown code is UNKNOWN).
fn grpc_code(status: &GrpcStatus) -> GrpcStatusCode {
    use GrpcStatusCode as G;
    match status.code {
        0 => G::Ok,
        1 => G::Cancelled,
        3 => G::InvalidArgument,
        4 => G::DeadlineExceeded,
        5 => G::NotFound,
        6 => G::AlreadyExists,
        7 => G::PermissionDenied,
        8 => G::ResourceExhausted,
        9 => G::FailedPrecondition,
        10 => G::Aborted,
        11 => G::OutOfRange,
        12 => G::Unimplemented,
        13 => G::Internal,
        14 => G::Unavailable,
        15 => G::DataLoss,
        16 => G::Unauthenticated,
        _ => G::Unknown,
    }
}
