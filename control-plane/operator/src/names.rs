//! Every name the operator and webhook put on the wire: field manager, labels, lease,
//! secret, webhook path. One place, so manifests/ and the code cannot drift (tests check
//! the install YAML against these constants).

/// The single server-side-apply field manager for everything the operator writes.
pub const FIELD_MANAGER: &str = "seldon-mesh-operator";
/// Label Seldon Core puts on every object of a SeldonDeployment; the prune selector.
pub const LABEL_SDEP_ID: &str = "seldon-deployment-id";
/// Label marking objects this operator manages (Seldon uses `seldon-core`; we keep the key).
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`LABEL_MANAGED_BY`] on our objects.
pub const MANAGED_BY: &str = "seldon-mesh";
/// Reporting controller name on Events.
pub const CONTROLLER_NAME: &str = "seldon-mesh-operator";
/// Lease used for leader election between operator replicas.
pub const LEASE_NAME: &str = "seldon-mesh-operator";
/// Namespace the install manifests use.
pub const SYSTEM_NAMESPACE: &str = "seldon-system";
/// Path of the validating webhook (the same path Seldon Core v1 registers).
pub const WEBHOOK_PATH: &str = "/validate-machinelearning-seldon-io-v1-seldondeployment";
/// Name of the ValidatingWebhookConfiguration whose caBundle the webhook patches.
pub const WEBHOOK_CONFIG_NAME: &str = "seldon-mesh-validating-webhook";
/// Service in front of the webhook pods (the serving certificate's DNS name).
pub const WEBHOOK_SERVICE: &str = "seldon-mesh-webhook";
/// Secret holding the self-generated CA and serving certificate.
pub const WEBHOOK_CERT_SECRET: &str = "seldon-mesh-webhook-cert";
/// Status condition types, as Seldon Core v1 names them.
pub const COND_DEPLOYMENTS_READY: &str = "DeploymentsReady";
/// See [`COND_DEPLOYMENTS_READY`].
pub const COND_SERVICES_READY: &str = "ServicesReady";
/// See [`COND_DEPLOYMENTS_READY`].
pub const COND_READY: &str = "Ready";
