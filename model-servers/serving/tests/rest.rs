//! REST handlers through `app()` + `oneshot`: Seldon v1 and v2 bodies, and every bad input.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use seldon_serving::builtin::SumModel;
use seldon_serving::config::Config;
use seldon_serving::rest::app;
use seldon_serving::service::Service;
use serde_json::{Value, json};
use tower::ServiceExt;

fn router(limit: usize) -> axum::Router {
    let mut c = Config::for_tests();
    c.unit_id = "sum".into();
    c.unit_image = "seldon/sum:0.1".into();
    app(
        Service::new(
            Arc::new(SumModel {
                expected_features: 2,
            }),
            &c,
        ),
        limit,
    )
}

async fn send(method: &str, uri: &str, body: impl Into<Body>) -> (StatusCode, Value) {
    send_to(router(1024), method, uri, body).await
}

async fn send_to(
    r: axum::Router,
    method: &str,
    uri: &str,
    body: impl Into<Body>,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap();
    let resp = r.oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, v)
}

fn bad_data(info: &str) -> Value {
    json!({"status":{"status":1,"info":info,"code":-1,"reason":"MICROSERVICE_BAD_DATA"}})
}

#[tokio::test]
async fn predict_echoes_ndarray_and_merges_meta() {
    let (s, v) = send(
        "POST",
        "/predict",
        json!({"meta":{"puid":"p1","tags":{"in":1}},"data":{"ndarray":[[1,2],[3,4]]}}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v,
        json!({"meta":{"puid":"p1","tags":{"in":1,"model":"sum"},"requestPath":{"sum":"seldon/sum:0.1"},
                "metrics":[{"key":"sum_rows","type":"COUNTER","value":2.0}]},
               "data":{"names":["sum"],"ndarray":[[3.0],[7.0]]}})
    );
}

#[tokio::test]
async fn predict_alias_and_tensor_form() {
    let (s, v) = send(
        "POST",
        "/api/v1.0/predictions",
        json!({"data":{"tensor":{"shape":[1,2],"values":[1,2]}}}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"]["tensor"], json!({"shape":[1,1],"values":[3.0]}));
}

#[tokio::test]
async fn predict_query_json_form() {
    let (s, v) = send(
        "GET",
        "/predict?json=%7B%22data%22%3A%7B%22ndarray%22%3A%5B%5B1%2C1%5D%5D%7D%7D",
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["ndarray"], json!([[2.0]]));
}

#[tokio::test]
async fn wrong_number_of_features_is_400() {
    let (s, v) = send(
        "POST",
        "/predict",
        json!({"data":{"ndarray":[[1,2,3]]}}).to_string(),
    )
    .await;
    assert_eq!(
        (s, v),
        (
            StatusCode::BAD_REQUEST,
            bad_data("expected 2 features per row, got 3 (shape [1, 3])")
        )
    );
}

#[tokio::test]
async fn wrong_dtype_and_shape_are_400() {
    let (s, v) = send(
        "POST",
        "/predict",
        json!({"data":{"ndarray":[[1,"a"]]}}).to_string(),
    )
    .await;
    assert_eq!(
        (s, v),
        (
            StatusCode::BAD_REQUEST,
            bad_data("ndarray[0][1] is a string, expected a number")
        )
    );
    let (s, v) = send(
        "POST",
        "/predict",
        json!({"data":{"tensor":{"shape":[2,2],"values":[1]}}}).to_string(),
    )
    .await;
    assert_eq!(
        (s, v),
        (
            StatusCode::BAD_REQUEST,
            bad_data("shape [2, 2] needs 4 values, got 1")
        )
    );
    let (s, v) = send("POST", "/predict", json!({"strData":"x"}).to_string()).await;
    assert_eq!(
        (s, v),
        (
            StatusCode::BAD_REQUEST,
            bad_data("expected one numeric tensor, got strData")
        )
    );
}

#[tokio::test]
async fn malformed_json_empty_and_oversize_bodies() {
    let (s, v) = send("POST", "/predict", "{\"data\":").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["status"]["reason"], "MICROSERVICE_BAD_DATA");
    assert!(
        v["status"]["info"]
            .as_str()
            .unwrap()
            .starts_with("SeldonMessage is not valid JSON"),
        "{v}"
    );
    let (s, v) = send("POST", "/predict", "").await;
    assert_eq!(
        (s, v),
        (
            StatusCode::BAD_REQUEST,
            bad_data("the request body is empty")
        )
    );
    let big = json!({"data":{"ndarray":[vec![1; 2000]]}}).to_string();
    let (s, v) = send("POST", "/predict", big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        v,
        json!({"status":{"status":1,"info":"the request body exceeds the 1024-byte limit","code":-1,"reason":"MICROSERVICE_REQUEST_TOO_LARGE"}})
    );
}

#[tokio::test]
async fn model_error_is_500_with_reason() {
    let (s, v) = send(
        "POST",
        "/predict",
        json!({"data":{"ndarray":[[1,null]]}}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        v,
        json!({"status":{"status":1,"info":"sum is NaN","code":-1,"reason":"MICROSERVICE_INTERNAL_ERROR"}})
    );
}

#[tokio::test]
async fn default_hooks_behave_like_the_wrapper() {
    let (s, v) = send(
        "POST",
        "/transform-input",
        json!({"data":{"ndarray":[[1,2]]}}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"]["ndarray"], json!([[1.0, 2.0]]));
    let (s, v) = send(
        "POST",
        "/route",
        json!({"data":{"ndarray":[[1,2]]}}).to_string(),
    )
    .await;
    assert_eq!(
        (s, v),
        (
            StatusCode::BAD_REQUEST,
            bad_data("route is not implemented by this model")
        )
    );
    let (s, v) = send(
        "POST",
        "/aggregate",
        json!([{"data":{"ndarray":[[1]]}}]).to_string(),
    )
    .await;
    assert_eq!(
        (s, v),
        (
            StatusCode::BAD_REQUEST,
            bad_data("aggregate is not implemented by this model")
        )
    );
    let (s, v) = send(
        "POST",
        "/send-feedback",
        json!({"request":{"data":{"ndarray":[[1,2]]}},"reward":1}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v, json!({"meta":{"requestPath":{"sum":"seldon/sum:0.1"}}}));
}

#[tokio::test]
async fn health_and_metadata() {
    let (s, v) = send("GET", "/health/ping", Body::empty()).await;
    assert_eq!((s, v), (StatusCode::OK, json!("pong")));
    let (s, v) = send("GET", "/health/status", Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["strData"], "healthy");
    let (_, v) = send("GET", "/api/v1.0/metadata", Body::empty()).await;
    assert_eq!(v["name"], "sum");
    assert_eq!(v["inputs"][0]["datatype"], "FP64");
}

#[tokio::test]
async fn v2_infer_json_and_version_and_ready() {
    let body =
        json!({"id":"r1","inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[1,2,3,4]}]})
            .to_string();
    let (s, v) = send("POST", "/v2/models/sum/infer", body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        json!({"model_name":"sum","id":"r1","parameters":{"model":"sum"},"outputs":[{"name":"predict","shape":[2,1],"datatype":"FP64","data":[3.0,7.0]}]})
    );
    let (s, v) = send("GET", "/v2/models/sum/ready", Body::empty()).await;
    assert_eq!((s, v), (StatusCode::OK, json!({"name":"sum","ready":true})));
    let (s, v) = send("GET", "/v2/health/ready", Body::empty()).await;
    assert_eq!((s, v), (StatusCode::OK, json!({"ready":true})));
    let (_, v) = send("GET", "/v2/health/live", Body::empty()).await;
    assert_eq!(v, json!({"live":true}));
    let (_, v) = send("GET", "/v2", Body::empty()).await;
    assert_eq!(v["extensions"], json!(["binary_tensor_data"]));
    let (_, v) = send("GET", "/v2/models/sum", Body::empty()).await;
    assert_eq!(
        v["inputs"],
        json!([{"name":"input","datatype":"FP64","shape":[-1,-1]}])
    );
}

#[tokio::test]
async fn v2_unknown_model_and_bad_bodies() {
    let body =
        json!({"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]}]}).to_string();
    let (s, v) = send("POST", "/v2/models/nope/infer", body.clone()).await;
    assert_eq!(
        (s, v),
        (
            StatusCode::NOT_FOUND,
            json!({"error":"model `nope` is not served here"})
        )
    );
    let (s, v) = send("POST", "/v2/models/sum/versions/9/infer", body).await;
    assert_eq!(
        (s, v),
        (
            StatusCode::NOT_FOUND,
            json!({"error":"model `sum` version `9` is not served here"})
        )
    );
    let (s, v) = send("GET", "/v2/models/nope/ready", Body::empty()).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v) = send(
        "POST",
        "/v2/models/sum/infer",
        json!({"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[1,2]}]}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["error"].as_str().unwrap().contains("needs 4 elements"),
        "{v}"
    );
    let (s, v) = send(
        "POST",
        "/v2/models/sum/infer",
        json!({"inputs":[{"name":"x","shape":[1,2],"datatype":"INT32","data":[1.5,2]}]})
            .to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["error"].as_str().unwrap().contains("not a valid INT32"),
        "{v}"
    );
    let (s, v) = send(
        "POST",
        "/v2/models/sum/infer",
        json!({"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}).to_string(),
    )
    .await;
    assert_eq!(
        (s, v),
        (
            StatusCode::BAD_REQUEST,
            json!({"error":"expected 2 features per row, got 3 (shape [1, 3])"})
        )
    );
    let (s, v) = send("POST", "/v2/models/sum/infer", "not json").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["error"].as_str().unwrap().contains("not valid JSON"),
        "{v}"
    );
    let (s, v) = send("POST", "/v2/models/sum/infer", "").await;
    assert_eq!(
        (s, v),
        (
            StatusCode::BAD_REQUEST,
            json!({"error":"the request body is empty"})
        )
    );
    let (s, v) = send("POST", "/v2/models/sum/infer", vec![b' '; 2000]).await;
    assert_eq!(
        (s, v),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"error":"the request body exceeds the 1024-byte limit"})
        )
    );
}

#[tokio::test]
async fn v2_binary_extension_in_and_out() {
    let header = json!({"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","parameters":{"binary_data_size":8}}],
                        "parameters":{"binary_data_output":true}}).to_string();
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(&1.5f32.to_le_bytes());
    body.extend_from_slice(&2.0f32.to_le_bytes());
    let req = Request::builder()
        .method("POST")
        .uri("/v2/models/sum/infer")
        .header("content-type", "application/octet-stream")
        .header("inference-header-content-length", header.len().to_string())
        .body(Body::from(body))
        .unwrap();
    let resp = router(1 << 20).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let hlen: usize = resp.headers()["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let (json_part, bin) = bytes.split_at(hlen);
    let head: Value = serde_json::from_slice(json_part).unwrap();
    assert_eq!(head["outputs"][0]["parameters"]["binary_data_size"], 8);
    assert_eq!(f64::from_le_bytes(bin.try_into().unwrap()), 3.5);
}
