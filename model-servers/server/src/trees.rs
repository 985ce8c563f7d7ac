//! XGBOOST_SERVER and LIGHTGBM_SERVER: `Model` adapters over the pure tree evaluators.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use seldon_lightgbm::LgbModel;
use seldon_protocol::v1::MessageMetadata;
use seldon_serving::model::Model;
use seldon_serving::{
    ModelError, ModelMetadata, Output, Payload, Request, Tensor, Values, async_trait,
};
use serde_json::Value;

use crate::{RuntimeError, find_file};

/// XGBoost file names, in the order they are looked for (`model.bst` is Seldon's name;
/// xgboost ≥ 2 writes UBJSON there, the pre-1.0 binary format is refused with a hint).
pub const XGBOOST_FILES: &[&str] = &["model.json", "model.ubj", "model.bst"];
/// LightGBM text model names (`model.bst` is MLServer's name for the same text format).
pub const LIGHTGBM_FILES: &[&str] = &["model.txt", "model.bst"];

/// What the tree models do with their scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output1 {
    /// `Booster.predict`: probabilities / values (Seldon XGBOOST_SERVER).
    Scores,
    /// A scikit-learn wrapper's `predict` (MLflow pyfunc of `XGBClassifier`/`LGBMClassifier`):
    /// class index (binary: score > 0.5; multiclass: argmax).
    Labels,
}

pub(crate) fn metadata(
    platform: &str,
    datatype: &str,
    features: usize,
    outputs: usize,
    labels: bool,
) -> ModelMetadata {
    let md = |name: &str, shape: Vec<i64>| MessageMetadata {
        messagetype: None,
        schema: None,
        name: Some(name.into()),
        datatype: Some(datatype.into()),
        shape: Some(shape),
        extra: BTreeMap::default(),
    };
    #[allow(clippy::cast_possible_wrap)]
    let out_shape = if outputs == 1 || labels {
        vec![-1]
    } else {
        vec![-1, outputs as i64]
    };
    ModelMetadata {
        platform: platform.into(),
        #[allow(clippy::cast_possible_wrap)]
        inputs: vec![md("input", vec![-1, features as i64])],
        outputs: vec![md("predict", out_shape)],
        ..ModelMetadata::default()
    }
}

/// `n × k` scores → the reply tensor: `[n]` when `k == 1` (as `Booster.predict`), else `[n, k]`.
fn shaped<T>(
    n: usize,
    k: usize,
    scores: Vec<T>,
    wrap: fn(Vec<T>) -> Values,
) -> Result<Tensor, ModelError> {
    let shape = if k == 1 { vec![n] } else { vec![n, k] };
    Ok(Tensor::new(shape, wrap(scores))?.with_name("predict"))
}

fn labels(n: usize, k: usize, scores: &[f64]) -> Result<Tensor, ModelError> {
    #[allow(clippy::cast_precision_loss)]
    let v: Vec<f64> = if k == 1 {
        scores
            .iter()
            .map(|p| if *p > 0.5 { 1.0 } else { 0.0 })
            .collect()
    } else {
        scores
            .chunks(k)
            .map(|row| {
                let mut best = 0;
                for (i, x) in row.iter().enumerate() {
                    if *x > row[best] {
                        best = i;
                    }
                }
                best as f64
            })
            .collect()
    };
    Ok(Tensor::new(vec![n], Values::F64(v))?.with_name("predict"))
}

/// XGBOOST_SERVER: `Booster.predict(DMatrix(X))` natively.
#[derive(Debug)]
pub struct XgbRuntime {
    model: seldon_xgboost::XgbModel,
    path: PathBuf,
    output: Output1,
}

impl XgbRuntime {
    /// Loads the first of [`XGBOOST_FILES`] in `dir` (or `dir` itself when a file).
    /// Parameter `missing` (number): a value treated as missing besides NaN.
    pub fn open(dir: &Path, parameters: &BTreeMap<String, Value>) -> Result<Self, RuntimeError> {
        let path = find_file(dir, XGBOOST_FILES)?;
        Self::from_file(&path, parameters, Output1::Scores, false)
    }

    /// A model file with an explicit output kind; `best_iteration` truncates to the
    /// early-stopping optimum (what the scikit-learn wrapper does).
    pub fn from_file(
        path: &Path,
        parameters: &BTreeMap<String, Value>,
        output: Output1,
        best_iteration: bool,
    ) -> Result<Self, RuntimeError> {
        let err = |source| RuntimeError::Xgboost {
            path: path.to_path_buf(),
            source,
        };
        let mut model = seldon_xgboost::XgbModel::load(path).map_err(err)?;
        if let Some(m) = parameters.get("missing") {
            let v = m.as_f64().ok_or_else(|| RuntimeError::Parameter {
                name: "missing".into(),
                reason: format!("{m} is not a number"),
            })?;
            #[allow(clippy::cast_possible_truncation)]
            let missing = v as f32;
            model = model.with_missing(missing);
        }
        if best_iteration && let Some(best) = model.best_iteration() {
            model = model.with_iteration_limit(best + 1).map_err(err)?;
        }
        tracing::info!(path = %path.display(), objective = model.objective(), features = model.num_features(), "XGBoost model loaded");
        Ok(XgbRuntime {
            model,
            path: path.to_path_buf(),
            output,
        })
    }
}

#[async_trait]
impl Model for XgbRuntime {
    async fn predict(&self, request: Request) -> Result<Output<Payload>, ModelError> {
        let t = request.payload.tensor()?;
        t.expect_cols(self.model.num_features())?;
        let n = t.rows();
        let scores = self
            .model
            .predict(&t.as_f32()?, n)
            .map_err(|e| ModelError::bad_data(format!("{}: {e}", self.path.display())))?;
        let k = self.model.num_outputs();
        let out = match self.output {
            Output1::Scores => shaped(n, k, scores, Values::F32)?,
            Output1::Labels => labels(
                n,
                k,
                &scores.iter().map(|x| f64::from(*x)).collect::<Vec<_>>(),
            )?,
        };
        Ok(Output::new(Payload::Tensor(out)))
    }

    fn metadata(&self) -> ModelMetadata {
        let labels = self.output == Output1::Labels;
        let mut md = metadata(
            "xgboost",
            if labels { "FP64" } else { "FP32" },
            self.model.num_features(),
            self.model.num_outputs(),
            labels,
        );
        md.custom
            .insert("objective".into(), self.model.objective().into());
        md
    }
}

/// LIGHTGBM_SERVER: `Booster.predict(X)` natively.
#[derive(Debug)]
pub struct LgbRuntime {
    model: LgbModel,
    path: PathBuf,
    output: Output1,
}

impl LgbRuntime {
    /// Loads the first of [`LIGHTGBM_FILES`] in `dir` (or `dir` itself when a file).
    pub fn open(dir: &Path) -> Result<Self, RuntimeError> {
        Self::from_file(&find_file(dir, LIGHTGBM_FILES)?, Output1::Scores)
    }

    /// A model file with an explicit output kind.
    pub fn from_file(path: &Path, output: Output1) -> Result<Self, RuntimeError> {
        let model = LgbModel::load(path).map_err(|source| RuntimeError::Lightgbm {
            path: path.to_path_buf(),
            source,
        })?;
        tracing::info!(path = %path.display(), objective = model.objective(), features = model.num_features(), "LightGBM model loaded");
        Ok(LgbRuntime {
            model,
            path: path.to_path_buf(),
            output,
        })
    }
}

#[async_trait]
impl Model for LgbRuntime {
    async fn predict(&self, request: Request) -> Result<Output<Payload>, ModelError> {
        let t = request.payload.tensor()?;
        t.expect_cols(self.model.num_features())?;
        let n = t.rows();
        let scores = self
            .model
            .predict(&t.as_f64()?, n)
            .map_err(|e| ModelError::bad_data(format!("{}: {e}", self.path.display())))?;
        let k = self.model.num_outputs();
        let out = match self.output {
            Output1::Scores => shaped(n, k, scores, Values::F64)?,
            Output1::Labels => labels(n, k, &scores)?,
        };
        Ok(Output::new(Payload::Tensor(out)))
    }

    fn metadata(&self) -> ModelMetadata {
        let mut md = metadata(
            "lightgbm",
            "FP64",
            self.model.num_features(),
            self.model.num_outputs(),
            self.output == Output1::Labels,
        );
        md.custom
            .insert("objective".into(), self.model.objective().into());
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_threshold_binary_and_argmax_multiclass() {
        let t = labels(3, 1, &[0.2, 0.5, 0.9]).unwrap();
        assert_eq!(t.values, Values::F64(vec![0.0, 0.0, 1.0]));
        let t = labels(2, 3, &[0.1, 0.7, 0.2, 0.4, 0.4, 0.2]).unwrap();
        assert_eq!(
            t.values,
            Values::F64(vec![1.0, 0.0]),
            "ties take the first class, as numpy argmax"
        );
    }

    #[test]
    fn shaped_is_1d_for_one_output() {
        assert_eq!(
            shaped(2, 1, vec![0.1f32, 0.2], Values::F32).unwrap().shape,
            vec![2]
        );
        assert_eq!(
            shaped(1, 2, vec![0.1f32, 0.2], Values::F32).unwrap().shape,
            vec![1, 2]
        );
        assert!(shaped(1, 3, vec![0.1f32, 0.2], Values::F32).is_err());
    }
}
