//! What can fail while setting up an ONNX model (request-time failures are `ModelError`s).

use std::path::PathBuf;

use seldon_serving::ModelError;

/// A startup failure of the ONNX runtime or of a model directory.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error(
        "no ONNX Runtime library: set ORT_DYLIB_PATH to libonnxruntime.so.1.31.1 \
         (`model-servers/onnx/scripts/setup.sh` installs the pinned onnxruntime wheel and prints the path)"
    )]
    NoLibrary,
    #[error(
        "ORT_DYLIB_PATH points to {0}, which does not exist (run model-servers/onnx/scripts/setup.sh)"
    )]
    LibraryMissing(PathBuf),
    #[error("loading ONNX Runtime from {path}: {message}")]
    Library { path: PathBuf, message: String },
    #[error("{name}={value:?} is not valid")]
    Setting { name: &'static str, value: String },
    #[error("ONNX model {path}: {message}")]
    Session { path: PathBuf, message: String },
    #[error(
        "the CUDA execution provider was requested but seldon-onnx was built without its `cuda` feature"
    )]
    CudaNotBuilt,
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid conversion record: {source}")]
    Conversion {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{dir} holds model.joblib but no model.onnx: the model-fetch step must convert it \
         (`python model-servers/onnx/python/convert_sklearn.py {dir}`)"
    )]
    NotConverted { dir: PathBuf },
    #[error("{dir} holds none of model.onnx, model.joblib")]
    NoModel { dir: PathBuf },
    /// `python-fallback.json` is present: the estimator must be served by the Python wrapper.
    #[error("{estimator} cannot be served from ONNX ({reason}); the Python wrapper must serve it")]
    PythonFallback { estimator: String, reason: String },
    #[error("unknown method `{0}` (predict_proba, predict, decision_function)")]
    UnknownMethod(String),
    #[error("method `{method}` is not available for this model: {reason}")]
    MethodUnavailable { method: String, reason: String },
    #[error("ONNX output `{0}` does not exist in the graph")]
    NoSuchOutput(String),
}

impl From<OnnxError> for ModelError {
    fn from(e: OnnxError) -> Self {
        ModelError::Load(e.to_string())
    }
}
