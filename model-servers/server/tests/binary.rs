//! The real `seldon-server` binary, one runtime at a time: v1 and v2 response bodies, errors,
//! metadata, startup failures.

mod common;

use std::path::Path;

use common::*;
use serde_json::{Value, json};

const TOLERANCE: f64 = 1e-5;

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to)
        .unwrap_or_else(|e| panic!("copy {} → {}: {e}", from.display(), to.display()));
}

#[tokio::test]
async fn sklearn_iris_v1_and_v2_match_sklearn_over_http() {
    let reference = read_json(&onnx_testdata("reference.json"));
    let rows = reference["rows"].clone();
    let n = rows.as_array().unwrap().len();
    let server = start("SKLEARN_SERVER", &onnx_testdata("logreg"), &[]).await;

    // v1: predict_proba (the default method), ndarray in → ndarray out, t:0.. names
    let (status, body) = server
        .post("/api/v1.0/predictions", &json!({"data": {"ndarray": rows}}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["names"], json!(["t:0", "t:1", "t:2"]));
    let err = max_error(
        &flat(&body["data"]["ndarray"]),
        &flat(&reference["models"]["logreg"]["predict_proba"]),
    );
    assert!(err <= TOLERANCE, "v1 max error {err}");
    eprintln!("HTTP v1 logreg predict_proba over {n} rows: max error {err:.3e}");

    // v2: FP32 tensor in, `predict_proba` FP32 [n, 3] out, id echoed
    let x: Vec<f64> = flat(&rows);
    let req = json!({"id": "r1", "inputs": [{"name": "X", "datatype": "FP32", "shape": [n, 4], "data": x}]});
    let (status, body) = server.post("/v2/models/model/infer", &req).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], "r1");
    assert_eq!(body["model_name"], "model");
    let out = &body["outputs"][0];
    assert_eq!(
        (out["name"].as_str(), out["datatype"].as_str()),
        (Some("predict_proba"), Some("FP32"))
    );
    assert_eq!(out["shape"], json!([n, 3]));
    let err = max_error(
        &flat(&out["data"]),
        &flat(&reference["models"]["logreg"]["predict_proba"]),
    );
    assert!(err <= TOLERANCE, "v2 max error {err}");

    // metadata from the ONNX graph
    let (status, md) = server.get("/v2/models/model").await;
    assert_eq!(status, 200);
    assert_eq!(md["platform"], "sklearn_onnx");
    assert_eq!(
        md["inputs"],
        json!([{"name": "X", "datatype": "FP32", "shape": [-1, 4]}])
    );
    assert_eq!(
        md["outputs"],
        json!([{"name": "predict_proba", "datatype": "FP32", "shape": [-1, 3]}])
    );

    // bad input: wrong feature count and dtype → 400 with a JSON reason, both protocols
    let (status, body) = server
        .post(
            "/api/v1.0/predictions",
            &json!({"data": {"ndarray": [[1.0, 2.0, 3.0]]}}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["status"]["reason"], "MICROSERVICE_BAD_DATA");
    assert_eq!(
        body["status"]["info"],
        "expected 4 features per row, got 3 (shape [1, 3])"
    );
    let bad = json!({"inputs": [{"name": "X", "datatype": "BYTES", "shape": [1, 4], "data": ["a", "b", "c", "d"]}]});
    let (status, body) = server.post("/v2/models/model/infer", &bad).await;
    assert_eq!(status, 400);
    assert_eq!(body, json!({"error": "input `X` is FP32, got BYTES"}));
}

#[tokio::test]
async fn sklearn_method_parameter_selects_the_output() {
    let reference = read_json(&onnx_testdata("reference.json"));
    let params = r#"[{"name":"method","value":"predict","type":"STRING"}]"#.to_string();
    let server = start(
        "SKLEARN_SERVER",
        &onnx_testdata("rf"),
        &[("PREDICTIVE_UNIT_PARAMETERS", params)],
    )
    .await;
    let (status, body) = server
        .post("/predict", &json!({"data": {"ndarray": reference["rows"]}}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        flat(&body["data"]["ndarray"]),
        flat(&reference["models"]["rf"]["predict"]),
        "labels equal sklearn's"
    );

    let params = r#"[{"name":"method","value":"decision_function","type":"STRING"}]"#.to_string();
    let server = start(
        "SKLEARN_SERVER",
        &onnx_testdata("logreg"),
        &[("PREDICTIVE_UNIT_PARAMETERS", params)],
    )
    .await;
    let (_, body) = server
        .post("/predict", &json!({"data": {"ndarray": reference["rows"]}}))
        .await;
    let err = max_error(
        &flat(&body["data"]["ndarray"]),
        &flat(&reference["models"]["logreg"]["decision_function"]),
    );
    assert!(err <= TOLERANCE, "decision_function max error {err}");
}

#[test]
fn sklearn_startup_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    copy(
        &onnx_testdata("logreg/model.joblib"),
        &dir.path().join("model.joblib"),
    );
    let log = start_fails("SKLEARN_SERVER", dir.path());
    assert!(
        log.contains("holds model.joblib but no model.onnx") && log.contains("convert_sklearn.py"),
        "{log}"
    );
}

#[tokio::test]
async fn sklearn_unconvertible_estimator_falls_back_to_the_python_wrapper() {
    let reference = read_json(&onnx_testdata("reference.json"));
    let lib = setup(&["--with-wrapper"]);
    let venv_bin = lib
        .ancestors()
        .find(|p| p.join("bin/seldon-core-microservice").is_file())
        .expect("venv")
        .join("bin");
    let envs = [
        (
            "SELDON_PYTHON_WRAPPER",
            venv_bin
                .join("seldon-core-microservice")
                .display()
                .to_string(),
        ),
        (
            "SELDON_PYTHON_FALLBACK_DIR",
            repo()
                .join("model-servers/onnx/python/fallback")
                .display()
                .to_string(),
        ),
    ];
    let server = start("SKLEARN_SERVER", &onnx_testdata("unconvertible"), &envs).await;
    let log = server.log();
    assert!(
        log.contains("SKLEARN_SERVER: Pipeline(FunctionTransformer, LogisticRegression): skl2onnx 1.20.0 cannot convert it")
            && log.contains("with the Python wrapper"),
        "{log}"
    );
    let (status, body) = server
        .post(
            "/api/v1.0/predictions",
            &json!({"data": {"ndarray": reference["rows"]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let err = max_error(
        &flat(&body["data"]["ndarray"]),
        &flat(&reference["models"]["unconvertible"]["predict_proba"]),
    );
    assert!(err <= 1e-12, "the wrapper runs sklearn itself: {err}");
}

fn xgb_expected(name: &str) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let dir = repo().join("model-servers/xgboost/testdata");
    let input = read_json(&dir.join("input.json"));
    let expected = read_json(&dir.join(format!("{name}.expected.json")));
    let k = expected["shape"]
        .get(1)
        .and_then(Value::as_u64)
        .unwrap_or(1) as usize;
    let preds = flat(&expected["predictions"]);
    // rows with a missing value can't travel in v1 JSON; keep the complete ones
    input["rows"]
        .as_array()
        .unwrap()
        .iter()
        .zip(preds.chunks(k))
        .filter(|(r, _)| r.as_array().unwrap().iter().all(Value::is_number))
        .map(|(r, p)| (flat(r), p.to_vec()))
        .unzip()
}

#[tokio::test]
async fn xgboost_model_json_matches_xgboost() {
    let dir = tempfile::tempdir().unwrap();
    copy(
        &repo().join("model-servers/xgboost/testdata/multi_softprob.json"),
        &dir.path().join("model.json"),
    );
    let server = start("XGBOOST_SERVER", dir.path(), &[]).await;
    let (rows, expected) = xgb_expected("multi_softprob");
    assert!(rows.len() >= 500, "{} complete rows", rows.len());
    let (status, body) = server
        .post("/api/v1.0/predictions", &json!({"data": {"ndarray": rows}}))
        .await;
    assert_eq!(status, 200, "{body}");
    let err = max_error(&flat(&body["data"]["ndarray"]), &expected.concat());
    assert!(err <= TOLERANCE, "max error {err}");
    let n = rows.len();
    let req = json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [n, 8], "data": rows.concat()}]});
    let (status, body) = server.post("/v2/models/model/infer", &req).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outputs"][0]["name"], "predict");
    assert_eq!(body["outputs"][0]["shape"], json!([n, 3]));
    assert!(max_error(&flat(&body["outputs"][0]["data"]), &expected.concat()) <= TOLERANCE);
    let (_, md) = server.get("/v2/models/model").await;
    assert_eq!(
        md["inputs"],
        json!([{"name": "input", "datatype": "FP32", "shape": [-1, 8]}])
    );
    let (status, body) = server
        .post("/predict", &json!({"data": {"ndarray": [[1.0, 2.0]]}}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["status"]["info"],
        "expected 8 features per row, got 2 (shape [1, 2])"
    );
}

#[tokio::test]
async fn xgboost_binary_ubj_as_model_bst_is_1d() {
    let dir = tempfile::tempdir().unwrap();
    copy(
        &repo().join("model-servers/xgboost/testdata/binary_logistic.ubj"),
        &dir.path().join("model.bst"),
    );
    let server = start("XGBOOST_SERVER", dir.path(), &[]).await;
    let (rows, expected) = xgb_expected("binary_logistic");
    let (status, body) = server
        .post("/predict", &json!({"data": {"ndarray": rows}}))
        .await;
    assert_eq!(status, 200, "{body}");
    let out = body["data"]["ndarray"].as_array().unwrap();
    assert!(
        out[0].is_number(),
        "one probability per row, like Booster.predict"
    );
    assert!(max_error(&flat(&body["data"]["ndarray"]), &expected.concat()) <= TOLERANCE);
}

#[test]
fn xgboost_legacy_binary_is_refused_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model.bst"), b"binf\0\0\0\x3f legacy").unwrap();
    let log = start_fails("XGBOOST_SERVER", dir.path());
    assert!(
        log.contains("legacy binary XGBoost model") && log.contains("model.bst"),
        "{log}"
    );
    let empty = tempfile::tempdir().unwrap();
    let log = start_fails("XGBOOST_SERVER", empty.path());
    assert!(
        log.contains("holds none of model.json, model.ubj, model.bst"),
        "{log}"
    );
}

#[tokio::test]
async fn lightgbm_model_txt_matches_lightgbm() {
    let src = repo().join("model-servers/lightgbm/testdata");
    let dir = tempfile::tempdir().unwrap();
    copy(&src.join("multiclass.txt"), &dir.path().join("model.txt"));
    let server = start("LIGHTGBM_SERVER", dir.path(), &[]).await;
    let input = read_json(&src.join("input.json"));
    let expected = flat(&read_json(&src.join("multiclass.expected.json"))["predictions"]);
    let (rows, want): (Vec<Vec<f64>>, Vec<Vec<f64>>) = input["rows"]
        .as_array()
        .unwrap()
        .iter()
        .zip(expected.chunks(3))
        .filter(|(r, _)| r.as_array().unwrap().iter().all(Value::is_number))
        .map(|(r, p)| (flat(r), p.to_vec()))
        .unzip();
    let (status, body) = server
        .post("/predict", &json!({"data": {"ndarray": rows}}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(max_error(&flat(&body["data"]["ndarray"]), &want.concat()) <= TOLERANCE);
    let n = rows.len();
    let req = json!({"inputs": [{"name": "input", "datatype": "FP64", "shape": [n, 8], "data": rows.concat()}]});
    let (status, body) = server.post("/v2/models/model/infer", &req).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outputs"][0]["datatype"], "FP64");
    assert!(max_error(&flat(&body["outputs"][0]["data"]), &want.concat()) <= TOLERANCE);
}

const TENSOR_SIGNATURE: &str = r#"signature:
  inputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 3]}}]'
  params: null
"#;

#[tokio::test]
async fn mlflow_onnx_flavor_serves_with_the_signature_as_metadata() {
    let reference = read_json(&onnx_testdata("reference.json"));
    let dir = tempfile::tempdir().unwrap();
    copy(
        &onnx_testdata("logreg/model.onnx"),
        &dir.path().join("model.onnx"),
    );
    let mlmodel = format!(
        "flavors:\n  onnx: {{code: null, data: model.onnx, onnx_version: 1.23.2, providers: [CPUExecutionProvider]}}\n  \
         python_function: {{data: model.onnx, loader_module: mlflow.onnx, python_version: 3.11.7}}\nmlflow_version: 3.17.2\n{TENSOR_SIGNATURE}"
    );
    std::fs::write(dir.path().join("MLmodel"), mlmodel).unwrap();
    // the graph's first output is `label`; parameter `output` picks the probabilities
    let params = r#"[{"name":"output","value":"probabilities","type":"STRING"}]"#.to_string();
    let server = start(
        "MLFLOW_SERVER",
        dir.path(),
        &[("PREDICTIVE_UNIT_PARAMETERS", params)],
    )
    .await;
    let (status, body) = server
        .post("/predict", &json!({"data": {"ndarray": reference["rows"]}}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        max_error(
            &flat(&body["data"]["ndarray"]),
            &flat(&reference["models"]["logreg"]["predict_proba"])
        ) <= TOLERANCE
    );
    let n = reference["rows"].as_array().unwrap().len();
    let req = json!({"inputs": [{"name": "X", "datatype": "FP64", "shape": [n, 4], "data": flat(&reference["rows"])}]});
    let (status, body) = server.post("/v2/models/model/infer", &req).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outputs"][0]["name"], "probabilities");
    assert_eq!(body["outputs"][0]["shape"], json!([n, 3]));
    let err = max_error(
        &flat(&body["outputs"][0]["data"]),
        &flat(&reference["models"]["logreg"]["predict_proba"]),
    );
    assert!(
        err <= TOLERANCE,
        "v2 max error {err} (FP64 in, cast to the graph's float32)"
    );
    let (_, md) = server.get("/v2/models/model").await;
    assert_eq!(md["platform"], "mlflow_onnx");
    assert_eq!(
        md["inputs"],
        json!([{"name": "inputs-0", "datatype": "FP32", "shape": [-1, 4]}])
    );
    assert_eq!(
        md["outputs"],
        json!([{"name": "outputs-0", "datatype": "FP32", "shape": [-1, 3]}])
    );
}

#[tokio::test]
async fn mlflow_xgboost_classifier_predicts_labels_like_pyfunc() {
    let dir = tempfile::tempdir().unwrap();
    copy(
        &repo().join("model-servers/xgboost/testdata/multi_softprob.ubj"),
        &dir.path().join("model.ubj"),
    );
    std::fs::write(
        dir.path().join("MLmodel"),
        "flavors:\n  python_function: {data: model.ubj, loader_module: mlflow.xgboost}\n  \
         xgboost: {code: null, data: model.ubj, model_class: xgboost.sklearn.XGBClassifier, model_format: ubj, xgb_version: 3.2.0}\n\
         signature:\n  inputs: '[{\"type\": \"double\", \"name\": \"f0\"}]'\n  outputs: null\n",
    )
    .unwrap();
    let server = start("MLFLOW_SERVER", dir.path(), &[]).await;
    let (rows, expected) = xgb_expected("multi_softprob");
    let labels: Vec<f64> = expected
        .iter()
        .map(|p| {
            p.iter()
                .enumerate()
                .fold(
                    (0, f64::MIN),
                    |b, (i, v)| if *v > b.1 { (i, *v) } else { b },
                )
                .0 as f64
        })
        .collect();
    let (status, body) = server
        .post("/predict", &json!({"data": {"ndarray": rows}}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(flat(&body["data"]["ndarray"]), labels);
    let (_, md) = server.get("/v2/models/model").await;
    assert_eq!(md["platform"], "mlflow_xgboost");
    assert_eq!(
        md["inputs"],
        json!([{"name": "f0", "datatype": "FP64", "shape": [-1]}])
    );
    assert_eq!(
        md["outputs"],
        json!([{"name": "predict", "datatype": "FP64", "shape": [-1]}]),
        "no output signature: the runtime's"
    );
}

#[tokio::test]
async fn mlflow_sklearn_flavor_uses_the_fetch_time_conversion() {
    let reference = read_json(&onnx_testdata("reference.json"));
    let dir = tempfile::tempdir().unwrap();
    for f in ["model.onnx", "decision_function.onnx", "conversion.json"] {
        copy(&onnx_testdata("logreg").join(f), &dir.path().join(f));
    }
    std::fs::write(
        dir.path().join("MLmodel"),
        "flavors:\n  sklearn: {pickled_model: model.pkl, serialization_format: cloudpickle, sklearn_version: 1.9.1}\n",
    )
    .unwrap();
    let server = start("MLFLOW_SERVER", dir.path(), &[]).await;
    let (status, body) = server
        .post("/predict", &json!({"data": {"ndarray": reference["rows"]}}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        flat(&body["data"]["ndarray"]),
        flat(&reference["models"]["logreg"]["predict"]),
        "pyfunc's default is predict"
    );
}

/// A model whose only flavor this server does not run (pytorch, with python_function) goes to
/// the Python wrapper's mlflow.pyfunc (b0aeff9); with no wrapper installed the start fails
/// naming the flavors and the wrapper command it tried.
#[test]
fn mlflow_pyfunc_only_goes_to_the_python_wrapper_and_a_missing_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("MLmodel"),
        "flavors:\n  python_function: {loader_module: mlflow.pytorch}\n  pytorch: {pytorch_version: 2.9.0}\n",
    )
    .unwrap();
    let wrapper = "/nonexistent/seldon-core-microservice";
    let (mut cmd, _, _dir, log) = command(
        "MLFLOW_SERVER",
        dir.path(),
        &[("SELDON_PYTHON_WRAPPER", wrapper.to_string())],
    );
    let status = cmd.status().expect("run seldon-server");
    assert!(!status.success(), "no wrapper: the start must fail");
    let log = std::fs::read_to_string(log).unwrap();
    assert!(
        log.contains("no flavor served natively (it has: python_function, pytorch)")
            && log.contains("mlflow.pyfunc in the Python wrapper")
            && log.contains(wrapper),
        "{log}"
    );
}

#[tokio::test]
async fn tensorflow_server_serves_the_tf2onnx_graph() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let expected = read_json(&data.join("tensorflow.expected.json"));
    let server = start("TENSORFLOW_SERVER", &data.join("tensorflow"), &[]).await;
    let n = expected["rows"].as_array().unwrap().len();
    let (status, body) = server
        .post(
            "/api/v1.0/predictions",
            &json!({"data": {"ndarray": expected["rows"]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        max_error(
            &flat(&body["data"]["ndarray"]),
            &flat(&expected["probabilities"])
        ) <= TOLERANCE
    );
    let req = json!({"inputs": [{"name": "x:0", "datatype": "FP32", "shape": [n, 3], "data": flat(&expected["rows"])}]});
    let (status, body) = server.post("/v2/models/model/infer", &req).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outputs"][0]["name"], "probabilities");
    let (_, md) = server.get("/v2/models/model").await;
    assert_eq!(md["platform"], "tensorflow_onnx");
    assert_eq!(
        md["inputs"],
        json!([{"name": "x:0", "datatype": "FP32", "shape": [-1, 3]}])
    );
}

#[test]
fn tensorflow_saved_model_without_onnx_explains_tf2onnx() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("1")).unwrap();
    std::fs::write(dir.path().join("1/saved_model.pb"), b"").unwrap();
    let log = start_fails("TENSORFLOW_SERVER", dir.path());
    assert!(
        log.contains("holds a TensorFlow SavedModel but no model.onnx")
            && log.contains("tf2onnx.convert"),
        "{log}"
    );
}
