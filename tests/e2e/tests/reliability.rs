//! Issue 11 through a real Envoy 1.40, with a gateway listener in front of the graph listener
//! as in local mode: every node answer checked at its hop (the producer blamed, with JSON),
//! timeouts end to end (the gateway's route timeout derived from the graph), Envoy's own
//! local replies as Seldon status JSON, and path normalization. After each bad request a
//! good one to the same graph still answers.
//!
//! Needs the release filter module (`make wasm`) and Envoy (`scripts/setup.sh`).

use std::time::{Duration, Instant};

use seldon_e2e::graph::{GraphSpec, GraphUnderTest};
use seldon_e2e::{Mode, TestModel, TestModelSpec};
use seldon_envoy::{
    Cluster, Envoy, EnvoyConfig, GatewayRoute, Listener, ListenerKind, WeightedCluster,
};
use seldon_graph::Protocol;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ONE: &str = r#"{"data":{"names":["a","b"],"ndarray":[[1.0,2.0]]}}"#;
/// A good request whose body a `fail_when(BAD)` node fails on.
const BAD: &str = r#"{"data":{"names":["BAD"],"ndarray":[[1.0,2.0]]}}"#;
const PREDICT: &str = "/api/v1.0/predictions";

fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()
        .unwrap()
}

async fn start(spec: GraphSpec) -> GraphUnderTest {
    let mut spec = spec;
    spec.gateway = true;
    match GraphUnderTest::start(spec).await {
        Ok(g) => g,
        Err(e) => panic!("starting the graph failed: {e:#?}"),
    }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn gateway(g: &GraphUnderTest) -> &str {
    g.gateway_url.as_deref().unwrap()
}

async fn post_to(url: &str, body: impl Into<reqwest::Body>, timeout: Duration) -> Answer {
    let r = client(timeout)
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    Answer {
        status: r.status().as_u16(),
        headers: r
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect(),
        body: r.text().await.unwrap(),
    }
}

async fn post(g: &GraphUnderTest, path: &str, body: impl Into<reqwest::Body>) -> Answer {
    post_to(
        &format!("{}{path}", gateway(g)),
        body,
        Duration::from_secs(20),
    )
    .await
}

/// A Seldon status JSON failure: status, `content-type`, `reason`, `code`, `seldon-node` and
/// a `Seldon-Puid`; returns `status.info`.
fn failure(a: &Answer, status: u16, node: Option<&str>, reason: &str) -> String {
    assert_eq!(a.status, status, "{a:?}");
    assert_eq!(a.header("content-type"), Some("application/json"), "{a:?}");
    assert_eq!(a.header("seldon-node"), node, "{a:?}");
    let body = a.json();
    assert_eq!(body["status"]["reason"], reason, "{body}");
    assert_eq!(body["status"]["code"], status, "{body}");
    assert_eq!(body["status"]["status"], "FAILURE", "{body}");
    assert!(
        a.header("seldon-puid").is_some_and(|p| p.len() == 36),
        "{a:?}"
    );
    body["status"]["info"].as_str().unwrap().to_string()
}

/// A good request through the gateway answers 200 with the graph's output.
async fn still_answers(g: &GraphUnderTest) {
    let a = post(g, PREDICT, ONE).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json()["data"]["ndarray"], json!([[1.0, 2.0]]), "{a:?}");
}

/// Sends raw bytes to 127.0.0.1:`port` (paths and protocol versions a client library would
/// fix or refuse) and reads the answer until the server closes.
async fn raw(port: u16, request: &[u8]) -> Answer {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the server closed the connection")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

fn port_of(url: &str) -> u16 {
    url.trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap()
}

// ------------------------------------------------ check at every hop, blame the right node

#[tokio::test]
async fn a_leaf_answering_garbage_is_a_502_naming_it_then_a_good_request_answers() {
    let g = start(GraphSpec::new(
        "name: m",
        vec![
            TestModelSpec::new("m", Mode::Echo)
                .fail(200, Some("garbage"))
                .fail_when("BAD"),
        ],
    ))
    .await;
    let a = post(&g, PREDICT, BAD).await;
    let info = failure(&a, 502, Some("m"), "BAD_NODE_OUTPUT");
    assert!(
        info.starts_with(
            "node `m` gave an unusable answer (/predict): the answer is not valid JSON"
        ),
        "{info}"
    );
    assert!(!a.body.contains("\"garbage\""), "{a:?}");
    still_answers(&g).await;
}

#[tokio::test]
async fn a_transformer_answering_garbage_is_blamed_not_the_model() {
    let g = start(GraphSpec::new(
        "{name: t, type: TRANSFORMER, children: [{name: m, type: MODEL}]}",
        vec![
            TestModelSpec::new("t", Mode::Echo)
                .fail(200, Some("garbage"))
                .fail_when("BAD"),
            TestModelSpec::new("m", Mode::Echo),
        ],
    ))
    .await;
    let a = post(&g, PREDICT, BAD).await;
    let info = failure(&a, 502, Some("t"), "BAD_NODE_OUTPUT");
    assert!(
        info.contains("node `t`") && info.contains("(/transform-input)"),
        "{info}"
    );
    assert_eq!(
        g.node("m").calls().await.unwrap(),
        vec![],
        "the model was never called"
    );
    still_answers(&g).await;
}

#[tokio::test]
async fn a_transformer_answering_5_mb_is_a_json_502_naming_it() {
    let big = 5 * 1024 * 1024;
    let g = start(GraphSpec::new(
        "{name: t, type: TRANSFORMER, children: [{name: m, type: MODEL}]}",
        vec![
            TestModelSpec::new("t", Mode::Echo)
                .fail_with_bytes(200, big)
                .fail_when("BAD"),
            TestModelSpec::new("m", Mode::Echo),
        ],
    ))
    .await;
    // a 50-byte request: neither the client nor the model is at fault
    let a = post(&g, PREDICT, BAD).await;
    let info = failure(&a, 502, Some("t"), "NODE_OUTPUT_TOO_LARGE");
    assert_eq!(
        info,
        format!(
            "node `t` answered {big} bytes (/transform-input), over the limit of 1048576 bytes"
        )
    );
    assert_eq!(g.node("m").calls().await.unwrap(), vec![]);
    still_answers(&g).await;
}

#[tokio::test]
async fn a_nodes_non_json_error_is_quoted_in_json_and_truncated() {
    let html = format!("<html>{}</html>", "overloaded ".repeat(200));
    let g = start(GraphSpec::new(
        "name: m",
        vec![
            TestModelSpec::new("m", Mode::Echo)
                .fail(503, Some(&html))
                .fail_when("BAD"),
        ],
    ))
    .await;
    let a = post(&g, PREDICT, BAD).await;
    let info = failure(&a, 503, Some("m"), "NODE_ERROR");
    assert!(
        info.starts_with("node `m` answered 503 with a body that is not JSON: <html>overloaded"),
        "{info}"
    );
    assert!(
        info.ends_with(&format!("({} bytes in all)", html.len())),
        "{info}"
    );
    assert!(info.len() < 700, "quoted to a sane length: {}", info.len());
    still_answers(&g).await;
}

#[tokio::test]
async fn a_v2_tensor_without_datatype_is_the_clients_400() {
    let mut spec = GraphSpec::new(
        "{name: first, children: [{name: second}]}",
        vec![
            TestModelSpec::new("first", Mode::V2Add),
            TestModelSpec::new("second", Mode::V2Add),
        ],
    );
    spec.protocol = Protocol::V2;
    let g = start(spec).await;
    let bad = json!({"inputs": [{"name": "x", "shape": [1, 2], "data": [1.0, 2.0]}]});
    let a = post(&g, "/v2/models/first/infer", bad.to_string()).await;
    let info = failure(&a, 400, None, "BAD_REQUEST");
    assert!(info.contains("missing field `datatype`"), "{info}");
    assert_eq!(g.node("first").calls().await.unwrap(), vec![]);
    let good =
        json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1.0, 2.0]}]});
    let ok = post(&g, "/v2/models/first/infer", good.to_string()).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.json()["outputs"][0]["name"], "x");
}

// ------------------------------------------------------------------- timeouts end to end

/// Two nodes of 8 s each, each within its 10 s timeout: 16 s in all, past Envoy's 15 s
/// default, answered through the gateway (whose route timeout is 21 s).
#[tokio::test]
async fn two_8_s_nodes_with_10_s_timeouts_answer_through_the_gateway() {
    let mut spec = GraphSpec::new(
        "{name: t, type: TRANSFORMER, children: [{name: m, type: MODEL}]}",
        vec![
            TestModelSpec::new("t", Mode::Add)
                .adding(1.0)
                .delay_ms(8_000),
            TestModelSpec::new("m", Mode::Add)
                .adding(10.0)
                .delay_ms(8_000),
        ],
    );
    spec.timeout_ms = 10_000;
    let g = start(spec).await;
    let started = Instant::now();
    let a = post_to(
        &format!("{}{PREDICT}", gateway(&g)),
        ONE,
        Duration::from_secs(40),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json()["data"]["ndarray"], json!([[12.0, 13.0]]), "{a:?}");
    assert!(took > Duration::from_secs(15), "took {took:?}");
}

/// `seldon.io/rest-timeout: 30000` (every node call 30 s): a 17 s node answers.
#[tokio::test]
async fn a_30_s_rest_timeout_is_honoured_past_envoys_15_s() {
    let mut spec = GraphSpec::new(
        "name: m",
        vec![TestModelSpec::new("m", Mode::Echo).delay_ms(17_000)],
    );
    spec.timeout_ms = 30_000;
    let g = start(spec).await;
    let started = Instant::now();
    let a = post_to(
        &format!("{}{PREDICT}", gateway(&g)),
        ONE,
        Duration::from_secs(40),
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert!(started.elapsed() > Duration::from_secs(15));
    assert_eq!(a.json()["data"]["ndarray"], json!([[1.0, 2.0]]), "{a:?}");
}

/// A late node: the filter's JSON 504 names it and carries the puid, through the gateway,
/// before the gateway's own timer.
#[tokio::test]
async fn a_late_node_is_a_json_504_naming_it_with_the_puid() {
    let mut spec = GraphSpec::new(
        "{name: t, type: TRANSFORMER, children: [{name: m, type: MODEL}]}",
        vec![
            TestModelSpec::new("t", Mode::Echo),
            TestModelSpec::new("m", Mode::Echo).delay_ms(3_000),
        ],
    );
    spec.timeout_ms = 500;
    let g = start(spec).await;
    let r = client(Duration::from_secs(10))
        .post(format!("{}{PREDICT}", gateway(&g)))
        .header("content-type", "application/json")
        .header("seldon-puid", "11111111-2222-4333-8444-555555555555")
        .body(ONE)
        .send()
        .await
        .unwrap();
    let a = Answer {
        status: r.status().as_u16(),
        headers: r
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect(),
        body: r.text().await.unwrap(),
    };
    let info = failure(&a, 504, Some("m"), "NODE_TIMEOUT");
    assert_eq!(info, "node `m` timed out after 500 ms (/predict)");
    assert_eq!(
        a.header("seldon-puid"),
        Some("11111111-2222-4333-8444-555555555555")
    );
    // without a puid from the client, the gateway's x-request-id becomes it
    let b = post(&g, PREDICT, ONE).await;
    failure(&b, 504, Some("m"), "NODE_TIMEOUT");
}

// -------------------------------------------------- Envoy's own local replies are JSON

/// A gateway route straight to `cluster` (no filter): the gateway's own replies, as JSON.
async fn bare_gateway(
    clusters: Vec<Cluster>,
    timeout: Duration,
    dir: &std::path::Path,
) -> (Envoy, String) {
    let mut config = EnvoyConfig::new(seldon_envoy::free_port().unwrap());
    let target = clusters[0].name.clone();
    config.clusters = clusters;
    config.listeners.push(Listener {
        name: "gateway".into(),
        port: seldon_envoy::free_port().unwrap(),
        kind: ListenerKind::Gateway {
            routes: vec![GatewayRoute {
                prefix: "/seldon/default/sdep/".into(),
                rewrite: Some("/".into()),
                clusters: vec![WeightedCluster {
                    cluster: target,
                    weight: 1,
                }],
                mirror: None,
                timeout: Some(timeout),
            }],
        },
    });
    let yaml = dir.join("check.yaml");
    std::fs::write(&yaml, seldon_envoy::render(&config).unwrap()).unwrap();
    seldon_envoy::validate(&yaml).unwrap();
    let envoy = Envoy::start(config, dir).await.unwrap();
    let url = format!(
        "{}/seldon/default/sdep",
        envoy.listener_url("gateway").unwrap()
    );
    (envoy, url)
}

/// The gateway's own 504 (its route timeout fired before the upstream answered) and 503 (the
/// upstream refused the connection): Seldon status JSON, with the request's puid.
#[tokio::test]
async fn the_gateways_own_504_and_503_are_json() {
    let dir = tempfile::tempdir().unwrap();
    let slow = TestModel::spawn(&TestModelSpec::new("slow", Mode::Slow).delay_ms(3_000))
        .await
        .unwrap();
    let mut dead = Cluster::http1("dead", "127.0.0.1", seldon_envoy::free_port().unwrap());
    dead.connect_timeout = Duration::from_millis(500);
    let (_envoy, url) = bare_gateway(
        vec![slow.cluster(), dead],
        Duration::from_millis(500),
        dir.path(),
    )
    .await;
    let a = post_to(&format!("{url}/predict"), ONE, Duration::from_secs(10)).await;
    let info = failure(&a, 504, None, "GATEWAY_TIMEOUT");
    assert!(info.ends_with("upstream request timeout"), "{info}");

    let dir2 = tempfile::tempdir().unwrap();
    let mut dead = Cluster::http1("dead", "127.0.0.1", seldon_envoy::free_port().unwrap());
    dead.connect_timeout = Duration::from_millis(500);
    let (_envoy2, url2) = bare_gateway(vec![dead], Duration::from_secs(5), dir2.path()).await;
    let b = post_to(&format!("{url2}/predict"), ONE, Duration::from_secs(10)).await;
    let info = failure(&b, 503, None, "UNAVAILABLE");
    assert!(
        info.starts_with("no predictor could take the request: upstream connect error"),
        "{info}"
    );
}

#[tokio::test]
async fn envoys_local_replies_are_seldon_status_json() {
    let g = start(GraphSpec::new(
        "name: m",
        vec![TestModelSpec::new("m", Mode::Echo)],
    ))
    .await;
    let gw = port_of(gateway(&g));
    let graph = port_of(&g.url);
    for port in [gw, graph] {
        // HTTP/1.0 → 426
        let a = raw(
            port,
            b"POST /seldon/default/sdep/api/v1.0/predictions HTTP/1.0\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
        )
        .await;
        assert_eq!(a.status, 426, "{a:?}");
        assert_eq!(a.header("content-type"), Some("application/json"), "{a:?}");
        let body = a.json();
        assert_eq!(body["status"]["reason"], "UPGRADE_REQUIRED", "{body}");
        assert_eq!(body["status"]["code"], 426);
        assert_eq!(
            body["status"]["info"],
            "HTTP/1.0 is not served: use HTTP/1.1 or HTTP/2"
        );
        // 80 KiB of headers → 431
        let big = format!(
            "GET /seldon/default/sdep/ready HTTP/1.1\r\nhost: x\r\nx-big: {}\r\nconnection: close\r\n\r\n",
            "a".repeat(80 * 1024)
        );
        let a = raw(port, big.as_bytes()).await;
        assert_eq!(a.status, 431, "{a:?}");
        assert_eq!(a.json()["status"]["reason"], "HEADERS_TOO_LARGE", "{a:?}");
        // not HTTP → 400
        let a = raw(port, b"HELLO THERE\r\n\r\n").await;
        assert_eq!(a.status, 400, "{a:?}");
        let body = a.json();
        assert_eq!(body["status"]["reason"], "BAD_REQUEST", "{body}");
        assert!(
            body["status"]["info"]
                .as_str()
                .unwrap()
                .starts_with("Envoy refused the request")
        );
    }
    // an unknown deployment → 404 JSON (the gateway's own route)
    let a = raw(
        gw,
        b"GET /seldon/default/nope/api/v1.0/predictions HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(a.status, 404, "{a:?}");
    assert_eq!(a.json()["status"]["reason"], "NOT_FOUND", "{a:?}");
    // a body far over every limit → 413 JSON, wherever it is refused
    let huge = format!(r#"{{"strData":"{}"}}"#, "x".repeat(3 * 1024 * 1024));
    for url in [gateway(&g).to_string(), g.url.clone()] {
        let a = post_to(
            &format!("{url}{PREDICT}"),
            huge.clone(),
            Duration::from_secs(20),
        )
        .await;
        assert_eq!(
            a.status,
            413,
            "{url}: {} {}",
            a.status,
            &a.body[..a.body.len().min(300)]
        );
        assert_eq!(
            a.header("content-type"),
            Some("application/json"),
            "{url}: {a:?}"
        );
        assert_eq!(
            a.json()["status"]["reason"],
            "PAYLOAD_TOO_LARGE",
            "{url}: {a:?}"
        );
    }
    still_answers(&g).await;
}

// ------------------------------------------------------------------ path normalization

#[tokio::test]
async fn paths_are_normalized_before_route_matching() {
    let g = start(GraphSpec::new(
        "name: m",
        vec![TestModelSpec::new("m", Mode::Echo)],
    ))
    .await;
    let gw = port_of(gateway(&g));
    let req = |path: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{ONE}",
            ONE.len()
        )
    };
    for path in [
        "/seldon/default/other/../sdep/api/v1.0/predictions",
        "/seldon//default/sdep//api/v1.0/predictions",
        "/seldon/default/sdep/api/v1.0/./predictions",
        "/seldon/default/%73dep/api/v1.0/predictions",
    ] {
        let a = raw(gw, req(path).as_bytes()).await;
        assert_eq!(a.status, 200, "{path}: {a:?}");
        assert_eq!(
            a.json()["data"]["ndarray"],
            json!([[1.0, 2.0]]),
            "{path}: {a:?}"
        );
    }
    // `..` cannot climb out of the deployment's prefix into another
    let a = raw(
        gw,
        req("/seldon/default/sdep/../nope/api/v1.0/predictions").as_bytes(),
    )
    .await;
    assert_eq!(a.status, 404, "{a:?}");
    assert_eq!(a.json()["status"]["reason"], "NOT_FOUND");
    still_answers(&g).await;
}
