//! Tiny built-in models: for tests, benchmarks of the server itself, and as examples.

use async_trait::async_trait;

use crate::error::ModelError;
use crate::model::{MetricType, Model, ModelMetadata, Output, Payload, Request, metric};
use crate::tensor::Tensor;

/// Sums each row: `[[1,2],[3,4]]` → `[[3],[7]]`. `expected_features` (0 = any) rejects
/// rows of the wrong width; a NaN input is a model failure (500), for tests.
#[derive(Debug, Clone, Default)]
pub struct SumModel {
    pub expected_features: usize,
}

#[async_trait]
impl Model for SumModel {
    async fn predict(&self, request: Request) -> Result<Output<Payload>, ModelError> {
        let t = request.payload.tensor()?;
        if self.expected_features > 0 {
            t.expect_cols(self.expected_features)?;
        }
        let values = t.as_f64()?;
        let cols = t.cols().max(1);
        let sums: Vec<f64> = values.chunks(cols).map(|row| row.iter().sum()).collect();
        if sums.iter().any(|s| s.is_nan()) {
            return Err(ModelError::internal("sum is NaN"));
        }
        let rows = sums.len();
        Ok(
            Output::new(Payload::Tensor(Tensor::matrix_f64(rows, 1, sums)?))
                .tag("model", "sum")
                .metric(metric("sum_rows", MetricType::Counter, rows as f32)),
        )
    }

    fn metadata(&self) -> ModelMetadata {
        serde_json::from_value(serde_json::json!({
            "platform": "seldon_builtin",
            "inputs": [{"name": "input", "datatype": "FP64", "shape": [-1, -1]}],
            "outputs": [{"name": "predict", "datatype": "FP64", "shape": [-1, 1]}],
        }))
        .unwrap_or_default()
    }

    fn class_names(&self) -> Option<Vec<String>> {
        Some(vec!["sum".into()])
    }
}

/// Returns its input unchanged (any payload).
#[derive(Debug, Clone, Default)]
pub struct IdentityModel;

#[async_trait]
impl Model for IdentityModel {
    async fn predict(&self, request: Request) -> Result<Output<Payload>, ModelError> {
        Ok(Output::new(request.payload))
    }
}
