//! The Istio VirtualService (`networking.istio.io/v1`), one per SeldonDeployment (Seldon §2.6):
//! `/seldon/<ns>/<sdep>/` rewritten to `/`, weights from `traffic`, the shadow predictor as
//! `mirror` (+ `mirrorPercentage` when its traffic is > 0), retries from
//! `seldon.io/istio-retries*`, and a route `timeout` derived from the graphs ([`route_timeout_ms`]). A gRPC route matched on the `seldon`/`namespace` headers
//! (Seldon's) is rendered only with `RenderOptions::grpc_entry`: nothing serves gRPC at the
//! entry until the graph filter speaks it, so by default the ingress routes REST only.

use seldon_crd::names;
use serde_json::{Value, json};

use crate::{Context, CustomObject, Predictor, RenderOptions, filter_config};

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
    let timeout = duration(route_timeout_ms(cx, opts));
    rest["timeout"] = json!(timeout);
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
        grpc["timeout"] = json!(timeout);
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
        // Seldon names it by the id (`seldonId`)
        metadata: cx.meta(&cx.id, cx.base_labels()),
        spec: json!({"hosts": hosts, "gateways": [gateway], "http": http}),
    }
}

/// The gateway route's timeout in milliseconds: the slowest predictor's graph deadline (the
/// sum of node timeouts along its longest chain of calls, `seldon_executor::graph_deadline_ms`),
/// never less than `seldon.io/rest-timeout` (Seldon also applied it to the whole request at the
/// ingress), plus `seldon_executor::GATEWAY_GRACE_MS` so the filter's JSON 504 naming the late
/// node always comes first. Local mode's gateway takes the same value. Without a `timeout`,
/// the route would depend on what istiod writes for it (issue 11: no default may decide a
/// user's timeout); with one of `rest-timeout`, a graph of two 8 s nodes with
/// `rest-timeout: 10000` was cut at 10 s with Envoy's plain-text 504.
pub fn route_timeout_ms(cx: &Context, opts: &RenderOptions) -> u64 {
    let predictors: Vec<Predictor<'_>> = cx
        .sdep
        .spec
        .predictors
        .iter()
        .enumerate()
        .map(|(i, s)| Predictor::new(cx, i, s))
        .collect();
    // `render` refuses a SeldonDeployment whose filter configs do not compile (`check`).
    let plans: Vec<seldon_graph::Plan> = predictors
        .iter()
        .filter_map(|p| seldon_graph::compile(&filter_config(cx, p, opts)).ok())
        .collect();
    let whole_request = predictors
        .iter()
        .filter_map(|p| p.timeout_ms(cx, names::ANNOTATION_REST_TIMEOUT))
        .filter(|t| *t > 0)
        .max();
    seldon_executor::route_timeout_ms(&plans, whole_request)
}

/// Milliseconds as a protobuf JSON duration, the form Istio's `timeout` takes (`21s`, `1.500s`).
fn duration(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{}.{:03}s", ms / 1000, ms % 1000)
    }
}

/// Retries (`seldon.io/istio-retries*`, Seldon's HTTPRetry), as Seldon rendered them: a user
/// who sets them bounds each attempt of the whole graph with `perTryTimeout`.
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
