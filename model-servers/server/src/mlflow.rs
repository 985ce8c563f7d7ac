//! MLFLOW_SERVER: an MLflow model directory (`MLmodel`) served through the first flavor we
//! run natively; the signature becomes the model metadata.

use std::collections::BTreeMap;
use std::path::Path;

use seldon_onnx::{OnnxServer, RuntimeConfig, SklearnServer};
use seldon_protocol::v1::MessageMetadata;
use seldon_serving::model::Model;
use seldon_serving::{ModelError, ModelMetadata, Output, Payload, Request, async_trait};
use serde::Deserialize;
use serde_json::Value;

use crate::RuntimeError;
use crate::trees::{LgbRuntime, Output1, XgbRuntime};

/// Flavors in the order they are preferred when a model has several.
pub const NATIVE_FLAVORS: &[&str] = &["onnx", "xgboost", "lightgbm", "sklearn"];

/// The parts of `MLmodel` this server reads.
#[derive(Debug, Clone, Deserialize)]
pub struct MlModel {
    pub flavors: BTreeMap<String, serde_yaml::Value>,
    #[serde(default)]
    pub signature: Option<Signature>,
    #[serde(default)]
    pub mlflow_version: Option<String>,
}

/// `signature`: JSON strings inside the YAML.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Signature {
    #[serde(default)]
    pub inputs: Option<String>,
    #[serde(default)]
    pub outputs: Option<String>,
}

/// Reads `<dir>/MLmodel`.
pub fn read_mlmodel(dir: &Path) -> Result<MlModel, RuntimeError> {
    let path = dir.join("MLmodel");
    let bad = |reason: String| RuntimeError::MlModel {
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| bad(format!("cannot read the MLmodel file: {e}")))?;
    serde_yaml::from_str(&text).map_err(|e| bad(format!("not a valid MLmodel file: {e}")))
}

/// Why `dir` is served by the Python wrapper (`mlflow.pyfunc`) instead of natively: its
/// `MLmodel` has a `python_function` flavor and no flavor this server runs, or only a
/// `sklearn` flavor without its ONNX twin (`model.onnx`). `None` when it is served natively or
/// cannot be read (`open` then says why).
pub fn python_reason(dir: &Path) -> Option<String> {
    let mlmodel = read_mlmodel(dir).ok()?;
    if !mlmodel.flavors.contains_key("python_function") {
        return None;
    }
    let flavors = mlmodel
        .flavors
        .keys()
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    match NATIVE_FLAVORS
        .iter()
        .find(|f| mlmodel.flavors.contains_key(**f))
    {
        None => Some(format!("no flavor served natively (it has: {flavors})")),
        Some(&"sklearn")
            if !dir.join("model.onnx").is_file()
                && !dir.join(seldon_onnx::sklearn::FALLBACK_MARKER).is_file() =>
        {
            Some("its sklearn flavor has no ONNX twin (model.onnx)".into())
        }
        Some(_) => None,
    }
}

/// MLflow column / numpy dtypes → Open Inference Protocol datatypes (MLflow has no
/// standard for this; `double`→FP64, `long`→INT64, strings/binary/datetime → BYTES).
pub fn datatype(mlflow_type: &str) -> &'static str {
    match mlflow_type {
        "double" | "float64" => "FP64",
        "float" | "float32" => "FP32",
        "float16" => "FP16",
        "long" | "int64" => "INT64",
        "integer" | "int32" => "INT32",
        "int16" => "INT16",
        "int8" => "INT8",
        "uint8" => "UINT8",
        "uint16" => "UINT16",
        "uint32" => "UINT32",
        "uint64" => "UINT64",
        "boolean" | "bool" => "BOOL",
        _ => "BYTES",
    }
}

/// One side of a signature as metadata entries: a tensor spec is one entry with its dtype
/// and shape; a column is a 1-D entry named after it.
pub fn signature_entries(json: &str, side: &str) -> Result<Vec<MessageMetadata>, String> {
    let list: Vec<Value> = serde_json::from_str(json)
        .map_err(|e| format!("signature {side} is not a JSON list: {e}"))?;
    list.iter()
        .enumerate()
        .map(|(i, v)| {
            let name = v
                .get("name")
                .and_then(Value::as_str)
                .map_or_else(|| format!("{side}-{i}"), str::to_string);
            let kind = v
                .get("type")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("signature {side}[{i}] has no type"))?;
            let (dt, shape) = if kind == "tensor" {
                let spec = v
                    .get("tensor-spec")
                    .ok_or_else(|| format!("signature {side}[{i}] has no tensor-spec"))?;
                let dtype = spec
                    .get("dtype")
                    .and_then(Value::as_str)
                    .unwrap_or("object");
                let shape = spec
                    .get("shape")
                    .and_then(Value::as_array)
                    .map(|s| s.iter().filter_map(Value::as_i64).collect())
                    .unwrap_or_default();
                (datatype(dtype), shape)
            } else {
                (datatype(kind), vec![-1])
            };
            Ok(MessageMetadata {
                messagetype: None,
                schema: None,
                name: Some(name),
                datatype: Some(dt.into()),
                shape: Some(shape),
                extra: BTreeMap::default(),
            })
        })
        .collect()
}

/// An MLflow model: the flavor's runtime with the signature as metadata.
pub struct MlflowModel {
    inner: Box<dyn Model>,
    flavor: String,
    signature: Option<(Vec<MessageMetadata>, Vec<MessageMetadata>)>,
}

impl std::fmt::Debug for MlflowModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlflowModel")
            .field("flavor", &self.flavor)
            .finish_non_exhaustive()
    }
}

fn string(flavor: &serde_yaml::Value, key: &str) -> Option<String> {
    flavor
        .get(key)
        .and_then(serde_yaml::Value::as_str)
        .map(str::to_string)
}

/// Opens `dir` as an MLflow model. Flavor data files: onnx `data` (default `model.onnx`);
/// xgboost `data` + `model_class` (a scikit-learn wrapper class predicts labels, as MLflow's
/// pyfunc does; a `Booster` predicts scores); lightgbm likewise; sklearn needs the ONNX twin
/// written by `convert_sklearn.py <dir> --source <pickled_model>` at fetch time (pyfunc's
/// default method is `predict`; parameter `method` overrides).
pub fn open(
    dir: &Path,
    parameters: &BTreeMap<String, Value>,
    onnx: RuntimeConfig,
) -> Result<Box<dyn Model>, RuntimeError> {
    let mlmodel = read_mlmodel(dir)?;
    let path = dir.join("MLmodel");
    let signature = match &mlmodel.signature {
        Some(s) => {
            let side = |j: &Option<String>, name| {
                j.as_deref()
                    .map(|j| signature_entries(j, name))
                    .transpose()
                    .map(Option::unwrap_or_default)
                    .map_err(|reason| RuntimeError::MlModel {
                        path: path.clone(),
                        reason,
                    })
            };
            Some((side(&s.inputs, "inputs")?, side(&s.outputs, "outputs")?))
        }
        None => None,
    };
    let flavor = NATIVE_FLAVORS
        .iter()
        .find(|f| mlmodel.flavors.contains_key(**f))
        .ok_or_else(|| RuntimeError::UnsupportedFlavor {
            path: path.clone(),
            flavors: mlmodel
                .flavors
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let spec = &mlmodel.flavors[*flavor];
    let data =
        |default: &str| dir.join(string(spec, "data").unwrap_or_else(|| default.to_string()));
    let is_wrapper = string(spec, "model_class").is_some_and(|c| c.contains("Classifier"));
    let inner: Box<dyn Model> = match *flavor {
        "onnx" => Box::new(OnnxServer::new(
            data("model.onnx"),
            parameters,
            onnx,
            "mlflow_onnx",
        )),
        "xgboost" => {
            let out = if is_wrapper {
                Output1::Labels
            } else {
                Output1::Scores
            };
            let sklearn_wrapper =
                string(spec, "model_class").is_some_and(|c| c.starts_with("xgboost.sklearn"));
            Box::new(XgbRuntime::from_file(
                &data("model.xgb"),
                parameters,
                out,
                sklearn_wrapper,
            )?)
        }
        "lightgbm" => {
            let out = if is_wrapper {
                Output1::Labels
            } else {
                Output1::Scores
            };
            Box::new(LgbRuntime::from_file(&data("model.lgb"), out)?)
        }
        _ => {
            let mut p = parameters.clone();
            p.entry("method".into())
                .or_insert_with(|| Value::from("predict"));
            if !dir.join("model.onnx").is_file()
                && !dir.join(seldon_onnx::sklearn::FALLBACK_MARKER).is_file()
            {
                let pickled = string(spec, "pickled_model").unwrap_or_else(|| "model.pkl".into());
                return Err(RuntimeError::MlModel {
                    path,
                    reason: format!(
                        "the sklearn flavor needs its ONNX twin: run `python convert_sklearn.py {} --source {pickled}` \
                         at fetch time (skops-serialized models cannot be converted; log them with \
                         serialization_format=cloudpickle or pickle)",
                        dir.display()
                    ),
                });
            }
            Box::new(SklearnServer::new(dir, &p, onnx)?)
        }
    };
    tracing::info!(
        flavor = *flavor,
        mlflow_version = mlmodel.mlflow_version.as_deref().unwrap_or("?"),
        "MLflow model"
    );
    Ok(Box::new(MlflowModel {
        inner,
        flavor: (*flavor).to_string(),
        signature,
    }))
}

#[async_trait]
impl Model for MlflowModel {
    async fn load(&mut self) -> Result<(), ModelError> {
        self.inner.load().await
    }

    async fn predict(&self, request: Request) -> Result<Output<Payload>, ModelError> {
        self.inner.predict(request).await
    }

    fn metadata(&self) -> ModelMetadata {
        let mut md = self.inner.metadata();
        md.platform = format!("mlflow_{}", self.flavor);
        if let Some((inputs, outputs)) = &self.signature {
            md.inputs.clone_from(inputs);
            if !outputs.is_empty() {
                md.outputs.clone_from(outputs);
            }
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_and_column_signatures() {
        let t = signature_entries(
            r#"[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}]"#,
            "inputs",
        )
        .unwrap();
        assert_eq!(t[0].name.as_deref(), Some("inputs-0"));
        assert_eq!(t[0].datatype.as_deref(), Some("FP32"));
        assert_eq!(t[0].shape, Some(vec![-1, 4]));
        let c = signature_entries(r#"[{"type": "double", "name": "sepal length (cm)", "required": true}, {"type": "long", "name": "n"}]"#, "inputs").unwrap();
        assert_eq!(c[0].name.as_deref(), Some("sepal length (cm)"));
        assert_eq!(c[0].datatype.as_deref(), Some("FP64"));
        assert_eq!(c[1].datatype.as_deref(), Some("INT64"));
        assert_eq!(c[1].shape, Some(vec![-1]));
        assert!(
            signature_entries("{", "inputs")
                .unwrap_err()
                .contains("not a JSON list")
        );
        assert!(
            signature_entries(r#"[{"name": "x"}]"#, "inputs")
                .unwrap_err()
                .contains("has no type")
        );
    }

    #[test]
    fn python_function_models_go_to_the_python_wrapper() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(python_reason(d.path()), None, "no MLmodel: open says why");
        let write = |text: &str| std::fs::write(d.path().join("MLmodel"), text).unwrap();
        write("flavors:\n  python_function: {loader_module: mlflow.pyfunc.model}\n");
        assert_eq!(
            python_reason(d.path()).as_deref(),
            Some("no flavor served natively (it has: python_function)")
        );
        write(
            "flavors:\n  python_function: {loader_module: mlflow.sklearn}\n  sklearn: {pickled_model: model.pkl}\n",
        );
        assert!(python_reason(d.path()).unwrap().contains("no ONNX twin"));
        std::fs::write(d.path().join("model.onnx"), b"").unwrap();
        assert_eq!(python_reason(d.path()), None);
        write("flavors:\n  onnx: {data: model.onnx}\n");
        assert_eq!(
            python_reason(d.path()),
            None,
            "no python_function: native only"
        );
    }

    #[test]
    fn unsupported_flavor_is_named() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("MLmodel"),
            "flavors:\n  python_function: {loader_module: mlflow.pytorch}\n  pytorch: {pytorch_version: 2.9.0}\n",
        )
        .unwrap();
        let err = open(d.path(), &BTreeMap::new(), RuntimeConfig::default())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("(it has: python_function, pytorch)"), "{err}");
        assert!(
            err.contains("supported: onnx, xgboost, lightgbm, sklearn"),
            "{err}"
        );
    }

    #[test]
    fn missing_or_broken_mlmodel() {
        let d = tempfile::tempdir().unwrap();
        let err = open(d.path(), &BTreeMap::new(), RuntimeConfig::default())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("MLmodel: cannot read the MLmodel file"),
            "{err}"
        );
        std::fs::write(d.path().join("MLmodel"), "flavors: [").unwrap();
        let err = open(d.path(), &BTreeMap::new(), RuntimeConfig::default())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not a valid MLmodel file"), "{err}");
    }

    #[test]
    fn sklearn_flavor_without_conversion_names_the_step() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("MLmodel"),
            "flavors:\n  sklearn: {pickled_model: model.pkl, serialization_format: cloudpickle}\n",
        )
        .unwrap();
        let err = open(d.path(), &BTreeMap::new(), RuntimeConfig::default())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("convert_sklearn.py") && err.contains("--source model.pkl"),
            "{err}"
        );
    }
}
