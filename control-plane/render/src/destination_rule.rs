//! One Istio DestinationRule (`networking.istio.io/v1`) per predictor, named like the predictor
//! Service (Seldon §2.6): the subset `<predictor>` selects its pods by the `version` label; the
//! traffic policy is Seldon's idle timeout, or its TLS mode when configured.

use seldon_crd::names;
use serde_json::json;

use crate::{Context, CustomObject, Predictor, RenderOptions};

pub fn render(cx: &Context, p: &Predictor<'_>, opts: &RenderOptions) -> CustomObject {
    rule(cx, p, &p.service, opts)
}

/// The DestinationRule of Service `service` (the predictor's, or its explainer's): subset
/// `<predictor>` by the predictor's `version` label.
pub fn rule(cx: &Context, p: &Predictor<'_>, service: &str, opts: &RenderOptions) -> CustomObject {
    let version = p
        .spec
        .labels
        .get(names::LABEL_VERSION)
        .cloned()
        .unwrap_or_else(|| p.spec.name.clone());
    let policy = match &opts.istio_tls_mode {
        Some(mode) => json!({"tls": {"mode": mode}}),
        None => json!({"connectionPool": {"http": {"idleTimeout": "60s"}}}),
    };
    CustomObject {
        api_version: "networking.istio.io/v1".to_string(),
        kind: "DestinationRule".to_string(),
        metadata: cx.meta(service, cx.base_labels()),
        spec: json!({
            "host": names::fqdn(service, &cx.namespace),
            "subsets": [{"name": p.spec.name, "labels": {names::LABEL_VERSION: version}}],
            "trafficPolicy": policy,
        }),
    }
}
