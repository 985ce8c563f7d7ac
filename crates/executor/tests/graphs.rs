//! The executor against a scripted fake host: each test sends a request, answers the node calls
//! it sees by token, and checks the calls made and the final response.

use std::collections::BTreeMap;
use std::rc::Rc;

use seldon_executor::{
    Call, CallDone, CallResponse, Host, LogKind, PayloadLog, RequestExecutor, Response, Service,
    Step, cloudevent,
};
use seldon_graph::{FilterConfig, NodeUpstream, PredictiveUnit, Protocol, Transport, compile};
use serde_json::{Value, json};

/// Records dispatched calls; tests answer them by token. The clock advances 1 ms per reading.
#[derive(Default)]
struct FakeHost {
    calls: Vec<(u32, Call)>,
    next_token: u32,
    random: f64,
    fail_dispatch: bool,
    /// Calls handed to `send_later` (payload logs).
    later: Vec<Call>,
    clock_ns: u64,
    /// (node, service, status, elapsed ns) per finished call.
    done: Vec<(String, Service, Option<u16>, u64)>,
}

impl Host for FakeHost {
    fn dispatch(&mut self, call: &Call) -> Result<u32, String> {
        if self.fail_dispatch {
            return Err("BadArgument".into());
        }
        self.next_token += 1;
        self.calls.push((self.next_token, call.clone()));
        Ok(self.next_token)
    }
    fn send_later(&mut self, call: Call) {
        self.later.push(call);
    }
    fn random_f64(&mut self) -> f64 {
        self.random
    }
    fn random_u128(&mut self) -> u128 {
        0x1234_5678_9abc_def0_1234_5678_9abc_def0
    }
    fn now_ns(&mut self) -> u64 {
        self.clock_ns += 1_000_000;
        self.clock_ns
    }
    fn call_done(&mut self, d: &CallDone<'_>) {
        self.done
            .push((d.node.to_string(), d.service, d.status, d.elapsed_ns));
    }
    fn span_done(&mut self, span: seldon_executor::Span) {
        panic!("tracing is off in these tests, yet a span was made: {span:?}");
    }
}

impl FakeHost {
    /// The payload logs sent, as (node, CloudEvent type, body).
    fn logs(&self) -> Vec<(String, String, String)> {
        self.later
            .iter()
            .map(|c| {
                (
                    c.header("ce-modelid").unwrap_or_default().to_string(),
                    c.header("ce-type").unwrap_or_default().to_string(),
                    String::from_utf8_lossy(c.body.as_deref().unwrap_or_default()).into_owned(),
                )
            })
            .collect()
    }
}

struct Harness {
    host: FakeHost,
    exec: RequestExecutor,
    /// Calls already answered or inspected.
    seen: usize,
}

fn plan(protocol: Protocol, graph: &str, limit: u64) -> Rc<seldon_graph::Plan> {
    plan_with(protocol, graph, limit, |_| {})
}

/// `plan`, with `edit` applied to the config before compiling.
fn plan_with(
    protocol: Protocol,
    graph: &str,
    limit: u64,
    edit: impl FnOnce(&mut FilterConfig),
) -> Rc<seldon_graph::Plan> {
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
    let mut cfg = FilterConfig {
        deployment: "sdep".into(),
        namespace: "ns".into(),
        predictor: "default".into(),
        protocol,
        graph,
        nodes,
        body_limit_bytes: limit,
        payload_logger: Some(seldon_graph::PayloadLogger {
            cluster: "logger".into(),
            authority: "logger.local".into(),
            path: "/log".into(),
            timeout_ms: 1000,
        }),
        tracing: None,
    };
    edit(&mut cfg);
    Rc::new(compile(&cfg).unwrap())
}

impl Harness {
    fn new(graph: &str) -> Self {
        Self::with(plan(Protocol::Seldon, graph, 1024))
    }

    fn with(plan: Rc<seldon_graph::Plan>) -> Self {
        Self {
            host: FakeHost::default(),
            exec: RequestExecutor::new(plan),
            seen: 0,
        }
    }

    fn headers(method: &str, path: &str) -> Vec<(String, String)> {
        [
            (":method", method),
            (":path", path),
            (":authority", "gateway"),
            ("content-type", "application/json"),
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            ("x-request-id", "req-1"),
            ("connection", "keep-alive"),
            ("x-envoy-internal", "true"),
            ("content-length", "17"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn post(&mut self, path: &str, body: &str) -> Step {
        let step = self
            .exec
            .on_headers(&mut self.host, Self::headers("POST", path), false);
        assert_eq!(step, Step::WaitBody);
        self.exec.on_body(&mut self.host, body.as_bytes().to_vec())
    }

    fn get(&mut self, path: &str) -> Step {
        self.exec
            .on_headers(&mut self.host, Self::headers("GET", path), true)
    }

    /// The calls dispatched since the last look, as (token, call).
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

    /// Expects exactly one new call, to `node` at `path`; answers it with `body`.
    fn expect(&mut self, node: &str, path: &str, body: &str) -> (Call, Step) {
        let calls = self.new_calls();
        assert_eq!(
            calls.len(),
            1,
            "expected one call to {node}{path}, got {:?}",
            summary(&calls)
        );
        let (token, call) = calls.into_iter().next().unwrap();
        assert_eq!((call.node.as_str(), call.path.as_str()), (node, path));
        let step = self.answer(token, 200, body);
        (call, step)
    }
}

fn summary(calls: &[(u32, Call)]) -> Vec<String> {
    calls
        .iter()
        .map(|(_, c)| format!("{}{}", c.node, c.path))
        .collect()
}

fn respond(step: Step) -> Response {
    match step {
        Step::Respond(r) => r,
        other => panic!("expected a response, got {other:?}"),
    }
}

fn json_body(r: &Response) -> Value {
    serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&r.body)))
}

#[test]
fn single_model_passes_payload_and_headers_through() {
    let mut h = Harness::new("name: m");
    assert_eq!(
        h.post("/api/v1.0/predictions", r#"{"data":{"ndarray":[[1,2]]}}"#),
        Step::Wait
    );
    let (call, step) = h.expect("m", "/predict", r#"{"data":{"ndarray":[[3]]}}"#);
    assert_eq!(
        call.body.as_deref(),
        Some(&br#"{"data":{"ndarray":[[1,2]]}}"#[..])
    );
    assert_eq!(call.cluster, "node_m");
    assert_eq!(call.authority, "m:9000");
    assert_eq!(call.timeout_ms, 500);
    assert_eq!(
        call.header("traceparent"),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    );
    assert_eq!(call.header("x-request-id"), Some("req-1"));
    assert_eq!(call.header("content-type"), Some("application/json"));
    assert_eq!(
        call.header("connection"),
        None,
        "hop-by-hop headers are dropped"
    );
    assert_eq!(call.header("content-length"), None);
    assert_eq!(call.header("x-envoy-internal"), None);
    let puid = call.header("seldon-puid").unwrap().to_string();
    assert_eq!(puid, "12345678-9abc-4ef0-9234-56789abcdef0");
    let r = respond(step);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body, br#"{"data":{"ndarray":[[3]]}}"#,
        "no router: the answer is byte for byte the node's"
    );
    assert_eq!(r.header("seldon-puid"), Some(puid.as_str()));
}

#[test]
fn incoming_puid_is_kept() {
    let mut h = Harness::new("name: m");
    let mut headers = Harness::headers("POST", "/api/v1.0/predictions");
    headers.push(("Seldon-Puid".into(), "abc".into()));
    h.exec.on_headers(&mut h.host, headers, false);
    h.exec.on_body(&mut h.host, b"{}".to_vec());
    let (call, step) = h.expect("m", "/predict", "{}");
    assert_eq!(call.header("seldon-puid"), Some("abc"));
    assert_eq!(respond(step).header("seldon-puid"), Some("abc"));
}

#[test]
fn transformer_model_output_transformer_chain_in_order() {
    let mut h = Harness::new(
        r#"
name: out
type: OUTPUT_TRANSFORMER
children:
- name: tin
  type: TRANSFORMER
  children: [{name: model}]
"#,
    );
    h.post("/api/v1.0/predictions", r#"{"x":0}"#);
    let (c1, _) = h.expect("tin", "/transform-input", r#"{"x":1}"#);
    assert_eq!(c1.body.as_deref(), Some(&br#"{"x":0}"#[..]));
    let (c2, _) = h.expect("model", "/predict", r#"{"x":2}"#);
    assert_eq!(c2.body.as_deref(), Some(&br#"{"x":1}"#[..]));
    let (c3, step) = h.expect("out", "/transform-output", r#"{"x":3}"#);
    assert_eq!(c3.body.as_deref(), Some(&br#"{"x":2}"#[..]));
    assert_eq!(respond(step).body, br#"{"x":3}"#);
}

#[test]
fn router_picks_one_child_and_records_it() {
    let mut h =
        Harness::new("{name: r, type: ROUTER, children: [{name: a}, {name: b}, {name: c}]}");
    h.post("/api/v1.0/predictions", r#"{"data":{"ndarray":[[1]]}}"#);
    let (route_call, _) = h.expect("r", "/route", r#"{"data":{"ndarray":[[1]]}}"#);
    assert_eq!(
        route_call.body.as_deref(),
        Some(&br#"{"data":{"ndarray":[[1]]}}"#[..])
    );
    let (b_call, step) = h.expect(
        "b",
        "/predict",
        r#"{"data":{"ndarray":[[7]]},"meta":{"tags":{"b":true}}}"#,
    );
    assert_eq!(
        b_call.body.as_deref(),
        Some(&br#"{"data":{"ndarray":[[1]]}}"#[..]),
        "router input goes to the child"
    );
    let r = respond(step);
    let body = json_body(&r);
    assert_eq!(body["data"]["ndarray"], json!([[7]]));
    assert_eq!(body["meta"]["routing"], json!({"r": 1}));
    assert_eq!(body["meta"]["tags"], json!({"b": true}));
}

#[test]
fn router_all_children_feed_a_combiner() {
    let mut h = Harness::new(
        "{name: r, type: ROUTER, children: [{name: comb, type: COMBINER, children: [{name: a}, {name: b}]}]}",
    );
    h.post("/api/v1.0/predictions", r#"{"in":1}"#);
    h.expect("r", "/route", "[-1]");
    let calls = h.new_calls();
    assert_eq!(
        summary(&calls),
        ["a/predict", "b/predict"],
        "children are called in parallel"
    );
    // answer out of order: the aggregate list keeps child order
    assert_eq!(h.answer(calls[1].0, 200, r#"{"v":"b"}"#), Step::Wait);
    assert_eq!(h.answer(calls[0].0, 200, r#"{"v":"a"}"#), Step::Wait);
    let (agg, step) = h.expect("comb", "/aggregate", r#"{"data":{"ndarray":[3]}}"#);
    assert_eq!(agg.body.as_deref(), Some(&br#"[{"v":"a"},{"v":"b"}]"#[..]));
    let body = json_body(&respond(step));
    assert_eq!(
        body,
        json!({"data":{"ndarray":[3]},"meta":{"routing":{"r":-1}}})
    );
}

#[test]
fn router_minus_two_returns_the_input() {
    let mut h = Harness::new("{name: r, type: ROUTER, children: [{name: a}]}");
    h.post("/api/v1.0/predictions", r#"{"data":{"ndarray":[[5]]}}"#);
    let (_, step) = h.expect("r", "/route", r#"{"data":{"ndarray":[[-2]]}}"#);
    let body = json_body(&respond(step));
    assert_eq!(
        body,
        json!({"data":{"ndarray":[[5]]},"meta":{"routing":{"r":-2}}})
    );
    assert!(h.new_calls().is_empty());
}

#[test]
fn router_out_of_range_or_malformed_is_a_502_naming_it() {
    let mut h = Harness::new("{name: r, type: ROUTER, children: [{name: a}]}");
    h.post("/api/v1.0/predictions", "{}");
    let r = respond(h.expect("r", "/route", "[3]").1);
    assert_eq!(r.status, 502);
    assert_eq!(r.header("seldon-node"), Some("r"));
    let body = json_body(&r);
    assert_eq!(body["status"]["reason"], "BAD_ROUTER_REPLY");
    assert!(
        body["status"]["info"]
            .as_str()
            .unwrap()
            .contains("route 3 but the node has 1 children"),
        "{body}"
    );

    let mut h = Harness::new("{name: r, type: ROUTER, children: [{name: a}]}");
    h.post("/api/v1.0/predictions", "{}");
    let r = respond(h.expect("r", "/route", "not json").1);
    assert_eq!(r.status, 502);
    assert!(
        json_body(&r)["status"]["info"]
            .as_str()
            .unwrap()
            .starts_with("router `r` gave an unusable reply")
    );
}

#[test]
fn abtest_routes_in_the_filter() {
    for (random, expected) in [(0.1, "a"), (0.9, "b")] {
        let mut h = Harness::new(
            "{name: ab, type: ROUTER, implementation: RANDOM_ABTEST, parameters: [{name: ratioA, value: '0.5', type: FLOAT}], children: [{name: a}, {name: b}]}",
        );
        h.host.random = random;
        h.post("/api/v1.0/predictions", "{}");
        let (_, step) = h.expect(expected, "/predict", r#"{"data":{}}"#);
        let body = json_body(&respond(step));
        assert_eq!(
            body["meta"]["routing"]["ab"],
            json!(if expected == "a" { 0 } else { 1 })
        );
    }
}

#[test]
fn feedback_follows_recorded_route_and_reaches_the_router() {
    let mut h = Harness::new("{name: r, type: ROUTER, children: [{name: a}, {name: b}]}");
    let fb = r#"{"request":{"data":{"ndarray":[[1]]}},"response":{"meta":{"routing":{"r":1}}},"reward":0.75}"#;
    h.post("/api/v1.0/feedback", fb);
    let (child, _) = h.expect("b", "/send-feedback", r#"{"from":"b"}"#);
    assert_eq!(child.body.as_deref(), Some(fb.as_bytes()));
    let (router, step) = h.expect("r", "/send-feedback", r#"{"from":"r"}"#);
    assert_eq!(
        router.body.as_deref(),
        Some(fb.as_bytes()),
        "the router gets the reward"
    );
    assert_eq!(respond(step).body, br#"{"from":"r"}"#);
}

#[test]
fn feedback_without_routing_goes_everywhere_and_skips_combiners() {
    let mut h = Harness::new("{name: c, type: COMBINER, children: [{name: a}, {name: b}]}");
    h.post("/api/v1.0/feedback", r#"{"reward":1}"#);
    let calls = h.new_calls();
    assert_eq!(summary(&calls), ["a/send-feedback", "b/send-feedback"]);
    h.answer(calls[0].0, 200, r#"{"a":1}"#);
    let r = respond(h.answer(calls[1].0, 200, r#"{"b":1}"#));
    assert_eq!(
        r.body, br#"{"a":1}"#,
        "a combiner takes no feedback: the first child's reply is returned"
    );
}

#[test]
fn malformed_feedback_is_a_400() {
    let mut h = Harness::new("{name: r, type: ROUTER, children: [{name: a}]}");
    let r = respond(h.post("/api/v1.0/feedback", "{nope"));
    assert_eq!(r.status, 400);
    assert_eq!(json_body(&r)["status"]["reason"], "BAD_FEEDBACK");
    let mut h = Harness::new("{name: r, type: ROUTER, children: [{name: a}]}");
    let r = respond(h.post(
        "/api/v1.0/feedback",
        r#"{"response":{"meta":{"routing":{"r":4}}}}"#,
    ));
    assert_eq!(r.status, 400);
    assert_eq!(r.header("seldon-node"), Some("r"));
}

#[test]
fn node_error_passes_through_with_its_status_and_body() {
    let mut h = Harness::new("{name: t, type: TRANSFORMER, children: [{name: m}]}");
    h.post("/api/v1.0/predictions", "{}");
    h.expect("t", "/transform-input", "{}");
    let calls = h.new_calls();
    let err = r#"{"status":{"code":-1,"info":"bad","reason":"MICROSERVICE_BAD_DATA","status":1}}"#;
    let r = respond(h.answer(calls[0].0, 400, err));
    assert_eq!(r.status, 400);
    assert_eq!(r.body, err.as_bytes());
    assert_eq!(r.header("seldon-node"), Some("m"));
}

#[test]
fn transport_failures_name_the_node() {
    let cases = [
        (None, vec![], 503, "NODE_UNREACHABLE"),
        (
            Some(503),
            b"upstream connect error or disconnect/reset before headers".to_vec(),
            503,
            "NODE_UNREACHABLE",
        ),
        (
            Some(504),
            b"upstream request timeout".to_vec(),
            504,
            "NODE_TIMEOUT",
        ),
    ];
    for (status, body, want, reason) in cases {
        let mut h = Harness::new("name: m");
        h.post("/api/v1.0/predictions", "{}");
        let token = h.new_calls()[0].0;
        let r = respond(h.exec.on_call_response(
            &mut h.host,
            token,
            CallResponse {
                status,
                headers: vec![],
                body,
            },
        ));
        assert_eq!(r.status, want);
        assert_eq!(r.header("seldon-node"), Some("m"));
        let body = json_body(&r);
        assert_eq!(body["status"]["reason"], reason);
        assert_eq!(body["status"]["status"], "FAILURE");
        assert!(
            body["status"]["info"]
                .as_str()
                .unwrap()
                .contains("node `m`"),
            "{body}"
        );
    }
}

#[test]
fn first_failure_answers_and_late_answers_are_ignored() {
    let mut h = Harness::new("{name: c, type: COMBINER, children: [{name: a}, {name: b}]}");
    h.post("/api/v1.0/predictions", "{}");
    let calls = h.new_calls();
    let r = respond(h.answer(calls[0].0, 500, "boom"));
    assert_eq!((r.status, r.header("seldon-node")), (500, Some("a")));
    assert_eq!(h.answer(calls[1].0, 200, "{}"), Step::Wait);
    assert!(h.new_calls().is_empty(), "no aggregate after a failure");
}

#[test]
fn combiner_input_that_is_not_json_blames_the_child() {
    // Declared JSON: caught at the child's hop.
    let mut h = Harness::new("{name: c, type: COMBINER, children: [{name: a}, {name: b}]}");
    h.post("/api/v1.0/predictions", "{}");
    let calls = h.new_calls();
    h.answer(calls[0].0, 200, "{}");
    let r = respond(h.answer(calls[1].0, 200, "plain text"));
    assert_eq!((r.status, r.header("seldon-node")), (502, Some("b")));
    assert_eq!(json_body(&r)["status"]["reason"], "BAD_NODE_OUTPUT");
    // Declared text: passes its hop, cannot be aggregated; still the child's fault.
    let mut h = Harness::new("{name: c, type: COMBINER, children: [{name: a}, {name: b}]}");
    h.post("/api/v1.0/predictions", "{}");
    let calls = h.new_calls();
    h.answer(calls[0].0, 200, "{}");
    let r = respond(answer_typed(&mut h, calls[1].0, 200, "text/plain", "plain"));
    assert_eq!((r.status, r.header("seldon-node")), (502, Some("b")));
    let body = json_body(&r);
    assert_eq!(body["status"]["reason"], "BAD_NODE_OUTPUT");
    let info = body["status"]["info"].as_str().unwrap();
    assert!(
        info.contains("cannot be the input of /aggregate on `c`"),
        "{info}"
    );
    assert!(h.new_calls().is_empty(), "no aggregate call");
}

#[test]
fn dispatch_failure_is_a_500() {
    let mut h = Harness::new("name: m");
    h.host.fail_dispatch = true;
    let r = respond(h.post("/api/v1.0/predictions", "{}"));
    assert_eq!(r.status, 500);
    assert!(
        json_body(&r)["status"]["info"]
            .as_str()
            .unwrap()
            .contains("BadArgument")
    );
}

#[test]
fn body_limit_is_enforced_on_both_sides() {
    let mut h = Harness::with(plan(Protocol::Seldon, "name: m", 10));
    h.exec.on_headers(
        &mut h.host,
        Harness::headers("POST", "/api/v1.0/predictions"),
        false,
    );
    assert_eq!(
        h.exec.on_body_size(&mut h.host, 10),
        None,
        "exactly the limit is accepted"
    );
    let r = respond(h.exec.on_body_size(&mut h.host, 11).unwrap());
    assert_eq!(r.status, 413);
    assert_eq!(
        r.header("seldon-puid"),
        Some("12345678-9abc-4ef0-9234-56789abcdef0"),
        "every answer carries the puid"
    );
    assert!(
        json_body(&r)["status"]["info"]
            .as_str()
            .unwrap()
            .contains("limit of 10 bytes")
    );
}

#[test]
fn unknown_paths_methods_and_models() {
    let mut h = Harness::new("name: m");
    let r = respond(h.get("/nope"));
    assert_eq!(r.status, 404);
    assert!(
        json_body(&r)["status"]["info"]
            .as_str()
            .unwrap()
            .contains("/api/v1.0/predictions")
    );
    let mut h = Harness::new("name: m");
    assert_eq!(respond(h.get("/api/v1.0/predictions")).status, 405);
    let mut h = Harness::with(plan(Protocol::V2, "name: m", 1024));
    let r = respond(h.exec.on_headers(
        &mut h.host,
        Harness::headers("POST", "/v2/models/other/infer"),
        false,
    ));
    assert_eq!(r.status, 404);
    assert!(
        json_body(&r)["status"]["info"]
            .as_str()
            .unwrap()
            .contains("unknown model \"other\"")
    );
}

#[test]
fn live_needs_no_calls() {
    let mut h = Harness::new("name: m");
    let r = respond(h.get("/live"));
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &br#"{"live":true}"#[..])
    );
    assert!(h.new_calls().is_empty());
}

#[test]
fn v2_chain_turns_outputs_into_inputs() {
    let mut h = Harness::with(plan(
        Protocol::V2,
        "{name: first, children: [{name: second}]}",
        1024,
    ));
    let req = r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1.0]}]}"#;
    assert_eq!(h.post("/v2/models/first/infer", req), Step::Wait);
    let (c1, _) = h.expect(
        "first",
        "/v2/models/first/infer",
        r#"{"model_name":"first","outputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[2.0]}]}"#,
    );
    assert_eq!(c1.body.as_deref(), Some(req.as_bytes()));
    let (c2, step) = h.expect(
        "second",
        "/v2/models/second/infer",
        r#"{"model_name":"second","outputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[3.0]}]}"#,
    );
    let chained: Value = serde_json::from_slice(c2.body.as_deref().unwrap()).unwrap();
    assert_eq!(chained["inputs"][0]["data"], json!([2.0]));
    assert!(chained.get("outputs").is_none() && chained.get("model_name").is_none());
    let body = json_body(&respond(step));
    assert_eq!(body["outputs"][0]["data"], json!([3.0]));
}

#[test]
fn ready_probes_every_node() {
    let mut h = Harness::new("{name: r, type: ROUTER, children: [{name: a}]}");
    assert_eq!(h.get("/ready"), Step::Wait);
    let calls = h.new_calls();
    assert_eq!(summary(&calls), ["r/health/ping", "a/health/ping"]);
    assert!(
        calls
            .iter()
            .all(|(_, c)| c.method == "GET" && c.body.is_none())
    );
    h.answer(calls[0].0, 200, "pong");
    let r = respond(h.answer(calls[1].0, 200, "pong"));
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &br#"{"ready":true}"#[..])
    );

    let mut h = Harness::new("{name: r, type: ROUTER, children: [{name: a}]}");
    h.get("/ready");
    let calls = h.new_calls();
    let r = respond(h.answer(calls[1].0, 503, "loading"));
    assert_eq!((r.status, r.header("seldon-node")), (503, Some("a")));
}

#[test]
fn metadata_is_built_from_every_node() {
    let mut h = Harness::new("{name: t, type: TRANSFORMER, children: [{name: m}]}");
    h.get("/api/v1.0/metadata");
    let calls = h.new_calls();
    assert_eq!(summary(&calls), ["t/metadata", "m/metadata"]);
    h.answer(
        calls[0].0,
        200,
        r#"{"name":"t","inputs":[{"name":"raw"}],"outputs":[{"name":"feat"}]}"#,
    );
    let r = respond(h.answer(
        calls[1].0,
        200,
        r#"{"name":"m","inputs":[{"name":"feat"}],"outputs":[{"name":"proba"}]}"#,
    ));
    let body = json_body(&r);
    assert_eq!(body["name"], "default");
    assert_eq!(body["graphinputs"], json!([{"name":"raw"}]));
    assert_eq!(body["graphoutputs"], json!([{"name":"proba"}]));
    assert_eq!(body["models"]["m"]["name"], "m");
}

#[test]
fn payload_logs_follow_each_nodes_mode() {
    let mut h = Harness::new(
        "{name: t, type: TRANSFORMER, logger: {mode: request}, children: [{name: m, logger: {mode: all}}]}",
    );
    h.post("/api/v1.0/predictions", r#"{"in":1}"#);
    h.expect("t", "/transform-input", r#"{"mid":1}"#);
    let (_, step) = h.expect("m", "/predict", r#"{"out":1}"#);
    respond(step);
    let (req, resp) = (LogKind::Request.ce_type(), LogKind::Response.ce_type());
    let expected = [
        ("t", req, r#"{"in":1}"#),
        ("m", req, r#"{"mid":1}"#),
        ("m", resp, r#"{"out":1}"#),
    ]
    .map(|(n, t, b)| (n.to_string(), t.to_string(), b.to_string()));
    assert_eq!(
        h.host.logs(),
        expected,
        "t logs only its request (the subtree's input); m logs both"
    );
    for call in &h.host.later {
        assert_eq!(
            call.header("ce-requestid"),
            Some("12345678-9abc-4ef0-9234-56789abcdef0")
        );
        assert_eq!(
            (call.cluster.as_str(), call.path.as_str(), call.method),
            ("logger", "/log", "POST"),
            "the executor builds the CloudEvent call itself"
        );
        assert_eq!(
            call.header("ce-id").map(str::len),
            Some(36),
            "a UUID per event"
        );
    }
    assert!(
        h.host.calls.iter().all(|(_, c)| c.cluster != "logger"),
        "payload logs are never dispatched inside the request"
    );
}

#[test]
fn skip_logging_header_turns_logging_off() {
    let mut h = Harness::new("{name: m, logger: {mode: all}}");
    let mut headers = Harness::headers("POST", "/api/v1.0/predictions");
    headers.push(("Seldon-Skip-Logging".into(), "On".into()));
    h.exec.on_headers(&mut h.host, headers, false);
    h.exec.on_body(&mut h.host, b"{}".to_vec());
    respond(h.expect("m", "/predict", "{}").1);
    assert!(h.host.later.is_empty());
}

#[test]
fn feedback_is_logged_for_response_loggers() {
    let mut h = Harness::new("{name: m, logger: {mode: response}}");
    h.post("/api/v1.0/feedback", r#"{"reward":1}"#);
    respond(h.expect("m", "/send-feedback", "{}").1);
    let logs = h.host.logs();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].1, "io.seldon.serving.feedback");
}

#[test]
fn cloudevent_carries_seldon_headers() {
    let plan = plan(Protocol::Seldon, "{name: m, logger: {mode: all}}", 1024);
    let log = PayloadLog {
        node: "m".into(),
        kind: LogKind::Response,
        body: b"{}".to_vec(),
        content_type: None,
        puid: "p1".into(),
    };
    let call = cloudevent(&plan, &log, "id-1".into()).unwrap();
    assert_eq!(
        (
            call.cluster.as_str(),
            call.path.as_str(),
            call.authority.as_str()
        ),
        ("logger", "/log", "logger.local")
    );
    for (k, v) in [
        ("ce-specversion", "1.0"),
        ("ce-id", "id-1"),
        ("ce-type", "io.seldon.serving.inference.response"),
        ("ce-modelid", "m"),
        ("ce-requestid", "p1"),
        ("ce-inferenceservicename", "sdep"),
        ("ce-namespace", "ns"),
        ("ce-endpoint", "default"),
        ("ce-protocol", "seldon"),
        ("content-type", "application/json"),
    ] {
        assert_eq!(call.header(k), Some(v), "{k}");
    }
    let mut no_logger = (*plan).clone();
    no_logger.payload_logger = None;
    assert_eq!(cloudevent(&no_logger, &log, "id".into()), None);
}

#[test]
fn finished_calls_are_reported_once_with_node_service_and_latency() {
    let mut h = Harness::new("{name: r, type: ROUTER, children: [{name: a}, {name: b}]}");
    h.post("/api/v1.0/predictions", "{}");
    h.expect("r", "/route", "[1]");
    let (_, step) = h.expect("b", "/predict", "{}");
    respond(step);
    assert_eq!(
        h.host.done,
        [
            ("r".to_string(), Service::Route, Some(200), 1_000_000),
            ("b".to_string(), Service::Predict, Some(200), 1_000_000),
        ]
    );
}

#[test]
fn late_answers_are_still_reported_but_change_nothing() {
    let mut h = Harness::new("{name: c, type: COMBINER, children: [{name: a}, {name: b}]}");
    h.post("/api/v1.0/predictions", "{}");
    let calls = h.new_calls();
    respond(h.answer(calls[0].0, 500, "boom"));
    assert_eq!(h.answer(calls[1].0, 200, "{}"), Step::Wait);
    assert_eq!(h.answer(calls[1].0, 200, "{}"), Step::Wait, "unknown token");
    let statuses: Vec<_> = h.host.done.iter().map(|d| (d.0.as_str(), d.2)).collect();
    assert_eq!(statuses, [("a", Some(500)), ("b", Some(200))]);
}

// --- the whole external API (issue 12, item 4) ---

/// A node's answer with a content type of its own.
fn answer_typed(h: &mut Harness, token: u32, status: u16, content_type: &str, body: &str) -> Step {
    let response = CallResponse {
        status: Some(status),
        headers: vec![
            ("content-type".into(), content_type.into()),
            ("x-envoy-upstream-service-time".into(), "1".into()),
        ],
        body: body.as_bytes().to_vec(),
    };
    h.exec.on_call_response(&mut h.host, token, response)
}

#[test]
fn node_metadata_is_the_nodes_answer_passed_through() {
    let mut h = Harness::new("{name: t, type: TRANSFORMER, children: [{name: m}]}");
    assert_eq!(h.get("/api/v1.0/metadata/m"), Step::Wait);
    let calls = h.new_calls();
    assert_eq!(summary(&calls), ["m/metadata"]);
    assert_eq!(calls[0].1.method, "GET");
    let meta = r#"{"name":"m","versions":["v7"],"inputs":[]}"#;
    let r = respond(answer_typed(
        &mut h,
        calls[0].0,
        200,
        "application/json",
        meta,
    ));
    assert_eq!((r.status, r.body.as_slice()), (200, meta.as_bytes()));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("seldon-puid").is_some());
    // v0.1 path too, as Seldon's executor serves it
    let mut h = Harness::new("name: m");
    h.get("/api/v0.1/metadata/m");
    assert_eq!(summary(&h.new_calls()), ["m/metadata"]);
}

#[test]
fn node_metadata_and_status_failures() {
    let mut h = Harness::new("name: m");
    let r = respond(h.get("/api/v1.0/metadata/nope"));
    assert_eq!(r.status, 404);
    assert_eq!(json_body(&r)["status"]["info"], "unknown model \"nope\"");
    let mut h =
        Harness::new("{name: ab, implementation: RANDOM_ABTEST, children: [{name: a}, {name: b}]}");
    let r = respond(h.get("/api/v1.0/status/ab"));
    assert_eq!(r.status, 404);
    assert!(
        json_body(&r)["status"]["info"]
            .as_str()
            .unwrap()
            .contains("run by the filter itself (RANDOM_ABTEST)"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let mut h = Harness::new("name: m");
    assert_eq!(
        respond(h.exec.on_headers(
            &mut h.host,
            Harness::headers("POST", "/api/v1.0/status/m"),
            false
        ))
        .status,
        405
    );
    // The node's own error passes through, naming it.
    let mut h = Harness::new("name: m");
    h.get("/api/v1.0/status/m");
    let token = h.new_calls()[0].0;
    let r = respond(h.answer(token, 500, r#"{"status":{"info":"sick"}}"#));
    assert_eq!((r.status, r.header("seldon-node")), (500, Some("m")));
    assert_eq!(r.body, br#"{"status":{"info":"sick"}}"#);
}

#[test]
fn node_status_asks_the_nodes_health_status() {
    let mut h = Harness::new("{name: t, type: TRANSFORMER, children: [{name: m}]}");
    h.get("/api/v1.0/status/t");
    let calls = h.new_calls();
    assert_eq!(summary(&calls), ["t/health/status"]);
    let body = r#"{"strData":"healthy"}"#;
    let r = respond(h.answer(calls[0].0, 200, body));
    assert_eq!((r.status, r.body.as_slice()), (200, body.as_bytes()));
}

#[test]
fn health_paths_answer_without_or_with_probes() {
    let mut h = Harness::new("{name: t, type: TRANSFORMER, children: [{name: m}]}");
    let r = respond(h.get("/health/ping"));
    assert_eq!((r.status, r.body.as_slice()), (200, &b"pong"[..]));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert!(h.new_calls().is_empty(), "ping is the filter's own");
    for path in [
        "/health/status",
        "/api/v1.0/status",
        "/api/v1.0/health/status",
    ] {
        let mut h = Harness::new("{name: t, type: TRANSFORMER, children: [{name: m}]}");
        assert_eq!(h.get(path), Step::Wait);
        let calls = h.new_calls();
        assert_eq!(
            summary(&calls),
            ["t/health/ping", "m/health/ping"],
            "{path}"
        );
        h.answer(calls[0].0, 200, "pong");
        let r = respond(h.answer(calls[1].0, 200, "pong"));
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &br#"{"ready":true}"#[..])
        );
    }
    let mut h = Harness::new("name: m");
    h.get("/health/status");
    let token = h.new_calls()[0].0;
    let r = respond(h.answer(token, 503, "loading"));
    assert_eq!((r.status, r.header("seldon-node")), (503, Some("m")));
    assert_eq!(json_body(&r)["status"]["reason"], "NOT_READY");
}

fn v2_chain() -> Harness {
    Harness::with(plan(
        Protocol::V2,
        "{name: first, children: [{name: second}]}",
        1024,
    ))
}

#[test]
fn v2_model_metadata_and_ready_of_a_node_pass_through() {
    let mut h = v2_chain();
    h.get("/v2/models/second");
    let calls = h.new_calls();
    assert_eq!(summary(&calls), ["second/v2/models/second"]);
    let meta = r#"{"name":"second","platform":"p","inputs":[],"outputs":[]}"#;
    let r = respond(h.answer(calls[0].0, 200, meta));
    assert_eq!(r.body, meta.as_bytes());

    let mut h = v2_chain();
    h.get("/v2/models/first/versions/1");
    assert_eq!(summary(&h.new_calls()), ["first/v2/models/first"]);

    let mut h = v2_chain();
    h.get("/v2/models/second/ready");
    let calls = h.new_calls();
    assert_eq!(summary(&calls), ["second/v2/models/second/ready"]);
    let r = respond(h.answer(calls[0].0, 200, r#"{"name":"second","ready":true}"#));
    assert_eq!(json_body(&r), json!({"name": "second", "ready": true}));
}

#[test]
fn v2_deployment_is_the_graph_as_one_model() {
    let mut h = v2_chain();
    h.get("/v2/models/sdep");
    let calls = h.new_calls();
    assert_eq!(
        summary(&calls),
        ["first/v2/models/first", "second/v2/models/second"],
        "the reading node and the answering node"
    );
    h.answer(
        calls[0].0,
        200,
        r#"{"name":"first","inputs":[{"name":"in1"}],"outputs":[{"name":"out1"}]}"#,
    );
    let r = respond(h.answer(
        calls[1].0,
        200,
        r#"{"name":"second","inputs":[{"name":"in2"}],"outputs":[{"name":"out2"}]}"#,
    ));
    assert_eq!(
        json_body(&r),
        json!({"name": "sdep", "versions": [], "platform": "seldon-mesh",
               "inputs": [{"name": "in1"}], "outputs": [{"name": "out2"}]})
    );

    let mut h = v2_chain();
    h.get("/v2/models/sdep/ready");
    let calls = h.new_calls();
    assert_eq!(
        summary(&calls),
        [
            "first/v2/models/first/ready",
            "second/v2/models/second/ready"
        ]
    );
    h.answer(calls[0].0, 200, "{}");
    let r = respond(h.answer(calls[1].0, 200, "{}"));
    assert_eq!(json_body(&r), json!({"name": "sdep", "ready": true}));
}

#[test]
fn v2_infer_without_a_model_name_runs_the_graph() {
    let mut h = v2_chain();
    let req = r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1.0]}]}"#;
    assert_eq!(h.post("/v2/models/infer", req), Step::Wait);
    let (c1, _) = h.expect(
        "first",
        "/v2/models/first/infer",
        r#"{"outputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[2.0]}]}"#,
    );
    assert_eq!(c1.body.as_deref(), Some(req.as_bytes()));
    let (_, step) = h.expect("second", "/v2/models/second/infer", r#"{"outputs":[]}"#);
    assert_eq!(respond(step).body, br#"{"outputs":[]}"#);
    let mut h = v2_chain();
    assert_eq!(respond(h.get("/v2/models/infer")).status, 405);
}

#[test]
fn each_protocol_serves_its_own_api() {
    let mut h = v2_chain();
    let r = respond(h.exec.on_headers(
        &mut h.host,
        Harness::headers("POST", "/api/v1.0/predictions"),
        false,
    ));
    assert_eq!(r.status, 404);
    let info = json_body(&r)["status"]["info"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        info.starts_with("/api/v1.0/predictions is not served for a v2 protocol graph")
            && info.contains("/v2/models/<model>/infer"),
        "{info}"
    );
    let mut h = v2_chain();
    let r = respond(h.get("/api/v1.0/metadata"));
    assert_eq!(r.status, 404);
    let mut h = Harness::new("name: m");
    let r = respond(h.exec.on_headers(
        &mut h.host,
        Harness::headers("POST", "/v2/models/m/infer"),
        false,
    ));
    assert_eq!(r.status, 404);
    assert!(
        json_body(&r)["status"]["info"]
            .as_str()
            .unwrap()
            .contains("is not served for a seldon protocol graph"),
    );
    assert!(h.new_calls().is_empty());
}

#[test]
fn feedback_on_a_v2_graph_is_refused_clearly() {
    let mut h = v2_chain();
    let r = respond(h.exec.on_headers(
        &mut h.host,
        Harness::headers("POST", "/api/v1.0/feedback"),
        false,
    ));
    assert_eq!(r.status, 404);
    let body = json_body(&r);
    assert_eq!(body["status"]["reason"], "NOT_FOUND");
    assert_eq!(
        body["status"]["info"],
        "feedback is a Seldon protocol call: v2 graphs take none (Seldon's executor serves /api/v1.0/feedback only for protocol seldon)"
    );
    assert!(h.new_calls().is_empty(), "nothing is posted to /infer");
}

#[test]
fn feedback_skips_v2_nodes_of_a_seldon_graph() {
    let plan = plan_with(
        Protocol::Seldon,
        "{name: t, type: TRANSFORMER, children: [{name: m}]}",
        1024,
        |cfg| cfg.nodes.get_mut("m").unwrap().protocol = Some(Protocol::V2),
    );
    let mut h = Harness::with(plan);
    h.post("/api/v1.0/feedback", r#"{"reward":1}"#);
    let calls = h.new_calls();
    assert!(
        calls.is_empty(),
        "neither the transformer nor the v2 model take feedback: {:?}",
        summary(&calls)
    );
}

fn v2_abtest(random: f64) -> Harness {
    let plan = plan_with(
        Protocol::V2,
        "{name: ab, implementation: RANDOM_ABTEST, parameters: [{name: ratioA, value: '0.3', type: FLOAT}], children: [{name: a}, {name: b}]}",
        1024,
        |cfg| {
            cfg.nodes.remove("ab");
        },
    );
    let mut h = Harness::with(plan);
    h.host.random = random;
    h
}

#[test]
fn v2_random_abtest_splits_in_the_filter() {
    let req = r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1.0]}]}"#;
    for (random, child) in [(0.29, "a"), (0.3, "b"), (0.9, "b")] {
        let mut h = v2_abtest(random);
        assert_eq!(h.post("/v2/models/ab/infer", req), Step::Wait);
        let answer = format!(r#"{{"model_name":"{child}","outputs":[]}}"#);
        let (call, step) = h.expect(child, &format!("/v2/models/{child}/infer"), &answer);
        assert_eq!(
            call.body.as_deref(),
            Some(req.as_bytes()),
            "the request reaches the child unchanged"
        );
        assert_eq!(
            respond(step).body,
            answer.as_bytes(),
            "v2 answers pass through untouched (no meta to put routing in)"
        );
    }
    let mut h = v2_abtest(0.1);
    assert_eq!(h.post("/v2/models/infer", req), Step::Wait);
    assert_eq!(summary(&h.new_calls()), ["a/v2/models/a/infer"]);
    // the root runs in the filter: its name and the deployment's name mean the graph
    let mut h = v2_abtest(0.1);
    h.get("/v2/models/ab");
    assert_eq!(
        summary(&h.new_calls()),
        ["a/v2/models/a"],
        "the first child reads and answers"
    );
}

#[test]
fn grpc_methods_are_refused_clearly() {
    for (protocol, method, hint) in [
        (
            Protocol::Seldon,
            "/tensorflow.serving.PredictionService/Predict",
            "POST /api/v1.0/predictions",
        ),
        (
            Protocol::V2,
            "/inference.GRPCInferenceService/ModelStreamInfer",
            "POST /v2/models/<model>/infer",
        ),
    ] {
        let mut h = Harness::with(plan(protocol, "name: m", 1024));
        let mut headers = Harness::headers("POST", method);
        headers.retain(|(k, _)| k != "content-type");
        headers.push(("content-type".into(), "application/grpc".into()));
        let r = respond(h.exec.on_headers(&mut h.host, headers, false));
        assert_eq!(
            r.status, 404,
            "Envoy maps it to grpc-status 12, UNIMPLEMENTED"
        );
        let body = json_body(&r);
        assert_eq!(body["status"]["reason"], "GRPC_NOT_SERVED");
        assert_eq!(
            body["status"]["info"],
            format!("gRPC at the graph entry is not served yet ({method}); use REST: {hint}")
        );
        assert!(h.new_calls().is_empty());
    }
}

#[test]
fn v2_graph_metadata_shows_null_for_a_node_answer_that_is_not_json() {
    let mut h = v2_chain();
    h.get("/v2/models/sdep");
    let calls = h.new_calls();
    h.answer(calls[0].0, 200, "not json");
    let r = respond(h.answer(calls[1].0, 200, r#"{"outputs":[{"name":"o"}]}"#));
    assert_eq!(
        json_body(&r),
        json!({"name": "sdep", "versions": [], "platform": "seldon-mesh",
               "inputs": null, "outputs": [{"name": "o"}]})
    );
    // A node that fails its metadata call fails the request, naming it.
    let mut h = v2_chain();
    h.get("/v2/models/sdep");
    let calls = h.new_calls();
    let r = respond(h.answer(calls[1].0, 500, "boom"));
    assert_eq!((r.status, r.header("seldon-node")), (500, Some("second")));
}

// ------------------------------------------------- issue 11: check at every hop, blame the node

/// The failure body's `status.info`, after checking the common parts of a hop failure.
fn hop_failure(r: &Response, status: u16, node: Option<&str>, reason: &str) -> String {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("seldon-node"), node);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body = json_body(r);
    assert_eq!(body["status"]["reason"], reason, "{body}");
    assert_eq!(body["status"]["code"], status);
    body["status"]["info"].as_str().unwrap().to_string()
}

#[test]
fn a_leaf_answering_200_garbage_is_a_502_naming_it() {
    for (answer, says) in [
        ("garbage", "not valid JSON"),
        ("[1,2]", "must be a JSON object, found an array"),
        ("", "not valid JSON"),
    ] {
        let mut h = Harness::new("name: m");
        h.post("/api/v1.0/predictions", "{}");
        let r = respond(h.expect("m", "/predict", answer).1);
        let info = hop_failure(&r, 502, Some("m"), "BAD_NODE_OUTPUT");
        assert!(
            info.contains("node `m` gave an unusable answer (/predict)"),
            "{info}"
        );
        assert!(info.contains(says), "{info}");
    }
}

#[test]
fn a_transformers_bad_answer_blames_it_and_never_reaches_the_model() {
    let mut h = Harness::new("{name: t, type: TRANSFORMER, children: [{name: m}]}");
    h.post("/api/v1.0/predictions", "{}");
    let r = respond(h.expect("t", "/transform-input", "garbage").1);
    let info = hop_failure(&r, 502, Some("t"), "BAD_NODE_OUTPUT");
    assert!(info.contains("/transform-input"), "{info}");
    assert!(h.new_calls().is_empty(), "the model is never called");

    // Over the body limit (1024 here): 502 naming the transformer, not a 413 from the model.
    let mut h = Harness::new("{name: t, type: TRANSFORMER, children: [{name: m}]}");
    h.post("/api/v1.0/predictions", "{}");
    let big = format!(r#"{{"data":{{"strData":"{}"}}}}"#, "x".repeat(2000));
    let r = respond(h.expect("t", "/transform-input", &big).1);
    let info = hop_failure(&r, 502, Some("t"), "NODE_OUTPUT_TOO_LARGE");
    assert!(
        info.contains(&format!("answered {} bytes", big.len())),
        "{info}"
    );
    assert!(info.contains("limit of 1024 bytes"), "{info}");
    assert!(h.new_calls().is_empty());

    // Exactly the limit passes.
    let mut h = Harness::new("{name: t, type: TRANSFORMER, children: [{name: m}]}");
    h.post("/api/v1.0/predictions", "{}");
    let at_limit = format!(r#"{{"s":"{}"}}"#, "x".repeat(1024 - 8));
    assert_eq!(at_limit.len(), 1024);
    h.expect("t", "/transform-input", &at_limit);
    let (call, _) = h.expect("m", "/predict", "{}");
    assert_eq!(call.body.as_deref(), Some(at_limit.as_bytes()));
}

#[test]
fn output_transformer_and_feedback_answers_are_checked_too() {
    let mut h = Harness::new("{name: o, type: OUTPUT_TRANSFORMER, children: [{name: m}]}");
    h.post("/api/v1.0/predictions", "{}");
    h.expect("m", "/predict", "{}");
    let r = respond(h.expect("o", "/transform-output", "nope").1);
    hop_failure(&r, 502, Some("o"), "BAD_NODE_OUTPUT");

    let mut h = Harness::new("name: m");
    h.post("/api/v1.0/feedback", r#"{"reward":1}"#);
    let r = respond(h.expect("m", "/send-feedback", "nope").1);
    let info = hop_failure(&r, 502, Some("m"), "BAD_NODE_OUTPUT");
    assert!(info.contains("/send-feedback"), "{info}");
}

#[test]
fn an_answer_declared_as_another_type_passes_with_its_type() {
    let mut h = Harness::new("name: m");
    h.post("/api/v1.0/predictions", "{}");
    let token = h.new_calls()[0].0;
    let r = respond(answer_typed(&mut h, token, 200, "text/plain", "hello"));
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
    assert_eq!(r.header("content-type"), Some("text/plain"));
}

#[test]
fn a_nodes_non_json_error_is_wrapped_keeping_its_status() {
    let mut h = Harness::new("{name: t, type: TRANSFORMER, children: [{name: m}]}");
    h.post("/api/v1.0/predictions", "{}");
    h.expect("t", "/transform-input", "{}");
    let token = h.new_calls()[0].0;
    let r = respond(answer_typed(
        &mut h,
        token,
        500,
        "text/html",
        "<h1>Internal \"Server\" Error</h1>",
    ));
    let info = hop_failure(&r, 500, Some("m"), "NODE_ERROR");
    assert_eq!(
        info,
        "node `m` answered 500 with a body that is not JSON: <h1>Internal \"Server\" Error</h1>"
    );

    // Long bodies are quoted up to 512 bytes; empty ones are said to be empty.
    let mut h = Harness::new("name: m");
    h.post("/api/v1.0/predictions", "{}");
    let token = h.new_calls()[0].0;
    let long = "e".repeat(5000);
    let r = respond(h.answer(token, 503, &long));
    let info = hop_failure(&r, 503, Some("m"), "NODE_ERROR");
    assert!(
        info.ends_with(&format!("{}… (5000 bytes in all)", "e".repeat(512))),
        "{info}"
    );
    assert!(info.len() < 700);

    let mut h = Harness::new("name: m");
    h.post("/api/v1.0/predictions", "{}");
    let token = h.new_calls()[0].0;
    let r = respond(h.answer(token, 404, ""));
    let info = hop_failure(&r, 404, Some("m"), "NODE_ERROR");
    assert_eq!(info, "node `m` answered 404 with an empty body");

    // A JSON error mislabelled as text passes through, labelled JSON.
    let mut h = Harness::new("name: m");
    h.post("/api/v1.0/predictions", "{}");
    let token = h.new_calls()[0].0;
    let r = respond(answer_typed(
        &mut h,
        token,
        422,
        "text/plain",
        r#"{"error":"x"}"#,
    ));
    assert_eq!(
        (r.status, r.body.as_slice()),
        (422, &br#"{"error":"x"}"#[..])
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("seldon-node"), Some("m"));
}

#[test]
fn the_entry_checks_the_clients_payload_and_blames_the_client() {
    // v1: a JSON object when declared JSON.
    for body in ["garbage", "[1]", ""] {
        let mut h = Harness::new("name: m");
        let r = respond(h.post("/api/v1.0/predictions", body));
        let info = hop_failure(&r, 400, None, "BAD_REQUEST");
        assert!(info.starts_with("bad request: request body"), "{info}");
        assert!(h.new_calls().is_empty(), "no node is called");
    }
    // v2: every tensor fully.
    let mut h = Harness::with(plan(Protocol::V2, "name: m", 1024));
    let r = respond(h.post(
        "/v2/models/m/infer",
        r#"{"inputs":[{"name":"x","shape":[1],"data":[1]}]}"#,
    ));
    let info = hop_failure(&r, 400, None, "BAD_REQUEST");
    assert!(
        info.contains("v2 inference request is invalid: missing field `datatype`"),
        "{info}"
    );
    assert!(h.new_calls().is_empty());
    let mut h = Harness::with(plan(Protocol::V2, "name: m", 1024));
    let r = respond(h.post(
        "/v2/models/m/infer",
        r#"{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[1,2,3]}]}"#,
    ));
    let info = hop_failure(&r, 400, None, "BAD_REQUEST");
    assert!(
        info.contains("tensor `x`: shape [2, 2] needs 4 elements"),
        "{info}"
    );
}

#[test]
fn payloads_not_declared_json_pass_the_entry_unchecked() {
    let mut h = Harness::new("name: m");
    let mut headers = Harness::headers("POST", "/api/v1.0/predictions");
    for (k, v) in headers.iter_mut() {
        if k == "content-type" {
            *v = "application/x-www-form-urlencoded".into();
        }
    }
    assert_eq!(
        h.exec.on_headers(&mut h.host, headers, false),
        Step::WaitBody
    );
    h.exec.on_body(&mut h.host, b"json=%7B%7D".to_vec());
    let (call, _) = h.expect("m", "/predict", "{}");
    assert_eq!(call.body.as_deref(), Some(&b"json=%7B%7D"[..]));
}

#[test]
fn a_v2_node_answer_that_cannot_feed_the_next_blames_the_producer() {
    for answer in ["{}", r#"{"outputs":[{"name":"y","shape":[1]}]}"#, "garbage"] {
        let mut h = v2_pair();
        h.post("/v2/models/first/infer", V2_REQ);
        let r = respond(h.expect("first", "/v2/models/first/infer", answer).1);
        let info = hop_failure(&r, 502, Some("first"), "BAD_NODE_OUTPUT");
        assert!(info.contains("node `first`"), "{info}");
        assert!(h.new_calls().is_empty(), "`second` is never called");
    }
    // The leaf too: a v2 client never gets a 200 that is not an InferenceResponse.
    let mut h = v2_pair();
    h.post("/v2/models/first/infer", V2_REQ);
    h.expect("first", "/v2/models/first/infer", V2_RESP);
    let r = respond(
        h.expect(
            "second",
            "/v2/models/second/infer",
            r#"{"model_name":"second"}"#,
        )
        .1,
    );
    let info = hop_failure(&r, 502, Some("second"), "BAD_NODE_OUTPUT");
    assert!(info.contains("missing field `outputs`"), "{info}");
}

const V2_REQ: &str = r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1.0]}]}"#;
const V2_RESP: &str =
    r#"{"model_name":"first","outputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[2.0]}]}"#;

fn v2_pair() -> Harness {
    Harness::with(plan(
        Protocol::V2,
        "{name: first, children: [{name: second}]}",
        1024,
    ))
}

#[test]
fn v2_binary_extension_bodies_are_not_json_checked_either_way() {
    let mut h = Harness::with(plan(Protocol::V2, "name: m", 1024));
    let mut headers = Harness::headers("POST", "/v2/models/m/infer");
    headers.retain(|(k, _)| k != "content-type");
    headers.push(("content-type".into(), "application/octet-stream".into()));
    headers.push(("inference-header-content-length".into(), "2".into()));
    assert_eq!(
        h.exec.on_headers(&mut h.host, headers, false),
        Step::WaitBody
    );
    let body = b"{}\x00\x01\x02\x03".to_vec();
    assert_eq!(h.exec.on_body(&mut h.host, body.clone()), Step::Wait);
    let (token, call) = h.new_calls().remove(0);
    assert_eq!(call.body.as_deref(), Some(body.as_slice()));
    let answer = CallResponse {
        status: Some(200),
        headers: vec![
            ("content-type".into(), "application/octet-stream".into()),
            ("inference-header-content-length".into(), "2".into()),
            ("x-envoy-upstream-service-time".into(), "1".into()),
        ],
        body: body.clone(),
    };
    let r = respond(h.exec.on_call_response(&mut h.host, token, answer));
    assert_eq!((r.status, r.body), (200, body));
}
