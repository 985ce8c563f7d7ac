//! Issue 11 through `seldon-mesh up` (its Envoy configured over xDS): the gateway route
//! timeout derived from the graph honours `seldon.io/rest-timeout: 30000` past Envoy's 15 s
//! default, a late node is a JSON 504 naming it with the puid, and Envoy's own local replies
//! (HTTP/1.0, oversized headers, an unknown deployment) are Seldon status JSON; after each, a
//! good request still answers.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

use common::{sibling, start_up};

fn testmodel(name: &str, delay_ms: u64) -> String {
    format!(
        "exec {} --port $PREDICTIVE_UNIT_HTTP_SERVICE_PORT --name {name} --mode echo --delay-ms {delay_ms}",
        sibling("testmodel").display()
    )
}

const SLOW_MODEL: &str = r#"
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: patient
  namespace: team
  annotations: {seldon.io/rest-timeout: "30000"}
spec:
  predictors:
  - name: main
    graph: {name: m, type: MODEL}
    componentSpecs: [{spec: {containers: [{name: m, image: me/m:1}]}}]
"#;

const ONE: &str = r#"{"data":{"ndarray":[[1.0,2.0]]}}"#;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Raw bytes to the gateway (what a client library would refuse to send); the answer until
/// the server closes: status, headers (lowercase names), body.
fn raw(port: u16, request: &[u8]) -> (u16, Vec<(String, String)>, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
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
    (status, headers, body.to_string())
}

fn port_of(url: &str) -> u16 {
    url.trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn rest_timeout_30000_is_honoured_and_local_replies_are_json() {
    let dir = tempfile::tempdir().unwrap();
    let started = start_up(
        dir.path(),
        SLOW_MODEL,
        &[],
        &[("m", testmodel("m", 17_000))],
    );
    let url = started.url.clone();
    let t0 = Instant::now();
    let r = client()
        .post(&url)
        .header("content-type", "application/json")
        .body(ONE)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(t0.elapsed() > Duration::from_secs(15), "{:?}", t0.elapsed());
    assert_eq!(body["data"]["ndarray"], json!([[1.0, 2.0]]), "{body}");

    let port = port_of(&url);
    let prefix = "/seldon/team/patient";
    // HTTP/1.0 → 426 as Seldon status JSON
    let (status, headers, body) = raw(
        port,
        format!("GET {prefix}/api/v1.0/health/status HTTP/1.0\r\n\r\n").as_bytes(),
    );
    assert_eq!(status, 426, "{body}");
    assert!(
        headers.contains(&("content-type".into(), "application/json".into())),
        "{headers:?}"
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"]["reason"], "UPGRADE_REQUIRED", "{v}");
    assert_eq!(v["status"]["code"], 426, "{v}");
    // 80 KiB of headers → 431
    let (status, _, body) = raw(
        port,
        format!(
            "GET {prefix}/api/v1.0/health/status HTTP/1.1\r\nhost: x\r\nx-big: {}\r\nconnection: close\r\n\r\n",
            "a".repeat(80 * 1024)
        )
        .as_bytes(),
    );
    assert_eq!(status, 431, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"]["reason"], "HEADERS_TOO_LARGE", "{v}");
    // an unknown deployment → 404 JSON
    let r = client()
        .post(url.replace("/patient/", "/nobody/"))
        .body(ONE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"]["reason"], "NOT_FOUND", "{v}");
    // a normalized path reaches the deployment
    let (status, _, body) = raw(
        port,
        b"GET /seldon/team/other/../patient//api/v1.0/health/status HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    );
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ready"], true, "{v}");
}

const LATE_NODE: &str = r#"
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: late
  namespace: team
  annotations: {seldon.io/rest-timeout: "500"}
spec:
  predictors:
  - name: main
    graph:
      name: t
      type: TRANSFORMER
      children: [{name: m, type: MODEL}]
    componentSpecs: [{spec: {containers: [{name: t, image: me/t:1}, {name: m, image: me/m:1}]}}]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_late_node_is_a_json_504_naming_it_with_the_puid() {
    let dir = tempfile::tempdir().unwrap();
    let started = start_up(
        dir.path(),
        LATE_NODE,
        &[],
        &[("t", testmodel("t", 0)), ("m", testmodel("m", 2_000))],
    );
    let r = client()
        .post(&started.url)
        .header("content-type", "application/json")
        .body(ONE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    let node = r
        .headers()
        .get("seldon-node")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let puid = r
        .headers()
        .get("seldon-puid")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let v: Value = r.json().await.unwrap();
    assert_eq!(node.as_deref(), Some("m"), "{v}");
    assert_eq!(ct.as_deref(), Some("application/json"));
    assert_eq!(puid.map(|p| p.len()), Some(36), "{v}");
    assert_eq!(v["status"]["reason"], "NODE_TIMEOUT", "{v}");
    assert_eq!(
        v["status"]["info"], "node `m` timed out after 500 ms (/predict)",
        "{v}"
    );
}
