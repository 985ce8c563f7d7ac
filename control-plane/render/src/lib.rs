//! Pure rendering of a `SeldonDeployment` into the Kubernetes, Istio and Ambassador objects
//! that serve it, with the graph run by the filter in the predictor pods' sidecars.
//!
//! ```text
//!  SeldonDeployment ──apply_defaults──► defaulted spec ──check──► Vec<Violation> (CRD rules + compile)
//!                                             │
//!                      per predictor ─────────┼──► deployment / service / hpa / keda / pdb (Kubernetes, KEDA)
//!                                             ├──► destination_rule / wasm_plugin (FilterConfig) / envoy_filter
//!                                             │    / node_calls (localhost clusters, when on)
//!                                             │    / grpc_entry (filter on port 5001, when on)  (Istio)
//!                                             ├──► ambassador (Mappings, when ingress = ambassador)
//!                                             └──► explainer (Deployment, Service, its route)
//!                      per SeldonDeployment ──────► virtual_service                        (Istio ingress)
//! ```

pub mod ambassador;
pub mod catalogue;
pub mod check;
pub mod deployment;
pub mod destination_rule;
pub mod envoy_filter;
pub mod explainer;
pub mod filter_config;
pub mod grpc_entry;
pub mod hpa;
pub mod keda;
pub mod manifest;
pub mod node_calls;
pub mod options;
pub mod pdb;
pub mod service;
pub mod virtual_service;
pub mod wasm_plugin;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use seldon_crd::{PredictorSpec, SeldonDeployment, Violation, names};

pub use catalogue::{Catalogue, CatalogueError, ExplainerImages, Placeholders, Server};
pub use check::check;
pub use filter_config::filter_config;
pub use manifest::{CustomObject, Manifest, to_yaml};
pub use options::{
    DEFAULT_FILTER_URL, FilterUrlError, GpuPool, ISTIO_PROXY_UID, Ingress, NodeCalls,
    NodeCallsError, RenderOptions, TracingError, check_filter_url, check_tracing,
};

/// Why nothing was rendered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    #[error("the SeldonDeployment is invalid:\n{}", list(.0))]
    Invalid(Vec<Violation>),
}

fn list(v: &[Violation]) -> String {
    v.iter()
        .map(|x| format!("  {x}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Renders every object that serves `sdep`. Runs `check` first: nothing is rendered for an
/// invalid SeldonDeployment, and every rendered filter config compiles.
pub fn render(sdep: &SeldonDeployment, opts: &RenderOptions) -> Result<Vec<Manifest>, RenderError> {
    let problems = check(sdep, opts);
    if !problems.is_empty() {
        return Err(RenderError::Invalid(problems));
    }
    let cx = Context::new(sdep);
    let mut out = Vec::new();
    for (index, predictor) in cx.sdep.spec.predictors.iter().enumerate() {
        let p = Predictor::new(&cx, index, predictor);
        out.extend(
            deployment::render(&cx, &p, opts)
                .into_iter()
                .map(|d| Manifest::Deployment(Box::new(d))),
        );
        out.extend(
            service::render(&cx, &p, opts)
                .into_iter()
                .map(|s| Manifest::Service(Box::new(s))),
        );
        out.extend(
            hpa::render(&cx, &p)
                .into_iter()
                .map(|h| Manifest::HorizontalPodAutoscaler(Box::new(h))),
        );
        out.extend(keda::render(&cx, &p).into_iter().map(Manifest::Custom));
        out.extend(
            pdb::render(&cx, &p)
                .into_iter()
                .map(|b| Manifest::PodDisruptionBudget(Box::new(b))),
        );
        out.push(Manifest::Custom(destination_rule::render(&cx, &p, opts)));
        // the localhost clusters before the WasmPlugin naming them (applied in this order)
        out.extend(node_calls::render(&cx, &p, opts).map(Manifest::Custom));
        out.push(Manifest::Custom(wasm_plugin::render(&cx, &p, opts)));
        out.push(Manifest::Custom(envoy_filter::render(&cx, &p, opts)));
        // the gRPC entry's filter on port 5001 (with `grpc_entry`)
        out.extend(grpc_entry::render(&cx, &p, opts).map(Manifest::Custom));
        if opts.ingress == Ingress::Ambassador {
            out.extend(
                ambassador::render(&cx, &p, opts)
                    .into_iter()
                    .map(Manifest::Custom),
            );
        }
        // the explainer's Deployment, Service and route (after the predictor's own objects)
        out.extend(explainer::render(&cx, &p, opts));
    }
    if opts.ingress == Ingress::Istio {
        out.push(Manifest::Custom(virtual_service::render(&cx, opts)));
    }
    Ok(out)
}

/// The defaulted SeldonDeployment and what every module needs from it.
#[derive(Debug, Clone)]
pub struct Context {
    pub sdep: SeldonDeployment,
    pub name: String,
    /// The `seldon-deployment-id` label value: [`names::sdep_id`] of `name`.
    pub id: String,
    pub namespace: String,
}

impl Context {
    /// Applies Seldon's defaults to a copy of `sdep`.
    pub fn new(sdep: &SeldonDeployment) -> Self {
        let mut sdep = sdep.clone();
        seldon_crd::apply_defaults(&mut sdep);
        let name = seldon_crd::defaults::name(&sdep);
        let namespace = seldon_crd::defaults::namespace(&sdep);
        Self {
            sdep,
            id: names::sdep_id(&name),
            name,
            namespace,
        }
    }

    /// Seldon's `GetAnnotation`: `spec.annotations`, then `metadata.annotations`.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.sdep
            .spec
            .annotations
            .get(key)
            .or_else(|| {
                self.sdep
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(key))
            })
            .map(String::as_str)
    }

    /// Labels on every object: `seldon-deployment-id` and `app.kubernetes.io/managed-by`.
    pub fn base_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (names::LABEL_SELDON_ID.to_string(), self.id.clone()),
            (
                names::LABEL_MANAGED_BY.to_string(),
                names::MANAGED_BY.to_string(),
            ),
        ])
    }

    /// Metadata of a rendered object.
    pub fn meta(&self, name: &str, labels: BTreeMap<String, String>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels),
            ..Default::default()
        }
    }
}

/// One predictor of the defaulted SeldonDeployment.
#[derive(Debug, Clone)]
pub struct Predictor<'a> {
    pub index: usize,
    pub spec: &'a PredictorSpec,
    /// The predictor Service name (entry point).
    pub service: String,
}

impl<'a> Predictor<'a> {
    pub fn new(cx: &Context, index: usize, spec: &'a PredictorSpec) -> Self {
        let svc_name = spec
            .annotations
            .get(names::ANNOTATION_SVC_NAME)
            .map(String::as_str);
        Self {
            index,
            spec,
            service: names::predictor_service(&cx.name, &spec.name, svc_name),
        }
    }

    /// A predictor annotation, else the SeldonDeployment's.
    pub fn annotation<'b>(&'b self, cx: &'b Context, key: &str) -> Option<&'b str> {
        self.spec
            .annotations
            .get(key)
            .map(String::as_str)
            .or_else(|| cx.annotation(key))
    }

    /// Index of the component holding the graph root's container (it carries `seldon-app`).
    pub fn root_component(&self) -> usize {
        self.spec
            .component_specs
            .iter()
            .position(|c| {
                c.spec
                    .containers
                    .iter()
                    .any(|k| k.name == self.spec.graph.name)
            })
            .unwrap_or(0)
    }

    /// The fully qualified name of the predictor Service.
    pub fn fqdn(&self, cx: &Context) -> String {
        names::fqdn(&self.service, &cx.namespace)
    }

    /// A timeout annotation in milliseconds, if set and valid.
    pub fn timeout_ms(&self, cx: &Context, key: &str) -> Option<u64> {
        self.annotation(cx, key).and_then(|v| v.trim().parse().ok())
    }
}
