//! The header trap's fix in the cluster (DESIGN.md "The header trap"): an Istio `EnvoyFilter`
//! (`networking.istio.io/v1alpha3`) per predictor inserting `envoy.filters.http.buffer` just
//! before the router on the inbound port-8000 chain of the predictor's pods — after the graph
//! filter, which the WasmPlugin places near the router.
//!
//! Why the buffer filter and not `allow_on_headers_stop_iteration`: WasmPlugin does not expose
//! that field, and its filter config arrives over ECDS, so an EnvoyFilter would have to patch
//! the `EXTENSION_CONFIG` that istiod generates (fragile across Istio versions). The buffer
//! filter is a plain HTTP filter patch: it holds the request headers until the whole body has
//! passed, which never happens for a request the graph filter answers itself, so the router
//! never opens an upstream request for an orchestrated call. `max_request_bytes` is the graph's
//! body limit (larger bodies get 413, as the filter would answer).
//!
//! `priority` ([`PRIORITY`]): `INSERT_BEFORE` is a relative patch, and istiod applies
//! EnvoyFilters in priority order (then by creation time). Without one, `istioctl analyze`
//! warns IST0151 (the patch may not be applied as intended when other filters patch the same
//! chain). A positive priority applies this patch after every default-priority (0)
//! EnvoyFilter, so whatever they insert before the router, the buffer ends up directly in
//! front of it.

use serde_json::json;

use crate::filter_config::filter_config;
use crate::{Context, CustomObject, Predictor, RenderOptions};
use seldon_crd::names;

/// Name of the inserted filter in the Envoy chain.
pub const BUFFER_FILTER_NAME: &str = "seldon-mesh.graph-buffer";

/// The EnvoyFilter's `priority`: after default-priority (0) patches.
pub const PRIORITY: i32 = 10;

pub fn render(cx: &Context, p: &Predictor<'_>, opts: &RenderOptions) -> CustomObject {
    let limit = filter_config(cx, p, opts).body_limit_bytes;
    CustomObject {
        api_version: "networking.istio.io/v1alpha3".to_string(),
        kind: "EnvoyFilter".to_string(),
        metadata: cx.meta(
            &names::k8s_name(&format!("{}-graph-buffer", p.service)),
            cx.base_labels(),
        ),
        spec: json!({
            "workloadSelector": {"labels": {names::LABEL_SELDON_APP: p.service}},
            "priority": PRIORITY,
            "configPatches": [{
                "applyTo": "HTTP_FILTER",
                "match": {
                    "context": "SIDECAR_INBOUND",
                    "listener": {
                        "portNumber": names::PREDICTOR_HTTP_PORT,
                        "filterChain": {"filter": {
                            "name": "envoy.filters.network.http_connection_manager",
                            "subFilter": {"name": "envoy.filters.http.router"},
                        }},
                    },
                },
                "patch": {
                    "operation": "INSERT_BEFORE",
                    "value": {
                        "name": BUFFER_FILTER_NAME,
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
                            "max_request_bytes": limit,
                        },
                    },
                },
            }],
        }),
    }
}
