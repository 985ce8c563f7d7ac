//! MLFLOW_SERVER on models only `mlflow.pyfunc` can run: the real `seldon-server` execs the
//! Python wrapper (`seldon_mesh_wrapper.mlflow_server.MLFlowServer`, from
//! `model-servers/onnx/scripts/setup.sh --with-wrapper`, which installs its `mlflow` extra) on
//! the same port. Models: a custom `mlflow.pyfunc.PythonModel` (flavor `python_function`
//! only) and a sklearn model saved by `mlflow.sklearn` without an ONNX twin, both made by the
//! pinned mlflow-skinny (`model-servers/python/tests/mlflow/make_models.py`), compared on 1000
//! rows with `mlflow.pyfunc` called directly. Tolerance 1e-12 (float64 through JSON).

mod common;

use std::process::Command;

use common::*;
use serde_json::json;

#[tokio::test]
async fn pyfunc_models_are_served_through_the_python_wrapper() {
    let lib = setup(&["--with-wrapper"]);
    let bin = lib
        .ancestors()
        .find(|p| p.join("bin/seldon-core-microservice").is_file())
        .expect("venv")
        .join("bin");
    let models = tempfile::tempdir().unwrap();
    let made = Command::new(bin.join("python"))
        .arg(repo().join("model-servers/python/tests/mlflow/make_models.py"))
        .arg(models.path())
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let expected = read_json(&models.path().join("expected.json"));
    let envs = [(
        "SELDON_PYTHON_WRAPPER",
        bin.join("seldon-core-microservice").display().to_string(),
    )];
    for (name, names, why) in [
        (
            "custom",
            json!(["score", "positive"]),
            "no flavor served natively (it has: python_function)",
        ),
        (
            "sklearn",
            json!(["t:0", "t:1", "t:2"]),
            "its sklearn flavor has no ONNX twin (model.onnx)",
        ),
    ] {
        let server = start("MLFLOW_SERVER", &models.path().join(name), &envs).await;
        let (status, body) = server
            .post(
                "/api/v1.0/predictions",
                &json!({"data": {"ndarray": expected["rows"]}}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["names"], names);
        let got = flat(&body["data"]["ndarray"]);
        let want = flat(&expected[name]);
        assert_eq!(got.len(), want.len(), "{name}");
        let err = max_error(&got, &want);
        assert!(err <= 1e-12, "{name}: max error {err}");
        eprintln!("MLFLOW_SERVER {name} (pyfunc) over 1000 rows: max error {err:.3e}");
        let log = server.log();
        assert!(
            log.contains(&format!(
                "MLFLOW_SERVER: {}",
                models.path().join(name).display()
            )) && log.contains(why)
                && log.contains("seldon_mesh_wrapper.mlflow_server.MLFlowServer"),
            "{log}"
        );
    }
}

#[test]
fn a_pyfunc_model_without_the_wrapper_fails_at_startup_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("MLmodel"),
        "flavors:\n  python_function: {loader_module: mlflow.pyfunc.model}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_seldon-server"))
        .args(["--implementation", "MLFLOW_SERVER", "--model-uri"])
        .arg(dir.path())
        .env("SELDON_PYTHON_WRAPPER", "/no/seldon-core-microservice")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("starting the Python wrapper /no/seldon-core-microservice failed"),
        "{err}"
    );
}
