//! SKLEARN_SERVER: a converted `model.joblib` (see `python/convert_sklearn.py`) served from
//! ONNX, with Seldon's `method` parameter picking the graph output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use seldon_serving::{
    ModelError, ModelMetadata, Output, Payload, Request, Tensor, Values, async_trait, model::Model,
};
use serde::Deserialize;
use serde_json::Value;

use crate::error::OnnxError;
use crate::runtime::RuntimeConfig;
use crate::session::{ElemType, OnnxSession};

/// Written by `convert_sklearn.py` when the estimator must stay in Python.
pub const FALLBACK_MARKER: &str = "python-fallback.json";
/// Written by `convert_sklearn.py` next to `model.onnx`.
pub const CONVERSION_RECORD: &str = "conversion.json";

/// Seldon SKLearnServer's `method` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    PredictProba,
    Predict,
    DecisionFunction,
}

impl Method {
    /// Parses the parameter value (default `predict_proba`, as Seldon's server).
    pub fn parse(s: &str) -> Result<Self, OnnxError> {
        match s {
            "predict_proba" => Ok(Method::PredictProba),
            "predict" => Ok(Method::Predict),
            "decision_function" => Ok(Method::DecisionFunction),
            other => Err(OnnxError::UnknownMethod(other.to_string())),
        }
    }

    /// The sklearn method name (also the v2 output name).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::PredictProba => "predict_proba",
            Method::Predict => "predict",
            Method::DecisionFunction => "decision_function",
        }
    }

    /// From the unit's parameters (`method`, string).
    pub fn from_parameters(p: &BTreeMap<String, Value>) -> Result<Self, OnnxError> {
        match p.get("method") {
            None => Ok(Method::PredictProba),
            Some(Value::String(s)) => Method::parse(s),
            Some(other) => Err(OnnxError::UnknownMethod(other.to_string())),
        }
    }
}

/// Where one sklearn method's result is in the converted graphs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MethodOutput {
    /// Graph file in the model directory.
    pub file: String,
    /// Output name in that graph.
    pub output: String,
    /// Take this column of a 2-D output (binary `decision_function`).
    #[serde(default)]
    pub column: Option<usize>,
    /// `predict` = the class of the first probability within this of the row maximum
    /// (sklearn's argmax; ONNX tree ensembles break ties differently).
    #[serde(default)]
    pub argmax_tie: Option<f64>,
}

/// `conversion.json`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Conversion {
    pub estimator: String,
    pub kind: String,
    pub n_features: usize,
    #[serde(default)]
    pub classes: Option<Vec<Value>>,
    pub methods: BTreeMap<String, MethodOutput>,
    #[serde(default)]
    pub unavailable: BTreeMap<String, String>,
    #[serde(default)]
    pub versions: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct Fallback {
    #[serde(default)]
    estimator: String,
    #[serde(default)]
    reason: String,
}

fn read(path: &Path) -> Result<String, OnnxError> {
    std::fs::read_to_string(path).map_err(|source| OnnxError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// What a SKLEARN_SERVER model directory holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Artifact {
    /// `model.onnx` + `conversion.json`.
    Converted(Conversion),
    /// `model.onnx` without a record (the user exported it): `probabilities`/`label` by name.
    OnnxOnly,
}

/// Inspects `dir`: the conversion record, a bare `model.onnx`, or why neither works
/// (`OnnxError::PythonFallback` when the converter left the fallback marker).
pub fn inspect(dir: &Path) -> Result<Artifact, OnnxError> {
    let marker = dir.join(FALLBACK_MARKER);
    if marker.is_file() {
        let f: Fallback =
            serde_json::from_str(&read(&marker)?).map_err(|source| OnnxError::Conversion {
                path: marker.clone(),
                source,
            })?;
        return Err(OnnxError::PythonFallback {
            estimator: f.estimator,
            reason: f.reason,
        });
    }
    let record = dir.join(CONVERSION_RECORD);
    if record.is_file() {
        let c: Conversion =
            serde_json::from_str(&read(&record)?).map_err(|source| OnnxError::Conversion {
                path: record.clone(),
                source,
            })?;
        return Ok(Artifact::Converted(c));
    }
    if dir.join("model.onnx").is_file() {
        return Ok(Artifact::OnnxOnly);
    }
    if dir.join("model.joblib").is_file() {
        return Err(OnnxError::NotConverted {
            dir: dir.to_path_buf(),
        });
    }
    Err(OnnxError::NoModel {
        dir: dir.to_path_buf(),
    })
}

#[derive(Debug)]
struct Selected {
    session: Arc<OnnxSession>,
    output: usize,
    out: MethodOutput,
}

/// Seldon's SKLEARN_SERVER on the ONNX twin of `model.joblib`.
#[derive(Debug)]
pub struct SklearnServer {
    dir: PathBuf,
    method: Method,
    artifact: Artifact,
    config: RuntimeConfig,
    selected: Option<Selected>,
}

impl SklearnServer {
    /// Checks the directory and the `method` parameter; [`Model::load`] opens the graph.
    pub fn new(
        dir: impl Into<PathBuf>,
        parameters: &BTreeMap<String, Value>,
        config: RuntimeConfig,
    ) -> Result<Self, OnnxError> {
        let dir = dir.into();
        let method = Method::from_parameters(parameters)?;
        let artifact = inspect(&dir)?;
        if let Artifact::Converted(c) = &artifact
            && !c.methods.contains_key(method.as_str())
        {
            let reason = c
                .unavailable
                .get(method.as_str())
                .cloned()
                .unwrap_or_else(|| {
                    format!("{} ({}) has no {}", c.estimator, c.kind, method.as_str())
                });
            return Err(OnnxError::MethodUnavailable {
                method: method.as_str().into(),
                reason,
            });
        }
        Ok(SklearnServer {
            dir,
            method,
            artifact,
            config,
            selected: None,
        })
    }

    /// Opens the graph for the configured method (what [`Model::load`] does).
    pub fn open(&mut self) -> Result<(), OnnxError> {
        let out = match &self.artifact {
            Artifact::Converted(c) => c.methods[self.method.as_str()].clone(),
            Artifact::OnnxOnly => {
                let output = match self.method {
                    Method::PredictProba => "probabilities",
                    Method::Predict => "label",
                    Method::DecisionFunction => {
                        return Err(OnnxError::MethodUnavailable {
                            method: "decision_function".into(),
                            reason: "a bare model.onnx has no raw scores (convert model.joblib with convert_sklearn.py)".into(),
                        });
                    }
                };
                MethodOutput {
                    file: "model.onnx".into(),
                    output: output.into(),
                    column: None,
                    argmax_tie: None,
                }
            }
        };
        let session = Arc::new(OnnxSession::load(&self.dir.join(&out.file), &self.config)?);
        let output = session
            .output_index(&out.output)
            .ok_or_else(|| OnnxError::NoSuchOutput(out.output.clone()))?;
        tracing::info!(dir = %self.dir.display(), method = self.method.as_str(), output = %out.output, "SKLEARN_SERVER model loaded");
        self.selected = Some(Selected {
            session,
            output,
            out,
        });
        Ok(())
    }

    fn classes(&self) -> Option<&[Value]> {
        match &self.artifact {
            Artifact::Converted(c) => c.classes.as_deref(),
            Artifact::OnnxOnly => None,
        }
    }

    /// The prediction for one input tensor (also what `predict` calls).
    pub fn predict_tensor(&self, input: &Tensor) -> Result<Tensor, ModelError> {
        let sel = self
            .selected
            .as_ref()
            .ok_or_else(|| ModelError::internal("model not loaded"))?;
        let values = sel.session.prepare(&[input])?;
        let out = sel.session.run(values, &[sel.output])?;
        self.finish(out)
    }

    fn finish(&self, mut out: Vec<Tensor>) -> Result<Tensor, ModelError> {
        let sel = self
            .selected
            .as_ref()
            .ok_or_else(|| ModelError::internal("model not loaded"))?;
        let t = out.pop().ok_or_else(|| ModelError::internal("no output"))?;
        let t = if let Some(tie) = sel.out.argmax_tie {
            argmax(&t, tie, self.classes())?
        } else if let Some(col) = sel.out.column {
            column(&t, col)?
        } else {
            t
        };
        // skl2onnx regressors emit [n, 1]; sklearn's predict returns [n]
        let t = if self.method == Method::Predict && t.shape.len() == 2 && t.shape[1] == 1 {
            Tensor::new(vec![t.shape[0]], t.values)?
        } else {
            t
        };
        Ok(t.with_name(self.method.as_str()))
    }
}

/// Row-wise class of the first value within `tie` of the row maximum.
fn argmax(t: &Tensor, tie: f64, classes: Option<&[Value]>) -> Result<Tensor, ModelError> {
    let v = t.as_f64()?;
    let cols = t.cols().max(1);
    let labels: Vec<f64> = v
        .chunks(cols)
        .map(|row| {
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let k = row.iter().position(|x| *x >= max - tie).unwrap_or(0);
            match classes.and_then(|c| c.get(k)).and_then(Value::as_f64) {
                Some(c) => c,
                #[allow(clippy::cast_precision_loss)]
                None => k as f64,
            }
        })
        .collect();
    Tensor::new(vec![labels.len()], Values::F64(labels))
}

fn column(t: &Tensor, col: usize) -> Result<Tensor, ModelError> {
    let cols = t.cols().max(1);
    let v = t.as_f64()?;
    let picked: Vec<f64> = v.chunks(cols).filter_map(|r| r.get(col).copied()).collect();
    Tensor::new(vec![picked.len()], Values::F64(picked))
}

#[async_trait]
impl Model for SklearnServer {
    async fn load(&mut self) -> Result<(), ModelError> {
        Ok(self.open()?)
    }

    async fn predict(&self, request: Request) -> Result<Output<Payload>, ModelError> {
        let sel = self
            .selected
            .as_ref()
            .ok_or_else(|| ModelError::internal("model not loaded"))?;
        let input = request.payload.tensor()?;
        let values = sel.session.prepare(&[input])?;
        let out = sel
            .session
            .run_async(values, vec![sel.output], input.values.len())
            .await?;
        Ok(Output::new(Payload::Tensor(self.finish(out)?)))
    }

    fn metadata(&self) -> ModelMetadata {
        let mut md = ModelMetadata {
            platform: "sklearn_onnx".into(),
            ..ModelMetadata::default()
        };
        if let Some(sel) = &self.selected {
            md.inputs = sel.session.inputs.iter().map(|s| s.metadata()).collect();
            let mut out = sel.session.outputs[sel.output].clone();
            out.name = self.method.as_str().into();
            if self.method == Method::Predict && out.shape.len() == 2 && out.shape[1] == 1 {
                out.shape = vec![-1];
            }
            if sel.out.argmax_tie.is_some() || sel.out.column.is_some() {
                out.shape = vec![-1];
                out.elem = ElemType::F64;
            } else if out.elem == ElemType::I64 || out.elem == ElemType::I32 {
                out.elem = ElemType::F64; // labels travel as doubles (the serving tensor type)
            }
            md.outputs = vec![out.metadata()];
        }
        if let Artifact::Converted(c) = &self.artifact {
            md.custom.insert("estimator".into(), c.estimator.clone());
            for (k, v) in &c.versions {
                md.custom.insert(format!("converted_with_{k}"), v.clone());
            }
        }
        md
    }
}

/// Any ONNX graph (MLflow `onnx` flavor, tf2onnx output): the payload feeds the graph's
/// input(s), the reply is one output — parameter `output`, else the first.
#[derive(Debug)]
pub struct OnnxServer {
    path: PathBuf,
    output_name: Option<String>,
    config: RuntimeConfig,
    platform: String,
    loaded: Option<(Arc<OnnxSession>, usize)>,
}

impl OnnxServer {
    /// A model for the graph at `path`; `platform` names it in metadata (`onnx_onnxv1`, ...).
    pub fn new(
        path: impl Into<PathBuf>,
        parameters: &BTreeMap<String, Value>,
        config: RuntimeConfig,
        platform: &str,
    ) -> Self {
        OnnxServer {
            path: path.into(),
            output_name: parameters
                .get("output")
                .and_then(Value::as_str)
                .map(str::to_string),
            config,
            platform: platform.into(),
            loaded: None,
        }
    }

    /// Opens the graph (what [`Model::load`] does).
    pub fn open(&mut self) -> Result<(), OnnxError> {
        let session = Arc::new(OnnxSession::load(&self.path, &self.config)?);
        let idx = match &self.output_name {
            Some(n) => session
                .output_index(n)
                .ok_or_else(|| OnnxError::NoSuchOutput(n.clone()))?,
            None => 0,
        };
        self.loaded = Some((session, idx));
        Ok(())
    }

    /// The loaded session (for callers that need the graph's inputs/outputs).
    pub fn session(&self) -> Option<&OnnxSession> {
        self.loaded.as_ref().map(|(s, _)| s.as_ref())
    }
}

#[async_trait]
impl Model for OnnxServer {
    async fn load(&mut self) -> Result<(), ModelError> {
        Ok(self.open()?)
    }

    async fn predict(&self, request: Request) -> Result<Output<Payload>, ModelError> {
        let (session, idx) = self
            .loaded
            .as_ref()
            .ok_or_else(|| ModelError::internal("model not loaded"))?;
        let tensors: Vec<&Tensor> = match &request.payload {
            Payload::Tensor(t) => vec![t],
            // several v2 inputs: matched to the graph inputs by name
            Payload::Tensors(ts) => session
                .inputs
                .iter()
                .map(|s| {
                    ts.iter().find(|t| t.name == s.name).ok_or_else(|| {
                        ModelError::bad_data(format!(
                            "input `{}` is missing from the request",
                            s.name
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
            other => {
                return Err(ModelError::bad_data(format!(
                    "expected tensor input, got {}",
                    other.kind()
                )));
            }
        };
        let elements = tensors.iter().map(|t| t.values.len()).sum();
        let values = session.prepare(&tensors)?;
        let mut out = session.run_async(values, vec![*idx], elements).await?;
        let t = out.pop().ok_or_else(|| ModelError::internal("no output"))?;
        Ok(Output::new(Payload::Tensor(t)))
    }

    fn metadata(&self) -> ModelMetadata {
        let mut md = ModelMetadata {
            platform: self.platform.clone(),
            ..ModelMetadata::default()
        };
        if let Some((s, idx)) = &self.loaded {
            md.inputs = s.inputs.iter().map(|i| i.metadata()).collect();
            md.outputs = vec![s.outputs[*idx].metadata()];
        }
        md
    }
}
