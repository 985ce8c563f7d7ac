//! `autoscaling/v2` HorizontalPodAutoscaler per component with an `hpaSpec`, named like its
//! Deployment; v2beta1 `metrics` are converted, `metricsv2` used as given.

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec,
};

use crate::{Context, Predictor, deployment};

pub fn render(cx: &Context, p: &Predictor<'_>) -> Vec<HorizontalPodAutoscaler> {
    p.spec
        .component_specs
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let hpa = c.hpa_spec.as_ref()?;
            let name = deployment::name(cx, p, i, c);
            let metrics = hpa.v2_metrics();
            Some(HorizontalPodAutoscaler {
                metadata: cx.meta(&name, cx.base_labels()),
                spec: Some(HorizontalPodAutoscalerSpec {
                    scale_target_ref: CrossVersionObjectReference {
                        api_version: Some("apps/v1".to_string()),
                        kind: "Deployment".to_string(),
                        name,
                    },
                    min_replicas: hpa.min_replicas,
                    max_replicas: hpa.max_replicas,
                    metrics: (!metrics.is_empty()).then_some(metrics),
                    behavior: None,
                }),
                status: None,
            })
        })
        .collect()
}
