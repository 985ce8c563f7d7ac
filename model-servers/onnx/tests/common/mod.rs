//! Test helpers: the ONNX Runtime library (installed by `scripts/setup.sh` if needed).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use seldon_onnx::RuntimeConfig;

pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn testdata(name: &str) -> PathBuf {
    crate_dir().join("testdata").join(name)
}

/// `ORT_DYLIB_PATH`, else what `scripts/setup.sh` prints (it installs the pinned wheel).
/// Panics with the reason when neither works: these tests never skip silently.
pub fn ort_library() -> PathBuf {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "ORT_DYLIB_PATH={} does not exist", p.display());
        return p;
    }
    setup_script()
}

/// Always runs `scripts/setup.sh` (the converter tests need its venv's Python) and returns
/// the library path it prints.
pub fn setup_script() -> PathBuf {
    static LIBRARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    LIBRARY.get_or_init(run_setup).clone()
}

fn run_setup() -> PathBuf {
    let script = crate_dir().join("scripts/setup.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed (it installs onnxruntime==1.31.1 from PyPI; set ORT_DYLIB_PATH to an existing \
         libonnxruntime.so.1.31.1 instead):\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(
        p.is_file(),
        "setup.sh printed {}, which is not a file",
        p.display()
    );
    p
}

pub fn runtime() -> RuntimeConfig {
    RuntimeConfig {
        library: Some(ort_library()),
        sessions: 2,
        ..RuntimeConfig::default()
    }
}

/// `testdata/reference.json`: rows and sklearn's outputs.
pub fn reference() -> serde_json::Value {
    let text = std::fs::read_to_string(testdata("reference.json")).expect("reference.json");
    serde_json::from_str(&text).expect("reference.json parses")
}

pub fn rows(reference: &serde_json::Value) -> (usize, Vec<f32>) {
    let rows = reference["rows"].as_array().expect("rows");
    let flat: Vec<f32> = rows
        .iter()
        .flat_map(|r| {
            r.as_array()
                .expect("row")
                .iter()
                .map(|x| x.as_f64().expect("number") as f32)
        })
        .collect();
    (rows.len(), flat)
}

/// Flattens sklearn's output (1-D or 2-D) to f64.
pub fn flat(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .flat_map(|x| match x.as_array() {
            Some(row) => row
                .iter()
                .map(|y| y.as_f64().expect("number"))
                .collect::<Vec<_>>(),
            None => vec![x.as_f64().expect("number")],
        })
        .collect()
}

/// max |ours − ref| / max(1, |ref|): relative above 1, absolute below (probabilities).
pub fn max_error(ours: &[f64], reference: &[f64]) -> f64 {
    assert_eq!(ours.len(), reference.len(), "output sizes differ");
    ours.iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0.0, f64::max)
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}
