//! Typed configuration, loaded once: clap arguments (each with `env = "SELDON_…"`) for the
//! `operator` and `webhook` subcommands, and the operator config file (data: ingress, GPU
//! node pool, images) that becomes `seldon_render::RenderOptions`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use seldon_render::{Catalogue, GpuPool, Ingress, NodeCalls, RenderOptions};
use serde::Deserialize;

use crate::names;

/// `seldon-mesh operator`.
#[derive(Debug, Clone, clap::Args)]
pub struct OperatorArgs {
    /// Metrics, /healthz and /readyz listen here.
    #[arg(long, env = "SELDON_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Operator config file (YAML, see manifests/operator/config.yaml); defaults when absent.
    #[arg(long, env = "SELDON_OPERATOR_CONFIG")]
    pub config: Option<PathBuf>,
    /// Only watch this namespace (all namespaces when unset).
    #[arg(long, env = "SELDON_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// Elect a leader through a Lease before reconciling (needed with more than one replica).
    #[arg(long, env = "SELDON_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// This replica's identity in the Lease (the pod name).
    #[arg(long, env = "SELDON_POD_NAME", default_value = "seldon-mesh-operator")]
    pub pod_name: String,
    /// Namespace of the Lease (the operator's own namespace).
    #[arg(long, env = "SELDON_POD_NAMESPACE", default_value = names::SYSTEM_NAMESPACE)]
    pub pod_namespace: String,
    /// Lease duration in seconds; renewals happen every third of it.
    #[arg(long, env = "SELDON_LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// Re-reconcile available SeldonDeployments this often (repairs drift).
    #[arg(long, env = "SELDON_RESYNC_SECONDS", default_value_t = 300)]
    pub resync_seconds: u64,
}

/// `seldon-mesh webhook`.
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookArgs {
    /// HTTPS listen address.
    #[arg(long, env = "SELDON_WEBHOOK_ADDR", default_value = "0.0.0.0:9443")]
    pub addr: SocketAddr,
    /// Operator config file: the webhook validates with the same catalogue and options.
    #[arg(long, env = "SELDON_OPERATOR_CONFIG")]
    pub config: Option<PathBuf>,
    /// Serve `tls.crt`/`tls.key` from this directory (e.g. a cert-manager Secret) instead of
    /// generating a CA; `caBundle` is then left alone.
    #[arg(long, env = "SELDON_WEBHOOK_CERT_DIR")]
    pub cert_dir: Option<PathBuf>,
    /// Namespace of the webhook Service and certificate Secret.
    #[arg(long, env = "SELDON_POD_NAMESPACE", default_value = names::SYSTEM_NAMESPACE)]
    pub namespace: String,
    /// Webhook Service name (the certificate's DNS name).
    #[arg(long, env = "SELDON_WEBHOOK_SERVICE", default_value = names::WEBHOOK_SERVICE)]
    pub service: String,
    /// Secret holding the generated CA and serving certificate.
    #[arg(long, env = "SELDON_WEBHOOK_CERT_SECRET", default_value = names::WEBHOOK_CERT_SECRET)]
    pub cert_secret: String,
    /// ValidatingWebhookConfiguration whose caBundle is written.
    #[arg(long, env = "SELDON_WEBHOOK_CONFIG_NAME", default_value = names::WEBHOOK_CONFIG_NAME)]
    pub config_name: String,
}

/// The operator config file. Every field is optional; unknown fields are an error.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OperatorConfig {
    /// `istio` (default) or `ambassador`.
    pub ingress: Option<Ingress>,
    /// Default VirtualService gateway.
    pub istio_gateway: Option<String>,
    /// DestinationRule TLS mode.
    pub istio_tls_mode: Option<String>,
    /// Graph filter module URL (WasmPlugin `url`), checked by
    /// `seldon_render::check_filter_url`; default `seldon_render::DEFAULT_FILTER_URL`.
    pub filter_url: Option<String>,
    /// sha256 of the module.
    pub filter_sha256: Option<String>,
    /// Model initializer image.
    pub initializer_image: Option<String>,
    /// `runAsUser` of the model initializer: absent = 1337 (Istio's proxy UID, so its
    /// download passes the sidecar's iptables rules before the sidecar runs); a number = that
    /// UID (OpenShift: the proxy's UID in the namespace range); `null` = none (the pod's).
    #[serde(default, deserialize_with = "present")]
    pub initializer_user_id: Option<Option<i64>>,
    /// Where the graph filter calls the nodes of its own pod: `localhost` (default, a static
    /// 127.0.0.1 cluster) or `service` (Istio's outbound cluster of the node's Service); a
    /// SeldonDeployment's `mesh.seldon.io/node-calls` annotation wins.
    pub node_calls: Option<NodeCalls>,
    /// Serve gRPC at the entry (`seldon_render::RenderOptions::grpc_entry`): the predictor
    /// Service's port 5001, the gateway's gRPC route / Mapping and the `<svc>-grpc-entry`
    /// EnvoyFilter running the filter there; default off.
    pub grpc_entry: Option<bool>,
    /// Default `envSecretRefName`.
    pub default_env_secret_ref_name: Option<String>,
    /// Pod `runAsUser` default.
    pub default_user_id: Option<i64>,
    /// Default payload logger URL.
    pub default_logger_url: Option<String>,
    /// GPU node pool.
    pub gpu: Option<GpuPool>,
    /// Prepackaged server catalogue file (manifests/catalogue.yaml layout); built-in when unset.
    pub catalogue: Option<PathBuf>,
    /// Where graph filters export spans; absent: no spans.
    pub tracing: Option<TracingConfig>,
}

/// `tracing:` of the operator config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TracingConfig {
    /// OTLP/HTTP base URL of the collector Service, e.g.
    /// `http://jaeger-collector.observability:4318` (`/v1/traces` is appended).
    pub endpoint: String,
    /// Share of new traces sampled when the caller sent no decision; default 1.
    pub sample_ratio: Option<f64>,
}

/// A field that is present (even as `null`) is `Some`: tells `null` from absent.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// Reading the configuration failed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// File unreadable.
    #[error("reading {path}: {source}")]
    Read {
        /// Path.
        path: PathBuf,
        /// IO error.
        #[source]
        source: std::io::Error,
    },
    /// Not the expected YAML.
    #[error("{path}: {source}")]
    Parse {
        /// Path.
        path: PathBuf,
        /// YAML error (with line/column).
        #[source]
        source: serde_yaml::Error,
    },
    /// `filterUrl` would not be pulled as meant.
    #[error("filterUrl: {0}")]
    FilterUrl(#[from] seldon_render::FilterUrlError),
    /// `tracing` names no usable collector.
    #[error("tracing: {0}")]
    Tracing(#[from] seldon_render::TracingError),
    /// Catalogue invalid.
    #[error("catalogue {path}: {source}")]
    Catalogue {
        /// Path.
        path: PathBuf,
        /// Its error.
        #[source]
        source: seldon_render::CatalogueError,
    },
}

impl OperatorConfig {
    /// Parses the config file text.
    pub fn from_yaml(path: &Path, text: &str) -> Result<Self, ConfigError> {
        serde_yaml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.into(),
            source,
        })
    }

    /// The render options: defaults, overridden by each field that is set.
    pub fn render_options(&self) -> Result<RenderOptions, ConfigError> {
        let mut o = RenderOptions::default();
        if let Some(v) = self.ingress {
            o.ingress = v;
        }
        if let Some(v) = &self.istio_gateway {
            o.istio_gateway.clone_from(v);
        }
        if self.istio_tls_mode.is_some() {
            o.istio_tls_mode.clone_from(&self.istio_tls_mode);
        }
        if let Some(v) = &self.filter_url {
            seldon_render::check_filter_url(v)?;
            o.filter_url.clone_from(v);
        }
        if self.filter_sha256.is_some() {
            o.filter_sha256.clone_from(&self.filter_sha256);
        }
        if let Some(v) = &self.initializer_image {
            o.initializer_image.clone_from(v);
        }
        if let Some(v) = self.initializer_user_id {
            o.initializer_user_id = v;
        }
        if let Some(v) = self.node_calls {
            o.node_calls = v;
        }
        if let Some(v) = self.grpc_entry {
            o.grpc_entry = v;
        }
        if self.default_env_secret_ref_name.is_some() {
            o.default_env_secret_ref_name
                .clone_from(&self.default_env_secret_ref_name);
        }
        if self.default_user_id.is_some() {
            o.default_user_id = self.default_user_id;
        }
        if let Some(v) = &self.default_logger_url {
            o.default_logger_url.clone_from(v);
        }
        if let Some(v) = &self.gpu {
            o.gpu_pool = v.clone();
        }
        if let Some(t) = &self.tracing {
            let ratio = t.sample_ratio.unwrap_or(o.trace_sample_ratio);
            seldon_render::check_tracing(&t.endpoint, ratio)?;
            o.tracing_endpoint = Some(t.endpoint.clone());
            o.trace_sample_ratio = ratio;
        }
        if let Some(path) = &self.catalogue {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            o.catalogue = Catalogue::from_yaml(&text).map_err(|source| ConfigError::Catalogue {
                path: path.clone(),
                source,
            })?;
        }
        Ok(o)
    }
}

/// Loads render options from an optional config file.
pub fn load_render_options(path: Option<&Path>) -> Result<RenderOptions, ConfigError> {
    let Some(path) = path else {
        return Ok(RenderOptions::default());
    };
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    OperatorConfig::from_yaml(path, &text)?.render_options()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(yaml: &str) -> Result<RenderOptions, ConfigError> {
        OperatorConfig::from_yaml(Path::new("c.yaml"), yaml)?.render_options()
    }

    #[test]
    fn tracing_reaches_the_render_options_and_a_bad_endpoint_stops_the_start() {
        let o = opts("{}").unwrap();
        assert_eq!((o.tracing_endpoint, o.trace_sample_ratio), (None, 1.0));
        let o = opts("tracing: {endpoint: \"http://jaeger-collector.obs:4318\"}\n").unwrap();
        assert_eq!(
            o.tracing_endpoint.as_deref(),
            Some("http://jaeger-collector.obs:4318")
        );
        assert_eq!(o.trace_sample_ratio, 1.0);
        let o = opts("tracing: {endpoint: \"http://otel:4318\", sampleRatio: 0.1}\n").unwrap();
        assert_eq!(o.trace_sample_ratio, 0.1);
        let e = opts("tracing: {endpoint: \"https://otel:4318\"}\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("tracing: endpoint \"https://otel:4318\""),
            "{e}"
        );
        let e = opts("tracing: {endpoint: \"http://otel:4318\", sampleRatio: 2}\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "tracing: sampleRatio 2: must be between 0 and 1"
        );
    }

    #[test]
    fn filter_url_and_sha_reach_the_render_options() {
        let o = opts(
            "filterUrl: oci://127.0.0.1:5000/seldon-mesh/graph-filter:0.1.0\nfilterSha256: abc\n",
        )
        .unwrap();
        assert_eq!(
            o.filter_url,
            "oci://127.0.0.1:5000/seldon-mesh/graph-filter:0.1.0"
        );
        assert_eq!(o.filter_sha256.as_deref(), Some("abc"));
        let o = opts("ingress: istio\n").unwrap();
        assert_eq!(o.filter_url, seldon_render::DEFAULT_FILTER_URL);
        assert_eq!(o.filter_sha256, None);
    }

    #[test]
    fn a_filter_url_docker_hub_would_serve_is_refused() {
        let e = opts("filterUrl: oci://seldon-mesh/graph-filter:0.1.0\n").unwrap_err();
        assert!(matches!(
            e,
            ConfigError::FilterUrl(seldon_render::FilterUrlError::NoRegistry(_))
        ));
        assert!(e.to_string().starts_with("filterUrl: "), "{e}");
        assert!(e.to_string().contains("Docker Hub"), "{e}");
        let e = opts("filterUrl: graph-filter.wasm\n").unwrap_err();
        assert!(matches!(
            e,
            ConfigError::FilterUrl(seldon_render::FilterUrlError::NoScheme(_))
        ));
    }

    #[test]
    fn initializer_user_id_absent_number_or_null() {
        assert_eq!(
            opts("{}").unwrap().initializer_user_id,
            Some(seldon_render::ISTIO_PROXY_UID)
        );
        assert_eq!(
            opts("initializerUserId: 1000680001\n")
                .unwrap()
                .initializer_user_id,
            Some(1_000_680_001)
        );
        assert_eq!(
            opts("initializerUserId: null\n")
                .unwrap()
                .initializer_user_id,
            None
        );
        let e = opts("initializerUserId: istio\n").unwrap_err();
        assert!(matches!(e, ConfigError::Parse { .. }), "{e}");
    }

    #[test]
    fn grpc_entry_off_by_default_on_when_set() {
        assert!(!opts("{}").unwrap().grpc_entry);
        assert!(opts("grpcEntry: true\n").unwrap().grpc_entry);
        assert!(!opts("grpcEntry: false\n").unwrap().grpc_entry);
    }

    #[test]
    fn node_calls_localhost_by_default_service_when_set_and_nothing_else() {
        assert_eq!(opts("{}").unwrap().node_calls, NodeCalls::Localhost);
        assert_eq!(
            opts("nodeCalls: localhost\n").unwrap().node_calls,
            NodeCalls::Localhost
        );
        assert_eq!(
            opts("nodeCalls: service\n").unwrap().node_calls,
            NodeCalls::Service
        );
        let e = opts("nodeCalls: pod\n").unwrap_err();
        assert!(matches!(e, ConfigError::Parse { .. }), "{e}");
        assert!(e.to_string().contains("unknown variant `pod`"), "{e}");
    }
}
