//! KEDA `ScaledObject` (`keda.sh/v1alpha1`) per component with a `kedaSpec`, named like its
//! Deployment (Seldon's `createKeda`): the spec passed through (`pollingInterval`,
//! `cooldownPeriod`, `idleReplicaCount`, `minReplicaCount`, `maxReplicaCount`, `advanced`,
//! `fallback`, `triggers`) with `scaleTargetRef` = the component's `apps/v1` Deployment, whose
//! `replicas` render then leaves out (KEDA's HPA owns them). Seldon rendered it only with the
//! operator env `KEDA_ENABLED=true`; here always (the CRD must be installed: KEDA's own).
//! `check` refuses `hpaSpec` next to `kedaSpec` (two autoscalers on one Deployment) and an
//! empty `triggers` (KEDA's schema requires triggers).

use serde_json::json;

use crate::{Context, CustomObject, Predictor, deployment};

pub const API_VERSION: &str = "keda.sh/v1alpha1";
pub const KIND: &str = "ScaledObject";

pub fn render(cx: &Context, p: &Predictor<'_>) -> Vec<CustomObject> {
    p.spec
        .component_specs
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let keda = c.keda_spec.as_ref()?;
            let name = deployment::name(cx, p, i, c);
            // plain data with string keys: serializes
            let mut spec = serde_json::to_value(keda).unwrap_or_else(|_| json!({}));
            spec["scaleTargetRef"] = json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": name,
            });
            Some(CustomObject {
                api_version: API_VERSION.to_string(),
                kind: KIND.to_string(),
                metadata: cx.meta(&name, cx.base_labels()),
                spec,
            })
        })
        .collect()
}
