//! Protocol-level operations over one loaded model, shared by the REST and gRPC edges:
//! wire message in, wire message out.

use std::sync::Arc;

use seldon_protocol::v1::{self, Feedback as WireFeedback, SeldonMessage, SeldonMessageList};
use seldon_protocol::v2::{self, InferenceRequest, InferenceResponse, MetadataTensor};

use crate::api_error::ServeError;
use crate::config::Config;
use crate::metadata::MetadataOverride;
use crate::metrics::{Method, Metrics};
use crate::model::{Model, Output, Payload};
use crate::v1::{self as codec1, DataKind, Extras, Unit};
use crate::v2 as codec2;

/// One served model and who it is.
#[derive(Clone)]
pub struct Service {
    pub model: Arc<dyn Model>,
    pub unit: Unit,
    pub model_name: String,
    pub model_version: Option<String>,
    pub include_metrics: bool,
    pub metrics: Arc<Metrics>,
    /// `MODEL_METADATA` / `metadata.yaml`, laid over the model's own metadata.
    pub user_metadata: Arc<MetadataOverride>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("unit", &self.unit)
            .field("model_name", &self.model_name)
            .finish_non_exhaustive()
    }
}

/// The v1 hook a message goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Predict,
    TransformInput,
    TransformOutput,
    Route,
}

impl Service {
    /// A service for `model` with the identity from `config`.
    pub fn new(model: Arc<dyn Model>, config: &Config) -> Self {
        Service {
            model,
            unit: Unit {
                id: config.unit_id.clone(),
                image: config.unit_image.clone(),
            },
            model_name: config.model_name(),
            model_version: config.model_version.clone(),
            include_metrics: config.include_metrics_in_client_response,
            metrics: Arc::new(Metrics::new(config)),
            user_metadata: Arc::default(),
        }
    }

    /// This service with the user's metadata over the model's (see [`crate::metadata`]).
    pub fn with_metadata(mut self, user: MetadataOverride) -> Self {
        self.user_metadata = Arc::new(user);
        self
    }

    fn finish_v1(
        &self,
        method: Method,
        out: Output<Payload>,
        kind: DataKind,
        request_meta: &[&v1::Meta],
    ) -> Result<SeldonMessage, ServeError> {
        let model_tags = self.model.tags();
        let mut metrics = self.model.metrics();
        metrics.extend(out.metrics);
        self.metrics.record(method, &metrics);
        let extras = Extras {
            unit: &self.unit,
            tags: vec![&model_tags, &out.tags],
            metrics,
            include_metrics: self.include_metrics,
        };
        let meta = codec1::merge_meta(request_meta, &extras);
        Ok(codec1::encode(
            out.value,
            kind,
            self.model.class_names(),
            meta,
        )?)
    }

    /// `/predict`, `/transform-input`, `/transform-output`, `/route`.
    pub async fn call_v1(
        &self,
        hook: Hook,
        msg: SeldonMessage,
    ) -> Result<SeldonMessage, ServeError> {
        msg.check_oneof()?;
        let (request, kind) = codec1::decode(msg)?;
        let meta = request.meta.clone();
        let (method, out) = match hook {
            Hook::Predict => (Method::Predict, self.model.predict(request).await?),
            Hook::TransformInput => (
                Method::InputTransform,
                self.model.transform_input(request).await?,
            ),
            Hook::TransformOutput => (
                Method::OutputTransform,
                self.model.transform_output(request).await?,
            ),
            Hook::Route => (
                Method::Router,
                codec1::route_output(self.model.route(request).await?),
            ),
        };
        self.finish_v1(method, out, kind, &[&meta])
    }

    /// `/aggregate`: every child's message, meta merged across all of them.
    pub async fn aggregate_v1(&self, list: SeldonMessageList) -> Result<SeldonMessage, ServeError> {
        let mut kind = None;
        let mut requests = Vec::with_capacity(list.seldon_messages.len());
        for msg in list.seldon_messages {
            msg.check_oneof()?;
            let (r, k) = codec1::decode(msg)?;
            kind.get_or_insert(k);
            requests.push(r);
        }
        let metas: Vec<v1::Meta> = requests.iter().map(|r| r.meta.clone()).collect();
        let out = self.model.aggregate(requests).await?;
        let refs: Vec<&v1::Meta> = metas.iter().collect();
        self.finish_v1(Method::Aggregate, out, kind.unwrap_or_default(), &refs)
    }

    /// `/send-feedback`.
    pub async fn feedback_v1(&self, fb: WireFeedback) -> Result<SeldonMessage, ServeError> {
        let (feedback, kind) = codec1::decode_feedback(fb, &self.unit)?;
        let meta = feedback.request.meta.clone();
        self.metrics.feedback(feedback.reward);
        let out = self.model.send_feedback(feedback).await?;
        self.finish_v1(Method::Feedback, out, kind, &[&meta])
    }

    /// `/health/status`.
    pub async fn health_v1(&self) -> Result<SeldonMessage, ServeError> {
        let payload = self.model.health().await?;
        self.finish_v1(
            Method::Health,
            Output::new(payload),
            DataKind::default(),
            &[],
        )
    }

    /// `/metadata` (v1 model metadata: the model's, with the user's keys replacing its own;
    /// name defaults to the served model name).
    pub fn metadata_v1(&self) -> v1::ModelMetadata {
        let mut md = self.user_metadata.apply(self.model.metadata());
        if md.name.is_empty() {
            md.name.clone_from(&self.model_name);
        }
        if md.versions.is_empty() {
            md.versions.extend(self.model_version.clone());
        }
        md
    }

    /// Fails unless `name` (and `version`, when given) is the served model.
    pub fn check_model(&self, name: &str, version: Option<&str>) -> Result<(), ServeError> {
        let version_ok = match (version, &self.model_version) {
            (None, _) => true,
            (Some(v), Some(mine)) => v == mine,
            (Some(_), None) => false,
        };
        if name != self.model_name || !version_ok {
            let full =
                version.map_or_else(|| name.to_string(), |v| format!("{name}` version `{v}"));
            return Err(ServeError::UnknownModel(full));
        }
        Ok(())
    }

    /// v2 `infer`.
    pub async fn infer_v2(
        &self,
        name: &str,
        version: Option<&str>,
        request: InferenceRequest,
    ) -> Result<InferenceResponse, ServeError> {
        self.check_model(name, version)?;
        let id = request.id.clone();
        let req = codec2::decode(request)?;
        let out = self.model.predict(req).await?;
        let mut metrics = self.model.metrics();
        metrics.extend(out.metrics.iter().cloned());
        self.metrics.record(Method::Predict, &metrics);
        Ok(codec2::encode(
            out,
            &self.model_name,
            self.model_version.as_deref(),
            id,
        )?)
    }

    /// v2 model metadata, from the model's v1 metadata (entries without a known
    /// `datatype` are left out).
    pub fn metadata_v2(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<v2::ModelMetadata, ServeError> {
        self.check_model(name, version)?;
        let md = self.metadata_v1();
        let tensors = |list: &[v1::MessageMetadata]| {
            list.iter()
                .filter_map(|m| {
                    Some(MetadataTensor {
                        name: m.name.clone().unwrap_or_default(),
                        datatype: codec2::datatype(m.datatype.as_deref()?)?,
                        shape: m.shape.clone().unwrap_or_default(),
                        parameters: None,
                    })
                })
                .collect()
        };
        Ok(v2::ModelMetadata {
            name: self.model_name.clone(),
            versions: (!md.versions.is_empty()).then(|| md.versions.clone()),
            platform: md.platform.clone(),
            inputs: tensors(&md.inputs),
            outputs: tensors(&md.outputs),
            parameters: None,
        })
    }

    /// v2 model readiness.
    pub fn ready_v2(&self, name: &str, version: Option<&str>) -> Result<bool, ServeError> {
        self.check_model(name, version)?;
        Ok(self.model.ready())
    }
}
