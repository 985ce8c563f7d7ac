//! Route → feedback → route over REST: the router learns which branch pays.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use seldon_sdk_example::EpsilonGreedy;
use seldon_serving::config::Config;
use seldon_serving::rest::app;
use seldon_serving::service::Service;
use serde_json::{Value, json};
use tower::ServiceExt;

async fn post(r: &axum::Router, uri: &str, body: Value) -> (u16, Value) {
    let req = Request::builder()
        .method("POST")
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = r.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn router() -> axum::Router {
    let mut c = Config::for_tests();
    c.unit_id = "eg".into();
    // epsilon 0: fully greedy, so the test is deterministic
    app(
        Service::new(Arc::new(EpsilonGreedy::new(3, 0.0)), &c),
        1 << 20,
    )
}

#[tokio::test]
async fn feedback_moves_routing_to_the_rewarded_branch() {
    let r = router();
    let request = json!({"data":{"ndarray":[[1.0, 2.0]]}});
    let (s, v) = post(&r, "/route", request.clone()).await;
    assert_eq!(s, 200);
    assert_eq!(
        v["data"]["ndarray"],
        json!([[0.0]]),
        "untrained router picks branch 0: {v}"
    );
    assert_eq!(v["meta"]["tags"]["branch"], 0);

    for _ in 0..3 {
        let fb = json!({"request": request, "response": {"meta": {"routing": {"eg": 2}}}, "reward": 1.0});
        let (s, _) = post(&r, "/send-feedback", fb).await;
        assert_eq!(s, 200);
    }
    let (_, v) = post(&r, "/route", request.clone()).await;
    assert_eq!(v["data"]["ndarray"], json!([[2.0]]), "{v}");
}

#[tokio::test]
async fn feedback_without_routing_or_for_a_missing_branch_is_400() {
    let r = router();
    let (s, v) = post(
        &r,
        "/send-feedback",
        json!({"response": {"meta": {}}, "reward": 1.0}),
    )
    .await;
    assert_eq!(
        (s, &v["status"]["info"]),
        (400, &json!("feedback has no routing for this router"))
    );
    let (s, v) = post(
        &r,
        "/send-feedback",
        json!({"response": {"meta": {"routing": {"eg": 7}}}, "reward": 1.0}),
    )
    .await;
    assert_eq!(
        (s, &v["status"]["info"]),
        (400, &json!("branch 7 does not exist"))
    );
}
