//! The real `seldon-mesh-initializer` binary converting what a Rust runtime cannot read, at
//! fetch time, with the project's scripts and pinned venvs: XGBOOST_SERVER's legacy binary
//! `model.bst` (made by xgboost 1.7.6) → `model.ubj`, and TENSORFLOW_SERVER's SavedModel (made
//! by tensorflow-cpu 2.15.1) → `model.onnx` with tf2onnx. Accuracy against the libraries is
//! checked where the models are served: `model-servers/xgboost/tests/legacy.rs`,
//! `model-servers/onnx/tests/tensorflow.rs`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_seldon-mesh-initializer");
const CRATE: &str = env!("CARGO_MANIFEST_DIR");

/// Runs a setup script, returns the path it prints; fails with its stderr, never skips.
fn setup(script: &str) -> PathBuf {
    let script = Path::new(CRATE).join(script);
    let out = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "{} failed", script.display());
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// The init image's Python (onnx/scripts/setup.sh's venv: sklearn, skl2onnx, xgboost-cpu).
fn converter_python() -> PathBuf {
    let lib = setup("../onnx/scripts/setup.sh");
    lib.ancestors()
        .find(|p| p.join("bin/python").is_file())
        .expect("the onnx venv holds the library")
        .join("bin/python")
}

fn scripts() -> PathBuf {
    Path::new(CRATE).join("../onnx/python")
}

fn run(src: &Path, dest: &Path, env: &[(&str, &Path)], implementation: &str) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg(src)
        .arg(dest)
        .args(["--implementation", implementation])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "SELDON_SKLEARN_CONVERTER",
            scripts().join("convert_sklearn.py"),
        );
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn files(dir: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn xgboost_server_converts_a_legacy_model_bst() {
    let legacy = setup("../xgboost/scripts/setup-legacy.sh");
    let python = converter_python();
    let made = tempfile::tempdir().unwrap();
    let out = Command::new(&legacy)
        .arg(Path::new(CRATE).join("../xgboost/testdata/make_legacy.py"))
        .arg(made.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let src = made.path().join("multi_softprob");

    let dest = tempfile::tempdir().unwrap();
    let out = run(
        &src,
        dest.path(),
        &[("SELDON_PYTHON", &python)],
        "XGBOOST_SERVER",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        files(dest.path()),
        ["model.bst", "model.ubj", "xgboost-conversion.json"]
            .map(String::from)
            .into()
    );
    let ubj = std::fs::read(dest.path().join("model.ubj")).unwrap();
    assert_eq!(ubj.first(), Some(&b'{'), "UBJSON starts with an object");
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dest.path().join("xgboost-conversion.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["objective"], "multi:softprob", "{record}");
    assert_eq!(record["check"]["rows"], 1000, "{record}");
    assert_eq!(record["check"]["max_abs_diff"], 0.0, "{record}");

    // Another runtime: copied as is. A folder converted already: not again.
    let plain = tempfile::tempdir().unwrap();
    let out = run(
        &src,
        plain.path(),
        &[("SELDON_PYTHON", &python)],
        "LIGHTGBM_SERVER",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(files(plain.path()), ["model.bst"].map(String::from).into());
    let again = tempfile::tempdir().unwrap();
    let nopython = PathBuf::from("/no/python");
    let out = run(
        dest.path(),
        again.path(),
        &[("SELDON_PYTHON", &nopython)],
        "XGBOOST_SERVER",
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // No Python to convert with: exit 1, the conversion and the interpreter named.
    let out = run(
        &src,
        tempfile::tempdir().unwrap().path(),
        &[("SELDON_PYTHON", &nopython)],
        "XGBOOST_SERVER",
    );
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("XGBoost legacy binary → UBJSON conversion of")
            && e.contains("cannot run /no/python"),
        "{e}"
    );
}

#[test]
fn tensorflow_server_converts_a_savedmodel_with_tf2onnx() {
    let tf = setup("scripts/setup-tensorflow.sh");
    let made = tempfile::tempdir().unwrap();
    let out = Command::new(&tf)
        .arg(scripts().join("make_savedmodel.py"))
        .arg(made.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let src = made.path().join("keras"); // TF Serving's layout: keras/1/saved_model.pb

    let dest = tempfile::tempdir().unwrap();
    let out = run(
        &src,
        dest.path(),
        &[("SELDON_TF_PYTHON", &tf)],
        "TENSORFLOW_SERVER",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let got = files(dest.path());
    for f in [
        "1/saved_model.pb",
        "model.onnx",
        "tensorflow-conversion.json",
    ] {
        assert!(got.contains(f), "{f} missing in {got:?}");
    }
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dest.path().join("tensorflow-conversion.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["source"], "1", "{record}");
    assert_eq!(
        record["inputs"]["features"]["shape"],
        serde_json::json!([-1, 8])
    );

    // The init image's Python has no TensorFlow: exit 1 with what to install.
    let python = converter_python();
    let out = run(
        &src,
        tempfile::tempdir().unwrap().path(),
        &[("SELDON_PYTHON", &python)],
        "TENSORFLOW_SERVER",
    );
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("TensorFlow SavedModel → ONNX conversion (tf2onnx) of")
            && e.contains("has no tensorflow/tf2onnx")
            && e.contains("SELDON_TF_PYTHON"),
        "{e}"
    );
}
