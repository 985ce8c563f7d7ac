//! The whole external API of a predictor (issue 12, item 4) through the filter in a real Envoy
//! 1.40, in front of real `testmodel` processes: Seldon v1 metadata/status/health paths, the v2
//! model metadata/ready/health paths and Seldon's `/v2/models/infer`, a v2 RANDOM_ABTEST split
//! measured over 1000 requests, and feedback refused on v2 graphs. Bodies are asserted.
//!
//! Needs the release filter module (`make wasm`) and Envoy (`scripts/setup.sh`).

use std::time::Duration;

use seldon_e2e::graph::{GraphSpec, GraphUnderTest};
use seldon_e2e::{Mode, TestModelSpec};
use seldon_graph::Protocol;
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn start(spec: GraphSpec) -> GraphUnderTest {
    match GraphUnderTest::start(spec).await {
        Ok(g) => g,
        Err(e) => panic!("starting the graph failed: {e:#?}"),
    }
}

fn v2(graph: &str, nodes: Vec<TestModelSpec>) -> GraphSpec {
    let mut spec = GraphSpec::new(graph, nodes);
    spec.protocol = Protocol::V2;
    spec
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// `status.info` of a Seldon error body.
    fn info(&self) -> String {
        self.json()["status"]["info"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

async fn send(g: &GraphUnderTest, method: reqwest::Method, path: &str, body: &str) -> Answer {
    let mut req = client().request(method, format!("{}{path}", g.url));
    if !body.is_empty() {
        req = req
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let r = req.send().await.unwrap();
    Answer {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.text().await.unwrap(),
    }
}

async fn get(g: &GraphUnderTest, path: &str) -> Answer {
    send(g, reqwest::Method::GET, path, "").await
}

async fn post(g: &GraphUnderTest, path: &str, body: &str) -> Answer {
    send(g, reqwest::Method::POST, path, body).await
}

/// What node `name` received, as (method, path).
async fn calls(g: &GraphUnderTest, name: &str) -> Vec<(String, String)> {
    g.node(name)
        .calls()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.method, c.path))
        .collect()
}

/// The router of the graph listener never saw a request, and every upstream request on a node
/// cluster was one of the filter's calls.
async fn assert_router_untouched(g: &GraphUnderTest) {
    let stats = g.envoy.stats().await.unwrap();
    let stat = |name: &str| -> u64 {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    assert_eq!(stat("http.graph.rq_direct_response"), 0);
    let mut node_calls = 0;
    for node in g.nodes.values() {
        node_calls += node.calls().await.unwrap().len() as u64;
    }
    let upstream: u64 = g
        .config
        .nodes
        .keys()
        .map(|n| stat(&format!("cluster.{n}.upstream_rq_total")))
        .sum();
    assert_eq!(upstream, node_calls);
}

fn get_(path: &str) -> (String, String) {
    ("GET".to_string(), path.to_string())
}

#[tokio::test]
async fn v1_node_metadata_and_status_pass_the_nodes_answer_through() {
    let g = start(GraphSpec::new(
        "{name: t, type: TRANSFORMER, children: [{name: m}]}",
        vec![
            TestModelSpec::new("t", Mode::Echo),
            TestModelSpec::new("m", Mode::Add),
        ],
    ))
    .await;

    let meta = get(&g, "/api/v1.0/metadata/m").await;
    assert_eq!(meta.status, 200, "{}", meta.body);
    assert_eq!(
        meta.json(),
        json!({
            "name": "m",
            "versions": ["testmodel/v1"],
            "platform": "seldon-mesh-testmodel",
            "inputs": [{"messagetype": "tensor", "schema": {"names": []}}],
            "outputs": [{"messagetype": "tensor", "schema": {"names": []}}],
            "custom": {"mode": "Add"},
        })
    );
    assert_eq!(meta.header("content-type"), Some("application/json"));
    assert_eq!(meta.header("seldon-puid").map(str::len), Some(36));

    let status = get(&g, "/api/v1.0/status/t").await;
    assert_eq!(status.status, 200, "{}", status.body);
    assert_eq!(
        status.json(),
        json!({"strData": "healthy", "meta": {"tags": {"t": true, "path": ["t"]}}}),
        "the node's /health/status, as Seldon's wrapper answers it"
    );

    let unknown = get(&g, "/api/v1.0/metadata/nope").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(
        unknown.json(),
        json!({"status": {"code": 404, "info": "unknown model \"nope\"", "reason": "NOT_FOUND", "status": "FAILURE"}})
    );
    let wrong_method = post(&g, "/api/v1.0/status/t", "{}").await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.info(), "/api/v1.0/status/t only accepts GET");

    assert_eq!(calls(&g, "m").await, [get_("/metadata")]);
    assert_eq!(calls(&g, "t").await, [get_("/health/status")]);
    assert_router_untouched(&g).await;
}

#[tokio::test]
async fn v1_health_paths() {
    let g = start(GraphSpec::new(
        "{name: t, type: TRANSFORMER, children: [{name: m}]}",
        vec![
            TestModelSpec::new("t", Mode::Echo),
            TestModelSpec::new("m", Mode::Echo),
        ],
    ))
    .await;
    let ping = get(&g, "/health/ping").await;
    assert_eq!((ping.status, ping.body.as_str()), (200, "pong"));
    assert_eq!(
        ping.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(calls(&g, "t").await.is_empty(), "ping is the filter's own");
    for path in [
        "/health/status",
        "/api/v1.0/health/status",
        "/api/v1.0/status",
    ] {
        let a = get(&g, path).await;
        assert_eq!(
            (a.status, a.json()),
            (200, json!({"ready": true})),
            "{path}"
        );
    }
    assert_eq!(
        calls(&g, "m").await,
        vec![get_("/health/ping"); 3],
        "each readiness path asks every node"
    );
    assert_router_untouched(&g).await;

    // One node down: readiness says which.
    let down = start(GraphSpec::new(
        "{name: t, type: TRANSFORMER, children: [{name: m}]}",
        vec![TestModelSpec::new("t", Mode::Echo)],
    ))
    .await;
    let a = get(&down, "/health/status").await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(a.header("seldon-node"), Some("m"));
    assert_eq!(a.json()["status"]["reason"], "NOT_READY");
    assert_eq!(
        get(&down, "/health/ping").await.body,
        "pong",
        "the filter itself is alive"
    );
}

#[tokio::test]
async fn v2_model_metadata_ready_infer_and_health() {
    let g = start(v2(
        "{name: first, children: [{name: second}]}",
        vec![
            TestModelSpec::new("first", Mode::V2Add).adding(1.0),
            TestModelSpec::new("second", Mode::V2Add).adding(10.0),
        ],
    ))
    .await;

    let node_meta = get(&g, "/v2/models/second").await;
    assert_eq!(node_meta.status, 200, "{}", node_meta.body);
    assert_eq!(
        node_meta.json(),
        json!({
            "name": "second", "versions": ["1"], "platform": "seldon-mesh-testmodel",
            "inputs": [{"name": "second-in", "datatype": "FP32", "shape": [-1, -1]}],
            "outputs": [{"name": "second-out", "datatype": "FP32", "shape": [-1, -1]}],
        })
    );
    let graph_meta = get(&g, "/v2/models/sdep").await;
    assert_eq!(graph_meta.status, 200, "{}", graph_meta.body);
    assert_eq!(
        graph_meta.json(),
        json!({
            "name": "sdep", "versions": [], "platform": "seldon-mesh",
            "inputs": [{"name": "first-in", "datatype": "FP32", "shape": [-1, -1]}],
            "outputs": [{"name": "second-out", "datatype": "FP32", "shape": [-1, -1]}],
        }),
        "the deployment as one model: the first node's inputs, the last node's outputs"
    );

    let node_ready = get(&g, "/v2/models/first/ready").await;
    assert_eq!(
        (node_ready.status, node_ready.json()),
        (200, json!({"name": "first", "ready": true}))
    );
    let graph_ready = get(&g, "/v2/models/sdep/ready").await;
    assert_eq!(
        (graph_ready.status, graph_ready.json()),
        (200, json!({"name": "sdep", "ready": true}))
    );
    let live = get(&g, "/v2/health/live").await;
    assert_eq!((live.status, live.json()), (200, json!({"live": true})));
    let ready = get(&g, "/v2/health/ready").await;
    assert_eq!((ready.status, ready.json()), (200, json!({"ready": true})));

    let req = json!({"id": "r9", "inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1.0, 2.0]}]});
    let infer = post(&g, "/v2/models/infer", &req.to_string()).await;
    assert_eq!(infer.status, 200, "{}", infer.body);
    assert_eq!(
        infer.json(),
        json!({
            "id": "r9", "model_name": "second",
            "outputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [12.0, 13.0]}],
            "parameters": {"tags": {"second": true}},
        }),
        "Seldon's /v2/models/infer runs the whole chain"
    );

    let v1 = post(&g, "/api/v1.0/predictions", &req.to_string()).await;
    assert_eq!(v1.status, 404);
    assert!(
        v1.info()
            .starts_with("/api/v1.0/predictions is not served for a v2 protocol graph"),
        "{}",
        v1.body
    );
    let unknown = get(&g, "/v2/models/nope").await;
    assert_eq!(
        (unknown.status, unknown.info()),
        (404, "unknown model \"nope\"".to_string())
    );

    assert_eq!(
        calls(&g, "first").await,
        [
            get_("/v2/models/first"),
            get_("/v2/models/first/ready"),
            get_("/v2/models/first/ready"),
            get_("/v2/models/first/ready"),
            ("POST".into(), "/v2/models/first/infer".into()),
        ]
    );
    assert_router_untouched(&g).await;
}

#[tokio::test]
async fn feedback_on_a_v2_graph_is_refused_and_reaches_no_node() {
    let g = start(v2(
        "{name: first, children: [{name: second}]}",
        vec![
            TestModelSpec::new("first", Mode::V2Add),
            TestModelSpec::new("second", Mode::V2Add),
        ],
    ))
    .await;
    let fb = json!({"request": {"inputs": []}, "response": {"outputs": []}, "reward": 1.0});
    let a = post(&g, "/api/v1.0/feedback", &fb.to_string()).await;
    assert_eq!(a.status, 404, "{}", a.body);
    assert_eq!(
        a.json(),
        json!({"status": {"code": 404, "reason": "NOT_FOUND", "status": "FAILURE",
            "info": "feedback is a Seldon protocol call: v2 graphs take none (Seldon's executor serves /api/v1.0/feedback only for protocol seldon)"}})
    );
    assert!(
        calls(&g, "first").await.is_empty(),
        "nothing is posted to /infer"
    );
    assert!(calls(&g, "second").await.is_empty());
    assert_router_untouched(&g).await;
}

/// 1000 v2 requests through RANDOM_ABTEST with ratioA = 0.3: the count for A is
/// Binomial(1000, 0.3), mean 300, sd = sqrt(1000 · 0.3 · 0.7) ≈ 14.49. The bound ±5 sd
/// (228..=372) fails a correct filter with probability < 6e-7.
#[tokio::test]
async fn v2_random_abtest_split_over_1000_requests() {
    let g = start(v2(
        "{name: ab, implementation: RANDOM_ABTEST, parameters: [{name: ratioA, value: '0.3', type: FLOAT}], children: [{name: a}, {name: b}]}",
        vec![
            TestModelSpec::new("a", Mode::V2Add).adding(1.0),
            TestModelSpec::new("b", Mode::V2Add).adding(2.0),
        ],
    ))
    .await;
    let client = client();
    let mut tasks = tokio::task::JoinSet::new();
    let mut answers = Vec::new();
    for i in 0..1000u32 {
        let (client, url) = (client.clone(), format!("{}/v2/models/ab/infer", g.url));
        tasks.spawn(async move {
            let body = json!({"id": format!("r{i}"), "inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [f64::from(i)]}]});
            let r = client.post(url).body(body.to_string()).send().await.unwrap();
            (i, r.status().as_u16(), r.json::<Value>().await.unwrap())
        });
        if tasks.len() >= 32 {
            answers.push(tasks.join_next().await.unwrap().unwrap());
        }
    }
    while let Some(a) = tasks.join_next().await {
        answers.push(a.unwrap());
    }
    let mut to_a = 0usize;
    for (i, status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(
            body["id"],
            format!("r{i}"),
            "each request gets its own answer"
        );
        let (model, add) = match body["model_name"].as_str() {
            Some("a") => (0, 1.0),
            Some("b") => (1, 2.0),
            other => panic!("answered by {other:?}: {body}"),
        };
        assert_eq!(
            body["outputs"][0]["data"],
            json!([f64::from(*i) + add]),
            "the answer is the chosen child's"
        );
        to_a += usize::from(model == 0);
    }
    assert_eq!(answers.len(), 1000);
    assert!(
        (228..=372).contains(&to_a),
        "{to_a} of 1000 went to A, expected 300 ± 72 (5 sd)"
    );
    let (na, nb) = (calls(&g, "a").await.len(), calls(&g, "b").await.len());
    assert_eq!(
        (na, na + nb),
        (to_a, 1000),
        "each request reached one child"
    );
    assert_router_untouched(&g).await;
}

/// Percent-decodes a `grpc-message` (gRPC's encoding of the message header).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], s.get(i + 1..i + 3)) {
            (b'%', Some(hex)) if u8::from_str_radix(hex, 16).is_ok() => {
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One gRPC unary call over h2c: returns (HTTP status, response headers, DATA bytes, trailers).
async fn grpc_call(
    url: &str,
    method: &str,
    message: &[u8],
) -> (
    u16,
    hyper::HeaderMap,
    bytes::Bytes,
    Option<hyper::HeaderMap>,
) {
    use http_body_util::BodyExt;
    let authority = url.trim_start_matches("http://").to_string();
    let stream = tokio::net::TcpStream::connect(&authority).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    framed.extend_from_slice(message);
    let req = hyper::Request::post(format!("http://{authority}{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(http_body_util::Full::new(bytes::Bytes::from(framed)))
        .unwrap();
    let res = send.send_request(req).await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let collected = res.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    (status, headers, collected.to_bytes(), trailers)
}

/// A gRPC service the entry does not serve (only `seldon.protos.Seldon` is, `tests/grpc.rs`):
/// a gRPC client gets a proper gRPC error, UNIMPLEMENTED with a message that says so, not a
/// hang or an HTTP error page.
#[tokio::test]
async fn an_unserved_grpc_service_is_refused_with_unimplemented() {
    let g = start(GraphSpec::new(
        "name: m",
        vec![TestModelSpec::new("m", Mode::Echo)],
    ))
    .await;
    let (status, headers, data, trailers) = grpc_call(
        &g.url,
        "/tensorflow.serving.PredictionService/Predict",
        b"\x1a\x00",
    )
    .await;
    assert_eq!(status, 200, "gRPC errors travel in grpc-status");
    assert!(
        data.is_empty() && trailers.is_none(),
        "a trailers-only answer"
    );
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    assert_eq!(header("content-type"), "application/grpc");
    assert_eq!(header("grpc-status"), "12", "UNIMPLEMENTED");
    let message: Value = serde_json::from_str(&percent_decode(header("grpc-message"))).unwrap();
    assert_eq!(
        message["status"]["info"],
        "gRPC at the graph entry is not served yet (/tensorflow.serving.PredictionService/Predict); use REST: POST /api/v1.0/predictions"
    );
    assert_eq!(message["status"]["reason"], "GRPC_NOT_SERVED");
    assert!(calls(&g, "m").await.is_empty());
    assert_router_untouched(&g).await;
}
