//! The Istio VirtualService (`networking.istio.io/v1`), one per SeldonDeployment (Seldon §2.6):
//! `/seldon/<ns>/<sdep>/` rewritten to `/`, weights from `traffic`, the shadow predictor as
//! `mirror` (+ `mirrorPercentage` when its traffic is > 0), retries from
//! `seldon.io/istio-retries*`, and no route `timeout` (see [`retries`]). A gRPC route matched on the `seldon`/`namespace` headers
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
    retries(cx, &mut rest);
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
        retries(cx, &mut grpc);
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

/// Retries (`seldon.io/istio-retries*`, Seldon's HTTPRetry).
///
/// No route `timeout`, as Seldon's own VirtualService (reference §2.6) and local mode's
/// gateway: `seldon.io/rest-timeout` (and `grpc-timeout`) is the timeout of each node call,
/// which the filter applies and answers with a JSON 504 naming the node and the puid. A route
/// timeout of the same value cut a graph of two 8 s nodes with rest-timeout 10000 at 10 s,
/// with Envoy's plain-text 504 naming no node (issue 11). Without `timeout` Istio writes
/// `timeout: 0s` on the gateway's route (`setTimeout` in `route.go`), so neither it nor
/// Envoy's 15 s default cuts the graph; the node timeouts bound it.
fn retries(cx: &Context, route: &mut Value) {
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
}
