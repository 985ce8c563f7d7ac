//! The one impure function: reconcile a SeldonDeployment. Everything it decides comes from
//! pure functions ([`plan`], [`owned::to_prune`], [`status::compute`]); here are only the
//! API calls: server-side apply, list + delete for pruning, the status patch, the event.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};
use seldon_crd::{SeldonDeployment, SeldonDeploymentStatus, State};
use seldon_render::RenderOptions;
use serde_json::json;

use crate::metrics::Metrics;
use crate::owned::{self, OWNED_KINDS, ObjKey};
use crate::{names, status};

/// Shared by every reconcile.
#[derive(Clone)]
pub struct Context {
    /// API client.
    pub client: Client,
    /// How SeldonDeployments are rendered (ingress, catalogue, GPU pool, ...).
    pub options: RenderOptions,
    /// The operator's metrics.
    pub metrics: Arc<Metrics>,
    /// Who reports events.
    pub reporter: Reporter,
    /// Requeue period for a healthy object (drift repair).
    pub resync: Duration,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// What failed in a reconcile.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The SeldonDeployment is invalid (the webhook normally stops these earlier).
    #[error("{0}")]
    Render(#[from] seldon_render::RenderError),
    /// Render produced something the operator can't own.
    #[error(transparent)]
    Desired(#[from] owned::DesiredError),
    /// Object without namespace/uid (not from the API server).
    #[error("SeldonDeployment has no {0}")]
    Incomplete(&'static str),
    /// Server-side apply of one object failed.
    #[error("applying {key} failed: {source}")]
    Apply {
        /// Object.
        key: ObjKey,
        /// Client error.
        #[source]
        source: Box<kube::Error>,
    },
    /// Listing a kind for pruning failed.
    #[error("listing {kind} for pruning failed: {source}")]
    List {
        /// Kind.
        kind: &'static str,
        /// Client error.
        #[source]
        source: Box<kube::Error>,
    },
    /// Deleting an object no longer desired failed.
    #[error("deleting {key} failed: {source}")]
    Prune {
        /// Object.
        key: ObjKey,
        /// Client error.
        #[source]
        source: Box<kube::Error>,
    },
    /// Writing status failed.
    #[error("writing status failed: {0}")]
    Status(#[source] Box<kube::Error>),
    /// An applied object came back in a shape we can't read.
    #[error("reading back {key}: {source}")]
    Decode {
        /// Object.
        key: ObjKey,
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },
}

impl ReconcileError {
    /// Short label for metrics and the event reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Render(_) | Self::Desired(_) | Self::Incomplete(_) => "render",
            Self::Apply { .. } | Self::Decode { .. } => "apply",
            Self::List { .. } | Self::Prune { .. } => "prune",
            Self::Status(_) => "status",
        }
    }

    /// Event reason, PascalCase.
    pub fn event_reason(&self) -> &'static str {
        match self.reason() {
            "render" => "InvalidSeldonDeployment",
            "apply" => "ApplyFailed",
            "prune" => "PruneFailed",
            _ => "StatusFailed",
        }
    }

    /// Errors the user must fix: retrying without a spec change can't help.
    pub fn is_permanent(&self) -> bool {
        self.reason() == "render"
    }
}

/// The desired state of one SeldonDeployment.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Applied every reconcile.
    pub workloads: Vec<DynamicObject>,
    /// Applied once the Deployments are available.
    pub routing: Vec<DynamicObject>,
    /// First Deployment of the first predictor (status.replicas).
    pub first_deployment: Option<String>,
}

impl Plan {
    /// Every desired object.
    pub fn all(&self) -> Vec<DynamicObject> {
        self.workloads
            .iter()
            .chain(&self.routing)
            .cloned()
            .collect()
    }
}

/// The controller owner reference pointing at `sdep`.
pub fn owner_reference(sdep: &SeldonDeployment) -> Result<OwnerReference, ReconcileError> {
    sdep.controller_owner_ref(&())
        .ok_or(ReconcileError::Incomplete("metadata.uid"))
}

/// Pure: render, stamp ownership, split off routing.
pub fn plan(sdep: &SeldonDeployment, options: &RenderOptions) -> Result<Plan, ReconcileError> {
    let namespace = sdep
        .metadata
        .namespace
        .as_deref()
        .ok_or(ReconcileError::Incomplete("metadata.namespace"))?;
    let owner = owner_reference(sdep)?;
    let rendered = seldon_render::render(sdep, options)?;
    let first_deployment = rendered
        .iter()
        .find(|m| m.kind() == "Deployment")
        .and_then(|m| m.metadata().name.clone());
    let values = rendered
        .iter()
        .map(seldon_render::Manifest::to_value)
        .collect();
    let desired = owned::prepare_desired(values, namespace, &sdep.name_any(), &owner)?;
    let (workloads, routing) = owned::split_routing(desired);
    Ok(Plan {
        workloads,
        routing,
        first_deployment,
    })
}

fn typed<T: serde::de::DeserializeOwned>(
    objs: &[DynamicObject],
    kind: &str,
) -> Result<Vec<T>, ReconcileError> {
    objs.iter()
        .filter(|o| o.types.as_ref().is_some_and(|t| t.kind == kind))
        .map(|o| {
            serde_json::to_value(o)
                .and_then(serde_json::from_value)
                .map_err(|source| ReconcileError::Decode {
                    key: ObjKey::of(o),
                    source,
                })
        })
        .collect()
}

async fn apply(
    client: &Client,
    ns: &str,
    obj: &DynamicObject,
) -> Result<DynamicObject, ReconcileError> {
    let key = ObjKey::of(obj);
    let kind = owned::owned_kind(&key.api_version, &key.kind)
        .ok_or_else(|| ReconcileError::Desired(owned::DesiredError::UnownedKind(key.clone())))?;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &kind.api_resource());
    let params = PatchParams::apply(names::FIELD_MANAGER).force();
    let applied = api
        .patch(&key.name, &params, &Patch::Apply(obj))
        .await
        .map_err(|source| ReconcileError::Apply {
            key: key.clone(),
            source: Box::new(source),
        })?;
    Ok(owned::with_type(applied, kind))
}

async fn prune(
    client: &Client,
    ns: &str,
    sdep: &SeldonDeployment,
    desired: &[DynamicObject],
    uid: &str,
) -> Result<Vec<ObjKey>, ReconcileError> {
    // the label value is the id (hashed past 63 characters), not the name
    let selector = format!(
        "{}={}",
        names::LABEL_SDEP_ID,
        seldon_crd::names::sdep_id(&sdep.name_any())
    );
    let mut deleted = Vec::new();
    for kind in OWNED_KINDS {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), ns, &kind.api_resource());
        let existing = match api.list(&ListParams::default().labels(&selector)).await {
            Ok(list) => list
                .items
                .into_iter()
                .map(|o| owned::with_type(o, kind))
                .collect::<Vec<_>>(),
            // The kind's CRD is not installed (e.g. no KEDA, no Ambassador): nothing to prune.
            Err(kube::Error::Api(s)) if s.code == 404 => continue,
            Err(source) => {
                return Err(ReconcileError::List {
                    kind: kind.kind,
                    source: Box::new(source),
                });
            }
        };
        for key in owned::to_prune(desired, &existing, uid) {
            match api.delete(&key.name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(source) => {
                    return Err(ReconcileError::Prune {
                        key,
                        source: Box::new(source),
                    });
                }
            }
            tracing::info!(object = %key, "pruned");
            deleted.push(key);
        }
    }
    Ok(deleted)
}

/// Applies, prunes, and returns the status to write.
async fn converge(
    sdep: &SeldonDeployment,
    ctx: &Context,
) -> Result<SeldonDeploymentStatus, ReconcileError> {
    let plan = plan(sdep, &ctx.options)?;
    let ns = sdep.metadata.namespace.as_deref().unwrap_or("default");
    let uid = sdep
        .metadata
        .uid
        .as_deref()
        .ok_or(ReconcileError::Incomplete("metadata.uid"))?;
    let mut applied = Vec::new();
    for obj in &plan.workloads {
        applied.push(apply(&ctx.client, ns, obj).await?);
    }
    let deployments: Vec<Deployment> = typed(&applied, "Deployment")?;
    let services: Vec<Service> = typed(&applied, "Service")?;
    let ready = !deployments.is_empty()
        && deployments
            .iter()
            .all(|d| status::deployment_state(d) == State::Available);
    // Routing waits for available Deployments (Seldon #1461); once created it stays desired.
    let mut desired = plan.workloads.clone();
    if ready {
        for obj in &plan.routing {
            applied.push(apply(&ctx.client, ns, obj).await?);
        }
    }
    desired.extend(plan.routing.iter().cloned());
    prune(&ctx.client, ns, sdep, &desired, uid).await?;
    Ok(status::compute(
        sdep,
        &status::StatusInput {
            deployments: &deployments,
            services: &services,
            first_deployment: plan.first_deployment.as_deref(),
            error: None,
            previous: sdep.status.as_ref(),
            now: Timestamp::now(),
        },
    ))
}

/// Status for a failed reconcile: keeps what was known, marks it Failed with the error.
pub fn failed_status(
    sdep: &SeldonDeployment,
    error: &str,
    now: Timestamp,
) -> SeldonDeploymentStatus {
    let prev = sdep.status.clone().unwrap_or_default();
    let mut s = status::compute(
        sdep,
        &status::StatusInput {
            error: Some(error),
            previous: sdep.status.as_ref(),
            now,
            ..Default::default()
        },
    );
    s.deployment_status = prev.deployment_status;
    s.service_status = prev.service_status;
    s.replicas = prev.replicas;
    s
}

async fn write_status(
    client: &Client,
    sdep: &SeldonDeployment,
    status: &SeldonDeploymentStatus,
) -> Result<(), ReconcileError> {
    if sdep.status.as_ref() == Some(status) {
        return Ok(());
    }
    let ns = sdep.metadata.namespace.as_deref().unwrap_or("default");
    let api: Api<SeldonDeployment> = Api::namespaced(client.clone(), ns);
    // Merge patch of the whole status: maps (deploymentStatus, serviceStatus) are replaced
    // key by key, so stale keys are nulled explicitly.
    let mut body = serde_json::to_value(status).map_err(|source| ReconcileError::Decode {
        key: ObjKey {
            api_version: "machinelearning.seldon.io/v1".into(),
            kind: "SeldonDeployment".into(),
            name: sdep.name_any(),
        },
        source,
    })?;
    if let Some(prev) = &sdep.status {
        for (field, old) in [
            (
                "deploymentStatus",
                prev.deployment_status.keys().collect::<Vec<_>>(),
            ),
            ("serviceStatus", prev.service_status.keys().collect()),
        ] {
            let map = body
                .as_object_mut()
                .and_then(|o| o.entry(field).or_insert_with(|| json!({})).as_object_mut());
            if let Some(map) = map {
                for k in old {
                    map.entry(k.clone()).or_insert(serde_json::Value::Null);
                }
            }
        }
    }
    api.patch_status(
        &sdep.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": body })),
    )
    .await
    .map_err(|e| ReconcileError::Status(Box::new(e)))?;
    Ok(())
}

async fn publish_failure(ctx: &Context, sdep: &SeldonDeployment, err: &ReconcileError) {
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    let event = Event {
        type_: EventType::Warning,
        reason: err.event_reason().into(),
        note: Some(truncate(&err.to_string(), 1000)),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, &sdep.object_ref(&())).await {
        tracing::warn!(error = %e, "could not publish event");
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Reconciles one SeldonDeployment: apply, prune, status; on failure: status Failed and a
/// Warning event, then the error (requeued with backoff unless the spec itself is invalid).
pub async fn reconcile(
    sdep: Arc<SeldonDeployment>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    if sdep.metadata.deletion_timestamp.is_some() {
        // Owned objects go with it (ownerReferences → garbage collector).
        return Ok(Action::await_change());
    }
    let started = Instant::now();
    let name = sdep.name_any();
    let result = converge(&sdep, &ctx).await;
    let mut failure = result.as_ref().err().map(ReconcileError::reason);
    let outcome = match result {
        Ok(status) => {
            let available = status.state == Some(State::Available);
            let written = write_status(&ctx.client, &sdep, &status).await.map(|()| {
                if available {
                    Action::requeue(ctx.resync)
                } else {
                    Action::requeue(Duration::from_secs(30))
                }
            });
            failure = written.as_ref().err().map(ReconcileError::reason);
            written
        }
        Err(err) => {
            tracing::warn!(sdep = %name, error = %err, "reconcile failed");
            publish_failure(&ctx, &sdep, &err).await;
            let status = failed_status(&sdep, &err.to_string(), Timestamp::now());
            if let Err(e) = write_status(&ctx.client, &sdep, &status).await {
                tracing::warn!(sdep = %name, error = %e, "could not write Failed status");
            }
            if err.is_permanent() {
                Ok(Action::await_change())
            } else {
                Err(err)
            }
        }
    };
    ctx.metrics.observe(started.elapsed(), failure);
    outcome
}

/// Backoff for retryable errors.
pub fn error_policy(
    _sdep: Arc<SeldonDeployment>,
    err: &ReconcileError,
    _ctx: Arc<Context>,
) -> Action {
    tracing::debug!(error = %err, "requeue after error");
    Action::requeue(Duration::from_secs(15))
}

/// Labels as a map, for tests and callers that build selectors: `seldon-deployment-id` with
/// the id of SeldonDeployment `name`.
pub fn sdep_selector(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(
        names::LABEL_SDEP_ID.to_string(),
        seldon_crd::names::sdep_id(name),
    )])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdep() -> SeldonDeployment {
        let text = "apiVersion: machinelearning.seldon.io/v1\nkind: SeldonDeployment\nmetadata: {name: iris, namespace: seldon, uid: u1}\nspec:\n  predictors:\n  - name: default\n    graph: {name: clf, implementation: SKLEARN_SERVER, modelUri: 'gs://x'}\n";
        seldon_crd::parse_yaml(text).unwrap().remove(0).sdep
    }

    #[test]
    fn plan_owns_everything_and_holds_routing_back() {
        let p = plan(&sdep(), &RenderOptions::default()).unwrap();
        assert_eq!(p.first_deployment.as_deref(), Some("iris-default-0-clf"));
        assert!(
            p.routing
                .iter()
                .all(|o| ObjKey::of(o).kind == "VirtualService"
                    || ObjKey::of(o).kind == "DestinationRule")
        );
        assert!(!p.routing.is_empty());
        for o in p.all() {
            assert_eq!(o.metadata.owner_references.as_ref().unwrap()[0].uid, "u1");
        }
    }

    #[test]
    fn plan_needs_an_object_from_the_api_server() {
        let mut s = sdep();
        s.metadata.uid = None;
        let e = plan(&s, &RenderOptions::default()).unwrap_err();
        assert_eq!(e.to_string(), "SeldonDeployment has no metadata.uid");
        assert!(e.is_permanent());
        let mut s = sdep();
        s.metadata.namespace = None;
        assert_eq!(
            plan(&s, &RenderOptions::default()).unwrap_err().to_string(),
            "SeldonDeployment has no metadata.namespace"
        );
    }

    #[test]
    fn invalid_spec_is_a_permanent_render_error() {
        let mut s = sdep();
        s.spec.predictors[0].traffic = Some(30);
        s.spec.predictors.push(s.spec.predictors[0].clone());
        let e = plan(&s, &RenderOptions::default()).unwrap_err();
        assert_eq!(
            (e.reason(), e.event_reason(), e.is_permanent()),
            ("render", "InvalidSeldonDeployment", true)
        );
    }

    #[test]
    fn failed_status_keeps_what_was_known() {
        let mut s = sdep();
        let mut prev = SeldonDeploymentStatus {
            replicas: Some(2),
            ..Default::default()
        };
        prev.service_status.insert("svc".into(), Default::default());
        s.status = Some(prev);
        let f = failed_status(
            &s,
            "applying Deployment d failed: 403",
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(f.state, Some(State::Failed));
        assert_eq!(
            f.description.as_deref(),
            Some("applying Deployment d failed: 403")
        );
        assert_eq!(f.replicas, Some(2));
        assert!(f.service_status.contains_key("svc"));
    }
}
