//! `seldon-mesh up` end to end: the real binary starts real node processes and a real Envoy
//! with the filter; requests go through the gateway prefix.
//!
//! Needs the release filter module (`make wasm`) and the workspace's binaries built beside
//! this test's (`cargo test --workspace` builds `testmodel` and `seldon-server`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

mod common;

use common::{envoy_ready, filter, sibling};

/// A running `seldon-mesh up`; killed on drop.
struct Up {
    child: Child,
    url: String,
    nodes: Vec<(String, u16)>,
    /// What `up` prints after `ready:`, up to its `status:` line (the `try:` commands).
    hints: Vec<String>,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn up(manifest: &str, runs: &[(&str, String)]) -> Up {
    envoy_ready();
    let dir = tempfile::tempdir().unwrap().keep();
    let file = dir.join("sdep.yaml");
    std::fs::write(&file, manifest).unwrap();
    let port = common::free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_seldon-mesh"));
    cmd.args(["up", "-f"])
        .arg(&file)
        .args(["--port", &port.to_string()])
        .arg("--filter")
        .arg(filter());
    cmd.arg("--workdir").arg(dir.join("run"));
    for (node, command) in runs {
        cmd.arg("--run").arg(format!("{node}={command}"));
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let mut nodes = Vec::new();
    let mut lines = out.lines();
    while let Some(line) = lines.next() {
        let line = line.unwrap();
        // The summary table: PREDICTOR NODE ADDRESS PID STATE LOG; Envoy's row has no predictor.
        let cells: Vec<&str> = line.split_whitespace().collect();
        if let [predictor, node, addr, _pid, state, _log] = cells[..]
            && predictor != "PREDICTOR"
            && predictor != "-"
        {
            assert_eq!(state, "running", "{line}");
            nodes.push((
                format!("{predictor}/{node}"),
                addr.rsplit(':').next().unwrap().parse().unwrap(),
            ));
        }
        if let Some(url) = line.strip_prefix("ready: ") {
            let mut hints = Vec::new();
            for line in lines.by_ref() {
                let line = line.unwrap();
                let last = line.starts_with("status: ");
                hints.push(line);
                if last {
                    break;
                }
            }
            return Up {
                child,
                url: url.to_string(),
                nodes,
                hints,
            };
        }
    }
    let status = child.wait().unwrap();
    panic!("seldon-mesh up exited ({status}) before it was ready");
}

fn testmodel(name: &str, add: f64) -> String {
    format!(
        "exec {} --port $PREDICTIVE_UNIT_HTTP_SERVICE_PORT --name {name} --mode add --add {add}",
        sibling("testmodel").display()
    )
}

const SPLIT: &str = r#"
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: split, namespace: team}
spec:
  predictors:
  - name: main
    traffic: 75
    graph: {name: m1, type: MODEL}
    componentSpecs: [{spec: {containers: [{name: m1, image: me/m:1}]}}]
  - name: canary
    traffic: 25
    graph: {name: m2, type: MODEL}
    componentSpecs: [{spec: {containers: [{name: m2, image: me/m:2}]}}]
  - name: mirror
    shadow: true
    graph: {name: m3, type: MODEL}
    componentSpecs: [{spec: {containers: [{name: m3, image: me/m:3}]}}]
"#;

/// 400 requests, 75/25: the canary count is Binomial(400, 0.25), mean 100, sd 8.7; the bound
/// ±5 sd (57..=143) fails a correct split with probability < 1e-6. The shadow sees every one.
#[tokio::test(flavor = "multi_thread")]
async fn traffic_split_and_shadow_through_the_gateway() {
    let runs = [
        ("m1", testmodel("m1", 1.0)),
        ("m2", testmodel("m2", 2.0)),
        ("m3", testmodel("m3", 3.0)),
    ];
    let u = tokio::task::spawn_blocking(move || up(SPLIT, &runs))
        .await
        .unwrap();
    assert!(
        u.url.ends_with("/seldon/team/split/api/v1.0/predictions"),
        "{}",
        u.url
    );
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut canary = 0;
    for i in 0..400 {
        let body = json!({"data": {"ndarray": [[f64::from(i)]]}});
        let r = client
            .post(&u.url)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        let got = v["data"]["ndarray"][0][0].as_f64().unwrap() - f64::from(i);
        assert!(
            got == 1.0 || got == 2.0,
            "answer {v} came from the shadow or nowhere"
        );
        canary += usize::from(got == 2.0);
    }
    assert!(
        (57..=143).contains(&canary),
        "{canary} of 400 went to the canary, expected 100"
    );
    let shadow_port = u.nodes.iter().find(|(n, _)| n == "mirror/m3").unwrap().1;
    let mut mirrored = 0;
    for _ in 0..100 {
        let calls: Vec<Value> = client
            .get(format!("http://127.0.0.1:{shadow_port}/_calls"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        mirrored = calls.iter().filter(|c| c["path"] == "/predict").count();
        if mirrored == 400 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        mirrored, 400,
        "the shadow predictor gets a copy of every request"
    );
}

const ONE_MODEL: &str = r#"
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: one, namespace: team}
spec:
  predictors:
  - name: main
    graph: {name: m, type: MODEL}
    componentSpecs: [{spec: {containers: [{name: m, image: me/m:1}]}}]
"#;

/// `up` prints a gRPC command beside the curl one; run exactly as printed (grpcurl from
/// scripts/grpcurl-env.sh first on PATH), it answers Seldon `Predict` through the gateway port.
#[test]
fn the_printed_grpcurl_command_predicts() {
    let grpcurl = grpcurl();
    let u = up(ONE_MODEL, &[("m", testmodel("m", 1.0))]);
    let curl = u.hints.iter().find(|l| l.starts_with("try: curl")).unwrap();
    let hint = u
        .hints
        .iter()
        .find_map(|l| l.strip_prefix("try (gRPC): "))
        .unwrap_or_else(|| panic!("no gRPC hint after the curl one: {:#?}", u.hints));
    assert!(curl.contains("[[5.1,3.5,1.4,0.2]]"), "{curl}");
    assert!(
        hint.starts_with("grpcurl -plaintext -import-path ")
            && hint.contains("-H 'seldon: one' -H 'namespace: team'")
            && hint.ends_with(" seldon.protos.Seldon/Predict"),
        "{hint}"
    );
    let v = run_printed(hint, &grpcurl);
    let row: Vec<f64> = v["data"]["ndarray"][0]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let want = [6.1, 4.5, 2.4, 1.2]; // the sample + 1 (testmodel --add 1)
    assert_eq!(row.len(), 4, "{v}");
    for (got, want) in row.iter().zip(want) {
        assert!((got - want).abs() < 1e-9, "{v}");
    }
}

const V2_CHAIN: &str = r#"
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: chain, namespace: team}
spec:
  protocol: v2
  predictors:
  - name: main
    graph: {name: first, type: MODEL, children: [{name: second, type: MODEL}]}
    componentSpecs: [{spec: {containers: [{name: first, image: me/a:1}, {name: second, image: me/b:1}]}}]
"#;

/// The v2 graph's printed gRPC command (OIP `ModelInfer`), run as printed, answers with the
/// chain's output: the sample row + 1 (first) + 10 (second).
#[test]
fn the_printed_v2_grpcurl_command_infers() {
    let grpcurl = grpcurl();
    let v2 = |name: &str, add: f64| {
        format!(
            "exec {} --port $PREDICTIVE_UNIT_HTTP_SERVICE_PORT --name {name} --mode v2-add --add {add}",
            sibling("testmodel").display()
        )
    };
    let u = up(
        V2_CHAIN,
        &[("first", v2("first", 1.0)), ("second", v2("second", 10.0))],
    );
    let hint = u
        .hints
        .iter()
        .find_map(|l| l.strip_prefix("try (gRPC): "))
        .unwrap_or_else(|| panic!("no gRPC hint: {:#?}", u.hints));
    assert!(
        hint.contains("-H 'seldon: chain' -H 'namespace: team'")
            && hint.contains("\"model_name\":\"first\"")
            && hint.ends_with(" inference.GRPCInferenceService/ModelInfer"),
        "{hint}"
    );
    let v = run_printed(hint, &grpcurl);
    let out = &v["outputs"][0];
    let got: Vec<f64> = out["contents"]
        .as_object()
        .and_then(|c| c.values().next())
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let want = [16.1, 14.5, 12.4, 11.2];
    assert_eq!(got.len(), 4, "{v}");
    for (got, want) in got.iter().zip(want) {
        assert!((got - want).abs() < 1e-4, "{v}");
    }
}

/// grpcurl from scripts/grpcurl-env.sh (built from the Go proxy once, then cached).
fn grpcurl() -> std::path::PathBuf {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/grpcurl-env.sh");
    let built = Command::new("bash").arg(script).output().unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    String::from_utf8(built.stdout).unwrap().trim().into()
}

/// Runs a printed command with `sh -c`, grpcurl first on PATH; its JSON answer.
fn run_printed(command: &str, grpcurl: &std::path::Path) -> Value {
    let path = format!(
        "{}:{}",
        grpcurl.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{command}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_custom_node_without_a_local_command_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sdep.yaml");
    std::fs::write(&file, SPLIT).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_seldon-mesh"))
        .args(["up", "-f"])
        .arg(&file)
        .arg("--filter")
        .arg(filter())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "node `m1` is a custom container; give its local command with --run m1='<command>'"
        ),
        "{err}"
    );
}

/// The README's main job: the sample A/B test between two scikit-learn models served by
/// `seldon-server` (ONNX Runtime from the pinned wheel, installed by the onnx setup script).
#[test]
fn sample_iris_abtest_answers_one_prediction() {
    envoy_ready();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let ort = Command::new("bash")
        .arg(format!("{root}/model-servers/onnx/scripts/setup.sh"))
        .output()
        .unwrap();
    assert!(
        ort.status.success(),
        "onnx setup failed: {}",
        String::from_utf8_lossy(&ort.stderr)
    );
    let ort = String::from_utf8_lossy(&ort.stdout)
        .trim()
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    let port = common::free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_seldon-mesh"))
        .env("ORT_DYLIB_PATH", ort)
        .args([
            "up",
            "-f",
            &format!("{root}/manifests/samples/local/iris-abtest.yaml"),
            "--port",
            &port.to_string(),
        ])
        .arg("--server")
        .arg(sibling("seldon-server"))
        .arg("--filter")
        .arg(filter())
        .args([
            "--request",
            r#"{"data":{"names":["sl","sw","pl","pw"],"ndarray":[[5.1,3.5,1.4,0.2]]}}"#,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let probs = body["data"]["ndarray"][0].as_array().unwrap();
    assert_eq!(probs.len(), 3, "{body}");
    let sum: f64 = probs.iter().map(|p| p.as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-5, "probabilities sum to 1: {body}");
    assert!(
        probs[0].as_f64().unwrap() > 0.5,
        "a setosa flower is class 0: {body}"
    );
    assert!(
        matches!(body["meta"]["routing"]["ab"].as_i64(), Some(0 | 1)),
        "{body}"
    );
}

const SLOW_CHAIN: &str = r#"
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: slow
  namespace: team
  annotations: {seldon.io/rest-timeout: "10000"}
spec:
  predictors:
  - name: main
    graph:
      name: t
      type: TRANSFORMER
      children: [{name: m, type: MODEL}]
    componentSpecs: [{spec: {containers: [{name: t, image: me/t:1}, {name: m, image: me/m:1}]}}]
"#;

/// Two nodes of 8 s each, each within its 10 s timeout: the graph takes 16 s and must answer,
/// not be cut by a gateway deadline (Envoy's default route timeout is 15 s). Issue 11.
#[tokio::test(flavor = "multi_thread")]
async fn a_graph_longer_than_15_s_is_not_cut_by_the_gateway() {
    let slow = |name: &str, add: f64| format!("{} --delay-ms 8000", testmodel(name, add));
    let u = up(SLOW_CHAIN, &[("t", slow("t", 1.0)), ("m", slow("m", 10.0))]);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let started = std::time::Instant::now();
    let r = client
        .post(&u.url)
        .json(&json!({"data": {"ndarray": [[1.0, 2.0]]}}))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        took > Duration::from_secs(15),
        "the graph really took longer than 15 s: {took:?}"
    );
    assert_eq!(body["data"]["ndarray"], json!([[12.0, 13.0]]), "{body}");
}

const ONE_NODE: &str = r#"
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: one, namespace: team}
spec:
  predictors:
  - name: main
    graph: {name: m, type: MODEL}
    componentSpecs: [{spec: {containers: [{name: m, image: me/m:1}]}}]
"#;

/// The gateway normalizes paths before matching (`..`, `//`) and answers a path no deployment
/// serves with Seldon's JSON status, not Envoy's empty 404. Issue 11.
#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_normalizes_paths_and_answers_unknown_ones_in_json() {
    let u = up(ONE_NODE, &[("m", testmodel("m", 1.0))]);
    let base = u
        .url
        .trim_end_matches("/seldon/team/one/api/v1.0/predictions");
    let addr = base.trim_start_matches("http://").to_string();

    for path in [
        "/seldon/team/nope/api/v1.0/predictions",
        // Escapes `one`'s prefix after normalization: must not reach it.
        "/seldon/team/one/../nope/api/v1.0/predictions",
    ] {
        let (status, headers, body) = raw_post(&addr, path, r#"{"data":{"ndarray":[[1.0]]}}"#);
        assert_eq!(status, 404, "{path}");
        assert!(
            headers.contains("content-type: application/json"),
            "{path}: {headers}"
        );
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["status"]["reason"], "NOT_FOUND", "{path}: {body}");
        assert_eq!(body["status"]["status"], "FAILURE", "{path}: {body}");
    }
    for path in [
        "/seldon/team/nope/../one/api/v1.0/predictions",
        "/seldon//team/one//api/v1.0/predictions",
    ] {
        let (status, _, body) = raw_post(&addr, path, r#"{"data":{"ndarray":[[1.0]]}}"#);
        assert_eq!(status, 200, "{path}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["data"]["ndarray"], json!([[2.0]]), "{path}: {body}");
    }
}

/// POST with the path exactly as given (HTTP clients resolve `..` before sending); returns
/// status, lower-cased headers and body.
fn raw_post(addr: &str, path: &str, body: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, rest) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_lowercase(), rest.to_string())
}
