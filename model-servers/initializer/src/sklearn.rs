//! The SKLEARN_SERVER hook: after the copy, `model.joblib` is converted to ONNX by the
//! runtime's script (`model-servers/onnx/python/convert_sklearn.py`), so the Rust server
//! never needs Python.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::InitError;

/// The implementation key whose models get converted.
pub const SKLEARN_SERVER: &str = "SKLEARN_SERVER";
/// Seldon's file name for a pickled scikit-learn model.
pub const JOBLIB: &str = "model.joblib";
/// What the conversion leaves behind (see the onnx crate): a record or a fallback marker.
pub const OUTPUTS: [&str; 2] = ["conversion.json", "python-fallback.json"];

/// How to run the converter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converter {
    pub python: PathBuf,
    pub script: PathBuf,
}

/// Convert when the runtime is SKLEARN_SERVER, `dir` has `model.joblib`, and it was not
/// converted already (a bucket may ship `conversion.json` itself).
pub fn needs_conversion(implementation: Option<&str>, dir: &Path) -> bool {
    implementation.is_some_and(|i| i.eq_ignore_ascii_case(SKLEARN_SERVER))
        && dir.join(JOBLIB).is_file()
        && !OUTPUTS.iter().any(|o| dir.join(o).exists())
}

/// Runs `python script dir`. The script exits 0 both when it converted and when it wrote
/// the Python-fallback marker; anything else is an error carrying the end of its stderr.
pub fn convert(conv: &Converter, dir: &Path) -> Result<(), InitError> {
    let err = |reason: String| InitError::Convert {
        dir: dir.to_owned(),
        reason,
    };
    if !conv.script.is_file() {
        return Err(err(format!(
            "converter script {} not found (set SELDON_SKLEARN_CONVERTER)",
            conv.script.display()
        )));
    }
    let out = Command::new(&conv.python)
        .arg(&conv.script)
        .arg(dir)
        .output()
        .map_err(|e| err(format!("cannot run {}: {e}", conv.python.display())))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(err(format!(
            "{} exited with {}: {}",
            conv.script.display(),
            out.status,
            tail.join(" | ")
        )));
    }
    if !OUTPUTS.iter().any(|o| dir.join(o).exists()) {
        return Err(err(format!(
            "{} wrote neither {} nor {}",
            conv.script.display(),
            OUTPUTS[0],
            OUTPUTS[1]
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decides() {
        let d = tempfile::tempdir().unwrap();
        assert!(!needs_conversion(Some(SKLEARN_SERVER), d.path()));
        std::fs::write(d.path().join(JOBLIB), b"x").unwrap();
        assert!(needs_conversion(Some("sklearn_server"), d.path()));
        assert!(!needs_conversion(Some("XGBOOST_SERVER"), d.path()));
        assert!(!needs_conversion(None, d.path()));
        std::fs::write(d.path().join("conversion.json"), b"{}").unwrap();
        assert!(!needs_conversion(Some(SKLEARN_SERVER), d.path()));
    }

    #[test]
    fn missing_script_and_failing_script() {
        let d = tempfile::tempdir().unwrap();
        let conv = Converter {
            python: "python3".into(),
            script: d.path().join("nope.py"),
        };
        assert!(
            convert(&conv, d.path())
                .unwrap_err()
                .to_string()
                .contains("nope.py not found")
        );
        let script = d.path().join("fail.py");
        std::fs::write(
            &script,
            "import sys\nprint('cannot unpickle', file=sys.stderr)\nsys.exit(3)\n",
        )
        .unwrap();
        let err = convert(
            &Converter {
                python: "python3".into(),
                script,
            },
            d.path(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("exit status: 3") && err.contains("cannot unpickle"),
            "{err}"
        );
    }

    #[test]
    fn passes_the_directory() {
        let d = tempfile::tempdir().unwrap();
        let script = d.path().join("ok.py");
        std::fs::write(
            &script,
            "import sys, pathlib\npathlib.Path(sys.argv[1], 'conversion.json').write_text('{}')\n",
        )
        .unwrap();
        convert(
            &Converter {
                python: "python3".into(),
                script: script.clone(),
            },
            d.path(),
        )
        .unwrap();
        assert!(d.path().join("conversion.json").is_file());
        let quiet = d.path().join("quiet.py");
        std::fs::write(&quiet, "pass\n").unwrap();
        let other = tempfile::tempdir().unwrap();
        assert!(
            convert(
                &Converter {
                    python: "python3".into(),
                    script: quiet
                },
                other.path()
            )
            .unwrap_err()
            .to_string()
            .contains("wrote neither")
        );
    }
}
