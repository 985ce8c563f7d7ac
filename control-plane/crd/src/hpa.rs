//! `componentSpecs[].hpaSpec`: Seldon keeps `metrics` in the old `autoscaling/v2beta1` shape
//! (gone from Kubernetes and from k8s-openapi, so modelled here) and `metricsv2` in
//! `autoscaling/v2`. [`MetricSpecV2Beta1::to_v2`] converts the old shape as Seldon does.

use k8s_openapi::api::autoscaling::v2;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Seldon's HPA settings for one component.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeldonHpaSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<i32>,
    pub max_replicas: i32,
    /// `autoscaling/v2beta1` metrics (converted to v2 when rendered).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricSpecV2Beta1>,
    /// `autoscaling/v2` metrics, used as given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metricsv2: Vec<v2::MetricSpec>,
}

impl SeldonHpaSpec {
    /// Every metric in `autoscaling/v2` form: `metricsv2` first, then converted `metrics`.
    pub fn v2_metrics(&self) -> Vec<v2::MetricSpec> {
        let mut out = self.metricsv2.clone();
        out.extend(self.metrics.iter().map(MetricSpecV2Beta1::to_v2));
        out
    }
}

/// `autoscaling/v2beta1` MetricSpec.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricSpecV2Beta1 {
    /// Resource, Pods, Object, External or ContainerResource.
    #[serde(rename = "type")]
    pub metric_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceMetricSourceV2Beta1>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_resource: Option<ContainerResourceMetricSourceV2Beta1>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<PodsMetricSourceV2Beta1>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectMetricSourceV2Beta1>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalMetricSourceV2Beta1>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceMetricSourceV2Beta1 {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_average_utilization: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_average_value: Option<Quantity>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerResourceMetricSourceV2Beta1 {
    pub name: String,
    pub container: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_average_utilization: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_average_value: Option<Quantity>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodsMetricSourceV2Beta1 {
    pub metric_name: String,
    pub target_average_value: Quantity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMetricSourceV2Beta1 {
    pub target: v2::CrossVersionObjectReference,
    pub metric_name: String,
    pub target_value: Quantity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_value: Option<Quantity>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalMetricSourceV2Beta1 {
    pub metric_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_value: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_average_value: Option<Quantity>,
}

fn target(
    utilization: Option<i32>,
    average: Option<Quantity>,
    value: Option<Quantity>,
) -> v2::MetricTarget {
    let type_ = if utilization.is_some() {
        "Utilization"
    } else if average.is_some() {
        "AverageValue"
    } else {
        "Value"
    };
    v2::MetricTarget {
        type_: type_.to_string(),
        average_utilization: utilization,
        average_value: average,
        value,
    }
}

impl MetricSpecV2Beta1 {
    /// The same metric in `autoscaling/v2` form (the conversion Kubernetes itself applied).
    pub fn to_v2(&self) -> v2::MetricSpec {
        v2::MetricSpec {
            type_: self.metric_type.clone(),
            resource: self.resource.as_ref().map(|r| v2::ResourceMetricSource {
                name: r.name.clone(),
                target: target(
                    r.target_average_utilization,
                    r.target_average_value.clone(),
                    None,
                ),
            }),
            container_resource: self.container_resource.as_ref().map(|r| {
                v2::ContainerResourceMetricSource {
                    name: r.name.clone(),
                    container: r.container.clone(),
                    target: target(
                        r.target_average_utilization,
                        r.target_average_value.clone(),
                        None,
                    ),
                }
            }),
            pods: self.pods.as_ref().map(|p| v2::PodsMetricSource {
                metric: v2::MetricIdentifier {
                    name: p.metric_name.clone(),
                    selector: p.selector.clone(),
                },
                target: target(None, Some(p.target_average_value.clone()), None),
            }),
            object: self.object.as_ref().map(|o| v2::ObjectMetricSource {
                described_object: o.target.clone(),
                metric: v2::MetricIdentifier {
                    name: o.metric_name.clone(),
                    selector: o.selector.clone(),
                },
                target: if o.average_value.is_some() {
                    target(None, o.average_value.clone(), None)
                } else {
                    target(None, None, Some(o.target_value.clone()))
                },
            }),
            external: self.external.as_ref().map(|e| v2::ExternalMetricSource {
                metric: v2::MetricIdentifier {
                    name: e.metric_name.clone(),
                    selector: e.metric_selector.clone(),
                },
                target: target(None, e.target_average_value.clone(), e.target_value.clone()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2beta1_cpu_utilization_converts_to_v2() {
        let spec: SeldonHpaSpec = serde_yaml::from_str(
            "maxReplicas: 3\nmetrics:\n- type: Resource\n  resource: {name: cpu, targetAverageUtilization: 70}\n",
        )
        .unwrap();
        let m = spec.v2_metrics();
        let r = m[0].resource.as_ref().unwrap();
        assert_eq!(r.name, "cpu");
        assert_eq!(r.target.type_, "Utilization");
        assert_eq!(r.target.average_utilization, Some(70));
    }

    #[test]
    fn hpa_without_max_replicas_is_rejected() {
        let err = serde_yaml::from_str::<SeldonHpaSpec>("minReplicas: 1\n").unwrap_err();
        assert!(err.to_string().contains("maxReplicas"), "{err}");
    }
}
