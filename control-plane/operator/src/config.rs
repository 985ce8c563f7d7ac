//! Typed configuration, loaded once: clap arguments (each with `env = "SELDON_…"`) for the
//! `operator` and `webhook` subcommands, and the operator config file (data: ingress, GPU
//! node pool, images) that becomes `seldon_render::RenderOptions`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use seldon_render::{Catalogue, GpuPool, Ingress, RenderOptions};
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
    /// Graph filter module URL (WasmPlugin `url`).
    pub filter_url: Option<String>,
    /// sha256 of the module.
    pub filter_sha256: Option<String>,
    /// Model initializer image.
    pub initializer_image: Option<String>,
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
            o.filter_url.clone_from(v);
        }
        if self.filter_sha256.is_some() {
            o.filter_sha256.clone_from(&self.filter_sha256);
        }
        if let Some(v) = &self.initializer_image {
            o.initializer_image.clone_from(v);
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
