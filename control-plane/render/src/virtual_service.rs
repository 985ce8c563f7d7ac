//! The Istio VirtualService (`networking.istio.io/v1`), one per SeldonDeployment (Seldon §2.6):
//! `/seldon/<ns>/<sdep>/` rewritten to `/`, weights from `traffic`, the shadow predictor as
//! `mirror` (+ `mirrorPercentage` when its traffic is > 0), retries from
//! `seldon.io/istio-retries*`, a route timeout from `seldon.io/rest-timeout` (the whole-request
//! timeout Seldon gave Ambassador). A gRPC route matched on the `seldon`/`namespace` headers
//! (Seldon's) is rendered only with `RenderOptions::grpc_entry`: nothing serves gRPC at the
//! entry until the graph filter speaks it, so by default the ingress routes REST only.

use seldon_crd::names;
use serde_json::{Value, json};

use crate::{Context, CustomObject, Predictor, RenderOptions};

/// Seldon's gRPC path regex.
pub const GRPC_URI_REGEX: &str = ".*tensorflow.*|.*seldon.protos.*|.*inference.*";

pub fn render(cx: &Context, opts: &RenderOptions) -> CustomObject {
    let predictors: Vec<Predictor<'_>> = cx
        .sdep
        .spec
        .predictors
        .iter()
        .enumerate()
        .map(|(i, s)| Predictor::new(cx, i, s))
        .collect();
    let live: Vec<&Predictor<'_>> = predictors.iter().filter(|p| !p.spec.is_shadow()).collect();
    let shadow = predictors.iter().find(|p| p.spec.is_shadow());

    let destination = |p: &Predictor<'_>, port: i32| json!({"host": p.fqdn(cx), "subset": p.spec.name, "port": {"number": port}});
    let routes = |port: i32| -> Value {
        let single = live.len() == 1;
        Value::Array(
            live.iter()
                .map(|p| {
                    let weight = if single {
                        100
                    } else {
                        p.spec.traffic.unwrap_or(0)
                    };
                    json!({"destination": destination(p, port), "weight": weight})
                })
                .collect(),
        )
    };

    let mut rest = json!({
        "name": "rest",
        "match": [{"uri": {"prefix": format!("/seldon/{}/{}/", cx.namespace, cx.name)}}],
        "rewrite": {"uri": "/"},
        "route": routes(names::PREDICTOR_HTTP_PORT),
    });
    retries_and_timeout(cx, &mut rest, names::ANNOTATION_REST_TIMEOUT);
    let mut http = vec![rest];
    if opts.grpc_entry {
        let mut grpc = json!({
            "name": "grpc",
            "match": [{
                "uri": {"regex": GRPC_URI_REGEX},
                "headers": {"seldon": {"exact": cx.name}, "namespace": {"exact": cx.namespace}},
            }],
            "route": routes(names::PREDICTOR_GRPC_PORT),
        });
        retries_and_timeout(cx, &mut grpc, names::ANNOTATION_GRPC_TIMEOUT);
        http.push(grpc);
    }
    for (route, port) in http
        .iter_mut()
        .zip([names::PREDICTOR_HTTP_PORT, names::PREDICTOR_GRPC_PORT])
    {
        if let Some(s) = shadow {
            route["mirror"] = destination(s, port);
            if let Some(t) = s.spec.traffic.filter(|t| *t > 0) {
                route["mirrorPercentage"] = json!({"value": f64::from(t)});
            }
        }
    }

    let hosts: Vec<String> = cx
        .annotation(names::ANNOTATION_ISTIO_HOST)
        .map(|h| {
            h.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_else(|| vec!["*".to_string()]);
    let gateway = cx
        .annotation(names::ANNOTATION_ISTIO_GATEWAY)
        .unwrap_or(&opts.istio_gateway);
    CustomObject {
        api_version: "networking.istio.io/v1".to_string(),
        kind: "VirtualService".to_string(),
        metadata: cx.meta(&names::k8s_name(&cx.name), cx.base_labels()),
        spec: json!({"hosts": hosts, "gateways": [gateway], "http": http}),
    }
}

/// Retries (`seldon.io/istio-retries*`) and the route timeout (`timeout_key`, milliseconds).
fn retries_and_timeout(cx: &Context, route: &mut Value, timeout_key: &str) {
    if let Some(attempts) = cx
        .annotation(names::ANNOTATION_ISTIO_RETRIES)
        .and_then(|v| v.trim().parse::<i32>().ok())
    {
        let per_try = cx
            .annotation(names::ANNOTATION_ISTIO_RETRIES_TIMEOUT)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(1);
        route["retries"] = json!({
            "attempts": attempts,
            "perTryTimeout": format!("{per_try}s"),
            "retryOn": "gateway-error,connect-failure,refused-stream",
        });
    }
    if let Some(ms) = cx
        .annotation(timeout_key)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|m| *m > 0)
    {
        route["timeout"] = json!(duration(ms));
    }
}

/// Milliseconds as an Istio duration (`1.5s`).
pub fn duration(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{}ms", ms)
    }
}
