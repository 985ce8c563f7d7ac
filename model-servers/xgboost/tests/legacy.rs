//! Legacy binary `model.bst` (what Seldon v1 XGBOOST_SERVER users have): real models written
//! by xgboost 1.7.6 (`scripts/setup-legacy.sh`, `testdata/make_legacy.py`), converted the way
//! the model initializer converts them (`model-servers/onnx/python/convert_xgboost.py` with
//! the init image's pinned xgboost-cpu 3.0.5, from `model-servers/onnx/scripts/setup.sh`),
//! then evaluated here and compared with xgboost 1.7.6's own `Booster.predict` on 1000 rows
//! (10 % NaN).
//!
//! Tolerance: |ours − xgboost| ≤ max(1e-5 · |xgboost|, 1e-6), as in tests/reference.rs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use seldon_xgboost::{XgbError, XgbModel};
use serde_json::Value;

const CRATE: &str = env!("CARGO_MANIFEST_DIR");

/// Runs a setup script and returns the python path it prints; fails (never skips) with its
/// stderr when it cannot install.
fn setup(script: &Path) -> PathBuf {
    let out = Command::new(script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "{} failed", script.display());
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn onnx_python() -> PathBuf {
    // onnx setup.sh prints the ONNX Runtime library inside the venv: <venv>/lib/python3.11/site-packages/onnxruntime/capi/...
    let lib = setup(&Path::new(CRATE).join("../onnx/scripts/setup.sh"));
    let venv = lib
        .ancestors()
        .find(|p| p.join("bin/python").is_file())
        .expect("the onnx venv holds the library");
    venv.join("bin/python")
}

fn converter() -> PathBuf {
    Path::new(CRATE).join("../onnx/python/convert_xgboost.py")
}

fn convert(python: &Path, dir: &Path) -> std::process::Output {
    Command::new(python)
        .arg(converter())
        .arg(dir)
        .output()
        .unwrap()
}

#[test]
fn legacy_binary_models_convert_and_match_xgboost() {
    let legacy = setup(&Path::new(CRATE).join("scripts/setup-legacy.sh"));
    let python = onnx_python();
    let out = tempfile::tempdir().unwrap();
    let made = Command::new(&legacy)
        .arg(Path::new(CRATE).join("testdata/make_legacy.py"))
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let mut report = Vec::new();
    for case in [
        "binary_logistic",
        "multi_softprob",
        "reg_squarederror",
        "dart",
    ] {
        let dir = out.path().join(case);
        let bst = dir.join("model.bst");
        assert!(
            matches!(XgbModel::load(&bst), Err(XgbError::LegacyBinary)),
            "{case}: the native loader must refuse the binary format"
        );
        let done = convert(&python, &dir);
        assert!(
            done.status.success(),
            "{case}: {}",
            String::from_utf8_lossy(&done.stderr)
        );
        let record: Value =
            serde_json::from_slice(&std::fs::read(dir.join("xgboost-conversion.json")).unwrap())
                .unwrap();
        assert_eq!(record["xgboost"], "3.0.5", "{record}");
        assert_eq!(record["check"]["max_abs_diff"], 0.0, "{record}");

        let model = XgbModel::load(dir.join("model.ubj")).unwrap();
        let doc: Value = serde_json::from_slice(
            &std::fs::read(out.path().join(format!("{case}.expected.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(doc["xgboost"], "1.7.6");
        let rows: Vec<f32> = doc["rows"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap().clone())
            .map(|v| v.as_f64().map_or(f32::NAN, |f| f as f32))
            .collect();
        let n = doc["rows"].as_array().unwrap().len();
        assert_eq!(n, 1000);
        let want: Vec<f64> = doc["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let got = model.predict(&rows, n).unwrap();
        assert_eq!(got.len(), want.len(), "{case}");
        let mut worst = 0f64;
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let d = (f64::from(*g) - w).abs();
            assert!(
                d <= (1e-5 * w.abs()).max(1e-6),
                "{case}[{i}]: ours {g} vs xgboost 1.7.6 {w}"
            );
            worst = worst.max(d);
        }
        report.push(format!("{case}: max |diff| {worst:e}"));
    }
    eprintln!(
        "legacy .bst vs xgboost 1.7.6, 1000 rows: {}",
        report.join("; ")
    );
}

#[test]
fn a_corrupt_legacy_file_fails_the_conversion_with_the_reason() {
    let python = onnx_python();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model.bst"), b"binf\0\0\0\x3f truncated").unwrap();
    let done = convert(&python, dir.path());
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("xgboost 3.0.5 cannot load") && stderr.contains("model.bst"),
        "{stderr}"
    );
    assert!(!dir.path().join("model.ubj").exists());
    assert!(!dir.path().join(".model.ubj.part.ubj").exists());
}
