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
pub const LABEL_EXPLAINER: &str = "seldon.io/explainer";

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

/// Seldon's `hash` (v1 `seldondeployment_types.go`): `seldon-` + the md5 hex digest of `raw`
/// (39 characters, always a DNS-1035 label and a valid label value).
pub fn hashed(raw: &str) -> String {
    let digest = Md5::digest(raw.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("seldon-{hex}")
}

/// A name derived from a SeldonDeployment (Deployment, Service, DestinationRule, HPA, PDB,
/// Mapping, EnvoyFilter…): `raw` as Seldon v1 builds it when it is a DNS-1035 label, else
/// [`hashed`]. Seldon hashes past 63 characters (`GetPredictorKey`, `GetDeploymentName`,
/// `GetContainerServiceName`, `GetServiceOrchestratorName`); we also hash a `raw` holding a
/// '.' (from a dotted SeldonDeployment name) or starting with a digit, which Seldon passes on
/// and the API server refuses for a Service.
pub fn k8s_name(raw: &str) -> String {
    if is_dns1035_label(raw) {
        raw.to_string()
    } else {
        hashed(raw)
    }
}

/// The SeldonDeployment's id: the `seldon-deployment-id` label value on every object (and so
/// every selector and the operator's prune selector) and the VirtualService's name. Seldon's
/// `GetSeldonDeploymentName`: the name itself up to 63 characters (a DNS subdomain that short
/// is a valid label value), else [`hashed`].
pub fn sdep_id(sdep: &str) -> String {
    if sdep.len() > 63 {
        hashed(sdep)
    } else {
        sdep.to_string()
    }
}

/// The label key selecting a node container's pods for its Service: Seldon's
/// `seldon-app-svc-<container>`. A label key's name part holds at most 63 characters, so a
/// container name over 48 characters (which Seldon passes on, and the API server refuses)
/// becomes `seldon-app-svc-<md5hex(container)>` here.
pub fn container_svc_label(container: &str) -> String {
    let key = format!("{LABEL_SELDON_APP_SVC_PREFIX}{container}");
    if key.len() > 63 {
        let digest = Md5::digest(container.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("{LABEL_SELDON_APP_SVC_PREFIX}{hex}")
    } else {
        key
    }
}

/// The name of something Seldon derives from a container name plus a suffix (the model
/// initializer `<container>-model-initializer`, its volume `<container>-provision-location`):
/// Seldon cuts it to 63 characters (`model_initializer_injector.go`). We also drop a trailing
/// '-' the cut may leave, and hash the name when the cut would make it the container's own
/// name (a container name of 62–63 characters), which the API server would refuse as a
/// duplicate.
pub fn container_suffixed(container: &str, suffix: &str) -> String {
    let raw = format!("{container}-{suffix}");
    if raw.len() <= 63 {
        return raw;
    }
    let cut = raw[..63].trim_end_matches('-');
    if cut == container {
        hashed(&raw)
    } else {
        cut.to_string()
    }
}

/// A DNS-1035 label (what a Service name must be): at most 63 characters of `[a-z0-9-]`,
/// starting with a letter and ending with a letter or digit.
pub fn is_dns1035_label(s: &str) -> bool {
    let b = s.as_bytes();
    is_dns1123_label(s) && b[0].is_ascii_lowercase()
}

/// A DNS-1123 label: at most 63 characters of `[a-z0-9-]`, alphanumeric at both ends.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// A DNS-1123 subdomain (what a custom resource's name must be): at most 253 characters,
/// parts of `[a-z0-9-]` alphanumeric at both ends joined by '.' (Kubernetes'
/// `IsDNS1123Subdomain` does not cap a part at 63).
pub fn is_dns1123_subdomain(s: &str) -> bool {
    let part = |p: &str| {
        let b = p.as_bytes();
        !b.is_empty()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
    };
    s.len() <= 253 && s.split('.').all(part)
}

/// A Kubernetes label value: empty, or at most 63 characters of `[A-Za-z0-9._-]`,
/// alphanumeric at both ends.
pub fn is_label_value(s: &str) -> bool {
    let b = s.as_bytes();
    b.is_empty()
        || (b.len() <= 63
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric())
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

/// A predictor's explainer Deployment and Service (Seldon's `GetExplainerDeploymentName`):
/// `<sdep>-<predictor>-explainer`, hashed like every derived name.
pub fn explainer(sdep: &str, predictor: &str) -> String {
    k8s_name(&format!("{sdep}-{predictor}-explainer"))
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
    fn seldon_hash_rule_past_63_and_for_non_service_names() {
        // Seldon's own examples: 63 characters stay, 64 are hashed.
        let at_limit = format!("a{}", "b".repeat(62));
        assert_eq!(k8s_name(&at_limit), at_limit);
        let over = format!("a{}", "b".repeat(63));
        assert_eq!(k8s_name(&over), hashed(&over));
        assert_eq!(
            hashed("abc"),
            "seldon-900150983cd24fb0d6963f7d28e17f72",
            "md5 hex of the raw name"
        );
        // ours: a dot or a leading digit would be refused as a Service name
        assert_eq!(k8s_name("my.model-default"), hashed("my.model-default"));
        assert_eq!(k8s_name("1model-default"), hashed("1model-default"));
        // the id keeps Seldon's rule: the name up to 63, dots and all
        assert_eq!(sdep_id("my.model"), "my.model");
        assert_eq!(sdep_id(&over), hashed(&over));
        assert!(is_label_value(&sdep_id(&"x".repeat(253))));
    }

    #[test]
    fn container_derived_names_stay_valid_and_distinct() {
        assert_eq!(
            container_svc_label("classifier"),
            "seldon-app-svc-classifier"
        );
        let long = "c".repeat(63);
        let key = container_svc_label(&long);
        assert!(
            key.len() <= 63 && key.starts_with("seldon-app-svc-"),
            "{key}"
        );
        assert_eq!(
            container_suffixed("m", "model-initializer"),
            "m-model-initializer"
        );
        // Seldon cuts to 63; a cut that ends in '-' loses it
        let c50 = "d".repeat(50);
        let cut = container_suffixed(&c50, "model-initializer");
        assert_eq!(cut, format!("{c50}-model-initia"));
        let c45 = "e".repeat(45);
        assert_eq!(
            container_suffixed(&c45, "provision-location"),
            format!("{c45}-provision-locatio")
        );
        let c62 = "f".repeat(62);
        assert_eq!(
            container_suffixed(&c62, "model-initializer"),
            hashed(&format!("{c62}-model-initializer")),
            "a cut equal to the container's name would collide"
        );
        assert!(is_dns1123_label(&container_suffixed(
            &long,
            "provision-location"
        )));
    }

    #[test]
    fn kubernetes_name_rules() {
        assert!(is_dns1123_subdomain("a.b-c"));
        assert!(is_dns1123_subdomain(&"a".repeat(253)));
        assert!(!is_dns1123_subdomain(&"a".repeat(254)));
        assert!(!is_dns1123_subdomain("a..b"));
        assert!(!is_dns1123_subdomain("A"));
        assert!(!is_dns1123_subdomain("-a"));
        assert!(!is_dns1123_label("a.b"));
        assert!(!is_dns1035_label("1a"));
        assert!(is_label_value("") && is_label_value("A_b.c-9"));
        assert!(!is_label_value("-a") && !is_label_value(&"a".repeat(64)));
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
