//! The prepackaged runtimes behind Seldon's implementation keys, registered in one catalogue for the `seldon-server` binary.
//!
//! ```text
//!  --implementation ──► catalogue() ──► SKLEARN_SERVER    seldon_onnx::SklearnServer  (model.onnx + conversion.json)
//!                                       XGBOOST_SERVER    trees::XgbRuntime           (model.json | model.ubj | model.bst)
//!                                       LIGHTGBM_SERVER   trees::LgbRuntime           (model.txt | model.bst)
//!                                       MLFLOW_SERVER     mlflow::open                (MLmodel → flavor → one of the above)
//!                                       TENSORFLOW_SERVER tensorflow::open            (model.onnx from tf2onnx)
//!  python-fallback.json in an SKLEARN_SERVER dir ──► fallback: exec seldon-core-microservice SKLearnServer
//!  an MLmodel only mlflow.pyfunc runs (MLFLOW_SERVER) ──► exec seldon-core-microservice seldon_mesh_wrapper.mlflow_server.MLFlowServer
//! ```

use std::path::{Path, PathBuf};

use seldon_serving::ModelError;
use seldon_serving::catalogue::{Catalogue, LoadContext};

pub mod fallback;
pub mod mlflow;
pub mod tensorflow;
pub mod trees;

/// Implementation keys (Seldon's names).
pub const SKLEARN_SERVER: &str = "SKLEARN_SERVER";
pub const XGBOOST_SERVER: &str = "XGBOOST_SERVER";
pub const LIGHTGBM_SERVER: &str = "LIGHTGBM_SERVER";
pub const MLFLOW_SERVER: &str = "MLFLOW_SERVER";
pub const TENSORFLOW_SERVER: &str = "TENSORFLOW_SERVER";

/// Why a runtime could not be set up from a model directory.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "model_uri `{0}` is not a local path: the model initializer copies remote URIs to /mnt/models first"
    )]
    RemoteUri(String),
    #[error("{dir} holds none of {tried}")]
    NoModelFile { dir: PathBuf, tried: String },
    #[error("XGBoost model {path}: {source}")]
    Xgboost {
        path: PathBuf,
        #[source]
        source: seldon_xgboost::XgbError,
    },
    #[error("LightGBM model {path}: {source}")]
    Lightgbm {
        path: PathBuf,
        #[source]
        source: seldon_lightgbm::LgbError,
    },
    #[error(transparent)]
    Onnx(#[from] seldon_onnx::OnnxError),
    #[error("{path}: {reason}")]
    MlModel { path: PathBuf, reason: String },
    #[error(
        "MLflow model {path} has no flavor this server runs natively (it has: {flavors}); \
         supported: onnx, xgboost, lightgbm, sklearn (converted to ONNX at fetch time)"
    )]
    UnsupportedFlavor { path: PathBuf, flavors: String },
    #[error(
        "{dir} holds a TensorFlow SavedModel but no model.onnx: TENSORFLOW_SERVER serves TensorFlow \
         models through ONNX Runtime; convert at fetch time with \
         `python -m tf2onnx.convert --saved-model {saved_model} --output {dir}/model.onnx --opset 17`"
    )]
    SavedModelNotConverted { dir: PathBuf, saved_model: PathBuf },
    #[error("parameter `{name}`: {reason}")]
    Parameter { name: String, reason: String },
}

impl From<RuntimeError> for ModelError {
    fn from(e: RuntimeError) -> Self {
        ModelError::Load(e.to_string())
    }
}

/// The local directory (or file) a `model_uri` names: a path or `file://` URI.
pub fn local_path(model_uri: &str) -> Result<PathBuf, RuntimeError> {
    if let Some(p) = model_uri.strip_prefix("file://") {
        return Ok(PathBuf::from(p));
    }
    if model_uri.contains("://") || model_uri.starts_with("pvc:") {
        return Err(RuntimeError::RemoteUri(model_uri.to_string()));
    }
    Ok(PathBuf::from(model_uri))
}

/// `path` itself when it is a file, else the first of `names` inside the directory.
pub fn find_file(path: &Path, names: &[&str]) -> Result<PathBuf, RuntimeError> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    names
        .iter()
        .map(|n| path.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| RuntimeError::NoModelFile {
            dir: path.to_path_buf(),
            tried: names.join(", "),
        })
}

fn onnx_config() -> Result<seldon_onnx::RuntimeConfig, RuntimeError> {
    Ok(seldon_onnx::RuntimeConfig::from_env()?)
}

fn sklearn(ctx: &LoadContext) -> Result<Box<dyn seldon_serving::model::Model>, ModelError> {
    let dir = local_path(&ctx.model_uri)?;
    let server = seldon_onnx::SklearnServer::new(dir, &ctx.parameters, onnx_config()?)
        .map_err(RuntimeError::from)?;
    Ok(Box::new(server))
}

/// Every prepackaged runtime, plus the serving crate's built-ins (`SUM_MODEL`, `IDENTITY_MODEL`).
pub fn catalogue() -> Catalogue {
    Catalogue::builtin()
        .with(SKLEARN_SERVER, sklearn)
        .with(XGBOOST_SERVER, |ctx| {
            Ok(Box::new(trees::XgbRuntime::open(
                &local_path(&ctx.model_uri)?,
                &ctx.parameters,
            )?))
        })
        .with(LIGHTGBM_SERVER, |ctx| {
            Ok(Box::new(trees::LgbRuntime::open(&local_path(
                &ctx.model_uri,
            )?)?))
        })
        .with(MLFLOW_SERVER, |ctx| {
            Ok(mlflow::open(
                &local_path(&ctx.model_uri)?,
                &ctx.parameters,
                onnx_config()?,
            )?)
        })
        .with(TENSORFLOW_SERVER, |ctx| {
            Ok(Box::new(tensorflow::open(
                &local_path(&ctx.model_uri)?,
                &ctx.parameters,
                onnx_config()?,
            )?))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_and_remote_uris() {
        assert_eq!(
            local_path("/mnt/models").unwrap(),
            PathBuf::from("/mnt/models")
        );
        assert_eq!(
            local_path("file:///tmp/m").unwrap(),
            PathBuf::from("/tmp/m")
        );
        let e = local_path("gs://seldon-models/sklearn/iris").unwrap_err();
        assert!(
            e.to_string()
                .contains("model initializer copies remote URIs")
        );
        assert!(local_path("pvc://claim/path").is_err());
    }

    #[test]
    fn find_file_lists_what_it_tried() {
        let d = tempfile::tempdir().unwrap();
        let e = find_file(d.path(), &["model.json", "model.ubj"]).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("holds none of model.json, model.ubj"),
            "{e}"
        );
        std::fs::write(d.path().join("model.ubj"), b"x").unwrap();
        assert_eq!(
            find_file(d.path(), &["model.json", "model.ubj"]).unwrap(),
            d.path().join("model.ubj")
        );
        let f = d.path().join("model.ubj");
        assert_eq!(find_file(&f, &["other"]).unwrap(), f);
    }

    #[test]
    fn catalogue_knows_every_key() {
        let c = catalogue();
        let ctx = LoadContext {
            model_uri: "/nonexistent".into(),
            ..LoadContext::default()
        };
        for key in [
            SKLEARN_SERVER,
            XGBOOST_SERVER,
            LIGHTGBM_SERVER,
            MLFLOW_SERVER,
            TENSORFLOW_SERVER,
        ] {
            let err = c.create(key, &ctx).err().unwrap().to_string();
            assert!(!err.contains("unknown implementation"), "{key}: {err}");
            assert!(err.contains("/nonexistent"), "{key}: {err}");
        }
    }
}
