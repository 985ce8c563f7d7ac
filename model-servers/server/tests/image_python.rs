//! The `server-python` image (images/server-python.Containerfile): `seldon-server` with the
//! Python wrapper, mlflow-skinny and scikit-learn beside it — the catalogue's MLFLOW_SERVER
//! image. Built by images/build.sh around this test's own binary and RUN with podman the way
//! the rendered model container runs (`--implementation <KEY>`, the model mounted read-only at
//! /mnt/models, user 8888), sharing the host network but binding 127.0.0.1 only.
//!
//! * MLFLOW_SERVER on a `python_function`-only MLflow model (a custom `PythonModel`, made by
//!   the image's own mlflow from model-servers/python/tests/mlflow/make_models.py): seldon-server
//!   hands it to `mlflow.pyfunc` in the wrapper; the answer equals `mlflow.pyfunc`'s own on
//!   1000 rows.
//! * SKLEARN_SERVER on an estimator skl2onnx cannot convert (`python-fallback.json`): the
//!   wrapper's SKLearnServer; compared with scikit-learn's reference outputs.
//! * SKLEARN_SERVER on a converted model: ONNX Runtime from the venv's onnxruntime wheel.
//!
//! Containers are removed however the test ends (seldon_images::Container).

mod common;

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::*;
use seldon_images::{Built, Container, build, free_port, run_to_completion, wait_until};
use serde_json::{Value, json};

/// Runs the image as the rendered model container, waits for its HTTP port.
fn serve(built: &Built, implementation: &str, model: &Path) -> (Container, String) {
    let (http, grpc, metrics) = (free_port(), free_port(), free_port());
    let container = Container::run(&[
        "--network".to_string(),
        "host".into(),
        "-v".into(),
        format!("{}:/mnt/models:ro", model.display()),
        "-e".into(),
        "SELDON_BIND_ADDRESS=127.0.0.1".into(),
        // the wrapper seldon-server may exec binds where Seldon's variable says
        "-e".into(),
        "PREDICTIVE_UNIT_SERVICE_HOST=127.0.0.1".into(),
        built.reference.clone(),
        "--implementation".into(),
        implementation.into(),
        "--http-port".into(),
        http.to_string(),
        "--grpc-port".into(),
        grpc.to_string(),
        "--metrics-port".into(),
        metrics.to_string(),
    ])
    .unwrap();
    wait_until(
        &format!("{implementation} in the server-python image"),
        Duration::from_secs(120),
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
    (container, format!("http://127.0.0.1:{http}"))
}

async fn predict(base: &str, rows: &Value) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1.0/predictions"))
        .json(&json!({"data": {"ndarray": rows}}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn server_python_image_serves_mlflow_pyfunc_and_the_sklearn_fallback() {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_seldon-server"))
        .parent()
        .unwrap()
        .to_path_buf();
    let built = build(
        "server-python",
        &[
            ("SELDON_IMAGE_BIN_DIR", bin_dir.as_os_str()),
            ("SELDON_IMAGE_TAG", OsStr::new("test")),
        ],
    )
    .unwrap();
    assert_eq!(built.reference, "ghcr.io/seldon-mesh/server-python:test");
    eprintln!("server-python image: {} bytes", built.size);

    // MLflow models saved by the image's own mlflow-skinny (the pins the local fallback uses),
    // and what mlflow.pyfunc answers for 1000 rows, called directly
    let models = tempfile::tempdir().unwrap();
    std::fs::set_permissions(models.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let script = repo().join("model-servers/python/tests/mlflow/make_models.py");
    run_to_completion(&[
        "--network".to_string(),
        "none".into(),
        "-v".into(),
        format!("{}:/make_models.py:ro", script.display()),
        "-v".into(),
        format!("{}:/out", models.path().display()),
        "--entrypoint".into(),
        "python".into(),
        built.reference.clone(),
        "/make_models.py".into(),
        "/out".into(),
    ])
    .unwrap();
    let expected = read_json(&models.path().join("expected.json"));
    let custom = models.path().join("custom");
    let mlmodel = std::fs::read_to_string(custom.join("MLmodel")).unwrap();
    assert!(
        mlmodel.contains("python_function") && !mlmodel.contains("sklearn:"),
        "{mlmodel}"
    );

    // MLFLOW_SERVER: a python_function-only model → mlflow.pyfunc in the wrapper
    let (container, base) = serve(&built, "MLFLOW_SERVER", &custom);
    let body = predict(&base, &expected["rows"]).await;
    assert_eq!(
        body["data"]["names"],
        json!(["score", "positive"]),
        "{body}"
    );
    let got = flat(&body["data"]["ndarray"]);
    let want = flat(&expected["custom"]);
    assert_eq!(got.len(), 2000);
    assert_eq!(got.len(), want.len());
    let err = max_error(&got, &want);
    assert!(err <= 1e-12, "MLFLOW_SERVER pyfunc max error {err}");
    // the first row, by value: score = x·w + b, positive = score > 0
    let first = &expected["rows"][0];
    let x: Vec<f64> = flat(first);
    let score = 0.5 * x[0] - 1.25 * x[1] + 2.0 * x[2] + 0.125 * x[3] - 3.5;
    assert!((got[0] - score).abs() <= 1e-12, "{} vs {score}", got[0]);
    assert_eq!(got[1], if score > 0.0 { 1.0 } else { 0.0 });
    let log = container.logs();
    assert!(
        log.contains("MLFLOW_SERVER: /mnt/models:")
            && log.contains("seldon_mesh_wrapper.mlflow_server.MLFlowServer"),
        "{log}"
    );
    // it is the wrapper that answers now, as user 8888
    let id = container.exec(&["id", "-u"]).unwrap();
    assert_eq!(String::from_utf8_lossy(&id.stdout).trim(), "8888");
    drop(container);

    // SKLEARN_SERVER: an estimator skl2onnx cannot convert → the wrapper's SKLearnServer
    let reference = read_json(&onnx_testdata("reference.json"));
    let rows = reference["rows"].clone();
    let src = onnx_testdata("unconvertible").canonicalize().unwrap();
    let (container, base) = serve(&built, "SKLEARN_SERVER", &src);
    let body = predict(&base, &rows).await;
    let err = max_error(
        &flat(&body["data"]["ndarray"]),
        &flat(&reference["models"]["unconvertible"]["predict_proba"]),
    );
    // the wrapper runs scikit-learn itself: the reference, to float64 through JSON
    assert!(err <= 1e-12, "SKLEARN fallback max error {err}: {body}");
    let log = container.logs();
    assert!(
        log.contains("SKLEARN_SERVER: Pipeline(FunctionTransformer, LogisticRegression)")
            && log.contains("with the Python wrapper"),
        "{log}"
    );
    drop(container);

    // SKLEARN_SERVER on a converted model: ONNX Runtime, the venv's library
    let (_container, base) = serve(
        &built,
        "SKLEARN_SERVER",
        &onnx_testdata("logreg").canonicalize().unwrap(),
    );
    let body = predict(&base, &rows).await;
    assert_eq!(
        body["data"]["names"],
        json!(["t:0", "t:1", "t:2"]),
        "{body}"
    );
    let err = max_error(
        &flat(&body["data"]["ndarray"]),
        &flat(&reference["models"]["logreg"]["predict_proba"]),
    );
    assert!(err <= 1e-5, "ONNX max error {err}");
}
