//! One `apps/v1` Deployment per componentSpec (Seldon's `createDeploymentWithoutEngine`):
//! Seldon's labels, selector, annotations and container defaults, prepackaged servers from
//! the catalogue, the model initializer, and the GPU node-pool settings.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Container, DownwardAPIProjection, DownwardAPIVolumeFile, EmptyDirVolumeSource, EnvFromSource,
    EnvVar, ExecAction, HTTPGetAction, Lifecycle, LifecycleHandler, ObjectFieldSelector,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ProjectedVolumeSource, ResourceRequirements, SecretEnvSource, SecurityContext, TCPSocketAction,
    Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use seldon_crd::defaults::{effective_replicas, find_unit};
use seldon_crd::{SeldonPodSpec, names};
use seldon_graph::{EndpointType, Implementation, PredictiveUnit, PredictiveUnitType};

use crate::catalogue::{Catalogue, Placeholders};
use crate::{Context, Predictor, RenderOptions};

/// Where models are downloaded to and read from.
pub const MODELS_DIR: &str = "/mnt/models";
/// Downward-API volume with the pod's annotations (read by wrappers for timeouts).
pub const PODINFO_VOLUME: &str = "seldon-podinfo";
pub const PODINFO_PATH: &str = "/etc/podinfo";
/// Seldon's annotation: no model-initializer; the server reads `modelUri` itself.
pub const NO_STORAGE_INITIALIZER: &str = "seldon.io/no-storage-initializer";

/// The Deployments of predictor `p`, in componentSpec order.
pub fn render(cx: &Context, p: &Predictor<'_>, opts: &RenderOptions) -> Vec<Deployment> {
    p.spec
        .component_specs
        .iter()
        .enumerate()
        .map(|(i, c)| deployment(cx, p, i, c, opts))
        .collect()
}

/// The Deployment name of component `index`.
pub fn name(cx: &Context, p: &Predictor<'_>, index: usize, component: &SeldonPodSpec) -> String {
    let containers: Vec<&str> = component
        .spec
        .containers
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    names::deployment(
        &cx.name,
        &p.spec.name,
        index,
        component.metadata.name.as_deref(),
        &containers,
    )
}

/// The labels selecting component `index`'s pods (also its Deployment selector).
pub fn selector(
    cx: &Context,
    p: &Predictor<'_>,
    index: usize,
    component: &SeldonPodSpec,
) -> BTreeMap<String, String> {
    let mut sel = BTreeMap::from([(names::LABEL_SELDON_ID.to_string(), cx.id.clone())]);
    if index == p.root_component() {
        sel.insert(names::LABEL_SELDON_APP.to_string(), p.service.clone());
    }
    for c in &component.spec.containers {
        if find_unit(&p.spec.graph, &c.name).is_some() {
            sel.insert(
                names::container_svc_label(&c.name),
                names::container_service(&cx.name, &p.spec.name, &c.name),
            );
        }
    }
    if sel.len() == 1 {
        // a component with no graph container: keep its selector its own
        sel.insert(names::LABEL_APP.to_string(), name(cx, p, index, component));
    }
    sel
}

fn deployment(
    cx: &Context,
    p: &Predictor<'_>,
    index: usize,
    component: &SeldonPodSpec,
    opts: &RenderOptions,
) -> Deployment {
    let dep_name = name(cx, p, index, component);
    let sel = selector(cx, p, index, component);

    let mut labels = cx.base_labels();
    labels.insert(names::LABEL_APP.to_string(), dep_name.clone());
    labels.insert(names::LABEL_FLUENTD.to_string(), "true".to_string());
    labels.extend(p.spec.labels.clone());
    labels.extend(component.metadata.labels.clone().unwrap_or_default());
    labels.extend(sel.clone());
    if index == p.root_component() {
        labels.insert(
            names::LABEL_CONTAINS_SVCORCH.to_string(),
            "true".to_string(),
        );
    }
    for c in &component.spec.containers {
        if let Some(unit) = find_unit(&p.spec.graph, &c.name)
            && let Some(label) = type_label(unit)
        {
            labels.insert(label.to_string(), "true".to_string());
        }
    }
    if p.spec.is_shadow() {
        labels.insert(names::LABEL_SHADOW.to_string(), "true".to_string());
    }

    let mut annotations = cx.sdep.spec.annotations.clone();
    annotations.extend(p.spec.annotations.clone());
    let mut pod_annotations = BTreeMap::from([
        ("prometheus.io/scrape".to_string(), "true".to_string()),
        ("prometheus.io/path".to_string(), "/prometheus".to_string()),
    ]);
    // Istio's metrics merge (on by default) moves these annotations to the sidecar and scrapes
    // the app at `prometheus.io/port`, port 80 when unset, where nothing listens; name the
    // first graph container's metrics port (one port: the legacy annotation holds one).
    if let Some(port) = metrics_port(p, component) {
        pod_annotations.insert("prometheus.io/port".to_string(), port.to_string());
    }
    pod_annotations.extend(annotations.clone());
    pod_annotations.extend(component.metadata.annotations.clone().unwrap_or_default());

    let pod = pod_spec(cx, p, component, opts);
    let replicas = if component.hpa_spec.is_some() || component.keda_spec.is_some() {
        None // the autoscaler owns replicas
    } else {
        Some(effective_replicas(&cx.sdep, p.spec, component))
    };

    Deployment {
        metadata: ObjectMeta {
            name: Some(dep_name),
            namespace: Some(cx.namespace.clone()),
            labels: Some(labels.clone()),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas,
            selector: LabelSelector {
                match_labels: Some(sel),
                ..Default::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_string()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::String("10%".to_string())),
                    ..Default::default()
                }),
            }),
            progress_deadline_seconds: p.spec.progress_deadline_seconds,
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(pod_annotations),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// The `metrics` container port of the component's first graph-node container.
fn metrics_port(p: &Predictor<'_>, component: &SeldonPodSpec) -> Option<i32> {
    component
        .spec
        .containers
        .iter()
        .filter(|c| find_unit(&p.spec.graph, &c.name).is_some_and(|u| u.endpoint.is_some()))
        .find_map(|c| {
            c.ports
                .iter()
                .flatten()
                .find(|port| port.name.as_deref() == Some(names::PORT_NAME_METRICS))
                .map(|port| port.container_port)
        })
}

fn type_label(unit: &PredictiveUnit) -> Option<&'static str> {
    match unit.unit_type.as_ref()? {
        PredictiveUnitType::Model => Some(names::LABEL_MODEL),
        PredictiveUnitType::Router => Some(names::LABEL_ROUTER),
        PredictiveUnitType::Combiner => Some(names::LABEL_COMBINER),
        PredictiveUnitType::Transformer => Some(names::LABEL_TRANSFORMER),
        PredictiveUnitType::OutputTransformer => Some(names::LABEL_OUTPUT_TRANSFORMER),
        _ => None,
    }
}

fn pod_spec(
    cx: &Context,
    p: &Predictor<'_>,
    component: &SeldonPodSpec,
    opts: &RenderOptions,
) -> PodSpec {
    let mut pod = component.spec.clone();
    let mut volumes = pod.volumes.take().unwrap_or_default();
    let mut init = pod.init_containers.take().unwrap_or_default();

    for container in &mut pod.containers {
        let Some(unit) = find_unit(&p.spec.graph, &container.name) else {
            continue;
        };
        if let Some(Implementation::Prepackaged(key)) = &unit.implementation
            && let Some(server) = opts.catalogue.get(key)
        {
            let endpoint = unit.endpoint.clone().unwrap_or_default();
            let no_storage = cx.annotation(NO_STORAGE_INITIALIZER) == Some("true");
            let vars = Placeholders {
                model_name: &unit.name,
                http_port: endpoint.http_port.unwrap_or(names::HTTP_PORT_BASE),
                grpc_port: endpoint.grpc_port.unwrap_or(names::GRPC_PORT_BASE),
                model_dir: match &unit.model_uri {
                    Some(uri) if no_storage => uri,
                    _ => MODELS_DIR,
                },
                namespace: &cx.namespace,
            };
            // the user's skeleton container (resources, env, image) wins
            if container.image.as_deref().is_none_or(str::is_empty) {
                container.image = Some(server.image.clone());
            }
            if container.args.is_none() && container.command.is_none() {
                container.args = Some(if no_storage {
                    Catalogue::no_storage_args(
                        server,
                        &vars,
                        unit.parameters
                            .iter()
                            .map(|p| (p.name.as_str(), p.value.as_str())),
                    )
                } else {
                    Catalogue::args(server, &vars)
                });
            }
            let env = container.env.get_or_insert_with(Vec::new);
            for (k, v) in &server.env {
                push_env(env, k, &vars.apply(v));
            }
            // HTTP probes where the server has health paths (Triton, MLServer: Seldon's)
            let http_get = |path: &String, delay| Probe {
                http_get: Some(HTTPGetAction {
                    path: Some(path.clone()),
                    port: IntOrString::String(names::PORT_NAME_HTTP.to_string()),
                    scheme: Some("HTTP".to_string()),
                    ..Default::default()
                }),
                initial_delay_seconds: Some(delay),
                period_seconds: Some(5),
                ..Default::default()
            };
            if let Some(path) = &server.readiness_path {
                container
                    .readiness_probe
                    .get_or_insert_with(|| http_get(path, 20));
            }
            if let Some(path) = &server.liveness_path {
                container
                    .liveness_probe
                    .get_or_insert_with(|| http_get(path, 60));
            }
        }
        node_container_defaults(cx, p, unit, container);
        // The filter's collector also takes the node servers' own SERVER spans (seldon-server,
        // the SDK and the Python wrapper read the OpenTelemetry variable; service name = the
        // node's name). The user's own value wins.
        if let Some(endpoint) = opts.tracing_endpoint.as_deref()
            && unit.endpoint.is_some()
        {
            let env = container.env.get_or_insert_with(Vec::new);
            push_env(env, "OTEL_EXPORTER_OTLP_ENDPOINT", endpoint);
        }
        if let Some(uri) = unit.model_uri.as_deref()
            && cx.annotation(NO_STORAGE_INITIALIZER) != Some("true")
        {
            model_initializer(unit, uri, container, &mut volumes, &mut init, opts);
        }
        if let Some(sa) = &unit.service_account_name {
            pod.service_account_name.get_or_insert_with(|| sa.clone());
        }
    }

    finish_pod(&mut pod, volumes, init, opts);
    pod
}

/// What every rendered pod gets (graph components and the explainer): the `seldon-podinfo`
/// volume mounted in every container, the volumes and init containers collected, grace 20 s,
/// the default user, the GPU pool.
pub(crate) fn finish_pod(
    pod: &mut PodSpec,
    mut volumes: Vec<Volume>,
    init: Vec<Container>,
    opts: &RenderOptions,
) {
    // Downward-API pod annotations in every container (Seldon's seldon-podinfo).
    if !volumes.iter().any(|v| v.name == PODINFO_VOLUME) {
        volumes.push(Volume {
            name: PODINFO_VOLUME.to_string(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(vec![VolumeProjection {
                    downward_api: Some(DownwardAPIProjection {
                        items: Some(vec![DownwardAPIVolumeFile {
                            path: "annotations".to_string(),
                            field_ref: Some(ObjectFieldSelector {
                                field_path: "metadata.annotations".to_string(),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }]),
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    for container in &mut pod.containers {
        let mounts = container.volume_mounts.get_or_insert_with(Vec::new);
        if !mounts.iter().any(|m| m.name == PODINFO_VOLUME) {
            mounts.push(VolumeMount {
                name: PODINFO_VOLUME.to_string(),
                mount_path: PODINFO_PATH.to_string(),
                ..Default::default()
            });
        }
    }

    pod.volumes = (!volumes.is_empty()).then_some(volumes);
    pod.init_containers = (!init.is_empty()).then_some(init);
    pod.termination_grace_period_seconds.get_or_insert(20);
    if pod.security_context.is_none()
        && let Some(uid) = opts.default_user_id
    {
        pod.security_context = Some(PodSecurityContext {
            run_as_user: Some(uid),
            ..Default::default()
        });
    }
    gpu_pool(pod, opts);
}

fn push_env(env: &mut Vec<EnvVar>, name: &str, value: &str) {
    if !env.iter().any(|e| e.name == name) {
        env.push(EnvVar {
            name: name.to_string(),
            value: Some(value.to_string()),
            ..Default::default()
        });
    }
}

/// Seldon's `createContainerService` defaults for a graph node's container: env, probes,
/// preStop. User-set values win.
fn node_container_defaults(
    cx: &Context,
    p: &Predictor<'_>,
    unit: &PredictiveUnit,
    container: &mut Container,
) {
    let Some(endpoint) = &unit.endpoint else {
        return;
    };
    let http = endpoint.http_port.unwrap_or(names::HTTP_PORT_BASE);
    let grpc = endpoint.grpc_port.unwrap_or(names::GRPC_PORT_BASE);
    let service_port = endpoint.service_port.unwrap_or(http);
    let metrics = container
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some(names::PORT_NAME_METRICS))
        .map_or(names::METRICS_PORT_BASE, |p| p.container_port);
    let parameters = serde_json::to_string(&unit.parameters).unwrap_or_else(|_| "[]".to_string());
    let labels = serde_json::to_string(&p.spec.labels).unwrap_or_else(|_| "{}".to_string());
    let image = container.image.clone().unwrap_or_default();
    let env = container.env.get_or_insert_with(Vec::new);
    for (k, v) in [
        ("PREDICTIVE_UNIT_SERVICE_PORT", service_port.to_string()),
        ("PREDICTIVE_UNIT_HTTP_SERVICE_PORT", http.to_string()),
        ("PREDICTIVE_UNIT_GRPC_SERVICE_PORT", grpc.to_string()),
        ("MLSERVER_HTTP_PORT", http.to_string()),
        ("MLSERVER_GRPC_PORT", grpc.to_string()),
        ("PREDICTIVE_UNIT_PARAMETERS", parameters),
        ("PREDICTIVE_UNIT_ID", unit.name.clone()),
        ("MLSERVER_MODEL_NAME", unit.name.clone()),
        ("PREDICTIVE_UNIT_IMAGE", image),
        ("PREDICTOR_ID", p.spec.name.clone()),
        ("PREDICTOR_LABELS", labels),
        ("SELDON_DEPLOYMENT_ID", cx.name.clone()),
        ("SELDON_EXECUTOR_ENABLED", "true".to_string()),
        ("PREDICTIVE_UNIT_METRICS_SERVICE_PORT", metrics.to_string()),
        (
            "PREDICTIVE_UNIT_METRICS_ENDPOINT",
            "/prometheus".to_string(),
        ),
        ("MLSERVER_METRICS_PORT", metrics.to_string()),
        ("MLSERVER_METRICS_ENDPOINT", "/prometheus".to_string()),
    ] {
        push_env(env, k, &v);
    }
    if unit.model_uri.is_some() {
        push_env(env, "MLSERVER_MODEL_URI", MODELS_DIR);
        push_env(env, "SELDON_MODEL_URI", MODELS_DIR);
    }
    let probe_port = if endpoint.endpoint_type == Some(EndpointType::Grpc) {
        names::PORT_NAME_GRPC
    } else {
        names::PORT_NAME_HTTP
    };
    let tcp = |delay| Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::String(probe_port.to_string()),
            ..Default::default()
        }),
        initial_delay_seconds: Some(delay),
        period_seconds: Some(5),
        ..Default::default()
    };
    container.liveness_probe.get_or_insert_with(|| tcp(60));
    container.readiness_probe.get_or_insert_with(|| tcp(20));
    container.lifecycle.get_or_insert_with(|| Lifecycle {
        pre_stop: Some(LifecycleHandler {
            exec: Some(ExecAction {
                command: Some(vec!["/bin/sh".into(), "-c".into(), "/bin/sleep 10".into()]),
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
}

/// Model initializer (Seldon's `model_initializer_injector.go`): an init container copying
/// `modelUri` into an emptyDir at `/mnt/models`, mounted read-only in the model container.
/// `pvc://<claim>/<path>` is mounted directly (read-only, `subPath`), with no init container.
///
/// Egress before the sidecar (Seldon #4450): in an Istio pod whose iptables rules exist before
/// the init containers run (the Istio CNI plugin; OpenShift, GKE ASM), the download is
/// redirected to a proxy that is not running yet and fails. The initializer runs as
/// `RenderOptions::initializer_user_id` (default 1337, the proxy's UID), the fix Istio
/// documents: its rules let that UID out unredirected. Its traffic bypasses the mesh (no mTLS,
/// no egress policy), as with istio-init, which runs after app init containers. See
/// README "Model downloads before the sidecar".
pub(crate) fn model_initializer(
    unit: &PredictiveUnit,
    uri: &str,
    container: &mut Container,
    volumes: &mut Vec<Volume>,
    init: &mut Vec<Container>,
    opts: &RenderOptions,
) {
    let volume = names::container_suffixed(&container.name, "provision-location");
    let mounts = container.volume_mounts.get_or_insert_with(Vec::new);
    if mounts.iter().any(|m| m.mount_path == MODELS_DIR) {
        return; // the user mounts models themselves
    }
    if let Some(rest) = uri.strip_prefix("pvc://") {
        let (claim, sub_path) = rest.split_once('/').unwrap_or((rest, ""));
        volumes.push(Volume {
            name: volume.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.to_string(),
                read_only: Some(true),
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: volume,
            mount_path: MODELS_DIR.to_string(),
            read_only: Some(true),
            sub_path: (!sub_path.is_empty()).then(|| sub_path.trim_end_matches('/').to_string()),
            ..Default::default()
        });
        return;
    }
    volumes.push(Volume {
        name: volume.clone(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    });
    mounts.push(VolumeMount {
        name: volume.clone(),
        mount_path: MODELS_DIR.to_string(),
        read_only: Some(true),
        ..Default::default()
    });
    let init_name = names::container_suffixed(&container.name, "model-initializer");
    if init.iter().any(|c| c.name == init_name) {
        return; // a user-supplied initializer is kept
    }
    let secret = unit
        .env_secret_ref_name
        .clone()
        .or_else(|| opts.default_env_secret_ref_name.clone());
    let q = |s: &str| Quantity(s.to_string());
    init.push(Container {
        name: init_name,
        // the node's own image, else the catalogue's for its server (TENSORFLOW_SERVER's has
        // TensorFlow), else the operator's
        image: Some(
            unit.storage_initializer_image
                .clone()
                .or_else(|| match &unit.implementation {
                    Some(Implementation::Prepackaged(key)) => opts
                        .catalogue
                        .get(key)
                        .and_then(|s| s.initializer_image.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| opts.initializer_image.clone()),
        ),
        args: Some(vec![uri.to_string(), MODELS_DIR.to_string()]),
        // Tells the initializer which runtime reads the files, so a SKLEARN_SERVER's
        // `model.joblib` is converted to ONNX while the model is fetched.
        env: match &unit.implementation {
            Some(Implementation::Prepackaged(key)) => Some(vec![EnvVar {
                name: "SELDON_IMPLEMENTATION".to_string(),
                value: Some(key.clone()),
                ..Default::default()
            }]),
            _ => None,
        },
        volume_mounts: Some(vec![VolumeMount {
            name: volume,
            mount_path: MODELS_DIR.to_string(),
            ..Default::default()
        }]),
        env_from: secret.map(|name| {
            vec![EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name,
                    optional: None,
                }),
                ..Default::default()
            }]
        }),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), q("100m")),
                ("memory".to_string(), q("100Mi")),
            ])),
            limits: Some(BTreeMap::from([
                ("cpu".to_string(), q("1")),
                ("memory".to_string(), q("1Gi")),
            ])),
            ..Default::default()
        }),
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        security_context: opts.initializer_user_id.map(|uid| SecurityContext {
            run_as_user: Some(uid),
            ..Default::default()
        }),
        ..Default::default()
    });
}

/// Whether a container requests or limits the GPU resource.
pub fn wants_gpu(container: &Container, resource: &str) -> bool {
    container.resources.as_ref().is_some_and(|r| {
        let asks = |m: &Option<BTreeMap<String, Quantity>>| {
            m.as_ref()
                .is_some_and(|m| m.get(resource).is_some_and(|q| q.0.trim() != "0"))
        };
        asks(&r.requests) || asks(&r.limits)
    })
}

/// Adds the GPU pool's tolerations, node selector and runtime class to a pod that asks for a
/// GPU; values the user set win.
fn gpu_pool(pod: &mut PodSpec, opts: &RenderOptions) {
    let pool = &opts.gpu_pool;
    let containers = pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten());
    if !containers.into_iter().any(|c| wants_gpu(c, &pool.resource)) {
        return;
    }
    let tolerations = pod.tolerations.get_or_insert_with(Vec::new);
    for t in &pool.tolerations {
        if !tolerations.contains(t) {
            tolerations.push(t.clone());
        }
    }
    if !pool.node_selector.is_empty() {
        let selector = pod.node_selector.get_or_insert_with(BTreeMap::new);
        for (k, v) in &pool.node_selector {
            selector.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    if pod.runtime_class_name.is_none() {
        pod.runtime_class_name = pool.runtime_class_name.clone();
    }
}
