//! Payload logging in local mode: the same manifest as the cluster, its `logger.url` (a cluster
//! broker) replaced by `up`'s own sink, `<workdir>/payload-logs.jsonl`; `logger.mode` decides
//! what is logged, as in the cluster.
//!
//! transformer `tin` (logs requests) → model `m` (logs both): one prediction gives three
//! CloudEvents, each with Seldon's type, the node, the request's puid and the payload as it
//! was at that node.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

use common::{filter, sibling, start_up};

const GRAPH: &str = r#"
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: logged, namespace: team}
spec:
  predictors:
  - name: main
    graph:
      name: tin
      type: TRANSFORMER
      logger: {mode: request, url: "http://default-broker"}
      children:
      - name: m
        type: MODEL
        logger: {mode: all}
    componentSpecs:
    - spec:
        containers:
        - {name: tin, image: me/tin:1}
        - {name: m, image: me/m:1}
"#;

fn testmodel(name: &str, add: f64) -> String {
    format!(
        "exec {} --port $PREDICTIVE_UNIT_HTTP_SERVICE_PORT --name {name} --mode add --add {add}",
        sibling("testmodel").display()
    )
}

#[tokio::test]
async fn payload_logs_land_in_the_workdir_with_seldons_cloud_events() {
    let dir = tempfile::tempdir().unwrap();
    let runs = [("tin", testmodel("tin", 1.0)), ("m", testmodel("m", 10.0))];
    let common::Started {
        up: _up,
        url,
        printed,
    } = start_up(dir.path(), GRAPH, &[], &runs);
    let file = dir.path().join("run/payload-logs.jsonl");
    assert!(
        printed
            .iter()
            .any(|l| *l == format!("payload logs: {}", file.display())),
        "{printed:#?}"
    );

    let r = reqwest::Client::new()
        .post(&url)
        .json(&json!({"data": {"ndarray": [[1.0]]}}))
        .send()
        .await
        .unwrap();
    let puid = r.headers()["seldon-puid"].to_str().unwrap().to_string();
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["data"]["ndarray"], json!([[12.0]]), "{answer}");

    // sent from the filter's root context on its next tick, after the answer
    let deadline = Instant::now() + Duration::from_secs(10);
    let events: Vec<Value> = loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let events: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if events.len() >= 3 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let again = std::fs::read_to_string(&file).unwrap();
            assert_eq!(again.lines().count(), 3, "{again}");
            break events;
        }
        assert!(Instant::now() < deadline, "after 10 s: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let find = |node: &str, kind: &str| -> &Value {
        events
            .iter()
            .find(|e| {
                e["ce"]["ce-modelid"] == node
                    && e["ce"]["ce-type"] == format!("io.seldon.serving.inference.{kind}")
            })
            .unwrap_or_else(|| panic!("no {kind} of {node}: {events:#?}"))
    };
    // the payload as each node saw it
    assert_eq!(
        find("tin", "request")["data"]["data"]["ndarray"],
        json!([[1.0]])
    );
    assert_eq!(
        find("m", "request")["data"]["data"]["ndarray"],
        json!([[2.0]])
    );
    assert_eq!(
        find("m", "response")["data"]["data"]["ndarray"],
        json!([[12.0]])
    );
    for e in &events {
        assert_eq!(e["ce"]["ce-requestid"], puid.as_str(), "{e}");
        assert_eq!(e["ce"]["ce-specversion"], "1.0", "{e}");
        assert_eq!(
            e["ce"]["ce-source"], "seldon-mesh://team/logged/main",
            "{e}"
        );
        assert_eq!(e["contentType"], "application/json", "{e}");
    }
    // tin logs requests only
    assert!(!events.iter().any(|e| e["ce"]["ce-modelid"] == "tin"
        && e["ce"]["ce-type"] == "io.seldon.serving.inference.response"));
}

#[test]
fn a_bad_logger_url_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sdep.yaml");
    std::fs::write(&file, GRAPH).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_seldon-mesh"))
        .args(["up", "-f"])
        .arg(&file)
        .args(["--logger-url", "https://broker:443/"])
        .arg("--filter")
        .arg(filter())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--logger-url \"https://broker:443/\": scheme \"https\" is not supported"),
        "{stderr}"
    );
    assert!(stderr.contains("payload-logs.jsonl"), "{stderr}");
}
