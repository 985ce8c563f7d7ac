//! Nodes called over gRPC (issue 12, item 2) and payloads bridged between Seldon v1 and v2
//! nodes (item 3), and gRPC `ModelMetadata`/`ServerMetadata` at the entry of v2 graphs.

use std::collections::BTreeMap;
use std::rc::Rc;

use seldon_executor::{Call, CallDone, CallResponse, Host, RequestExecutor, Response, Step};
use seldon_graph::{FilterConfig, NodeUpstream, PredictiveUnit, Protocol, Transport, compile};
use seldon_protocol::{grpc, grpc_v2};
use serde_json::{Value, json};

#[derive(Default)]
struct FakeHost {
    calls: Vec<(u32, Call)>,
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
    fn call_done(&mut self, _d: &CallDone<'_>) {}
    fn span_done(&mut self, _span: seldon_executor::Span) {}
}

/// A plan whose nodes listed in `grpc` are called over gRPC.
fn plan(protocol: Protocol, graph: &str, grpc: &[&str]) -> Rc<seldon_graph::Plan> {
    let graph: PredictiveUnit = serde_yaml::from_str(graph).unwrap();
    let nodes: BTreeMap<String, NodeUpstream> = graph
        .walk()
        .into_iter()
        .map(|n| {
            let transport = if grpc.contains(&n.name.as_str()) {
                Transport::Grpc
            } else {
                Transport::Rest
            };
            let up = NodeUpstream {
                cluster: format!("node_{}", n.name),
                authority: format!("{}:9000", n.name),
                port: 9000,
                transport,
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
        body_limit_bytes: 4096,
        payload_logger: None,
        tracing: None,
    };
    Rc::new(compile(&cfg).unwrap())
}

struct Run {
    host: FakeHost,
    exec: RequestExecutor,
}

impl Run {
    fn new(plan: Rc<seldon_graph::Plan>, tail: bool) -> Self {
        Self {
            host: FakeHost::default(),
            exec: RequestExecutor::new(plan).with_tail_calls(tail),
        }
    }

    fn request(&mut self, path: &str, content_type: &str, body: Vec<u8>) -> Step {
        let headers = [
            (":method", "POST"),
            (":path", path),
            ("content-type", content_type),
            ("seldon-puid", "p-1"),
            ("grpc-accept-encoding", "gzip"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            self.exec.on_headers(&mut self.host, headers, false),
            Step::WaitBody
        );
        self.exec.on_body(&mut self.host, body)
    }

    fn post(&mut self, path: &str, body: &str) -> Step {
        self.request(path, "application/json", body.as_bytes().to_vec())
    }

    fn answer(&mut self, token: u32, response: CallResponse) -> Step {
        self.exec.on_call_response(&mut self.host, token, response)
    }

    fn call(&self, token: u32) -> &Call {
        &self.host.calls[token as usize - 1].1
    }
}

fn rest_ok(body: &str) -> CallResponse {
    CallResponse {
        status: Some(200),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("x-envoy-upstream-service-time".into(), "1".into()),
        ],
        body: body.as_bytes().to_vec(),
    }
}

/// A gRPC answer: `pb` framed, `grpc-status` (and message) as trailers after the headers.
fn grpc_answer(code: u32, message: &str, pb: Option<&[u8]>) -> CallResponse {
    let mut headers = vec![
        ("content-type".to_string(), "application/grpc".to_string()),
        ("x-envoy-upstream-service-time".into(), "1".into()),
        ("grpc-status".into(), code.to_string()),
    ];
    if !message.is_empty() {
        headers.push(("grpc-message".into(), message.into()));
    }
    CallResponse {
        status: Some(200),
        headers,
        body: pb.map(grpc::frame).unwrap_or_default(),
    }
}

fn seldon_pb(json: &str) -> Vec<u8> {
    grpc::seldon_message_from_json(json.as_bytes()).unwrap()
}

fn respond(step: Step) -> Response {
    match step {
        Step::Respond(r) => r,
        other => panic!("expected the answer, got {other:?}"),
    }
}

fn tail(step: Step) -> Call {
    match step {
        Step::Tail(c) => c,
        other => panic!("expected a tail call, got {other:?}"),
    }
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap()
}

#[test]
fn a_grpc_transformer_feeds_a_rest_model_with_payloads_converted_at_each_hop() {
    let mut run = Run::new(
        plan(
            Protocol::Seldon,
            "{name: t, type: TRANSFORMER, children: [{name: m}]}",
            &["t"],
        ),
        false,
    );
    assert_eq!(
        run.post("/api/v1.0/predictions", r#"{"data":{"ndarray":[[1.0]]}}"#),
        Step::Wait
    );
    let call = run.call(1).clone();
    assert_eq!(
        (call.method, call.path.as_str(), call.cluster.as_str()),
        (
            "POST",
            "/seldon.protos.Transformer/TransformInput",
            "node_t"
        )
    );
    assert_eq!(call.header("content-type"), Some("application/grpc"));
    assert_eq!(call.header("te"), Some("trailers"));
    assert_eq!(
        call.header("grpc-accept-encoding"),
        None,
        "no compression offered"
    );
    assert_eq!(call.header("seldon-puid"), Some("p-1"));
    let sent = grpc::unframe(call.body.as_deref().unwrap()).unwrap();
    assert_eq!(
        json_of(&grpc::seldon_message_to_json(sent).unwrap()),
        json!({"data": {"ndarray": [[1.0]]}})
    );
    // The transformer's protobuf answer reaches the REST model as JSON.
    let answer = seldon_pb(r#"{"data":{"ndarray":[[2.0]]}}"#);
    assert_eq!(run.answer(1, grpc_answer(0, "", Some(&answer))), Step::Wait);
    let call = run.call(2).clone();
    assert_eq!(call.path, "/predict");
    assert_eq!(call.header("content-type"), Some("application/json"));
    assert_eq!(
        json_of(call.body.as_deref().unwrap()),
        json!({"data": {"ndarray": [[2.0]]}})
    );
    let r = respond(run.answer(2, rest_ok(r#"{"data":{"ndarray":[[3.0]]}}"#)));
    assert_eq!(r.status, 200);
    assert_eq!(json_of(&r.body), json!({"data": {"ndarray": [[3.0]]}}));
}

#[test]
fn a_grpc_nodes_error_status_names_it_with_the_mapped_http_status() {
    let graph = "{name: t, type: TRANSFORMER, children: [{name: m}]}";
    let mut run = Run::new(plan(Protocol::Seldon, graph, &["t", "m"]), false);
    run.post("/api/v1.0/predictions", r#"{"data":{"ndarray":[[1.0]]}}"#);
    let r = respond(run.answer(1, grpc_answer(3, "bad%20shape", None)));
    assert_eq!(r.status, 400);
    assert_eq!(r.header("seldon-node"), Some("t"));
    let body = json_of(&r.body);
    assert_eq!(body["status"]["reason"], "NODE_GRPC_ERROR");
    assert_eq!(
        body["status"]["info"],
        "node `t` answered gRPC status 3 INVALID_ARGUMENT (/transform-input): bad shape"
    );
    assert_eq!(run.host.calls.len(), 1, "m is never called");

    // The same error to a gRPC client keeps the node's code; the message names the node.
    let mut run = Run::new(plan(Protocol::Seldon, graph, &["t", "m"]), true);
    let step = run.request(
        "/seldon.protos.Seldon/Predict",
        "application/grpc",
        grpc::frame(&seldon_pb(r#"{"strData":"x"}"#)),
    );
    assert_eq!(step, Step::Wait);
    let r = respond(run.answer(1, grpc_answer(9, "not now", None)));
    let status = r.grpc.unwrap();
    assert_eq!(status.code, 9);
    assert!(status.message.contains("node `t`"), "{}", status.message);

    // A malformed frame (announces 9 bytes, carries 1): 502 naming the node.
    let mut run = Run::new(plan(Protocol::Seldon, graph, &["t", "m"]), false);
    run.post("/api/v1.0/predictions", r#"{"data":{"ndarray":[[1.0]]}}"#);
    let mut bad = grpc_answer(0, "", None);
    bad.body = vec![0, 0, 0, 0, 9, 1];
    let r = respond(run.answer(1, bad));
    assert_eq!(r.status, 502);
    assert_eq!(r.header("seldon-node"), Some("t"));
    assert!(
        json_of(&r.body)["status"]["info"]
            .as_str()
            .unwrap()
            .contains("its gRPC answer is malformed"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );

    // Envoy's own trailers-only UNAVAILABLE for a node it cannot reach: 503 naming it.
    let mut run = Run::new(plan(Protocol::Seldon, graph, &["t", "m"]), false);
    run.post("/api/v1.0/predictions", r#"{"data":{"ndarray":[[1.0]]}}"#);
    let mut down = grpc_answer(14, "upstream connect error", None);
    down.headers
        .retain(|(k, _)| k != "x-envoy-upstream-service-time");
    let r = respond(run.answer(1, down));
    assert_eq!(r.status, 503);
    assert_eq!(r.header("seldon-node"), Some("t"));
}

#[test]
fn a_payload_with_no_protobuf_form_is_the_clients_400_naming_the_grpc_node() {
    let mut run = Run::new(plan(Protocol::Seldon, "name: m", &["m"]), false);
    let r = respond(run.post("/api/v1.0/predictions", r#"{"customData":{"a":1}}"#));
    assert_eq!(r.status, 400);
    let info = json_of(&r.body)["status"]["info"].to_string();
    assert!(
        info.contains("on `m`") && info.contains("customData"),
        "{info}"
    );
    assert!(run.host.calls.is_empty());
}

#[test]
fn a_grpc_leaf_is_the_tail_call_and_its_trailers_decide() {
    let mut run = Run::new(plan(Protocol::Seldon, "name: m", &["m"]), true);
    let call = tail(run.post("/api/v1.0/predictions", r#"{"strData":"a"}"#));
    assert_eq!(call.path, "/seldon.protos.Model/Predict");
    let answer = seldon_pb(r#"{"strData":"b"}"#);
    let r = match run
        .exec
        .on_tail_response(&mut run.host, grpc_answer(0, "", Some(&answer)))
    {
        Step::Respond(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(json_of(&r.body), json!({"strData": "b"}));
}

#[test]
fn a_v2_grpc_model_gets_a_model_infer_request_and_its_answer_feeds_a_v2_rest_node() {
    let mut run = Run::new(
        plan(Protocol::V2, "{name: a, children: [{name: b}]}", &["a"]),
        false,
    );
    let x = r#"{"id":"r1","inputs":[{"name":"x","shape":[1],"datatype":"FP64","data":[1.0]}]}"#;
    assert_eq!(run.post("/v2/models/sdep/infer", x), Step::Wait);
    let call = run.call(1).clone();
    assert_eq!(call.path, "/inference.GRPCInferenceService/ModelInfer");
    let sent =
        grpc_v2::infer_request_to_json(grpc::unframe(call.body.as_deref().unwrap()).unwrap())
            .unwrap();
    assert_eq!(sent.model_name, "a");
    assert_eq!(json_of(&sent.json), json_of(x.as_bytes()));
    let out = r#"{"model_name":"a","id":"r1","outputs":[{"name":"y","shape":[1],"datatype":"FP64","data":[2.0]}]}"#;
    let pb = grpc_v2::infer_response_from_json(out.as_bytes()).unwrap();
    assert_eq!(run.answer(1, grpc_answer(0, "", Some(&pb))), Step::Wait);
    let call = run.call(2).clone();
    assert_eq!(call.path, "/v2/models/b/infer");
    assert_eq!(
        json_of(call.body.as_deref().unwrap())["inputs"][0]["data"],
        json!([2.0])
    );
}

#[test]
fn a_v1_transformer_feeds_a_v2_model_and_the_client_gets_a_seldon_message() {
    let graph = "{name: t, type: TRANSFORMER, children: [{name: m, protocol: v2}]}";
    let mut run = Run::new(plan(Protocol::Seldon, graph, &[]), false);
    let req = r#"{"data":{"names":["a","b"],"ndarray":[[1.0,2.0]]},"meta":{"puid":"p-1","tags":{"k":"v"}}}"#;
    assert_eq!(run.post("/api/v1.0/predictions", req), Step::Wait);
    assert_eq!(run.call(1).path, "/transform-input");
    let transformed = r#"{"data":{"ndarray":[[10.0,20.0]]},"meta":{"tags":{"t":true}}}"#;
    assert_eq!(run.answer(1, rest_ok(transformed)), Step::Wait);
    let call = run.call(2).clone();
    assert_eq!(call.path, "/v2/models/m/infer");
    assert_eq!(
        json_of(call.body.as_deref().unwrap()),
        json!({"inputs": [{"name": "input-0", "shape": [1, 2], "datatype": "FP64", "data": [10.0, 20.0]}]})
    );
    let out = r#"{"model_name":"m","outputs":[{"name":"output-0","shape":[1,2],"datatype":"FP64","data":[11.0,21.0]}]}"#;
    let r = respond(run.answer(2, rest_ok(out)));
    assert_eq!(r.status, 200);
    // Back to v1, in the form and with the meta of the message the model was sent.
    assert_eq!(
        json_of(&r.body),
        json!({"data": {"names": ["output-0"], "ndarray": [[11.0, 21.0]]}, "meta": {"tags": {"t": true}}})
    );

    // A transformer answer with no v2 form: 502 naming the transformer, the model not called.
    let mut run = Run::new(plan(Protocol::Seldon, graph, &[]), false);
    run.post("/api/v1.0/predictions", req);
    let r = respond(run.answer(1, rest_ok(r#"{"binData":"AAE="}"#)));
    assert_eq!(r.status, 502);
    assert_eq!(r.header("seldon-node"), Some("t"));
    let info = json_of(&r.body)["status"]["info"].to_string();
    assert!(
        info.contains("cannot be the input of /predict on `m`"),
        "{info}"
    );
    assert_eq!(run.host.calls.len(), 1);
}

#[test]
fn a_v1_node_in_a_v2_graph_answers_the_client_in_v2() {
    let graph = "{name: t, type: TRANSFORMER, protocol: seldon, children: [{name: m}]}";
    let mut run = Run::new(plan(Protocol::V2, graph, &[]), false);
    let x = r#"{"id":"r9","inputs":[{"name":"x","shape":[2],"datatype":"INT64","data":[1,2]}]}"#;
    run.post("/v2/models/sdep/infer", x);
    let call = run.call(1).clone();
    assert_eq!(call.path, "/transform-input");
    assert_eq!(
        json_of(call.body.as_deref().unwrap()),
        json!({"data": {"names": ["x"], "ndarray": [1, 2]}, "meta": {"puid": "r9"}})
    );
    // The v1 answer goes to the v2 model as a v2 request.
    run.answer(1, rest_ok(r#"{"data":{"ndarray":[3,4]}}"#));
    let call = run.call(2).clone();
    assert_eq!(
        json_of(call.body.as_deref().unwrap()),
        json!({"inputs": [{"name": "input-0", "shape": [2], "datatype": "INT64", "data": [3, 4]}]})
    );

    // A v1 leaf in a v2 graph: its answer becomes a v2 response named after it.
    let graph = "{name: m, protocol: seldon}";
    let mut run = Run::new(plan(Protocol::V2, graph, &[]), false);
    run.post("/v2/models/sdep/infer", x);
    let r = respond(run.answer(1, rest_ok(r#"{"data":{"ndarray":[5,6]}}"#)));
    assert_eq!(
        json_of(&r.body),
        json!({"model_name": "m", "id": "r9",
               "outputs": [{"name": "output-0", "shape": [2], "datatype": "INT64", "data": [5, 6]}]})
    );
    // …and one that cannot convert is a 502 naming it.
    let mut run = Run::new(plan(Protocol::V2, graph, &[]), false);
    run.post("/v2/models/sdep/infer", x);
    let r = respond(run.answer(1, rest_ok(r#"{"jsonData":{"a":1}}"#)));
    assert_eq!(r.status, 502);
    assert_eq!(r.header("seldon-node"), Some("m"));
    assert!(
        String::from_utf8_lossy(&r.body).contains("cannot be converted to the graph's v2 protocol"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
}

fn grpc_call(run: &mut Run, method: &str, pb: &[u8]) -> Step {
    run.request(method, "application/grpc", grpc::frame(pb))
}

#[test]
fn grpc_model_metadata_answers_the_nodes_metadata_through_the_tail() {
    let chain = || {
        plan(
            Protocol::V2,
            "{name: first, children: [{name: second}]}",
            &[],
        )
    };
    let method = "/inference.GRPCInferenceService/ModelMetadata";
    let md = r#"{"name":"second","versions":["1"],"platform":"p","inputs":[{"name":"i","datatype":"FP32","shape":[-1,2]}],"outputs":[{"name":"o","datatype":"FP32","shape":[-1]}]}"#;

    let mut run = Run::new(chain(), true);
    let call = tail(grpc_call(
        &mut run,
        method,
        &grpc_v2::model_ref_request("second", ""),
    ));
    assert_eq!(
        (call.method, call.path.as_str()),
        ("GET", "/v2/models/second")
    );
    let r = match run.exec.on_tail_response(&mut run.host, rest_ok(md)) {
        Step::Respond(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(r.grpc.as_ref().map(|g| g.code), Some(0));
    let back = grpc_v2::model_metadata_response_to_json(grpc::unframe(&r.body).unwrap()).unwrap();
    assert_eq!(json_of(&back), json_of(md.as_bytes()));

    // The deployment's name: the reader's inputs by callout, the writer's outputs as the tail.
    let mut run = Run::new(chain(), true);
    assert_eq!(
        grpc_call(&mut run, method, &grpc_v2::model_ref_request("sdep", "")),
        Step::Wait
    );
    assert_eq!(run.call(1).path, "/v2/models/first");
    let first = md.replace("\"second\"", "\"first\"");
    let call = tail(run.answer(1, rest_ok(&first)));
    assert_eq!(call.path, "/v2/models/second");
    let r = match run.exec.on_tail_response(&mut run.host, rest_ok(md)) {
        Step::Respond(r) => r,
        other => panic!("{other:?}"),
    };
    let back = grpc_v2::model_metadata_response_to_json(grpc::unframe(&r.body).unwrap()).unwrap();
    let back = json_of(&back);
    assert_eq!(back["name"], "sdep");
    assert_eq!(back["inputs"][0]["name"], "i");

    // A node's answer that is no v2 metadata: INTERNAL naming it; an unknown model NOT_FOUND.
    let mut run = Run::new(chain(), true);
    tail(grpc_call(
        &mut run,
        method,
        &grpc_v2::model_ref_request("second", ""),
    ));
    let r = match run
        .exec
        .on_tail_response(&mut run.host, rest_ok(r#"{"name":"second"}"#))
    {
        Step::Respond(r) => r,
        other => panic!("{other:?}"),
    };
    let status = r.grpc.unwrap();
    assert_eq!(status.code, 13);
    assert!(
        status.message.contains("node `second`"),
        "{}",
        status.message
    );
    let mut run = Run::new(chain(), true);
    let r = respond(grpc_call(
        &mut run,
        method,
        &grpc_v2::model_ref_request("nope", ""),
    ));
    assert_eq!(r.grpc.unwrap().code, 5);
}

#[test]
fn grpc_server_metadata_is_the_filters_own_carried_by_one_probe() {
    let mut run = Run::new(plan(Protocol::V2, "name: m", &[]), true);
    let call = tail(grpc_call(
        &mut run,
        "/inference.GRPCInferenceService/ServerMetadata",
        b"",
    ));
    assert_eq!(call.path, "/v2/models/m/ready");
    let r = match run.exec.on_tail_response(
        &mut run.host,
        CallResponse {
            status: Some(503),
            headers: vec![],
            body: vec![],
        },
    ) {
        Step::Respond(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(r.grpc.as_ref().map(|g| g.code), Some(0));
    let pb = grpc::unframe(&r.body).unwrap();
    // ServerMetadataResponse { name = 1 }
    assert_eq!(&pb[..13], b"\x0a\x0bseldon-mesh");
}

#[test]
fn probes_of_grpc_nodes_use_grpc_and_seldon_metadata_is_refused_naming_the_node() {
    // v2 readiness over gRPC: ModelReady, false is not ready.
    let mut run = Run::new(plan(Protocol::V2, "name: m", &["m"]), false);
    let headers = vec![
        (":method".to_string(), "GET".to_string()),
        (":path".to_string(), "/v2/health/ready".to_string()),
    ];
    assert_eq!(
        run.exec.on_headers(&mut run.host, headers, true),
        Step::Wait
    );
    assert_eq!(
        run.call(1).path,
        "/inference.GRPCInferenceService/ModelReady"
    );
    let pb = grpc_v2::model_ready_response(false);
    let r = respond(run.answer(1, grpc_answer(0, "", Some(&pb))));
    assert_eq!(r.status, 503);
    assert_eq!(r.header("seldon-node"), Some("m"));

    // A seldon gRPC node's metadata: no gRPC call for it, a failure naming the node.
    let mut run = Run::new(plan(Protocol::Seldon, "name: m", &["m"]), false);
    let headers = vec![
        (":method".to_string(), "GET".to_string()),
        (":path".to_string(), "/api/v1.0/metadata/m".to_string()),
    ];
    let r = respond(run.exec.on_headers(&mut run.host, headers, true));
    assert_eq!(r.status, 500);
    assert_eq!(r.header("seldon-node"), Some("m"));
    assert!(
        String::from_utf8_lossy(&r.body).contains("called over gRPC"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    // …and its readiness is any gRPC answer (UNIMPLEMENTED included).
    let mut run = Run::new(plan(Protocol::Seldon, "name: m", &["m"]), false);
    let headers = vec![
        (":method".to_string(), "GET".to_string()),
        (":path".to_string(), "/ready".to_string()),
    ];
    run.exec.on_headers(&mut run.host, headers, true);
    assert_eq!(run.call(1).path, "/seldon.protos.Model/Metadata");
    let r = respond(run.answer(1, grpc_answer(12, "", None)));
    assert_eq!(r.status, 200);
}
