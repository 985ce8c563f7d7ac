//! Every name, label, annotation and port Seldon Core v1 uses, in one place (reference §1.5,
//! §2.1–2.2). Render, the operator and the webhook all read them from here.

use md5::{Digest, Md5};

// Ports (reference §2.2).
/// First HTTP port given to node containers.
pub const HTTP_PORT_BASE: i32 = 9000;
/// First gRPC port given to node containers.
pub const GRPC_PORT_BASE: i32 = 9500;
/// First metrics port given to node containers.
pub const METRICS_PORT_BASE: i32 = 6000;
/// The predictor's HTTP entry port (Seldon's executor port; the filter's port here).
pub const PREDICTOR_HTTP_PORT: i32 = 8000;
/// The predictor's gRPC entry port.
pub const PREDICTOR_GRPC_PORT: i32 = 5001;
pub const PORT_NAME_HTTP: &str = "http";
pub const PORT_NAME_GRPC: &str = "grpc";
pub const PORT_NAME_METRICS: &str = "metrics";

// Labels (reference §2.3).
pub const LABEL_SELDON_ID: &str = "seldon-deployment-id";
pub const LABEL_APP: &str = "app";
pub const LABEL_SELDON_APP: &str = "seldon-app";
/// Prefix of `seldon-app-svc-<container>`, the selector of a node's Service.
pub const LABEL_SELDON_APP_SVC_PREFIX: &str = "seldon-app-svc-";
pub const LABEL_VERSION: &str = "version";
pub const LABEL_FLUENTD: &str = "fluentd";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// [compat] Seldon's value, kept so existing selectors and dashboards still match.
pub const MANAGED_BY: &str = "seldon-core";
/// Set on the Deployment whose pods run the graph (Seldon: the executor's pods).
pub const LABEL_CONTAINS_SVCORCH: &str = "seldon-deployment-contains-svcorch";
pub const LABEL_MODEL: &str = "seldon.io/model";
pub const LABEL_ROUTER: &str = "seldon.io/router";
pub const LABEL_COMBINER: &str = "seldon.io/combiner";
pub const LABEL_TRANSFORMER: &str = "seldon.io/transformer";
pub const LABEL_OUTPUT_TRANSFORMER: &str = "seldon.io/output-transformer";
pub const LABEL_SHADOW: &str = "seldon.io/shadow";

// Annotations (reference §1.5).
pub const ANNOTATION_REST_TIMEOUT: &str = "seldon.io/rest-timeout";
pub const ANNOTATION_GRPC_TIMEOUT: &str = "seldon.io/grpc-timeout";
pub const ANNOTATION_SVC_NAME: &str = "seldon.io/svc-name";
pub const ANNOTATION_NO_ENGINE: &str = "seldon.io/no-engine";
pub const ANNOTATION_HEADLESS_SVC: &str = "seldon.io/headless-svc";
pub const ANNOTATION_ISTIO_GATEWAY: &str = "seldon.io/istio-gateway";
pub const ANNOTATION_ISTIO_HOST: &str = "seldon.io/istio-host";
pub const ANNOTATION_ISTIO_RETRIES: &str = "seldon.io/istio-retries";
pub const ANNOTATION_ISTIO_RETRIES_TIMEOUT: &str = "seldon.io/istio-retries-timeout";
pub const ANNOTATION_AMBASSADOR_SERVICE_NAME: &str = "seldon.io/ambassador-service-name";
pub const ANNOTATION_AMBASSADOR_HEADER: &str = "seldon.io/ambassador-header";
pub const ANNOTATION_AMBASSADOR_ID: &str = "seldon.io/ambassador-id";
pub const ANNOTATION_AMBASSADOR_RETRIES: &str = "seldon.io/ambassador-retries";
/// seldon-mesh's own: the graph's request body limit in bytes (default 1 MiB).
pub const ANNOTATION_BODY_LIMIT: &str = "mesh.seldon.io/body-limit-bytes";
/// seldon-mesh's own: where the graph filter calls nodes of its own pod, `service` (Istio's
/// outbound cluster of the node's Service) or `localhost` (a static 127.0.0.1 cluster).
pub const ANNOTATION_NODE_CALLS: &str = "mesh.seldon.io/node-calls";

/// Seldon's default REST timeout for Ambassador mappings (ms).
pub const DEFAULT_REST_TIMEOUT_MS: u64 = 3000;

/// Kubernetes object names: Seldon's `seldon-<md5hex>` when longer than 63 characters.
pub fn k8s_name(raw: &str) -> String {
    if raw.len() > 63 {
        let digest = Md5::digest(raw.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("seldon-{hex}")
    } else {
        raw.to_string()
    }
}

/// The predictor's Service (entry point): `<sdep>-<predictor>`, or `seldon.io/svc-name`.
pub fn predictor_service(sdep: &str, predictor: &str, svc_name_annotation: Option<&str>) -> String {
    match svc_name_annotation {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => k8s_name(&format!("{sdep}-{predictor}")),
    }
}

/// A node container's Service: `<sdep>-<predictor>-<container>`.
pub fn container_service(sdep: &str, predictor: &str, container: &str) -> String {
    k8s_name(&format!("{sdep}-{predictor}-{container}"))
}

/// A component's Deployment: `<sdep>-<predictor>-<index>-<containers joined by '-'>`, or
/// `<sdep>-<predictor>-<index>-<componentSpec.metadata.name>` when that is set.
pub fn deployment(
    sdep: &str,
    predictor: &str,
    index: usize,
    metadata_name: Option<&str>,
    containers: &[&str],
) -> String {
    let suffix = match metadata_name {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => containers.join("-"),
    };
    let raw = if suffix.is_empty() {
        format!("{sdep}-{predictor}-{index}")
    } else {
        format!("{sdep}-{predictor}-{index}-{suffix}")
    };
    k8s_name(&raw)
}

/// In-cluster DNS name of a Service.
pub fn fqdn(service: &str, namespace: &str) -> String {
    format!("{service}.{namespace}.svc.cluster.local")
}

/// Istio's Envoy cluster name for outbound calls to `service:port`.
pub fn istio_outbound_cluster(service: &str, namespace: &str, port: i32) -> String {
    format!("outbound|{port}||{}", fqdn(service, namespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_become_seldon_md5() {
        let long = "a".repeat(64);
        let name = k8s_name(&long);
        assert!(
            name.starts_with("seldon-") && name.len() == 7 + 32,
            "{name}"
        );
        assert_eq!(k8s_name("iris-default"), "iris-default");
        // md5("abc") is well known
        assert_eq!(k8s_name(&format!("abc{}", "")), "abc");
        let digest = Md5::digest(b"abc");
        assert_eq!(format!("{digest:x}"), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn seldon_names() {
        assert_eq!(
            deployment("iris", "default", 0, None, &["classifier"]),
            "iris-default-0-classifier"
        );
        assert_eq!(
            deployment("iris", "default", 1, Some("big"), &["a", "b"]),
            "iris-default-1-big"
        );
        assert_eq!(predictor_service("iris", "default", None), "iris-default");
        assert_eq!(
            predictor_service("iris", "default", Some("custom")),
            "custom"
        );
        assert_eq!(
            container_service("iris", "default", "classifier"),
            "iris-default-classifier"
        );
        assert_eq!(
            istio_outbound_cluster("iris-default-classifier", "models", 9000),
            "outbound|9000||iris-default-classifier.models.svc.cluster.local"
        );
    }
}
