//! The cluster of `make test-mesh`, brought up as child processes inside the node network
//! namespace of the calling thread (see [`crate::netns`]):
//!
//! ```text
//!  node netns (10.77.0.1 on bridge smbr0, 127.0.0.1)
//!  ├─ etcd                     127.0.0.1:2379
//!  ├─ kube-apiserver           0.0.0.0:6443   (serving cert: 10.77.0.1, 127.0.0.1, kubernetes.default.svc…)
//!  ├─ kube-controller-manager  Deployments → ReplicaSets → Pods, EndpointSlices, GC, SA tokens
//!  ├─ istiod                   xDS 0.0.0.0:15010 (plain), 0.0.0.0:15012 (TLS, CA), /ready 127.0.0.1:18080
//!  ├─ OCI registry (in-proc)   10.77.0.1:5000  seldon-mesh/graph-filter:<tag> = the filter module
//!  ├─ seldon-mesh webhook      10.77.0.1:9443  (Service without selector + Endpoints → here)
//!  ├─ seldon-mesh operator     metrics 127.0.0.1:9080
//!  ├─ ingress gateway          pilot-agent `proxy router` + Envoy: HTTP 0.0.0.0:8080, admin 127.0.0.1:15000
//!  └─ node agent (node_agent.rs): pods in their own netns 10.77.0.x with a pilot-agent sidecar
//! ```
//!
//! Every process logs to `target/mesh-runs/<test>/logs/<name>.log`; the directory is removed
//! when a test passes (set `SELDON_MESH_KEEP=1` to keep it) and kept, with its path printed,
//! when it fails. Every process is stopped on drop, also during a panic's unwind.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, ResourceExt};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use serde_json::{Value, json};

use crate::HarnessError;
use crate::node_agent::{ImageCommand, NodeAgent, NodeAgentConfig};
use crate::procs::{self, Child};
use crate::registry::Registry;

/// The node's address (the bridge in the node namespace), as pods see it.
pub const NODE_IP: Ipv4Addr = crate::netns::NODE_IP;
pub const ETCD_PORT: u16 = 2379;
pub const ETCD_PEER_PORT: u16 = 2380;
pub const API_PORT: u16 = 6443;
pub const ISTIOD_XDS_PORT: u16 = 15010;
pub const ISTIOD_TLS_PORT: u16 = 15012;
/// istiod's `/ready` (moved off its default :8080, which the gateway's listener takes).
pub const ISTIOD_HTTP_PORT: u16 = 18080;
pub const REGISTRY_PORT: u16 = 5000;
pub const WEBHOOK_PORT: u16 = 9443;
pub const OPERATOR_METRICS_PORT: u16 = 9080;
/// The gateway's HTTP listener: Service port 80 → targetPort 8080, as Istio's chart does.
pub const GATEWAY_HTTP_PORT: u16 = 8080;
pub const GATEWAY_ADMIN_PORT: u16 = 15000;
pub const GATEWAY_STATUS_PORT: u16 = 15020;
pub const GATEWAY_READY_PORT: u16 = 15021;
/// The Service CIDR; `10.96.0.1` is the `kubernetes` Service.
pub const SERVICE_CIDR: &str = "10.96.0.0/16";
pub const NODE_NAME: &str = "mesh-node";
/// The filter image the operator config points WasmPlugins at.
pub const FILTER_REPOSITORY: &str = "seldon-mesh/graph-filter";
pub const FILTER_TAG: &str = "0.1.0";
/// Audience of the tokens the apiserver issues by default (the first `--api-audiences`).
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";
const SYSTEM_NAMESPACE: &str = "seldon-system";
/// The operator's `tracing.endpoint` with tracing on: the addon's collector Service, OTLP/HTTP,
/// exactly as manifests/README.md tells users to set it.
pub const TRACING_ENDPOINT: &str = "http://jaeger-collector.istio-system:4318";

/// The repository root (this crate is `tests/mesh`).
/// Without `..`: paths under it become the samples' `file://` model URIs, and the initializer
/// refuses a URI that climbs (issue 11).
pub fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// Cargo's target directory (`CARGO_TARGET_DIR` or `<repo>/target`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// Every program and file the cluster runs. Go binaries come from the pinned, cached builds
/// of `scripts/kube-test-env.sh` and `scripts/istio-test-env.sh`; Envoy from
/// `scripts/setup.sh`; ours from `target/` (built by `make test-mesh`).
#[derive(Debug, Clone)]
pub struct Binaries {
    pub etcd: PathBuf,
    pub kube_apiserver: PathBuf,
    pub kube_controller_manager: PathBuf,
    pub pilot_discovery: PathBuf,
    pub pilot_agent: PathBuf,
    pub istioctl: PathBuf,
    pub envoy_bootstrap: PathBuf,
    pub envoy: PathBuf,
    pub kubectl: PathBuf,
    pub seldon_mesh: PathBuf,
    pub seldon_server: PathBuf,
    pub initializer: PathBuf,
    pub testmodel: PathBuf,
    pub filter_wasm: PathBuf,
    /// `libonnxruntime.so` for `seldon-server` (`model-servers/onnx/scripts/setup.sh`).
    pub ort_dylib: PathBuf,
}

/// Runs a script of this repository and returns its stdout lines as paths.
pub fn script_paths(script: &str, args: &[&str]) -> Result<Vec<PathBuf>, HarnessError> {
    let path = repo_root().join(script);
    let out = Command::new("bash")
        .arg(&path)
        .args(args)
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .output()
        .map_err(|source| HarnessError::Io {
            context: format!("running {script}"),
            source,
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
        return Err(HarnessError::Script {
            script: script.to_string(),
            status: out.status.to_string(),
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(PathBuf::from)
        .collect())
}

fn existing(path: PathBuf, hint: &str) -> Result<PathBuf, HarnessError> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(HarnessError::MissingProgram(format!(
            "{} ({hint})",
            path.display()
        )))
    }
}

impl Binaries {
    /// Finds (and on a cold machine, builds through the scripts) everything.
    pub fn locate() -> Result<Binaries, HarnessError> {
        let kube = script_paths("scripts/kube-test-env.sh", &[])?;
        let istio = script_paths("scripts/istio-test-env.sh", &[])?;
        let envoy = script_paths("scripts/setup.sh", &[])?;
        let ort = script_paths("model-servers/onnx/scripts/setup.sh", &[])?;
        let pick = |v: &[PathBuf], i: usize, script: &str| {
            v.get(i).cloned().ok_or_else(|| HarnessError::Script {
                script: script.to_string(),
                status: "ok".into(),
                stderr: format!("printed {} paths, expected more than {i}", v.len()),
            })
        };
        let target = target_dir();
        let built = "run `make test-mesh`, which builds it";
        Ok(Binaries {
            etcd: pick(&kube, 0, "scripts/kube-test-env.sh")?,
            kube_apiserver: pick(&kube, 1, "scripts/kube-test-env.sh")?,
            kube_controller_manager: pick(&kube, 2, "scripts/kube-test-env.sh")?,
            pilot_discovery: pick(&istio, 0, "scripts/istio-test-env.sh")?,
            pilot_agent: pick(&istio, 1, "scripts/istio-test-env.sh")?,
            istioctl: pick(&istio, 2, "scripts/istio-test-env.sh")?,
            envoy_bootstrap: pick(&istio, 3, "scripts/istio-test-env.sh")?,
            envoy: pick(&envoy, 0, "scripts/setup.sh")?,
            ort_dylib: pick(&ort, 0, "model-servers/onnx/scripts/setup.sh")?,
            kubectl: procs::require_program("kubectl")?,
            seldon_mesh: existing(target.join("debug/seldon-mesh"), built)?,
            seldon_server: existing(target.join("debug/seldon-server"), built)?,
            initializer: existing(target.join("debug/seldon-mesh-initializer"), built)?,
            testmodel: existing(target.join("debug/testmodel"), built)?,
            filter_wasm: existing(
                target.join("wasm32-wasip1/release/seldon_filter.wasm"),
                "run `make wasm`",
            )?,
        })
    }
}

/// What to bring up.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Names the run directory `target/mesh-runs/<name>`.
    pub name: String,
    /// Start the node agent (pods really run). Without it only the control plane is up.
    pub node_agent: bool,
    /// Extra image → command mappings for test images (ours are always mapped).
    pub images: BTreeMap<String, ImageCommand>,
    /// Tracing as a user sets it up (README "Tracing"): a real Jaeger behind the addon's
    /// `jaeger-collector` Service, the shipped mesh config's provider and `istio/telemetry.yaml`,
    /// and the operator's `tracing.endpoint` = [`TRACING_ENDPOINT`].
    pub tracing: bool,
    /// The operator config's `grpcEntry: true` (gRPC at the entry, port 5001).
    pub grpc_entry: bool,
}

impl ClusterOptions {
    pub fn new(name: &str) -> ClusterOptions {
        ClusterOptions {
            name: name.to_string(),
            node_agent: true,
            images: BTreeMap::new(),
            tracing: false,
            grpc_entry: false,
        }
    }
}

/// The generated certificates and keys of the cluster.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca_pem: String,
    pub serving_cert: String,
    pub serving_key: String,
    pub admin_cert: String,
    pub admin_key: String,
    pub controller_manager_cert: String,
    pub controller_manager_key: String,
    pub sa_key: String,
    pub sa_pub: String,
}

/// The apiserver's serving certificate names: every name and address a client in the node
/// namespace (127.0.0.1, 10.77.0.1) or in a pod (the `kubernetes` Service) uses.
pub fn apiserver_sans() -> Vec<String> {
    [
        "localhost",
        "127.0.0.1",
        "10.77.0.1",
        "10.96.0.1",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    .map(String::from)
    .to_vec()
}

/// A CA, the apiserver's serving certificate (for every name and address a client in the
/// node or in a pod uses), client certificates for the admin (`system:masters`) and the
/// controller-manager (`system:kube-controller-manager`, bound by RBAC bootstrap), and the
/// service-account signing key pair.
pub fn generate_pki() -> Result<Pki, HarnessError> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "seldon-mesh-test-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let serving_key = KeyPair::generate()?;
    let mut serving = CertificateParams::new(apiserver_sans())?;
    serving
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    let serving = serving.signed_by(&serving_key, &issuer)?;

    let client = |cn: &str, org: Option<&str>| -> Result<(String, String), HarnessError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, cn);
        if let Some(org) = org {
            params
                .distinguished_name
                .push(DnType::OrganizationName, org);
        }
        let cert = params.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    };
    let (admin_cert, admin_key) = client("mesh-admin", Some("system:masters"))?;
    let (controller_manager_cert, controller_manager_key) =
        client("system:kube-controller-manager", None)?;
    let sa = KeyPair::generate()?;
    Ok(Pki {
        ca_pem: ca_cert.pem(),
        serving_cert: serving.pem(),
        serving_key: serving_key.serialize_pem(),
        admin_cert,
        admin_key,
        controller_manager_cert,
        controller_manager_key,
        sa_key: sa.serialize_pem(),
        sa_pub: sa.public_key_pem(),
    })
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A kubeconfig for `server` trusting `ca_pem`, authenticating with `user`
/// (`{"token": …}` or `{"client-certificate-data": …, "client-key-data": …}`).
pub fn kubeconfig_value(server: &str, ca_pem: &str, user: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "mesh",
        "clusters": [{"name": "mesh", "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)}}],
        "users": [{"name": "mesh", "user": user}],
        "contexts": [{"name": "mesh", "context": {"cluster": "mesh", "user": "mesh"}}]
    })
}

/// Writes a kubeconfig file and returns a client built from it.
pub async fn write_kubeconfig(path: &Path, value: &Value) -> Result<Client, HarnessError> {
    let text = serde_yaml::to_string(value).map_err(|e| HarnessError::Kubeconfig(e.to_string()))?;
    write(path, &text)?;
    let kc: Kubeconfig = serde_json::from_value(value.clone())
        .map_err(|e| HarnessError::Kubeconfig(e.to_string()))?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| HarnessError::Kubeconfig(e.to_string()))?;
    Client::try_from(config).map_err(HarnessError::from)
}

fn write(path: &Path, contents: &str) -> Result<(), HarnessError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| HarnessError::Io {
            context: format!("creating {}", dir.display()),
            source,
        })?;
    }
    std::fs::write(path, contents).map_err(|source| HarnessError::Io {
        context: format!("writing {}", path.display()),
        source,
    })
}

fn read(path: &Path) -> Result<String, HarnessError> {
    std::fs::read_to_string(path).map_err(|source| HarnessError::Io {
        context: format!("reading {}", path.display()),
        source,
    })
}

/// Polls `f` every 200 ms until it returns `Ok(Some(_))`; `Ok(None)` and `Err` retry (the
/// last error is quoted on timeout). `guard` is checked each round, so a crashed process
/// fails the wait at once with its log.
pub async fn wait_for<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut guard: Option<&mut Child>,
    mut f: F,
) -> Result<T, HarnessError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, HarnessError>>,
{
    let start = Instant::now();
    let mut last = String::new();
    loop {
        match f().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = e.to_string(),
        }
        if let Some(child) = guard.as_deref_mut() {
            child.ensure_running()?;
        }
        if start.elapsed() > timeout {
            return Err(HarnessError::Timeout {
                what: what.to_string(),
                after: timeout,
                detail: last,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `GET url` → `Some(body)` when the status is 200.
async fn http_ok(http: &reqwest::Client, url: &str) -> Result<Option<String>, HarnessError> {
    let r = http.get(url).send().await?;
    if r.status().is_success() {
        Ok(Some(r.text().await?))
    } else {
        Ok(None)
    }
}

/// Server-side applies every document of `text` (field manager `mesh-test`, strict fields).
pub async fn apply_yaml(client: &Client, text: &str, source: &str) -> Result<(), HarnessError> {
    let discovery = kube::discovery::Discovery::new(client.clone())
        .run()
        .await?;
    for doc in serde_yaml::Deserializer::from_str(text) {
        let v: Value =
            serde::Deserialize::deserialize(doc).map_err(|e| HarnessError::Manifest {
                file: source.to_string(),
                message: e.to_string(),
            })?;
        if v.is_null() {
            continue;
        }
        apply_value(client, &discovery, &v, source).await?;
    }
    Ok(())
}

async fn apply_value(
    client: &Client,
    discovery: &kube::discovery::Discovery,
    v: &Value,
    source: &str,
) -> Result<(), HarnessError> {
    let manifest_err = |message: String| HarnessError::Manifest {
        file: source.to_string(),
        message,
    };
    let obj: DynamicObject =
        serde_json::from_value(v.clone()).map_err(|e| manifest_err(e.to_string()))?;
    let tm = obj
        .types
        .clone()
        .ok_or_else(|| manifest_err("a document without apiVersion/kind".into()))?;
    let (group, version) = tm
        .api_version
        .rsplit_once('/')
        .unwrap_or(("", &tm.api_version));
    let gvk = kube::api::GroupVersionKind::gvk(group, version, &tm.kind);
    let (ar, caps) = discovery
        .resolve_gvk(&gvk)
        .ok_or_else(|| manifest_err(format!("unknown kind {}/{}", tm.api_version, tm.kind)))?;
    let api: Api<DynamicObject> = match (caps.scope, obj.metadata.namespace.as_deref()) {
        (kube::discovery::Scope::Namespaced, Some(ns)) => {
            Api::namespaced_with(client.clone(), ns, &ar)
        }
        (kube::discovery::Scope::Namespaced, None) => {
            Api::namespaced_with(client.clone(), "default", &ar)
        }
        _ => Api::all_with(client.clone(), &ar),
    };
    api.patch(
        &obj.name_any(),
        &PatchParams::apply("mesh-test").force().validation_strict(),
        &Patch::Apply(&obj),
    )
    .await
    .map_err(|e| manifest_err(format!("{} {}: {e}", tm.kind, obj.name_any())))?;
    Ok(())
}

/// Every YAML document of `text` as JSON values (nulls skipped).
pub fn yaml_documents(text: &str, source: &str) -> Result<Vec<Value>, HarnessError> {
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let v: Value =
            serde::Deserialize::deserialize(doc).map_err(|e| HarnessError::Manifest {
                file: source.to_string(),
                message: e.to_string(),
            })?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

async fn install_crds(admin: &Client, text: &str, source: &str) -> Result<usize, HarnessError> {
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    let mut names = Vec::new();
    for v in yaml_documents(text, source)? {
        if v["kind"] != "CustomResourceDefinition" {
            continue;
        }
        let crd: CustomResourceDefinition =
            serde_json::from_value(v).map_err(|e| HarnessError::Manifest {
                file: source.to_string(),
                message: e.to_string(),
            })?;
        crds.patch(
            &crd.name_any(),
            &PatchParams::apply("mesh-test").force(),
            &Patch::Apply(&crd),
        )
        .await?;
        names.push(crd.name_any());
    }
    for n in &names {
        wait_for(
            &format!("CRD {n} established"),
            Duration::from_secs(60),
            None,
            || {
                let crds = crds.clone();
                async move {
                    let c = crds.get(n).await?;
                    Ok(c.status
                        .and_then(|s| s.conditions)
                        .unwrap_or_default()
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                        .then_some(()))
                }
            },
        )
        .await?;
    }
    Ok(names.len())
}

async fn service_account_token(
    admin: &Client,
    namespace: &str,
    name: &str,
    audience: &str,
) -> Result<String, HarnessError> {
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![audience.to_string()],
            expiration_seconds: Some(24 * 3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let token = sas
        .create_token_request(name, &PostParams::default(), &request)
        .await?;
    token.status.map(|s| s.token).ok_or_else(|| {
        HarnessError::Check(format!("TokenRequest for {namespace}/{name}: no status"))
    })
}

/// `spec.meshConfig` of the shipped `istio/mesh-config.yaml` (the IstioOperator a user
/// installs with `istioctl install -f`).
fn shipped_mesh_config() -> Result<Value, HarnessError> {
    let file = "istio/mesh-config.yaml";
    let shipped: Value = serde_yaml::from_str(&read(&repo_root().join(file))?).map_err(|e| {
        HarnessError::Manifest {
            file: file.into(),
            message: e.to_string(),
        }
    })?;
    let mesh = shipped["spec"]["meshConfig"].clone();
    if mesh.is_object() {
        Ok(mesh)
    } else {
        Err(HarnessError::Manifest {
            file: file.into(),
            message: "no spec.meshConfig".into(),
        })
    }
}

/// `proxyStatsMatcher` and `extraStatTags` of the shipped `istio/mesh-config.yaml`
/// (`spec.meshConfig.defaultConfig`), which make Envoy keep the filter's metrics and turn its
/// encoded labels into Prometheus labels.
pub fn shipped_proxy_defaults() -> Result<Vec<(&'static str, Value)>, HarnessError> {
    let shipped = shipped_mesh_config()?;
    let defaults = &shipped["defaultConfig"];
    Ok(["proxyStatsMatcher", "extraStatTags"]
        .into_iter()
        .filter(|k| !defaults[*k].is_null())
        .map(|k| (k, defaults[k].clone()))
        .collect())
}

/// `enableTracing` and `extensionProviders` of the shipped `istio/mesh-config.yaml`: the
/// OpenTelemetry provider `jaeger` that the shipped `istio/telemetry.yaml` turns on.
pub fn shipped_tracing() -> Result<Vec<(&'static str, Value)>, HarnessError> {
    let shipped = shipped_mesh_config()?;
    let providers = &shipped["extensionProviders"];
    if !providers.is_array() {
        return Err(HarnessError::Manifest {
            file: "istio/mesh-config.yaml".into(),
            message: "no spec.meshConfig.extensionProviders".into(),
        });
    }
    Ok(vec![
        ("enableTracing", shipped["enableTracing"].clone()),
        ("extensionProviders", providers.clone()),
    ])
}

/// The mesh config istiod reads (`--meshConfig`). Istio's defaults, except what upstream
/// Envoy cannot load (see README "What differs from a production mesh"): no `prometheus`
/// metrics provider (its `istio.stats` filter is Istio-proxy only). `proxyStatsMatcher` and
/// `extraStatTags` are taken from the shipped `istio/mesh-config.yaml`, and with `tracing`
/// its tracing provider too ([`shipped_tracing`]).
pub fn mesh_config(envoy: &Path, tracing: bool) -> Result<String, HarnessError> {
    let mut default_config = json!({
        "discoveryAddress": format!("{NODE_IP}:{ISTIOD_TLS_PORT}"),
        "binaryPath": envoy.display().to_string(),
        "drainDuration": "1s",
        "terminationDrainDuration": "1s",
    });
    for (key, value) in shipped_proxy_defaults()? {
        default_config[key] = value;
    }
    let mut mesh = json!({
        "rootNamespace": "istio-system",
        "trustDomain": "cluster.local",
        "enableAutoMtls": true,
        "ingressControllerMode": "OFF",
        "accessLogFile": "/dev/stdout",
        "defaultProviders": {},
        "defaultConfig": default_config,
    });
    if tracing {
        for (key, value) in shipped_tracing()? {
            mesh[key] = value;
        }
    }
    // JSON (a subset of YAML): a YAML emitter leaves `OFF` unquoted, which Go reads as a bool.
    serde_json::to_string_pretty(&mesh).map_err(|e| HarnessError::Check(e.to_string()))
}

/// istiod's environment: the Istio-proxy-only filters off (upstream Envoy rejects every LDS
/// and CDS push otherwise), Gateway API off (its CRDs are not installed), one replica.
pub fn istiod_env() -> Vec<(&'static str, String)> {
    vec![
        ("POD_NAMESPACE", "istio-system".into()),
        ("POD_NAME", "istiod-mesh-test".into()),
        ("REVISION", "default".into()),
        ("CLUSTER_ID", "Kubernetes".into()),
        ("ISTIOD_CUSTOM_HOST", NODE_IP.to_string()),
        ("PILOT_ENABLE_METADATA_EXCHANGE", "false".into()),
        ("PILOT_ENABLE_ALPN_FILTER", "false".into()),
        ("PILOT_ENABLE_GATEWAY_API", "false".into()),
        ("PILOT_ENABLE_GATEWAY_API_STATUS", "false".into()),
        (
            "PILOT_ENABLE_GATEWAY_API_DEPLOYMENT_CONTROLLER",
            "false".into(),
        ),
        ("PILOT_ENABLE_ALPHA_GATEWAY_API", "false".into()),
        ("ENABLE_LEADER_ELECTION", "false".into()),
    ]
}

/// The operator's config file: the shipped ConfigMap's `config.yaml` with the filter URL set
/// to the local registry, the catalogue path to the repository's file and, when given,
/// `tracing.endpoint` (what `helm install --set tracing.endpoint=…` sets).
pub fn operator_config(
    filter_url: &str,
    catalogue: &Path,
    tracing_endpoint: Option<&str>,
    grpc_entry: bool,
) -> Result<String, HarnessError> {
    let file = "manifests/operator/config.yaml";
    let docs = yaml_documents(&read(&repo_root().join(file))?, file)?;
    let cm = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap")
        .ok_or_else(|| HarnessError::Manifest {
            file: file.into(),
            message: "no ConfigMap".into(),
        })?;
    let text = cm["data"]["config.yaml"]
        .as_str()
        .ok_or_else(|| HarnessError::Manifest {
            file: file.into(),
            message: "no data.config.yaml".into(),
        })?;
    let mut config: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| HarnessError::Manifest {
            file: file.into(),
            message: e.to_string(),
        })?;
    let map = config
        .as_mapping_mut()
        .ok_or_else(|| HarnessError::Manifest {
            file: file.into(),
            message: "config.yaml is not a mapping".into(),
        })?;
    map.insert("filterUrl".into(), filter_url.into());
    map.insert("catalogue".into(), catalogue.display().to_string().into());
    if let Some(endpoint) = tracing_endpoint {
        let mut tracing = serde_yaml::Mapping::new();
        tracing.insert("endpoint".into(), endpoint.into());
        map.insert("tracing".into(), tracing.into());
    }
    if grpc_entry {
        map.insert("grpcEntry".into(), true.into());
    }
    serde_yaml::to_string(&config).map_err(|e| HarnessError::Check(e.to_string()))
}

/// Envoy admin counters whose name contains `filter` (`GET /stats?filter=`), by name.
pub async fn envoy_stats(
    http: &reqwest::Client,
    admin: SocketAddr,
    filter: &str,
) -> Result<BTreeMap<String, u64>, HarnessError> {
    let text = http
        .get(format!("http://{admin}/stats"))
        .query(&[("filter", filter)])
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(parse_stats(&text))
}

/// `name: value` lines of Envoy's plain-text stats; histograms and non-numbers are skipped.
pub fn parse_stats(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(": ")?;
            Some((k.trim().to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// The cluster; dropping it stops the node agent (and so every pod), then every process.
pub struct Cluster {
    run_dir: PathBuf,
    bins: Binaries,
    pki: Pki,
    admin: Client,
    admin_kubeconfig: PathBuf,
    registry: Registry,
    http: reqwest::Client,
    timings: Vec<(String, Duration)>,
    started: Instant,
    keep: bool,
    jaeger_query: Option<String>,
    // Dropped first (fields drop in declaration order after Drop::drop runs).
    node_agent: Option<NodeAgent>,
    procs: procs::Group,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("run_dir", &self.run_dir)
            .field("registry", &self.registry.addr())
            .field("procs", &self.procs)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Brings everything up; see the module docs. Call it on the thread that entered the
    /// node namespace, inside a runtime built after that.
    pub async fn start(opts: ClusterOptions) -> Result<Cluster, HarnessError> {
        let started = Instant::now();
        let mut timings: Vec<(String, Duration)> = Vec::new();
        let mut mark = |what: &str| {
            let t = started.elapsed();
            tracing::info!(phase = what, elapsed_ms = t.as_millis() as u64, "mesh up");
            eprintln!("mesh[{:>7.2}s] {what}", t.as_secs_f64());
            timings.push((what.to_string(), t));
        };

        let run_dir = target_dir().join("mesh-runs").join(&opts.name);
        if run_dir.exists() {
            std::fs::remove_dir_all(&run_dir).map_err(|source| HarnessError::Io {
                context: format!("clearing {}", run_dir.display()),
                source,
            })?;
        }
        let logs = run_dir.join("logs");
        eprintln!("mesh: run directory {}", run_dir.display());
        let bins = Binaries::locate()?;
        mark("binaries located");

        // pilot-agent's wasm cache is this absolute path (constants.IstioDataDir).
        std::fs::create_dir_all("/var/lib/istio/data").map_err(|source| HarnessError::Io {
            context: "creating /var/lib/istio/data (pilot-agent's wasm cache)".into(),
            source,
        })?;

        let pki = generate_pki()?;
        let pki_dir = run_dir.join("pki");
        for (f, c) in [
            ("ca.crt", &pki.ca_pem),
            ("apiserver.crt", &pki.serving_cert),
            ("apiserver.key", &pki.serving_key),
            ("sa.key", &pki.sa_key),
            ("sa.pub", &pki.sa_pub),
        ] {
            write(&pki_dir.join(f), c)?;
        }
        let p = |f: &str| pki_dir.join(f).display().to_string();

        let mut procs = procs::Group::default();

        // etcd
        let etcd_url = format!("http://127.0.0.1:{ETCD_PORT}");
        let peer_url = format!("http://127.0.0.1:{ETCD_PEER_PORT}");
        let mut cmd = Command::new(&bins.etcd);
        cmd.arg(format!("--data-dir={}", run_dir.join("etcd").display()))
            .arg(format!("--listen-client-urls={etcd_url}"))
            .arg(format!("--advertise-client-urls={etcd_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=default={peer_url}"))
            .arg("--unsafe-no-fsync")
            .arg("--log-level=warn");
        procs.push(procs::spawn("etcd", cmd, &logs)?);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .no_proxy()
            .build()?;
        {
            let http = http.clone();
            let url = format!("{etcd_url}/health");
            wait_for(
                "etcd /health",
                Duration::from_secs(30),
                procs.last_mut(),
                || {
                    let (http, url) = (http.clone(), url.clone());
                    async move { Ok(http_ok(&http, &url).await?.filter(|b| b.contains("true"))) }
                },
            )
            .await?;
        }
        mark("etcd healthy");

        // kube-apiserver
        let mut cmd = Command::new(&bins.kube_apiserver);
        cmd.arg(format!("--etcd-servers={etcd_url}"))
            .arg("--bind-address=0.0.0.0")
            .arg(format!("--advertise-address={NODE_IP}"))
            .arg(format!("--secure-port={API_PORT}"))
            .arg(format!("--tls-cert-file={}", p("apiserver.crt")))
            .arg(format!("--tls-private-key-file={}", p("apiserver.key")))
            .arg(format!("--client-ca-file={}", p("ca.crt")))
            .arg(format!("--service-account-key-file={}", p("sa.pub")))
            .arg(format!(
                "--service-account-signing-key-file={}",
                p("sa.key")
            ))
            .arg(format!("--service-account-issuer={API_AUDIENCE}"))
            .arg(format!("--api-audiences={API_AUDIENCE},istio-ca"))
            .arg("--authorization-mode=Node,RBAC")
            .arg(format!("--service-cluster-ip-range={SERVICE_CIDR}"))
            .arg("--allow-privileged=true")
            // Webhooks are called at their Service's endpoints, not the ClusterIP: there is
            // no kube-proxy in the node namespace.
            .arg("--enable-aggregator-routing=true")
            .arg(format!(
                "--cert-dir={}",
                run_dir.join("apiserver-certs").display()
            ))
            .arg("--v=1");
        procs.push(procs::spawn("kube-apiserver", cmd, &logs)?);
        let server = format!("https://{NODE_IP}:{API_PORT}");
        let admin_kubeconfig = run_dir.join("kubeconfig");
        let admin = write_kubeconfig(
            &admin_kubeconfig,
            &kubeconfig_value(
                &server,
                &pki.ca_pem,
                json!({"client-certificate-data": b64(&pki.admin_cert), "client-key-data": b64(&pki.admin_key)}),
            ),
        )
        .await?;
        wait_for(
            "kube-apiserver /readyz",
            Duration::from_secs(120),
            procs.last_mut(),
            || {
                let admin = admin.clone();
                async move {
                    let req = http::Request::get("/readyz")
                        .body(Vec::new())
                        .map_err(|e| HarnessError::Check(e.to_string()))?;
                    Ok((admin.request_text(req).await? == "ok").then_some(()))
                }
            },
        )
        .await?;
        // RBAC bootstrap (post-start hook) made the controller-manager's role binding.
        wait_for(
            "RBAC bootstrap roles",
            Duration::from_secs(60),
            None,
            || {
                let api: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> =
                    Api::all(admin.clone());
                async move {
                    Ok(api
                        .get_opt("system:kube-controller-manager")
                        .await?
                        .map(|_| ()))
                }
            },
        )
        .await?;
        mark("kube-apiserver ready");

        // kube-controller-manager
        let kcm_kubeconfig = run_dir.join("kube-controller-manager.kubeconfig");
        write_kubeconfig(
            &kcm_kubeconfig,
            &kubeconfig_value(
                &server,
                &pki.ca_pem,
                json!({"client-certificate-data": b64(&pki.controller_manager_cert),
                       "client-key-data": b64(&pki.controller_manager_key)}),
            ),
        )
        .await?;
        let kc = kcm_kubeconfig.display().to_string();
        let mut cmd = Command::new(&bins.kube_controller_manager);
        cmd.arg(format!("--kubeconfig={kc}"))
            .arg(format!("--authentication-kubeconfig={kc}"))
            .arg(format!("--authorization-kubeconfig={kc}"))
            .arg("--bind-address=127.0.0.1")
            .arg("--leader-elect=false")
            // The node agent posts Node status and renews its Lease, but a test node has no
            // reason to be tainted or evicted by a slow heartbeat on a loaded machine.
            .arg("--controllers=*,-nodelifecycle")
            .arg("--use-service-account-credentials=true")
            .arg(format!(
                "--service-account-private-key-file={}",
                p("sa.key")
            ))
            .arg(format!("--root-ca-file={}", p("ca.crt")))
            .arg(format!("--service-cluster-ip-range={SERVICE_CIDR}"))
            .arg(format!(
                "--cert-dir={}",
                run_dir.join("kcm-certs").display()
            ))
            .arg("--v=1");
        procs.push(procs::spawn("kube-controller-manager", cmd, &logs)?);
        wait_for(
            "controller-manager: ServiceAccount default/default",
            Duration::from_secs(90),
            procs.last_mut(),
            || {
                let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), "default");
                async move { Ok(sas.get_opt("default").await?.map(|_| ())) }
            },
        )
        .await?;
        mark("kube-controller-manager running");

        // CRDs: ours, then Istio's (a copy of the generated CRDs of this Istio version).
        let ours = install_crds(
            &admin,
            &read(&repo_root().join("manifests/crd/seldondeployments.yaml"))?,
            "manifests/crd/seldondeployments.yaml",
        )
        .await?;
        let istio_crds = "control-plane/render/tests/schemas/istio-crds.gen.yaml";
        let theirs =
            install_crds(&admin, &read(&repo_root().join(istio_crds))?, istio_crds).await?;
        tracing::info!(ours, istio = theirs, "CRDs established");
        mark("CRDs established");

        // Namespaces: ours (shipped), istio-system.
        apply_yaml(
            &admin,
            &read(&repo_root().join("manifests/operator/namespace.yaml"))?,
            "manifests/operator/namespace.yaml",
        )
        .await?;
        apply_yaml(
            &admin,
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: istio-system\n",
            "istio-system namespace",
        )
        .await?;

        // Tracing, before istiod so its first push already has the collector's cluster: a
        // real Jaeger on the node behind the addon's Service, and the shipped Telemetry.
        let jaeger_query = if opts.tracing {
            let dir = run_dir.join("jaeger");
            let config = dir.join("config.yaml");
            write(&config, &crate::jaeger::config(NODE_IP))?;
            let mut cmd = Command::new(crate::jaeger::binary()?);
            cmd.arg("--config")
                .arg(format!("file:{}", config.display()));
            procs.push(procs::spawn("jaeger", cmd, &logs)?);
            let query = format!(
                "http://127.0.0.1:{}{}",
                crate::jaeger::QUERY_PORT,
                crate::jaeger::QUERY_BASE_PATH
            );
            let services = format!("{query}/api/services");
            wait_for(
                "jaeger: query API and OTLP ports",
                Duration::from_secs(60),
                procs.last_mut(),
                || {
                    let (http, url) = (http.clone(), services.clone());
                    async move {
                        let query = http_ok(&http, &url).await?.is_some();
                        let mut otlp = true;
                        for port in [crate::jaeger::OTLP_GRPC_PORT, crate::jaeger::OTLP_HTTP_PORT] {
                            otlp &= tokio::net::TcpStream::connect((NODE_IP, port))
                                .await
                                .is_ok();
                        }
                        Ok((query && otlp).then_some(()))
                    }
                },
            )
            .await?;
            for obj in crate::jaeger::collector_objects(NODE_IP) {
                apply_yaml(
                    &admin,
                    &serde_yaml::to_string(&obj).map_err(|e| HarnessError::Check(e.to_string()))?,
                    "jaeger-collector Service and EndpointSlice",
                )
                .await?;
            }
            let telemetry = "istio/telemetry.yaml";
            apply_yaml(&admin, &read(&repo_root().join(telemetry))?, telemetry).await?;
            mark("jaeger ready, collector Service and Telemetry applied");
            Some(query)
        } else {
            None
        };

        // istiod
        let istiod_dir = run_dir.join("istiod");
        let mesh_path = istiod_dir.join("mesh.yaml");
        write(&mesh_path, &mesh_config(&bins.envoy, opts.tracing)?)?;
        let mut cmd = Command::new(&bins.pilot_discovery);
        cmd.current_dir(&istiod_dir)
            .envs(istiod_env())
            .arg("discovery")
            .arg(format!("--kubeconfig={}", admin_kubeconfig.display()))
            .arg(format!("--meshConfig={}", mesh_path.display()))
            .arg(format!(
                "--networksConfig={}",
                istiod_dir.join("none").display()
            ))
            .arg(format!("--httpAddr=127.0.0.1:{ISTIOD_HTTP_PORT}"))
            .arg(format!("--grpcAddr=0.0.0.0:{ISTIOD_XDS_PORT}"))
            .arg(format!("--secureGRPCAddr=0.0.0.0:{ISTIOD_TLS_PORT}"))
            .arg("--monitoringAddr=127.0.0.1:15014")
            .arg("--httpsAddr=127.0.0.1:15017")
            .arg("--domain=cluster.local")
            .arg("--log_output_level=default:info");
        procs.push(procs::spawn("istiod", cmd, &logs)?);
        {
            let url = format!("http://127.0.0.1:{ISTIOD_HTTP_PORT}/ready");
            wait_for(
                "istiod /ready",
                Duration::from_secs(90),
                procs.last_mut(),
                || {
                    let (http, url) = (http.clone(), url.clone());
                    async move { Ok(http_ok(&http, &url).await?.map(|_| ())) }
                },
            )
            .await?;
        }
        mark("istiod ready");

        // The filter, from a registry, the way a cluster pulls it.
        let wasm = std::fs::read(&bins.filter_wasm).map_err(|source| HarnessError::Io {
            context: format!("reading {}", bins.filter_wasm.display()),
            source,
        })?;
        let registry = Registry::start(
            SocketAddr::from((NODE_IP, REGISTRY_PORT)),
            FILTER_REPOSITORY,
            FILTER_TAG,
            &wasm,
        )
        .await?;
        mark("OCI registry serving the filter");

        // Our install: RBAC and config exactly as shipped, the catalogue ConfigMap as
        // kustomization.yaml generates it.
        for f in [
            "manifests/operator/rbac.yaml",
            "manifests/operator/config.yaml",
        ] {
            apply_yaml(&admin, &read(&repo_root().join(f))?, f).await?;
        }
        let catalogue_path = repo_root().join("manifests/catalogue.yaml");
        let catalogue = ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some("seldon-mesh-catalogue".into()),
                namespace: Some(SYSTEM_NAMESPACE.into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                "catalogue.yaml".to_string(),
                read(&catalogue_path)?,
            )])),
            ..Default::default()
        };
        Api::<ConfigMap>::namespaced(admin.clone(), SYSTEM_NAMESPACE)
            .patch(
                "seldon-mesh-catalogue",
                &PatchParams::apply("mesh-test").force(),
                &Patch::Apply(&catalogue),
            )
            .await?;
        let config_path = run_dir.join("operator/config.yaml");
        write(
            &config_path,
            &operator_config(
                &registry.url(),
                &catalogue_path,
                opts.tracing.then_some(TRACING_ENDPOINT),
                opts.grpc_entry,
            )?,
        )?;

        // The webhook: its Service (without selector: the webhook is a process on the node,
        // not a pod) with Endpoints at the node address, and the shipped configuration.
        let webhook_file = "manifests/operator/webhook.yaml";
        for mut doc in yaml_documents(&read(&repo_root().join(webhook_file))?, webhook_file)? {
            match doc["kind"].as_str() {
                Some("Service") => {
                    if let Some(spec) = doc["spec"].as_object_mut() {
                        spec.remove("selector");
                    }
                }
                Some("ValidatingWebhookConfiguration") => {}
                _ => continue,
            }
            apply_yaml(
                &admin,
                &serde_yaml::to_string(&doc).map_err(|e| HarnessError::Check(e.to_string()))?,
                webhook_file,
            )
            .await?;
        }
        apply_yaml(
            &admin,
            &serde_yaml::to_string(&json!({
                "apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": "seldon-mesh-webhook", "namespace": SYSTEM_NAMESPACE},
                "subsets": [{"addresses": [{"ip": NODE_IP.to_string()}],
                             "ports": [{"name": "https", "port": WEBHOOK_PORT, "protocol": "TCP"}]}]
            }))
            .map_err(|e| HarnessError::Check(e.to_string()))?,
            "webhook Endpoints",
        )
        .await?;

        for (sa, role) in [
            ("seldon-mesh-webhook", "webhook"),
            ("seldon-mesh-operator", "operator"),
        ] {
            let token = service_account_token(&admin, SYSTEM_NAMESPACE, sa, API_AUDIENCE).await?;
            write_kubeconfig(
                &run_dir.join(format!("{role}.kubeconfig")),
                &kubeconfig_value(&server, &pki.ca_pem, json!({"token": token})),
            )
            .await?;
        }
        let mut cmd = Command::new(&bins.seldon_mesh);
        cmd.arg("webhook")
            .env("KUBECONFIG", run_dir.join("webhook.kubeconfig"))
            .env("SELDON_WEBHOOK_ADDR", format!("{NODE_IP}:{WEBHOOK_PORT}"))
            .env("SELDON_OPERATOR_CONFIG", &config_path)
            .env("SELDON_POD_NAMESPACE", SYSTEM_NAMESPACE)
            .env("RUST_LOG", "info");
        procs.push(procs::spawn("webhook", cmd, &logs)?);
        wait_for(
            "webhook: caBundle written and port open",
            Duration::from_secs(60),
            procs.last_mut(),
            || {
                let api: Api<
                    k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration,
                > = Api::all(admin.clone());
                async move {
                    let vwc = api.get("seldon-mesh-validating-webhook").await?;
                    let has_bundle = vwc
                        .webhooks
                        .unwrap_or_default()
                        .first()
                        .and_then(|w| w.client_config.ca_bundle.clone())
                        .is_some_and(|b| !b.0.is_empty());
                    let open = tokio::net::TcpStream::connect((NODE_IP, WEBHOOK_PORT))
                        .await
                        .is_ok();
                    Ok((has_bundle && open).then_some(()))
                }
            },
        )
        .await?;
        mark("webhook serving");

        let mut cmd = Command::new(&bins.seldon_mesh);
        cmd.arg("operator")
            .env("KUBECONFIG", run_dir.join("operator.kubeconfig"))
            .env(
                "SELDON_METRICS_ADDR",
                format!("127.0.0.1:{OPERATOR_METRICS_PORT}"),
            )
            .env("SELDON_OPERATOR_CONFIG", &config_path)
            .env("SELDON_POD_NAME", "seldon-mesh-operator-mesh-test")
            .env("SELDON_POD_NAMESPACE", SYSTEM_NAMESPACE)
            .env("SELDON_LEASE_DURATION_SECONDS", "6")
            .env("RUST_LOG", "info");
        procs.push(procs::spawn("operator", cmd, &logs)?);
        {
            let url = format!("http://127.0.0.1:{OPERATOR_METRICS_PORT}/readyz");
            wait_for(
                "operator /readyz",
                Duration::from_secs(60),
                procs.last_mut(),
                || {
                    let (http, url) = (http.clone(), url.clone());
                    async move { Ok(http_ok(&http, &url).await?.map(|_| ())) }
                },
            )
            .await?;
        }
        mark("operator ready");

        // The ingress gateway: Gateway from istio/, the Service Istio's chart makes, and a
        // WorkloadEntry for the gateway at the node address (it runs on the node, not in a
        // pod), so istiod maps Service port 80 to the listener on 8080.
        apply_yaml(
            &admin,
            &read(&repo_root().join("istio/gateway.yaml"))?,
            "istio/gateway.yaml",
        )
        .await?;
        let gateway_labels = json!({"app": "istio-ingressgateway", "istio": "ingressgateway"});
        let gateway_objects = [
            json!({"apiVersion": "v1", "kind": "ServiceAccount",
                   "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system"}}),
            json!({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system", "labels": gateway_labels},
                   "spec": {"selector": {"istio": "ingressgateway"},
                            "ports": [{"name": "http2", "port": 80, "targetPort": GATEWAY_HTTP_PORT, "protocol": "TCP"}]}}),
            json!({"apiVersion": "networking.istio.io/v1", "kind": "WorkloadEntry",
                   "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system"},
                   "spec": {"address": NODE_IP.to_string(), "labels": gateway_labels,
                            "serviceAccount": "istio-ingressgateway"}}),
        ];
        for obj in &gateway_objects {
            apply_yaml(
                &admin,
                &serde_yaml::to_string(obj).map_err(|e| HarnessError::Check(e.to_string()))?,
                "gateway objects",
            )
            .await?;
        }
        let gateway_dir = run_dir.join("gateway");
        let root_cert = wait_for(
            "istiod: ConfigMap istio-system/istio-ca-root-cert",
            Duration::from_secs(30),
            None,
            || {
                let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), "istio-system");
                async move {
                    Ok(cms
                        .get_opt("istio-ca-root-cert")
                        .await?
                        .and_then(|c| c.data)
                        .and_then(|d| d.get("root-cert.pem").cloned()))
                }
            },
        )
        .await?;
        let gateway_token =
            service_account_token(&admin, "istio-system", "istio-ingressgateway", "istio-ca")
                .await?;
        write(
            &gateway_dir.join("var/run/secrets/tokens/istio-token"),
            &gateway_token,
        )?;
        write(
            &gateway_dir.join("var/run/secrets/istio/root-cert.pem"),
            &root_cert,
        )?;
        write(
            &gateway_dir.join("var/lib/istio/envoy/envoy_bootstrap_tmpl.json"),
            &read(&bins.envoy_bootstrap)?,
        )?;
        std::fs::create_dir_all(gateway_dir.join("etc/istio/proxy")).map_err(|source| {
            HarnessError::Io {
                context: "creating the gateway's config dir".into(),
                source,
            }
        })?;
        // xDS over TLS on 15012, as a production gateway does (istiod's certificate carries
        // 10.77.0.1 through ISTIOD_CUSTOM_HOST).
        let proxy_config = json!({
            "discoveryAddress": format!("{NODE_IP}:{ISTIOD_TLS_PORT}"),
            "binaryPath": bins.envoy.display().to_string(),
            "configPath": gateway_dir.join("etc/istio/proxy").display().to_string(),
            "proxyAdminPort": GATEWAY_ADMIN_PORT,
            "statusPort": GATEWAY_STATUS_PORT,
            "drainDuration": "1s",
            "terminationDrainDuration": "1s",
        });
        // The shipped proxy defaults, as the injector copies them into a pod's PROXY_CONFIG,
        // plus the outbound cluster stats (not kept by Istio's default stats matcher) so a
        // test can count what the gateway sent to each destination, mirrors included.
        let mut proxy_config = proxy_config;
        for (key, value) in shipped_proxy_defaults()? {
            proxy_config[key] = value;
        }
        let prefixes = &mut proxy_config["proxyStatsMatcher"]["inclusionPrefixes"];
        if !prefixes.is_array() {
            *prefixes = json!([]);
        }
        if let Some(list) = prefixes.as_array_mut() {
            list.push(json!("cluster.outbound|"));
        }
        let mut cmd = Command::new(&bins.pilot_agent);
        cmd.current_dir(&gateway_dir)
            .args([
                "proxy",
                "router",
                "--domain",
                "istio-system.svc.cluster.local",
                "--proxyLogLevel=warning",
            ])
            .env("ISTIO_META_CLUSTER_ID", "Kubernetes")
            .env("SERVICE_ACCOUNT", "istio-ingressgateway")
            .env("POD_NAME", "istio-ingressgateway-mesh-test")
            .env("POD_NAMESPACE", "istio-system")
            .env("INSTANCE_IP", NODE_IP.to_string())
            .env("ISTIO_METAJSON_LABELS", gateway_labels.to_string())
            .env("ISTIO_META_WORKLOAD_NAME", "istio-ingressgateway")
            .env("JWT_POLICY", "third-party-jwt")
            .env("PILOT_CERT_PROVIDER", "istiod")
            .env("CA_ADDR", format!("{NODE_IP}:{ISTIOD_TLS_PORT}"))
            .env("FILE_MOUNTED_CERTS", "false")
            .env("ISTIO_META_ENABLE_HBONE", "false")
            .env("PROXY_CONFIG", proxy_config.to_string())
            .env("ENVOY_STATUS_PORT", GATEWAY_READY_PORT.to_string())
            .env("ENVOY_PROMETHEUS_PORT", "15090")
            .env("WASM_INSECURE_REGISTRIES", registry.addr().to_string());
        procs.push(procs::spawn("gateway", cmd, &logs)?);
        {
            let url = format!("http://127.0.0.1:{GATEWAY_READY_PORT}/healthz/ready");
            wait_for(
                "gateway /healthz/ready",
                Duration::from_secs(60),
                procs.last_mut(),
                || {
                    let (http, url) = (http.clone(), url.clone());
                    async move { Ok(http_ok(&http, &url).await?.map(|_| ())) }
                },
            )
            .await?;
        }
        mark("ingress gateway ready");

        let mut cluster = Cluster {
            run_dir,
            bins,
            pki,
            admin,
            admin_kubeconfig,
            registry,
            http,
            timings: Vec::new(),
            started,
            keep: false,
            jaeger_query,
            node_agent: None,
            procs,
        };
        if opts.node_agent {
            let mut images = cluster.our_images();
            images.extend(opts.images);
            let agent = NodeAgent::start(NodeAgentConfig {
                client: cluster.admin.clone(),
                node_name: NODE_NAME.to_string(),
                workdir: cluster.run_dir.join("node"),
                pilot_agent: cluster.bins.pilot_agent.clone(),
                envoy: cluster.bins.envoy.clone(),
                bootstrap_template: cluster.bins.envoy_bootstrap.clone(),
                istiod_host: NODE_IP.to_string(),
                images,
                kubeconfig_path: cluster.admin_kubeconfig.clone(),
            })
            .await?;
            cluster.node_agent = Some(agent);
            mark("node agent running");
        }
        cluster.timings = timings;
        Ok(cluster)
    }

    /// Our images → our binaries: the model server (with ONNX Runtime), the initializer,
    /// and `seldon-mesh` (operator/webhook image).
    pub fn our_images(&self) -> BTreeMap<String, ImageCommand> {
        let b = &self.bins;
        BTreeMap::from([
            (
                "ghcr.io/seldon-mesh/server".to_string(),
                ImageCommand {
                    program: b.seldon_server.clone(),
                    args: Vec::new(),
                    env: BTreeMap::from([(
                        "ORT_DYLIB_PATH".to_string(),
                        b.ort_dylib.display().to_string(),
                    )]),
                },
            ),
            (
                "ghcr.io/seldon-mesh/initializer".to_string(),
                ImageCommand {
                    program: b.initializer.clone(),
                    args: Vec::new(),
                    env: BTreeMap::new(),
                },
            ),
            (
                "ghcr.io/seldon-mesh/seldon-mesh".to_string(),
                ImageCommand {
                    program: b.seldon_mesh.clone(),
                    args: Vec::new(),
                    env: BTreeMap::new(),
                },
            ),
        ])
    }

    /// A client with `system:masters`.
    pub fn admin(&self) -> &Client {
        &self.admin
    }

    pub fn admin_kubeconfig(&self) -> &Path {
        &self.admin_kubeconfig
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    pub fn binaries(&self) -> &Binaries {
        &self.bins
    }

    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn node_agent(&self) -> Option<&NodeAgent> {
        self.node_agent.as_ref()
    }

    /// (phase, time since start) of the bring-up.
    pub fn timings(&self) -> &[(String, Duration)] {
        &self.timings
    }

    /// How long since `start` began.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// `http://127.0.0.1:8080`: the ingress gateway's HTTP listener.
    pub fn gateway_url(&self) -> String {
        format!("http://127.0.0.1:{GATEWAY_HTTP_PORT}")
    }

    pub fn gateway_admin(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], GATEWAY_ADMIN_PORT))
    }

    /// The pid of a process of the cluster by name (`gateway`, `istiod`, …).
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.procs.find(name).map(Child::pid)
    }

    /// Fails with the log of the first cluster process that has exited.
    pub fn ensure_running(&mut self) -> Result<(), HarnessError> {
        self.procs.ensure_running()
    }

    /// Runs `kubectl --kubeconfig <admin> <args>` (stdin from `input` when given) and returns
    /// stdout; a non-zero exit is an error quoting stderr.
    pub async fn kubectl(
        &self,
        args: &[&str],
        input: Option<&str>,
    ) -> Result<String, HarnessError> {
        let out = self.kubectl_output(args, input).await?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(HarnessError::Kubectl {
                args: args.join(" "),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
    }

    /// Like [`Cluster::kubectl`], returning the raw output (for expected failures).
    pub async fn kubectl_output(
        &self,
        args: &[&str],
        input: Option<&str>,
    ) -> Result<std::process::Output, HarnessError> {
        use tokio::io::AsyncWriteExt;
        let mut cmd = tokio::process::Command::new(&self.bins.kubectl);
        cmd.arg(format!("--kubeconfig={}", self.admin_kubeconfig.display()))
            .args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let io = |source| HarnessError::Io {
            context: format!("kubectl {}", args.join(" ")),
            source,
        };
        let mut child = cmd.spawn().map_err(io)?;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin.write_all(text.as_bytes()).await.map_err(io)?;
        }
        tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .map_err(|_| HarnessError::Timeout {
                what: format!("kubectl {}", args.join(" ")),
                after: Duration::from_secs(120),
                detail: String::new(),
            })?
            .map_err(io)
    }

    /// Waits until the SeldonDeployment's `status.state` is `state`; fails early on `Failed`
    /// (unless that is what is awaited), quoting its description.
    pub async fn wait_sdep_state(
        &self,
        namespace: &str,
        name: &str,
        state: &str,
        timeout: Duration,
    ) -> Result<Value, HarnessError> {
        let ar = kube::api::ApiResource {
            group: "machinelearning.seldon.io".into(),
            version: "v1".into(),
            api_version: "machinelearning.seldon.io/v1".into(),
            kind: "SeldonDeployment".into(),
            plural: "seldondeployments".into(),
        };
        let api: Api<DynamicObject> = Api::namespaced_with(self.admin.clone(), namespace, &ar);
        wait_for(
            &format!("SeldonDeployment {namespace}/{name} {state}"),
            timeout,
            None,
            || {
                let api = api.clone();
                async move {
                    let Some(obj) = api.get_opt(name).await? else {
                        return Ok(None);
                    };
                    let status = obj.data.get("status").cloned().unwrap_or(Value::Null);
                    let current = status["state"].as_str().unwrap_or("");
                    if current == state {
                        return Ok(Some(status));
                    }
                    if current == "Failed" {
                        return Err(HarnessError::Check(format!(
                            "state Failed: {}",
                            status["description"]
                        )));
                    }
                    Err(HarnessError::Check(format!("state {current:?}: {status}")))
                }
            },
        )
        .await
    }

    /// Jaeger's query API base (`http://127.0.0.1:16686/jaeger`) when the cluster runs with
    /// tracing.
    pub fn jaeger_query(&self) -> Option<&str> {
        self.jaeger_query.as_deref()
    }

    /// The spans Jaeger holds for `trace_id` (empty until the first arrives); an error when
    /// the cluster runs without tracing.
    pub async fn jaeger_trace(
        &self,
        trace_id: &str,
    ) -> Result<Vec<crate::jaeger::Span>, HarnessError> {
        let query = self.jaeger_query.as_deref().ok_or_else(|| {
            HarnessError::Check("the cluster runs without tracing (ClusterOptions::tracing)".into())
        })?;
        crate::jaeger::trace(&self.http, query, trace_id).await
    }

    /// The gateway Envoy's counters whose name contains `filter`.
    pub async fn gateway_stats(&self, filter: &str) -> Result<BTreeMap<String, u64>, HarnessError> {
        envoy_stats(&self.http, self.gateway_admin(), filter).await
    }

    /// Envoy's `update_rejected` counters for LDS and CDS on the admin endpoint `admin`:
    /// an Envoy that rejects a push keeps its old config, so a 200 proves nothing about it.
    pub async fn rejected_updates(
        &self,
        admin: SocketAddr,
    ) -> Result<BTreeMap<String, u64>, HarnessError> {
        let stats = envoy_stats(&self.http, admin, "update_rejected").await?;
        Ok(stats
            .into_iter()
            .filter(|(k, _)| {
                k == "listener_manager.lds.update_rejected"
                    || k == "cluster_manager.cds.update_rejected"
            })
            .collect())
    }

    /// The gateway Envoy's `server.uptime` and pid, to prove no restart across a change.
    pub async fn gateway_envoy_identity(&self) -> Result<(u64, u64), HarnessError> {
        let stats = envoy_stats(&self.http, self.gateway_admin(), "server.").await?;
        let uptime = stats.get("server.uptime").copied().unwrap_or(0);
        let text = self
            .http
            .get(format!("http://{}/server_info", self.gateway_admin()))
            .send()
            .await?
            .text()
            .await?;
        let info: Value =
            serde_json::from_str(&text).map_err(|e| HarnessError::Check(e.to_string()))?;
        let epoch = info["command_line_options"]["restart_epoch"]
            .as_u64()
            .unwrap_or(0);
        Ok((uptime, epoch))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let failed = self.keep || std::thread::panicking();
        // Pods first (the agent stops their processes and deletes their namespaces), then
        // every cluster process: SIGTERM to all at once, then each waited for (newest first).
        drop(self.node_agent.take());
        self.procs.stop_all();
        let keep = std::env::var_os("SELDON_MESH_KEEP").is_some_and(|v| v != "0");
        if failed || keep {
            eprintln!(
                "mesh: logs and state kept in {} (logs/, node/pods/)",
                self.run_dir.display()
            );
        } else if let Err(e) = std::fs::remove_dir_all(&self.run_dir) {
            eprintln!("mesh: could not remove {}: {e}", self.run_dir.display());
        }
    }
}

/// A mesh test's body: borrows the running cluster.
pub type TestBody<'a> = Pin<Box<dyn Future<Output = Result<(), HarnessError>> + 'a>>;

/// Runs one mesh test: enters a new node network namespace on this thread, builds a tokio
/// runtime there (so its sockets live in it too), starts the cluster, runs `body`, and
/// stops everything. On an error the run directory is kept and its path printed.
pub fn run<F>(opts: ClusterOptions, body: F) -> Result<(), HarnessError>
where
    F: for<'a> FnOnce(&'a mut Cluster) -> TestBody<'a>,
{
    init_tracing();
    let _node = crate::netns::enter_new_node_namespace()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| HarnessError::Io {
            context: "building the tokio runtime".into(),
            source,
        })?;
    let result = runtime.block_on(async move {
        let mut cluster = Cluster::start(opts).await?;
        let result = body(&mut cluster).await;
        cluster.keep = result.is_err();
        drop(cluster);
        result
    });
    if let Err(e) = &result {
        eprintln!("mesh: test failed: {e}");
    }
    result
}

/// `RUST_LOG`-filtered tracing to the test's output (once per process).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,kube_client=off,seldon_mesh_e2e=info")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pki_serving_cert_covers_every_address_clients_use() {
        let sans = apiserver_sans();
        assert!(sans.contains(&NODE_IP.to_string()));
        for want in [
            "127.0.0.1",
            "10.96.0.1",
            "kubernetes.default.svc.cluster.local",
        ] {
            assert!(
                sans.iter().any(|s| s == want),
                "{want} missing from {sans:?}"
            );
        }
        let pki = generate_pki().unwrap();
        assert!(pki.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(pki.serving_cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_ne!(pki.admin_key, pki.controller_manager_key);
        assert_ne!(pki.sa_key, pki.admin_key);
    }

    #[test]
    fn kubeconfig_holds_server_ca_and_user() {
        let v = kubeconfig_value("https://10.77.0.1:6443", "CA", json!({"token": "t"}));
        assert_eq!(
            v["clusters"][0]["cluster"]["server"],
            "https://10.77.0.1:6443"
        );
        assert_eq!(
            v["clusters"][0]["cluster"]["certificate-authority-data"],
            b64("CA")
        );
        assert_eq!(v["users"][0]["user"]["token"], "t");
        let kc: Kubeconfig = serde_json::from_value(v).unwrap();
        assert_eq!(kc.current_context.as_deref(), Some("mesh"));
    }

    #[test]
    fn repo_root_has_no_parent_components_for_file_uris() {
        let root = repo_root();
        assert!(
            root.components()
                .all(|c| c != std::path::Component::ParentDir),
            "{}",
            root.display()
        );
        assert!(root.join("tests/mesh/Cargo.toml").is_file());
    }

    #[test]
    fn mesh_config_turns_off_what_upstream_envoy_lacks_and_keeps_shipped_stats() {
        let text = mesh_config(Path::new("/opt/envoy"), false).unwrap();
        let v: Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(
            v["defaultProviders"],
            json!({}),
            "no prometheus provider: istio.stats is istio-proxy only"
        );
        assert_eq!(v["defaultConfig"]["discoveryAddress"], "10.77.0.1:15012");
        assert_eq!(v["defaultConfig"]["binaryPath"], "/opt/envoy");
        assert!(
            v["defaultConfig"]["extraStatTags"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        );
        assert!(v["extensionProviders"].is_null() && v["enableTracing"].is_null());
        let env: BTreeMap<_, _> = istiod_env().into_iter().collect();
        assert_eq!(env["PILOT_ENABLE_METADATA_EXCHANGE"], "false");
        assert_eq!(env["PILOT_ENABLE_ALPN_FILTER"], "false");
        assert_eq!(env["ISTIOD_CUSTOM_HOST"], "10.77.0.1");
    }

    #[test]
    fn tracing_takes_the_shipped_provider_that_the_shipped_telemetry_names() {
        let v: Value =
            serde_yaml::from_str(&mesh_config(Path::new("/opt/envoy"), true).unwrap()).unwrap();
        assert_eq!(v["enableTracing"], true);
        let providers = v["extensionProviders"].as_array().unwrap();
        let telemetry: Value =
            serde_yaml::from_str(&read(&repo_root().join("istio/telemetry.yaml")).unwrap())
                .unwrap();
        let named = &telemetry["spec"]["tracing"][0]["providers"][0]["name"];
        let provider = providers
            .iter()
            .find(|p| &p["name"] == named)
            .unwrap_or_else(|| {
                panic!("telemetry.yaml names {named}, mesh-config has {providers:?}")
            });
        // The addon's collector Service, OTLP gRPC: the cluster the test's Service makes.
        let otel = &provider["opentelemetry"];
        assert_eq!(
            otel["service"],
            "jaeger-collector.istio-system.svc.cluster.local"
        );
        assert_eq!(otel["port"], crate::jaeger::OTLP_GRPC_PORT);
        assert_eq!(
            telemetry["spec"]["tracing"][0]["randomSamplingPercentage"],
            100
        );
        // The operator's endpoint is the one manifests/README.md gives users.
        let readme = read(&repo_root().join("manifests/README.md")).unwrap();
        assert!(
            readme.contains(&format!("tracing.endpoint={TRACING_ENDPOINT}")),
            "manifests/README.md does not tell users tracing.endpoint={TRACING_ENDPOINT}"
        );
    }

    #[test]
    fn operator_config_points_at_the_local_registry() {
        let text = operator_config(
            "oci://10.77.0.1:5000/seldon-mesh/graph-filter:0.1.0",
            Path::new("/repo/manifests/catalogue.yaml"),
            None,
            false,
        )
        .unwrap();
        let v: Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(
            v["filterUrl"],
            "oci://10.77.0.1:5000/seldon-mesh/graph-filter:0.1.0"
        );
        assert_eq!(v["catalogue"], "/repo/manifests/catalogue.yaml");
        assert_eq!(
            v["ingress"], "istio",
            "the rest of the shipped config is kept"
        );
        assert!(v["tracing"].is_null());
        assert!(v["grpcEntry"].is_null());
        let text = operator_config(
            "oci://10.77.0.1:5000/seldon-mesh/graph-filter:0.1.0",
            Path::new("/repo/manifests/catalogue.yaml"),
            Some(TRACING_ENDPOINT),
            true,
        )
        .unwrap();
        let v: Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(v["tracing"]["endpoint"], TRACING_ENDPOINT);
        assert_eq!(v["grpcEntry"], true);
    }

    #[test]
    fn parse_stats_reads_counters_and_skips_the_rest() {
        let stats = parse_stats(
            "listener_manager.lds.update_rejected: 0\ncluster_manager.cds.update_rejected: 2\nhist: P0(nan,1)\n",
        );
        assert_eq!(stats.len(), 2);
        assert_eq!(stats["cluster_manager.cds.update_rejected"], 2);
    }

    #[test]
    fn yaml_documents_rejects_bad_yaml_with_the_file_name() {
        assert_eq!(
            yaml_documents("a: 1\n---\n---\nb: 2\n", "x").unwrap().len(),
            2
        );
        let err = yaml_documents("a: [1\n", "broken.yaml").unwrap_err();
        assert!(err.to_string().contains("broken.yaml"), "{err}");
    }

    #[test]
    fn script_paths_reports_a_failing_script() {
        let err = script_paths("scripts/does-not-exist.sh", &[]).unwrap_err();
        assert!(matches!(err, HarnessError::Script { .. }), "{err}");
    }

    #[tokio::test]
    async fn wait_for_times_out_with_the_last_error() {
        let err = wait_for::<(), _, _>("nothing", Duration::from_millis(300), None, || async {
            Err(HarnessError::Check("still broken".into()))
        })
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("nothing") && text.contains("still broken"),
            "{text}"
        );
    }
}
