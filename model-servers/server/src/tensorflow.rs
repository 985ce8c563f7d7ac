//! TENSORFLOW_SERVER: TensorFlow models served through ONNX Runtime after a `tf2onnx`
//! conversion at fetch time (no TF Serving sidecar). Why: see the crate README.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use seldon_onnx::{OnnxServer, RuntimeConfig};
use serde_json::Value;

use crate::RuntimeError;

/// A SavedModel in `dir` itself or in a numbered version directory (TF Serving's layout,
/// highest version wins).
pub fn find_saved_model(dir: &Path) -> Option<PathBuf> {
    if dir.join("saved_model.pb").is_file() {
        return Some(dir.to_path_buf());
    }
    let mut versions: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u64>().ok()?;
            e.path()
                .join("saved_model.pb")
                .is_file()
                .then(|| (v, e.path()))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p)
}

/// `model.onnx` in `dir` → an ONNX model; a SavedModel without it → the conversion command.
pub fn open(
    dir: &Path,
    parameters: &BTreeMap<String, Value>,
    onnx: RuntimeConfig,
) -> Result<OnnxServer, RuntimeError> {
    let onnx_file = if dir.is_file() {
        dir.to_path_buf()
    } else {
        dir.join("model.onnx")
    };
    if onnx_file.is_file() {
        return Ok(OnnxServer::new(
            onnx_file,
            parameters,
            onnx,
            "tensorflow_onnx",
        ));
    }
    if let Some(saved_model) = find_saved_model(dir) {
        return Err(RuntimeError::SavedModelNotConverted {
            dir: dir.to_path_buf(),
            saved_model,
        });
    }
    Err(RuntimeError::NoModelFile {
        dir: dir.to_path_buf(),
        tried: "model.onnx, saved_model.pb, <version>/saved_model.pb".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_model_without_onnx_explains_the_conversion() {
        let d = tempfile::tempdir().unwrap();
        for v in ["1", "2"] {
            std::fs::create_dir(d.path().join(v)).unwrap();
            std::fs::write(d.path().join(v).join("saved_model.pb"), b"").unwrap();
        }
        let err = open(d.path(), &BTreeMap::new(), RuntimeConfig::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("holds a TensorFlow SavedModel but no model.onnx"),
            "{err}"
        );
        assert!(
            err.contains(&format!(
                "tf2onnx.convert --saved-model {}/2 --output",
                d.path().display()
            )),
            "{err}"
        );
        let empty = tempfile::tempdir().unwrap();
        let err = open(empty.path(), &BTreeMap::new(), RuntimeConfig::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("holds none of model.onnx, saved_model.pb"),
            "{err}"
        );
    }
}
