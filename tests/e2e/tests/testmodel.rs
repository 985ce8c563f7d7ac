//! The `testmodel` binary itself: each mode and endpoint, through a real socket.

use std::path::Path;
use std::time::{Duration, Instant};

use seldon_e2e::{HarnessError, Mode, TestModel, TestModelSpec};
use serde_json::{Value, json};

async fn spawn(spec: TestModelSpec) -> TestModel {
    TestModel::spawn_with(Path::new(env!("CARGO_BIN_EXE_testmodel")), &spec)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn post(m: &TestModel, path: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", m.url()))
        .header("x-request-id", "req-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn echo_tags_the_message_and_records_the_call() {
    let m = spawn(TestModelSpec::new("echo-node", Mode::Echo)).await;
    let input = json!({"data": {"ndarray": [[1, 2]]}, "meta": {"tags": {"client": "x"}}});
    let (status, out) = post(&m, "/predict", input.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(
        out,
        json!({"data": {"ndarray": [[1, 2]]}, "meta": {"tags": {"client": "x", "echo-node": true, "path": ["echo-node"]}}})
    );

    let calls = m.calls().await.unwrap();
    assert_eq!(calls.len(), 1, "readiness pings must be cleared: {calls:?}");
    assert_eq!(calls[0].method, "POST");
    assert_eq!(calls[0].path, "/predict");
    assert_eq!(calls[0].header("x-request-id"), Some("req-1"));
    assert_eq!(calls[0].json().unwrap(), input);
}

#[tokio::test]
async fn add_adds_to_ndarray_and_transforms_append_to_the_path() {
    let m = spawn(TestModelSpec::new("plus", Mode::Add).adding(1.5)).await;
    let (_, out) = post(
        &m,
        "/transform-input",
        json!({"data": {"ndarray": [[1, 2], [3, 4]]}}),
    )
    .await;
    assert_eq!(out["data"]["ndarray"], json!([[2.5, 3.5], [4.5, 5.5]]));
    let (_, out) = post(&m, "/transform-output", out).await;
    assert_eq!(out["data"]["ndarray"], json!([[4.0, 5.0], [6.0, 7.0]]));
    assert_eq!(out["meta"]["tags"]["path"], json!(["plus", "plus"]));
    let paths: Vec<String> = m
        .calls()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.path)
        .collect();
    assert_eq!(paths, ["/transform-input", "/transform-output"]);
}

#[tokio::test]
async fn route_answers_the_configured_child() {
    let m = spawn(TestModelSpec::new("router", Mode::Route).routing_to(-1)).await;
    let (status, out) = post(&m, "/route", json!({"data": {"ndarray": [[0]]}})).await;
    assert_eq!(status, 200);
    assert_eq!(out["data"], json!({"ndarray": [[-1]]}));
    assert_eq!(out["meta"]["tags"]["router"], true);
}

#[tokio::test]
async fn aggregate_sums_an_array_or_a_seldon_message_list() {
    let m = spawn(TestModelSpec::new("combiner", Mode::Aggregate)).await;
    let msgs = json!([
        {"data": {"ndarray": [[1, 2]]}, "meta": {"tags": {"a": true, "path": ["a"]}}},
        {"data": {"ndarray": [[3, 4]]}, "meta": {"tags": {"b": true, "path": ["b"]}}},
    ]);
    let (_, out) = post(&m, "/aggregate", msgs.clone()).await;
    assert_eq!(out["data"]["ndarray"], json!([[4.0, 6.0]]));
    assert_eq!(out["meta"]["tags"]["path"], json!(["a", "b", "combiner"]));
    let (_, out2) = post(&m, "/aggregate", json!({"seldonMessages": msgs})).await;
    assert_eq!(out2, out);

    let (status, err) = post(
        &m,
        "/aggregate",
        json!([{"data": {"ndarray": [1]}}, {"data": {"ndarray": [1, 2]}}]),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(err["status"]["status"], "FAILURE");
    assert!(
        err["status"]["info"].as_str().unwrap().contains("shape"),
        "{err}"
    );
}

#[tokio::test]
async fn fail_answers_the_configured_status_and_body_but_still_pings() {
    let m = spawn(TestModelSpec::new("broken", Mode::Echo).fail(503, Some(r#"{"error":"down"}"#)))
        .await;
    let (status, out) = post(&m, "/predict", json!({"data": {"ndarray": [1]}})).await;
    assert_eq!((status, out), (503, json!({"error": "down"})));

    let d = spawn(TestModelSpec::new("broken2", Mode::Fail)).await;
    let (status, out) = post(&d, "/v2/models/broken2/infer", json!({"inputs": []})).await;
    assert_eq!(status, 500);
    assert_eq!(out["status"]["info"], "broken2 failed");
    let ping = reqwest::get(format!("{}/health/ping", d.url()))
        .await
        .unwrap();
    assert_eq!(ping.text().await.unwrap(), "pong");
}

#[tokio::test]
async fn slow_delays_the_answer() {
    let m = spawn(TestModelSpec::new("sloth", Mode::Slow).delay_ms(300)).await;
    let start = Instant::now();
    let (status, out) = post(&m, "/predict", json!({"data": {"ndarray": [7]}})).await;
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(status, 200);
    assert_eq!(out["data"]["ndarray"], json!([7]));
}

#[tokio::test]
async fn v2_infer_and_readiness() {
    let m = spawn(TestModelSpec::new("v2", Mode::V2Add).adding(1.0)).await;
    let req = json!({"id": "abc", "inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1.0, 2.0]}]});
    let (status, out) = post(&m, "/v2/models/iris/infer", req).await;
    assert_eq!(status, 200);
    assert_eq!(out["model_name"], "iris");
    assert_eq!(out["id"], "abc");
    assert_eq!(
        out["outputs"],
        json!([{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [2.0, 3.0]}])
    );

    let client = reqwest::Client::new();
    let ready: Value = client
        .get(format!("{}/v2/models/iris/ready", m.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready, json!({"name": "iris", "ready": true}));
    let health: Value = client
        .get(format!("{}/v2/health/ready", m.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"ready": true}));
    let (status, _) = post(&m, "/v2/models/iris/infer", json!({"no": "inputs"})).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn feedback_is_recorded_and_metadata_names_the_node() {
    let m = spawn(TestModelSpec::new("fb", Mode::Echo)).await;
    let fb = json!({"request": {"data": {"ndarray": [1]}}, "reward": 1.0});
    let (status, out) = post(&m, "/send-feedback", fb.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(out["meta"]["tags"]["fb"], true);
    assert_eq!(m.feedback().await.unwrap(), vec![fb]);
    let meta: Value = reqwest::get(format!("{}/metadata", m.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["name"], "fb");
}

#[tokio::test]
async fn bad_json_is_a_seldon_400() {
    let m = spawn(TestModelSpec::new("strict", Mode::Echo)).await;
    let resp = reqwest::Client::new()
        .post(format!("{}/predict", m.url()))
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"]["reason"], "MICROSERVICE_BAD_DATA");
}

#[tokio::test]
async fn spawn_fails_clearly_for_a_missing_binary_or_one_that_never_listens() {
    let spec = TestModelSpec::new("x", Mode::Echo);
    let err = TestModel::spawn_with(Path::new("/nonexistent/testmodel"), &spec)
        .await
        .unwrap_err();
    assert!(matches!(err, HarnessError::Spawn { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/testmodel"), "{err}");

    let err = TestModel::spawn_with(Path::new("/bin/false"), &spec)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, HarnessError::NoAddress { name, .. } if name == "x"),
        "{err}"
    );
}

#[tokio::test]
async fn calls_can_be_cleared() {
    let m = spawn(TestModelSpec::new("forgetful", Mode::Echo)).await;
    post(&m, "/predict", json!({"data": {"ndarray": [1]}})).await;
    assert_eq!(m.calls().await.unwrap().len(), 1);
    m.clear_calls().await.unwrap();
    assert_eq!(m.calls().await.unwrap(), vec![]);
}

#[tokio::test]
async fn each_node_runs_in_its_own_process_group() {
    let m = spawn(TestModelSpec::new("grouped", Mode::Echo)).await;
    let pid = m.pid();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the `(comm)`: state ppid pgrp ...
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let pgrp: u32 = after.split(' ').nth(2).unwrap().parse().unwrap();
    assert_eq!(pgrp, pid, "own process group: {stat}");
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "testmodel", "setpriv exec'd the node itself");
    drop(m);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s.contains(") Z "))
                .unwrap_or(true),
        "stopped and reaped on drop"
    );
}

#[tokio::test]
async fn drop_kills_the_process() {
    let m = spawn(TestModelSpec::new("mortal", Mode::Echo)).await;
    let url = format!("{}/health/ping", m.url());
    drop(m);
    assert!(reqwest::get(url).await.is_err());
}
