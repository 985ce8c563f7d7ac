//! The filter's delivery: an Istio `WasmPlugin` (`extensions.istio.io/v1alpha1`) per predictor.
//!
//! - `selector`: the predictor's graph pods (`seldon-app: <predictor Service>`), the pods behind
//!   the predictor Service.
//! - `match`: inbound (`SERVER`) traffic on port 8000 only, so node calls (9000+) and outbound
//!   traffic never run the graph.
//! - `phase: UNSPECIFIED_PHASE` ("near the router", after Istio's authn, authz and stats
//!   filters): RequestAuthentication/AuthorizationPolicy apply before the graph runs, and the
//!   responses the filter writes pass back through Istio's stats filter.
//! - `failStrategy: FAIL_CLOSE`: without its graph, port 8000 has nothing to serve.
//! - `pluginConfig`: the predictor's `FilterConfig` (see `filter_config`).

use serde_json::json;

use crate::filter_config::filter_config;
use crate::{Context, CustomObject, Predictor, RenderOptions};
use seldon_crd::names;

pub fn render(cx: &Context, p: &Predictor<'_>, opts: &RenderOptions) -> CustomObject {
    let config = filter_config(cx, p, opts);
    let mut spec = json!({
        "selector": {"matchLabels": {names::LABEL_SELDON_APP: p.service}},
        "url": opts.filter_url,
        "imagePullPolicy": "IfNotPresent",
        "phase": "UNSPECIFIED_PHASE",
        "failStrategy": "FAIL_CLOSE",
        "type": "HTTP",
        "match": [{"mode": "SERVER", "ports": [{"number": names::PREDICTOR_HTTP_PORT}]}],
        "pluginConfig": serde_json::to_value(&config).unwrap_or_default(),
    });
    if let Some(sha) = &opts.filter_sha256 {
        spec["sha256"] = json!(sha);
    }
    CustomObject {
        api_version: "extensions.istio.io/v1alpha1".to_string(),
        kind: "WasmPlugin".to_string(),
        metadata: cx.meta(&p.service, cx.base_labels()),
        spec,
    }
}
