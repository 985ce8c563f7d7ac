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
    /// The graph filter module (WasmPlugin `url`).
    pub filter_url: String,
    /// Optional sha256 of the module.
    pub filter_sha256: Option<String>,
    /// Default model-initializer image (a node's `storageInitializerImage` wins).
    pub initializer_image: String,
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
}

/// This build's version, used in default image tags.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            ingress: Ingress::Istio,
            catalogue: Catalogue::builtin(),
            filter_url: format!("oci://seldon-mesh/graph-filter:{VERSION}"),
            filter_sha256: None,
            initializer_image: format!("seldon-mesh/initializer:{VERSION}"),
            default_env_secret_ref_name: None,
            istio_gateway: "istio-system/seldon-gateway".to_string(),
            istio_tls_mode: None,
            default_user_id: Some(8888),
            default_logger_url: "http://default-broker".to_string(),
            gpu_pool: GpuPool::default(),
        }
    }
}
