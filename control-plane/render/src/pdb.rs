//! `policy/v1` PodDisruptionBudget per component with a `pdbSpec`, named like its Deployment.
//!
//! Seldon's PDB selects every pod of the SeldonDeployment ([quirk]: budgets of two components
//! then count each other's pods). Here it selects the component's own pods — the Deployment's
//! selector — which is what a budget per component means.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::{Context, Predictor, deployment};

pub fn render(cx: &Context, p: &Predictor<'_>) -> Vec<PodDisruptionBudget> {
    p.spec
        .component_specs
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let pdb = c.pdb_spec.as_ref()?;
            Some(PodDisruptionBudget {
                metadata: cx.meta(&deployment::name(cx, p, i, c), cx.base_labels()),
                spec: Some(PodDisruptionBudgetSpec {
                    min_available: pdb.min_available.clone(),
                    max_unavailable: pdb.max_unavailable.clone(),
                    selector: Some(LabelSelector {
                        match_labels: Some(deployment::selector(cx, p, i, c)),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                status: None,
            })
        })
        .collect()
}
