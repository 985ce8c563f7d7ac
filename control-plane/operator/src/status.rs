//! SeldonDeployment status, computed purely from the owned objects the API server returned
//! (reference §1.6): `state`, per-Deployment and per-Service status, `address.url`,
//! `replicas`, conditions and `observedGeneration`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use seldon_crd::{
    Addressable, Condition, DeploymentStatus, SeldonDeployment, SeldonDeploymentStatus,
    ServiceStatus, State,
};
use seldon_graph::Protocol;

use crate::names;

/// Everything status depends on, gathered by reconcile.
#[derive(Debug, Clone, Default)]
pub struct StatusInput<'a> {
    /// The owned Deployments as last applied/read (with their `.status`).
    pub deployments: &'a [Deployment],
    /// The owned Services.
    pub services: &'a [Service],
    /// Name of the first Deployment of the first predictor (source of `status.replicas`).
    pub first_deployment: Option<&'a str>,
    /// A reconcile error, if this reconcile failed.
    pub error: Option<&'a str>,
    /// The status currently stored (keeps condition transition times stable).
    pub previous: Option<&'a SeldonDeploymentStatus>,
    /// Now, for new condition transitions.
    pub now: Timestamp,
}

/// One Deployment's Seldon-style state.
pub fn deployment_state(d: &Deployment) -> State {
    let spec_replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let st = d.status.clone().unwrap_or_default();
    let cond = |t: &str| {
        st.conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == t)
            .map(|c| c.status.clone())
    };
    if cond("ReplicaFailure").as_deref() == Some("True")
        || cond("Progressing").as_deref() == Some("False")
    {
        return State::Failed;
    }
    let generation = d.metadata.generation.unwrap_or(0);
    let observed = st.observed_generation.unwrap_or(0);
    let available = st.available_replicas.unwrap_or(0);
    let updated = st.updated_replicas.unwrap_or(0);
    if observed >= generation && available >= spec_replicas && updated >= spec_replicas {
        State::Available
    } else {
        State::Creating
    }
}

fn state_word(s: State) -> &'static str {
    match s {
        State::Creating => "Creating",
        State::Available => "Available",
        State::Failed => "Failed",
    }
}

/// `address.url` of the first predictor, as Seldon Core v1 reports it.
pub fn address_url(sdep: &SeldonDeployment) -> Option<String> {
    let ns = sdep.metadata.namespace.as_deref().unwrap_or("default");
    let name = sdep.metadata.name.as_deref()?;
    let p = sdep.spec.predictors.first()?;
    let svc = seldon_crd::names::predictor_service(
        name,
        &p.name,
        p.annotations
            .get(seldon_crd::names::ANNOTATION_SVC_NAME)
            .map(String::as_str),
    );
    let port = seldon_crd::names::PREDICTOR_HTTP_PORT;
    let path = match sdep.spec.protocol() {
        Protocol::Seldon => "/api/v1.0/predictions".to_string(),
        Protocol::V2 => format!("/v2/models/{}/infer", p.graph.name),
        Protocol::Tensorflow => format!("/v1/models/{}:predict", p.graph.name),
    };
    Some(format!("http://{svc}.{ns}.svc.cluster.local:{port}{path}"))
}

fn condition(
    previous: Option<&SeldonDeploymentStatus>,
    type_: &str,
    ok: bool,
    reason: Option<String>,
    message: Option<String>,
    now: Timestamp,
) -> Condition {
    let status = if ok { "True" } else { "False" }.to_string();
    let prev = previous.and_then(|p| p.conditions.iter().find(|c| c.condition_type == type_));
    let last_transition_time = match prev {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Some(Time(now)),
    };
    Condition {
        condition_type: type_.to_string(),
        status,
        severity: None,
        last_transition_time,
        reason: if ok { None } else { reason },
        message: if ok { None } else { message },
    }
}

/// The status to write.
pub fn compute(sdep: &SeldonDeployment, input: &StatusInput<'_>) -> SeldonDeploymentStatus {
    let ns = sdep.metadata.namespace.as_deref().unwrap_or("default");
    let mut deployment_status = BTreeMap::new();
    let mut dep_states = Vec::new();
    for d in input.deployments {
        let name = d.metadata.name.clone().unwrap_or_default();
        let s = deployment_state(d);
        dep_states.push((name.clone(), s));
        let st = d.status.clone().unwrap_or_default();
        let description = st
            .conditions
            .iter()
            .flatten()
            .find(|c| c.status == "False" || c.type_ == "ReplicaFailure")
            .and_then(|c| c.message.clone());
        deployment_status.insert(
            name.clone(),
            DeploymentStatus {
                name: Some(name),
                status: Some(state_word(s).to_string()),
                description,
                replicas: Some(st.replicas.unwrap_or(0)),
                available_replicas: Some(st.available_replicas.unwrap_or(0)),
                explainer_for: None,
            },
        );
    }
    let mut service_status = BTreeMap::new();
    for s in input.services {
        let name = s.metadata.name.clone().unwrap_or_default();
        let port = |pn: &str| {
            s.spec
                .as_ref()
                .and_then(|sp| sp.ports.as_ref())
                .and_then(|ports| {
                    ports
                        .iter()
                        .find(|p| p.name.as_deref() == Some(pn))
                        .map(|p| format!("{name}.{ns}:{}", p.port))
                })
        };
        service_status.insert(
            name.clone(),
            ServiceStatus {
                svc_name: Some(name.clone()),
                http_endpoint: port("http"),
                grpc_endpoint: port("grpc"),
                explainer_for: None,
            },
        );
    }

    let failed: Vec<&str> = dep_states
        .iter()
        .filter(|(_, s)| *s == State::Failed)
        .map(|(n, _)| n.as_str())
        .collect();
    let creating: Vec<&str> = dep_states
        .iter()
        .filter(|(_, s)| *s == State::Creating)
        .map(|(n, _)| n.as_str())
        .collect();
    let deployments_ready = !dep_states.is_empty() && failed.is_empty() && creating.is_empty();
    let services_ready = !input.services.is_empty();

    let (state, description) = if let Some(err) = input.error {
        (State::Failed, Some(err.to_string()))
    } else if !failed.is_empty() {
        (
            State::Failed,
            Some(format!("Deployment(s) failed: {}", failed.join(", "))),
        )
    } else if deployments_ready && services_ready {
        (State::Available, None)
    } else {
        (
            State::Creating,
            (!creating.is_empty())
                .then(|| format!("Waiting for Deployment(s): {}", creating.join(", "))),
        )
    };

    let prev = input.previous;
    let now = input.now;
    let dep_msg = (!deployments_ready).then(|| {
        if dep_states.is_empty() {
            "no Deployments yet".to_string()
        } else {
            format!(
                "not available: {}",
                [failed.clone(), creating.clone()].concat().join(", ")
            )
        }
    });
    let conditions = vec![
        condition(
            prev,
            names::COND_DEPLOYMENTS_READY,
            deployments_ready,
            Some("DeploymentsNotReady".into()),
            dep_msg,
            now,
        ),
        condition(
            prev,
            names::COND_SERVICES_READY,
            services_ready,
            Some("ServicesNotReady".into()),
            Some("no Services yet".into()),
            now,
        ),
        condition(
            prev,
            names::COND_READY,
            state == State::Available,
            Some(
                if input.error.is_some() {
                    "ReconcileFailed"
                } else {
                    "NotReady"
                }
                .into(),
            ),
            description.clone(),
            now,
        ),
    ];

    let replicas = input
        .first_deployment
        .and_then(|n| {
            input
                .deployments
                .iter()
                .find(|d| d.metadata.name.as_deref() == Some(n))
        })
        .map(|d| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));

    SeldonDeploymentStatus {
        state: Some(state),
        description,
        deployment_status,
        service_status,
        replicas,
        address: Some(Addressable {
            url: address_url(sdep),
        }),
        conditions,
        observed_generation: sdep.metadata.generation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        DeploymentCondition, DeploymentSpec, DeploymentStatus as K8sStatus,
    };
    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn sdep(protocol: &str) -> SeldonDeployment {
        let text = format!(
            "apiVersion: machinelearning.seldon.io/v1\nkind: SeldonDeployment\nmetadata: {{name: iris, namespace: seldon, generation: 4}}\nspec:\n  protocol: {protocol}\n  predictors:\n  - name: default\n    graph: {{name: clf, implementation: SKLEARN_SERVER, modelUri: 'gs://x'}}\n"
        );
        seldon_crd::parse_yaml(&text).unwrap().remove(0).sdep
    }

    fn dep(name: &str, want: i32, available: i32, conditions: &[(&str, &str)]) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some(name.into()),
                generation: Some(1),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(want),
                ..Default::default()
            }),
            status: Some(K8sStatus {
                observed_generation: Some(1),
                replicas: Some(want),
                available_replicas: Some(available),
                updated_replicas: Some(available),
                conditions: Some(
                    conditions
                        .iter()
                        .map(|(t, s)| DeploymentCondition {
                            type_: (*t).into(),
                            status: (*s).into(),
                            message: Some(format!("{t} is {s}")),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
        }
    }

    fn svc(name: &str) -> Service {
        let port = |n: &str, p: i32| ServicePort {
            name: Some(n.into()),
            port: p,
            ..Default::default()
        };
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                ports: Some(vec![port("http", 8000), port("grpc", 5001)]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    #[test]
    fn available_when_every_deployment_is_available() {
        let deps = [dep("d1", 2, 2, &[("Available", "True")])];
        let svcs = [svc("iris-default")];
        let s = compute(
            &sdep("seldon"),
            &StatusInput {
                deployments: &deps,
                services: &svcs,
                first_deployment: Some("d1"),
                now: now(),
                ..Default::default()
            },
        );
        assert_eq!(s.state, Some(State::Available));
        assert_eq!(s.replicas, Some(2));
        assert_eq!(s.observed_generation, Some(4));
        assert_eq!(
            s.service_status["iris-default"].http_endpoint.as_deref(),
            Some("iris-default.seldon:8000")
        );
        assert_eq!(
            s.service_status["iris-default"].grpc_endpoint.as_deref(),
            Some("iris-default.seldon:5001")
        );
        assert!(s.conditions.iter().all(|c| c.status == "True"));
    }

    #[test]
    fn creating_while_replicas_are_missing_and_failed_when_progress_stops() {
        let svcs = [svc("iris-default")];
        let creating = [dep("d1", 2, 1, &[])];
        let s = compute(
            &sdep("seldon"),
            &StatusInput {
                deployments: &creating,
                services: &svcs,
                now: now(),
                ..Default::default()
            },
        );
        assert_eq!(s.state, Some(State::Creating));
        assert_eq!(
            s.description.as_deref(),
            Some("Waiting for Deployment(s): d1")
        );
        assert_eq!(
            s.deployment_status["d1"].status.as_deref(),
            Some("Creating")
        );

        let stuck = [dep("d1", 1, 0, &[("Progressing", "False")])];
        let s = compute(
            &sdep("seldon"),
            &StatusInput {
                deployments: &stuck,
                services: &svcs,
                now: now(),
                ..Default::default()
            },
        );
        assert_eq!(s.state, Some(State::Failed));
        assert_eq!(s.description.as_deref(), Some("Deployment(s) failed: d1"));
        assert_eq!(
            s.deployment_status["d1"].description.as_deref(),
            Some("Progressing is False")
        );
    }

    #[test]
    fn an_error_wins_and_transition_times_only_move_on_change() {
        let deps = [dep("d1", 1, 1, &[("Available", "True")])];
        let svcs = [svc("s")];
        let ok = compute(
            &sdep("seldon"),
            &StatusInput {
                deployments: &deps,
                services: &svcs,
                now: now(),
                ..Default::default()
            },
        );
        let later = Timestamp::from_second(1_800_000_100).unwrap();
        let again = compute(
            &sdep("seldon"),
            &StatusInput {
                deployments: &deps,
                services: &svcs,
                previous: Some(&ok),
                now: later,
                ..Default::default()
            },
        );
        assert_eq!(ok, again, "same facts, same status: nothing to write");
        let failed = compute(
            &sdep("seldon"),
            &StatusInput {
                deployments: &deps,
                services: &svcs,
                error: Some("boom"),
                previous: Some(&ok),
                now: later,
                ..Default::default()
            },
        );
        assert_eq!(failed.state, Some(State::Failed));
        let ready = failed
            .conditions
            .iter()
            .find(|c| c.condition_type == "Ready")
            .unwrap();
        assert_eq!(
            (
                ready.status.as_str(),
                ready.reason.as_deref(),
                ready.message.as_deref()
            ),
            ("False", Some("ReconcileFailed"), Some("boom"))
        );
        assert_eq!(ready.last_transition_time, Some(Time(later)));
        let deps_ready = failed
            .conditions
            .iter()
            .find(|c| c.condition_type == "DeploymentsReady")
            .unwrap();
        assert_eq!(deps_ready.last_transition_time, Some(Time(now())));
    }

    #[test]
    fn address_follows_the_protocol() {
        assert_eq!(
            address_url(&sdep("seldon")).unwrap(),
            "http://iris-default.seldon.svc.cluster.local:8000/api/v1.0/predictions"
        );
        assert_eq!(
            address_url(&sdep("v2")).unwrap(),
            "http://iris-default.seldon.svc.cluster.local:8000/v2/models/clf/infer"
        );
        assert_eq!(
            address_url(&sdep("tensorflow")).unwrap(),
            "http://iris-default.seldon.svc.cluster.local:8000/v1/models/clf:predict"
        );
        let mut none = sdep("seldon");
        none.spec.predictors.clear();
        assert_eq!(address_url(&none), None);
    }

    #[test]
    fn no_objects_yet_is_creating() {
        let s = compute(
            &sdep("seldon"),
            &StatusInput {
                now: now(),
                ..Default::default()
            },
        );
        assert_eq!(s.state, Some(State::Creating));
        let d = s
            .conditions
            .iter()
            .find(|c| c.condition_type == "DeploymentsReady")
            .unwrap();
        assert_eq!(d.message.as_deref(), Some("no Deployments yet"));
    }
}
