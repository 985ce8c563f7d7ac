//! `RenderOptions`: the operator's configuration that shapes what is rendered.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Toleration;
use serde::{Deserialize, Serialize};

use crate::catalogue::Catalogue;

/// Which ingress routes external traffic to predictors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ingress {
    /// Istio VirtualService through `istio_gateway`.
    #[default]
    Istio,
    /// Ambassador/Emissary `Mapping`s (getambassador.io/v3alpha1).
    Ambassador,
}

/// Where the graph filter calls the nodes that live in its own pod (the component holding
/// the graph root). Nodes in other pods are always called through their Service.
///
/// The default is `Localhost`, chosen by measurement: in the mesh test
/// (`tests/mesh/tests/node_calls.rs`, numbers in `tests/mesh/README.md`) it was never slower
/// at p50 and had a lower p99 than the Service path in every round, and the call never leaves
/// the pod (Seldon's executor called its pod's containers the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeCalls {
    /// Istio's outbound cluster of the node's Service (`outbound|<port>||<svc fqdn>`): any
    /// ready replica, mTLS, the node Service's DestinationRule (retries, outlier detection).
    Service,
    /// A static cluster at `127.0.0.1:<port>` (an EnvoyFilter `CLUSTER` `ADD`): this pod's own
    /// container, no mTLS between the containers of one pod, like Seldon's executor.
    #[default]
    Localhost,
}

impl NodeCalls {
    /// The annotation / config / flag spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Service => "service",
            Self::Localhost => "localhost",
        }
    }
}

/// A `node-calls` value that is neither `service` nor `localhost`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "node calls {0:?}: use service (through the node's Service) or localhost (this pod's container at 127.0.0.1)"
)]
pub struct NodeCallsError(pub String);

impl std::str::FromStr for NodeCalls {
    type Err = NodeCallsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "service" => Ok(Self::Service),
            "localhost" => Ok(Self::Localhost),
            other => Err(NodeCallsError(other.to_string())),
        }
    }
}

/// What a GPU node pool needs; added to every pod with a container asking for `resource`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GpuPool {
    /// Extended resource that marks a GPU request.
    #[serde(default = "default_gpu_resource")]
    pub resource: String,
    #[serde(default)]
    pub tolerations: Vec<Toleration>,
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default)]
    pub runtime_class_name: Option<String>,
}

fn default_gpu_resource() -> String {
    "nvidia.com/gpu".to_string()
}

impl Default for GpuPool {
    /// The taint GPU node pools carry on GKE, EKS and AKS (`nvidia.com/gpu:NoSchedule`).
    fn default() -> Self {
        Self {
            resource: default_gpu_resource(),
            tolerations: vec![Toleration {
                key: Some("nvidia.com/gpu".to_string()),
                operator: Some("Exists".to_string()),
                effect: Some("NoSchedule".to_string()),
                ..Default::default()
            }],
            node_selector: BTreeMap::new(),
            runtime_class_name: None,
        }
    }
}

/// Everything `render` needs besides the SeldonDeployment.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderOptions {
    pub ingress: Ingress,
    pub catalogue: Catalogue,
    /// The graph filter module (WasmPlugin `url`): `oci://`, `https://` or `file://`.
    /// Default [`DEFAULT_FILTER_URL`]; the operator config (`filterUrl`), Helm
    /// (`filter.url`) and `seldon-mesh render --filter-url` (`SELDON_FILTER_URL`) set it.
    pub filter_url: String,
    /// Optional sha256 of the module.
    pub filter_sha256: Option<String>,
    /// Default model-initializer image (a node's `storageInitializerImage` wins).
    pub initializer_image: String,
    /// `runAsUser` of the model-initializer init container. Default
    /// [`ISTIO_PROXY_UID`]: Istio's iptables rules (istio-init or the CNI plugin) let the
    /// proxy's UID out unredirected, so the download works before the sidecar runs
    /// (Seldon #4450). `None`: no container securityContext (the pod's applies).
    pub initializer_user_id: Option<i64>,
    /// Default `envSecretRefName` for initializers (Seldon's `PREDICTIVE_UNIT_DEFAULT_ENV_SECRET_REF_NAME`).
    pub default_env_secret_ref_name: Option<String>,
    /// VirtualService gateway unless `seldon.io/istio-gateway` says otherwise.
    pub istio_gateway: String,
    /// DestinationRule `trafficPolicy.tls.mode` (Seldon's `ISTIO_TLS_MODE`); none = idle timeout policy.
    pub istio_tls_mode: Option<String>,
    /// Pod `runAsUser` when the pod sets no securityContext (Seldon's `DEFAULT_USER_ID`).
    pub default_user_id: Option<i64>,
    /// Where payload logs go when a node's logger has no url (Seldon's `http://default-broker`).
    pub default_logger_url: String,
    pub gpu_pool: GpuPool,
    /// Serve gRPC at the entry: the predictor Service's `grpc` port 5001, the VirtualService
    /// gRPC route and the Ambassador gRPC Mapping. Off until the graph filter speaks gRPC
    /// (nothing listens on 5001, and the mesh must not advertise a dead endpoint); `check`
    /// refuses `spec.transport: grpc` while it is off. This is the one switch.
    pub grpc_entry: bool,
    /// Where the filter calls nodes of its own pod (default [`NodeCalls::Localhost`]); a
    /// SeldonDeployment or predictor annotation `mesh.seldon.io/node-calls` wins. The operator
    /// config (`nodeCalls`), Helm (`nodeCalls`) and `seldon-mesh render --node-calls`
    /// (`SELDON_NODE_CALLS`) set it.
    pub node_calls: NodeCalls,
    /// Where graph filters export their spans: the OTLP/HTTP base URL of a collector in the
    /// cluster (`http://<svc>[.<ns>][:port][/base]`; `/v1/traces` is appended, as OTel SDKs do
    /// with `OTEL_EXPORTER_OTLP_ENDPOINT`). `None` (default): no spans. The operator config
    /// (`tracing.endpoint`) and Helm (`tracing.endpoint`) set it.
    pub tracing_endpoint: Option<String>,
    /// Share of new traces sampled when the caller sent no sampling decision (0..=1, default
    /// 1: Seldon's executor traced every request once tracing was on).
    pub trace_sample_ratio: f64,
}

/// A tracing endpoint or sample ratio the filter could not use.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TracingError {
    #[error(
        "endpoint {0:?}: give the collector's OTLP/HTTP base URL as http://<service>[.<namespace>][:port][/path], e.g. http://jaeger-collector.observability:4318 (the sidecar adds mTLS; the filter does not originate TLS)"
    )]
    Endpoint(String),
    #[error("sampleRatio {0}: must be between 0 and 1")]
    SampleRatio(f64),
}

/// Checks a [`RenderOptions::tracing_endpoint`] and [`RenderOptions::trace_sample_ratio`].
pub fn check_tracing(endpoint: &str, sample_ratio: f64) -> Result<(), TracingError> {
    let rest = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| TracingError::Endpoint(endpoint.to_string()))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().ok().filter(|p| *p > 0)),
        None => (authority, Some(80)),
    };
    let host_ok = !host.is_empty()
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if !host_ok || port.is_none() || rest.contains(['?', '#', '@']) {
        return Err(TracingError::Endpoint(endpoint.to_string()));
    }
    if !(0.0..=1.0).contains(&sample_ratio) {
        return Err(TracingError::SampleRatio(sample_ratio));
    }
    Ok(())
}

/// This build's version, used in default image tags.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The filter module `make images` builds (a Wasm OCI artifact in Istio's `compat` layout),
/// fully qualified: an unqualified `seldon-mesh/graph-filter` would resolve to Docker Hub.
pub const DEFAULT_FILTER_URL: &str = concat!(
    "oci://ghcr.io/seldon-mesh/graph-filter:",
    env!("CARGO_PKG_VERSION")
);

/// A filter URL the sidecar could not pull as meant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterUrlError {
    #[error(
        "filter URL {0:?} has no scheme: use oci://<registry>/<repository>:<tag>, https://… or file://…"
    )]
    NoScheme(String),
    #[error(
        "filter URL {0:?}: scheme not supported by Istio's WasmPlugin (oci, http, https, file)"
    )]
    Scheme(String),
    #[error(
        "filter URL {0:?} names no registry host, so it would be pulled from Docker Hub; write the registry (oci://ghcr.io/…, oci://docker.io/… for Docker Hub)"
    )]
    NoRegistry(String),
    #[error("filter URL {0:?} has nothing after the scheme")]
    Empty(String),
}

/// Checks a WasmPlugin `url` the way the sidecar reads it: an explicit scheme Istio supports,
/// and for `oci://` an explicit registry host (a first path part with `.` or `:`, or
/// `localhost`), since Istio, like Docker, sends a bare `org/name` to Docker Hub.
pub fn check_filter_url(url: &str) -> Result<(), FilterUrlError> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(FilterUrlError::NoScheme(url.to_string()));
    };
    if rest.is_empty() {
        return Err(FilterUrlError::Empty(url.to_string()));
    }
    match scheme {
        "http" | "https" | "file" => Ok(()),
        "oci" => {
            let host = rest.split('/').next().unwrap_or_default();
            let qualified = rest.contains('/')
                && (host.contains('.') || host.contains(':') || host == "localhost");
            if qualified {
                Ok(())
            } else {
                Err(FilterUrlError::NoRegistry(url.to_string()))
            }
        }
        _ => Err(FilterUrlError::Scheme(url.to_string())),
    }
}

/// The UID Istio's sidecar runs as (`istio-proxy`); istio-iptables and the Istio CNI plugin
/// exempt it from redirection (`-m owner --uid-owner 1337 -j RETURN`).
pub const ISTIO_PROXY_UID: i64 = 1337;

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            ingress: Ingress::Istio,
            catalogue: Catalogue::builtin(),
            filter_url: DEFAULT_FILTER_URL.to_string(),
            filter_sha256: None,
            initializer_image: format!("ghcr.io/seldon-mesh/initializer:{VERSION}"),
            initializer_user_id: Some(ISTIO_PROXY_UID),
            default_env_secret_ref_name: None,
            istio_gateway: "istio-system/seldon-gateway".to_string(),
            istio_tls_mode: None,
            default_user_id: Some(8888),
            default_logger_url: "http://default-broker".to_string(),
            gpu_pool: GpuPool::default(),
            grpc_entry: false,
            node_calls: NodeCalls::Localhost,
            tracing_endpoint: None,
            trace_sample_ratio: 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_urls_need_a_scheme_and_a_registry() {
        for ok in [
            DEFAULT_FILTER_URL,
            "oci://127.0.0.1:5000/seldon-mesh/graph-filter:0.1.0",
            "oci://localhost/graph-filter:0.1.0",
            "oci://docker.io/seldonio/graph-filter@sha256:abc",
            "https://example.com/f.wasm",
            "file:///var/lib/f.wasm",
        ] {
            assert_eq!(check_filter_url(ok), Ok(()), "{ok}");
        }
        let no_reg = check_filter_url("oci://seldon-mesh/graph-filter:0.1.0").unwrap_err();
        assert!(matches!(no_reg, FilterUrlError::NoRegistry(_)));
        assert!(no_reg.to_string().contains("Docker Hub"), "{no_reg}");
        assert!(matches!(
            check_filter_url("oci://graph-filter:0.1.0"),
            Err(FilterUrlError::NoRegistry(_))
        ));
        assert!(matches!(
            check_filter_url("seldon-mesh/graph-filter:0.1.0"),
            Err(FilterUrlError::NoScheme(_))
        ));
        assert!(matches!(
            check_filter_url("ftp://h/f.wasm"),
            Err(FilterUrlError::Scheme(_))
        ));
        assert!(matches!(
            check_filter_url("oci://"),
            Err(FilterUrlError::Empty(_))
        ));
    }

    #[test]
    fn tracing_endpoints_are_http_service_urls_and_ratios_are_shares() {
        for ok in [
            "http://jaeger-collector.observability:4318",
            "http://otel-collector",
            "http://otel-collector.obs.svc.cluster.local:4318/otlp",
        ] {
            assert_eq!(check_tracing(ok, 0.5), Ok(()), "{ok}");
        }
        for bad in [
            "https://jaeger:4318",
            "jaeger:4318",
            "http://",
            "http://jaeger:0",
            "http://jaeger:99999",
            "http://user@jaeger:4318",
            "http://jaeger:4318/?q",
            "http://bad_host:4318",
        ] {
            assert_eq!(
                check_tracing(bad, 1.0),
                Err(TracingError::Endpoint(bad.to_string())),
                "{bad}"
            );
        }
        let e = check_tracing("http://jaeger:4318", 1.5).unwrap_err();
        assert_eq!(e, TracingError::SampleRatio(1.5));
        assert_eq!(e.to_string(), "sampleRatio 1.5: must be between 0 and 1");
    }

    #[test]
    fn defaults_are_what_the_mesh_needs() {
        let o = RenderOptions::default();
        assert_eq!(o.filter_url, DEFAULT_FILTER_URL);
        assert_eq!(o.initializer_user_id, Some(ISTIO_PROXY_UID));
        assert!(!o.grpc_entry);
        assert_eq!(o.node_calls, NodeCalls::Localhost);
        assert_eq!(o.tracing_endpoint, None);
        assert_eq!(o.trace_sample_ratio, 1.0);
    }

    #[test]
    fn node_calls_parse_both_spellings_and_refuse_others() {
        assert_eq!("service".parse(), Ok(NodeCalls::Service));
        assert_eq!(" localhost ".parse(), Ok(NodeCalls::Localhost));
        for m in [NodeCalls::Service, NodeCalls::Localhost] {
            assert_eq!(m.as_str().parse(), Ok(m));
        }
        let e = "Localhost".parse::<NodeCalls>().unwrap_err();
        assert_eq!(e, NodeCallsError("Localhost".to_string()));
        assert!(e.to_string().contains("use service"), "{e}");
        assert!("".parse::<NodeCalls>().is_err());
    }
}
