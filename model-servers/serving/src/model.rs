//! The `Model` trait: the hooks Seldon's wrapper knows, the payloads they take and return.

use std::collections::BTreeMap;

pub use seldon_protocol::v1::{Meta, Metric, MetricType, ModelMetadata};
use serde_json::Value;

use crate::error::ModelError;
use crate::tensor::Tensor;

/// The data part of a Seldon message or a v2 request, decoded.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Payload {
    /// v1 `data` (ndarray/tensor/tftensor) or a single v2 input.
    Tensor(Tensor),
    /// Several v2 inputs (v1 has no form for this: returning it to a v1 caller is a 500).
    Tensors(Vec<Tensor>),
    /// v1 `strData`.
    Str(String),
    /// v1 `binData` (base64 on REST, bytes on gRPC).
    Bin(Vec<u8>),
    /// v1 `jsonData`.
    Json(Value),
    /// No data (e.g. a feedback reply).
    #[default]
    None,
}

impl Payload {
    /// The single tensor, or a 400 naming what was sent instead.
    pub fn tensor(&self) -> Result<&Tensor, ModelError> {
        match self {
            Payload::Tensor(t) => Ok(t),
            other => Err(ModelError::BadData(format!(
                "expected one numeric tensor, got {}",
                other.kind()
            ))),
        }
    }

    /// A short name of the variant for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Payload::Tensor(_) => "a tensor",
            Payload::Tensors(_) => "several tensors",
            Payload::Str(_) => "strData",
            Payload::Bin(_) => "binData",
            Payload::Json(_) => "jsonData",
            Payload::None => "no data",
        }
    }
}

impl From<Tensor> for Payload {
    fn from(t: Tensor) -> Self {
        Payload::Tensor(t)
    }
}

/// What a hook receives: the decoded payload, the request's `meta` (v1) and
/// `parameters` (v2).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request {
    pub payload: Payload,
    pub meta: Meta,
    pub parameters: BTreeMap<String, Value>,
}

impl Request {
    /// A request carrying only a payload.
    pub fn new(payload: impl Into<Payload>) -> Self {
        Request {
            payload: payload.into(),
            ..Request::default()
        }
    }
}

/// What a hook returns: a value plus per-call tags and metrics (Seldon's `SeldonResponse`).
#[derive(Debug, Clone, PartialEq)]
pub struct Output<T> {
    pub value: T,
    pub tags: BTreeMap<String, Value>,
    pub metrics: Vec<Metric>,
}

impl<T> Output<T> {
    /// A value without tags or metrics.
    pub fn new(value: T) -> Self {
        Output {
            value,
            tags: BTreeMap::new(),
            metrics: Vec::new(),
        }
    }

    /// Adds one tag.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// Adds one metric.
    pub fn metric(mut self, metric: Metric) -> Self {
        self.metrics.push(metric);
        self
    }
}

impl From<Payload> for Output<Payload> {
    fn from(value: Payload) -> Self {
        Output::new(value)
    }
}

impl From<Tensor> for Output<Payload> {
    fn from(value: Tensor) -> Self {
        Output::new(Payload::Tensor(value))
    }
}

/// Seldon `Feedback`: the request, the graph's response, the reward and the truth.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Feedback {
    pub request: Request,
    pub response: Request,
    pub reward: f64,
    pub truth: Payload,
    /// This unit's routing decision taken from `response.meta.routing[PREDICTIVE_UNIT_ID]`
    /// (what Seldon's wrapper passes routers as `routing`).
    pub routing: Option<i32>,
}

/// A Seldon predictive unit's user code: every hook of Seldon's Python wrapper.
///
/// Object-safe (`Arc<dyn Model>`) because the one server binary picks the runtime at
/// startup from `--implementation` (catalogue data, not generics); `async_trait` boxes one
/// future per call, which is noise next to JSON decoding. Hooks that burn more than a few
/// hundred microseconds of CPU should move the work to `tokio::task::spawn_blocking`.
///
/// Defaults mirror the wrapper: `transform_*` are the identity, `predict`, `route` and
/// `aggregate` answer 400 "not implemented", `send_feedback` accepts and returns nothing,
/// `health` answers healthy.
#[async_trait::async_trait]
pub trait Model: Send + Sync + 'static {
    /// Loads weights; called once, before the ports open (`&mut`: no locking needed).
    async fn load(&mut self) -> Result<(), ModelError> {
        Ok(())
    }

    /// `/predict`: the model's output for `request.payload`.
    async fn predict(&self, request: Request) -> Result<Output<Payload>, ModelError> {
        let _ = request;
        Err(ModelError::NotImplemented("predict"))
    }

    /// `/transform-input`: identity unless overridden.
    async fn transform_input(&self, request: Request) -> Result<Output<Payload>, ModelError> {
        Ok(Output::new(request.payload))
    }

    /// `/transform-output`: identity unless overridden.
    async fn transform_output(&self, request: Request) -> Result<Output<Payload>, ModelError> {
        Ok(Output::new(request.payload))
    }

    /// `/route`: index of the child to send the request to (`-1` = all children).
    async fn route(&self, request: Request) -> Result<Output<i32>, ModelError> {
        let _ = request;
        Err(ModelError::NotImplemented("route"))
    }

    /// `/aggregate`: combine the outputs of all children.
    async fn aggregate(&self, requests: Vec<Request>) -> Result<Output<Payload>, ModelError> {
        let _ = requests;
        Err(ModelError::NotImplemented("aggregate"))
    }

    /// `/send-feedback`: a reward for an earlier response.
    async fn send_feedback(&self, feedback: Feedback) -> Result<Output<Payload>, ModelError> {
        let _ = feedback;
        Ok(Output::new(Payload::None))
    }

    /// Metadata for `/metadata` and v2 model metadata (v2 reads `name`/`datatype`/`shape`
    /// of the inputs and outputs). `name` is filled from the deployment when left empty.
    fn metadata(&self) -> ModelMetadata {
        ModelMetadata::default()
    }

    /// `/health/status`: a payload proving the model works (Seldon: `health_status()`).
    async fn health(&self) -> Result<Payload, ModelError> {
        Ok(Payload::Str("healthy".into()))
    }

    /// v2 model readiness (and `/v2/health/ready`).
    fn ready(&self) -> bool {
        true
    }

    /// Column names of 2-D outputs (Seldon `class_names()`; default `t:0..t:n`).
    fn class_names(&self) -> Option<Vec<String>> {
        None
    }

    /// Tags added to every response (Seldon `tags()`).
    fn tags(&self) -> BTreeMap<String, Value> {
        BTreeMap::new()
    }

    /// Metrics added to every response (Seldon `metrics()`).
    fn metrics(&self) -> Vec<Metric> {
        Vec::new()
    }
}

/// A custom metric without tags (Seldon's `{"type","key","value"}`).
pub fn metric(key: impl Into<String>, kind: MetricType, value: f32) -> Metric {
    Metric {
        key: key.into(),
        metric_type: kind,
        value,
        tags: BTreeMap::new(),
    }
}
