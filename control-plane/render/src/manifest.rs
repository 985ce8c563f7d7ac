//! `Manifest`: one rendered object, typed where k8s-openapi has the type.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde_json::Value;

/// One object to apply.
#[derive(Debug, Clone, PartialEq)]
// A render emits tens of these: boxing the common Istio variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Manifest {
    Deployment(Box<Deployment>),
    Service(Box<Service>),
    HorizontalPodAutoscaler(Box<HorizontalPodAutoscaler>),
    PodDisruptionBudget(Box<PodDisruptionBudget>),
    /// Istio and Ambassador objects (no k8s-openapi type).
    Custom(CustomObject),
}

/// A custom resource: `apiVersion`, `kind`, `metadata`, `spec`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomObject {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: Value,
}

impl Manifest {
    pub fn kind(&self) -> &str {
        match self {
            Self::Deployment(_) => "Deployment",
            Self::Service(_) => "Service",
            Self::HorizontalPodAutoscaler(_) => "HorizontalPodAutoscaler",
            Self::PodDisruptionBudget(_) => "PodDisruptionBudget",
            Self::Custom(c) => &c.kind,
        }
    }

    pub fn api_version(&self) -> &str {
        match self {
            Self::Deployment(_) => "apps/v1",
            Self::Service(_) => "v1",
            Self::HorizontalPodAutoscaler(_) => "autoscaling/v2",
            Self::PodDisruptionBudget(_) => "policy/v1",
            Self::Custom(c) => &c.api_version,
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Self::Deployment(o) => &o.metadata,
            Self::Service(o) => &o.metadata,
            Self::HorizontalPodAutoscaler(o) => &o.metadata,
            Self::PodDisruptionBudget(o) => &o.metadata,
            Self::Custom(c) => &c.metadata,
        }
    }

    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// The object as JSON, with `apiVersion` and `kind`.
    pub fn to_value(&self) -> Value {
        let v = match self {
            Self::Deployment(o) => serde_json::to_value(o),
            Self::Service(o) => serde_json::to_value(o),
            Self::HorizontalPodAutoscaler(o) => serde_json::to_value(o),
            Self::PodDisruptionBudget(o) => serde_json::to_value(o),
            Self::Custom(c) => serde_json::to_value(c),
        };
        // Plain data with string keys always serializes.
        v.unwrap_or(Value::Null)
    }
}

/// Every manifest as one multi-document YAML stream (`---` between documents).
pub fn to_yaml(manifests: &[Manifest]) -> String {
    let docs: Vec<String> = manifests
        .iter()
        .map(|m| serde_yaml::to_string(&m.to_value()).unwrap_or_default())
        .collect();
    docs.join("---\n")
}
