//! Fetch-time conversions: after the copy, a model a Rust runtime cannot read is turned into
//! one it can by a Python script, so `seldon-server` never needs Python for it.
//!
//! | implementation      | when                                                   | script (beside `convert_sklearn.py`) | writes |
//! |---------------------|--------------------------------------------------------|--------------------------------------|--------|
//! | `SKLEARN_SERVER`    | `model.joblib`, no `conversion.json`/`python-fallback.json` | `convert_sklearn.py`            | `model.onnx` + `conversion.json` (or the fallback marker) |
//! | `XGBOOST_SERVER`    | `model.bst` in XGBoost's legacy binary format, no `model.json`/`model.ubj` | `convert_xgboost.py` | `model.ubj` + `xgboost-conversion.json` |
//! | `TENSORFLOW_SERVER` | `saved_model.pb` (or `<version>/saved_model.pb`), no `model.onnx` | `convert_tensorflow.py` (tf2onnx), run by `SELDON_TF_PYTHON` | `model.onnx` + `tensorflow-conversion.json` |
//!
//! The scripts live together (`model-servers/onnx/python/` in the repo, `/opt/seldon-mesh/`
//! in the init image), so one `Converter` names them all.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::InitError;
use crate::sklearn::{self, Converter};

pub const XGBOOST_SERVER: &str = "XGBOOST_SERVER";
pub const TENSORFLOW_SERVER: &str = "TENSORFLOW_SERVER";
/// The interpreter with tensorflow-cpu + tf2onnx (`scripts/setup-tensorflow.sh`); the
/// converter's own Python when unset.
pub const TF_PYTHON_ENV: &str = "SELDON_TF_PYTHON";

/// A conversion a fetched model directory needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    /// `model.joblib` → ONNX (see `sklearn`).
    Sklearn,
    /// XGBoost's legacy binary `model.bst` → `model.ubj`.
    XgboostLegacy,
    /// A TensorFlow SavedModel → `model.onnx` (tf2onnx).
    TensorflowSavedModel,
}

impl Conversion {
    /// The script's file name, beside `convert_sklearn.py`.
    pub fn script(self) -> &'static str {
        match self {
            Self::Sklearn => "convert_sklearn.py",
            Self::XgboostLegacy => "convert_xgboost.py",
            Self::TensorflowSavedModel => "convert_tensorflow.py",
        }
    }

    /// What the script must leave behind (any one of them).
    pub fn outputs(self) -> &'static [&'static str] {
        match self {
            Self::Sklearn => &sklearn::OUTPUTS,
            Self::XgboostLegacy => &["model.ubj"],
            Self::TensorflowSavedModel => &["model.onnx"],
        }
    }

    /// What is converted into what, for logs and errors.
    pub fn what(self) -> &'static str {
        match self {
            Self::Sklearn => "sklearn → ONNX conversion",
            Self::XgboostLegacy => "XGBoost legacy binary → UBJSON conversion",
            Self::TensorflowSavedModel => "TensorFlow SavedModel → ONNX conversion (tf2onnx)",
        }
    }
}

/// Whether `model.bst` is XGBoost's legacy binary format: JSON and UBJSON models start with
/// `{`; the binary format starts with `binf` (1.x) or the raw parameter struct (pre-1.0).
pub fn is_legacy_xgboost(path: &Path) -> bool {
    use std::io::Read;
    let mut first = [0u8; 1];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut first))
        .is_ok_and(|()| first[0] != b'{')
}

/// A SavedModel in `dir` or its highest numbered version folder (TF Serving's layout).
pub fn has_saved_model(dir: &Path) -> bool {
    dir.join("saved_model.pb").is_file()
        || std::fs::read_dir(dir).is_ok_and(|entries| {
            entries.filter_map(Result::ok).any(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.parse::<u64>().is_ok())
                    && e.path().join("saved_model.pb").is_file()
            })
        })
}

/// The conversion `dir` needs for `implementation`, if any. A directory that already holds
/// what the runtime reads (a bucket may ship the converted files itself) needs none.
pub fn plan(implementation: Option<&str>, dir: &Path) -> Option<Conversion> {
    let key = implementation?;
    let is = |k: &str| key.eq_ignore_ascii_case(k);
    if sklearn::needs_conversion(Some(key), dir) {
        return Some(Conversion::Sklearn);
    }
    if is(XGBOOST_SERVER)
        && !dir.join("model.json").exists()
        && !dir.join("model.ubj").exists()
        && is_legacy_xgboost(&dir.join("model.bst"))
    {
        return Some(Conversion::XgboostLegacy);
    }
    if is(TENSORFLOW_SERVER) && !dir.join("model.onnx").exists() && has_saved_model(dir) {
        return Some(Conversion::TensorflowSavedModel);
    }
    None
}

/// Runs the conversion's script on `dir`: `python <script> <dir>`, the script found beside
/// `conv.script`; TensorFlow's with `SELDON_TF_PYTHON` when `env` sets it. A failing script
/// is an error carrying the end of its stderr; so is one that wrote none of its outputs.
pub fn run(
    conversion: Conversion,
    conv: &Converter,
    env: &dyn Fn(&str) -> Option<String>,
    dir: &Path,
) -> Result<(), InitError> {
    if conversion == Conversion::Sklearn {
        return sklearn::convert(conv, dir);
    }
    let err = |reason: String| InitError::Conversion {
        what: conversion.what(),
        dir: dir.to_owned(),
        reason,
    };
    let script = conv.script.parent().map_or_else(
        || PathBuf::from(conversion.script()),
        |d| d.join(conversion.script()),
    );
    if !script.is_file() {
        return Err(err(format!(
            "converter script {} not found (it is looked for beside SELDON_SKLEARN_CONVERTER)",
            script.display()
        )));
    }
    let python = match conversion {
        Conversion::TensorflowSavedModel => env(TF_PYTHON_ENV)
            .filter(|p| !p.is_empty())
            .map_or_else(|| conv.python.clone(), PathBuf::from),
        _ => conv.python.clone(),
    };
    let out = Command::new(&python)
        .arg(&script)
        .arg(dir)
        .output()
        .map_err(|e| err(format!("cannot run {}: {e}", python.display())))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = &tail[tail.len().saturating_sub(5)..];
        return Err(err(format!(
            "{} exited with {}: {}",
            script.display(),
            out.status,
            tail.join(" | ")
        )));
    }
    if !conversion.outputs().iter().any(|o| dir.join(o).exists()) {
        return Err(err(format!(
            "{} did not write {}",
            script.display(),
            conversion.outputs().join(" or ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    #[test]
    fn plans_per_implementation() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(plan(Some(XGBOOST_SERVER), d.path()), None);
        write(d.path(), "model.bst", b"binf\0\0\0?");
        assert_eq!(plan(None, d.path()), None);
        assert_eq!(plan(Some("LIGHTGBM_SERVER"), d.path()), None);
        assert_eq!(
            plan(Some("xgboost_server"), d.path()),
            Some(Conversion::XgboostLegacy)
        );
        // converted already, or shipped with a readable twin
        write(d.path(), "model.ubj", b"{");
        assert_eq!(plan(Some(XGBOOST_SERVER), d.path()), None);

        // xgboost >= 2 writes UBJSON under the name model.bst: no conversion
        let u = tempfile::tempdir().unwrap();
        write(u.path(), "model.bst", b"{L\0\0\0");
        assert_eq!(plan(Some(XGBOOST_SERVER), u.path()), None);

        let t = tempfile::tempdir().unwrap();
        assert_eq!(plan(Some(TENSORFLOW_SERVER), t.path()), None);
        write(t.path(), "1/saved_model.pb", b"");
        write(t.path(), "notes/saved_model.pb", b"");
        assert_eq!(
            plan(Some(TENSORFLOW_SERVER), t.path()),
            Some(Conversion::TensorflowSavedModel)
        );
        write(t.path(), "model.onnx", b"");
        assert_eq!(plan(Some(TENSORFLOW_SERVER), t.path()), None);
        let flat = tempfile::tempdir().unwrap();
        write(flat.path(), "saved_model.pb", b"");
        assert!(has_saved_model(flat.path()));
        let named = tempfile::tempdir().unwrap();
        write(named.path(), "v1/saved_model.pb", b"");
        assert!(!has_saved_model(named.path()), "only numbered versions");

        let s = tempfile::tempdir().unwrap();
        write(s.path(), "model.joblib", b"x");
        assert_eq!(
            plan(Some("SKLEARN_SERVER"), s.path()),
            Some(Conversion::Sklearn)
        );
    }

    #[test]
    fn legacy_sniffing_needs_a_readable_file() {
        let d = tempfile::tempdir().unwrap();
        assert!(!is_legacy_xgboost(&d.path().join("missing.bst")));
        write(d.path(), "empty.bst", b"");
        assert!(!is_legacy_xgboost(&d.path().join("empty.bst")));
    }

    fn converter(dir: &Path, python: &str) -> Converter {
        Converter {
            python: python.into(),
            script: dir.join("convert_sklearn.py"),
        }
    }

    #[test]
    fn runs_the_sibling_script_and_checks_its_outputs() {
        let scripts = tempfile::tempdir().unwrap();
        let model = tempfile::tempdir().unwrap();
        let none = |_: &str| None;
        let conv = converter(scripts.path(), "python3");
        let e = run(Conversion::XgboostLegacy, &conv, &none, model.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("XGBoost legacy binary → UBJSON conversion of")
                && e.contains("convert_xgboost.py not found"),
            "{e}"
        );
        write(
            scripts.path(),
            "convert_xgboost.py",
            b"import sys, pathlib\npathlib.Path(sys.argv[1], 'model.ubj').write_bytes(b'{')\n",
        );
        run(Conversion::XgboostLegacy, &conv, &none, model.path()).unwrap();
        assert!(model.path().join("model.ubj").is_file());

        write(
            scripts.path(),
            "convert_tensorflow.py",
            b"import sys\nprint('tf2onnx could not convert', file=sys.stderr)\nsys.exit(1)\n",
        );
        let e = run(Conversion::TensorflowSavedModel, &conv, &none, model.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("exit status: 1") && e.contains("tf2onnx could not convert"),
            "{e}"
        );
        write(scripts.path(), "convert_tensorflow.py", b"pass\n");
        let e = run(Conversion::TensorflowSavedModel, &conv, &none, model.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("did not write model.onnx"), "{e}");
    }

    #[test]
    fn tensorflow_runs_with_its_own_python() {
        let scripts = tempfile::tempdir().unwrap();
        let model = tempfile::tempdir().unwrap();
        write(
            scripts.path(),
            "convert_tensorflow.py",
            b"import sys, pathlib\npathlib.Path(sys.argv[1], 'model.onnx').write_bytes(b'')\n",
        );
        // the converter's own Python does not exist: only SELDON_TF_PYTHON can run it
        let conv = converter(scripts.path(), "/no/python");
        let e = run(
            Conversion::TensorflowSavedModel,
            &conv,
            &|_| None,
            model.path(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("cannot run /no/python"), "{e}");
        let env = |k: &str| (k == TF_PYTHON_ENV).then(|| "python3".to_string());
        run(Conversion::TensorflowSavedModel, &conv, &env, model.path()).unwrap();
        assert!(model.path().join("model.onnx").is_file());
    }
}
