//! The harness and seldon-envoy together: a testmodel node behind a real Envoy route.

use std::time::Duration;

use seldon_e2e::{Mode, TestModel, TestModelSpec};
use seldon_envoy::{Envoy, EnvoyConfig, Listener, ListenerKind, free_port};
use serde_json::{Value, json};

#[tokio::test]
async fn a_node_behind_an_envoy_route_sees_the_request_and_tags_the_answer() {
    let node = TestModel::spawn(&TestModelSpec::new("classifier", Mode::Add).adding(1.0))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut config = EnvoyConfig::new(free_port().unwrap());
    config.clusters.push(node.cluster());
    config.listeners.push(Listener {
        name: "baseline".into(),
        port: free_port().unwrap(),
        kind: ListenerKind::Route {
            cluster: node.name().into(),
            prefix_rewrite: Some("/predict".into()),
            timeout: Some(Duration::from_secs(5)),
        },
    });
    let dir = tempfile::tempdir().unwrap();
    let envoy = Envoy::start(config, dir.path())
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let url = format!("{}/", envoy.listener_url("baseline").unwrap());
    let out: Value = reqwest::Client::new()
        .post(url)
        .json(&json!({"data": {"ndarray": [[1, 2]]}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        out,
        json!({"data": {"ndarray": [[2.0, 3.0]]}, "meta": {"tags": {"classifier": true, "path": ["classifier"]}}})
    );

    let calls = node.calls().await.unwrap();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].path, "/predict");
    assert!(
        calls[0].header("x-request-id").is_some(),
        "Envoy adds x-request-id: {calls:?}"
    );
}
