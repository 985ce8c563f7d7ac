//! OIP v2 gRPC at the graph entry of a v2 graph (issue 12, item 1) on the real Envoy 1.40: a
//! real gRPC client (tonic over h2c) calls `inference.GRPCInferenceService/ModelInfer` on the
//! graph listener; the filter turns the `ModelInferRequest` into v2 REST JSON for the nodes,
//! hands the last node call to Envoy's router (the tail call) and turns its answer into a
//! `ModelInferResponse` with `grpc-status: 0` in the trailers. Errors are gRPC statuses naming
//! the node.
//!
//! The client's messages are prost structs written here from `inference.proto`'s field numbers,
//! not the filter's own codec (`seldon_protocol::grpc_v2`), so the two sides are independent.
//!
//! Needs the release filter module (`make wasm`) and Envoy (`scripts/setup.sh`).

use std::collections::HashMap;

use seldon_e2e::graph::{GraphSpec, GraphUnderTest};
use seldon_e2e::{Mode, TestModelSpec};
use seldon_graph::Protocol;
use serde_json::json;
use tonic::codegen::http::uri::PathAndQuery;

const MODEL_INFER: &str = "/inference.GRPCInferenceService/ModelInfer";

#[derive(Clone, PartialEq, prost::Message)]
struct InferParameter {
    #[prost(oneof = "ParameterChoice", tags = "1, 2, 3, 4, 5")]
    choice: Option<ParameterChoice>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum ParameterChoice {
    #[prost(bool, tag = "1")]
    Bool(bool),
    #[prost(int64, tag = "2")]
    Int64(i64),
    #[prost(string, tag = "3")]
    String(String),
    #[prost(double, tag = "4")]
    Double(f64),
    #[prost(uint64, tag = "5")]
    Uint64(u64),
}

#[derive(Clone, PartialEq, prost::Message)]
struct InferTensorContents {
    #[prost(float, repeated, tag = "6")]
    fp32_contents: Vec<f32>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct InferTensor {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    datatype: String,
    #[prost(int64, repeated, tag = "3")]
    shape: Vec<i64>,
    #[prost(map = "string, message", tag = "4")]
    parameters: HashMap<String, InferParameter>,
    #[prost(message, optional, tag = "5")]
    contents: Option<InferTensorContents>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ModelInferRequest {
    #[prost(string, tag = "1")]
    model_name: String,
    #[prost(string, tag = "2")]
    model_version: String,
    #[prost(string, tag = "3")]
    id: String,
    #[prost(map = "string, message", tag = "4")]
    parameters: HashMap<String, InferParameter>,
    #[prost(message, repeated, tag = "5")]
    inputs: Vec<InferTensor>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ModelInferResponse {
    #[prost(string, tag = "1")]
    model_name: String,
    #[prost(string, tag = "2")]
    model_version: String,
    #[prost(string, tag = "3")]
    id: String,
    #[prost(map = "string, message", tag = "4")]
    parameters: HashMap<String, InferParameter>,
    #[prost(message, repeated, tag = "5")]
    outputs: Vec<InferTensor>,
    #[prost(bytes = "vec", repeated, tag = "6")]
    raw_output_contents: Vec<Vec<u8>>,
}

/// `x`: FP32 `[1, 2]` holding `values`.
fn request(id: &str, values: &[f32]) -> ModelInferRequest {
    ModelInferRequest {
        model_name: "first".into(),
        id: id.into(),
        parameters: HashMap::from([(
            "client".to_string(),
            InferParameter {
                choice: Some(ParameterChoice::String("grpc".into())),
            },
        )]),
        inputs: vec![InferTensor {
            name: "x".into(),
            datatype: "FP32".into(),
            shape: vec![1, values.len() as i64],
            contents: Some(InferTensorContents {
                fp32_contents: values.to_vec(),
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

async fn start_v2(first: TestModelSpec, second: TestModelSpec) -> GraphUnderTest {
    let mut spec = GraphSpec::new(
        "{name: first, children: [{name: second}]}",
        vec![first, second],
    );
    spec.protocol = Protocol::V2;
    match GraphUnderTest::start(spec).await {
        Ok(g) => g,
        Err(e) => panic!("starting the graph failed: {e:#?}"),
    }
}

async fn model_infer(
    url: &str,
    message: ModelInferRequest,
) -> Result<tonic::Response<ModelInferResponse>, tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("seldon-puid", "grpc-v2-puid-1".parse().unwrap());
    client
        .unary(
            request,
            PathAndQuery::from_static(MODEL_INFER),
            tonic_prost::ProstCodec::default(),
        )
        .await
}

#[tokio::test]
async fn model_infer_through_a_v2_chain_answers_a_model_infer_response() {
    let g = start_v2(
        TestModelSpec::new("first", Mode::V2Add).adding(1.0),
        TestModelSpec::new("second", Mode::V2Add).adding(10.0),
    )
    .await;
    let answer = model_infer(&g.url, request("r1", &[1.0, 2.0]))
        .await
        .unwrap();
    assert_eq!(
        answer.metadata().get("seldon-puid").unwrap(),
        "grpc-v2-puid-1"
    );
    let r = answer.into_inner();
    assert_eq!(r.model_name, "second");
    assert_eq!(r.id, "r1");
    assert_eq!(r.outputs.len(), 1);
    let x = &r.outputs[0];
    assert_eq!(
        (x.name.as_str(), x.datatype.as_str(), x.shape.as_slice()),
        ("x", "FP32", &[1_i64, 2][..])
    );
    assert_eq!(x.contents.as_ref().unwrap().fp32_contents, vec![12.0, 13.0]);
    assert!(r.raw_output_contents.is_empty());
    // The testmodel's `parameters.tags` is a JSON object, which an `InferParameter` cannot
    // hold: left out, as MLServer leaves it out (crates/protocol/README.md).
    assert!(r.parameters.is_empty(), "{:?}", r.parameters);

    // Both nodes spoke v2 REST JSON; the first got the client's request as JSON.
    let first = &g.node("first").calls().await.unwrap()[0];
    assert_eq!(first.path, "/v2/models/first/infer");
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(
        first.json().unwrap(),
        json!({"id": "r1", "parameters": {"client": "grpc"},
               "inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1.0, 2.0]}]})
    );
    let second = &g.node("second").calls().await.unwrap()[0];
    assert_eq!(second.path, "/v2/models/second/infer");
    assert_eq!(second.header("seldon-puid"), Some("grpc-v2-puid-1"));
    assert_eq!(
        second.json().unwrap()["inputs"][0]["data"],
        json!([2.0, 3.0])
    );
}

#[tokio::test]
async fn model_infer_errors_are_grpc_statuses_naming_the_node() {
    // The tail node answers 500: INTERNAL, its name in the message and in `seldon-node`.
    let g = start_v2(
        TestModelSpec::new("first", Mode::V2Add),
        TestModelSpec::new("second", Mode::Fail).fail(500, None),
    )
    .await;
    let status = model_infer(&g.url, request("r2", &[1.0]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
    assert_eq!(status.message(), "node `second` answered 500");
    assert_eq!(status.metadata().get("seldon-node").unwrap(), "second");

    // The first node's answer cannot feed the next (a callout): INTERNAL from the filter's
    // local reply, naming it; the second node is never called.
    let g = start_v2(
        TestModelSpec::new("first", Mode::V2Add).fail(200, Some(r#"{"model_name":"first"}"#)),
        TestModelSpec::new("second", Mode::V2Add),
    )
    .await;
    let status = model_infer(&g.url, request("r3", &[1.0]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
    assert!(
        status.message().contains("missing field `outputs`"),
        "{status:?}"
    );
    assert_eq!(status.metadata().get("seldon-node").unwrap(), "first");
    assert_eq!(g.node("second").calls().await.unwrap(), vec![]);

    // A request whose tensor shape does not match its contents: INVALID_ARGUMENT, no node
    // called.
    let mut bad = request("r4", &[1.0, 2.0]);
    bad.inputs[0].shape = vec![3];
    let status = model_infer(&g.url, bad).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("gRPC ModelInfer"), "{status:?}");
    assert_eq!(g.node("first").calls().await.unwrap().len(), 1);
}

/// A seldon graph does not serve the v2 service: UNIMPLEMENTED, as before.
#[tokio::test]
async fn model_infer_on_a_seldon_graph_is_unimplemented() {
    let spec = GraphSpec::new("name: m", vec![TestModelSpec::new("m", Mode::Echo)]);
    let g = match GraphUnderTest::start(spec).await {
        Ok(g) => g,
        Err(e) => panic!("starting the graph failed: {e:#?}"),
    };
    let status = model_infer(&g.url, request("r5", &[1.0]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");
    assert!(g.node("m").calls().await.unwrap().is_empty());
}

#[derive(Clone, PartialEq, prost::Message)]
struct Empty {}

#[derive(Clone, PartialEq, prost::Message)]
struct ModelReadyRequest {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    version: String,
}

/// `ServerLiveResponse { live }`, `ServerReadyResponse { ready }`, `ModelReadyResponse { ready }`:
/// one bool, field 1.
#[derive(Clone, PartialEq, prost::Message)]
struct Flag {
    #[prost(bool, tag = "1")]
    flag: bool,
}

async fn unary<Req>(url: &str, method: &'static str, message: Req) -> Result<Flag, tonic::Status>
where
    Req: prost::Message + Send + Sync + 'static,
{
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    client
        .unary(
            tonic::Request::new(message),
            PathAndQuery::from_static(method),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .map(tonic::Response::into_inner)
}

/// ServerLive, ServerReady and ModelReady answer with a body: the last readiness probe is the
/// tail call and its answer is replaced by the framed message.
#[tokio::test]
async fn server_live_server_ready_and_model_ready_answer_with_a_body() {
    let g = start_v2(
        TestModelSpec::new("first", Mode::V2Add),
        TestModelSpec::new("second", Mode::V2Add),
    )
    .await;
    let live = unary(
        &g.url,
        "/inference.GRPCInferenceService/ServerLive",
        Empty {},
    )
    .await
    .unwrap();
    assert!(live.flag, "ServerLiveResponse.live");
    let ready = unary(
        &g.url,
        "/inference.GRPCInferenceService/ServerReady",
        Empty {},
    )
    .await
    .unwrap();
    assert!(ready.flag, "ServerReadyResponse.ready");
    let model = |name: &str| ModelReadyRequest {
        name: name.into(),
        version: String::new(),
    };
    let ready = unary(
        &g.url,
        "/inference.GRPCInferenceService/ModelReady",
        model("second"),
    )
    .await
    .unwrap();
    assert!(ready.flag, "ModelReadyResponse.ready");
    // The probes reached the nodes' ready paths (ServerLive: the first node only, to carry
    // the answer; ServerReady: both; ModelReady `second`: second only).
    let ready_calls = |calls: Vec<seldon_e2e::Call>| {
        calls
            .into_iter()
            .filter(|c| c.path.ends_with("/ready"))
            .count()
    };
    assert_eq!(ready_calls(g.node("first").calls().await.unwrap()), 2);
    assert_eq!(ready_calls(g.node("second").calls().await.unwrap()), 2);

    // An unknown model: NOT_FOUND naming it, no probe.
    let status = unary(
        &g.url,
        "/inference.GRPCInferenceService/ModelReady",
        model("nope"),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    assert!(status.message().contains("\"nope\""), "{status:?}");

    // A node that is down (no process behind it): UNAVAILABLE naming it.
    let mut spec = GraphSpec::new(
        "{name: first, children: [{name: second}]}",
        vec![TestModelSpec::new("first", Mode::V2Add)],
    );
    spec.protocol = Protocol::V2;
    let g = match GraphUnderTest::start(spec).await {
        Ok(g) => g,
        Err(e) => panic!("starting the graph failed: {e:#?}"),
    };
    let status = unary(
        &g.url,
        "/inference.GRPCInferenceService/ServerReady",
        Empty {},
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("`second`"), "{status:?}");
    assert_eq!(status.metadata().get("seldon-node").unwrap(), "second");
}
