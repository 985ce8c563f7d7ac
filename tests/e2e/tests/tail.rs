//! The tail call (issue 12, item 5) on the real Envoy 1.40: the graph's last node call goes
//! through the graph listener's router (a `cluster_header: x-seldon-upstream` route) instead
//! of a callout plus a local reply, and its answer is checked and rewritten by the filter.
//!
//! Envoy's stats tell the two paths apart: the router of the graph listener counts tail calls
//! (`http.graph.rq_total`), Envoy's async client counts callouts (`http.async-client.rq_total`).
//!
//! Needs the release filter module (`make wasm`) and Envoy (`scripts/setup.sh`).

use std::time::Duration;

use seldon_e2e::graph::{GraphSpec, GraphUnderTest};
use seldon_e2e::{Mode, TestModelSpec};
use serde_json::{Value, json};

const ONE: &str = r#"{"data":{"names":["a","b"],"ndarray":[[1.0,2.0]]}}"#;

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

async fn post(url: &str, body: &str, puid: Option<&str>) -> Answer {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(p) = puid {
        req = req.header("seldon-puid", p);
    }
    let r = req.send().await.unwrap();
    Answer {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.text().await.unwrap(),
    }
}

/// Envoy's counter `name` (0 when it does not exist yet).
async fn stat(g: &GraphUnderTest, name: &str) -> u64 {
    let stats = g.envoy.stats().await.unwrap();
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// (tail calls through the graph listener's router, callouts, tripwire hits)
async fn paths_taken(g: &GraphUnderTest) -> (u64, u64, u64) {
    (
        stat(g, "http.graph.rq_total").await,
        stat(g, "http.async-client.rq_total").await,
        stat(g, "http.graph.rq_direct_response").await,
    )
}

#[tokio::test]
async fn a_one_model_graph_is_answered_by_a_tail_call_not_a_callout() {
    let g = start_spec(GraphSpec::new(
        "name: m",
        vec![TestModelSpec::new("m", Mode::Add).adding(10.0)],
    ))
    .await;
    let yaml = std::fs::read_to_string(g.envoy.config_path()).unwrap();
    assert!(yaml.contains("cluster_header: x-seldon-upstream"), "{yaml}");
    let url = format!("{}/api/v1.0/predictions", g.url);
    // A client's own routing header is dropped: only the filter picks the tail's cluster.
    let hijack = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(&url)
        .header("content-type", "application/json")
        .header("x-seldon-upstream", "nowhere")
        .body(ONE)
        .send()
        .await
        .unwrap();
    assert_eq!(hijack.status(), 200);
    g.node("m").clear_calls().await.unwrap();
    let a = post(&url, ONE, Some("puid-1")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.json(),
        json!({"data":{"names":["a","b"],"ndarray":[[11.0,12.0]]},"meta":{"tags":{"m":true,"path":["m"]}}})
    );
    assert_eq!(a.header("seldon-puid"), Some("puid-1"));
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert_eq!(
        a.header("content-length").map(str::to_string),
        Some(a.body.len().to_string())
    );
    let calls = g.node("m").calls().await.unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].path, "/predict");
    assert_eq!(
        calls[0].body, ONE,
        "the payload reaches the node byte for byte"
    );
    assert_eq!(calls[0].header("seldon-puid"), Some("puid-1"));
    assert_eq!(calls[0].header("content-type"), Some("application/json"));
    assert_eq!(
        calls[0].header("x-seldon-upstream"),
        None,
        "the route removes the filter's routing header"
    );
    assert_eq!(paths_taken(&g).await, (2, 0, 0));
    // A third request on a fresh connection, and the counters follow.
    let b = post(&url, ONE, None).await;
    assert_eq!(b.status, 200, "{}", b.body);
    assert_eq!(b.header("seldon-puid").map(str::len), Some(36));
    assert_eq!(paths_taken(&g).await, (3, 0, 0));
}

#[tokio::test]
async fn a_chain_calls_out_to_the_transformers_and_tails_to_the_model() {
    let g = start_spec(GraphSpec::new(
        "{name: t, type: TRANSFORMER, children: [{name: u, type: TRANSFORMER, children: [{name: m}]}]}",
        vec![
            TestModelSpec::new("t", Mode::Add).adding(1.0),
            TestModelSpec::new("u", Mode::Add).adding(2.0),
            TestModelSpec::new("m", Mode::Add).adding(3.0),
        ],
    ))
    .await;
    let a = post(&format!("{}/api/v1.0/predictions", g.url), ONE, None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["data"]["ndarray"], json!([[7.0, 8.0]]));
    assert_eq!(a.json()["meta"]["tags"]["path"], json!(["t", "u", "m"]));
    let m = g.node("m").calls().await.unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(
        serde_json::from_str::<Value>(&m[0].body).unwrap()["data"]["ndarray"],
        json!([[4.0, 5.0]])
    );
    assert_eq!(paths_taken(&g).await, (1, 2, 0));
}

#[tokio::test]
async fn the_tail_nodes_garbage_is_a_502_naming_it() {
    let g = start_spec(GraphSpec::new(
        "{name: t, type: TRANSFORMER, children: [{name: m}]}",
        vec![
            TestModelSpec::new("t", Mode::Echo),
            TestModelSpec::new("m", Mode::Fail).fail(200, Some("not json")),
        ],
    ))
    .await;
    let a = post(&format!("{}/api/v1.0/predictions", g.url), ONE, Some("p-2")).await;
    assert_eq!(a.status, 502, "{}", a.body);
    assert_eq!(a.header("seldon-node"), Some("m"));
    assert_eq!(a.header("seldon-puid"), Some("p-2"));
    let body = a.json();
    assert_eq!(body["status"]["reason"], "BAD_NODE_OUTPUT", "{body}");
    assert!(
        body["status"]["info"]
            .as_str()
            .unwrap()
            .starts_with("node `m` gave an unusable answer (/predict)"),
        "{body}"
    );
    assert_eq!(paths_taken(&g).await, (1, 1, 0));
}

#[tokio::test]
async fn an_unreachable_or_late_tail_node_is_named_with_the_puid() {
    // `m` has no process: its cluster points at a port where nothing listens.
    let g = start_spec(GraphSpec::new("name: m", vec![])).await;
    let a = post(&format!("{}/api/v1.0/predictions", g.url), ONE, Some("p-3")).await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(a.header("seldon-node"), Some("m"));
    assert_eq!(a.header("seldon-puid"), Some("p-3"));
    let body = a.json();
    assert_eq!(body["status"]["reason"], "NODE_UNREACHABLE", "{body}");
    let info = body["status"]["info"].as_str().unwrap();
    assert!(
        info.starts_with(
            "node `m` is unreachable (/predict): Envoy: upstream_reset_before_response_started"
        ),
        "{body}"
    );
    assert_eq!(paths_taken(&g).await, (1, 0, 0));

    let mut spec = GraphSpec::new(
        "name: m",
        vec![TestModelSpec::new("m", Mode::Slow).delay_ms(3_000)],
    );
    spec.timeout_ms = 300;
    let g = start_spec(spec).await;
    let started = std::time::Instant::now();
    let a = post(&format!("{}/api/v1.0/predictions", g.url), ONE, Some("p-4")).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the node's timeout applies"
    );
    assert_eq!(a.status, 504, "{}", a.body);
    assert_eq!(a.header("seldon-node"), Some("m"));
    assert_eq!(a.header("seldon-puid"), Some("p-4"));
    assert_eq!(
        a.json()["status"]["info"],
        "node `m` timed out after 300 ms (/predict)"
    );
}

#[tokio::test]
async fn through_local_modes_gateway_the_tail_answers_the_same() {
    let mut spec = GraphSpec::new(
        "{name: r, type: ROUTER, children: [{name: a}, {name: b}]}",
        vec![
            TestModelSpec::new("r", Mode::Route).routing_to(1),
            TestModelSpec::new("a", Mode::Add).adding(1.0),
            TestModelSpec::new("b", Mode::Add).adding(2.0),
        ],
    );
    spec.gateway = true;
    let g = start_spec(spec).await;
    let url = format!("{}/api/v1.0/predictions", g.gateway_url.clone().unwrap());
    let a = post(&url, ONE, None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let body = a.json();
    assert_eq!(body["data"]["ndarray"], json!([[3.0, 4.0]]));
    assert_eq!(
        body["meta"]["routing"],
        json!({"r": 1}),
        "routing added to the tail's answer"
    );
    assert!(a.header("seldon-puid").is_some());
    assert!(g.node("a").calls().await.unwrap().is_empty());
    assert_eq!(paths_taken(&g).await, (1, 1, 0));
}

/// The mesh case (no `allow_on_headers_stop_iteration`, so no tail route): callouts only.
#[tokio::test]
async fn without_held_headers_the_filter_keeps_to_callouts() {
    let mut spec = GraphSpec::new("name: m", vec![TestModelSpec::new("m", Mode::Echo)]);
    spec.allow_on_headers_stop_iteration = false;
    let g = start_spec(spec).await;
    let yaml = std::fs::read_to_string(g.envoy.config_path()).unwrap();
    assert!(!yaml.contains("x-seldon-upstream") && !yaml.contains("SELDON_TAIL_CALLS"));
    let a = post(&format!("{}/api/v1.0/predictions", g.url), ONE, None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["meta"]["tags"]["path"], json!(["m"]));
    assert_eq!(paths_taken(&g).await, (0, 1, 0));
}
