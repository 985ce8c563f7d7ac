//! Nodes called over gRPC, mixed with REST nodes in one graph (issue 12, item 2), a Seldon v1
//! transformer in front of a v2 model (item 3), and gRPC `ModelMetadata` at the entry, on the
//! real Envoy 1.40 with the release filter.
//!
//! gRPC nodes are `testmodel`s reached through an HTTP/2 cluster (`GraphSpec::grpc_nodes`):
//! the same behaviours as over REST, on `seldon.protos.*` / `ModelInfer`. The client messages
//! are prost structs written here from the `.proto` field numbers (only the fields used).
//!
//! Needs the release filter module (`make wasm`) and Envoy (`scripts/setup.sh`).

use seldon_e2e::graph::{GraphSpec, GraphUnderTest};
use seldon_e2e::{Mode, TestModelSpec};
use seldon_graph::Protocol;
use serde_json::{Value, json};
use tonic::codegen::http::uri::PathAndQuery;

async fn start(spec: GraphSpec) -> GraphUnderTest {
    match GraphUnderTest::start(spec).await {
        Ok(g) => g,
        Err(e) => panic!("starting the graph failed: {e:#?}"),
    }
}

async fn post(url: &str, path: &str, body: &Value) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = reqwest::Client::new()
        .post(format!("{url}{path}"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, headers, body)
}

/// The three-node chain `a` (REST, +1) → `b` (gRPC, +10) → `c` (gRPC, +100): `b` is a
/// callout, `c` the tail call through the router.
fn mixed_chain(c: TestModelSpec) -> GraphSpec {
    let mut spec = GraphSpec::new(
        "{name: a, type: TRANSFORMER, children: [{name: b, type: TRANSFORMER, endpoint: {type: GRPC}, children: [{name: c, endpoint: {type: GRPC}}]}]}",
        vec![
            TestModelSpec::new("a", Mode::Add).adding(1.0),
            TestModelSpec::new("b", Mode::Add).adding(10.0),
            c,
        ],
    );
    spec.grpc_nodes = vec!["b".into(), "c".into()];
    spec
}

#[tokio::test]
async fn a_graph_mixing_rest_and_grpc_nodes_answers_through_both() {
    let g = start(mixed_chain(
        TestModelSpec::new("c", Mode::Add).adding(100.0),
    ))
    .await;
    let (status, _, body) = post(
        &g.url,
        "/api/v1.0/predictions",
        &json!({"data": {"ndarray": [[1.0, 2.0]]}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["ndarray"], json!([[112.0, 113.0]]));
    assert_eq!(body["meta"]["tags"]["path"], json!(["a", "b", "c"]));

    // `a` got REST JSON; `b` and `c` got gRPC on Seldon's methods.
    let a = &g.node("a").calls().await.unwrap()[0];
    assert_eq!(a.path, "/transform-input");
    let b = &g.node("b").calls().await.unwrap()[0];
    assert_eq!(b.path, "/seldon.protos.Transformer/TransformInput");
    assert_eq!(b.header("content-type"), Some("application/grpc"));
    let c = &g.node("c").calls().await.unwrap()[0];
    assert_eq!(c.path, "/seldon.protos.Model/Predict");
    assert_eq!(c.header("content-type"), Some("application/grpc"));

    // Readiness reaches the gRPC nodes over gRPC (testmodel answers UNIMPLEMENTED to
    // `Model/Metadata`, which says the server is up).
    let r = reqwest::get(format!("{}/ready", g.url)).await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!((status, text.as_str()), (200, r#"{"ready":true}"#));
    let probes = g.node("c").calls().await.unwrap();
    assert_eq!(probes.last().unwrap().path, "/seldon.protos.Model/Metadata");
}

/// `SeldonMessage` with only `strData` (field 5); `meta` and the rest are skipped.
#[derive(Clone, PartialEq, prost::Message)]
struct StrMessage {
    #[prost(string, tag = "5")]
    str_data: String,
}

async fn grpc_unary<Req, Resp>(
    url: &str,
    method: &'static str,
    message: Req,
) -> Result<tonic::Response<Resp>, tonic::Status>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
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
}

#[tokio::test]
async fn a_failing_grpc_node_is_named_in_json_and_in_the_grpc_status() {
    // The gRPC tail node `c` fails: testmodel answers trailers-only INTERNAL.
    let g = start(mixed_chain(TestModelSpec::new("c", Mode::Fail))).await;
    let (status, headers, body) = post(
        &g.url,
        "/api/v1.0/predictions",
        &json!({"data": {"ndarray": [[1.0]]}}),
    )
    .await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(headers["seldon-node"], "c");
    assert_eq!(body["status"]["reason"], "NODE_GRPC_ERROR");
    let info = body["status"]["info"].as_str().unwrap();
    assert!(
        info.starts_with("node `c` answered gRPC status 13 INTERNAL (/predict): "),
        "{info}"
    );
    assert!(info.contains("c failed"), "the node's own message: {info}");

    // The same through a gRPC client: the node's code, the message naming it, `seldon-node`.
    let status = grpc_unary::<_, StrMessage>(
        &g.url,
        "/seldon.protos.Seldon/Predict",
        StrMessage {
            str_data: "x".into(),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
    assert!(
        status
            .message()
            .starts_with("node `c` answered gRPC status 13"),
        "{status:?}"
    );
    assert_eq!(status.metadata().get("seldon-node").unwrap(), "c");

    // A gRPC callout failing with 400 (INVALID_ARGUMENT): a 400 naming `b`; `c` never called.
    let mut spec = mixed_chain(TestModelSpec::new("c", Mode::Add));
    spec.nodes[1] = TestModelSpec::new("b", Mode::Fail).fail(400, None);
    let g = start(spec).await;
    let (status, headers, body) = post(
        &g.url,
        "/api/v1.0/predictions",
        &json!({"data": {"ndarray": [[1.0]]}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(headers["seldon-node"], "b");
    assert!(
        body["status"]["info"]
            .as_str()
            .unwrap()
            .starts_with("node `b` answered gRPC status 3 INVALID_ARGUMENT (/transform-input)"),
        "{body}"
    );
    assert!(g.node("c").calls().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_grpc_entry_over_a_grpc_tail_node_answers_the_nodes_message() {
    let g = start(mixed_chain(TestModelSpec::new("c", Mode::Echo))).await;
    let answer = grpc_unary::<_, StrMessage>(
        &g.url,
        "/seldon.protos.Seldon/Predict",
        StrMessage {
            str_data: "hello".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(answer.into_inner().str_data, "hello");
    assert_eq!(
        g.node("c").calls().await.unwrap()[0].path,
        "/seldon.protos.Model/Predict"
    );
}

#[tokio::test]
async fn a_v1_transformer_feeds_a_v2_model_and_the_client_gets_a_seldon_message() {
    for grpc_model in [false, true] {
        let mut spec = GraphSpec::new(
            "{name: t, type: TRANSFORMER, children: [{name: m, protocol: v2}]}",
            vec![
                TestModelSpec::new("t", Mode::Add).adding(1.0),
                TestModelSpec::new("m", Mode::V2Add).adding(10.0),
            ],
        );
        if grpc_model {
            spec.grpc_nodes = vec!["m".into()];
        }
        let g = start(spec).await;
        let (status, _, body) = post(
            &g.url,
            "/api/v1.0/predictions",
            &json!({"data": {"ndarray": [[1.0, 2.0]]}}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            json!({"data": {"names": ["input-0"], "ndarray": [[12.0, 13.0]]},
                   "meta": {"tags": {"path": ["t"], "t": true}}}),
            "grpc model: {grpc_model}"
        );
        let m = &g.node("m").calls().await.unwrap()[0];
        if grpc_model {
            assert_eq!(m.path, "/inference.GRPCInferenceService/ModelInfer");
        } else {
            assert_eq!(m.path, "/v2/models/m/infer");
            assert_eq!(
                m.json().unwrap(),
                json!({"inputs": [{"name": "input-0", "shape": [1, 2], "datatype": "FP64", "data": [2.0, 3.0]}]})
            );
        }
    }
}

#[derive(Clone, PartialEq, prost::Message)]
struct ModelMetadataRequest {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    version: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TensorMetadata {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    datatype: String,
    #[prost(int64, repeated, tag = "3")]
    shape: Vec<i64>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ModelMetadataResponse {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, repeated, tag = "2")]
    versions: Vec<String>,
    #[prost(string, tag = "3")]
    platform: String,
    #[prost(message, repeated, tag = "4")]
    inputs: Vec<TensorMetadata>,
    #[prost(message, repeated, tag = "5")]
    outputs: Vec<TensorMetadata>,
}

#[tokio::test]
async fn grpc_model_metadata_answers_from_the_nodes_rest_metadata() {
    let mut spec = GraphSpec::new(
        "{name: first, children: [{name: second}]}",
        vec![
            TestModelSpec::new("first", Mode::V2Add),
            TestModelSpec::new("second", Mode::V2Add),
        ],
    );
    spec.protocol = Protocol::V2;
    let g = start(spec).await;
    let method = "/inference.GRPCInferenceService/ModelMetadata";
    let ask = |name: &str| ModelMetadataRequest {
        name: name.into(),
        version: String::new(),
    };
    let md: ModelMetadataResponse = grpc_unary(&g.url, method, ask("second"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(md.name, "second");
    assert_eq!(md.versions, ["1"]);
    assert_eq!(md.platform, "seldon-mesh-testmodel");
    assert_eq!(
        md.inputs,
        [TensorMetadata {
            name: "second-in".into(),
            datatype: "FP32".into(),
            shape: vec![-1, -1],
        }]
    );
    assert_eq!(md.outputs[0].name, "second-out");

    // The deployment: the graph as one model, the first node's inputs, the last one's outputs.
    let md: ModelMetadataResponse = grpc_unary(&g.url, method, ask("sdep"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(md.name, "sdep");
    assert_eq!(md.platform, "seldon-mesh");
    assert_eq!(md.inputs[0].name, "first-in");
    assert_eq!(md.outputs[0].name, "second-out");

    // An unknown model: NOT_FOUND naming it.
    let status = grpc_unary::<_, ModelMetadataResponse>(&g.url, method, ask("nope"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    assert!(status.message().contains("\"nope\""), "{status:?}");
}
