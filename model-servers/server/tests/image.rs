//! The `seldon-server` container image (images/server.Containerfile), built by images/build.sh
//! around this test's own binary and RUN with podman, the way the catalogue's SKLEARN_SERVER
//! container runs it: `--implementation SKLEARN_SERVER`, the model mounted read-only at
//! /mnt/models (the sklearn iris logistic regression the other tests use), as user 8888.
//! The container shares the host network but binds 127.0.0.1 only (SELDON_BIND_ADDRESS).
//! Response bodies are checked against scikit-learn's own outputs; the container is removed
//! on success, failure and panic (seldon_images::Container).

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use common::*;
use seldon_images::{Container, build, free_port, wait_until};
use serde_json::{Value, json};

const TOLERANCE: f64 = 1e-5;

#[tokio::test]
async fn server_image_serves_sklearn_iris() {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_seldon-server"))
        .parent()
        .unwrap()
        .to_path_buf();
    let built = build(
        "server",
        &[
            ("SELDON_IMAGE_BIN_DIR", bin_dir.as_os_str()),
            ("SELDON_IMAGE_TAG", OsStr::new("test")),
        ],
    )
    .unwrap();
    assert_eq!(built.reference, "ghcr.io/seldon-mesh/server:test");

    let (http, grpc, metrics) = (free_port(), free_port(), free_port());
    let model = onnx_testdata("logreg").canonicalize().unwrap();
    let container = Container::run(&[
        "--network".to_string(),
        "host".into(),
        "-v".into(),
        format!("{}:/mnt/models:ro", model.display()),
        "-e".into(),
        "SELDON_BIND_ADDRESS=127.0.0.1".into(),
        built.reference.clone(),
        "--implementation".into(),
        "SKLEARN_SERVER".into(),
        "--http-port".into(),
        http.to_string(),
        "--grpc-port".into(),
        grpc.to_string(),
        "--metrics-port".into(),
        metrics.to_string(),
    ])
    .unwrap();
    let base = format!("http://127.0.0.1:{http}");
    wait_until(
        "seldon-server in its image",
        Duration::from_secs(60),
        || {
            assert!(
                container.running(),
                "container exited:\n{}",
                container.logs()
            );
            std::net::TcpStream::connect(("127.0.0.1", http)).is_ok()
        },
        || container.logs(),
    )
    .unwrap();

    let client = reqwest::Client::new();
    let reference = read_json(&onnx_testdata("reference.json"));
    let rows = reference["rows"].clone();
    let n = rows.as_array().unwrap().len();
    let expected = flat(&reference["models"]["logreg"]["predict_proba"]);

    // Seldon v1: predict_proba of every reference row
    let r = client
        .post(format!("{base}/api/v1.0/predictions"))
        .json(&json!({"data": {"ndarray": rows}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["data"]["names"],
        json!(["t:0", "t:1", "t:2"]),
        "{body}"
    );
    let err = max_error(&flat(&body["data"]["ndarray"]), &expected);
    assert!(err <= TOLERANCE, "v1 max error {err}");

    // Open Inference Protocol v2
    let x: Vec<f64> = flat(&rows);
    let r = client
        .post(format!("{base}/v2/models/model/infer"))
        .json(&json!({"id": "img", "inputs": [{"name": "X", "datatype": "FP32", "shape": [n, 4], "data": x}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["id"], "img");
    assert_eq!(body["outputs"][0]["shape"], json!([n, 3]), "{body}");
    let err = max_error(&flat(&body["outputs"][0]["data"]), &expected);
    assert!(err <= TOLERANCE, "v2 max error {err}");

    // a bad request is a JSON error, as from the bare binary
    let r = client
        .post(format!("{base}/api/v1.0/predictions"))
        .json(&json!({"data": {"ndarray": [[1.0, 2.0, 3.0]]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"]["reason"], "MICROSERVICE_BAD_DATA", "{body}");

    // metrics on their own port (OpenMetrics text)
    let r = reqwest::get(format!("http://127.0.0.1:{metrics}/prometheus"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.trim_end().ends_with("# EOF"), "{text}");

    // the rendered preStop hook (`/bin/sh -c /bin/sleep 10`) finds its programs
    let out = container
        .exec(&["/bin/sh", "-c", "/bin/sleep 0 && echo slept"])
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "slept");

    // what the image declares: user 8888, the ORT library, the entry point
    let out = seldon_images::run(seldon_images::podman().args([
        "image",
        "inspect",
        "--format",
        "{{.Config.User}}|{{.Config.Entrypoint}}|{{.Config.Env}}",
        &built.reference,
    ]))
    .unwrap();
    let config = String::from_utf8_lossy(&out.stdout);
    assert!(
        config.starts_with("8888:8888|[/usr/local/bin/seldon-server]|")
            && config.contains("ORT_DYLIB_PATH=/usr/local/lib/libonnxruntime.so.1.31.1"),
        "{config}"
    );
}
