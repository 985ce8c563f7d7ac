//! SKLEARN_SERVER through the `Model` trait vs sklearn's own outputs (testdata/reference.json,
//! made by python/make_testdata.py with the pinned scikit-learn) on 1200 synthetic rows.

mod common;

use std::collections::BTreeMap;

use common::*;
use seldon_onnx::{OnnxError, SklearnServer};
use seldon_serving::model::Model;
use seldon_serving::{ModelError, Payload, Request, Tensor, Values};
use serde_json::{Value, json};

/// ≤ 1e-5 relative (absolute for |value| < 1).
const TOLERANCE: f64 = 1e-5;

fn params(method: &str) -> BTreeMap<String, Value> {
    BTreeMap::from([("method".to_string(), json!(method))])
}

async fn server(model: &str, method: &str) -> SklearnServer {
    let mut s = SklearnServer::new(testdata(model), &params(method), runtime()).expect("new");
    s.load().await.expect("load");
    s
}

fn values(t: &Tensor) -> Vec<f64> {
    t.as_f64().expect("numeric").into_owned()
}

#[tokio::test]
async fn every_model_and_method_matches_sklearn_on_1200_rows() {
    let reference = reference();
    let (n, x) = rows(&reference);
    assert!(n >= 1000);
    let input = Tensor::matrix_f32(n, 4, x.clone()).unwrap();
    let mut report = Vec::new();
    for (model, methods) in [
        (
            "logreg",
            vec!["predict_proba", "predict", "decision_function"],
        ),
        ("rf", vec!["predict_proba", "predict"]),
        ("svc", vec!["predict_proba", "predict"]),
    ] {
        for method in methods {
            let s = server(model, method).await;
            let out = s
                .predict(Request::new(input.clone()))
                .await
                .expect("predict");
            let Payload::Tensor(t) = out.value else {
                panic!("tensor expected")
            };
            assert_eq!(t.name, method);
            assert_eq!(t.shape[0], n, "{model}/{method}: one result per row");
            let err = max_error(&values(&t), &flat(&reference["models"][model][method]));
            report.push(format!("{model}/{method}: max error {err:.3e}"));
            assert!(
                err <= TOLERANCE,
                "{model}/{method}: max error {err} > {TOLERANCE}"
            );
        }
    }
    eprintln!("{}", report.join("\n"));
}

#[tokio::test]
async fn one_row_at_a_time_as_1d_tensors() {
    let reference = reference();
    let (_, x) = rows(&reference);
    let s = server("svc", "predict_proba").await;
    let expected = flat(&reference["models"]["svc"]["predict_proba"]);
    for (i, row) in x.chunks(4).take(50).enumerate() {
        let t = Tensor::new(
            vec![4],
            Values::F64(row.iter().map(|v| f64::from(*v)).collect()),
        )
        .unwrap();
        let out = s.predict_tensor(&t).expect("predict");
        assert_eq!(out.shape, vec![1, 3]);
        assert!(max_error(&values(&out), &expected[i * 3..i * 3 + 3]) <= TOLERANCE);
    }
}

#[tokio::test]
async fn metadata_comes_from_the_graph_and_the_method() {
    let s = server("logreg", "predict_proba").await;
    let md = serde_json::to_value(s.metadata()).unwrap();
    assert_eq!(md["platform"], "sklearn_onnx");
    assert_eq!(
        md["inputs"],
        json!([{"name": "X", "datatype": "FP32", "shape": [-1, 4]}])
    );
    assert_eq!(
        md["outputs"],
        json!([{"name": "predict_proba", "datatype": "FP32", "shape": [-1, 3]}])
    );
    assert_eq!(md["custom"]["estimator"], "LogisticRegression");
    assert_eq!(md["custom"]["converted_with_scikit-learn"], "1.9.1");
    let s = server("rf", "predict").await;
    let md = serde_json::to_value(s.metadata()).unwrap();
    assert_eq!(
        md["outputs"],
        json!([{"name": "predict", "datatype": "FP64", "shape": [-1]}])
    );
}

#[tokio::test]
async fn wrong_feature_count_and_dtype_are_bad_data() {
    let s = server("logreg", "predict_proba").await;
    let err = s
        .predict(Request::new(
            Tensor::matrix_f32(2, 3, vec![0.0; 6]).unwrap(),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, ModelError::BadData(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "expected 4 features per row, got 3 (shape [2, 3])"
    );
    let bytes = Tensor::new(vec![1, 1], Values::Bytes(vec![b"a".to_vec()])).unwrap();
    let err = s.predict(Request::new(bytes)).await.unwrap_err();
    assert!(matches!(err, ModelError::BadData(_)));
    assert_eq!(err.to_string(), "input `X` is FP32, got BYTES");
    let err = s
        .predict(Request::new(Payload::Str("x".into())))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("expected one numeric tensor, got strData")
    );
    let t3 = Tensor::new(vec![1, 2, 2], Values::F32(vec![0.0; 4])).unwrap();
    let err = s.predict(Request::new(t3)).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "input `X` needs rank 2 (shape [-1, 4]), got shape [1, 2, 2]"
    );
}

#[test]
fn method_parameter_is_checked_at_startup() {
    let err = SklearnServer::new(testdata("logreg"), &params("transform"), runtime()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown method `transform` (predict_proba, predict, decision_function)"
    );
    let err =
        SklearnServer::new(testdata("svc"), &params("decision_function"), runtime()).unwrap_err();
    assert!(matches!(err, OnnxError::MethodUnavailable { .. }));
    assert!(
        err.to_string().starts_with(
            "method `decision_function` is not available for this model: skl2onnx raw scores differ"
        ),
        "{err}"
    );
    let p = BTreeMap::from([("method".to_string(), json!(3))]);
    assert!(SklearnServer::new(testdata("logreg"), &p, runtime()).is_err());
    assert!(
        SklearnServer::new(testdata("logreg"), &BTreeMap::new(), runtime()).is_ok(),
        "predict_proba is the default"
    );
}

#[test]
fn directory_states_name_the_next_step() {
    let err =
        SklearnServer::new(testdata("unconvertible"), &BTreeMap::new(), runtime()).unwrap_err();
    let OnnxError::PythonFallback { estimator, reason } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        estimator,
        "Pipeline(FunctionTransformer, LogisticRegression)"
    );
    assert!(
        reason.contains("FunctionTransformer is not supported"),
        "{reason}"
    );

    let dir = tempfile::tempdir().unwrap();
    let err = SklearnServer::new(dir.path(), &BTreeMap::new(), runtime()).unwrap_err();
    assert!(matches!(err, OnnxError::NoModel { .. }));
    std::fs::copy(
        testdata("logreg/model.joblib"),
        dir.path().join("model.joblib"),
    )
    .unwrap();
    let err = SklearnServer::new(dir.path(), &BTreeMap::new(), runtime()).unwrap_err();
    assert!(
        err.to_string()
            .contains("holds model.joblib but no model.onnx"),
        "{err}"
    );
    assert!(err.to_string().contains("convert_sklearn.py"));
    std::fs::write(dir.path().join("conversion.json"), "{").unwrap();
    let err = SklearnServer::new(dir.path(), &BTreeMap::new(), runtime()).unwrap_err();
    assert!(matches!(err, OnnxError::Conversion { .. }));
}

#[tokio::test]
async fn a_bare_model_onnx_is_served_by_output_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(testdata("svc/model.onnx"), dir.path().join("model.onnx")).unwrap();
    let mut s = SklearnServer::new(dir.path(), &BTreeMap::new(), runtime()).unwrap();
    s.load().await.unwrap();
    let reference = reference();
    let (n, x) = rows(&reference);
    let t = s
        .predict_tensor(&Tensor::matrix_f32(n, 4, x).unwrap())
        .unwrap();
    assert!(
        max_error(
            &values(&t),
            &flat(&reference["models"]["svc"]["predict_proba"])
        ) <= TOLERANCE
    );
    let mut s = SklearnServer::new(dir.path(), &params("decision_function"), runtime()).unwrap();
    assert!(
        s.load()
            .await
            .unwrap_err()
            .to_string()
            .contains("no raw scores")
    );
}

#[tokio::test]
async fn a_corrupt_graph_fails_to_load_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model.onnx"), b"not onnx").unwrap();
    let mut s = SklearnServer::new(dir.path(), &BTreeMap::new(), runtime()).unwrap();
    let err = s.load().await.unwrap_err();
    assert!(matches!(err, ModelError::Load(_)));
    assert!(err.to_string().contains("model.onnx"), "{err}");
}

#[tokio::test]
async fn large_batches_run_off_the_executor_with_the_same_results() {
    let reference = reference();
    let (n, x) = rows(&reference);
    let s = server("rf", "predict_proba").await;
    let big = Tensor::matrix_f32(5 * n, 4, x.repeat(5)).unwrap();
    assert!(big.values.len() >= seldon_onnx::session::BLOCKING_ELEMENTS);
    let out = s.predict(Request::new(big)).await.expect("predict");
    let Payload::Tensor(t) = out.value else {
        panic!("tensor expected")
    };
    let expected = flat(&reference["models"]["rf"]["predict_proba"]).repeat(5);
    assert!(max_error(&values(&t), &expected) <= TOLERANCE);
}

/// The converter (run by the model initializer) reproduces the committed records from the
/// committed `model.joblib` files: same methods, outputs, classes and fallback decision.
#[test]
fn convert_sklearn_reproduces_the_committed_records() {
    let lib = setup_script();
    let python = lib
        .ancestors()
        .map(|p| p.join("bin/python"))
        .find(|p| p.is_file())
        .expect("the onnxruntime venv's python (scripts/setup.sh)");
    let script = crate_dir().join("python/convert_sklearn.py");
    for model in ["logreg", "rf", "svc", "unconvertible"] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            testdata(model).join("model.joblib"),
            dir.path().join("model.joblib"),
        )
        .unwrap();
        let out = std::process::Command::new(&python)
            .arg(&script)
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{model}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let read = |d: &std::path::Path, f: &str| -> Option<Value> {
            std::fs::read_to_string(d.join(f))
                .ok()
                .map(|t| serde_json::from_str(&t).unwrap())
        };
        match read(&testdata(model), "conversion.json") {
            Some(committed) => {
                let fresh = read(dir.path(), "conversion.json")
                    .unwrap_or_else(|| panic!("{model}: no conversion.json"));
                for key in [
                    "estimator",
                    "kind",
                    "n_features",
                    "input",
                    "classes",
                    "methods",
                ] {
                    assert_eq!(fresh[key], committed[key], "{model}: {key}");
                }
                let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>());
                assert_eq!(
                    keys(&fresh["unavailable"]),
                    keys(&committed["unavailable"]),
                    "{model}"
                );
                for (method, err) in fresh["check"]["max_error"].as_object().unwrap() {
                    assert!(
                        err.as_f64().unwrap() <= TOLERANCE,
                        "{model}/{method}: {err}"
                    );
                }
            }
            None => {
                let fresh = read(dir.path(), "python-fallback.json")
                    .unwrap_or_else(|| panic!("{model}: no fallback marker"));
                let committed = read(&testdata(model), "python-fallback.json").unwrap();
                assert_eq!(fresh["estimator"], committed["estimator"]);
                assert_eq!(fresh["reason"], committed["reason"]);
                assert!(
                    !dir.path().join("model.onnx").exists(),
                    "{model}: no graph next to the marker"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_regressor_predicts_one_value_per_row() {
    // LinearRegression on iris petal width from the other three features, converted at
    // test time (the converter is the unit under test here too).
    let lib = setup_script();
    let python = lib
        .ancestors()
        .map(|p| p.join("bin/python"))
        .find(|p| p.is_file())
        .expect("venv python");
    let dir = tempfile::tempdir().unwrap();
    let code = format!(
        "import joblib, json, numpy as np\n\
         from sklearn.datasets import load_iris\n\
         from sklearn.linear_model import LinearRegression\n\
         x = load_iris().data\n\
         m = LinearRegression().fit(x[:, :3], x[:, 3])\n\
         joblib.dump(m, r'{d}/model.joblib')\n\
         rows = np.asarray(x[:, :3], dtype=np.float32)\n\
         json.dump({{'rows': rows.tolist(), 'predict': m.predict(rows.astype(np.float64)).tolist()}}, open(r'{d}/ref.json', 'w'))\n",
        d = dir.path().display()
    );
    let out = std::process::Command::new(&python)
        .args(["-c", &code])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(&python)
        .arg(crate_dir().join("python/convert_sklearn.py"))
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("ref.json")).unwrap())
            .unwrap();
    let err = SklearnServer::new(dir.path(), &BTreeMap::new(), runtime()).unwrap_err();
    assert!(
        err.to_string()
            .contains("LinearRegression (regressor) has no predict_proba"),
        "{err}"
    );
    let s = {
        let mut s = SklearnServer::new(dir.path(), &params("predict"), runtime()).unwrap();
        s.load().await.unwrap();
        s
    };
    let x: Vec<f64> = flat(&reference["rows"]);
    let n = x.len() / 3;
    let t = s
        .predict_tensor(&Tensor::matrix_f64(n, 3, x).unwrap())
        .unwrap();
    assert_eq!(t.shape, vec![n], "1-D like sklearn's predict");
    let md = serde_json::to_value(s.metadata()).unwrap();
    assert_eq!(
        md["outputs"],
        json!([{"name": "predict", "datatype": "FP32", "shape": [-1]}])
    );
    assert!(max_error(&values(&t), &flat(&reference["predict"])) <= TOLERANCE);
}
