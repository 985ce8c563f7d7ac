//! The node agent of the mesh harness: plays kubelet + CNI + Istio sidecar injection on this
//! machine, so the Pods of the operator's Deployments really run (as processes, each pod in
//! its own network namespace, with a real `pilot-agent` + Envoy sidecar and iptables
//! interception).
//!
//! ```text
//!  apiserver ──watch Pods──► agent thread (in the node netns, own tokio runtime)
//!     ▲                        │ per pod: netns + veth (netns.rs), volumes, init containers,
//!     │  binding, status,      │ istio-iptables, pilot-agent (uid 1337) → Envoy, containers,
//!     └── Node, Lease, delete ─┘ probes, restarts, preStop, termination
//! ```
//!
//! Pure decisions (image mapping, env resolution, command composition, probe rewrite, status
//! building, shell scripts) are plain functions tested below; the runtime part only runs them.
//! Differences from a real kubelet are listed in `README.md` ("Node agent").

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Namespace, ObjectFieldSelector, Pod,
    PodCondition, PodIP, PodStatus, Probe, Secret, ServiceAccount, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};

use crate::netns::{self, NetnsError, PodNetwork};
use crate::procs;

/// Field manager of every write the agent makes.
pub const FIELD_MANAGER: &str = "seldon-mesh-node-agent";
/// The sidecar's container name, as Istio's injector names it (also its log file's stem).
pub const SIDECAR_NAME: &str = "istio-proxy";
/// The uid and gid Envoy runs as, so `istio-iptables -u 1337` leaves its own traffic alone.
pub const PROXY_UID: u32 = 1337;
const NAMESPACE_INJECTION_LABEL: &str = "istio-injection";
const INJECT_ANNOTATION: &str = "sidecar.istio.io/inject";
const PROXY_CONFIG_ANNOTATION: &str = "proxy.istio.io/config";
/// Istio's status port (`/app-health/...`, rewritten probes) and Envoy's readiness port.
const STATUS_PORT: u16 = 15020;
const ENVOY_READY_PORT: u16 = 15021;
/// Set to `1` to run `istio-iptables` before the pod's init containers, as a real pod's
/// `istio-init` container does (then init-container egress is redirected to a proxy that
/// is not running yet: Seldon #4450). Default: after them.
pub const ISTIO_INIT_FIRST_ENV: &str = "SELDON_MESH_ISTIO_INIT_FIRST";
/// Heartbeat period of the Node status and Lease.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// How often the pod loop looks at its processes.
const TICK: Duration = Duration::from_millis(200);
/// kubelet's crash-loop backoff: 10 s doubling to 5 min.
const BACKOFF_START: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// Grace given to processes when the agent itself is dropped (end of a test).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Where the sidecar's files appear inside its own mount namespace (see `sidecar_script`).
const ISTIO_ROOT: &str = "/var/lib/istio";
const PATH_ENV: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How to run an image: its entrypoint. Container `args` are appended, container `env`
/// overrides `env`; a container `command` replaces the entrypoint (see [`NodeAgent`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
}

/// Everything the agent needs; see the crate README for what each binary is.
pub struct NodeAgentConfig {
    /// Admin client; used to register the Node before `start` returns. The agent's own
    /// thread builds its client from `kubeconfig_path` so it never depends on the caller's
    /// runtime being polled.
    pub client: kube::Client,
    pub node_name: String,
    /// Per-test directory; pods live under `workdir/pods/<ns>_<pod>/`.
    pub workdir: PathBuf,
    pub pilot_agent: PathBuf,
    pub envoy: PathBuf,
    /// Istio's `envoy_bootstrap.json`.
    pub bootstrap_template: PathBuf,
    /// istiod's address as pods see it (`10.77.0.1`): xDS on 15010, CA on 15012.
    pub istiod_host: String,
    /// Image name without tag or digest → how to run it.
    pub images: BTreeMap<String, ImageCommand>,
    pub kubeconfig_path: PathBuf,
}

impl fmt::Debug for NodeAgentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeAgentConfig")
            .field("node_name", &self.node_name)
            .field("workdir", &self.workdir)
            .field("pilot_agent", &self.pilot_agent)
            .field("envoy", &self.envoy)
            .field("bootstrap_template", &self.bootstrap_template)
            .field("istiod_host", &self.istiod_host)
            .field("images", &self.images)
            .field("kubeconfig_path", &self.kubeconfig_path)
            .finish_non_exhaustive()
    }
}

/// What stopped the agent from starting.
#[derive(Debug, thiserror::Error)]
pub enum NodeAgentError {
    #[error("network namespace: {0}")]
    Netns(#[from] NetnsError),
    #[error("kubernetes API ({context}): {source}")]
    Kube {
        context: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig { path: PathBuf, message: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} not found at {path}")]
    MissingFile { what: &'static str, path: PathBuf },
    #[error("the node agent thread ended before it was ready")]
    ThreadGone,
}

fn kube_err(context: impl Into<String>) -> impl FnOnce(kube::Error) -> NodeAgentError {
    let context = context.into();
    move |source| NodeAgentError::Kube {
        context,
        source: Box::new(source),
    }
}

/// Why a container cannot be started; shown in its status (`reason`, `message`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainerConfigError {
    #[error(
        "image {image:?} (name {name:?}) is not in the node agent's image map (known: {known})"
    )]
    UnknownImage {
        image: String,
        name: String,
        known: String,
    },
    #[error(
        "command {command:?} is not the entrypoint {program:?} of image {image:?}; the harness runs one program per image"
    )]
    CommandNotInImage {
        command: String,
        program: String,
        image: String,
    },
    #[error("configmap {namespace}/{name} not found")]
    MissingConfigMap { namespace: String, name: String },
    #[error("secret {namespace}/{name} not found")]
    MissingSecret { namespace: String, name: String },
    #[error("key {key:?} not found in {kind} {name}")]
    MissingKey {
        kind: &'static str,
        name: String,
        key: String,
    },
    #[error("fieldPath {0:?} is not supported by the node agent")]
    UnsupportedFieldPath(String),
    #[error("env var {0:?}: valueFrom has no supported source")]
    UnsupportedEnvSource(String),
    #[error("named port {port:?} not found in container {container:?}")]
    UnknownPort { port: String, container: String },
    #[error("volume {0:?} is mounted but not defined in the pod")]
    UnknownVolume(String),
    #[error("volume {name:?}: {kind} volumes are not supported by the node agent")]
    UnsupportedVolume { name: String, kind: String },
    #[error("volume mount path {0:?} must be absolute and must not be /")]
    BadMountPath(String),
    #[error("{0}")]
    Other(String),
}

impl ContainerConfigError {
    /// The `reason` a kubelet would show for it.
    fn reason(&self) -> &'static str {
        match self {
            ContainerConfigError::UnknownImage { .. } => "ErrImagePull",
            ContainerConfigError::UnsupportedVolume { .. }
            | ContainerConfigError::UnknownVolume(_)
            | ContainerConfigError::BadMountPath(_) => "ContainerCreating",
            _ => "CreateContainerConfigError",
        }
    }
}

// ---------------------------------------------------------------------------------------
// Pure: images, env, commands
// ---------------------------------------------------------------------------------------

/// The image reference without tag or digest:
/// `localhost:5000/seldon-mesh/server:0.1.0@sha256:…` → `localhost:5000/seldon-mesh/server`.
fn image_name(image: &str) -> &str {
    let no_digest = image.split_once('@').map_or(image, |(name, _)| name);
    match no_digest.rfind(':') {
        Some(i) if !no_digest[i..].contains('/') => &no_digest[..i],
        _ => no_digest,
    }
}

fn lookup_image<'a>(
    images: &'a BTreeMap<String, ImageCommand>,
    image: &str,
) -> Result<&'a ImageCommand, ContainerConfigError> {
    let name = image_name(image);
    let candidates = [
        Some(name),
        name.strip_prefix("docker.io/library/"),
        name.strip_prefix("docker.io/"),
    ];
    candidates
        .into_iter()
        .flatten()
        .find_map(|n| images.get(n))
        .ok_or_else(|| ContainerConfigError::UnknownImage {
            image: image.to_string(),
            name: name.to_string(),
            known: images.keys().cloned().collect::<Vec<_>>().join(", "),
        })
}

/// Kubernetes' `$(VAR)` expansion: defined names are replaced, `$$` is a literal `$`,
/// anything else is left as written.
fn expand_vars(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match lookup(name) {
                Some(value) => out.push_str(&value),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// ConfigMaps and Secrets of the pod's namespace that its env and volumes refer to (secret
/// values decoded), fetched before the pure resolution.
#[derive(Debug, Default, Clone)]
struct ConfigSources {
    namespace: String,
    config_maps: BTreeMap<String, BTreeMap<String, String>>,
    secrets: BTreeMap<String, BTreeMap<String, String>>,
}

impl ConfigSources {
    fn config_map(&self, name: &str) -> Result<&BTreeMap<String, String>, ContainerConfigError> {
        self.config_maps
            .get(name)
            .ok_or_else(|| ContainerConfigError::MissingConfigMap {
                namespace: self.namespace.clone(),
                name: name.to_string(),
            })
    }
    fn secret(&self, name: &str) -> Result<&BTreeMap<String, String>, ContainerConfigError> {
        self.secrets
            .get(name)
            .ok_or_else(|| ContainerConfigError::MissingSecret {
                namespace: self.namespace.clone(),
                name: name.to_string(),
            })
    }
}

/// The values a downward-API `fieldRef` can read.
fn field_value(
    pod: &Pod,
    pod_ip: Ipv4Addr,
    node_name: &str,
    selector: &ObjectFieldSelector,
) -> Result<String, ContainerConfigError> {
    let path = selector.field_path.as_str();
    let meta = &pod.metadata;
    let quoted_key = |prefix: &str| -> Option<String> {
        let inner = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(inner.to_string())
    };
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_downward_map(meta.labels.as_ref()),
        "metadata.annotations" => format_downward_map(meta.annotations.as_ref()),
        "spec.nodeName" => node_name.to_string(),
        "spec.serviceAccountName" => service_account(pod),
        "status.podIP" | "status.podIPs" => pod_ip.to_string(),
        "status.hostIP" | "status.hostIPs" => netns::NODE_IP.to_string(),
        _ => {
            if let Some(key) = quoted_key("metadata.labels['") {
                meta.labels
                    .as_ref()
                    .and_then(|l| l.get(&key))
                    .cloned()
                    .unwrap_or_default()
            } else if let Some(key) = quoted_key("metadata.annotations['") {
                meta.annotations
                    .as_ref()
                    .and_then(|l| l.get(&key))
                    .cloned()
                    .unwrap_or_default()
            } else {
                return Err(ContainerConfigError::UnsupportedFieldPath(path.to_string()));
            }
        }
    };
    Ok(value)
}

/// The downward-API file format of labels/annotations: sorted `key="value"` lines.
fn format_downward_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.map(|m| {
        m.iter()
            .map(|(k, v)| format!("{k}={}", serde_json::Value::String(v.clone())))
            .collect::<Vec<_>>()
            .join("\n")
    })
    .unwrap_or_default()
}

fn service_account(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".to_string())
}

/// The container's environment in Kubernetes order: the image's env, then `envFrom`, then
/// `env` (with `$(VAR)` expansion against what is defined so far). Later names override
/// earlier ones and keep their first position.
fn resolve_env(
    image: &ImageCommand,
    container: &Container,
    pod: &Pod,
    pod_ip: Ipv4Addr,
    node_name: &str,
    sources: &ConfigSources,
) -> Result<Vec<(String, String)>, ContainerConfigError> {
    let mut env: Vec<(String, String)> = Vec::new();
    fn set(env: &mut Vec<(String, String)>, name: String, value: String) {
        match env.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => env.push((name, value)),
        }
    }
    for (k, v) in &image.env {
        set(&mut env, k.clone(), v.clone());
    }
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(cm) = &from.config_map_ref {
            match sources.config_map(&cm.name) {
                Ok(data) => data
                    .iter()
                    .for_each(|(k, v)| set(&mut env, format!("{prefix}{k}"), v.clone())),
                Err(_) if cm.optional == Some(true) => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(s) = &from.secret_ref {
            match sources.secret(&s.name) {
                Ok(data) => data
                    .iter()
                    .for_each(|(k, v)| set(&mut env, format!("{prefix}{k}"), v.clone())),
                Err(_) if s.optional == Some(true) => {}
                Err(e) => return Err(e),
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = if let Some(source) = &var.value_from {
            if let Some(field) = &source.field_ref {
                Some(field_value(pod, pod_ip, node_name, field)?)
            } else if let Some(sel) = &source.config_map_key_ref {
                match sources.config_map(&sel.name) {
                    Ok(data) => match data.get(&sel.key) {
                        Some(v) => Some(v.clone()),
                        None if sel.optional == Some(true) => None,
                        None => {
                            return Err(ContainerConfigError::MissingKey {
                                kind: "configmap",
                                name: sel.name.clone(),
                                key: sel.key.clone(),
                            });
                        }
                    },
                    Err(_) if sel.optional == Some(true) => None,
                    Err(e) => return Err(e),
                }
            } else if let Some(sel) = &source.secret_key_ref {
                match sources.secret(&sel.name) {
                    Ok(data) => match data.get(&sel.key) {
                        Some(v) => Some(v.clone()),
                        None if sel.optional == Some(true) => None,
                        None => {
                            return Err(ContainerConfigError::MissingKey {
                                kind: "secret",
                                name: sel.name.clone(),
                                key: sel.key.clone(),
                            });
                        }
                    },
                    Err(_) if sel.optional == Some(true) => None,
                    Err(e) => return Err(e),
                }
            } else if let Some(res) = &source.resource_field_ref {
                let resources = container.resources.as_ref();
                let (kind, name) = res.resource.split_once('.').unwrap_or(("", ""));
                let map = match kind {
                    "limits" => resources.and_then(|r| r.limits.as_ref()),
                    "requests" => resources.and_then(|r| r.requests.as_ref()),
                    _ => None,
                };
                match map.and_then(|m| m.get(name)) {
                    Some(q) => Some(q.0.clone()),
                    None => {
                        return Err(ContainerConfigError::UnsupportedFieldPath(format!(
                            "resourceFieldRef {} (only limits/requests set on the container)",
                            res.resource
                        )));
                    }
                }
            } else {
                return Err(ContainerConfigError::UnsupportedEnvSource(var.name.clone()));
            }
        } else {
            let raw = var.value.clone().unwrap_or_default();
            let snapshot = env.clone();
            Some(expand_vars(&raw, &|n| {
                snapshot
                    .iter()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v.clone())
            }))
        };
        if let Some(value) = value {
            set(&mut env, var.name.clone(), value);
        }
    }
    Ok(env)
}

/// Program and arguments, with Kubernetes semantics relative to the image's entrypoint:
/// no `command` → entrypoint + image args + container `args`; a `command` whose program is
/// the entrypoint's (same file name) → entrypoint program + rest of `command` + `args`
/// (the image's own args are dropped, as a command replaces ENTRYPOINT and CMD). `$(VAR)` in
/// command and args is expanded from the container env.
fn compose_command(
    image_ref: &str,
    image: &ImageCommand,
    container: &Container,
    env: &[(String, String)],
) -> Result<(PathBuf, Vec<String>), ContainerConfigError> {
    let lookup = |n: &str| env.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let expand = |items: &[String]| -> Vec<String> {
        items.iter().map(|s| expand_vars(s, &lookup)).collect()
    };
    let args = expand(container.args.as_deref().unwrap_or_default());
    match container.command.as_deref() {
        None | Some([]) => {
            let mut all = image.args.clone();
            all.extend(args);
            Ok((image.program.clone(), all))
        }
        Some([first, rest @ ..]) => {
            let first = expand_vars(first, &lookup);
            let file = |p: &Path| p.file_name().map(|f| f.to_os_string());
            if Path::new(&first) == image.program || file(Path::new(&first)) == file(&image.program)
            {
                let mut all = expand(rest);
                all.extend(args);
                Ok((image.program.clone(), all))
            } else {
                Err(ContainerConfigError::CommandNotInImage {
                    command: first,
                    program: image.program.display().to_string(),
                    image: image_ref.to_string(),
                })
            }
        }
    }
}

/// A named port (`http`) or a number, resolved against the container's ports.
fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, ContainerConfigError> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| ContainerConfigError::UnknownPort {
            port: n.to_string(),
            container: container.name.clone(),
        }),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Ok(n);
            }
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| ContainerConfigError::UnknownPort {
                    port: name.clone(),
                    container: container.name.clone(),
                })
        }
    }
}

// ---------------------------------------------------------------------------------------
// Pure: probes
// ---------------------------------------------------------------------------------------

/// Where a readiness check goes (from the node namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
enum ProbeTarget {
    Http {
        url: String,
    },
    Tcp {
        addr: String,
    },
    /// Probes the agent cannot run (exec, grpc, https); the container never becomes ready
    /// and its status says why.
    Unsupported(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ProbeTiming {
    initial_delay: Duration,
    period: Duration,
    timeout: Duration,
    success_threshold: u32,
    failure_threshold: u32,
}

fn probe_timing(probe: &Probe) -> ProbeTiming {
    let secs =
        |v: Option<i32>, default: u64| Duration::from_secs(v.map_or(default, |n| n.max(0) as u64));
    let count = |v: Option<i32>, default: u32| v.map_or(default, |n| n.max(1) as u32);
    ProbeTiming {
        initial_delay: secs(probe.initial_delay_seconds, 0),
        period: secs(probe.period_seconds, 10).max(Duration::from_secs(1)),
        timeout: secs(probe.timeout_seconds, 1).max(Duration::from_secs(1)),
        success_threshold: count(probe.success_threshold, 1),
        failure_threshold: count(probe.failure_threshold, 3),
    }
}

/// The readiness target of a container. With a sidecar the probe goes to pilot-agent's
/// `/app-health/<container>/readyz` on 15020 (Istio's injector rewrites probes this way, so
/// the kubelet never dials the app through Envoy's inbound listener); without one it goes
/// straight to the pod IP.
fn probe_target(
    probe: &Probe,
    container: &Container,
    pod_ip: Ipv4Addr,
    via_sidecar: bool,
) -> Result<ProbeTarget, ContainerConfigError> {
    if via_sidecar && (probe.http_get.is_some() || probe.tcp_socket.is_some()) {
        return Ok(ProbeTarget::Http {
            url: format!(
                "http://{pod_ip}:{STATUS_PORT}/app-health/{}/readyz",
                container.name
            ),
        });
    }
    if let Some(http) = &probe.http_get {
        let port = resolve_port(&http.port, container)?;
        let scheme = http.scheme.as_deref().unwrap_or("HTTP");
        if !scheme.eq_ignore_ascii_case("http") {
            return Ok(ProbeTarget::Unsupported(format!(
                "{scheme} readiness probes are not supported by the node agent"
            )));
        }
        let host = http.host.clone().unwrap_or_else(|| pod_ip.to_string());
        let path = http.path.as_deref().unwrap_or("/");
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        return Ok(ProbeTarget::Http {
            url: format!("http://{host}:{port}{path}"),
        });
    }
    if let Some(tcp) = &probe.tcp_socket {
        let port = resolve_port(&tcp.port, container)?;
        let host = tcp.host.clone().unwrap_or_else(|| pod_ip.to_string());
        return Ok(ProbeTarget::Tcp {
            addr: format!("{host}:{port}"),
        });
    }
    Ok(ProbeTarget::Unsupported(
        "exec and grpc readiness probes are not supported by the node agent".to_string(),
    ))
}

/// `ISTIO_KUBE_APP_PROBERS`: what the injector gives pilot-agent for the rewritten probes.
fn app_probers(containers: &[Container]) -> Result<Option<String>, ContainerConfigError> {
    let mut probers = serde_json::Map::new();
    for c in containers {
        let Some(probe) = &c.readiness_probe else {
            continue;
        };
        let timeout = probe.timeout_seconds.unwrap_or(1).max(1);
        let key = format!("/app-health/{}/readyz", c.name);
        if let Some(http) = &probe.http_get {
            let port = resolve_port(&http.port, c)?;
            let mut get = json!({
                "path": http.path.clone().unwrap_or_else(|| "/".to_string()),
                "port": port,
                "scheme": http.scheme.clone().unwrap_or_else(|| "HTTP".to_string()),
            });
            if let Some(headers) = &http.http_headers {
                get["httpHeaders"] = json!(
                    headers
                        .iter()
                        .map(|h| json!({"name": h.name, "value": h.value}))
                        .collect::<Vec<_>>()
                );
            }
            if let Some(host) = &http.host {
                get["host"] = json!(host);
            }
            probers.insert(key, json!({"httpGet": get, "timeoutSeconds": timeout}));
        } else if let Some(tcp) = &probe.tcp_socket {
            let port = resolve_port(&tcp.port, c)?;
            probers.insert(
                key,
                json!({"tcpSocket": {"port": port}, "timeoutSeconds": timeout}),
            );
        }
    }
    Ok((!probers.is_empty()).then(|| serde_json::Value::Object(probers).to_string()))
}

/// One readiness probe's state machine (thresholds as the kubelet counts them).
#[derive(Debug, Clone)]
struct ProbeState {
    timing: ProbeTiming,
    ready: bool,
    successes: u32,
    failures: u32,
    next_at: Instant,
    last_error: Option<String>,
}

impl ProbeState {
    fn new(timing: ProbeTiming, started: Instant) -> Self {
        ProbeState {
            next_at: started + timing.initial_delay,
            timing,
            ready: false,
            successes: 0,
            failures: 0,
            last_error: None,
        }
    }

    fn record(&mut self, result: Result<(), String>, now: Instant) {
        self.next_at = now + self.timing.period;
        match result {
            Ok(()) => {
                self.failures = 0;
                self.successes += 1;
                self.last_error = None;
                if self.successes >= self.timing.success_threshold {
                    self.ready = true;
                }
            }
            Err(e) => {
                self.successes = 0;
                self.failures += 1;
                self.last_error = Some(e);
                if self.failures >= self.timing.failure_threshold {
                    self.ready = false;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Pure: sidecar
// ---------------------------------------------------------------------------------------

/// Whether the pod gets a sidecar: its namespace is labelled `istio-injection=enabled` and
/// the pod is not annotated `sidecar.istio.io/inject: "false"`.
fn wants_sidecar(namespace_labels: Option<&BTreeMap<String, String>>, pod: &Pod) -> bool {
    let enabled = namespace_labels
        .and_then(|l| l.get(NAMESPACE_INJECTION_LABEL))
        .is_some_and(|v| v == "enabled");
    let opted_out = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(INJECT_ANNOTATION))
        .is_some_and(|v| v.eq_ignore_ascii_case("false"));
    enabled && !opted_out
}

/// The Deployment name for `ISTIO_META_WORKLOAD_NAME`: the ReplicaSet owner without its
/// `-<pod-template-hash>`, else the pod name.
fn workload_name(pod: &Pod) -> String {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let owner = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true));
    let hash = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("pod-template-hash"));
    match (owner, hash) {
        (Some(o), Some(h)) if o.kind == "ReplicaSet" => o
            .name
            .strip_suffix(&format!("-{h}"))
            .unwrap_or(&o.name)
            .to_string(),
        (Some(o), _) => o.name.clone(),
        _ => name,
    }
}

/// `PROXY_CONFIG` for the sidecar: the harness's fixed parts, then the pod's
/// `proxy.istio.io/config` annotation (JSON or YAML) on top, then the paths the harness
/// owns (which the annotation cannot move).
fn proxy_config(pod: &Pod, istiod_host: &str) -> Result<String, ContainerConfigError> {
    let mut config = serde_json::Map::new();
    config.insert(
        "discoveryAddress".into(),
        json!(format!("{istiod_host}:15010")),
    );
    config.insert("controlPlaneAuthPolicy".into(), json!("NONE"));
    config.insert("proxyAdminPort".into(), json!(15000));
    config.insert("statusPort".into(), json!(STATUS_PORT));
    config.insert("terminationDrainDuration".into(), json!("5s"));
    if let Some(text) = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PROXY_CONFIG_ANNOTATION))
    {
        let overlay: serde_json::Value = serde_yaml::from_str(text).map_err(|e| {
            ContainerConfigError::Other(format!("annotation {PROXY_CONFIG_ANNOTATION}: {e}"))
        })?;
        let serde_json::Value::Object(overlay) = overlay else {
            return Err(ContainerConfigError::Other(format!(
                "annotation {PROXY_CONFIG_ANNOTATION} is not a mapping"
            )));
        };
        config.extend(overlay);
    }
    config.insert(
        "binaryPath".into(),
        json!(format!("{ISTIO_ROOT}/bin/envoy")),
    );
    config.insert(
        "configPath".into(),
        json!(format!("{ISTIO_ROOT}/pod/etc/istio/proxy")),
    );
    Ok(serde_json::Value::Object(config).to_string())
}

/// `holdApplicationUntilProxyStarts` from the pod's proxy config annotation.
fn hold_until_proxy_starts(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PROXY_CONFIG_ANNOTATION))
        .and_then(|t| serde_yaml::from_str::<serde_json::Value>(t).ok())
        .and_then(|v| {
            v.get("holdApplicationUntilProxyStarts")
                .and_then(|b| b.as_bool())
        })
        .unwrap_or(false)
}

/// The sidecar's environment, as the injector's template would set it.
fn sidecar_env(
    pod: &Pod,
    pod_ip: Ipv4Addr,
    istiod_host: &str,
    node_name: &str,
) -> Result<Vec<(String, String)>, ContainerConfigError> {
    let meta = &pod.metadata;
    let ns = meta.namespace.clone().unwrap_or_default();
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default();
    let labels = meta.labels.clone().unwrap_or_default();
    let ports: Vec<serde_json::Value> = containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .map(|p| {
            let mut v = json!({"containerPort": p.container_port, "protocol": p.protocol.clone().unwrap_or_else(|| "TCP".into())});
            if let Some(n) = &p.name {
                v["name"] = json!(n);
            }
            v
        })
        .collect();
    let mut env = vec![
        (
            "POD_NAME".to_string(),
            meta.name.clone().unwrap_or_default(),
        ),
        ("POD_NAMESPACE".to_string(), ns.clone()),
        ("INSTANCE_IP".to_string(), pod_ip.to_string()),
        ("SERVICE_ACCOUNT".to_string(), service_account(pod)),
        ("HOST_IP".to_string(), netns::NODE_IP.to_string()),
        ("ISTIO_META_NODE_NAME".into(), node_name.to_string()),
        ("ISTIO_META_CLUSTER_ID".into(), "Kubernetes".into()),
        ("ISTIO_META_MESH_ID".into(), "cluster.local".into()),
        ("TRUST_DOMAIN".into(), "cluster.local".into()),
        ("ISTIO_META_INTERCEPTION_MODE".into(), "REDIRECT".into()),
        ("ISTIO_META_ENABLE_HBONE".into(), "false".into()),
        ("ISTIO_META_DNS_CAPTURE".into(), "true".into()),
        (
            "ISTIO_METAJSON_LABELS".into(),
            serde_json::to_string(&labels).unwrap_or_default(),
        ),
        ("ISTIO_META_WORKLOAD_NAME".into(), workload_name(pod)),
        (
            "ISTIO_META_OWNER".into(),
            format!(
                "kubernetes://apis/apps/v1/namespaces/{ns}/deployments/{}",
                workload_name(pod)
            ),
        ),
        (
            "ISTIO_META_APP_CONTAINERS".into(),
            containers
                .iter()
                .map(|c| c.name.clone())
                .collect::<Vec<_>>()
                .join(","),
        ),
        (
            "ISTIO_META_POD_PORTS".into(),
            serde_json::Value::Array(ports).to_string(),
        ),
        ("PILOT_CERT_PROVIDER".into(), "istiod".into()),
        ("CA_ADDR".into(), format!("{istiod_host}:15012")),
        ("JWT_POLICY".into(), "third-party-jwt".into()),
        ("FILE_MOUNTED_CERTS".into(), "false".into()),
        ("PROXY_CONFIG".into(), proxy_config(pod, istiod_host)?),
        ("ENVOY_STATUS_PORT".into(), ENVOY_READY_PORT.to_string()),
        ("ENVOY_PROMETHEUS_PORT".into(), "15090".into()),
        ("WASM_INSECURE_REGISTRIES".into(), "*".into()),
        ("ISTIO_CPU_LIMIT".into(), "2".into()),
        ("PATH".into(), PATH_ENV.into()),
        ("HOME".into(), format!("{ISTIO_ROOT}/pod")),
    ];
    if let Some(probers) = app_probers(&containers)? {
        env.push(("ISTIO_KUBE_APP_PROBERS".into(), probers));
    }
    Ok(env)
}

/// `istio-iptables` arguments, as the injector's `istio-init` container gets them:
/// outbound → 15001, inbound → 15006, Envoy's uid exempt, status/metrics ports never
/// captured, DNS to the pod's nameserver → the agent's DNS proxy, and the pod's
/// `traffic.sidecar.istio.io/*` annotations (include/exclude outbound IP ranges and ports,
/// include/exclude inbound ports) with the injector's defaults.
fn iptables_args(pod: &Pod) -> Vec<String> {
    let annotation = |name: &str| {
        pod.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(&format!("traffic.sidecar.istio.io/{name}")))
            .map(|v| v.trim().to_string())
    };
    let mut exclude_inbound = vec!["15090".to_string(), "15021".into(), "15020".into()];
    if let Some(extra) = annotation("excludeInboundPorts") {
        exclude_inbound.extend(
            extra
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string),
        );
    }
    let mut args: Vec<String> = [
        "istio-iptables",
        "-p",
        "15001",
        "-z",
        "15006",
        "-u",
        "1337",
        "-m",
        "REDIRECT",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut flag = |f: &str, v: String| {
        args.push(f.to_string());
        args.push(v);
    };
    flag(
        "-i",
        annotation("includeOutboundIPRanges").unwrap_or_else(|| "*".into()),
    );
    flag(
        "-x",
        annotation("excludeOutboundIPRanges").unwrap_or_default(),
    );
    flag(
        "-b",
        annotation("includeInboundPorts").unwrap_or_else(|| "*".into()),
    );
    flag("-d", exclude_inbound.join(","));
    if let Some(ports) = annotation("excludeOutboundPorts").filter(|p| !p.is_empty()) {
        flag("-o", ports);
    }
    if let Some(ports) = annotation("includeOutboundPorts").filter(|p| !p.is_empty()) {
        flag("-q", ports);
    }
    args.push("--redirect-dns".into());
    args.push("--log_output_level=default:info".into());
    args
}

// ---------------------------------------------------------------------------------------
// Pure: mounts and wrapper scripts
// ---------------------------------------------------------------------------------------

/// A bind mount from a per-pod host directory (or hostPath) onto the container's real path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    host: PathBuf,
    path: String,
    read_only: bool,
}

/// The bind mounts of one container: each `volumeMount` onto its real `mountPath` (the
/// container runs in a private mount namespace, so `/mnt/models` is `/mnt/models`).
fn container_mounts(
    container: &Container,
    volumes: &[Volume],
    volume_dirs: &BTreeMap<String, PathBuf>,
) -> Result<Vec<Mount>, ContainerConfigError> {
    let mut mounts = Vec::new();
    for vm in container.volume_mounts.iter().flatten() {
        let path = vm.mount_path.trim_end_matches('/');
        if !vm.mount_path.starts_with('/') || path.is_empty() {
            return Err(ContainerConfigError::BadMountPath(vm.mount_path.clone()));
        }
        if !volumes.iter().any(|v| v.name == vm.name) {
            return Err(ContainerConfigError::UnknownVolume(vm.name.clone()));
        }
        let base = volume_dirs
            .get(&vm.name)
            .ok_or_else(|| ContainerConfigError::UnknownVolume(vm.name.clone()))?;
        let host = match vm.sub_path.as_deref() {
            Some(sub) if !sub.is_empty() => {
                if sub.split('/').any(|c| c == "..") || sub.starts_with('/') {
                    return Err(ContainerConfigError::BadMountPath(format!(
                        "subPath {sub:?}"
                    )));
                }
                base.join(sub)
            }
            _ => base.clone(),
        };
        mounts.push(Mount {
            host,
            path: path.to_string(),
            read_only: vm.read_only == Some(true),
        });
    }
    Ok(mounts)
}

/// Single-quotes a word for `/bin/sh`.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The script a container runs as (root, in the pod netns, in a private mount and UTS
/// namespace) before exec'ing `env -i <env> <program> <args>` given as `"$@"`: bind mounts
/// onto the real mount paths (missing mount points are created as empty directories or
/// files on the host), the pod's resolv.conf, the pod name as hostname, the working dir.
fn container_script(mounts: &[Mount], resolv: &Path, hostname: &str, cwd: &Path) -> String {
    let mut s = String::from("set -e\n");
    for m in mounts {
        let path = shell_quote(&m.path);
        let host = shell_quote(&m.host.to_string_lossy());
        s.push_str(&format!(
            "if [ -d {host} ]; then mkdir -p {path}; else mkdir -p \"$(dirname {path})\"; [ -e {path} ] || : > {path}; fi\n"
        ));
        s.push_str(&format!("mount --bind {host} {path}\n"));
        if m.read_only {
            s.push_str(&format!("mount -o remount,bind,ro {path}\n"));
        }
    }
    s.push_str(&format!(
        "mount --bind {} /etc/resolv.conf\n",
        shell_quote(&resolv.to_string_lossy())
    ));
    s.push_str(&format!(
        "echo {} > /proc/sys/kernel/hostname\n",
        shell_quote(hostname)
    ));
    s.push_str(&format!("cd {}\n", shell_quote(&cwd.to_string_lossy())));
    s.push_str("exec /usr/bin/env -i \"$@\"\n");
    s
}

/// The sidecar's script (root, private mount namespace): a tmpfs over `/var/lib` holding
/// `istio/data` (the wasm cache, owned by 1337), `istio/bin/{pilot-agent,envoy}` bind-mounted
/// from wherever the binaries are (so uid 1337 needs no access to their real directories,
/// e.g. under /root) and `istio/pod` = the pod's proxy directory; then drops to 1337:1337
/// and execs pilot-agent from there. Nothing is written outside the pod directory.
fn sidecar_script(pilot_agent: &Path, envoy: &Path, proxy_dir: &Path, resolv: &Path) -> String {
    let q = |p: &Path| shell_quote(&p.to_string_lossy());
    format!(
        "set -e
mount -t tmpfs -o mode=755 smesh-istio /var/lib
mkdir -p {root}/data {root}/bin {root}/pod
chown {uid}:{uid} {root}/data
: > {root}/bin/pilot-agent
: > {root}/bin/envoy
mount --bind {agent} {root}/bin/pilot-agent
mount --bind {envoy} {root}/bin/envoy
mount --bind {pod} {root}/pod
mount --bind {resolv} /etc/resolv.conf
cd {root}/pod
exec /usr/bin/setpriv --reuid {uid} --regid {uid} --clear-groups --pdeathsig KILL -- /usr/bin/env -i \"$@\"
",
        root = ISTIO_ROOT,
        uid = PROXY_UID,
        agent = q(pilot_agent),
        envoy = q(envoy),
        pod = q(proxy_dir),
        resolv = q(resolv),
    )
}

/// `/etc/resolv.conf` of a pod: cluster search domains; the nameserver is the node address,
/// where nothing answers (queries fail fast; with a sidecar, Istio's DNS proxy answers
/// Service names first).
fn resolv_conf(namespace: &str) -> String {
    format!(
        "search {namespace}.svc.cluster.local svc.cluster.local cluster.local\nnameserver {}\noptions ndots:5\n",
        netns::NODE_IP
    )
}

// ---------------------------------------------------------------------------------------
// Pure: status
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
struct Terminated {
    exit_code: i32,
    reason: String,
    message: Option<String>,
    started_at: Option<Timestamp>,
    finished_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
enum RunState {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: Timestamp,
    },
    Terminated(Terminated),
}

#[derive(Debug, Clone, PartialEq)]
struct ContainerView {
    name: String,
    image: String,
    state: RunState,
    last_terminated: Option<Terminated>,
    restart_count: i32,
    ready: bool,
    pid: Option<u32>,
}

impl ContainerView {
    fn new(name: &str, image: &str, reason: &str) -> Self {
        ContainerView {
            name: name.to_string(),
            image: image.to_string(),
            state: RunState::Waiting {
                reason: reason.to_string(),
                message: None,
            },
            last_terminated: None,
            restart_count: 0,
            ready: false,
            pid: None,
        }
    }

    fn completed(&self) -> bool {
        matches!(&self.state, RunState::Terminated(t) if t.exit_code == 0)
    }
}

/// What the pod looks like right now, from which its status is built.
#[derive(Debug, Clone, PartialEq)]
struct PodView {
    pod_ip: Option<Ipv4Addr>,
    start_time: Timestamp,
    restart_policy: String,
    init: Vec<ContainerView>,
    containers: Vec<ContainerView>,
    /// `Some(ready)` when the pod has a sidecar.
    sidecar_ready: Option<bool>,
    /// A pod-level problem (network setup, volumes) shown in conditions.
    message: Option<String>,
}

fn time(ts: Timestamp) -> Time {
    Time(ts)
}

fn state_json(state: &RunState) -> ContainerState {
    match state {
        RunState::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: message.clone(),
            }),
            ..Default::default()
        },
        RunState::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(time(*started_at)),
            }),
            ..Default::default()
        },
        RunState::Terminated(t) => ContainerState {
            terminated: Some(terminated_json(t)),
            ..Default::default()
        },
    }
}

fn terminated_json(t: &Terminated) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: t.exit_code,
        reason: Some(t.reason.clone()),
        message: t.message.clone(),
        started_at: t.started_at.map(time),
        finished_at: Some(time(t.finished_at)),
        ..Default::default()
    }
}

fn container_status(c: &ContainerView) -> ContainerStatus {
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: format!("smesh://{}", image_name(&c.image)),
        container_id: c.pid.map(|p| format!("smesh://{p}")),
        ready: c.ready,
        started: Some(matches!(c.state, RunState::Running { .. })),
        restart_count: c.restart_count,
        state: Some(state_json(&c.state)),
        last_state: c.last_terminated.as_ref().map(|t| ContainerState {
            terminated: Some(terminated_json(t)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The pod phase, as the kubelet computes it.
fn phase(view: &PodView) -> &'static str {
    let init_failed_for_good = view.restart_policy == "Never"
        && view
            .init
            .iter()
            .any(|c| matches!(&c.state, RunState::Terminated(t) if t.exit_code != 0));
    if init_failed_for_good {
        return "Failed";
    }
    if !view.init.iter().all(ContainerView::completed) {
        return "Pending";
    }
    let terminated: Vec<&Terminated> = view
        .containers
        .iter()
        .filter_map(|c| match &c.state {
            RunState::Terminated(t) => Some(t),
            _ => None,
        })
        .collect();
    if !view.containers.is_empty()
        && terminated.len() == view.containers.len()
        && view.restart_policy != "Always"
    {
        let all_ok = terminated.iter().all(|t| t.exit_code == 0);
        if all_ok {
            return "Succeeded";
        }
        if view.restart_policy == "Never" {
            return "Failed";
        }
    }
    let started = view
        .containers
        .iter()
        .any(|c| matches!(c.state, RunState::Running { .. }) || c.restart_count > 0);
    if started { "Running" } else { "Pending" }
}

fn condition(
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    previous: &[PodCondition],
    now: Timestamp,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let since = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(time(now));
    PodCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: if ok { None } else { reason.map(str::to_string) },
        message: if ok { None } else { message },
        last_transition_time: Some(since),
        ..Default::default()
    }
}

/// The status subresource for the view; condition transition times are kept from
/// `previous` when a condition did not change.
fn build_status(view: &PodView, previous: &[PodCondition], now: Timestamp) -> PodStatus {
    let incomplete: Vec<&str> = view
        .init
        .iter()
        .filter(|c| !c.completed())
        .map(|c| c.name.as_str())
        .collect();
    let mut unready: Vec<&str> = view
        .containers
        .iter()
        .filter(|c| !c.ready)
        .map(|c| c.name.as_str())
        .collect();
    if view.sidecar_ready == Some(false) {
        unready.push(SIDECAR_NAME);
    }
    let initialized = incomplete.is_empty();
    let ready = initialized && unready.is_empty() && view.message.is_none();
    let unready_message = view.message.clone().or_else(|| {
        Some(format!(
            "containers with unready status: [{}]",
            unready.join(" ")
        ))
    });
    let conditions = vec![
        condition(
            "PodReadyToStartContainers",
            view.pod_ip.is_some(),
            Some("NetworkNotReady"),
            view.message.clone(),
            previous,
            now,
        ),
        condition(
            "Initialized",
            initialized,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: [{}]",
                incomplete.join(" ")
            )),
            previous,
            now,
        ),
        condition(
            "Ready",
            ready,
            Some(if initialized {
                "ContainersNotReady"
            } else {
                "ContainersNotInitialized"
            }),
            unready_message.clone(),
            previous,
            now,
        ),
        condition(
            "ContainersReady",
            ready,
            Some("ContainersNotReady"),
            unready_message,
            previous,
            now,
        ),
        condition("PodScheduled", true, None, None, previous, now),
    ];
    let ip = view.pod_ip.map(|ip| ip.to_string());
    PodStatus {
        phase: Some(phase(view).to_string()),
        conditions: Some(conditions),
        host_ip: Some(netns::NODE_IP.to_string()),
        host_ips: Some(vec![HostIP {
            ip: netns::NODE_IP.to_string(),
        }]),
        pod_ip: ip.clone(),
        pod_ips: ip.map(|ip| vec![PodIP { ip }]),
        start_time: Some(time(view.start_time)),
        init_container_statuses: (!view.init.is_empty())
            .then(|| view.init.iter().map(container_status).collect()),
        container_statuses: Some(view.containers.iter().map(container_status).collect()),
        ..Default::default()
    }
}

/// kubelet-like restart backoff after `restarts` restarts.
fn backoff(restarts: i32) -> Duration {
    let shift = restarts.clamp(0, 10) as u32;
    BACKOFF_START.saturating_mul(1u32 << shift).min(BACKOFF_MAX)
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

// ---------------------------------------------------------------------------------------
// Runtime: the agent
// ---------------------------------------------------------------------------------------

/// The running agent. Dropping it stops every pod's processes (SIGTERM to each process
/// group, a short grace, SIGKILL) and deletes the pod namespaces; it makes no API calls on
/// the way out (the apiserver may already be gone).
#[derive(Debug)]
pub struct NodeAgent {
    shutdown: Option<watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pods_dir: PathBuf,
}

/// Shared, read-only settings of the agent's tasks.
struct Ctx {
    client: kube::Client,
    /// `SELDON_MESH_ISTIO_INIT_FIRST=1`: install iptables before the pod's init containers,
    /// as a real pod's `istio-init` does (reproduces Seldon #4450).
    istio_init_first: bool,
    registered_at: Timestamp,
    node_name: String,
    pods_dir: PathBuf,
    pilot_agent: PathBuf,
    envoy: PathBuf,
    bootstrap_template: PathBuf,
    istiod_host: String,
    images: BTreeMap<String, ImageCommand>,
    http: reqwest::Client,
}

impl NodeAgent {
    /// Registers the Node, then starts the agent on its own thread. Call it from the thread
    /// that entered the node namespace ([`netns::enter_new_node_namespace`]); the agent's
    /// thread inherits that namespace (the default `#[tokio::test]` runtime runs on it).
    pub async fn start(cfg: NodeAgentConfig) -> Result<NodeAgent, NodeAgentError> {
        netns::current_node_namespace()?;
        for (what, path) in [
            ("pilot-agent", &cfg.pilot_agent),
            ("envoy", &cfg.envoy),
            ("envoy bootstrap template", &cfg.bootstrap_template),
            ("kubeconfig", &cfg.kubeconfig_path),
        ] {
            if !path.is_file() {
                return Err(NodeAgentError::MissingFile {
                    what,
                    path: path.clone(),
                });
            }
        }
        let pods_dir = cfg.workdir.join("pods");
        std::fs::create_dir_all(&pods_dir).map_err(|source| NodeAgentError::Io {
            context: format!("creating {}", pods_dir.display()),
            source,
        })?;
        let registered_at = Timestamp::now();
        let istio_init_first = std::env::var_os(ISTIO_INIT_FIRST_ENV).is_some_and(|v| v == "1");
        register_node(&cfg.client, &cfg.node_name, registered_at).await?;

        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (ready_tx, ready_rx) = oneshot::channel::<Result<(), NodeAgentError>>();
        let kubeconfig = cfg.kubeconfig_path.clone();
        let node_name = cfg.node_name.clone();
        let settings = (
            node_name,
            pods_dir.clone(),
            cfg.pilot_agent.clone(),
            cfg.envoy.clone(),
            cfg.bootstrap_template.clone(),
            cfg.istiod_host.clone(),
            cfg.images.clone(),
        );
        let thread = std::thread::Builder::new()
            .name("node-agent".to_string())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(source) => {
                        let _ = ready_tx.send(Err(NodeAgentError::Io {
                            context: "building the node agent runtime".into(),
                            source,
                        }));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let client = match agent_client(&kubeconfig).await {
                        Ok(c) => c,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let (
                        node_name,
                        pods_dir,
                        pilot_agent,
                        envoy,
                        bootstrap_template,
                        istiod_host,
                        images,
                    ) = settings;
                    let ctx = Arc::new(Ctx {
                        client,
                        istio_init_first,
                        registered_at,
                        node_name,
                        pods_dir,
                        pilot_agent,
                        envoy,
                        bootstrap_template,
                        istiod_host,
                        images,
                        http: reqwest::Client::builder()
                            .no_proxy()
                            .build()
                            .unwrap_or_default(),
                    });
                    let _ = ready_tx.send(Ok(()));
                    run_agent(ctx, shutdown_rx).await;
                });
            })
            .map_err(|source| NodeAgentError::Io {
                context: "spawning the node agent thread".into(),
                source,
            })?;
        let mut agent = NodeAgent {
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
            pods_dir,
        };
        match ready_rx.await {
            Ok(Ok(())) => Ok(agent),
            Ok(Err(e)) => {
                agent.stop();
                Err(e)
            }
            Err(_) => {
                agent.stop();
                Err(NodeAgentError::ThreadGone)
            }
        }
    }

    /// The log of one container (`istio-proxy` for the sidecar, `istio-init` for the
    /// iptables setup), if it has been started.
    pub fn pod_log(&self, ns: &str, pod: &str, container: &str) -> Option<PathBuf> {
        let path = self
            .pods_dir
            .join(format!("{ns}_{pod}"))
            .join(format!("{container}.log"));
        path.is_file().then_some(path)
    }

    fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("node agent thread panicked");
        }
    }
}

impl Drop for NodeAgent {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn agent_client(path: &Path) -> Result<kube::Client, NodeAgentError> {
    let err = |message: String| NodeAgentError::Kubeconfig {
        path: path.to_path_buf(),
        message,
    };
    let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .map_err(|e| err(e.to_string()))?;
    kube::Client::try_from(config).map_err(|e| err(e.to_string()))
}

fn node_status(now: Timestamp, since: Timestamp) -> serde_json::Value {
    let (now, since) = (now.to_string(), since.to_string());
    let cond = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({"type": type_, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now, "lastTransitionTime": since})
    };
    json!({
        "conditions": [
            cond("Ready", "True", "KubeletReady", "seldon-mesh node agent is posting ready status"),
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "node agent"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "node agent"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "node agent"),
        ],
        "addresses": [{"type": "InternalIP", "address": netns::NODE_IP.to_string()}],
        "capacity": {"cpu": "2", "memory": "8Gi", "pods": "110", "ephemeral-storage": "20Gi"},
        "allocatable": {"cpu": "2", "memory": "8Gi", "pods": "110", "ephemeral-storage": "20Gi"},
        "nodeInfo": {
            "machineID": "seldon-mesh", "systemUUID": "seldon-mesh", "bootID": "seldon-mesh",
            "kernelVersion": "", "osImage": "seldon-mesh node agent",
            "containerRuntimeVersion": "smesh://processes", "kubeletVersion": "v1.34.4",
            "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64"
        }
    })
}

/// Creates or updates the Node (`podCIDR`, labels) and posts a Ready status.
async fn register_node(
    client: &kube::Client,
    name: &str,
    since: Timestamp,
) -> Result<(), NodeAgentError> {
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}},
        "spec": {"podCIDR": netns::POD_CIDR, "podCIDRs": [netns::POD_CIDR]},
    });
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    nodes
        .patch(name, &pp, &Patch::Apply(&node))
        .await
        .map_err(kube_err(format!("applying Node {name}")))?;
    heartbeat(client, name, since).await
}

/// Posts the Node's Ready status and renews its Lease in `kube-node-lease`.
/// `since` is when the node became Ready (the conditions' transition time).
async fn heartbeat(
    client: &kube::Client,
    name: &str,
    since: Timestamp,
) -> Result<(), NodeAgentError> {
    let now = Timestamp::now();
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": node_status(now, since)})),
        )
        .await
        .map_err(kube_err(format!("Node {name} status")))?;
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), "kube-node-lease");
    let micro = now.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": micro},
    });
    leases
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&lease),
        )
        .await
        .map_err(kube_err(format!("Lease kube-node-lease/{name}")))?;
    Ok(())
}

/// What a pod task is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Keep,
    /// deletionTimestamp set: preStop hooks, SIGTERM, up to `grace`, SIGKILL, then remove
    /// the object.
    Graceful {
        grace: Duration,
    },
    /// The object is gone, or the agent is shutting down: stop now, no API calls.
    Now,
}

#[derive(Debug)]
struct PodEntry {
    stop: watch::Sender<Stop>,
    key: String,
}

async fn run_agent(ctx: Arc<Ctx>, mut shutdown: watch::Receiver<bool>) {
    let heartbeat_ctx = ctx.clone();
    let heartbeat_task = tokio::spawn(async move {
        loop {
            tokio::time::sleep(HEARTBEAT).await;
            if let Err(e) = heartbeat(
                &heartbeat_ctx.client,
                &heartbeat_ctx.node_name,
                heartbeat_ctx.registered_at,
            )
            .await
            {
                tracing::warn!(error = %e, "node heartbeat");
            }
        }
    });
    let pods_api: Api<Pod> = Api::all(ctx.client.clone());
    let mut events =
        std::pin::pin!(watcher(pods_api, watcher::Config::default()).default_backoff());
    let mut pods: HashMap<String, PodEntry> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    let mut bound: BTreeSet<String> = BTreeSet::new();
    // uids whose task ended; never started again.
    let mut finished: BTreeSet<String> = BTreeSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(uid) = done_rx.recv() => {
                pods.remove(&uid);
                finished.insert(uid);
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            event = events.next() => {
                let Some(event) = event else { break };
                match event {
                    Ok(watcher::Event::Apply(pod)) | Ok(watcher::Event::InitApply(pod)) => {
                        on_pod(&ctx, pod, &mut pods, &mut tasks, &done_tx, &mut bound, &finished).await;
                    }
                    Ok(watcher::Event::Delete(pod)) => {
                        if let Some(uid) = pod.metadata.uid.as_deref()
                            && let Some(entry) = pods.get(uid)
                        {
                            tracing::info!(pod = %entry.key, "pod object gone; stopping it");
                            let _ = entry.stop.send(Stop::Now);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "pod watch"),
                }
            }
        }
    }
    heartbeat_task.abort();
    for entry in pods.values() {
        let _ = entry.stop.send(Stop::Now);
    }
    // Each pod stops its processes in parallel within SHUTDOWN_GRACE; the bound only guards
    // against a task stuck on a dead apiserver (its processes then die with its drop).
    let all_done = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE * 5, all_done)
        .await
        .is_err()
    {
        tracing::warn!("pods did not stop in time; aborting their tasks");
        tasks.shutdown().await;
    }
}

/// What the agent does about one observed Pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PodAction {
    /// Not ours, already bound elsewhere, finished, or nothing changed.
    Ignore,
    /// Unscheduled: bind it to this node.
    Bind,
    /// Bound here, not running yet: start it.
    Start,
    /// Running here and being deleted: stop it gracefully.
    Stop { grace: Duration },
    /// Being deleted but not running here: just remove the object.
    Remove,
}

/// The decision for a watch event, from the pod and what the agent knows about its uid.
/// A uid runs once, as on a kubelet: watch events queued before its task ended (a status
/// update from before the deletion) must not start it again.
fn pod_action(pod: &Pod, node_name: &str, running: bool, finished: bool) -> PodAction {
    let deleting = pod.metadata.deletion_timestamp.is_some();
    match pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
        None if deleting => return PodAction::Ignore,
        None => return PodAction::Bind,
        Some(n) if n == node_name => {}
        Some(_) => return PodAction::Ignore,
    }
    let terminal = matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    );
    match (deleting, running, finished) {
        (true, true, _) => PodAction::Stop {
            grace: Duration::from_secs(
                pod.metadata
                    .deletion_grace_period_seconds
                    .unwrap_or(30)
                    .max(0) as u64,
            ),
        },
        (true, false, _) => PodAction::Remove,
        (false, true, _) | (false, false, true) => PodAction::Ignore,
        (false, false, false) if terminal => PodAction::Ignore,
        (false, false, false) => PodAction::Start,
    }
}

async fn on_pod(
    ctx: &Arc<Ctx>,
    pod: Pod,
    pods: &mut HashMap<String, PodEntry>,
    tasks: &mut tokio::task::JoinSet<()>,
    done: &mpsc::UnboundedSender<String>,
    bound: &mut BTreeSet<String>,
    finished: &BTreeSet<String>,
) {
    let (Some(uid), Some(name), Some(ns)) = (
        pod.metadata.uid.clone(),
        pod.metadata.name.clone(),
        pod.metadata.namespace.clone(),
    ) else {
        return;
    };
    let key = format!("{ns}/{name}");
    let action = pod_action(
        &pod,
        &ctx.node_name,
        pods.contains_key(&uid),
        finished.contains(&uid),
    );
    if action != PodAction::Bind {
        bound.remove(&uid);
    }
    match action {
        PodAction::Ignore => {}
        PodAction::Bind => {
            if bound.insert(uid.clone())
                && let Err(e) = bind(ctx, &ns, &name, &uid).await
            {
                tracing::warn!(pod = %key, error = %e, "binding");
                bound.remove(&uid);
            }
        }
        PodAction::Stop { grace } => {
            if let Some(entry) = pods.get(&uid) {
                let _ = entry.stop.send_if_modified(|s| {
                    if *s == Stop::Keep {
                        *s = Stop::Graceful { grace };
                        true
                    } else {
                        false
                    }
                });
            }
        }
        PodAction::Remove => {
            if let Err(e) = delete_pod_object(&ctx.client, &ns, &name, &uid).await {
                tracing::warn!(pod = %key, error = %e, "removing a terminating pod");
            }
        }
        PodAction::Start => {
            let (stop_tx, stop_rx) = watch::channel(Stop::Keep);
            pods.insert(
                uid.clone(),
                PodEntry {
                    stop: stop_tx,
                    key: key.clone(),
                },
            );
            let ctx = ctx.clone();
            let done = done.clone();
            tracing::info!(pod = %key, "starting pod");
            tasks.spawn(async move {
                run_pod(&ctx, pod, stop_rx).await;
                let _ = done.send(uid);
            });
        }
    }
}

/// What the scheduler would do: bind the pod to this node.
async fn bind(ctx: &Ctx, ns: &str, name: &str, uid: &str) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let binding = json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": name, "namespace": ns, "uid": uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": ctx.node_name},
    });
    let _: serde_json::Value = api
        .create_subresource("binding", name, &PostParams::default(), &binding)
        .await?;
    tracing::info!(pod = %format!("{ns}/{name}"), node = %ctx.node_name, "bound");
    Ok(())
}

/// What the kubelet does last: remove the object (grace 0, only this incarnation).
async fn delete_pod_object(
    client: &kube::Client,
    ns: &str,
    name: &str,
    uid: &str,
) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------------------------------
// Runtime: one pod
// ---------------------------------------------------------------------------------------

/// A process the pod loop supervises, with its restart bookkeeping.
#[derive(Debug)]
struct Slot {
    view: ContainerView,
    child: Option<procs::Child>,
    started: Option<Instant>,
    restart_at: Option<Instant>,
    probe: Option<(ProbeTarget, ProbeState)>,
    spec: Option<Container>,
}

struct PodRun<'a> {
    ctx: &'a Ctx,
    pod: Pod,
    ns: String,
    name: String,
    uid: String,
    dir: PathBuf,
    net: Option<PodNetwork>,
    view: PodView,
    conditions: Vec<PodCondition>,
    last_status: Option<serde_json::Value>,
    volume_dirs: BTreeMap<String, PathBuf>,
    sidecar: Option<Slot>,
    containers: Vec<Slot>,
}

impl fmt::Debug for PodRun<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PodRun")
            .field("ns", &self.ns)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

async fn run_pod(ctx: &Ctx, pod: Pod, mut stop: watch::Receiver<Stop>) {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let restart_policy = spec
        .restart_policy
        .clone()
        .unwrap_or_else(|| "Always".to_string());
    let mut run = PodRun {
        ctx,
        dir: ctx.pods_dir.join(format!("{ns}_{name}")),
        ns,
        name,
        uid,
        net: None,
        view: PodView {
            pod_ip: None,
            start_time: Timestamp::now(),
            restart_policy,
            init: spec
                .init_containers
                .iter()
                .flatten()
                .map(|c| {
                    ContainerView::new(&c.name, c.image.as_deref().unwrap_or(""), "PodInitializing")
                })
                .collect(),
            containers: spec
                .containers
                .iter()
                .map(|c| {
                    ContainerView::new(&c.name, c.image.as_deref().unwrap_or(""), "PodInitializing")
                })
                .collect(),
            sidecar_ready: None,
            message: None,
        },
        conditions: Vec::new(),
        last_status: None,
        volume_dirs: BTreeMap::new(),
        sidecar: None,
        containers: Vec::new(),
        pod,
    };
    let outcome = run.lifecycle(&mut stop).await;
    let final_stop = *stop.borrow();
    run.terminate(final_stop).await;
    if let Some(net) = run.net.take()
        && let Err(e) = net.delete()
    {
        tracing::warn!(pod = %format!("{}/{}", run.ns, run.name), error = %e, "deleting pod namespace");
    }
    if let Err(e) = outcome {
        tracing::warn!(pod = %format!("{}/{}", run.ns, run.name), error = %e, "pod");
    }
    if let Stop::Graceful { .. } = final_stop
        && let Err(e) = delete_pod_object(&ctx.client, &run.ns, &run.name, &run.uid).await
    {
        tracing::warn!(pod = %format!("{}/{}", run.ns, run.name), error = %e, "removing pod object");
    }
}

/// Resolves when the pod is asked to stop.
async fn stopped(stop: &mut watch::Receiver<Stop>) {
    loop {
        if *stop.borrow_and_update() != Stop::Keep {
            return;
        }
        if stop.changed().await.is_err() {
            return;
        }
    }
}

impl PodRun<'_> {
    fn key(&self) -> String {
        format!("{}/{}", self.ns, self.name)
    }

    fn spec(&self) -> k8s_openapi::api::core::v1::PodSpec {
        self.pod.spec.clone().unwrap_or_default()
    }

    /// Writes the status if it changed.
    async fn publish(&mut self) {
        let status = build_status(&self.view, &self.conditions, Timestamp::now());
        self.conditions = status.conditions.clone().unwrap_or_default();
        let value = match serde_json::to_value(&status) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "serializing pod status");
                return;
            }
        };
        if self.last_status.as_ref() == Some(&value) {
            return;
        }
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.ns);
        let (params, patch) = (
            PatchParams::default(),
            Patch::Merge(json!({"status": value})),
        );
        let write = api.patch_status(&self.name, &params, &patch);
        match tokio::time::timeout(Duration::from_secs(10), write).await {
            Ok(Ok(_)) => self.last_status = Some(value),
            Ok(Err(e)) => tracing::warn!(pod = %self.key(), error = %e, "writing pod status"),
            Err(_) => tracing::warn!(pod = %self.key(), "writing pod status: no answer in 10 s"),
        }
    }

    /// Waits `d`, or less if the pod is asked to stop; `false` if it was.
    async fn pause(&self, stop: &mut watch::Receiver<Stop>, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = stopped(stop) => false,
        }
    }

    async fn lifecycle(&mut self, stop: &mut watch::Receiver<Stop>) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        // Network (CNI).
        match netns::create_pod_network() {
            Ok(net) => {
                self.view.pod_ip = Some(net.ip());
                self.net = Some(net);
            }
            Err(e) => {
                self.view.message = Some(format!("pod network: {e}"));
                self.publish().await;
                stopped(stop).await;
                return Err(e.to_string());
            }
        }
        let resolv = self.dir.join("resolv.conf");
        std::fs::write(&resolv, resolv_conf(&self.ns)).map_err(|e| e.to_string())?;
        self.publish().await;
        // Volumes: retried like the kubelet's mount loop until they can be made.
        loop {
            match self.prepare_volumes().await {
                Ok(()) => {
                    self.view.message = None;
                    break;
                }
                Err(e) => {
                    self.view.message = Some(format!("volumes: {e}"));
                    self.publish().await;
                    if !self.pause(stop, Duration::from_secs(2)).await {
                        return Ok(());
                    }
                }
            }
        }
        // The sidecar's files first (they wait for istiod's root cert); with
        // SELDON_MESH_ISTIO_INIT_FIRST, also istio-init, as in a real pod (see README).
        let sidecar = self.wants_sidecar().await;
        if sidecar {
            self.view.sidecar_ready = Some(false);
            self.publish().await;
            loop {
                match self.prepare_sidecar_files().await {
                    Ok(()) => {
                        self.view.message = None;
                        break;
                    }
                    Err(e) => {
                        self.view.message = Some(format!("sidecar: {e}"));
                        self.publish().await;
                        if !self.pause(stop, Duration::from_secs(2)).await {
                            return Ok(());
                        }
                    }
                }
            }
            if self.ctx.istio_init_first
                && let Err(e) = self.install_iptables().await
            {
                self.view.message = Some(format!("istio-init: {e}"));
                self.publish().await;
                stopped(stop).await;
                return Err(e);
            }
        }
        // Init containers, in order, each to completion.
        let spec = self.spec();
        let inits: Vec<Container> = spec.init_containers.clone().unwrap_or_default();
        for (i, container) in inits.iter().enumerate() {
            loop {
                let outcome = self.run_init(i, container, stop).await;
                self.publish().await;
                match outcome {
                    InitOutcome::Done => break,
                    InitOutcome::Stopped => return Ok(()),
                    InitOutcome::Failed if self.view.restart_policy == "Never" => {
                        stopped(stop).await;
                        return Ok(());
                    }
                    InitOutcome::Failed | InitOutcome::ConfigError => {
                        let view = &mut self.view.init[i];
                        let wait = backoff(view.restart_count);
                        if let RunState::Terminated(t) = &view.state {
                            view.last_terminated = Some(t.clone());
                            view.restart_count += 1;
                            view.state = RunState::Waiting {
                                reason: "CrashLoopBackOff".into(),
                                message: Some(format!(
                                    "back-off {}s restarting failed container={} pod={}",
                                    wait.as_secs(),
                                    container.name,
                                    self.name
                                )),
                            };
                            self.publish().await;
                        }
                        if !self.pause(stop, wait).await {
                            return Ok(());
                        }
                    }
                }
            }
        }
        // Sidecar: istio-init's iptables, then pilot-agent (after the pod's init
        // containers; see README for why and how that differs from a real pod).
        if sidecar {
            let started = if self.ctx.istio_init_first {
                self.start_sidecar()
            } else {
                match self.install_iptables().await {
                    Ok(()) => self.start_sidecar(),
                    Err(e) => Err(format!("istio-init: {e}")),
                }
            };
            if let Err(e) = started {
                self.view.message = Some(format!("sidecar: {e}"));
                self.publish().await;
                stopped(stop).await;
                return Err(e);
            }
            if hold_until_proxy_starts(&self.pod) {
                while self.view.sidecar_ready != Some(true) {
                    self.check_sidecar().await;
                    if !self.pause(stop, Duration::from_millis(200)).await {
                        return Ok(());
                    }
                }
            }
        }
        // Containers.
        for container in &spec.containers {
            let i = self.containers.len();
            self.containers.push(Slot {
                view: self.view.containers[i].clone(),
                child: None,
                started: None,
                restart_at: Some(Instant::now()),
                probe: None,
                spec: Some(container.clone()),
            });
        }
        self.supervise(stop).await;
        Ok(())
    }

    async fn wants_sidecar(&self) -> bool {
        let api: Api<Namespace> = Api::all(self.ctx.client.clone());
        match api.get_opt(&self.ns).await {
            Ok(Some(ns)) => wants_sidecar(ns.metadata.labels.as_ref(), &self.pod),
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(pod = %self.key(), error = %e, "reading namespace labels; no sidecar");
                false
            }
        }
    }

    /// ConfigMaps and Secrets the containers' env refers to.
    async fn config_sources(&self) -> Result<ConfigSources, ContainerConfigError> {
        let spec = self.spec();
        let mut cms = BTreeSet::new();
        let mut secrets = BTreeSet::new();
        for c in spec
            .init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
        {
            for from in c.env_from.iter().flatten() {
                if let Some(r) = &from.config_map_ref {
                    cms.insert(r.name.clone());
                }
                if let Some(r) = &from.secret_ref {
                    secrets.insert(r.name.clone());
                }
            }
            for var in c.env.iter().flatten() {
                if let Some(src) = &var.value_from {
                    if let Some(r) = &src.config_map_key_ref {
                        cms.insert(r.name.clone());
                    }
                    if let Some(r) = &src.secret_key_ref {
                        secrets.insert(r.name.clone());
                    }
                }
            }
        }
        let mut sources = ConfigSources {
            namespace: self.ns.clone(),
            ..Default::default()
        };
        for name in cms {
            if let Some(data) = self.config_map_data(&name).await? {
                sources.config_maps.insert(name, data);
            }
        }
        for name in secrets {
            if let Some(data) = self.secret_data(&name).await? {
                sources.secrets.insert(name, data);
            }
        }
        Ok(sources)
    }

    async fn config_map_data(
        &self,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, ContainerConfigError> {
        let api: Api<ConfigMap> = Api::namespaced(self.ctx.client.clone(), &self.ns);
        let cm = api
            .get_opt(name)
            .await
            .map_err(|e| ContainerConfigError::Other(format!("configmap {name}: {e}")))?;
        Ok(cm.map(|cm| cm.data.unwrap_or_default()))
    }

    async fn secret_data(
        &self,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, ContainerConfigError> {
        let api: Api<Secret> = Api::namespaced(self.ctx.client.clone(), &self.ns);
        let secret = api
            .get_opt(name)
            .await
            .map_err(|e| ContainerConfigError::Other(format!("secret {name}: {e}")))?;
        Ok(secret.map(|s| {
            let mut out: BTreeMap<String, String> = s.string_data.unwrap_or_default();
            for (k, v) in s.data.unwrap_or_default() {
                out.insert(k, String::from_utf8_lossy(&v.0).into_owned());
            }
            out
        }))
    }

    async fn token(
        &self,
        audiences: Vec<String>,
        expiration: i64,
    ) -> Result<String, ContainerConfigError> {
        let api: Api<ServiceAccount> = Api::namespaced(self.ctx.client.clone(), &self.ns);
        let sa = service_account(&self.pod);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences,
                expiration_seconds: Some(expiration.max(600)),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: Some(self.name.clone()),
                    uid: Some(self.uid.clone()),
                }),
            },
            ..Default::default()
        };
        let answer = api
            .create_token_request(&sa, &PostParams::default(), &request)
            .await
            .map_err(|e| ContainerConfigError::Other(format!("token for {}/{sa}: {e}", self.ns)))?;
        answer
            .status
            .map(|s| s.token)
            .ok_or_else(|| ContainerConfigError::Other("TokenRequest without a token".into()))
    }

    /// Makes every volume's host directory under `<pod>/volumes/<name>` and fills the
    /// projected / configMap / secret / downwardAPI ones.
    async fn prepare_volumes(&mut self) -> Result<(), ContainerConfigError> {
        let spec = self.spec();
        let pod_ip = self.view.pod_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        for volume in spec.volumes.iter().flatten() {
            let dir = self.dir.join("volumes").join(&volume.name);
            if let Some(host) = &volume.host_path {
                self.volume_dirs
                    .insert(volume.name.clone(), PathBuf::from(&host.path));
                continue;
            }
            let mut files: Vec<(String, Vec<u8>)> = Vec::new();
            if volume.empty_dir.is_some() {
                // just the directory
            } else if let Some(cm) = &volume.config_map {
                match self.config_map_data(&cm.name).await? {
                    Some(data) => files.extend(select_items(data, cm.items.as_deref())),
                    None if cm.optional == Some(true) => {}
                    None => {
                        return Err(ContainerConfigError::MissingConfigMap {
                            namespace: self.ns.clone(),
                            name: cm.name.clone(),
                        });
                    }
                }
            } else if let Some(s) = &volume.secret {
                let name = s.secret_name.clone().unwrap_or_default();
                match self.secret_data(&name).await? {
                    Some(data) => files.extend(select_items(data, s.items.as_deref())),
                    None if s.optional == Some(true) => {}
                    None => {
                        return Err(ContainerConfigError::MissingSecret {
                            namespace: self.ns.clone(),
                            name,
                        });
                    }
                }
            } else if let Some(d) = &volume.downward_api {
                for item in d.items.iter().flatten() {
                    if let Some(f) = &item.field_ref {
                        let v = field_value(&self.pod, pod_ip, &self.ctx.node_name, f)?;
                        files.push((item.path.clone(), v.into_bytes()));
                    }
                }
            } else if let Some(p) = &volume.projected {
                for source in p.sources.iter().flatten() {
                    if let Some(cm) = &source.config_map {
                        match self.config_map_data(&cm.name).await? {
                            Some(data) => files.extend(select_items(data, cm.items.as_deref())),
                            None if cm.optional == Some(true) => {}
                            None => {
                                return Err(ContainerConfigError::MissingConfigMap {
                                    namespace: self.ns.clone(),
                                    name: cm.name.clone(),
                                });
                            }
                        }
                    }
                    if let Some(s) = &source.secret {
                        match self.secret_data(&s.name).await? {
                            Some(data) => files.extend(select_items(data, s.items.as_deref())),
                            None if s.optional == Some(true) => {}
                            None => {
                                return Err(ContainerConfigError::MissingSecret {
                                    namespace: self.ns.clone(),
                                    name: s.name.clone(),
                                });
                            }
                        }
                    }
                    if let Some(d) = &source.downward_api {
                        for item in d.items.iter().flatten() {
                            if let Some(f) = &item.field_ref {
                                let v = field_value(&self.pod, pod_ip, &self.ctx.node_name, f)?;
                                files.push((item.path.clone(), v.into_bytes()));
                            }
                        }
                    }
                    if let Some(t) = &source.service_account_token {
                        let audiences = t.audience.clone().into_iter().collect::<Vec<_>>();
                        let token = self
                            .token(audiences, t.expiration_seconds.unwrap_or(3607))
                            .await?;
                        files.push((t.path.clone(), token.into_bytes()));
                    }
                }
            } else {
                return Err(ContainerConfigError::UnsupportedVolume {
                    name: volume.name.clone(),
                    kind: volume_kind(volume),
                });
            }
            std::fs::create_dir_all(&dir)
                .map_err(|e| ContainerConfigError::Other(format!("{}: {e}", dir.display())))?;
            for (path, content) in files {
                if path.starts_with('/') || path.split('/').any(|c| c == "..") {
                    return Err(ContainerConfigError::BadMountPath(path));
                }
                let file = dir.join(&path);
                if let Some(parent) = file.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        ContainerConfigError::Other(format!("{}: {e}", parent.display()))
                    })?;
                }
                std::fs::write(&file, content)
                    .map_err(|e| ContainerConfigError::Other(format!("{}: {e}", file.display())))?;
            }
            self.volume_dirs.insert(volume.name.clone(), dir);
        }
        Ok(())
    }

    /// The command that runs `container` in the pod: `ip netns exec <ns> unshare -m -u
    /// --propagation private /bin/sh -c <script> <env…> <program> <args…>`.
    async fn container_command(
        &self,
        container: &Container,
    ) -> Result<Command, ContainerConfigError> {
        let image_ref = container.image.clone().unwrap_or_default();
        let image = lookup_image(&self.ctx.images, &image_ref)?;
        let sources = self.config_sources().await?;
        let pod_ip = self.view.pod_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let mut env = resolve_env(
            image,
            container,
            &self.pod,
            pod_ip,
            &self.ctx.node_name,
            &sources,
        )?;
        let (program, args) = compose_command(&image_ref, image, container, &env)?;
        for (k, v) in [
            ("HOSTNAME", self.name.clone()),
            ("PATH", PATH_ENV.to_string()),
        ] {
            if !env.iter().any(|(n, _)| n == k) {
                env.push((k.to_string(), v));
            }
        }
        let mounts = container_mounts(
            container,
            self.pod
                .spec
                .as_ref()
                .and_then(|s| s.volumes.as_deref())
                .unwrap_or_default(),
            &self.volume_dirs,
        )?;
        let cwd = match container.working_dir.as_deref() {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => {
                let dir = self.dir.join("cwd").join(&container.name);
                std::fs::create_dir_all(&dir)
                    .map_err(|e| ContainerConfigError::Other(format!("{}: {e}", dir.display())))?;
                dir
            }
        };
        let script = container_script(&mounts, &self.dir.join("resolv.conf"), &self.name, &cwd);
        let net = self
            .net
            .as_ref()
            .ok_or_else(|| ContainerConfigError::Other("pod has no network".into()))?;
        let mut cmd = net.command("unshare");
        cmd.args([
            "--mount",
            "--uts",
            "--propagation",
            "private",
            "/bin/sh",
            "-c",
        ])
        .arg(script)
        .arg(format!("smesh-{}", container.name));
        cmd.args(env.iter().map(|(k, v)| format!("{k}={v}")));
        cmd.arg(program).args(args);
        Ok(cmd)
    }

    async fn run_init(
        &mut self,
        i: usize,
        container: &Container,
        stop: &mut watch::Receiver<Stop>,
    ) -> InitOutcome {
        let cmd = match self.container_command(container).await {
            Ok(cmd) => cmd,
            Err(e) => {
                self.view.init[i].state = RunState::Waiting {
                    reason: e.reason().to_string(),
                    message: Some(e.to_string()),
                };
                return InitOutcome::ConfigError;
            }
        };
        let mut child = match spawn_pod_process(&container.name, cmd, &self.dir) {
            Ok(c) => c,
            Err(e) => {
                self.view.init[i].state = RunState::Waiting {
                    reason: "RunContainerError".into(),
                    message: Some(e.to_string()),
                };
                return InitOutcome::ConfigError;
            }
        };
        let started_at = Timestamp::now();
        self.view.init[i].pid = Some(child.pid());
        self.view.init[i].state = RunState::Running { started_at };
        self.publish().await;
        loop {
            match child.try_status() {
                Ok(Some(status)) => {
                    let code = exit_code(status);
                    self.view.init[i].pid = None;
                    self.view.init[i].state = RunState::Terminated(Terminated {
                        exit_code: code,
                        reason: if code == 0 { "Completed" } else { "Error" }.into(),
                        message: (code != 0).then(|| child.log_tail(5)),
                        started_at: Some(started_at),
                        finished_at: Timestamp::now(),
                    });
                    return if code == 0 {
                        InitOutcome::Done
                    } else {
                        InitOutcome::Failed
                    };
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(pod = %self.key(), error = %e, "init container status"),
            }
            if !self.pause(stop, TICK).await {
                terminate_children(vec![child], SHUTDOWN_GRACE).await;
                return InitOutcome::Stopped;
            }
        }
    }

    /// The sidecar's files: bootstrap template, istio-ca token, root cert (retried by the
    /// caller until istiod has published `istio-ca-root-cert`, as a kubelet waits for a
    /// configMap volume).
    async fn prepare_sidecar_files(&mut self) -> Result<(), String> {
        let proxy_dir = self.dir.join("proxy");
        for sub in [
            "var/lib/istio/envoy",
            "etc/istio/proxy",
            "var/run/secrets/istio",
            "var/run/secrets/tokens",
            "var/run/secrets/workload-spiffe-uds",
            "var/run/secrets/workload-spiffe-credentials",
            "var/run/secrets/credential-uds",
        ] {
            std::fs::create_dir_all(proxy_dir.join(sub)).map_err(|e| e.to_string())?;
        }
        std::fs::copy(
            &self.ctx.bootstrap_template,
            proxy_dir.join("var/lib/istio/envoy/envoy_bootstrap_tmpl.json"),
        )
        .map_err(|e| format!("copying the bootstrap template: {e}"))?;
        // The workload's credentials, as the injector's projected volumes would provide.
        let token = self
            .token(vec!["istio-ca".into()], 43200)
            .await
            .map_err(|e| e.to_string())?;
        std::fs::write(proxy_dir.join("var/run/secrets/tokens/istio-token"), token)
            .map_err(|e| e.to_string())?;
        let root = self
            .config_map_data("istio-ca-root-cert")
            .await
            .map_err(|e| e.to_string())?
            .and_then(|d| d.get("root-cert.pem").cloned())
            .ok_or_else(|| {
                format!(
                    "configmap {}/istio-ca-root-cert (written by istiod) has no root-cert.pem yet",
                    self.ns
                )
            })?;
        std::fs::write(proxy_dir.join("var/run/secrets/istio/root-cert.pem"), root)
            .map_err(|e| e.to_string())?;
        chown_tree(&proxy_dir, PROXY_UID).map_err(|e| e.to_string())
    }

    /// istio-init: `istio-iptables` as root in the pod netns, once.
    async fn install_iptables(&mut self) -> Result<(), String> {
        let net = self.net.as_ref().ok_or("pod has no network")?;
        let resolv = self.dir.join("resolv.conf");
        // istio-init: iptables REDIRECT in the pod netns, as root, once.
        let mut init = net.command("unshare");
        init.args(["--mount", "--propagation", "private", "/bin/sh", "-c"])
            .arg(format!(
                "set -e\nmount --bind {} /etc/resolv.conf\nexec \"$@\"\n",
                shell_quote(&resolv.to_string_lossy())
            ))
            .arg("smesh-istio-init")
            .arg(&self.ctx.pilot_agent)
            .args(iptables_args(&self.pod));
        let mut child =
            spawn_pod_process("istio-init", init, &self.dir).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = child.try_status().map_err(|e| e.to_string())? {
                break s;
            }
            if Instant::now() > deadline {
                return Err("istio-iptables did not finish in 60 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        if !status.success() {
            return Err(format!(
                "istio-iptables failed ({status}); log {}:\n{}",
                child.log_path().display(),
                child.log_tail(20)
            ));
        }
        Ok(())
    }

    /// The `istio-proxy` container: pilot-agent, which runs Envoy.
    fn start_sidecar(&mut self) -> Result<(), String> {
        let child = self.spawn_sidecar()?;
        let mut view = ContainerView::new(SIDECAR_NAME, "istio/proxyv2", "PodInitializing");
        view.pid = Some(child.pid());
        view.state = RunState::Running {
            started_at: Timestamp::now(),
        };
        self.sidecar = Some(Slot {
            view,
            child: Some(child),
            started: Some(Instant::now()),
            restart_at: None,
            probe: None,
            spec: None,
        });
        Ok(())
    }

    /// `pilot-agent proxy sidecar` as uid 1337 in the pod netns (see [`sidecar_script`]).
    fn spawn_sidecar(&self) -> Result<procs::Child, String> {
        let net = self.net.as_ref().ok_or("pod has no network")?;
        let env = sidecar_env(
            &self.pod,
            self.view.pod_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
            &self.ctx.istiod_host,
            &self.ctx.node_name,
        )
        .map_err(|e| e.to_string())?;
        let domain = format!("{}.svc.cluster.local", self.ns);
        let mut cmd = net.command("unshare");
        cmd.args([
            "--mount",
            "--uts",
            "--propagation",
            "private",
            "/bin/sh",
            "-c",
        ])
        .arg(sidecar_script(
            &self.ctx.pilot_agent,
            &self.ctx.envoy,
            &self.dir.join("proxy"),
            &self.dir.join("resolv.conf"),
        ))
        .arg("smesh-istio-proxy");
        cmd.args(env.iter().map(|(k, v)| format!("{k}={v}")));
        cmd.arg(format!("{ISTIO_ROOT}/bin/pilot-agent")).args([
            "proxy",
            "sidecar",
            "--domain",
            &domain,
            "--proxyLogLevel=warning",
            "--proxyComponentLogLevel=misc:error",
            "--log_output_level=default:info",
        ]);
        // Envoy (uid 1337) reopens /dev/stdout for the access log, which is this file: it
        // must be the proxy's to open, as a container runtime's pipe would be.
        let log = self.dir.join(format!("{SIDECAR_NAME}.log"));
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|_| std::os::unix::fs::chown(&log, Some(PROXY_UID), Some(PROXY_UID)))
            .map_err(|e| format!("{}: {e}", log.display()))?;
        spawn_pod_process(SIDECAR_NAME, cmd, &self.dir).map_err(|e| e.to_string())
    }

    async fn check_sidecar(&mut self) {
        let Some(ip) = self.view.pod_ip else { return };
        let url = format!("http://{ip}:{ENVOY_READY_PORT}/healthz/ready");
        let ok = matches!(
            self.ctx.http.get(&url).timeout(Duration::from_secs(1)).send().await,
            Ok(r) if r.status().as_u16() == 200
        );
        if let Some(slot) = self.sidecar.as_mut() {
            slot.view.ready = ok;
        }
        self.view.sidecar_ready = Some(ok);
    }

    async fn start_container(&mut self, i: usize) {
        let Some(container) = self.containers[i].spec.clone() else {
            return;
        };
        let cmd = match self.container_command(&container).await {
            Ok(cmd) => cmd,
            Err(e) => {
                let slot = &mut self.containers[i];
                slot.view.state = RunState::Waiting {
                    reason: e.reason().to_string(),
                    message: Some(e.to_string()),
                };
                slot.restart_at = Some(Instant::now() + Duration::from_secs(5));
                return;
            }
        };
        let via_sidecar = self.sidecar.is_some();
        let pod_ip = self.view.pod_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let slot = &mut self.containers[i];
        match spawn_pod_process(&container.name, cmd, &self.dir) {
            Ok(child) => {
                let now = Instant::now();
                slot.view.pid = Some(child.pid());
                slot.view.state = RunState::Running {
                    started_at: Timestamp::now(),
                };
                slot.view.ready = container.readiness_probe.is_none();
                slot.child = Some(child);
                slot.started = Some(now);
                slot.restart_at = None;
                slot.probe = container.readiness_probe.as_ref().map(|p| {
                    let target = probe_target(p, &container, pod_ip, via_sidecar)
                        .unwrap_or_else(|e| ProbeTarget::Unsupported(e.to_string()));
                    if let ProbeTarget::Unsupported(why) = &target {
                        tracing::warn!(container = %container.name, %why, "readiness probe cannot run; the container stays unready");
                    }
                    (target, ProbeState::new(probe_timing(p), now))
                });
            }
            Err(e) => {
                slot.view.state = RunState::Waiting {
                    reason: "RunContainerError".into(),
                    message: Some(e.to_string()),
                };
                slot.restart_at = Some(Instant::now() + backoff(slot.view.restart_count));
            }
        }
    }

    /// The steady state: restart exited containers with backoff, run probes, keep the
    /// status current, until asked to stop.
    async fn supervise(&mut self, stop: &mut watch::Receiver<Stop>) {
        let mut last_sidecar_check = Instant::now() - Duration::from_secs(1);
        loop {
            let now = Instant::now();
            for i in 0..self.containers.len() {
                if self.containers[i].restart_at.is_some_and(|t| t <= now)
                    && self.containers[i].child.is_none()
                {
                    self.start_container(i).await;
                }
                self.check_exit(i);
                self.probe(i).await;
            }
            self.check_sidecar_process();
            if self.sidecar.is_some() && last_sidecar_check.elapsed() >= Duration::from_secs(1) {
                last_sidecar_check = Instant::now();
                self.check_sidecar().await;
            }
            self.view.containers = self.containers.iter().map(|s| s.view.clone()).collect();
            self.publish().await;
            if !self.pause(stop, TICK).await {
                return;
            }
        }
    }

    fn check_exit(&mut self, i: usize) {
        let restart_policy = self.view.restart_policy.clone();
        let pod_name = self.name.clone();
        let slot = &mut self.containers[i];
        let Some(child) = slot.child.as_mut() else {
            return;
        };
        let status = match child.try_status() {
            Ok(Some(s)) => s,
            _ => return,
        };
        let code = exit_code(status);
        let tail = child.log_tail(5);
        let started_at = match &slot.view.state {
            RunState::Running { started_at } => Some(*started_at),
            _ => None,
        };
        let ran_for = slot.started.map(|s| s.elapsed()).unwrap_or_default();
        slot.child = None;
        slot.view.pid = None;
        slot.view.ready = false;
        slot.probe = None;
        let terminated = Terminated {
            exit_code: code,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            message: (code != 0).then_some(tail),
            started_at,
            finished_at: Timestamp::now(),
        };
        let restart = match restart_policy.as_str() {
            "Never" => false,
            "OnFailure" => code != 0,
            _ => true,
        };
        if restart {
            // Like the kubelet: a container that ran 10 minutes resets its backoff.
            let restarts = if ran_for > Duration::from_secs(600) {
                0
            } else {
                slot.view.restart_count
            };
            let wait = backoff(restarts);
            slot.view.last_terminated = Some(terminated);
            slot.view.restart_count += 1;
            slot.view.state = RunState::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: Some(format!(
                    "back-off {}s restarting failed container={} pod={pod_name}",
                    wait.as_secs(),
                    slot.view.name
                )),
            };
            slot.restart_at = Some(Instant::now() + wait);
        } else {
            slot.view.state = RunState::Terminated(terminated);
        }
    }

    /// The sidecar is a container too: restarted with backoff if it exits.
    fn check_sidecar_process(&mut self) {
        let respawn = {
            let Some(slot) = self.sidecar.as_mut() else {
                return;
            };
            if let Some(child) = slot.child.as_mut()
                && let Ok(Some(status)) = child.try_status()
            {
                tracing::warn!(pod = %self.name, %status, log = %child.log_path().display(), "sidecar exited");
                let wait = backoff(slot.view.restart_count);
                slot.child = None;
                slot.view.pid = None;
                slot.view.ready = false;
                slot.view.restart_count += 1;
                slot.restart_at = Some(Instant::now() + wait);
            }
            slot.child.is_none() && slot.restart_at.is_some_and(|t| t <= Instant::now())
        };
        if respawn {
            let spawned = self.spawn_sidecar();
            if let Some(slot) = self.sidecar.as_mut() {
                match spawned {
                    Ok(child) => {
                        slot.view.pid = Some(child.pid());
                        slot.child = Some(child);
                        slot.restart_at = None;
                        slot.started = Some(Instant::now());
                    }
                    Err(e) => {
                        tracing::warn!(pod = %self.name, error = %e, "restarting the sidecar");
                        slot.restart_at = Some(Instant::now() + backoff(slot.view.restart_count));
                    }
                }
            }
        }
    }

    async fn probe(&mut self, i: usize) {
        let now = Instant::now();
        let http = self.ctx.http.clone();
        let slot = &mut self.containers[i];
        if slot.child.is_none() {
            return;
        }
        let Some((target, state)) = slot.probe.as_mut() else {
            slot.view.ready = true;
            return;
        };
        if state.next_at > now {
            return;
        }
        let timeout = state.timing.timeout;
        let result = run_probe(&http, target, timeout).await;
        state.record(result, Instant::now());
        slot.view.ready = state.ready;
    }

    /// Stops everything the way the kubelet does (graceful only): each container with a
    /// preStop hook runs it and gets SIGTERM when it finishes; every other container,
    /// the sidecar included, gets SIGTERM at once. Whatever still runs at the end of the
    /// grace period gets SIGKILL. On agent shutdown or a vanished object: SIGTERM to all,
    /// a short grace, SIGKILL.
    async fn terminate(&mut self, how: Stop) {
        let grace = match how {
            Stop::Graceful { grace } => grace,
            _ => SHUTDOWN_GRACE,
        };
        let deadline = Instant::now() + grace;
        // (process, its preStop hook if any)
        let mut stopping: Vec<(procs::Child, Option<Hook>)> = Vec::new();
        let graceful = matches!(how, Stop::Graceful { .. });
        for i in 0..self.containers.len() {
            let Some(child) = self.containers[i].child.take() else {
                continue;
            };
            let hook = if graceful {
                self.containers[i]
                    .spec
                    .clone()
                    .and_then(|spec| self.start_pre_stop(&spec))
            } else {
                None
            };
            stopping.push((child, hook));
        }
        if let Some(child) = self.sidecar.as_mut().and_then(|s| s.child.take()) {
            stopping.push((child, None));
        }
        let started = Instant::now();
        loop {
            let mut running = false;
            for (child, hook) in &mut stopping {
                let hook_done = match hook {
                    None => true,
                    Some(Hook::Sleep(d)) => started.elapsed() >= *d,
                    Some(Hook::Process(p)) => !matches!(p.try_status(), Ok(None)),
                };
                if hook_done {
                    if let Some(Hook::Process(p)) = hook.take() {
                        terminate_children(vec![p], Duration::ZERO).await;
                    }
                    child.terminate();
                }
                running |= matches!(child.try_status(), Ok(None));
            }
            if !running || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut rest = Vec::new();
        for (child, hook) in stopping {
            rest.push(child);
            if let Some(Hook::Process(p)) = hook {
                rest.push(p);
            }
        }
        terminate_children(rest, Duration::ZERO).await;
    }

    /// Starts a container's preStop hook: `sleep`, or `exec` run in the pod's network
    /// namespace with the host's filesystem (the operator's hook is `/bin/sh -c
    /// "/bin/sleep 10"`). httpGet/tcpSocket hooks are not run.
    fn start_pre_stop(&self, spec: &Container) -> Option<Hook> {
        let handler = spec.lifecycle.as_ref()?.pre_stop.as_ref()?;
        if let Some(sleep) = &handler.sleep {
            return Some(Hook::Sleep(
                Duration::from_secs(sleep.seconds.max(0) as u64),
            ));
        }
        let argv = handler.exec.as_ref()?.command.clone().unwrap_or_default();
        let (program, args) = argv.split_first()?;
        let mut cmd = self.net.as_ref()?.command(program);
        cmd.args(args);
        match spawn_pod_process(&format!("{}-prestop", spec.name), cmd, &self.dir) {
            Ok(child) => Some(Hook::Process(child)),
            Err(e) => {
                tracing::warn!(pod = %self.name, error = %e, "preStop hook");
                None
            }
        }
    }
}

#[derive(Debug)]
enum Hook {
    Sleep(Duration),
    Process(procs::Child),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InitOutcome {
    Done,
    Failed,
    ConfigError,
    Stopped,
}

/// `procs::spawn` with a short drop grace: a pod process dropped without
/// [`terminate_children`] (an aborted task) must not hold the agent for long.
fn spawn_pod_process(
    name: &str,
    cmd: Command,
    dir: &Path,
) -> Result<procs::Child, crate::HarnessError> {
    let mut child = procs::spawn(name, cmd, dir)?;
    child.set_grace(Duration::from_millis(500));
    Ok(child)
}

/// SIGTERM every group now, wait up to `grace` for all, then SIGKILL what is left
/// (`procs::Child`'s drop with zero grace).
async fn terminate_children(mut children: Vec<procs::Child>, grace: Duration) {
    for child in &mut children {
        child.terminate();
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline
        && children
            .iter_mut()
            .any(|c| matches!(c.try_status(), Ok(None)))
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for mut child in children {
        child.set_grace(Duration::ZERO);
        drop(child);
    }
}

async fn run_probe(
    http: &reqwest::Client,
    target: &ProbeTarget,
    timeout: Duration,
) -> Result<(), String> {
    match target {
        ProbeTarget::Http { url } => {
            let response = http
                .get(url)
                .header("user-agent", "kube-probe/1.34")
                .timeout(timeout)
                .send()
                .await
                .map_err(|e| format!("GET {url}: {e}"))?;
            let status = response.status().as_u16();
            if (200..400).contains(&status) {
                Ok(())
            } else {
                Err(format!("GET {url}: HTTP {status}"))
            }
        }
        ProbeTarget::Tcp { addr } => {
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("dial {addr}: {e}")),
                Err(_) => Err(format!("dial {addr}: timeout")),
            }
        }
        ProbeTarget::Unsupported(why) => Err(why.clone()),
    }
}

fn select_items(
    data: BTreeMap<String, String>,
    items: Option<&[k8s_openapi::api::core::v1::KeyToPath]>,
) -> Vec<(String, Vec<u8>)> {
    match items {
        None => data.into_iter().map(|(k, v)| (k, v.into_bytes())).collect(),
        Some(items) => items
            .iter()
            .filter_map(|item| {
                data.get(&item.key)
                    .map(|v| (item.path.clone(), v.clone().into_bytes()))
            })
            .collect(),
    }
}

fn volume_kind(volume: &Volume) -> String {
    serde_json::to_value(volume)
        .ok()
        .and_then(|v| {
            v.as_object()
                .and_then(|o| o.keys().find(|k| *k != "name").cloned())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// `chown -R uid:uid` (the sidecar's directory).
fn chown_tree(path: &Path, uid: u32) -> std::io::Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(uid))?;
    if path.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(v: serde_json::Value) -> Container {
        serde_json::from_value(v).unwrap()
    }

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn sample_pod() -> Pod {
        pod(json!({
            "metadata": {
                "name": "iris-default-0-classifier-7d9f8-abcde",
                "namespace": "seldon",
                "uid": "u-1",
                "labels": {"app": "iris", "version": "default", "pod-template-hash": "7d9f8"},
                "annotations": {"prometheus.io/path": "/prometheus"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "iris-default-0-classifier-7d9f8", "uid": "rs", "controller": true}]
            },
            "spec": {
                "serviceAccountName": "sa-1",
                "containers": [{
                    "name": "classifier", "image": "seldon-mesh/server:0.1.0",
                    "ports": [{"name": "http", "containerPort": 9000}, {"name": "grpc", "containerPort": 9500}],
                    "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 5, "initialDelaySeconds": 20}
                }]
            }
        }))
    }

    fn image(program: &str, args: &[&str], env: &[(&str, &str)]) -> ImageCommand {
        ImageCommand {
            program: PathBuf::from(program),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    const IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 12);

    #[test]
    fn image_name_strips_tag_and_digest_but_not_registry_port() {
        assert_eq!(image_name("seldon-mesh/server:0.1.0"), "seldon-mesh/server");
        assert_eq!(image_name("seldon-mesh/server"), "seldon-mesh/server");
        assert_eq!(
            image_name("localhost:5000/seldon-mesh/server:0.1.0@sha256:abc"),
            "localhost:5000/seldon-mesh/server"
        );
        assert_eq!(image_name("localhost:5000/server"), "localhost:5000/server");
        assert_eq!(image_name("busybox@sha256:abc"), "busybox");
    }

    #[test]
    fn lookup_image_maps_known_names_and_explains_unknown_ones() {
        let mut images = BTreeMap::new();
        images.insert(
            "seldon-mesh/server".to_string(),
            image("/bin/server", &[], &[]),
        );
        images.insert("busybox".to_string(), image("/bin/sh", &[], &[]));
        assert_eq!(
            lookup_image(&images, "seldon-mesh/server:0.1.0")
                .unwrap()
                .program,
            PathBuf::from("/bin/server")
        );
        assert_eq!(
            lookup_image(&images, "docker.io/library/busybox:1.36")
                .unwrap()
                .program,
            PathBuf::from("/bin/sh")
        );
        let err = lookup_image(&images, "seldonio/mock_classifier:1.0").unwrap_err();
        assert_eq!(err.reason(), "ErrImagePull");
        assert_eq!(
            err.to_string(),
            "image \"seldonio/mock_classifier:1.0\" (name \"seldonio/mock_classifier\") is not in the node agent's image map (known: busybox, seldon-mesh/server)"
        );
    }

    #[test]
    fn expand_vars_follows_kubernetes() {
        let lookup = |n: &str| (n == "A").then(|| "x".to_string());
        assert_eq!(expand_vars("$(A)-$(A)", &lookup), "x-x");
        assert_eq!(expand_vars("$(B)", &lookup), "$(B)");
        assert_eq!(expand_vars("$$(A)", &lookup), "$(A)");
        assert_eq!(expand_vars("cost $5 $(A", &lookup), "cost $5 $(A");
        assert_eq!(expand_vars("", &lookup), "");
    }

    fn sources() -> ConfigSources {
        let mut s = ConfigSources {
            namespace: "seldon".into(),
            ..Default::default()
        };
        s.config_maps.insert(
            "cfg".into(),
            BTreeMap::from([("LEVEL".into(), "debug".into()), ("k".into(), "v".into())]),
        );
        s.secrets.insert(
            "creds".into(),
            BTreeMap::from([("key".into(), "s3cr3t".into())]),
        );
        s
    }

    #[test]
    fn resolve_env_orders_overrides_and_resolves_references() {
        let img = image("/bin/server", &[], &[("FROM_IMAGE", "1"), ("PORT", "80")]);
        let c = container(json!({
            "name": "classifier",
            "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
            "env": [
                {"name": "PORT", "value": "9000"},
                {"name": "URL", "value": "http://$(POD_IP_X):$(PORT)/$(MISSING)"},
                {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "VERSION", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['version']"}}},
                {"name": "LVL", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "LEVEL"}}},
                {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "key"}}},
                {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "x", "optional": true}}}
            ]
        }));
        let env = resolve_env(&img, &c, &sample_pod(), IP, "node-1", &sources()).unwrap();
        let got: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            vec![
                ("FROM_IMAGE", "1"),
                ("PORT", "9000"),
                ("CFG_LEVEL", "debug"),
                ("CFG_k", "v"),
                ("URL", "http://$(POD_IP_X):9000/$(MISSING)"),
                ("NAME", "iris-default-0-classifier-7d9f8-abcde"),
                ("NS", "seldon"),
                ("IP", "10.77.0.12"),
                ("VERSION", "default"),
                ("LVL", "debug"),
                ("SECRET", "s3cr3t"),
            ]
        );
    }

    #[test]
    fn resolve_env_fails_on_missing_sources_and_unsupported_paths() {
        let img = image("/bin/server", &[], &[]);
        let run = |env: serde_json::Value| {
            let c = container(json!({"name": "c", "env": env}));
            resolve_env(&img, &c, &sample_pod(), IP, "node-1", &sources()).unwrap_err()
        };
        assert_eq!(
            run(
                json!([{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "x"}}}])
            ),
            ContainerConfigError::MissingConfigMap {
                namespace: "seldon".into(),
                name: "nope".into()
            }
        );
        assert_eq!(
            run(json!([{"name": "A", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "other"}}}]))
                .to_string(),
            "key \"other\" not found in secret creds"
        );
        assert_eq!(
            run(
                json!([{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeSelector"}}}])
            ),
            ContainerConfigError::UnsupportedFieldPath("spec.nodeSelector".into())
        );
        assert_eq!(
            run(json!([{"name": "A", "valueFrom": {}}])),
            ContainerConfigError::UnsupportedEnvSource("A".into())
        );
        let c = container(json!({"name": "c", "envFrom": [{"secretRef": {"name": "absent"}}]}));
        let err = resolve_env(&img, &c, &sample_pod(), IP, "n", &sources()).unwrap_err();
        assert_eq!(err.reason(), "CreateContainerConfigError");
        assert_eq!(err.to_string(), "secret seldon/absent not found");
    }

    #[test]
    fn compose_command_follows_entrypoint_semantics() {
        let img = image("/opt/bin/seldon-server", &["--log", "info"], &[]);
        let env = vec![("PORT".to_string(), "9000".to_string())];
        // No command: entrypoint + image args + container args (expanded).
        let c = container(json!({"name": "c", "args": ["--port", "$(PORT)"]}));
        assert_eq!(
            compose_command("img", &img, &c, &env).unwrap(),
            (
                PathBuf::from("/opt/bin/seldon-server"),
                vec![
                    "--log".into(),
                    "info".into(),
                    "--port".into(),
                    "9000".into()
                ]
            )
        );
        // A command naming the entrypoint replaces it (image args dropped).
        let c = container(
            json!({"name": "c", "command": ["/usr/local/bin/seldon-server", "serve"], "args": ["-v"]}),
        );
        assert_eq!(
            compose_command("img", &img, &c, &env).unwrap(),
            (
                PathBuf::from("/opt/bin/seldon-server"),
                vec!["serve".into(), "-v".into()]
            )
        );
        // Any other command cannot run: the image is one program.
        let c = container(json!({"name": "c", "command": ["python", "app.py"]}));
        let err = compose_command("my/img:1", &img, &c, &env).unwrap_err();
        assert_eq!(
            err,
            ContainerConfigError::CommandNotInImage {
                command: "python".into(),
                program: "/opt/bin/seldon-server".into(),
                image: "my/img:1".into()
            }
        );
    }

    #[test]
    fn ports_resolve_by_name_or_number() {
        let c = sample_pod().spec.unwrap().containers[0].clone();
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &c).unwrap(),
            9000
        );
        assert_eq!(
            resolve_port(&IntOrString::String("8080".into()), &c).unwrap(),
            8080
        );
        assert_eq!(resolve_port(&IntOrString::Int(15020), &c).unwrap(), 15020);
        assert_eq!(
            resolve_port(&IntOrString::String("metrics".into()), &c).unwrap_err(),
            ContainerConfigError::UnknownPort {
                port: "metrics".into(),
                container: "classifier".into()
            }
        );
        assert!(resolve_port(&IntOrString::Int(70000), &c).is_err());
    }

    #[test]
    fn probes_go_through_the_agent_with_a_sidecar_and_direct_without() {
        let c = sample_pod().spec.unwrap().containers[0].clone();
        let probe = c.readiness_probe.clone().unwrap();
        assert_eq!(
            probe_target(&probe, &c, IP, true).unwrap(),
            ProbeTarget::Http {
                url: "http://10.77.0.12:15020/app-health/classifier/readyz".into()
            }
        );
        assert_eq!(
            probe_target(&probe, &c, IP, false).unwrap(),
            ProbeTarget::Tcp {
                addr: "10.77.0.12:9000".into()
            }
        );
        let http: Probe =
            serde_json::from_value(json!({"httpGet": {"path": "health/ready", "port": "http"}}))
                .unwrap();
        assert_eq!(
            probe_target(&http, &c, IP, false).unwrap(),
            ProbeTarget::Http {
                url: "http://10.77.0.12:9000/health/ready".into()
            }
        );
        let https: Probe =
            serde_json::from_value(json!({"httpGet": {"port": 443, "scheme": "HTTPS"}})).unwrap();
        assert!(matches!(
            probe_target(&https, &c, IP, false).unwrap(),
            ProbeTarget::Unsupported(_)
        ));
        let exec: Probe = serde_json::from_value(json!({"exec": {"command": ["true"]}})).unwrap();
        assert!(matches!(
            probe_target(&exec, &c, IP, true).unwrap(),
            ProbeTarget::Unsupported(_)
        ));
        let bad: Probe = serde_json::from_value(json!({"tcpSocket": {"port": "nope"}})).unwrap();
        assert!(probe_target(&bad, &c, IP, false).is_err());
        let timing = probe_timing(&probe);
        assert_eq!(timing.initial_delay, Duration::from_secs(20));
        assert_eq!(timing.period, Duration::from_secs(5));
        assert_eq!((timing.success_threshold, timing.failure_threshold), (1, 3));
    }

    #[test]
    fn app_probers_is_what_the_injector_writes() {
        let containers = vec![
            sample_pod().spec.unwrap().containers[0].clone(),
            container(
                json!({"name": "web", "ports": [{"name": "web", "containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/ready", "port": "web"}, "timeoutSeconds": 3}}),
            ),
            container(json!({"name": "plain"})),
        ];
        let text = app_probers(&containers).unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v,
            json!({
                "/app-health/classifier/readyz": {"tcpSocket": {"port": 9000}, "timeoutSeconds": 1},
                "/app-health/web/readyz": {"httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP"}, "timeoutSeconds": 3}
            })
        );
        assert_eq!(app_probers(&containers[2..]).unwrap(), None);
        let bad = vec![container(
            json!({"name": "x", "readinessProbe": {"tcpSocket": {"port": "nope"}}}),
        )];
        assert!(app_probers(&bad).is_err());
    }

    #[test]
    fn probe_state_counts_thresholds() {
        let timing = ProbeTiming {
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            success_threshold: 2,
            failure_threshold: 2,
        };
        let t0 = Instant::now();
        let mut s = ProbeState::new(timing, t0);
        s.record(Ok(()), t0);
        assert!(!s.ready, "one success of two");
        s.record(Ok(()), t0);
        assert!(s.ready);
        s.record(Err("refused".into()), t0);
        assert!(s.ready, "one failure of two keeps it ready");
        s.record(Err("refused".into()), t0);
        assert!(!s.ready);
        assert_eq!(s.last_error.as_deref(), Some("refused"));
        assert_eq!(s.next_at, t0 + Duration::from_secs(1));
    }

    #[test]
    fn sidecar_decision_identity_and_config() {
        let enabled = BTreeMap::from([("istio-injection".to_string(), "enabled".to_string())]);
        let disabled = BTreeMap::from([("istio-injection".to_string(), "disabled".to_string())]);
        let p = sample_pod();
        assert!(wants_sidecar(Some(&enabled), &p));
        assert!(!wants_sidecar(Some(&disabled), &p));
        assert!(!wants_sidecar(None, &p));
        let mut opted_out = p.clone();
        opted_out.metadata.annotations = Some(BTreeMap::from([(
            INJECT_ANNOTATION.to_string(),
            "false".to_string(),
        )]));
        assert!(!wants_sidecar(Some(&enabled), &opted_out));

        assert_eq!(workload_name(&p), "iris-default-0-classifier");
        let bare = pod(json!({"metadata": {"name": "solo"}}));
        assert_eq!(workload_name(&bare), "solo");

        let env: BTreeMap<String, String> = sidecar_env(&p, IP, "10.77.0.1", "node-1")
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(env["POD_NAME"], "iris-default-0-classifier-7d9f8-abcde");
        assert_eq!(env["POD_NAMESPACE"], "seldon");
        assert_eq!(env["INSTANCE_IP"], "10.77.0.12");
        assert_eq!(env["SERVICE_ACCOUNT"], "sa-1");
        assert_eq!(env["CA_ADDR"], "10.77.0.1:15012");
        assert_eq!(env["ISTIO_META_INTERCEPTION_MODE"], "REDIRECT");
        let labels: serde_json::Value =
            serde_json::from_str(&env["ISTIO_METAJSON_LABELS"]).unwrap();
        assert_eq!(labels["version"], "default");
        let config: serde_json::Value = serde_json::from_str(&env["PROXY_CONFIG"]).unwrap();
        assert_eq!(config["discoveryAddress"], "10.77.0.1:15010");
        assert_eq!(config["binaryPath"], "/var/lib/istio/bin/envoy");
        assert_eq!(
            env["ISTIO_KUBE_APP_PROBERS"],
            r#"{"/app-health/classifier/readyz":{"tcpSocket":{"port":9000},"timeoutSeconds":1}}"#
        );
    }

    #[test]
    fn proxy_config_annotation_overlays_but_cannot_move_harness_paths() {
        let mut p = sample_pod();
        p.metadata.annotations = Some(BTreeMap::from([(
            PROXY_CONFIG_ANNOTATION.to_string(),
            "holdApplicationUntilProxyStarts: true\nbinaryPath: /elsewhere\nconcurrency: 1\n"
                .to_string(),
        )]));
        let config: serde_json::Value =
            serde_json::from_str(&proxy_config(&p, "10.77.0.1").unwrap()).unwrap();
        assert_eq!(config["concurrency"], 1);
        assert_eq!(config["binaryPath"], "/var/lib/istio/bin/envoy");
        assert!(hold_until_proxy_starts(&p));
        assert!(!hold_until_proxy_starts(&sample_pod()));
        p.metadata.annotations = Some(BTreeMap::from([(
            PROXY_CONFIG_ANNOTATION.to_string(),
            "[1, 2]".to_string(),
        )]));
        assert!(
            proxy_config(&p, "10.77.0.1")
                .unwrap_err()
                .to_string()
                .contains("not a mapping")
        );
    }

    #[test]
    fn mounts_map_volume_mounts_to_pod_dirs() {
        let volumes: Vec<Volume> = serde_json::from_value(json!([
            {"name": "models", "emptyDir": {}},
            {"name": "podinfo", "downwardAPI": {"items": []}}
        ]))
        .unwrap();
        let dirs = BTreeMap::from([
            (
                "models".to_string(),
                PathBuf::from("/w/pods/p/volumes/models"),
            ),
            (
                "podinfo".to_string(),
                PathBuf::from("/w/pods/p/volumes/podinfo"),
            ),
        ]);
        let c = container(json!({"name": "c", "volumeMounts": [
            {"name": "models", "mountPath": "/mnt/models/", "readOnly": true},
            {"name": "podinfo", "mountPath": "/etc/podinfo/annotations", "subPath": "annotations"}
        ]}));
        assert_eq!(
            container_mounts(&c, &volumes, &dirs).unwrap(),
            vec![
                Mount {
                    host: PathBuf::from("/w/pods/p/volumes/models"),
                    path: "/mnt/models".into(),
                    read_only: true
                },
                Mount {
                    host: PathBuf::from("/w/pods/p/volumes/podinfo/annotations"),
                    path: "/etc/podinfo/annotations".into(),
                    read_only: false
                },
            ]
        );
        let bad = |mount: serde_json::Value| {
            container_mounts(
                &container(json!({"name": "c", "volumeMounts": [mount]})),
                &volumes,
                &dirs,
            )
            .unwrap_err()
        };
        assert_eq!(
            bad(json!({"name": "other", "mountPath": "/x"})),
            ContainerConfigError::UnknownVolume("other".into())
        );
        assert_eq!(
            bad(json!({"name": "models", "mountPath": "relative"})),
            ContainerConfigError::BadMountPath("relative".into())
        );
        assert_eq!(
            bad(json!({"name": "models", "mountPath": "/"})),
            ContainerConfigError::BadMountPath("/".into())
        );
        assert!(matches!(
            bad(json!({"name": "models", "mountPath": "/x", "subPath": "../etc"})),
            ContainerConfigError::BadMountPath(_)
        ));
    }

    #[test]
    fn scripts_quote_and_parse() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        let mounts = vec![Mount {
            host: PathBuf::from("/w/pods/a b/volumes/models"),
            path: "/mnt/models".into(),
            read_only: true,
        }];
        let script = container_script(
            &mounts,
            Path::new("/w/resolv.conf"),
            "pod-1",
            Path::new("/w/cwd"),
        );
        assert!(script.contains("mount --bind '/w/pods/a b/volumes/models' '/mnt/models'\n"));
        assert!(script.contains("mount -o remount,bind,ro '/mnt/models'\n"));
        assert!(script.ends_with("exec /usr/bin/env -i \"$@\"\n"));
        let sidecar = sidecar_script(
            Path::new("/root/bin/pilot-agent"),
            Path::new("/root/venv/envoy"),
            Path::new("/w/proxy"),
            Path::new("/w/resolv.conf"),
        );
        assert!(sidecar.contains("--reuid 1337 --regid 1337"));
        assert!(sidecar.contains("mount --bind '/root/venv/envoy' /var/lib/istio/bin/envoy\n"));
        // Both are valid sh (syntax check only: `sh -n` runs nothing).
        for s in [script, sidecar] {
            let out = Command::new("/bin/sh")
                .arg("-n")
                .arg("-c")
                .arg(&s)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{s}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let bad = Command::new("/bin/sh")
            .arg("-n")
            .arg("-c")
            .arg("if then")
            .output()
            .unwrap();
        assert!(!bad.status.success(), "sh -n must catch syntax errors");
        assert_eq!(
            resolv_conf("seldon"),
            "search seldon.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.77.0.1\noptions ndots:5\n"
        );
    }

    #[test]
    fn iptables_args_follow_the_injector_and_traffic_annotations() {
        let defaults = iptables_args(&sample_pod()).join(" ");
        assert_eq!(
            defaults,
            "istio-iptables -p 15001 -z 15006 -u 1337 -m REDIRECT -i * -x  -b * -d 15090,15021,15020 --redirect-dns --log_output_level=default:info"
        );
        let mut p = sample_pod();
        p.metadata.annotations = Some(BTreeMap::from([
            (
                "traffic.sidecar.istio.io/excludeOutboundIPRanges".to_string(),
                "10.77.0.1/32".to_string(),
            ),
            (
                "traffic.sidecar.istio.io/excludeInboundPorts".to_string(),
                "9500, 6000".to_string(),
            ),
            (
                "traffic.sidecar.istio.io/excludeOutboundPorts".to_string(),
                "443".to_string(),
            ),
        ]));
        let args = iptables_args(&p);
        let value = |f: &str| {
            args.windows(2)
                .find(|w| w[0] == f)
                .map(|w| w[1].clone())
                .unwrap_or_default()
        };
        assert_eq!(value("-x"), "10.77.0.1/32");
        assert_eq!(value("-d"), "15090,15021,15020,9500,6000");
        assert_eq!(value("-o"), "443");
        assert_eq!(value("-i"), "*");
        assert_eq!(
            value("-q"),
            "",
            "no includeOutboundPorts flag without the annotation"
        );
    }

    #[test]
    fn downward_api_files_use_the_kubelet_format() {
        let labels = BTreeMap::from([
            ("app".to_string(), "iris".to_string()),
            ("q".to_string(), "say \"hi\"".to_string()),
        ]);
        assert_eq!(
            format_downward_map(Some(&labels)),
            "app=\"iris\"\nq=\"say \\\"hi\\\"\""
        );
        assert_eq!(format_downward_map(None), "");
    }

    fn running(name: &str, ready: bool) -> ContainerView {
        let mut c = ContainerView::new(name, "img:1", "x");
        c.state = RunState::Running {
            started_at: Timestamp::UNIX_EPOCH,
        };
        c.ready = ready;
        c.pid = Some(42);
        c
    }

    fn terminated(name: &str, code: i32) -> ContainerView {
        let mut c = ContainerView::new(name, "img:1", "x");
        c.state = RunState::Terminated(Terminated {
            exit_code: code,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            message: None,
            started_at: None,
            finished_at: Timestamp::UNIX_EPOCH,
        });
        c
    }

    fn view() -> PodView {
        PodView {
            pod_ip: Some(IP),
            start_time: Timestamp::UNIX_EPOCH,
            restart_policy: "Always".into(),
            init: vec![terminated("init", 0)],
            containers: vec![running("classifier", true)],
            sidecar_ready: Some(true),
            message: None,
        }
    }

    fn cond<'a>(s: &'a PodStatus, t: &str) -> &'a PodCondition {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == t)
            .unwrap()
    }

    #[test]
    fn status_ready_only_with_ready_containers_and_sidecar() {
        let now = Timestamp::from_second(1_000).unwrap();
        let s = build_status(&view(), &[], now);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.pod_ip.as_deref(), Some("10.77.0.12"));
        assert_eq!(s.pod_ips.as_ref().unwrap()[0].ip, "10.77.0.12");
        assert_eq!(s.host_ip.as_deref(), Some("10.77.0.1"));
        assert_eq!(cond(&s, "Ready").status, "True");
        assert_eq!(cond(&s, "Initialized").status, "True");
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert!(cs.ready);
        assert!(cs.state.as_ref().unwrap().running.is_some());

        let mut v = view();
        v.sidecar_ready = Some(false);
        let s2 = build_status(&v, s.conditions.as_deref().unwrap(), now);
        let ready = cond(&s2, "Ready");
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
        assert_eq!(
            ready.message.as_deref(),
            Some("containers with unready status: [istio-proxy]")
        );
        // Initialized did not change: its transition time is kept.
        let later = Timestamp::from_second(2_000).unwrap();
        let s3 = build_status(&v, s2.conditions.as_deref().unwrap(), later);
        assert_eq!(
            cond(&s3, "Initialized").last_transition_time,
            Some(Time(now))
        );
        let mut v = view();
        v.containers[0].ready = false;
        v.sidecar_ready = None;
        let s4 = build_status(&v, &[], now);
        assert_eq!(
            cond(&s4, "ContainersReady").message.as_deref(),
            Some("containers with unready status: [classifier]")
        );
    }

    #[test]
    fn status_phases() {
        let now = Timestamp::UNIX_EPOCH;
        // Init container still failing: Pending, not initialized, reason shown.
        let mut v = view();
        v.init = vec![terminated("init", 2)];
        v.containers = vec![ContainerView::new("classifier", "img", "PodInitializing")];
        let s = build_status(&v, &[], now);
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let init = cond(&s, "Initialized");
        assert_eq!(init.status, "False");
        assert_eq!(
            init.message.as_deref(),
            Some("containers with incomplete status: [init]")
        );
        assert_eq!(
            s.init_container_statuses.as_ref().unwrap()[0]
                .state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .exit_code,
            2
        );
        // ... and Failed for good when nothing restarts.
        v.restart_policy = "Never".into();
        assert_eq!(phase(&v), "Failed");
        // Job-like pods end.
        let mut v = view();
        v.restart_policy = "Never".into();
        v.containers = vec![terminated("a", 0), terminated("b", 0)];
        assert_eq!(phase(&v), "Succeeded");
        v.containers = vec![terminated("a", 0), terminated("b", 1)];
        assert_eq!(phase(&v), "Failed");
        v.restart_policy = "OnFailure".into();
        assert_eq!(phase(&v), "Pending");
        // Crash-looping under Always stays Running once it has run.
        let mut v = view();
        let mut c = ContainerView::new("classifier", "img", "CrashLoopBackOff");
        c.restart_count = 2;
        v.containers = vec![c];
        assert_eq!(phase(&v), "Running");
        // A pod-level problem is shown and keeps it unready.
        let mut v = view();
        v.message = Some("volumes: configmap seldon/x not found".into());
        let s = build_status(&v, &[], now);
        assert_eq!(
            cond(&s, "Ready").message.as_deref(),
            Some("volumes: configmap seldon/x not found")
        );
    }

    #[test]
    fn pod_action_binds_starts_stops_and_never_restarts_a_finished_uid() {
        let mut p = sample_pod();
        assert_eq!(pod_action(&p, "node-1", false, false), PodAction::Bind);
        p.spec.as_mut().unwrap().node_name = Some("other".into());
        assert_eq!(pod_action(&p, "node-1", false, false), PodAction::Ignore);
        p.spec.as_mut().unwrap().node_name = Some("node-1".into());
        assert_eq!(pod_action(&p, "node-1", false, false), PodAction::Start);
        assert_eq!(pod_action(&p, "node-1", true, false), PodAction::Ignore);
        // A stale event for a pod whose task already ended (deleted, then removed).
        assert_eq!(pod_action(&p, "node-1", false, true), PodAction::Ignore);
        p.status = Some(PodStatus {
            phase: Some("Succeeded".into()),
            ..Default::default()
        });
        assert_eq!(pod_action(&p, "node-1", false, false), PodAction::Ignore);
        p.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        p.metadata.deletion_grace_period_seconds = Some(20);
        assert_eq!(
            pod_action(&p, "node-1", true, false),
            PodAction::Stop {
                grace: Duration::from_secs(20)
            }
        );
        assert_eq!(pod_action(&p, "node-1", false, false), PodAction::Remove);
        assert_eq!(pod_action(&p, "node-1", false, true), PodAction::Remove);
        p.spec.as_mut().unwrap().node_name = None;
        assert_eq!(pod_action(&p, "node-1", false, false), PodAction::Ignore);
    }

    #[test]
    fn backoff_doubles_to_five_minutes() {
        assert_eq!(backoff(0), Duration::from_secs(10));
        assert_eq!(backoff(1), Duration::from_secs(20));
        assert_eq!(backoff(4), Duration::from_secs(160));
        assert_eq!(backoff(5), Duration::from_secs(300));
        assert_eq!(backoff(50), Duration::from_secs(300));
        assert_eq!(backoff(-1), Duration::from_secs(10));
    }

    fn config_for_start(pilot_agent: &str) -> NodeAgentConfig {
        let client =
            kube::Client::try_from(kube::Config::new("https://127.0.0.1:1".parse().unwrap()))
                .unwrap();
        NodeAgentConfig {
            client,
            node_name: "n".into(),
            workdir: std::env::temp_dir().join("smesh-never-used"),
            pilot_agent: PathBuf::from(pilot_agent),
            envoy: PathBuf::from("/bin/sh"),
            bootstrap_template: PathBuf::from("/bin/sh"),
            istiod_host: "10.77.0.1".into(),
            images: BTreeMap::new(),
            kubeconfig_path: PathBuf::from("/bin/sh"),
        }
    }

    #[tokio::test]
    async fn start_refuses_outside_a_node_namespace() {
        let err = NodeAgent::start(config_for_start("/bin/sh"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                NodeAgentError::Netns(NetnsError::NotInNodeNamespace { .. })
            ),
            "{err}"
        );
    }

    #[test]
    fn start_refuses_missing_binaries() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root to make a node namespace");
            return;
        }
        let err = std::thread::spawn(|| {
            let _node = netns::enter_new_node_namespace().unwrap();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                NodeAgent::start(config_for_start("/nonexistent/pilot-agent"))
                    .await
                    .unwrap_err()
            })
        })
        .join()
        .unwrap();
        assert_eq!(
            err.to_string(),
            "pilot-agent not found at /nonexistent/pilot-agent"
        );
    }

    #[test]
    fn volume_kind_names_the_source() {
        let v: Volume = serde_json::from_value(
            json!({"name": "data", "persistentVolumeClaim": {"claimName": "c"}}),
        )
        .unwrap();
        assert_eq!(volume_kind(&v), "persistentVolumeClaim");
    }

    // -----------------------------------------------------------------------------------
    // Against a real kube-apiserver (scripts/kube-test-env.sh), as root: the agent binds,
    // runs init containers and containers in a pod netns, resolves env and volumes, probes,
    // restarts, reports unknown images, deletes, and leaves nothing behind. No sidecar here
    // (the namespace is not labelled); the cluster tests run pods with real sidecars.
    // -----------------------------------------------------------------------------------

    mod real_apiserver {
        use super::*;
        use base64::Engine;
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

        fn repo() -> PathBuf {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
        }

        fn kube_binaries() -> (PathBuf, PathBuf) {
            let out = Command::new("bash")
                .arg(repo().join("scripts/kube-test-env.sh"))
                .stderr(std::process::Stdio::inherit())
                .output()
                .expect("running scripts/kube-test-env.sh");
            assert!(out.status.success(), "scripts/kube-test-env.sh failed");
            let text = String::from_utf8(out.stdout).unwrap();
            let mut lines = text.lines();
            (
                PathBuf::from(lines.next().unwrap()),
                PathBuf::from(lines.next().unwrap()),
            )
        }

        struct Pki {
            ca: String,
            serving: (String, String),
            admin: (String, String),
            sa: (String, String),
        }

        fn pki() -> Pki {
            let ca_key = KeyPair::generate().unwrap();
            let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
            ca.distinguished_name.push(DnType::CommonName, "smesh-ca");
            ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let ca_cert = ca.self_signed(&ca_key).unwrap();
            let issuer = Issuer::new(ca, ca_key);
            let serving_key = KeyPair::generate().unwrap();
            let serving = CertificateParams::new(vec!["10.77.0.1".to_string(), "127.0.0.1".into()])
                .unwrap()
                .signed_by(&serving_key, &issuer)
                .unwrap();
            let admin_key = KeyPair::generate().unwrap();
            let mut admin = CertificateParams::new(Vec::<String>::new()).unwrap();
            admin.distinguished_name.push(DnType::CommonName, "admin");
            admin
                .distinguished_name
                .push(DnType::OrganizationName, "system:masters");
            let admin_cert = admin.signed_by(&admin_key, &issuer).unwrap();
            let sa = KeyPair::generate().unwrap();
            Pki {
                ca: ca_cert.pem(),
                serving: (serving.pem(), serving_key.serialize_pem()),
                admin: (admin_cert.pem(), admin_key.serialize_pem()),
                sa: (sa.serialize_pem(), sa.public_key_pem()),
            }
        }

        async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
        where
            F: FnMut() -> Fut,
            Fut: std::future::Future<Output = Option<T>>,
        {
            let start = Instant::now();
            loop {
                if let Some(v) = f().await {
                    return v;
                }
                assert!(start.elapsed() < timeout, "timed out waiting for {what}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }

        async fn get_pod(api: &Api<Pod>, name: &str) -> Option<Pod> {
            api.get_opt(name).await.ok().flatten()
        }

        fn ready(pod: &Pod) -> bool {
            pod.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        }

        fn container_status_of<'a>(pod: &'a Pod, name: &str) -> Option<&'a ContainerStatus> {
            pod.status
                .as_ref()?
                .container_statuses
                .as_ref()?
                .iter()
                .find(|c| c.name == name)
        }

        async fn http_get(url: &str) -> Option<String> {
            let r = reqwest::Client::builder()
                .no_proxy()
                .build()
                .ok()?
                .get(url)
                .send()
                .await
                .ok()?;
            r.status().is_success().then_some(())?;
            r.text().await.ok()
        }

        /// The pod namespaces of the pods `api` lists (from their IPs), by pod name.
        async fn pod_namespaces(api: &Api<Pod>) -> BTreeMap<String, String> {
            let mut out = BTreeMap::new();
            for pod in api.list(&Default::default()).await.unwrap().items {
                let ip = pod.status.and_then(|s| s.pod_ip);
                if let Some(ip) = ip.and_then(|ip| ip.parse::<Ipv4Addr>().ok()) {
                    let index = ip.octets()[3] - 10;
                    out.insert(
                        pod.metadata.name.unwrap_or_default(),
                        netns::pod_namespace_name(std::process::id(), index),
                    );
                }
            }
            out
        }

        fn netns_exists(name: &str) -> bool {
            Path::new("/run/netns").join(name).exists()
        }

        /// etcd + kube-apiserver inside a fresh node namespace entered by this thread,
        /// namespace `apps` (labelled as given) with what the controller-manager would add
        /// (ServiceAccount `default`, ConfigMap `kube-root-ca.crt`) and a ConfigMap
        /// `greeting`.
        struct Kube {
            procs: Vec<procs::Child>,
            client: kube::Client,
            kubeconfig_path: PathBuf,
            d: PathBuf,
            _dir: tempfile::TempDir,
            node: Option<netns::NodeNamespace>,
        }

        impl Drop for Kube {
            fn drop(&mut self) {
                self.procs.clear();
                self.node.take();
            }
        }

        async fn start_kube(namespace_labels: serde_json::Value) -> Kube {
            let (etcd, apiserver) = kube_binaries();
            // This test thread (the current-thread runtime's) becomes the node.
            let node = netns::enter_new_node_namespace().unwrap();
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path().to_path_buf();
            let pki = pki();
            for (f, c) in [
                ("ca.crt", &pki.ca),
                ("apiserver.crt", &pki.serving.0),
                ("apiserver.key", &pki.serving.1),
                ("sa.key", &pki.sa.0),
                ("sa.pub", &pki.sa.1),
            ] {
                std::fs::write(d.join(f), c).unwrap();
            }
            let p = |f: &str| d.join(f).to_string_lossy().into_owned();
            let logs = d.join("logs");
            let mut etcd_cmd = Command::new(&etcd);
            etcd_cmd
                .args(["--data-dir", &p("etcd")])
                .args(["--listen-client-urls", "http://127.0.0.1:2379"])
                .args(["--advertise-client-urls", "http://127.0.0.1:2379"])
                .args(["--listen-peer-urls", "http://127.0.0.1:2380"])
                .args(["--initial-advertise-peer-urls", "http://127.0.0.1:2380"])
                .args(["--initial-cluster", "default=http://127.0.0.1:2380"])
                .arg("--unsafe-no-fsync");
            let etcd = procs::spawn("etcd", etcd_cmd, &logs).unwrap();
            let mut api_cmd = Command::new(&apiserver);
            api_cmd
                .arg("--etcd-servers=http://127.0.0.1:2379")
                .arg("--bind-address=10.77.0.1")
                .arg("--advertise-address=10.77.0.1")
                .arg("--secure-port=6443")
                .arg(format!("--tls-cert-file={}", p("apiserver.crt")))
                .arg(format!("--tls-private-key-file={}", p("apiserver.key")))
                .arg(format!("--client-ca-file={}", p("ca.crt")))
                .arg(format!("--service-account-key-file={}", p("sa.pub")))
                .arg(format!(
                    "--service-account-signing-key-file={}",
                    p("sa.key")
                ))
                .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
                .arg("--api-audiences=https://kubernetes.default.svc.cluster.local,istio-ca")
                .arg("--authorization-mode=RBAC")
                .arg("--service-cluster-ip-range=10.96.0.0/24")
                .arg(format!("--cert-dir={}", p("certs")));
            let apiserver = procs::spawn("kube-apiserver", api_cmd, &logs).unwrap();
            let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
            let kubeconfig = json!({
                "apiVersion": "v1", "kind": "Config", "current-context": "c",
                "clusters": [{"name": "c", "cluster": {"server": "https://10.77.0.1:6443", "certificate-authority-data": b64(&pki.ca)}}],
                "users": [{"name": "u", "user": {"client-certificate-data": b64(&pki.admin.0), "client-key-data": b64(&pki.admin.1)}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]
            });
            let kubeconfig_path = d.join("kubeconfig");
            std::fs::write(
                &kubeconfig_path,
                serde_json::to_string(&kubeconfig).unwrap(),
            )
            .unwrap();
            let client = agent_client(&kubeconfig_path).await.unwrap();
            eventually("apiserver ready", Duration::from_secs(120), || {
                let client = client.clone();
                async move {
                    let req = http::Request::get("/readyz").body(Vec::new()).unwrap();
                    (client.request_text(req).await.ok()? == "ok").then_some(())
                }
            })
            .await;
            let namespaces: Api<Namespace> = Api::all(client.clone());
            eventually("namespace created", Duration::from_secs(60), || {
                let namespaces = namespaces.clone();
                let namespace_labels = namespace_labels.clone();
                async move {
                    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps", "labels": namespace_labels.clone()}});
                    namespaces
                        .patch("apps", &PatchParams::apply("test").force(), &Patch::Apply(&ns))
                        .await
                        .ok()
                        .map(|_| ())
                }
            })
            .await;
            // What the controller-manager would create (none runs here).
            let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "apps");
            eventually("service account", Duration::from_secs(30), || {
                let sas = sas.clone();
                async move {
                    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}});
                    sas.patch("default", &PatchParams::apply("test").force(), &Patch::Apply(&sa))
                        .await
                        .ok()
                        .map(|_| ())
                }
            })
            .await;
            let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "apps");
            let root_ca = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": pki.ca}});
            cms.patch(
                "kube-root-ca.crt",
                &PatchParams::apply("test").force(),
                &Patch::Apply(&root_ca),
            )
            .await
            .unwrap();
            let greeting = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "greeting"}, "data": {"word": "hello"}});
            cms.patch(
                "greeting",
                &PatchParams::apply("test").force(),
                &Patch::Apply(&greeting),
            )
            .await
            .unwrap();

            Kube {
                procs: vec![apiserver, etcd],
                client,
                kubeconfig_path,
                d,
                _dir: dir,
                node: Some(node),
            }
        }

        #[tokio::test(flavor = "current_thread")]
        async fn node_agent_runs_pods_against_a_real_apiserver() {
            if !nix::unistd::geteuid().is_root() {
                eprintln!("skipped: needs root (network namespaces, mounts)");
                return;
            }
            let kube = start_kube(json!({})).await;
            let (client, kubeconfig_path, d) = (
                kube.client.clone(),
                kube.kubeconfig_path.clone(),
                kube.d.clone(),
            );
            let images = BTreeMap::from([
                ("test/sh".to_string(), image("/bin/sh", &[], &[])),
                (
                    "test/http".to_string(),
                    image(
                        "/usr/bin/python3",
                        &["-m", "http.server"],
                        &[("PYTHONUNBUFFERED", "1")],
                    ),
                ),
            ]);
            // No pod here gets a sidecar; these files only have to exist.
            let exists = PathBuf::from("/bin/sh");
            let agent = NodeAgent::start(NodeAgentConfig {
                client: client.clone(),
                node_name: "smesh-node".into(),
                workdir: d.join("work"),
                pilot_agent: exists.clone(),
                envoy: exists.clone(),
                bootstrap_template: exists.clone(),
                istiod_host: "10.77.0.1".into(),
                images,
                kubeconfig_path: kubeconfig_path.clone(),
            })
            .await
            .unwrap();
            let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
            let n = nodes.get("smesh-node").await.unwrap();
            assert_eq!(n.spec.unwrap().pod_cidr.as_deref(), Some("10.77.0.0/24"));
            let node_ready = n.status.unwrap().conditions.unwrap();
            assert!(
                node_ready
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            );

            // 1. A pod with an init container writing into an emptyDir that the server
            //    serves: env from fieldRef and configMapKeyRef, the real mount path, an
            //    httpGet readiness probe on a named port.
            let data = d.join("mnt/data").to_string_lossy().into_owned();
            let pods: Api<Pod> = Api::namespaced(client.clone(), "apps");
            let web = json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web", "labels": {"app": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "volumes": [{"name": "data", "emptyDir": {}}],
                    "initContainers": [{
                        "name": "init", "image": "test/sh:1",
                        "command": ["/bin/sh", "-c", "echo \"$WORD $POD $IP $(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace)\" > $DATA/hello.txt"],
                        "env": [
                            {"name": "DATA", "value": data},
                            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                            {"name": "WORD", "valueFrom": {"configMapKeyRef": {"name": "greeting", "key": "word"}}}
                        ],
                        "volumeMounts": [{"name": "data", "mountPath": data}]
                    }],
                    "containers": [{
                        "name": "server", "image": "test/http:latest",
                        "args": ["8080", "--directory", "$(DATA)"],
                        "env": [{"name": "DATA", "value": data}],
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"path": "/hello.txt", "port": "http"}, "periodSeconds": 1},
                        "lifecycle": {"preStop": {"exec": {"command": ["/bin/sh", "-c", "echo stopping; sleep 2"]}}},
                        "volumeMounts": [{"name": "data", "mountPath": data, "readOnly": true}]
                    }]
                }
            });
            pods.create(
                &PostParams::default(),
                &serde_json::from_value(web).unwrap(),
            )
            .await
            .unwrap();
            let pod = eventually("pod web Ready", Duration::from_secs(60), || {
                let pods = pods.clone();
                async move { get_pod(&pods, "web").await.filter(ready) }
            })
            .await;
            let spec = pod.spec.as_ref().unwrap();
            assert_eq!(
                spec.node_name.as_deref(),
                Some("smesh-node"),
                "bound by the agent"
            );
            let status = pod.status.as_ref().unwrap();
            assert_eq!(status.phase.as_deref(), Some("Running"));
            assert_eq!(status.host_ip.as_deref(), Some("10.77.0.1"));
            let ip = status.pod_ip.clone().unwrap();
            assert!(ip.starts_with("10.77.0."), "{ip}");
            let init = &status.init_container_statuses.as_ref().unwrap()[0];
            let init_done = init.state.as_ref().unwrap().terminated.as_ref().unwrap();
            assert_eq!(
                (init_done.exit_code, init_done.reason.as_deref()),
                (0, Some("Completed"))
            );
            // The init container's output, served by the container from the node namespace.
            let body = http_get(&format!("http://{ip}:8080/hello.txt"))
                .await
                .unwrap();
            assert_eq!(body, format!("hello web {ip} apps\n"));
            assert!(agent.pod_log("apps", "web", "server").is_some());
            assert!(agent.pod_log("apps", "web", "nope").is_none());

            // 2. A crashing container is restarted with backoff, its exit code recorded.
            let crash = json!({
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "crash"},
                "spec": {"nodeName": "smesh-node", "automountServiceAccountToken": false,
                         "containers": [{"name": "c", "image": "test/sh", "command": ["sh", "-c", "echo dying; exit 3"]}]}
            });
            pods.create(
                &PostParams::default(),
                &serde_json::from_value(crash).unwrap(),
            )
            .await
            .unwrap();
            let crashed = eventually("crash restarted", Duration::from_secs(60), || {
                let pods = pods.clone();
                async move {
                    let pod = get_pod(&pods, "crash").await?;
                    let cs = container_status_of(&pod, "c")?.clone();
                    (cs.restart_count >= 1 && cs.last_state.is_some()).then_some(cs)
                }
            })
            .await;
            let last = crashed.last_state.unwrap().terminated.unwrap();
            assert_eq!(last.exit_code, 3);
            assert_eq!(last.message.as_deref(), Some("dying"));
            assert!(!crashed.ready);

            // 3. An unknown image is reported, not crashed on.
            let unknown = json!({
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "unknown"},
                "spec": {"automountServiceAccountToken": false,
                         "containers": [{"name": "c", "image": "nope/nothing:1"}]}
            });
            pods.create(
                &PostParams::default(),
                &serde_json::from_value(unknown).unwrap(),
            )
            .await
            .unwrap();
            let waiting = eventually("unknown image reported", Duration::from_secs(30), || {
                let pods = pods.clone();
                async move {
                    let pod = get_pod(&pods, "unknown").await?;
                    container_status_of(&pod, "c")?.state.clone()?.waiting
                }
            })
            .await;
            assert_eq!(waiting.reason.as_deref(), Some("ErrImagePull"));
            assert!(
                waiting.message.as_deref().unwrap().contains("\"nope/nothing:1\" (name \"nope/nothing\") is not in the node agent's image map (known: test/http, test/sh)"),
                "{waiting:?}"
            );

            // 4. Deleting a pod stops its processes, removes its netns, then the object.
            let server_pid: i32 = container_status_of(&pod, "server")
                .unwrap()
                .container_id
                .as_deref()
                .unwrap()
                .trim_start_matches("smesh://")
                .parse()
                .unwrap();
            assert!(Path::new(&format!("/proc/{server_pid}")).exists());
            let namespaces = pod_namespaces(&pods).await;
            assert_eq!(namespaces.len(), 3, "{namespaces:?}");
            assert!(
                namespaces.values().all(|n| netns_exists(n)),
                "{namespaces:?}"
            );
            //    The preStop hook runs first and the server keeps serving meanwhile.
            let deleting = Instant::now();
            pods.delete("web", &DeleteParams::default()).await.unwrap();
            let prestop_log = eventually("preStop hook ran", Duration::from_secs(10), || async {
                let path = agent.pod_log("apps", "web", "server-prestop")?;
                let text = std::fs::read_to_string(&path).ok()?;
                text.contains("stopping").then_some(text)
            })
            .await;
            assert_eq!(prestop_log, "stopping\n");
            let during = http_get(&format!("http://{ip}:8080/hello.txt")).await;
            assert_eq!(
                during.as_deref(),
                Some(body.as_str()),
                "served during preStop"
            );
            eventually("web removed", Duration::from_secs(30), || {
                let pods = pods.clone();
                async move { get_pod(&pods, "web").await.is_none().then_some(()) }
            })
            .await;
            let took = deleting.elapsed();
            assert_not_restarted(&agent, "server").await;
            assert!(
                took >= Duration::from_secs(2),
                "removed before its preStop hook ended: {took:?}"
            );
            assert!(
                took < Duration::from_secs(5),
                "grace period (5 s) not needed: {took:?}"
            );
            assert!(!Path::new(&format!("/proc/{server_pid}")).exists());
            assert!(!netns_exists(&namespaces["web"]));
            assert!(netns_exists(&namespaces["crash"]));

            // 5. Dropping the agent stops everything and leaves no namespace.
            drop(agent);
            assert!(
                namespaces.values().all(|n| !netns_exists(n)),
                "{namespaces:?}"
            );
            drop(kube);
        }

        /// On failure: the pods' status and the tail of every log under the test dir.
        async fn dump(d: &Path, pods: &Api<Pod>) {
            for pod in pods
                .list(&Default::default())
                .await
                .map(|l| l.items)
                .unwrap_or_default()
            {
                eprintln!(
                    "--- pod {}: {}",
                    pod.metadata.name.clone().unwrap_or_default(),
                    serde_json::to_string_pretty(&pod.status).unwrap_or_default()
                );
            }
            let mut stack = vec![d.to_path_buf()];
            while let Some(dir) = stack.pop() {
                for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    let path = entry.path();
                    if path.is_dir() {
                        stack.push(path);
                    } else if path.extension().is_some_and(|e| e == "log") {
                        let text = std::fs::read_to_string(&path).unwrap_or_default();
                        let errors: Vec<&str> = text
                            .lines()
                            .filter(|l| l.contains("error") || l.contains("rejected"))
                            .take(15)
                            .collect();
                        eprintln!(
                            "--- {} (first error lines):\n{}\n--- (last lines):\n{}",
                            path.display(),
                            errors.join("\n"),
                            procs::tail_lines(&path, 15)
                        );
                    }
                }
            }
        }

        fn istio_paths() -> (PathBuf, PathBuf, PathBuf, PathBuf) {
            let out = Command::new("bash")
                .arg(repo().join("scripts/istio-test-env.sh"))
                .stderr(std::process::Stdio::inherit())
                .output()
                .expect("running scripts/istio-test-env.sh");
            assert!(out.status.success(), "scripts/istio-test-env.sh failed");
            let text = String::from_utf8(out.stdout).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            let envoy = Command::new("bash")
                .arg(repo().join("scripts/setup.sh"))
                .stderr(std::process::Stdio::inherit())
                .output()
                .expect("running scripts/setup.sh");
            assert!(envoy.status.success(), "scripts/setup.sh failed");
            let envoy = String::from_utf8(envoy.stdout).unwrap();
            (
                PathBuf::from(lines[0]),
                PathBuf::from(lines[1]),
                PathBuf::from(lines[3]),
                PathBuf::from(envoy.lines().last().unwrap()),
            )
        }

        /// A pod in an `istio-injection=enabled` namespace gets a real pilot-agent + Envoy
        /// (uid 1337) with iptables REDIRECT in its netns: traffic from the node to the app
        /// port is answered through Envoy's inbound listener, the app's outbound goes
        /// through Envoy, readiness goes through the rewritten probe, the workload gets a
        /// certificate from istiod's CA.
        #[tokio::test(flavor = "current_thread")]
        async fn sidecar_with_iptables_interception() {
            if !nix::unistd::geteuid().is_root() {
                eprintln!("skipped: needs root (network namespaces, mounts, iptables)");
                return;
            }
            let (pilot_discovery, pilot_agent, bootstrap, envoy) = istio_paths();
            let kube = start_kube(json!({"istio-injection": "enabled"})).await;
            let (client, d) = (kube.client.clone(), kube.d.clone());
            let nss: Api<Namespace> = Api::all(client.clone());
            let sys = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}});
            nss.patch(
                "istio-system",
                &PatchParams::apply("test").force(),
                &Patch::Apply(&sys),
            )
            .await
            .unwrap();
            let mesh = "rootNamespace: istio-system\ntrustDomain: cluster.local\nenableAutoMtls: true\ningressControllerMode: \"OFF\"\naccessLogFile: /dev/stdout\ndefaultProviders: {}\ndefaultConfig:\n  discoveryAddress: 10.77.0.1:15010\n  controlPlaneAuthPolicy: NONE\n";
            let istiod_dir = d.join("istiod");
            std::fs::create_dir_all(&istiod_dir).unwrap();
            std::fs::write(istiod_dir.join("mesh.yaml"), mesh).unwrap();
            let mut istiod = Command::new(&pilot_discovery);
            istiod
                .current_dir(&istiod_dir)
                .args(["discovery", "--kubeconfig"])
                .arg(&kube.kubeconfig_path)
                .args(["--meshConfig", "mesh.yaml", "--networksConfig", "none"])
                .args([
                    "--httpAddr",
                    "10.77.0.1:18080",
                    "--grpcAddr",
                    "10.77.0.1:15010",
                ])
                .args([
                    "--secureGRPCAddr",
                    "10.77.0.1:15012",
                    "--monitoringAddr",
                    "10.77.0.1:15014",
                ])
                .args([
                    "--httpsAddr",
                    "10.77.0.1:15017",
                    "--domain",
                    "cluster.local",
                ])
                .envs([
                    ("POD_NAMESPACE", "istio-system"),
                    ("POD_NAME", "istiod-local"),
                    ("REVISION", "default"),
                    ("CLUSTER_ID", "Kubernetes"),
                    ("PILOT_ENABLE_METADATA_EXCHANGE", "false"),
                    ("PILOT_ENABLE_ALPN_FILTER", "false"),
                    ("PILOT_ENABLE_GATEWAY_API", "false"),
                    ("PILOT_ENABLE_GATEWAY_API_STATUS", "false"),
                    ("PILOT_ENABLE_GATEWAY_API_DEPLOYMENT_CONTROLLER", "false"),
                    ("PILOT_ENABLE_ALPHA_GATEWAY_API", "false"),
                    ("ENABLE_LEADER_ELECTION", "false"),
                ]);
            let _istiod = procs::spawn("istiod", istiod, &d.join("logs")).unwrap();
            eventually("istiod ready", Duration::from_secs(120), || async {
                http_get("http://10.77.0.1:18080/ready").await.map(|_| ())
            })
            .await;
            let services: Api<k8s_openapi::api::core::v1::Service> =
                Api::namespaced(client.clone(), "apps");
            let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 8080, "targetPort": 8080}]}});
            services
                .patch(
                    "web",
                    &PatchParams::apply("test").force(),
                    &Patch::Apply(&svc),
                )
                .await
                .unwrap();

            let images = BTreeMap::from([
                (
                    "test/http".to_string(),
                    image(
                        "/usr/bin/python3",
                        &["-m", "http.server"],
                        &[("PYTHONUNBUFFERED", "1")],
                    ),
                ),
                ("test/sh".to_string(), image("/bin/sh", &[], &[])),
            ]);
            let istio_init_first = std::env::var_os(ISTIO_INIT_FIRST_ENV).is_some_and(|v| v == "1");
            let agent = NodeAgent::start(NodeAgentConfig {
                client: client.clone(),
                node_name: "smesh-node".into(),
                workdir: d.join("work"),
                pilot_agent,
                envoy,
                bootstrap_template: bootstrap,
                istiod_host: "10.77.0.1".into(),
                images,
                kubeconfig_path: kube.kubeconfig_path.clone(),
            })
            .await
            .unwrap();
            let pods: Api<Pod> = Api::namespaced(client.clone(), "apps");
            let web = json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web", "labels": {"app": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    // Egress from an init container (Seldon #4450: a model download).
                    "initContainers": [{
                        "name": "fetch", "image": "test/sh",
                        "command": ["sh", "-c", "curl -sS -o /dev/null http://10.77.0.1:18080/ready"]
                    }],
                    "containers": [{
                        "name": "server", "image": "test/http",
                        "args": ["8080", "--directory", "/etc"],
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"path": "/hostname", "port": "http"}, "periodSeconds": 1}
                    }]
                }
            });
            pods.create(
                &PostParams::default(),
                &serde_json::from_value(web).unwrap(),
            )
            .await
            .unwrap();
            let started = Instant::now();
            if istio_init_first {
                // A real pod's order: the init container's egress is redirected to 15001,
                // where no proxy listens yet, so it fails (Seldon #4450).
                let failed = eventually("init container fails", Duration::from_secs(60), || {
                    let pods = pods.clone();
                    async move {
                        let pod = get_pod(&pods, "web").await?;
                        let init = pod.status?.init_container_statuses?.into_iter().next()?;
                        let state = init.last_state.or(init.state)?;
                        state.terminated
                    }
                })
                .await;
                assert_eq!(failed.exit_code, 7, "{failed:?}");
                assert!(
                    failed
                        .message
                        .as_deref()
                        .unwrap_or("")
                        .contains("Failed to connect to 10.77.0.1 port 18080"),
                    "{failed:?}"
                );
                eprintln!("#4450 reproduced: {:?}", failed.message);
                pods.delete("web", &DeleteParams::default()).await.unwrap();
                eventually("web removed", Duration::from_secs(30), || {
                    let pods = pods.clone();
                    async move { get_pod(&pods, "web").await.is_none().then_some(()) }
                })
                .await;
                return;
            }
            let pod = loop {
                if let Some(pod) = get_pod(&pods, "web").await.filter(ready) {
                    break pod;
                }
                if started.elapsed() > Duration::from_secs(90) {
                    dump(&d, &pods).await;
                    panic!("timed out waiting for pod web Ready with its sidecar");
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            };
            eprintln!(
                "pod Ready (sidecar included) {:?} after creation",
                started.elapsed()
            );
            let ip = pod.status.as_ref().unwrap().pod_ip.clone().unwrap();
            let proxy_log = agent.pod_log("apps", "web", "istio-proxy").unwrap();
            // The init container ran before interception: its egress worked.
            let init = &pod
                .status
                .as_ref()
                .unwrap()
                .init_container_statuses
                .as_ref()
                .unwrap()[0];
            let done = init.state.as_ref().unwrap().terminated.as_ref().unwrap();
            assert_eq!(done.exit_code, 0, "{init:?}");

            // Inbound: the node's request is answered through Envoy (its server header).
            let response = reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap()
                .get(format!("http://{ip}:8080/hostname"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 200);
            assert_eq!(
                response
                    .headers()
                    .get("server")
                    .map(|v| v.to_str().unwrap().to_string()),
                Some("istio-envoy".to_string()),
                "not through Envoy: {:?}",
                response.headers()
            );
            let body = response.text().await.unwrap();
            assert_eq!(body, std::fs::read_to_string("/etc/hostname").unwrap());

            // The rules istio-iptables installed, and Envoy running as 1337.
            let ns_name = pod_namespaces(&pods).await["web"].clone();
            let rules = Command::new("ip")
                .args(["netns", "exec", &ns_name, "iptables-save"])
                .output()
                .unwrap();
            let rules = String::from_utf8_lossy(&rules.stdout).into_owned();
            assert!(
                rules.contains("-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006"),
                "{rules}"
            );
            assert!(rules.contains("--uid-owner 1337"), "{rules}");
            let envoy_uids: Vec<String> = netns::namespace_pids(&ns_name)
                .unwrap()
                .into_iter()
                .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
                .filter(|st| st.starts_with("Name:\tenvoy"))
                .filter_map(|st| {
                    st.lines()
                        .find(|l| l.starts_with("Uid:"))
                        .map(str::to_string)
                })
                .collect();
            assert_eq!(envoy_uids.len(), 1, "{envoy_uids:?}");
            assert!(envoy_uids[0].starts_with("Uid:\t1337\t"), "{envoy_uids:?}");

            // Outbound from the app is captured too: a request from inside the pod to
            // istiod's HTTP port (no Service: TCP passthrough) shows in the sidecar's access
            // log as PassthroughCluster.
            let out = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &ns_name,
                    "curl",
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "http://10.77.0.1:18080/ready",
                ])
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
            let outbound_line = |log: &str| {
                log.lines()
                    .find(|l| l.contains("PassthroughCluster") && l.contains("10.77.0.1:18080"))
                    .map(str::to_string)
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            let log = loop {
                let log = std::fs::read_to_string(&proxy_log).unwrap_or_default();
                if outbound_line(&log).is_some() {
                    break log;
                }
                assert!(
                    Instant::now() < deadline,
                    "no outbound access log line for the app's request:\n{}",
                    procs::tail_lines(&proxy_log, 30)
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            // The workload got its certificate from istiod's CA (mTLS ready).
            assert!(
                log.contains("generated new workload certificate"),
                "no workload certificate in the sidecar log:\n{}",
                procs::tail_lines(&proxy_log, 30)
            );

            pods.delete("web", &DeleteParams::default()).await.unwrap();
            eventually("web removed", Duration::from_secs(30), || {
                let pods = pods.clone();
                async move { get_pod(&pods, "web").await.is_none().then_some(()) }
            })
            .await;
            assert!(!netns_exists(&ns_name), "{ns_name} left behind");
            assert_not_restarted(&agent, "server").await;
            drop(agent);
            drop(kube);
        }

        /// A deleted pod is not started again by watch events queued before its end: after
        /// a while, its container has still logged its start banner exactly once.
        async fn assert_not_restarted(agent: &NodeAgent, container: &str) {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let log = agent.pod_log("apps", "web", container).unwrap();
            let text = std::fs::read_to_string(&log).unwrap();
            assert_eq!(
                text.matches("Serving HTTP on").count(),
                1,
                "the deleted pod was started again:\n{text}"
            );
        }
    }
}
