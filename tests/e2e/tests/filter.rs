//! The filter in a real Envoy 1.40 in front of real `testmodel` processes. Each test starts
//! its own graph (nodes + Envoy, its config checked with `envoy --mode validate` first) and
//! asserts response bodies and what each node received.
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

async fn start(graph: &str, nodes: Vec<TestModelSpec>) -> GraphUnderTest {
    start_spec(GraphSpec::new(graph, nodes)).await
}

async fn start_spec(spec: GraphSpec) -> GraphUnderTest {
    match GraphUnderTest::start(spec).await {
        Ok(g) => g,
        Err(e) => panic!("starting the graph failed: {e:#?}"),
    }
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
}

async fn post(g: &GraphUnderTest, path: &str, body: impl Into<reqwest::Body>) -> Answer {
    let r = client()
        .post(format!("{}{path}", g.url))
        .header("content-type", "application/json")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(body)
        .send()
        .await
        .unwrap();
    Answer {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.text().await.unwrap(),
    }
}

async fn get(g: &GraphUnderTest, path: &str) -> Answer {
    let r = client()
        .get(format!("{}{path}", g.url))
        .send()
        .await
        .unwrap();
    Answer {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.text().await.unwrap(),
    }
}

/// The router of the graph listener never saw a request: no direct response (the tripwire
/// route), and every upstream request on a node cluster was one of the filter's calls.
async fn assert_router_untouched(g: &GraphUnderTest, expected_node_calls: u64) {
    let stats = g.envoy.stats().await.unwrap();
    let stat = |name: &str| -> u64 {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    assert_eq!(
        stat("http.graph.rq_direct_response"),
        0,
        "a request reached the graph listener's router"
    );
    let mut calls = 0;
    for node in g.nodes.values() {
        calls += node.calls().await.unwrap().len() as u64;
    }
    let upstream: u64 = g
        .config
        .nodes
        .keys()
        .map(|n| stat(&format!("cluster.{n}.upstream_rq_total")))
        .sum();
    assert_eq!(
        upstream, calls,
        "every upstream request is a node call the filter made"
    );
    assert_eq!(calls, expected_node_calls);
}

const ONE: &str = r#"{"data":{"names":["a","b"],"ndarray":[[1.0,2.0]]}}"#;

#[tokio::test]
async fn one_model() {
    let g = start(
        "name: m",
        vec![TestModelSpec::new("m", Mode::Add).adding(10.0)],
    )
    .await;
    let a = post(&g, "/api/v1.0/predictions", ONE).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.json(),
        json!({"data":{"names":["a","b"],"ndarray":[[11.0,12.0]]},"meta":{"tags":{"m":true,"path":["m"]}}})
    );
    let puid = a.header("seldon-puid").expect("a generated puid is echoed");
    assert_eq!(puid.len(), 36);
    let calls = g.node("m").calls().await.unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].path, "/predict");
    assert_eq!(
        calls[0].body, ONE,
        "the payload reaches the node byte for byte"
    );
    assert_eq!(calls[0].header("seldon-puid"), Some(puid));
    assert_eq!(
        calls[0].header("traceparent"),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    );
    assert!(
        calls[0].header("x-request-id").is_some(),
        "Envoy's request id is forwarded"
    );
    assert_router_untouched(&g, 1).await;
}

#[tokio::test]
async fn transformer_model_output_transformer() {
    let g = start(
        r#"
name: out
type: OUTPUT_TRANSFORMER
children:
- name: tin
  type: TRANSFORMER
  children: [{name: m, type: MODEL}]
"#,
        vec![
            TestModelSpec::new("out", Mode::Add).adding(100.0),
            TestModelSpec::new("tin", Mode::Add).adding(1.0),
            TestModelSpec::new("m", Mode::Add).adding(10.0),
        ],
    )
    .await;
    let a = post(
        &g,
        "/api/v1.0/predictions",
        r#"{"data":{"ndarray":[[0.0]]}}"#,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let body = a.json();
    assert_eq!(body["data"]["ndarray"], json!([[111.0]]));
    assert_eq!(
        body["meta"]["tags"]["path"],
        json!(["tin", "m", "out"]),
        "input → model → output order"
    );
    assert_eq!(
        g.node("out").calls().await.unwrap()[0].path,
        "/transform-output"
    );
    assert_eq!(
        g.node("tin").calls().await.unwrap()[0].path,
        "/transform-input"
    );
    assert_router_untouched(&g, 3).await;
}

#[tokio::test]
async fn router_picks_child_one() {
    let g = start(
        "{name: r, type: ROUTER, children: [{name: a}, {name: b}]}",
        vec![
            TestModelSpec::new("r", Mode::Route).routing_to(1),
            TestModelSpec::new("a", Mode::Add).adding(1.0),
            TestModelSpec::new("b", Mode::Add).adding(2.0),
        ],
    )
    .await;
    let a = post(
        &g,
        "/api/v1.0/predictions",
        r#"{"data":{"ndarray":[[5.0]]}}"#,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let body = a.json();
    assert_eq!(body["data"]["ndarray"], json!([[7.0]]));
    assert_eq!(body["meta"]["routing"], json!({"r": 1}));
    assert_eq!(body["meta"]["tags"]["path"], json!(["b"]));
    assert!(g.node("a").calls().await.unwrap().is_empty());
    assert_eq!(g.node("r").calls().await.unwrap()[0].path, "/route");
    assert_router_untouched(&g, 2).await;
}

#[tokio::test]
async fn router_all_children_with_a_combiner() {
    let g = start(
        "{name: r, type: ROUTER, children: [{name: c, type: COMBINER, children: [{name: a}, {name: b}]}]}",
        vec![
            TestModelSpec::new("r", Mode::Route).routing_to(-1),
            TestModelSpec::new("c", Mode::Aggregate),
            TestModelSpec::new("a", Mode::Add).adding(1.0),
            TestModelSpec::new("b", Mode::Add).adding(2.0),
        ],
    )
    .await;
    let a = post(
        &g,
        "/api/v1.0/predictions",
        r#"{"data":{"ndarray":[[1.0,1.0]]}}"#,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let body = a.json();
    assert_eq!(
        body["data"]["ndarray"],
        json!([[5.0, 5.0]]),
        "(1+1) + (1+2) element-wise"
    );
    assert_eq!(body["meta"]["routing"], json!({"r": -1}));
    let agg = &g.node("c").calls().await.unwrap()[0];
    assert_eq!(agg.path, "/aggregate");
    let list = agg.json().unwrap();
    assert_eq!(
        list[0]["data"]["ndarray"],
        json!([[2.0, 2.0]]),
        "child order is kept"
    );
    assert_eq!(list[1]["data"]["ndarray"], json!([[3.0, 3.0]]));
    assert_router_untouched(&g, 4).await;
}

/// 2000 requests with ratioA = 0.3: the count for A is Binomial(2000, 0.3), mean 600, sd ≈ 20.5.
/// The bound ±5 sd (497..=703) fails a correct filter with probability < 1e-6.
#[tokio::test]
async fn random_abtest_split() {
    let g = start(
        "{name: ab, type: ROUTER, implementation: RANDOM_ABTEST, parameters: [{name: ratioA, value: '0.3', type: FLOAT}], children: [{name: a}, {name: b}]}",
        vec![TestModelSpec::new("a", Mode::Echo), TestModelSpec::new("b", Mode::Echo)],
    )
    .await;
    let client = client();
    let mut to_a = 0;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..2000 {
        let (client, url) = (client.clone(), format!("{}/api/v1.0/predictions", g.url));
        tasks.spawn(async move {
            let body = format!(r#"{{"data":{{"ndarray":[[{i}]]}}}}"#);
            let r = client.post(url).body(body).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        });
        if tasks.len() >= 32 {
            let v = tasks.join_next().await.unwrap().unwrap();
            to_a += usize::from(v["meta"]["routing"]["ab"] == json!(0));
        }
    }
    while let Some(v) = tasks.join_next().await {
        to_a += usize::from(v.unwrap()["meta"]["routing"]["ab"] == json!(0));
    }
    assert!(
        (497..=703).contains(&to_a),
        "{to_a} of 2000 went to A, expected 600 ± 103"
    );
    let (na, nb) = (
        g.node("a").calls().await.unwrap().len(),
        g.node("b").calls().await.unwrap().len(),
    );
    assert_eq!((na, na + nb), (to_a, 2000), "meta.routing tells the truth");
}

#[tokio::test]
async fn feedback_reaches_the_chosen_routers_send_feedback() {
    let g = start(
        "{name: r, type: ROUTER, children: [{name: a}, {name: b}]}",
        vec![
            TestModelSpec::new("r", Mode::Route).routing_to(1),
            TestModelSpec::new("a", Mode::Echo),
            TestModelSpec::new("b", Mode::Echo),
        ],
    )
    .await;
    let prediction = post(
        &g,
        "/api/v1.0/predictions",
        r#"{"data":{"ndarray":[[1.0]]}}"#,
    )
    .await
    .json();
    let feedback =
        json!({"request": {"data":{"ndarray":[[1.0]]}}, "response": prediction, "reward": 0.5});
    let a = post(&g, "/api/v1.0/feedback", feedback.to_string()).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.json()["meta"]["tags"]["r"],
        json!(true),
        "the router's reply is the answer"
    );
    let router_fb = g.node("r").feedback().await.unwrap();
    assert_eq!(router_fb.len(), 1);
    assert_eq!(router_fb[0]["reward"], json!(0.5));
    assert_eq!(router_fb[0]["response"]["meta"]["routing"], json!({"r": 1}));
    assert_eq!(
        g.node("b").feedback().await.unwrap().len(),
        1,
        "the chosen branch gets it"
    );
    assert!(
        g.node("a").feedback().await.unwrap().is_empty(),
        "the other branch does not"
    );
}

#[tokio::test]
async fn node_returns_500() {
    let g = start(
        "{name: t, type: TRANSFORMER, children: [{name: m}]}",
        vec![TestModelSpec::new("t", Mode::Echo), TestModelSpec::new("m", Mode::Echo).fail(500, Some(r#"{"status":{"code":-1,"info":"model exploded","reason":"MICROSERVICE_INTERNAL_ERROR","status":1}}"#))],
    )
    .await;
    let a = post(&g, "/api/v1.0/predictions", ONE).await;
    assert_eq!(a.status, 500);
    assert_eq!(a.header("seldon-node"), Some("m"));
    assert_eq!(
        a.json()["status"]["info"],
        "model exploded",
        "the node's body passes through"
    );
}

#[tokio::test]
async fn node_times_out() {
    let mut spec = GraphSpec::new(
        "name: m",
        vec![TestModelSpec::new("m", Mode::Slow).delay_ms(3_000)],
    );
    spec.timeout_ms = 300;
    let g = start_spec(spec).await;
    let a = post(&g, "/api/v1.0/predictions", ONE).await;
    assert_eq!(a.status, 504, "{}", a.body);
    assert_eq!(a.header("seldon-node"), Some("m"));
    let body = a.json();
    assert_eq!(body["status"]["reason"], "NODE_TIMEOUT");
    assert_eq!(
        body["status"]["info"],
        "node `m` timed out after 300 ms (/predict)"
    );
}

#[tokio::test]
async fn node_down() {
    // `b` has no process: its cluster points at a port where nothing listens.
    let g = start(
        "{name: c, type: COMBINER, children: [{name: a}, {name: b}]}",
        vec![
            TestModelSpec::new("c", Mode::Aggregate),
            TestModelSpec::new("a", Mode::Echo),
        ],
    )
    .await;
    let a = post(&g, "/api/v1.0/predictions", ONE).await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(a.header("seldon-node"), Some("b"));
    let body = a.json();
    assert_eq!(body["status"]["reason"], "NODE_UNREACHABLE");
    assert!(
        body["status"]["info"]
            .as_str()
            .unwrap()
            .starts_with("node `b` is unreachable (/predict)"),
        "{body}"
    );
    let ready = get(&g, "/ready").await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.header("seldon-node"), Some("b"));
}

#[tokio::test]
async fn malformed_request() {
    let g = start("name: m", vec![TestModelSpec::new("m", Mode::Echo)]).await;
    let a = post(&g, "/api/v1.0/predictions", "{not json").await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(
        a.header("seldon-node"),
        None,
        "the client is at fault: no node is blamed (issue 11)"
    );
    let body = a.json();
    assert_eq!(body["status"]["reason"], "BAD_REQUEST");
    assert!(
        body["status"]["info"]
            .as_str()
            .unwrap()
            .starts_with("bad request: request body is not valid JSON"),
        "{}",
        a.body
    );
    let fb = post(&g, "/api/v1.0/feedback", "[1,").await;
    assert_eq!(fb.status, 400);
    assert_eq!(fb.json()["status"]["reason"], "BAD_FEEDBACK");
    let nf = get(&g, "/api/v9/predictions").await;
    assert_eq!(nf.status, 404);
    assert_eq!(nf.json()["status"]["status"], "FAILURE");
    let wrong_method = get(&g, "/api/v1.0/predictions").await;
    assert_eq!(wrong_method.status, 405);
    assert_router_untouched(&g, 0).await;
}

#[tokio::test]
async fn body_over_the_limit() {
    let mut spec = GraphSpec::new("name: m", vec![TestModelSpec::new("m", Mode::Echo)]);
    spec.body_limit_bytes = 100_000;
    let g = start_spec(spec).await;
    let payload = |len: usize| {
        let prefix = r#"{"strData":""#;
        let fill = len - prefix.len() - 2;
        format!("{prefix}{}\"}}", "x".repeat(fill))
    };
    let at = post(&g, "/api/v1.0/predictions", payload(100_000)).await;
    let sent = g.node("m").calls().await.unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body.len(), 100_000, "exactly the limit passes");
    // The echo adds its tags, so its answer is over the limit: the node's fault (issue 11).
    assert_eq!(at.status, 502, "{}", at.body);
    assert_eq!(at.header("seldon-node"), Some("m"));
    assert_eq!(at.json()["status"]["reason"], "NODE_OUTPUT_TOO_LARGE");
    let under = post(&g, "/api/v1.0/predictions", payload(99_000)).await;
    assert_eq!(under.status, 200, "{}", &under.body[..200]);
    assert_eq!(under.json()["strData"].as_str().unwrap().len(), 99_000 - 14);
    let over = post(&g, "/api/v1.0/predictions", payload(100_001)).await;
    assert_eq!(over.status, 413);
    assert_eq!(
        over.json()["status"]["info"],
        "request body is larger than the limit of 100000 bytes"
    );
    let way_over = post(&g, "/api/v1.0/predictions", payload(150_000)).await;
    assert_eq!(way_over.status, 413);
    assert_eq!(way_over.json()["status"]["reason"], "PAYLOAD_TOO_LARGE");
    assert_router_untouched(&g, 2).await;
}

// ---------------------------------------- issue 11: check at every hop, blame the right node

/// A hop failure as the client sees it: status, JSON body with `reason`, `seldon-node`; returns
/// `status.info`.
fn hop_failure(a: &Answer, status: u16, node: Option<&str>, reason: &str) -> String {
    assert_eq!(a.status, status, "{}", a.body);
    assert_eq!(a.header("seldon-node"), node, "{}", a.body);
    assert_eq!(a.header("content-type"), Some("application/json"));
    let body = a.json();
    assert_eq!(body["status"]["reason"], reason, "{body}");
    assert_eq!(body["status"]["code"], status);
    assert!(a.header("seldon-puid").is_some());
    body["status"]["info"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_leaf_answering_200_garbage_is_a_502_naming_it() {
    let g = start(
        "name: m",
        vec![TestModelSpec::new("m", Mode::Echo).fail(200, Some("garbage"))],
    )
    .await;
    let a = post(&g, "/api/v1.0/predictions", ONE).await;
    let info = hop_failure(&a, 502, Some("m"), "BAD_NODE_OUTPUT");
    assert!(
        info.starts_with(
            "node `m` gave an unusable answer (/predict): the answer is not valid JSON"
        ),
        "{info}"
    );
}

#[tokio::test]
async fn a_transformer_answering_garbage_is_blamed_and_the_model_never_called() {
    let g = start(
        "{name: t, type: TRANSFORMER, children: [{name: m}]}",
        vec![
            TestModelSpec::new("t", Mode::Echo).fail(200, Some("garbage")),
            TestModelSpec::new("m", Mode::Echo),
        ],
    )
    .await;
    let a = post(&g, "/api/v1.0/predictions", ONE).await;
    let info = hop_failure(&a, 502, Some("t"), "BAD_NODE_OUTPUT");
    assert!(info.contains("(/transform-input)"), "{info}");
    assert_eq!(g.node("m").calls().await.unwrap(), vec![]);
}

#[tokio::test]
async fn a_transformer_answering_5_mb_is_a_502_naming_it_not_a_413_from_the_model() {
    let big = 5 * 1024 * 1024;
    let g = start(
        "{name: t, type: TRANSFORMER, children: [{name: m}]}",
        vec![
            TestModelSpec::new("t", Mode::Echo).fail_with_bytes(200, big),
            TestModelSpec::new("m", Mode::Echo),
        ],
    )
    .await;
    let a = post(&g, "/api/v1.0/predictions", ONE).await;
    let info = hop_failure(&a, 502, Some("t"), "NODE_OUTPUT_TOO_LARGE");
    assert_eq!(
        info,
        format!(
            "node `t` answered {big} bytes (/transform-input), over the limit of 1048576 bytes"
        )
    );
    assert_eq!(g.node("m").calls().await.unwrap(), vec![]);
}

#[tokio::test]
async fn a_nodes_non_json_error_is_wrapped_in_json_keeping_its_status() {
    let g = start(
        "name: m",
        vec![
            TestModelSpec::new("m", Mode::Echo).fail(503, Some("<html>backend overloaded</html>")),
        ],
    )
    .await;
    let a = post(&g, "/api/v1.0/predictions", ONE).await;
    let info = hop_failure(&a, 503, Some("m"), "NODE_ERROR");
    assert_eq!(
        info,
        "node `m` answered 503 with a body that is not JSON: <html>backend overloaded</html>"
    );
}

#[tokio::test]
async fn a_v2_tensor_without_datatype_is_the_clients_400_and_no_node_is_called() {
    let mut spec = GraphSpec::new(
        "{name: first, children: [{name: second}]}",
        vec![
            TestModelSpec::new("first", Mode::V2Add),
            TestModelSpec::new("second", Mode::V2Add),
        ],
    );
    spec.protocol = Protocol::V2;
    let g = start_spec(spec).await;
    let req = json!({"inputs": [{"name": "x", "shape": [1, 2], "data": [1.0, 2.0]}]});
    let a = post(&g, "/v2/models/first/infer", req.to_string()).await;
    let info = hop_failure(&a, 400, None, "BAD_REQUEST");
    assert!(
        info.starts_with("bad request: v2 inference request is invalid: missing field `datatype`"),
        "{info}"
    );
    assert_eq!(g.node("first").calls().await.unwrap(), vec![]);
    // After it, a good request still answers.
    let good =
        json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1.0, 2.0]}]});
    let ok = post(&g, "/v2/models/first/infer", good.to_string()).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["outputs"][0]["name"], "x");
}

#[tokio::test]
async fn a_v2_node_answer_that_cannot_feed_the_next_blames_that_node() {
    let mut spec = GraphSpec::new(
        "{name: first, children: [{name: second}]}",
        vec![
            TestModelSpec::new("first", Mode::V2Add).fail(200, Some(r#"{"model_name":"first"}"#)),
            TestModelSpec::new("second", Mode::V2Add),
        ],
    );
    spec.protocol = Protocol::V2;
    let g = start_spec(spec).await;
    let req = json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]});
    let a = post(&g, "/v2/models/first/infer", req.to_string()).await;
    let info = hop_failure(&a, 502, Some("first"), "BAD_NODE_OUTPUT");
    assert!(info.contains("missing field `outputs`"), "{info}");
    assert_eq!(g.node("second").calls().await.unwrap(), vec![]);
}

#[tokio::test]
async fn v2_infer_through_a_two_model_chain() {
    let mut spec = GraphSpec::new(
        "{name: first, children: [{name: second}]}",
        vec![
            TestModelSpec::new("first", Mode::V2Add).adding(1.0),
            TestModelSpec::new("second", Mode::V2Add).adding(10.0),
        ],
    );
    spec.protocol = Protocol::V2;
    let g = start_spec(spec).await;
    let req = json!({"id": "r1", "inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1.0, 2.0]}]});
    let a = post(&g, "/v2/models/first/infer", req.to_string()).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let body = a.json();
    assert_eq!(body["outputs"][0]["data"], json!([12.0, 13.0]));
    assert_eq!(body["outputs"][0]["name"], "x");
    assert_eq!(body["id"], "r1");
    let second = &g.node("second").calls().await.unwrap()[0];
    assert_eq!(second.path, "/v2/models/second/infer");
    assert_eq!(
        second.json().unwrap()["inputs"][0]["data"],
        json!([2.0, 3.0]),
        "outputs of first became inputs"
    );
    let ready = get(&g, "/v2/models/first/ready").await;
    assert_eq!(
        (ready.status, ready.json()),
        (200, json!({"name": "first", "ready": true}))
    );
    let unknown = post(&g, "/v2/models/nope/infer", req.to_string()).await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn two_hundred_concurrent_requests_each_get_their_own_answer() {
    let g = start(
        "{name: t, type: TRANSFORMER, children: [{name: c, type: COMBINER, children: [{name: a}, {name: b}]}]}",
        vec![
            TestModelSpec::new("t", Mode::Add).adding(1.0),
            TestModelSpec::new("c", Mode::Aggregate),
            TestModelSpec::new("a", Mode::Add).adding(0.0),
            TestModelSpec::new("b", Mode::Add).adding(1000.0),
        ],
    )
    .await;
    let client = client();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200u32 {
        let (client, url) = (client.clone(), format!("{}/api/v1.0/predictions", g.url));
        tasks.spawn(async move {
            let body = json!({"data": {"ndarray": [[f64::from(i)]]}});
            let r = client
                .post(url)
                .header("seldon-puid", format!("p{i}"))
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            let puid = r
                .headers()
                .get("seldon-puid")
                .map(|v| v.to_str().unwrap().to_string());
            (
                i,
                r.status().as_u16(),
                puid,
                r.json::<Value>().await.unwrap(),
            )
        });
    }
    let mut seen = 0;
    while let Some(res) = tasks.join_next().await {
        let (i, status, puid, body) = res.unwrap();
        assert_eq!(status, 200, "{body}");
        let x = f64::from(i) + 1.0;
        assert_eq!(
            body["data"]["ndarray"],
            json!([[x + x + 1000.0]]),
            "request {i}"
        );
        assert_eq!(puid, Some(format!("p{i}")));
        seen += 1;
    }
    assert_eq!(seen, 200);
    assert_router_untouched(&g, 800).await;
}

#[tokio::test]
async fn ready_live_and_metadata() {
    let g = start(
        "{name: t, type: TRANSFORMER, children: [{name: m}]}",
        vec![
            TestModelSpec::new("t", Mode::Echo),
            TestModelSpec::new("m", Mode::Echo),
        ],
    )
    .await;
    let live = get(&g, "/live").await;
    assert_eq!((live.status, live.json()), (200, json!({"live": true})));
    let ready = get(&g, "/ready").await;
    assert_eq!((ready.status, ready.json()), (200, json!({"ready": true})));
    let meta = get(&g, "/api/v1.0/metadata").await;
    assert_eq!(meta.status, 200, "{}", meta.body);
    let body = meta.json();
    assert_eq!(body["name"], "default");
    assert_eq!(body["models"]["t"]["name"], "t");
    assert_eq!(body["models"]["m"]["name"], "m");
}

#[tokio::test]
async fn metrics_count_requests_per_predictor_and_node() {
    let g = start("name: m", vec![TestModelSpec::new("m", Mode::Echo)]).await;
    for _ in 0..3 {
        assert_eq!(post(&g, "/api/v1.0/predictions", ONE).await.status, 200);
    }
    let stats = g.envoy.stats().await.unwrap();
    let counter = |needle: &str| {
        stats
            .lines()
            .find(|l| l.contains(needle) && l.contains("_total:"))
            .unwrap_or_else(|| panic!("no {needle} in stats"))
            .rsplit(": ")
            .next()
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    assert_eq!(
        counter(
            "service=.=predictions;.;method=.=post;.;code=.=200;.;seldon_api_executor_server_requests"
        ),
        3
    );
    assert_eq!(
        counter(
            "model_name=.=m;.;service=.=/predict;.;code=.=200;.;seldon_api_executor_client_requests"
        ),
        3
    );

    // The bootstrap's stats_tags turn the encoded labels into Prometheus labels.
    let prom = g.envoy.admin_get("/stats/prometheus").await.unwrap();
    let line = prom
        .lines()
        .find(|l| l.starts_with("seldon_api_executor_server_requests_total{"))
        .unwrap_or_else(|| panic!("no server counter in:\n{prom}"));
    for label in [
        r#"deployment_name="sdep""#,
        r#"predictor_name="default""#,
        r#"service="predictions""#,
        r#"method="post""#,
        r#"code="200""#,
    ] {
        assert!(line.contains(label), "{label} missing in {line}");
    }
    assert!(line.ends_with(" 3"), "{line}");
    assert!(
        prom.contains("seldon_api_executor_client_requests_ms_bucket{"),
        "latency histogram exported"
    );
}

#[tokio::test]
async fn payload_logs_reach_the_logger_as_cloudevents() {
    let mut spec = GraphSpec::new(
        "{name: t, type: TRANSFORMER, children: [{name: m, logger: {mode: all}}]}",
        vec![
            TestModelSpec::new("t", Mode::Echo),
            TestModelSpec::new("m", Mode::Add).adding(1.0),
        ],
    );
    spec.payload_logger = Some(TestModelSpec::new("collector", Mode::Echo));
    let g = start_spec(spec).await;
    let a = post(
        &g,
        "/api/v1.0/predictions",
        r#"{"data":{"ndarray":[[1.0]]}}"#,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let puid = a.header("seldon-puid").unwrap().to_string();
    // Logs leave from the root context on its next tick (100 ms): poll, don't sleep blindly.
    let mut logged = Vec::new();
    for _ in 0..100 {
        logged = g.node("collector").calls().await.unwrap();
        if logged.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(logged.len(), 2, "one request and one response event for m");
    let by_type = |t: &str| {
        logged
            .iter()
            .find(|c| c.header("ce-type") == Some(t))
            .unwrap_or_else(|| panic!("no {t}"))
    };
    let req = by_type("io.seldon.serving.inference.request");
    assert_eq!(
        req.json().unwrap()["meta"]["tags"]["t"],
        json!(true),
        "m's input is t's output"
    );
    let resp = by_type("io.seldon.serving.inference.response");
    assert_eq!(resp.json().unwrap()["data"]["ndarray"], json!([[2.0]]));
    for c in [req, resp] {
        assert_eq!(c.header("ce-requestid"), Some(puid.as_str()));
        assert_eq!(c.header("ce-modelid"), Some("m"));
        assert_eq!(c.header("ce-specversion"), Some("1.0"));
        assert_eq!(c.header("ce-inferenceservicename"), Some("sdep"));
    }
    let skipped = client()
        .post(format!("{}/api/v1.0/predictions", g.url))
        .header("seldon-skip-logging", "true")
        .body(r#"{"data":{"ndarray":[[1.0]]}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(skipped.status(), 200);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        g.node("collector").calls().await.unwrap().len(),
        2,
        "Seldon-Skip-Logging is honoured"
    );
}

/// The mesh case: Istio's WasmPlugin cannot set `allow_on_headers_stop_iteration`, so only the
/// buffer filter after the wasm filter stands between a request and the router.
#[tokio::test]
async fn header_trap_is_closed_by_the_buffer_filter_alone() {
    let mut spec = GraphSpec::new(
        "{name: t, type: TRANSFORMER, children: [{name: m}]}",
        vec![
            TestModelSpec::new("t", Mode::Add).adding(1.0),
            TestModelSpec::new("m", Mode::Add).adding(2.0),
        ],
    );
    spec.allow_on_headers_stop_iteration = false;
    spec.body_limit_bytes = 1000;
    let g = start_spec(spec).await;
    let yaml = std::fs::read_to_string(g.envoy.config_path()).unwrap();
    assert!(
        yaml.contains("allow_on_headers_stop_iteration: false"),
        "the test runs without fix 1"
    );
    let a = post(
        &g,
        "/api/v1.0/predictions",
        r#"{"data":{"ndarray":[[0.0]]}}"#,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["data"]["ndarray"], json!([[3.0]]));
    let big = format!(r#"{{"strData":"{}"}}"#, "x".repeat(1500));
    assert_eq!(post(&g, "/api/v1.0/predictions", big).await.status, 413);
    let empty = client()
        .post(format!("{}/api/v1.0/predictions", g.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        empty.status(),
        400,
        "an empty body is refused at the entry, before any node (issue 11)"
    );
    let empty: Value = empty.json().await.unwrap();
    assert_eq!(empty["status"]["reason"], "BAD_REQUEST");
    assert_eq!(get(&g, "/ready").await.status, 200);
    assert_eq!(get(&g, "/live").await.status, 200);
    assert_router_untouched(&g, 2 + 2).await;
}

#[test]
fn envoy_bootstrap_tags_every_label_the_filter_encodes() {
    assert_eq!(
        seldon_envoy::FILTER_METRIC_TAGS,
        seldon_filter::metrics::TAGS
    );
}
