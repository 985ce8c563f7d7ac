//! Tracing in the executor against a scripted fake host: the span tree of a request, the trace
//! context on every node call, B3 in and out, sampling, failures, and tracing off.

use std::collections::BTreeMap;
use std::rc::Rc;

use seldon_executor::trace::attr;
use seldon_executor::{Call, CallDone, CallResponse, Host, RequestExecutor, Response, Span, Step};
use seldon_graph::{FilterConfig, NodeUpstream, PredictiveUnit, Protocol, Tracing, Transport};
use seldon_trace::{AttrValue, SpanKind, Status, hex};

const TID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// Records calls and spans; random bits count up (distinct ids), the clock advances 1 ms per
/// reading from a realistic epoch time.
struct FakeHost {
    calls: Vec<(u32, Call)>,
    spans: Vec<Span>,
    random: u128,
    clock_ns: u64,
    fail_dispatch: bool,
}

impl Default for FakeHost {
    fn default() -> Self {
        Self {
            calls: Vec::new(),
            spans: Vec::new(),
            random: 0,
            clock_ns: 1_765_000_000_000_000_000,
            fail_dispatch: false,
        }
    }
}

impl Host for FakeHost {
    fn dispatch(&mut self, call: &Call) -> Result<u32, String> {
        if self.fail_dispatch {
            return Err("BadArgument".into());
        }
        let token = self.calls.len() as u32 + 1;
        self.calls.push((token, call.clone()));
        Ok(token)
    }
    fn send_later(&mut self, _call: Call) {}
    fn random_f64(&mut self) -> f64 {
        0.1
    }
    fn random_u128(&mut self) -> u128 {
        self.random += 1;
        self.random << 64 | (0xabc0 + self.random)
    }
    fn now_ns(&mut self) -> u64 {
        self.clock_ns += 1_000_000;
        self.clock_ns
    }
    fn call_done(&mut self, _done: &CallDone<'_>) {}
    fn span_done(&mut self, span: Span) {
        self.spans.push(span);
    }
}

fn config(graph: &str, tracing: Option<Tracing>) -> Rc<seldon_graph::Plan> {
    let graph: PredictiveUnit = serde_yaml::from_str(graph).unwrap();
    let nodes: BTreeMap<String, NodeUpstream> = graph
        .walk()
        .into_iter()
        .map(|n| {
            let up = NodeUpstream {
                cluster: format!("node_{}", n.name),
                authority: format!("{}:9000", n.name),
                port: 9000,
                transport: Transport::Rest,
                protocol: None,
                timeout_ms: 500,
            };
            (n.name.clone(), up)
        })
        .collect();
    let cfg = FilterConfig {
        deployment: "sdep".into(),
        namespace: "ns".into(),
        predictor: "default".into(),
        protocol: Protocol::Seldon,
        graph,
        nodes,
        body_limit_bytes: 1024,
        payload_logger: None,
        tracing,
    };
    Rc::new(seldon_graph::compile(&cfg).unwrap())
}

fn on(ratio: f64) -> Option<Tracing> {
    let mut t = Tracing::new("otlp", "collector:4318");
    t.sample_ratio = ratio;
    Some(t)
}

struct Harness {
    host: FakeHost,
    exec: RequestExecutor,
    seen: usize,
}

impl Harness {
    fn new(graph: &str, tracing: Option<Tracing>) -> Self {
        Self {
            host: FakeHost::default(),
            exec: RequestExecutor::new(config(graph, tracing)),
            seen: 0,
        }
    }

    fn post(&mut self, path: &str, trace_headers: &[(&str, &str)], body: &str) -> Step {
        let mut headers: Vec<(String, String)> = [
            (":method", "POST"),
            (":path", path),
            (":authority", "gateway"),
            ("content-type", "application/json"),
            ("x-request-id", "req-1"),
            ("seldon-puid", "puid-1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        headers.extend(
            trace_headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let step = self.exec.on_headers(&mut self.host, headers, false);
        assert_eq!(step, Step::WaitBody);
        self.exec.on_body(&mut self.host, body.as_bytes().to_vec())
    }

    fn new_calls(&mut self) -> Vec<(u32, Call)> {
        let out = self.host.calls[self.seen..].to_vec();
        self.seen = self.host.calls.len();
        out
    }

    fn answer(&mut self, token: u32, status: u16, body: &str) -> Step {
        let response = CallResponse {
            status: Some(status),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-envoy-upstream-service-time".into(), "1".into()),
            ],
            body: body.as_bytes().to_vec(),
        };
        self.exec.on_call_response(&mut self.host, token, response)
    }

    /// Expects one new call to `node` at `path`; answers it 200 with `body`.
    fn expect(&mut self, node: &str, path: &str, body: &str) -> (Call, Step) {
        let calls = self.new_calls();
        let names: Vec<String> = calls
            .iter()
            .map(|(_, c)| format!("{}{}", c.node, c.path))
            .collect();
        assert_eq!(names, [format!("{node}{path}")]);
        let (token, call) = calls.into_iter().next().unwrap();
        let step = self.answer(token, 200, body);
        (call, step)
    }

    fn span(&self, name: &str) -> &Span {
        self.host
            .spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no span {name:?} in {:?}", self.names()))
    }

    fn server(&self) -> &Span {
        let servers: Vec<&Span> = self
            .host
            .spans
            .iter()
            .filter(|s| s.kind == SpanKind::Server)
            .collect();
        assert_eq!(servers.len(), 1, "{:?}", self.names());
        servers[0]
    }

    fn names(&self) -> Vec<String> {
        self.host.spans.iter().map(|s| s.name.clone()).collect()
    }
}

fn respond(step: Step) -> Response {
    match step {
        Step::Respond(r) => r,
        other => panic!("expected a response, got {other:?}"),
    }
}

const MSG: &str = r#"{"data":{"ndarray":[[1.0]]}}"#;

fn traceparent(sampled: bool) -> String {
    format!("00-{TID}-{CALLER_SPAN}-0{}", u8::from(sampled))
}

fn s(v: &str) -> AttrValue {
    AttrValue::Str(v.into())
}

fn int(n: i64) -> AttrValue {
    AttrValue::Int(n)
}

/// The `traceparent` a call must carry for `span`.
fn expected_traceparent(span: &Span, sampled: bool) -> String {
    format!(
        "00-{}-{}-0{}",
        hex(&span.trace_id),
        hex(&span.span_id),
        u8::from(sampled)
    )
}

const ROUTER_GRAPH: &str = "
name: t
type: TRANSFORMER
children:
- name: r
  type: ROUTER
  children:
  - {name: a, type: MODEL}
  - {name: b, type: MODEL}
";

#[test]
fn transformer_router_two_models_one_branch_runs() {
    let mut h = Harness::new(ROUTER_GRAPH, on(1.0));
    let tp = traceparent(true);
    let step = h.post(
        "/api/v1.0/predictions?x=1",
        &[("traceparent", &tp), ("tracestate", "vendor=1")],
        MSG,
    );
    assert_eq!(step, Step::Wait);
    let (t_call, _) = h.expect("t", "/transform-input", MSG);
    let (r_call, _) = h.expect("r", "/route", r#"{"data":{"ndarray":[[1]]}}"#);
    let (b_call, step) = h.expect("b", "/predict", MSG);
    let response = respond(step);
    assert_eq!(response.status, 200);

    assert_eq!(
        h.names(),
        [
            "t transform-input",
            "r route",
            "b predict",
            "seldon sdep/default /api/v1.0/predictions"
        ],
        "one span per node call that ran, none for `a`, the request span last"
    );
    let server = h.server().clone();
    assert_eq!(hex(&server.trace_id), TID, "the caller's trace continues");
    assert_eq!(
        server.parent_span_id.map(|p| hex(&p)).as_deref(),
        Some(CALLER_SPAN)
    );
    assert_ne!(hex(&server.span_id), CALLER_SPAN);
    assert_eq!(server.status, Status::Unset);
    for (k, v) in [
        (attr::HTTP_METHOD, s("POST")),
        (attr::URL_PATH, s("/api/v1.0/predictions")),
        (attr::DEPLOYMENT, s("sdep")),
        (attr::NAMESPACE, s("ns")),
        (attr::PREDICTOR, s("default")),
        (attr::ENDPOINT, s("predictions")),
        (attr::PUID, s("puid-1")),
        (attr::HTTP_STATUS, int(200)),
        (attr::REQUEST_BYTES, int(MSG.len() as i64)),
        (attr::RESPONSE_BYTES, int(response.body.len() as i64)),
    ] {
        assert_eq!(server.attr(k), Some(&v), "{k}");
    }
    assert!(server.start_unix_nanos > 1_765_000_000_000_000_000);
    assert!(server.end_unix_nanos > server.start_unix_nanos);

    let mut ids = vec![server.span_id];
    for (name, call, node_type, method) in [
        (
            "t transform-input",
            &t_call,
            "TRANSFORMER",
            "transform-input",
        ),
        ("r route", &r_call, "ROUTER", "route"),
        ("b predict", &b_call, "MODEL", "predict"),
    ] {
        let span = h.span(name);
        assert_eq!(span.kind, SpanKind::Client);
        assert_eq!(span.trace_id, server.trace_id);
        assert_eq!(span.parent_span_id, Some(server.span_id), "{name}");
        assert!(span.start_unix_nanos >= server.start_unix_nanos);
        assert!(span.end_unix_nanos > span.start_unix_nanos);
        assert!(span.end_unix_nanos <= server.end_unix_nanos);
        assert_eq!(span.status, Status::Unset);
        let node = &call.node;
        for (k, v) in [
            (attr::NODE_NAME, s(node)),
            (attr::NODE_TYPE, s(node_type)),
            (attr::NODE_METHOD, s(method)),
            (attr::HTTP_METHOD, s("POST")),
            (attr::URL_PATH, s(&call.path)),
            (attr::SERVER_ADDRESS, s(&format!("{node}:9000"))),
            (attr::HTTP_STATUS, int(200)),
            (
                attr::REQUEST_BYTES,
                int(call.body.as_ref().unwrap().len() as i64),
            ),
            (attr::NODE_RETRIES, int(0)),
        ] {
            assert_eq!(span.attr(k), Some(&v), "{name} {k}");
        }
        assert!(matches!(span.attr(attr::RESPONSE_BYTES), Some(AttrValue::Int(n)) if *n > 0));
        // the call carried the node span's context, the caller's tracestate, no old parent
        assert_eq!(
            call.header("traceparent"),
            Some(expected_traceparent(span, true).as_str()),
            "{name}"
        );
        assert_eq!(call.header("tracestate"), Some("vendor=1"));
        assert_eq!(
            call.headers
                .iter()
                .filter(|(k, _)| k == "traceparent")
                .count(),
            1
        );
        assert_eq!(call.header("b3"), None, "the caller used no B3");
        assert_eq!(call.header("x-request-id"), Some("req-1"));
        ids.push(span.span_id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "every span has its own id");
}

#[test]
fn combiner_spans_every_child_and_the_aggregate() {
    let mut h = Harness::new(
        "{name: c, type: COMBINER, children: [{name: a, type: MODEL}, {name: b, type: MODEL}]}",
        on(1.0),
    );
    h.post("/api/v1.0/predictions", &[], MSG);
    let calls = h.new_calls();
    assert_eq!(calls.len(), 2);
    for (token, _) in &calls {
        h.answer(*token, 200, MSG);
    }
    let (agg, step) = h.expect("c", "/aggregate", MSG);
    assert_eq!(respond(step).status, 200);
    assert_eq!(
        h.names(),
        [
            "a predict",
            "b predict",
            "c aggregate",
            "seldon sdep/default /api/v1.0/predictions"
        ]
    );
    let server = h.server().clone();
    assert_eq!(
        server.parent_span_id, None,
        "no caller context: a new trace"
    );
    let c = h.span("c aggregate");
    assert_eq!(c.attr(attr::NODE_TYPE), Some(&s("COMBINER")));
    assert_eq!(c.attr(attr::NODE_METHOD), Some(&s("aggregate")));
    assert_eq!(c.parent_span_id, Some(server.span_id));
    assert_eq!(
        agg.header("traceparent"),
        Some(expected_traceparent(c, true).as_str())
    );
    for (_, call) in &calls {
        let span = h.span(&format!("{} predict", call.node));
        assert_eq!(
            call.header("traceparent"),
            Some(expected_traceparent(span, true).as_str())
        );
    }
}

#[test]
fn b3_single_in_b3_single_out() {
    let mut h = Harness::new("name: m", on(0.0));
    let b3 = format!("{TID}-{CALLER_SPAN}-1");
    h.post("/api/v1.0/predictions", &[("b3", &b3)], MSG);
    let (call, step) = h.expect("m", "/predict", MSG);
    respond(step);
    let server = h.server().clone();
    assert_eq!(hex(&server.trace_id), TID);
    assert_eq!(
        server.parent_span_id.map(|p| hex(&p)).as_deref(),
        Some(CALLER_SPAN)
    );
    let span = h.span("m predict");
    assert_eq!(
        call.header("b3"),
        Some(format!("{TID}-{}-1-{}", hex(&span.span_id), hex(&server.span_id)).as_str())
    );
    assert_eq!(
        call.header("traceparent"),
        Some(expected_traceparent(span, true).as_str())
    );
    assert_eq!(call.headers.iter().filter(|(k, _)| k == "b3").count(), 1);
}

#[test]
fn b3_multi_64_bit_in_b3_multi_out() {
    let mut h = Harness::new("name: m", on(1.0));
    let short = &TID[16..];
    h.post(
        "/api/v1.0/predictions",
        &[
            ("x-b3-traceid", short),
            ("x-b3-spanid", CALLER_SPAN),
            ("x-b3-sampled", "1"),
        ],
        MSG,
    );
    let (call, step) = h.expect("m", "/predict", MSG);
    respond(step);
    let span = h.span("m predict").clone();
    let server = h.server().clone();
    assert_eq!(hex(&span.trace_id), format!("{}{short}", "0".repeat(16)));
    assert_eq!(
        call.header("x-b3-traceid"),
        Some(short),
        "64-bit stays 64-bit"
    );
    assert_eq!(
        call.header("x-b3-spanid"),
        Some(hex(&span.span_id).as_str())
    );
    assert_eq!(
        call.header("x-b3-parentspanid"),
        Some(hex(&server.span_id).as_str())
    );
    assert_eq!(call.header("x-b3-sampled"), Some("1"));
    assert_eq!(
        call.headers
            .iter()
            .filter(|(k, _)| k == "x-b3-spanid")
            .count(),
        1,
        "the caller's x-b3-spanid was replaced"
    );
}

#[test]
fn sampled_out_makes_no_spans_but_propagates_sampled_0() {
    let mut h = Harness::new(ROUTER_GRAPH, on(1.0));
    let tp = traceparent(false);
    h.post("/api/v1.0/predictions", &[("traceparent", &tp)], MSG);
    let (t_call, _) = h.expect("t", "/transform-input", MSG);
    let (r_call, _) = h.expect("r", "/route", r#"{"data":{"ndarray":[[0]]}}"#);
    let (a_call, step) = h.expect("a", "/predict", MSG);
    assert_eq!(respond(step).status, 200);
    assert!(h.host.spans.is_empty(), "{:?}", h.names());
    let mut parents = Vec::new();
    for call in [&t_call, &r_call, &a_call] {
        let tp = call.header("traceparent").unwrap();
        assert!(tp.starts_with(&format!("00-{TID}-")), "{tp}");
        assert!(tp.ends_with("-00"), "{tp}");
        assert!(
            !tp.contains(CALLER_SPAN),
            "a child id, not the caller's: {tp}"
        );
        parents.push(tp.to_string());
    }
    parents.dedup();
    assert_eq!(parents.len(), 3);
}

#[test]
fn ratio_zero_without_context_samples_out_a_new_trace() {
    let mut h = Harness::new("name: m", on(0.0));
    h.post("/api/v1.0/predictions", &[], MSG);
    let (call, step) = h.expect("m", "/predict", MSG);
    respond(step);
    assert!(h.host.spans.is_empty());
    let tp = call.header("traceparent").unwrap();
    assert_eq!(tp.len(), 55);
    assert!(tp.ends_with("-00"), "{tp}");
}

#[test]
fn a_failing_node_gives_an_error_span_naming_it() {
    let mut h = Harness::new(ROUTER_GRAPH, on(1.0));
    h.post(
        "/api/v1.0/predictions",
        &[("traceparent", &traceparent(true))],
        MSG,
    );
    h.expect("t", "/transform-input", MSG);
    h.expect("r", "/route", r#"{"data":{"ndarray":[[1]]}}"#);
    let calls = h.new_calls();
    let err = r#"{"status":{"code":500,"info":"boom"}}"#;
    let response = respond(h.answer(calls[0].0, 500, err));
    assert_eq!(response.status, 500);
    let b = h.span("b predict");
    assert_eq!(b.status, Status::Error("node `b` answered 500".into()));
    assert_eq!(b.attr(attr::HTTP_STATUS), Some(&int(500)));
    assert_eq!(b.attr(attr::RESPONSE_BYTES), Some(&int(err.len() as i64)));
    let server = h.server();
    assert_eq!(server.status, Status::Error("node `b` answered 500".into()));
    assert_eq!(server.attr(attr::HTTP_STATUS), Some(&int(500)));
    assert_eq!(
        server.attr(attr::FAILURE),
        Some(&s("node `b` answered 500"))
    );
}

#[test]
fn a_bad_router_reply_is_an_error_on_the_router_span() {
    let mut h = Harness::new(ROUTER_GRAPH, on(1.0));
    h.post("/api/v1.0/predictions", &[], MSG);
    h.expect("t", "/transform-input", MSG);
    let (_, step) = h.expect("r", "/route", r#"{"data":{"ndarray":[[7]]}}"#);
    assert_eq!(respond(step).status, 502);
    let r = h.span("r route");
    assert!(
        matches!(&r.status, Status::Error(t) if t.contains("router `r`") && t.contains("route 7")),
        "{:?}",
        r.status
    );
    assert_eq!(r.attr(attr::HTTP_STATUS), Some(&int(200)));
}

#[test]
fn unreachable_node_and_calls_left_in_flight() {
    let mut h = Harness::new(
        "{name: c, type: COMBINER, children: [{name: a, type: MODEL}, {name: b, type: MODEL}]}",
        on(1.0),
    );
    h.post("/api/v1.0/predictions", &[], MSG);
    let calls = h.new_calls();
    let step = h.exec.on_call_response(
        &mut h.host,
        calls[0].0,
        CallResponse {
            status: None,
            headers: vec![],
            body: vec![],
        },
    );
    assert_eq!(respond(step).status, 503);
    let a = h.span("a predict");
    assert!(
        matches!(&a.status, Status::Error(t) if t.contains("node `a` is unreachable")),
        "{:?}",
        a.status
    );
    assert_eq!(a.attr(attr::HTTP_STATUS), None, "no answer, no status");
    assert_eq!(a.attr(attr::RESPONSE_BYTES), None);
    let b = h.span("b predict").clone();
    assert_eq!(
        b.status,
        Status::Error("not awaited: the request was answered before this call returned".into())
    );
    // b's late answer (if the host still delivers it) makes no second span
    h.answer(calls[1].0, 200, MSG);
    assert_eq!(h.host.spans.len(), 3, "{:?}", h.names());
}

#[test]
fn dispatch_failure_is_an_error_span() {
    let mut h = Harness::new("name: m", on(1.0));
    h.host.fail_dispatch = true;
    let response = respond(h.post("/api/v1.0/predictions", &[], MSG));
    assert_eq!(response.status, 500);
    let m = h.span("m predict");
    assert!(
        matches!(&m.status, Status::Error(t) if t.contains("could not call node `m`")),
        "{:?}",
        m.status
    );
    assert_eq!(h.server().attr(attr::HTTP_STATUS), Some(&int(500)));
}

#[test]
fn a_client_error_is_recorded_but_not_a_server_error() {
    let mut h = Harness::new("name: m", on(1.0));
    let response = respond(h.post("/api/v1.0/predictions", &[], "not json"));
    assert_eq!(response.status, 400);
    assert_eq!(h.host.spans.len(), 1, "no node was called");
    let server = h.server();
    assert_eq!(server.status, Status::Unset);
    assert_eq!(server.attr(attr::HTTP_STATUS), Some(&int(400)));
    assert!(
        matches!(server.attr(attr::FAILURE), Some(AttrValue::Str(t)) if t.contains("bad request"))
    );
}

#[test]
fn body_over_the_limit_ends_the_request_span() {
    let mut h = Harness::new("name: m", on(1.0));
    let headers = vec![
        (":method".to_string(), "POST".to_string()),
        (":path".to_string(), "/api/v1.0/predictions".to_string()),
    ];
    assert_eq!(
        h.exec.on_headers(&mut h.host, headers, false),
        Step::WaitBody
    );
    let r = respond(h.exec.on_body_size(&mut h.host, 5000).unwrap());
    assert_eq!(r.status, 413);
    assert_eq!(h.server().attr(attr::HTTP_STATUS), Some(&int(413)));
}

#[test]
fn feedback_is_traced_with_send_feedback_spans() {
    let mut h = Harness::new("name: m", on(1.0));
    let fb = r#"{"request":{"data":{"ndarray":[[1]]}},"reward":1}"#;
    h.post("/api/v1.0/feedback", &[], fb);
    let (call, step) = h.expect("m", "/send-feedback", "{}");
    respond(step);
    let span = h.span("m send-feedback");
    assert_eq!(span.attr(attr::NODE_METHOD), Some(&s("send-feedback")));
    assert_eq!(h.server().attr(attr::ENDPOINT), Some(&s("feedback")));
    assert_eq!(
        call.header("traceparent"),
        Some(expected_traceparent(span, true).as_str())
    );
}

#[test]
fn probes_are_not_traced_and_keep_headers() {
    let mut h = Harness::new("name: m", on(1.0));
    let tp = traceparent(true);
    let headers = vec![
        (":method".to_string(), "GET".to_string()),
        (":path".to_string(), "/ready".to_string()),
        ("traceparent".to_string(), tp.clone()),
    ];
    h.exec.on_headers(&mut h.host, headers, true);
    let calls = h.new_calls();
    assert_eq!(calls[0].1.header("traceparent"), Some(tp.as_str()));
    respond(h.answer(calls[0].0, 200, "pong"));
    assert!(h.host.spans.is_empty());
}

#[test]
fn tracing_off_makes_no_spans_and_forwards_headers_unchanged() {
    let mut h = Harness::new(ROUTER_GRAPH, None);
    let tp = traceparent(true);
    let b3 = format!("{TID}-{CALLER_SPAN}-1");
    let trace_headers = [
        ("traceparent", tp.as_str()),
        ("tracestate", "vendor=1"),
        ("b3", b3.as_str()),
        ("x-b3-traceid", TID),
        ("x-b3-spanid", CALLER_SPAN),
    ];
    h.post("/api/v1.0/predictions", &trace_headers, MSG);
    let (t_call, _) = h.expect("t", "/transform-input", MSG);
    let (r_call, _) = h.expect("r", "/route", r#"{"data":{"ndarray":[[1]]}}"#);
    let (b_call, step) = h.expect("b", "/predict", MSG);
    respond(step);
    assert!(h.host.spans.is_empty());
    for call in [&t_call, &r_call, &b_call] {
        for (k, v) in trace_headers {
            let values: Vec<&str> = call
                .headers
                .iter()
                .filter(|(name, _)| name == k)
                .map(|(_, v)| v.as_str())
                .collect();
            assert_eq!(values, [v], "{k} as the caller sent it");
        }
    }
}
