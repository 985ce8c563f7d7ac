//! Seldon gRPC at the graph entry (issue 12, item 1) on the real Envoy 1.40: a real gRPC client
//! (tonic over h2c) calls `seldon.protos.Seldon/Predict` and `SendFeedback` on the graph
//! listener; the filter turns the SeldonMessage into REST JSON for the nodes, hands the last
//! node call to Envoy's router (the tail call) and turns its answer back into a SeldonMessage
//! with `grpc-status: 0` in the trailers. Errors are gRPC statuses naming the node.
//!
//! The client's messages are prost structs written here from `prediction.proto`'s field
//! numbers, not the filter's own codec, so the two sides are independent.
//!
//! Needs the release filter module (`make wasm`) and Envoy (`scripts/setup.sh`).

use std::collections::HashMap;

use prost_types::{ListValue, Value as PbValue, value::Kind};
use seldon_e2e::graph::{GraphSpec, GraphUnderTest};
use seldon_e2e::{Mode, TestModelSpec};
use serde_json::{Value, json};
use tonic::codegen::http::uri::PathAndQuery;

#[derive(Clone, PartialEq, prost::Message)]
struct SeldonMessage {
    #[prost(message, optional, tag = "1")]
    status: Option<Status>,
    #[prost(message, optional, tag = "2")]
    meta: Option<Meta>,
    #[prost(message, optional, tag = "3")]
    data: Option<DefaultData>,
    #[prost(string, tag = "5")]
    str_data: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Status {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    info: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Meta {
    #[prost(string, tag = "1")]
    puid: String,
    #[prost(map = "string, message", tag = "2")]
    tags: HashMap<String, PbValue>,
    #[prost(map = "string, int32", tag = "3")]
    routing: HashMap<String, i32>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct DefaultData {
    #[prost(string, repeated, tag = "1")]
    names: Vec<String>,
    #[prost(message, optional, tag = "3")]
    ndarray: Option<ListValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Feedback {
    #[prost(message, optional, tag = "1")]
    request: Option<SeldonMessage>,
    #[prost(message, optional, tag = "2")]
    response: Option<SeldonMessage>,
    #[prost(float, tag = "3")]
    reward: f32,
}

fn number(n: f64) -> PbValue {
    PbValue {
        kind: Some(Kind::NumberValue(n)),
    }
}

fn list(values: Vec<PbValue>) -> PbValue {
    PbValue {
        kind: Some(Kind::ListValue(ListValue { values })),
    }
}

/// `{"data":{"names":["a","b"],"ndarray":[[x, y]]}}` as a SeldonMessage.
fn row(x: f64, y: f64) -> SeldonMessage {
    SeldonMessage {
        data: Some(DefaultData {
            names: vec!["a".into(), "b".into()],
            ndarray: Some(ListValue {
                values: vec![list(vec![number(x), number(y)])],
            }),
        }),
        ..Default::default()
    }
}

/// The numbers of `ndarray[0]`.
fn first_row(m: &SeldonMessage) -> Vec<f64> {
    let Some(Kind::ListValue(row)) = m
        .data
        .as_ref()
        .and_then(|d| d.ndarray.as_ref())
        .and_then(|l| l.values.first())
        .and_then(|v| v.kind.clone())
    else {
        panic!("no ndarray row in {m:?}");
    };
    row.values
        .iter()
        .map(|v| match v.kind {
            Some(Kind::NumberValue(n)) => n,
            _ => panic!("not a number: {v:?}"),
        })
        .collect()
}

async fn start_spec(spec: GraphSpec) -> GraphUnderTest {
    match GraphUnderTest::start(spec).await {
        Ok(g) => g,
        Err(e) => panic!("starting the graph failed: {e:#?}"),
    }
}

/// One unary call with the routing metadata of Seldon's ingress.
async fn call<Req, Res>(
    url: &str,
    method: &'static str,
    message: Req,
) -> Result<tonic::Response<Res>, tonic::Status>
where
    Req: prost::Message + Send + Sync + 'static,
    Res: prost::Message + Default + Send + Sync + 'static,
{
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
        .insert("seldon", "sdep".parse().unwrap());
    request
        .metadata_mut()
        .insert("namespace", "default".parse().unwrap());
    request
        .metadata_mut()
        .insert("seldon-puid", "grpc-puid-1".parse().unwrap());
    client
        .unary(
            request,
            PathAndQuery::from_static(method),
            tonic_prost::ProstCodec::default(),
        )
        .await
}

async fn predict(
    url: &str,
    m: SeldonMessage,
) -> Result<tonic::Response<SeldonMessage>, tonic::Status> {
    call(url, "/seldon.protos.Seldon/Predict", m).await
}

#[tokio::test]
async fn predict_through_a_chain_answers_a_seldon_message() {
    let g = start_spec(GraphSpec::new(
        "{name: t, type: TRANSFORMER, children: [{name: m}]}",
        vec![
            TestModelSpec::new("t", Mode::Add).adding(1.0),
            TestModelSpec::new("m", Mode::Add).adding(2.0),
        ],
    ))
    .await;
    let answer = predict(&g.url, row(1.0, 2.0)).await.unwrap();
    assert_eq!(answer.metadata().get("seldon-puid").unwrap(), "grpc-puid-1");
    let m = answer.into_inner();
    assert_eq!(first_row(&m), vec![4.0, 5.0]);
    assert_eq!(m.data.as_ref().unwrap().names, vec!["a", "b"]);
    let tags = &m.meta.as_ref().unwrap().tags;
    assert_eq!(
        tags.get("path").cloned(),
        Some(list(vec![
            PbValue {
                kind: Some(Kind::StringValue("t".into()))
            },
            PbValue {
                kind: Some(Kind::StringValue("m".into()))
            },
        ]))
    );
    // Both nodes spoke REST JSON.
    let t = g.node("t").calls().await.unwrap();
    assert_eq!(t[0].path, "/transform-input");
    assert_eq!(t[0].header("content-type"), Some("application/json"));
    assert_eq!(
        serde_json::from_str::<Value>(&t[0].body).unwrap(),
        json!({"data":{"names":["a","b"],"ndarray":[[1.0,2.0]]}})
    );
    let calls_m = g.node("m").calls().await.unwrap();
    assert_eq!(calls_m[0].path, "/predict");
    assert_eq!(calls_m[0].header("seldon-puid"), Some("grpc-puid-1"));
    assert_eq!(
        serde_json::from_str::<Value>(&calls_m[0].body).unwrap()["data"]["ndarray"],
        json!([[2.0, 3.0]])
    );
}

#[tokio::test]
async fn errors_are_grpc_statuses_naming_the_node() {
    // The tail node answers 500: INTERNAL, its name in the message and in `seldon-node`.
    let g = start_spec(GraphSpec::new(
        "{name: t, type: TRANSFORMER, children: [{name: m}]}",
        vec![
            TestModelSpec::new("t", Mode::Echo),
            TestModelSpec::new("m", Mode::Fail).fail(500, None),
        ],
    ))
    .await;
    let status = predict(&g.url, row(1.0, 2.0)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
    assert_eq!(status.message(), "node `m` answered 500");
    assert_eq!(status.metadata().get("seldon-node").unwrap(), "m");

    // A transformer's garbage (a callout): INTERNAL from the filter's local reply.
    let g = start_spec(GraphSpec::new(
        "{name: t, type: TRANSFORMER, children: [{name: m}]}",
        vec![
            TestModelSpec::new("t", Mode::Fail).fail(200, Some("[1, 2]")),
            TestModelSpec::new("m", Mode::Echo),
        ],
    ))
    .await;
    let status = predict(&g.url, row(1.0, 2.0)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
    assert!(
        status
            .message()
            .starts_with("node `t` gave an unusable answer (/transform-input)"),
        "{status:?}"
    );
    assert_eq!(status.metadata().get("seldon-node").unwrap(), "t");
    assert!(g.node("m").calls().await.unwrap().is_empty());

    // The tail node is down: UNAVAILABLE, naming it.
    let g = start_spec(GraphSpec::new("name: m", vec![])).await;
    let status = predict(&g.url, row(1.0, 2.0)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        status
            .message()
            .starts_with("node `m` is unreachable (/predict)"),
        "{status:?}"
    );
    assert_eq!(status.metadata().get("seldon-node").unwrap(), "m");
}

#[tokio::test]
async fn send_feedback_reaches_the_model_and_answers_a_seldon_message() {
    let g = start_spec(GraphSpec::new(
        "name: m",
        vec![TestModelSpec::new("m", Mode::Echo)],
    ))
    .await;
    let feedback = Feedback {
        request: Some(row(1.0, 2.0)),
        response: Some(row(3.0, 4.0)),
        reward: 0.5,
    };
    let answer: SeldonMessage = call(&g.url, "/seldon.protos.Seldon/SendFeedback", feedback)
        .await
        .unwrap()
        .into_inner();
    let calls = g.node("m").calls().await.unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].path, "/send-feedback");
    let sent: Value = serde_json::from_str(&calls[0].body).unwrap();
    assert_eq!(sent["reward"], json!(0.5));
    assert_eq!(sent["request"]["data"]["ndarray"], json!([[1.0, 2.0]]));
    assert_eq!(sent["response"]["data"]["ndarray"], json!([[3.0, 4.0]]));
    let recorded = g.node("m").feedback().await.unwrap();
    assert_eq!(recorded.len(), 1);
    assert!(answer.status.is_none() || answer.status.as_ref().unwrap().code == 0);
}

/// Local mode's gateway routes gRPC as Seldon v1's ingress does: by the metadata `seldon`
/// and `namespace`, to the deployment's graph listener over HTTP/2.
#[tokio::test]
async fn the_gateway_routes_grpc_by_seldon_and_namespace_metadata() {
    let mut spec = GraphSpec::new(
        "name: m",
        vec![TestModelSpec::new("m", Mode::Add).adding(1.0)],
    );
    spec.gateway = true;
    let g = start_spec(spec).await;
    let gateway = g
        .envoy
        .listener_url(seldon_e2e::graph::GATEWAY_LISTENER)
        .unwrap();
    let m = predict(&gateway, row(1.0, 2.0)).await.unwrap().into_inner();
    assert_eq!(first_row(&m), vec![2.0, 3.0]);

    // Metadata naming no deployment: the gateway's 404, which a gRPC client sees as
    // UNIMPLEMENTED; no node is called again.
    let channel = tonic::transport::Endpoint::from_shared(gateway.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    let mut request = tonic::Request::new(row(1.0, 2.0));
    request
        .metadata_mut()
        .insert("seldon", "other".parse().unwrap());
    request
        .metadata_mut()
        .insert("namespace", "default".parse().unwrap());
    let status = client
        .unary::<_, SeldonMessage, _>(
            request,
            PathAndQuery::from_static("/seldon.protos.Seldon/Predict"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");
    assert_eq!(g.node("m").calls().await.unwrap().len(), 1);
}
