//! `SeldonDeployment.spec`: every field Seldon Core v1.18 has, with Seldon's JSON names.
//!
//! Types are lenient on input (unknown fields are ignored by serde, as the API server would
//! prune them); `crate::parse` reports the ignored ones with their paths for `validate`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use seldon_graph::{Endpoint, PredictiveUnit, Protocol, Transport};
use serde::{Deserialize, Serialize};

use crate::hpa::SeldonHpaSpec;
use crate::status::SeldonDeploymentStatus;

/// The spec of a `SeldonDeployment`: one or more predictors, each an inference graph plus the
/// pods that serve its nodes.
#[derive(CustomResource, Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "machinelearning.seldon.io",
    version = "v1",
    kind = "SeldonDeployment",
    plural = "seldondeployments",
    singular = "seldondeployment",
    shortname = "sdep",
    namespaced,
    status = "SeldonDeploymentStatus",
    derive = "PartialEq",
    doc = "SeldonDeployment: Seldon Core v1 inference graphs, served by seldon-mesh on an Istio mesh.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas"
    ),
    printcolumn(
        name = "State",
        type_ = "string",
        json_path = ".status.state",
        description = "Creating, Available or Failed"
    ),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".status.replicas"),
    printcolumn(
        name = "URL",
        type_ = "string",
        json_path = ".status.address.url",
        priority = "1"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
// clippy reads the repeated `type_ = "string"` of two printer columns as one duplicated attribute.
#[allow(clippy::duplicated_attributes)]
pub struct SeldonDeploymentSpec {
    /// Deprecated in Seldon; kept so old manifests parse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub predictors: Vec<PredictorSpec>,
    /// Legacy API-gateway field, ignored.
    #[serde(default, rename = "oauth_key", skip_serializing_if = "Option::is_none")]
    pub oauth_key: Option<String>,
    /// Legacy API-gateway field, ignored.
    #[serde(
        default,
        rename = "oauth_secret",
        skip_serializing_if = "Option::is_none"
    )]
    pub oauth_secret: Option<String>,
    /// Configuration annotations (`seldon.io/*`), merged into Deployments and pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// `seldon` (default), `tensorflow`, `kfserving` or `v2` (`kfserving` is `v2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// `rest` (default) or `grpc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<Transport>,
    /// The most general replica count; target of the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// `rpc` (default) or `kafka`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_type: Option<ServerType>,
}

/// Seldon's `spec.serverType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ServerType {
    #[default]
    Rpc,
    Kafka,
}

/// One predictor: a graph, the pods serving its nodes, and its share of traffic.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PredictorSpec {
    pub name: String,
    /// The inference graph. Its schema is typed to a fixed depth (see the crate README).
    #[schemars(schema_with = "crate::schema::graph_schema")]
    pub graph: PredictiveUnit,
    /// One Kubernetes Deployment each; containers match graph nodes by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub component_specs: Vec<SeldonPodSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Deprecated and ignored by Seldon 1.18.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Seldon's executor settings; seldon-mesh has no executor container (see the README).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub svc_orch_spec: Option<SvcOrchSpec>,
    /// Percent of traffic (non-shadow) or of mirrored traffic (shadow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explainer: Option<Explainer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl: Option<Ssl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<i32>,
}

/// One component: pod metadata, a full PodSpec, and its scaling.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeldonPodSpec {
    #[serde(default, skip_serializing_if = "is_default_meta")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: PodSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hpa_spec: Option<SeldonHpaSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keda_spec: Option<SeldonScaledObjectSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pdb_spec: Option<SeldonPdbSpec>,
}

fn is_default_meta(m: &ObjectMeta) -> bool {
    *m == ObjectMeta::default()
}

/// KEDA `ScaledObject` settings, passed through.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeldonScaledObjectSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polling_interval: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_period: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_replica_count: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replica_count: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replica_count: Option<i32>,
    /// KEDA's `advanced` block, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::preserve_unknown_object")]
    pub advanced: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<KedaFallback>,
    #[serde(default)]
    pub triggers: Vec<KedaTrigger>,
}

/// KEDA fallback replicas.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KedaFallback {
    pub failure_threshold: i32,
    pub replicas: i32,
}

/// One KEDA trigger.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KedaTrigger {
    #[serde(rename = "type")]
    pub trigger_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_ref: Option<KedaAuthenticationRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_type: Option<String>,
}

/// A KEDA `TriggerAuthentication` reference.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KedaAuthenticationRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// A PodDisruptionBudget for the component's Deployment.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeldonPdbSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}

/// Seldon's executor container settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SvcOrchSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
}

/// TLS for the predictor's endpoint.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ssl {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_secret_name: Option<String>,
}

/// An Alibi explainer next to the predictor.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Explainer {
    /// AnchorTabular, AnchorImages, AnchorText, Counterfactuals, Contrastive, KernelShap,
    /// IntegratedGradients, ALE or TreeShap.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub explainer_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_spec: Option<Container>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_secret_ref_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_initializer_image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// JSON string, v2 protocol only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_parameters: Option<String>,
}

impl SeldonDeploymentSpec {
    /// `spec.protocol`, defaulted.
    pub fn protocol(&self) -> Protocol {
        self.protocol.unwrap_or_default()
    }

    /// `spec.transport`, defaulted.
    pub fn transport(&self) -> Transport {
        self.transport.unwrap_or_default()
    }
}

impl PredictorSpec {
    /// True for a shadow predictor.
    pub fn is_shadow(&self) -> bool {
        self.shadow == Some(true)
    }
}
