//! TENSORFLOW_SERVER's fetch-time conversion: real SavedModels made by the pinned
//! tensorflow-cpu 2.15.1 (`python/make_savedmodel.py`, a trained Keras classifier in TF
//! Serving's versioned layout and a plain `tf.Module`), converted by `python/convert_tensorflow.py`
//! (tf2onnx 1.17.0, what the model initializer runs), served by ONNX Runtime through the
//! `Model` trait and compared with TensorFlow's own `serving_default` answers on 1000 rows.
//!
//! The TensorFlow venv comes from `model-servers/initializer/scripts/setup-tensorflow.sh`
//! (installed on first use, ~1.4 GB, cached); the test fails with its stderr, never skips.
//! Tolerance: |onnx − tf| ≤ 1e-5 · max(1, |tf|).

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::*;
use seldon_onnx::OnnxServer;
use seldon_serving::model::Model;
use seldon_serving::{Payload, Request, Tensor};
use serde_json::Value;

const TOLERANCE: f64 = 1e-5;

fn tf_python() -> PathBuf {
    let script = crate_dir().join("../initializer/scripts/setup-tensorflow.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "{} failed", script.display());
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn python(py: &PathBuf, args: &[&std::ffi::OsStr]) {
    let out = Command::new(py).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{} {:?}: {}",
        py.display(),
        args,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn savedmodels_convert_and_match_tensorflow_on_1000_rows() {
    let py = tf_python();
    let out = tempfile::tempdir().unwrap();
    let maker = crate_dir().join("python/make_savedmodel.py");
    python(&py, &[maker.as_os_str(), out.path().as_os_str()]);
    let converter = crate_dir().join("python/convert_tensorflow.py");
    let mut report = Vec::new();
    for name in ["keras", "module"] {
        let dir = out.path().join(name);
        assert!(!dir.join("model.onnx").exists());
        python(&py, &[converter.as_os_str(), dir.as_os_str()]);
        let record: Value =
            serde_json::from_slice(&std::fs::read(dir.join("tensorflow-conversion.json")).unwrap())
                .unwrap();
        assert_eq!(record["versions"]["tf2onnx"], "1.17.0", "{record}");
        assert_eq!(record["opset"], 17);

        let expected: Value = serde_json::from_slice(
            &std::fs::read(out.path().join(format!("{name}.expected.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(expected["tensorflow"], "2.15.1");
        let (n, x) = rows(&expected);
        assert_eq!(n, 1000);
        let mut server = OnnxServer::new(
            dir.join("model.onnx"),
            &BTreeMap::new(),
            runtime(),
            "tensorflow_onnx",
        );
        server.load().await.unwrap();
        let answer = server
            .predict(Request::new(Tensor::matrix_f32(n, 8, x).unwrap()))
            .await
            .unwrap();
        let Payload::Tensor(t) = answer.value else {
            panic!("tensor expected")
        };
        assert_eq!(t.shape[0], n, "{name}: one answer per row");
        let want = flat(&expected["predictions"]);
        let err = max_error(&t.as_f64().unwrap(), &want);
        report.push(format!("{name}: max error {err:.3e}"));
        assert!(err <= TOLERANCE, "{name}: max error {err} > {TOLERANCE}");
        let md = server.metadata();
        assert_eq!(md.platform, "tensorflow_onnx");
    }
    eprintln!("tf2onnx vs TensorFlow, 1000 rows: {}", report.join("; "));
}

#[test]
fn a_folder_without_a_savedmodel_is_refused_by_name() {
    let py = tf_python();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(&py)
        .arg(crate_dir().join("python/convert_tensorflow.py"))
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no saved_model.pb"), "{stderr}");
    // a broken SavedModel: tf2onnx's reason, no half-written model.onnx left behind
    std::fs::write(dir.path().join("saved_model.pb"), b"not a protobuf").unwrap();
    let out = Command::new(&py)
        .arg(crate_dir().join("python/convert_tensorflow.py"))
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("tf2onnx could not convert"), "{stderr}");
    assert!(!dir.path().join("model.onnx").exists());
    assert!(!dir.path().join(".model.onnx.part").exists());
}
