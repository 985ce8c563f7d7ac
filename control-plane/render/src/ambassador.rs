//! Ambassador/Emissary `Mapping`s (`getambassador.io/v3alpha1`) per predictor when the ingress
//! is Ambassador (Seldon §2.7, its v2 mappings moved to v3alpha1): a REST mapping on
//! `/seldon/<ns>/<sdep>/` rewritten to `/`; `weight` = traffic for predictors after the first,
//! `shadow: true` for the shadow; timeouts and retries from `seldon.io/*` annotations. Seldon's
//! gRPC mapping (matched on the `seldon` and `namespace` headers, to port 5001) only with
//! `RenderOptions::grpc_entry`: nothing serves gRPC at the entry yet.

use seldon_crd::names;
use serde_json::{Value, json};

use crate::{Context, CustomObject, Predictor, RenderOptions};

/// Seldon's gRPC prefix regex.
pub const GRPC_PREFIX: &str = "/(seldon.protos.*|tensorflow.serving.*|inference.*)/.*";

pub fn render(cx: &Context, p: &Predictor<'_>, opts: &RenderOptions) -> Vec<CustomObject> {
    let external = cx
        .annotation(names::ANNOTATION_AMBASSADOR_SERVICE_NAME)
        .unwrap_or(&cx.name)
        .to_string();
    let rest_timeout = p
        .timeout_ms(cx, names::ANNOTATION_REST_TIMEOUT)
        .unwrap_or(names::DEFAULT_REST_TIMEOUT_MS);
    let grpc_timeout = p
        .timeout_ms(cx, names::ANNOTATION_GRPC_TIMEOUT)
        .unwrap_or(names::DEFAULT_REST_TIMEOUT_MS);
    let first_live = cx.sdep.spec.predictors.iter().position(|s| !s.is_shadow()) == Some(p.index);
    let svc = format!("{}.{}", p.service, cx.namespace);

    let mut rest = json!({
        "hostname": "*",
        "prefix": format!("/seldon/{}/{}/", cx.namespace, external),
        "rewrite": "/",
        "service": format!("{svc}:{}", names::PREDICTOR_HTTP_PORT),
        "timeout_ms": rest_timeout,
        "cluster_tag": "seldon_http",
    });
    if rest_timeout > 300_000 {
        rest["idle_timeout_ms"] = json!(rest_timeout);
    }
    let mut grpc = json!({
        "hostname": "*",
        "prefix": GRPC_PREFIX,
        "prefix_regex": true,
        "rewrite": "",
        "grpc": true,
        "headers": {"seldon": external, "namespace": cx.namespace},
        "service": format!("{svc}:{}", names::PREDICTOR_GRPC_PORT),
        "timeout_ms": grpc_timeout,
    });
    for m in [&mut rest, &mut grpc] {
        common(cx, p, first_live, m);
    }
    let name = |suffix: &str| {
        names::k8s_name(&format!(
            "seldon-{}-{}-{}-{suffix}",
            cx.namespace, cx.name, p.spec.name
        ))
    };
    let mut out = vec![mapping(cx, &name("rest"), rest)];
    if opts.grpc_entry {
        out.push(mapping(cx, &name("grpc"), grpc));
    }
    out
}

fn common(cx: &Context, p: &Predictor<'_>, first_live: bool, m: &mut Value) {
    if p.spec.is_shadow() {
        m["shadow"] = json!(true);
        if let Some(t) = p.spec.traffic.filter(|t| *t > 0) {
            m["weight"] = json!(t);
        }
    } else if !first_live && let Some(t) = p.spec.traffic {
        m["weight"] = json!(t);
    }
    if let Some(id) = cx.annotation(names::ANNOTATION_AMBASSADOR_ID) {
        m["ambassador_id"] = json!([id]);
    }
    if let Some(n) = cx
        .annotation(names::ANNOTATION_AMBASSADOR_RETRIES)
        .and_then(|v| v.trim().parse::<i32>().ok())
    {
        m["retry_policy"] = json!({"retry_on": "gateway-error", "num_retries": n});
    }
    if let Some((k, v)) = cx
        .annotation(names::ANNOTATION_AMBASSADOR_HEADER)
        .and_then(|h| h.split_once(':'))
    {
        let headers = m.get("headers").cloned().unwrap_or_else(|| json!({}));
        let mut headers = headers;
        headers[k.trim()] = json!(v.trim());
        m["headers"] = headers;
    }
}

fn mapping(cx: &Context, name: &str, spec: Value) -> CustomObject {
    CustomObject {
        api_version: "getambassador.io/v3alpha1".to_string(),
        kind: "Mapping".to_string(),
        metadata: cx.meta(name, cx.base_labels()),
        spec,
    }
}
