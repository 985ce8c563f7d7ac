//! The tail call (`Step::Tail`): the graph's last node call is handed to the host's router
//! instead of a callout, and its answer, checked like any other, becomes the response.

use std::collections::BTreeMap;
use std::rc::Rc;

use seldon_executor::host::GrpcStatus;
use seldon_executor::{Call, CallDone, CallResponse, Host, RequestExecutor, Response, Step};
use seldon_graph::{FilterConfig, NodeUpstream, PredictiveUnit, Protocol, Transport, compile};
use seldon_protocol::grpc;
use serde_json::{Value, json};

#[derive(Default)]
struct FakeHost {
    calls: Vec<(u32, Call)>,
    done: Vec<(String, Option<u16>)>,
    clock_ns: u64,
}

impl Host for FakeHost {
    fn dispatch(&mut self, call: &Call) -> Result<u32, String> {
        let token = self.calls.len() as u32 + 1;
        self.calls.push((token, call.clone()));
        Ok(token)
    }
    fn send_later(&mut self, _call: Call) {}
    fn random_f64(&mut self) -> f64 {
        0.1
    }
    fn random_u128(&mut self) -> u128 {
        7
    }
    fn now_ns(&mut self) -> u64 {
        self.clock_ns += 1_000_000;
        self.clock_ns
    }
    fn call_done(&mut self, d: &CallDone<'_>) {
        self.done.push((d.node.to_string(), d.status));
    }
    fn span_done(&mut self, _span: seldon_executor::Span) {}
}

fn plan(protocol: Protocol, graph: &str) -> Rc<seldon_graph::Plan> {
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
        protocol,
        graph,
        nodes,
        body_limit_bytes: 1024,
        payload_logger: None,
        tracing: None,
    };
    Rc::new(compile(&cfg).unwrap())
}

struct Run {
    host: FakeHost,
    exec: RequestExecutor,
}

const ONE: &str = r#"{"data":{"ndarray":[[1.0]]}}"#;

impl Run {
    fn new(graph: &str) -> Self {
        Self::with(plan(Protocol::Seldon, graph), true)
    }

    fn with(plan: Rc<seldon_graph::Plan>, tail: bool) -> Self {
        Self {
            host: FakeHost::default(),
            exec: RequestExecutor::new(plan).with_tail_calls(tail),
        }
    }

    fn post(&mut self, path: &str, body: &str) -> Step {
        let headers = [
            (":method", "POST"),
            (":path", path),
            ("content-type", "application/json"),
            ("seldon-puid", "p-1"),
            ("x-request-id", "r-1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            self.exec.on_headers(&mut self.host, headers, false),
            Step::WaitBody
        );
        self.exec.on_body(&mut self.host, body.as_bytes().to_vec())
    }

    /// Answers callout `token` with a 200 JSON `body`.
    fn answer(&mut self, token: u32, body: &str) -> Step {
        self.exec.on_call_response(&mut self.host, token, ok(body))
    }

    fn tail_answer(&mut self, response: CallResponse) -> Response {
        match self.exec.on_tail_response(&mut self.host, response) {
            Step::Respond(r) => r,
            other => panic!("expected the answer, got {other:?}"),
        }
    }

    fn paths(&self) -> Vec<String> {
        self.host
            .calls
            .iter()
            .map(|(_, c)| format!("{}{}", c.node, c.path))
            .collect()
    }
}

fn ok(body: &str) -> CallResponse {
    CallResponse {
        status: Some(200),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("x-envoy-upstream-service-time".into(), "1".into()),
        ],
        body: body.as_bytes().to_vec(),
    }
}

fn tail(step: Step) -> Call {
    match step {
        Step::Tail(call) => call,
        other => panic!("expected a tail call, got {other:?}"),
    }
}

fn json_of(r: &Response) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

#[test]
fn a_one_model_graph_is_one_tail_call_and_its_answer_is_the_response() {
    let mut run = Run::new("name: m");
    let call = tail(run.post("/api/v1.0/predictions", ONE));
    assert!(run.host.calls.is_empty(), "no callout");
    assert!(run.exec.tail_pending());
    assert_eq!(
        (
            call.node.as_str(),
            call.cluster.as_str(),
            call.path.as_str()
        ),
        ("m", "node_m", "/predict")
    );
    assert_eq!(call.body.as_deref(), Some(ONE.as_bytes()));
    assert_eq!(call.header("seldon-puid"), Some("p-1"));
    assert_eq!(call.header("x-request-id"), Some("r-1"));
    assert_eq!(call.header("content-type"), Some("application/json"));
    assert_eq!(call.timeout_ms, 500);
    let r = run.tail_answer(ok(r#"{"data":{"ndarray":[[2.0]]}}"#));
    assert_eq!(r.status, 200);
    assert_eq!(json_of(&r), json!({"data":{"ndarray":[[2.0]]}}));
    assert_eq!(r.header("seldon-puid"), Some("p-1"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(run.host.done, vec![("m".to_string(), Some(200))]);
    assert!(!run.exec.tail_pending());
}

#[test]
fn without_tail_calls_the_same_graph_makes_a_callout() {
    let mut run = Run::with(plan(Protocol::Seldon, "name: m"), false);
    assert_eq!(run.post("/api/v1.0/predictions", ONE), Step::Wait);
    assert_eq!(run.paths(), vec!["m/predict"]);
}

#[test]
fn a_chain_calls_out_then_hands_the_model_to_the_router() {
    let mut run = Run::new(
        "{name: t, type: TRANSFORMER, children: [{name: u, type: TRANSFORMER, children: [{name: m}]}]}",
    );
    assert_eq!(run.post("/api/v1.0/predictions", ONE), Step::Wait);
    assert_eq!(run.answer(1, r#"{"data":{"ndarray":[[5.0]]}}"#), Step::Wait);
    let call = tail(run.answer(2, r#"{"data":{"ndarray":[[6.0]]}}"#));
    assert_eq!(run.paths(), vec!["t/transform-input", "u/transform-input"]);
    assert_eq!((call.node.as_str(), call.path.as_str()), ("m", "/predict"));
    assert_eq!(
        call.body.as_deref(),
        Some(br#"{"data":{"ndarray":[[6.0]]}}"#.as_slice())
    );
    let r = run.tail_answer(ok(r#"{"data":{"ndarray":[[7.0]]}}"#));
    assert_eq!(json_of(&r), json!({"data":{"ndarray":[[7.0]]}}));
}

#[test]
fn the_tail_answer_is_checked_like_a_callouts_and_blames_the_node() {
    let mut run = Run::new("{name: t, type: TRANSFORMER, children: [{name: m}]}");
    run.post("/api/v1.0/predictions", ONE);
    tail(run.answer(1, ONE));
    let r = run.tail_answer(ok("not json"));
    assert_eq!(r.status, 502);
    assert_eq!(r.header("seldon-node"), Some("m"));
    assert_eq!(r.header("seldon-puid"), Some("p-1"));
    assert_eq!(json_of(&r)["status"]["reason"], "BAD_NODE_OUTPUT", "{r:?}");
}

#[test]
fn envoys_own_503_and_504_for_the_tail_name_the_node() {
    for (status, reason, info) in [
        (
            503,
            "NODE_UNREACHABLE",
            "node `m` is unreachable (/predict): Envoy: upstream_reset",
        ),
        (
            504,
            "NODE_TIMEOUT",
            "node `m` timed out after 500 ms (/predict)",
        ),
    ] {
        let mut run = Run::new("name: m");
        tail(run.post("/api/v1.0/predictions", ONE));
        let r = run.tail_answer(CallResponse {
            status: Some(status),
            headers: vec![("content-type".into(), "application/json".into())],
            body: b"Envoy: upstream_reset_before_response_started{connection_failure}".to_vec(),
        });
        assert_eq!(r.status, status);
        assert_eq!(r.header("seldon-node"), Some("m"));
        let body = json_of(&r);
        assert_eq!(body["status"]["reason"], reason, "{body}");
        assert!(
            body["status"]["info"].as_str().unwrap().starts_with(info),
            "{body}"
        );
    }
}

#[test]
fn a_node_error_through_the_tail_keeps_its_status_and_names_the_node() {
    let mut run = Run::new("name: m");
    tail(run.post("/api/v1.0/predictions", ONE));
    let mut answer = ok(r#"{"status":{"code":418,"info":"teapot"}}"#);
    answer.status = Some(418);
    let r = run.tail_answer(answer);
    assert_eq!(r.status, 418);
    assert_eq!(r.header("seldon-node"), Some("m"));
    assert_eq!(json_of(&r)["status"]["info"], "teapot");
}

#[test]
fn a_failed_hand_over_fails_the_request_naming_the_node() {
    let mut run = Run::new("name: m");
    tail(run.post("/api/v1.0/predictions", ONE));
    let Step::Respond(r) = run.exec.on_tail_failed(&mut run.host, "BadArgument".into()) else {
        panic!("expected an answer");
    };
    assert_eq!(r.header("seldon-node"), Some("m"));
    assert!(
        json_of(&r)["status"]["info"]
            .as_str()
            .unwrap()
            .contains("BadArgument")
    );
}

#[test]
fn parallel_children_are_callouts_and_the_combiners_aggregate_is_the_tail() {
    let mut run = Run::new("{name: c, type: COMBINER, children: [{name: a}, {name: b}]}");
    assert_eq!(run.post("/api/v1.0/predictions", ONE), Step::Wait);
    assert_eq!(run.paths(), vec!["a/predict", "b/predict"]);
    assert_eq!(run.answer(1, ONE), Step::Wait);
    let call = tail(run.answer(2, ONE));
    assert_eq!(
        (call.node.as_str(), call.path.as_str()),
        ("c", "/aggregate")
    );
}

#[test]
fn a_routers_route_is_a_callout_its_child_the_tail_and_the_routing_is_added() {
    let mut run = Run::new("{name: r, type: ROUTER, children: [{name: a}, {name: b}]}");
    assert_eq!(run.post("/api/v1.0/predictions", ONE), Step::Wait);
    assert_eq!(run.paths(), vec!["r/route"]);
    let call = tail(run.answer(1, r#"{"data":{"ndarray":[[1]]}}"#));
    assert_eq!(call.node, "b");
    let r = run.tail_answer(ok(ONE));
    assert_eq!(json_of(&r)["meta"]["routing"], json!({"r": 1}));
}

#[test]
fn an_output_transformer_is_the_tail_after_its_child() {
    let mut run = Run::new("{name: o, type: OUTPUT_TRANSFORMER, children: [{name: m}]}");
    assert_eq!(run.post("/api/v1.0/predictions", ONE), Step::Wait);
    assert_eq!(run.paths(), vec!["m/predict"]);
    let call = tail(run.answer(1, ONE));
    assert_eq!(
        (call.node.as_str(), call.path.as_str()),
        ("o", "/transform-output")
    );
}

#[test]
fn feedback_tails_its_last_send_feedback_and_probes_stay_callouts() {
    let mut run = Run::new("name: m");
    let step = run.post(
        "/api/v1.0/feedback",
        r#"{"request":{"data":{"ndarray":[[1]]}},"reward":1.0}"#,
    );
    assert_eq!(tail(step).path, "/send-feedback");

    // A router's feedback with no recorded routing goes to every child: callouts.
    let mut run = Run::new("{name: r, type: ROUTER, children: [{name: a}, {name: b}]}");
    let step = run.post(
        "/api/v1.0/feedback",
        r#"{"request":{"data":{"ndarray":[[1]]}},"reward":1.0}"#,
    );
    assert_eq!(step, Step::Wait);
    assert_eq!(run.paths(), vec!["a/send-feedback", "b/send-feedback"]);

    let mut run = Run::new("name: m");
    let headers = [(":method", "GET"), (":path", "/ready")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(
        run.exec.on_headers(&mut run.host, headers, true),
        Step::Wait
    );
    assert_eq!(run.paths(), vec!["m/health/ping"]);
}

#[test]
fn a_v2_graph_hands_its_model_to_the_router() {
    let mut run = Run::with(plan(Protocol::V2, "name: m"), true);
    let body = r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1.0]}]}"#;
    let call = tail(run.post("/v2/models/m/infer", body));
    assert_eq!(call.path, "/v2/models/m/infer");
    let r = run.tail_answer(ok(
        r#"{"model_name":"m","outputs":[{"name":"y","shape":[1],"datatype":"FP32","data":[2.0]}]}"#,
    ));
    assert_eq!(r.status, 200);
    assert_eq!(json_of(&r)["outputs"][0]["data"], json!([2.0]));
}

/// A gRPC call's headers and its framed SeldonMessage (from REST JSON).
fn grpc_request(run: &mut Run, method: &str, json: &str) -> Step {
    let headers = [
        (":method", "POST"),
        (":path", method),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("seldon-puid", "g-1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(
        run.exec.on_headers(&mut run.host, headers, false),
        Step::WaitBody
    );
    let pb = grpc::seldon_message_from_json(json.as_bytes()).unwrap();
    run.exec.on_body(&mut run.host, grpc::frame(&pb))
}

#[test]
fn grpc_predict_runs_the_graph_on_json_and_answers_a_framed_seldon_message() {
    let mut run = Run::new("{name: t, type: TRANSFORMER, children: [{name: m}]}");
    assert_eq!(
        grpc_request(&mut run, "/seldon.protos.Seldon/Predict", ONE),
        Step::Wait
    );
    let (_, first) = &run.host.calls[0];
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(first.header("te"), None);
    assert_eq!(
        serde_json::from_slice::<Value>(first.body.as_deref().unwrap()).unwrap(),
        json!({"data":{"ndarray":[[1.0]]}})
    );
    let call = tail(run.answer(1, r#"{"data":{"ndarray":[[2.0]]}}"#));
    assert_eq!(call.path, "/predict");
    let r = run.tail_answer(ok(
        r#"{"data":{"ndarray":[[3.0]]},"meta":{"tags":{"m":true}}}"#,
    ));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.grpc,
        Some(GrpcStatus {
            code: 0,
            message: String::new()
        })
    );
    assert_eq!(r.header("content-type"), Some("application/grpc"));
    assert_eq!(r.header("seldon-puid"), Some("g-1"));
    let pb = grpc::unframe(&r.body).unwrap();
    let back: Value = serde_json::from_slice(&grpc::seldon_message_to_json(pb).unwrap()).unwrap();
    assert_eq!(back["data"]["ndarray"], json!([[3.0]]));
    assert_eq!(back["meta"]["tags"]["m"], json!(true));
}

#[test]
fn grpc_errors_carry_a_status_code_and_a_message_naming_the_node() {
    let mut run = Run::new("{name: t, type: TRANSFORMER, children: [{name: m}]}");
    grpc_request(&mut run, "/seldon.protos.Seldon/Predict", ONE);
    tail(run.answer(1, ONE));
    let r = run.tail_answer(CallResponse {
        status: Some(503),
        headers: vec![],
        body: b"Envoy: upstream_reset_before_response_started{connection_failure}".to_vec(),
    });
    let grpc = r.grpc.clone().unwrap();
    assert_eq!(grpc.code, 14, "UNAVAILABLE");
    assert!(
        grpc.message
            .starts_with("node `m` is unreachable (/predict)"),
        "{grpc:?}"
    );
    assert_eq!(r.header("seldon-node"), Some("m"));
    assert!(r.body.is_empty(), "the status is in trailers, no message");

    // A transformer's error is a callout's: a gRPC local reply naming it.
    let mut run = Run::new("{name: t, type: TRANSFORMER, children: [{name: m}]}");
    grpc_request(&mut run, "/seldon.protos.Seldon/Predict", ONE);
    let Step::Respond(r) = run.exec.on_call_response(&mut run.host, 1, ok("[1]")) else {
        panic!("expected an answer");
    };
    let grpc = r.grpc.clone().unwrap();
    assert_eq!(grpc.code, 13, "INTERNAL: the node's answer is unusable");
    assert!(
        grpc.message.starts_with("node `t` gave an unusable answer"),
        "{grpc:?}"
    );
    assert_eq!(r.header("seldon-node"), Some("t"));
}

#[test]
fn a_grpc_message_that_is_not_a_seldon_message_is_invalid_argument() {
    let mut run = Run::new("name: m");
    let headers = [
        (":method", "POST"),
        (":path", "/seldon.protos.Seldon/Predict"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    run.exec.on_headers(&mut run.host, headers, false);
    let Step::Respond(r) = run.exec.on_body(&mut run.host, b"\x00\x00\x00".to_vec()) else {
        panic!("expected an answer");
    };
    assert_eq!(r.grpc.unwrap().code, 3);
    assert!(run.host.calls.is_empty());
}

#[test]
fn grpc_without_tail_calls_is_unimplemented_saying_why() {
    let mut run = Run::with(plan(Protocol::Seldon, "name: m"), false);
    let headers = [
        (":method", "POST"),
        (":path", "/seldon.protos.Seldon/Predict"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let Step::Respond(r) = run.exec.on_headers(&mut run.host, headers, false) else {
        panic!("expected an answer");
    };
    let grpc = r.grpc.unwrap();
    assert_eq!(grpc.code, 12);
    assert!(
        grpc.message.contains("allow_on_headers_stop_iteration"),
        "{grpc:?}"
    );
}

#[test]
fn grpc_send_feedback_tails_to_the_model_and_answers_a_seldon_message() {
    let mut run = Run::new("name: m");
    let headers = [
        (":method", "POST"),
        (":path", "/seldon.protos.Seldon/SendFeedback"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    run.exec.on_headers(&mut run.host, headers, false);
    let pb = grpc::feedback_from_json(br#"{"request":{"data":{"ndarray":[[1.0]]}},"reward":1.0}"#)
        .unwrap();
    let call = tail(run.exec.on_body(&mut run.host, grpc::frame(&pb)));
    assert_eq!(call.path, "/send-feedback");
    let sent: Value = serde_json::from_slice(call.body.as_deref().unwrap()).unwrap();
    assert_eq!(sent["reward"], json!(1.0));
    let r = run.tail_answer(ok(r#"{"meta":{"tags":{"m":true}}}"#));
    assert_eq!(r.grpc.unwrap().code, 0);
    assert!(grpc::unframe(&r.body).is_ok());
}

#[test]
fn grpc_message_is_percent_encoded_outside_printable_ascii() {
    let s = GrpcStatus {
        code: 13,
        message: "node `m` 100% — é\n".into(),
    };
    assert_eq!(s.encoded_message(), "node `m` 100%25 %E2%80%94 %C3%A9%0A");
}

#[test]
fn a_clients_own_upstream_header_never_reaches_the_tail_call() {
    let mut run = Run::new("name: m");
    let headers = [
        (":method", "POST"),
        (":path", "/api/v1.0/predictions"),
        ("x-seldon-upstream", "payload-logger"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    run.exec.on_headers(&mut run.host, headers, false);
    let call = tail(run.exec.on_body(&mut run.host, ONE.as_bytes().to_vec()));
    assert_eq!(call.cluster, "node_m");
    assert_eq!(call.header("x-seldon-upstream"), None);
}

/// A gRPC `ModelInfer` call's headers and its framed `ModelInferRequest` (from v2 REST JSON).
fn model_infer_request(run: &mut Run, json: &str) -> Step {
    let headers = [
        (":method", "POST"),
        (":path", "/inference.GRPCInferenceService/ModelInfer"),
        ("content-type", "application/grpc"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(
        run.exec.on_headers(&mut run.host, headers, false),
        Step::WaitBody
    );
    let pb =
        seldon_protocol::grpc_v2::infer_request_from_json(json.as_bytes(), "first", "").unwrap();
    run.exec.on_body(&mut run.host, grpc::frame(&pb))
}

#[test]
fn grpc_model_infer_runs_a_v2_chain_on_json_and_answers_a_model_infer_response() {
    let mut run = Run::with(
        plan(Protocol::V2, "{name: first, children: [{name: second}]}"),
        true,
    );
    let x = r#"{"id":"r1","inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1.0]}]}"#;
    assert_eq!(model_infer_request(&mut run, x), Step::Wait);
    let (_, first) = &run.host.calls[0];
    assert_eq!(first.path, "/v2/models/first/infer");
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(
        serde_json::from_slice::<Value>(first.body.as_deref().unwrap()).unwrap(),
        json!({"id":"r1","inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1.0]}]})
    );
    let call = tail(run.answer(
        1,
        r#"{"model_name":"first","outputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[2.0]}]}"#,
    ));
    assert_eq!(call.path, "/v2/models/second/infer");
    // `tags` (an object) has no gRPC form: left out; `n` (a number) is kept.
    let r = run.tail_answer(ok(
        r#"{"model_name":"second","id":"r1","parameters":{"tags":{"second":true},"n":1},
            "outputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[3.0]}]}"#,
    ));
    assert_eq!(r.grpc.as_ref().map(|g| g.code), Some(0));
    assert_eq!(r.header("content-type"), Some("application/grpc"));
    let pb = grpc::unframe(&r.body).unwrap();
    let back: Value =
        serde_json::from_slice(&seldon_protocol::grpc_v2::infer_response_to_json(pb).unwrap())
            .unwrap();
    assert_eq!(
        back,
        json!({"model_name":"second","id":"r1","parameters":{"n":1},
               "outputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[3.0]}]})
    );
}

#[test]
fn grpc_model_infer_failures_are_statuses_naming_the_node() {
    let v2 = || plan(Protocol::V2, "name: m");
    // Not a ModelInferRequest: INVALID_ARGUMENT, no node called.
    let mut run = Run::with(v2(), true);
    let headers = [
        (":method", "POST"),
        (":path", "/inference.GRPCInferenceService/ModelInfer"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    run.exec.on_headers(&mut run.host, headers, false);
    let Step::Respond(r) = run.exec.on_body(&mut run.host, b"\x00\x00\x00".to_vec()) else {
        panic!("expected an answer");
    };
    let status = r.grpc.unwrap();
    assert_eq!(status.code, 3);
    assert!(status.message.contains("gRPC ModelInfer"), "{status:?}");
    assert!(run.host.calls.is_empty());

    // The tail node's answer is no v2 response: INTERNAL naming it.
    let mut run = Run::with(v2(), true);
    let x = r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1.0]}]}"#;
    tail(model_infer_request(&mut run, x));
    let r = run.tail_answer(ok(r#"{"outputs":[{"name":"x"}]}"#));
    let status = r.grpc.clone().unwrap();
    assert_eq!(status.code, 13, "{status:?}");
    assert!(status.message.contains("node `m`"), "{status:?}");
    assert_eq!(r.header("seldon-node"), Some("m"));

    // A seldon graph does not serve it.
    let mut run = Run::new("name: m");
    let headers = [
        (":method", "POST"),
        (":path", "/inference.GRPCInferenceService/ModelInfer"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let Step::Respond(r) = run.exec.on_headers(&mut run.host, headers, false) else {
        panic!("expected an answer");
    };
    assert_eq!(r.status, 404);
}

fn grpc_v2_health(run: &mut Run, method: &str, body: &[u8]) -> Step {
    let headers = [(":method", "POST"), (":path", method)]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(
        run.exec.on_headers(&mut run.host, headers, false),
        Step::WaitBody
    );
    run.exec.on_body(&mut run.host, grpc::frame(body))
}

#[test]
fn grpc_server_ready_probes_by_callout_then_tails_the_last_probe_and_answers_a_body() {
    use seldon_protocol::grpc_v2;
    let chain = || plan(Protocol::V2, "{name: first, children: [{name: second}]}");
    let mut run = Run::with(chain(), true);
    let ready = "/inference.GRPCInferenceService/ServerReady";
    assert_eq!(grpc_v2_health(&mut run, ready, b""), Step::Wait);
    assert_eq!(run.paths(), vec!["first/v2/models/first/ready"]);
    let call = tail(run.answer(1, r#"{"ready":true}"#));
    assert_eq!(
        (call.method, call.path.as_str()),
        ("GET", "/v2/models/second/ready")
    );
    let r = run.tail_answer(ok(r#"{"ready":true}"#));
    assert_eq!(r.grpc.as_ref().map(|g| g.code), Some(0));
    assert_eq!(r.body, grpc::frame(&grpc_v2::server_ready_response(true)));

    // ServerLive: one probe, the tail, whatever it answers.
    let mut run = Run::with(chain(), true);
    let call = tail(grpc_v2_health(
        &mut run,
        "/inference.GRPCInferenceService/ServerLive",
        b"",
    ));
    assert_eq!(call.path, "/v2/models/first/ready");
    let r = run.tail_answer(CallResponse {
        status: Some(503),
        headers: vec![],
        body: vec![],
    });
    assert_eq!(r.body, grpc::frame(&grpc_v2::server_live_response(true)));

    // ModelReady for one node: its probe only, the tail; a node not ready names it.
    let mut run = Run::with(chain(), true);
    let call = tail(grpc_v2_health(
        &mut run,
        "/inference.GRPCInferenceService/ModelReady",
        b"\x0a\x06second",
    ));
    assert_eq!(call.path, "/v2/models/second/ready");
    let r = run.tail_answer(CallResponse {
        status: Some(503),
        headers: vec![],
        body: vec![],
    });
    assert_eq!(r.grpc.as_ref().map(|g| g.code), Some(14));
    assert_eq!(r.header("seldon-node"), Some("second"));

    // An unknown model: NOT_FOUND, no probe; without tail calls: UNIMPLEMENTED saying why.
    let mut run = Run::with(chain(), true);
    let Step::Respond(r) = grpc_v2_health(
        &mut run,
        "/inference.GRPCInferenceService/ModelReady",
        b"\x0a\x04nope",
    ) else {
        panic!("expected an answer");
    };
    assert_eq!(r.grpc.map(|g| g.code), Some(5));
    assert!(run.host.calls.is_empty());
    let mut run = Run::with(chain(), false);
    let headers = [(":method", "POST"), (":path", ready)]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let Step::Respond(r) = run.exec.on_headers(&mut run.host, headers, false) else {
        panic!("expected an answer");
    };
    assert_eq!(r.grpc.map(|g| g.code), Some(12));
}
