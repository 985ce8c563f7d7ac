//! Pure rendering of an [`EnvoyConfig`] into an Envoy v3 bootstrap (YAML).
//!
//! Built as a `serde_json::Value` and printed by serde_yaml: keys come out sorted, so the
//! output is stable and diffs of the golden file stay small.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::{Value, json};

use crate::EnvoyError;
use crate::config::{
    Cluster, EnvoyConfig, GRAPH_FALLBACK_BODY, GRAPH_FALLBACK_STATUS, GatewayRoute, Listener,
    ListenerKind,
};
use crate::local_reply::{PUID_FROM_REQUEST_ID, PUID_HEADER, Scope, local_reply_config};

const HCM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const BUFFER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer";
const ROUTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
const STRING_VALUE_TYPE: &str = "type.googleapis.com/google.protobuf.StringValue";
const HTTP_PROTOCOL_OPTIONS_TYPE: &str =
    "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// The wasm runtime every graph listener uses (compiled into the PyPI Envoy build).
pub const WASM_RUNTIME: &str = "envoy.wasm.runtime.v8";

/// Label names the graph filter encodes into its metric names (`seldon_filter::metrics::TAGS`;
/// a test in `tests/e2e` keeps the two lists equal).
pub const FILTER_METRIC_TAGS: &[&str] = &[
    "deployment_name",
    "predictor_name",
    "model_name",
    "service",
    "method",
    "code",
];

/// Checks `config` and renders it as an Envoy bootstrap in YAML.
pub fn render(config: &EnvoyConfig) -> Result<String, EnvoyError> {
    Ok(serde_yaml::to_string(&bootstrap(config)?)?)
}

/// Checks `config` and renders it as an Envoy bootstrap (JSON value).
pub fn bootstrap(config: &EnvoyConfig) -> Result<Value, EnvoyError> {
    let Resources {
        listeners,
        clusters,
    } = resources(config)?;
    Ok(json!({
        "admin": { "address": socket_address("127.0.0.1", config.admin_port) },
        "stats_config": stats_config(),
        "static_resources": { "listeners": listeners, "clusters": clusters },
    }))
}

/// The listeners and clusters of a config as Envoy v3 JSON (`envoy.config.listener.v3.Listener`,
/// `envoy.config.cluster.v3.Cluster`): the one definition of each, which the static
/// bootstrap holds and local mode's xDS server sends as protobuf.
#[derive(Debug, Clone, PartialEq)]
pub struct Resources {
    pub listeners: Vec<Value>,
    pub clusters: Vec<Value>,
}

/// Checks `config` and renders its listeners and clusters.
pub fn resources(config: &EnvoyConfig) -> Result<Resources, EnvoyError> {
    config.check()?;
    let limit = config.buffer_limit_bytes;
    let mut clusters: Vec<Value> = config.clusters.iter().map(|c| cluster(c, limit)).collect();
    clusters.extend(grpc_twins(config).iter().map(|c| cluster(c, limit)));
    Ok(Resources {
        listeners: config
            .listeners
            .iter()
            .map(|l| listener(config, l, limit))
            .collect(),
        clusters,
    })
}

/// Name of the bootstrap's cluster that reaches the xDS server.
pub const XDS_CLUSTER: &str = "xds";

/// An Envoy bootstrap with no listeners or clusters of its own: admin on `admin_port`, and
/// listeners and clusters from the ADS server on 127.0.0.1:`xds_port` (gRPC, HTTP/2).
/// Routes are inline in the listeners and so is the graph filter's config (no RDS, no ECDS).
pub fn xds_bootstrap(admin_port: u16, xds_port: u16) -> Value {
    let mut xds = Cluster::http1(XDS_CLUSTER, "127.0.0.1", xds_port);
    xds.http2 = true;
    let ads = json!({ "ads": {}, "resource_api_version": "V3" });
    json!({
        "node": { "id": "seldon-mesh-up", "cluster": "seldon-mesh" },
        "admin": { "address": socket_address("127.0.0.1", admin_port) },
        "stats_config": stats_config(),
        "static_resources": {
            "clusters": [cluster(&xds, crate::DEFAULT_BUFFER_LIMIT_BYTES)],
        },
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [{ "envoy_grpc": { "cluster_name": XDS_CLUSTER } }],
            },
            "cds_config": ads,
            "lds_config": ads,
        },
    })
}

/// The graph filter encodes metric labels as Istio does (`key=.=value;.;`); these turn them
/// into tags, so /stats/prometheus shows real labels.
fn stats_config() -> Value {
    json!({
        "stats_tags": FILTER_METRIC_TAGS.iter().map(|tag| json!({
            "tag_name": tag,
            "regex": format!("({tag}=\\.=(.*?);\\.;)"),
        })).collect::<Vec<_>>(),
    })
}

fn socket_address(address: &str, port: u16) -> Value {
    json!({ "socket_address": { "address": address, "port_value": port } })
}

/// Envoy's `google.protobuf.Duration` in JSON/YAML form, e.g. `"1.500s"`.
fn duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}.{:03}s", d.as_secs(), d.subsec_millis())
    }
}

fn listener(config: &EnvoyConfig, l: &Listener, limit: u32) -> Value {
    let (routes, http_filters) = match &l.kind {
        ListenerKind::Graph {
            wasm_path,
            plugin_config_json,
            vm_id,
        } => (
            graph_routes(config.allow_on_headers_stop_iteration),
            vec![
                json!({
                    "name": "envoy.filters.http.wasm",
                    "typed_config": {
                        "@type": WASM_TYPE,
                        "config": {
                            "name": l.name,
                            "vm_config": graph_vm_config(config, vm_id, wasm_path),
                            "configuration": { "@type": STRING_VALUE_TYPE, "value": plugin_config_json },
                            // `Pause` in on_http_request_headers keeps the router waiting
                            // while body callbacks still arrive (the header trap, fix 1).
                            "allow_on_headers_stop_iteration": config.allow_on_headers_stop_iteration,
                        },
                    },
                }),
                // Holds the headers until the whole body passed, which never happens for a
                // request the filter answers itself (the header trap, fix 2).
                json!({
                    "name": "envoy.filters.http.buffer",
                    "typed_config": { "@type": BUFFER_TYPE, "max_request_bytes": limit },
                }),
                router(),
            ],
        ),
        ListenerKind::Route {
            cluster,
            prefix_rewrite,
            timeout,
        } => {
            let mut action = json!({ "cluster": cluster });
            set_opt(
                &mut action,
                "prefix_rewrite",
                prefix_rewrite.as_ref().map(|s| json!(s)),
            );
            set_opt(&mut action, "timeout", timeout.map(|t| json!(duration(t))));
            (
                vec![json!({ "match": { "prefix": "/" }, "route": action })],
                vec![router()],
            )
        }
        ListenerKind::Gateway { routes } => {
            let mut all: Vec<Value> = grpc_gateway_routes(routes);
            all.extend(routes.iter().map(gateway_route));
            all.push(gateway_not_found());
            (all, vec![router()])
        }
    };
    let local_reply = match &l.kind {
        ListenerKind::Graph {
            plugin_config_json, ..
        } => Some(local_reply_config(
            Scope::Graph,
            filter_body_limit(plugin_config_json).unwrap_or(limit),
        )),
        ListenerKind::Gateway { .. } => Some(local_reply_config(Scope::Gateway, limit)),
        // the baseline without the filter stays plain Envoy
        ListenerKind::Route { .. } => None,
    };
    let mut hcm = json!({
        "@type": HCM_TYPE,
        "stat_prefix": l.name,
        "codec_type": "AUTO",
        // `/seldon/ns/a/../b/` must match b's prefix, not a's; `//` counts as `/`
        // (Istio's MERGE_SLASHES normalization).
        "normalize_path": true,
        "merge_slashes": true,
        "route_config": {
            "name": l.name,
            "virtual_hosts": [{ "name": l.name, "domains": ["*"], "routes": routes }],
        },
        "http_filters": http_filters,
    });
    set_opt(&mut hcm, "local_reply_config", local_reply);
    json!({
        "name": l.name,
        "address": socket_address("127.0.0.1", l.port),
        // Envoy sets SO_REUSEPORT by default, so two Envoys given the same port (two local
        // runs racing for a "free" port) would silently share it and answer each other's
        // requests with 404s. Without it the second bind fails with a clear error.
        "enable_reuse_port": false,
        "per_connection_buffer_limit_bytes": limit,
        "filter_chains": [{
            "filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": hcm,
            }],
        }],
    })
}

/// The name of the request header a tail call names its node's cluster in
/// (`seldon_executor::names::UPSTREAM_HEADER`).
pub const TAIL_CALL_HEADER: &str = "x-seldon-upstream";

/// The graph filter's environment variable that turns tail calls on
/// (`seldon_filter::glue::TAIL_CALLS_ENV`).
pub const TAIL_CALLS_ENV: &str = "SELDON_TAIL_CALLS";

/// A graph listener's routes. With `allow_on_headers_stop_iteration` the filter holds request
/// headers, so it can hand the graph's last node call (the tail call) to the router: a route
/// on the cluster the filter names in [`TAIL_CALL_HEADER`] (a client's header of that name
/// never gets there: the filter rewrites every header of a tail call and answers every other
/// request itself). Its timeout is off: the filter sets the node's own timeout on each tail
/// call (`x-envoy-upstream-rq-timeout-ms`), as on its callouts. Last, only reachable if the
/// graph filter let any other request through: a tripwire whose
/// `http.<name>.rq_direct_response` counter must stay 0.
fn graph_routes(tail_calls: bool) -> Vec<Value> {
    let tail = json!({
        "match": { "prefix": "/", "headers": [{ "name": TAIL_CALL_HEADER, "present_match": true }] },
        "route": { "cluster_header": TAIL_CALL_HEADER, "timeout": "0s" },
        "request_headers_to_remove": [TAIL_CALL_HEADER],
    });
    let tripwire = json!({
        "match": { "prefix": "/" },
        "direct_response": {
            "status": GRAPH_FALLBACK_STATUS,
            "body": { "inline_string": GRAPH_FALLBACK_BODY },
        },
    });
    if tail_calls {
        vec![tail, tripwire]
    } else {
        vec![tripwire]
    }
}

/// The graph filter's VM; tells the filter when it may make tail calls ([`graph_routes`]).
fn graph_vm_config(config: &EnvoyConfig, vm_id: &str, wasm_path: &std::path::Path) -> Value {
    let mut vm = json!({
        "vm_id": vm_id,
        "runtime": WASM_RUNTIME,
        "code": { "local": { "filename": wasm_path.display().to_string() } },
    });
    if config.allow_on_headers_stop_iteration {
        vm["environment_variables"] = json!({ "key_values": { TAIL_CALLS_ENV: "enabled" } });
    }
    vm
}

fn router() -> Value {
    json!({ "name": "envoy.filters.http.router", "typed_config": { "@type": ROUTER_TYPE } })
}

fn gateway_route(r: &GatewayRoute) -> Value {
    let mut action = match r.clusters.as_slice() {
        [only] => json!({ "cluster": only.cluster }),
        many => json!({
            "weighted_clusters": {
                "clusters": many
                    .iter()
                    .map(|wc| json!({ "name": wc.cluster, "weight": wc.weight }))
                    .collect::<Vec<_>>(),
            },
        }),
    };
    set_opt(
        &mut action,
        "prefix_rewrite",
        r.rewrite.as_ref().map(|s| json!(s)),
    );
    set_opt(
        &mut action,
        "timeout",
        r.timeout.map(|t| json!(duration(t))),
    );
    if let Some(m) = &r.mirror {
        // Per million, so Istio's fractional percentages (e.g. 12.5) survive.
        let per_million = (m.percent * 10_000.0).round() as u64;
        action["request_mirror_policies"] = json!([{
            "cluster": m.cluster,
            "runtime_fraction": {
                "default_value": { "numerator": per_million, "denominator": "MILLION" },
            },
        }]);
    }
    json!({
        "match": { "prefix": r.prefix },
        "route": action,
        // The puid of a request without one is Envoy's `x-request-id`, so that a local reply
        // of the gateway (its 504) carries the same id the filter uses and echoes.
        "request_headers_to_add": [{
            "header": { "key": PUID_HEADER, "value": PUID_FROM_REQUEST_ID },
            "append_action": "ADD_IF_ABSENT",
        }],
    })
}

/// Suffix of the HTTP/2 twin of a gateway route's cluster, for its gRPC route.
pub const GRPC_TWIN_SUFFIX: &str = "-grpc";

/// The deployment a gateway route serves, from its prefix `/seldon/<namespace>/<name>/`.
fn deployment_of(prefix: &str) -> Option<(&str, &str)> {
    let rest = prefix.strip_prefix("/seldon/")?.strip_suffix('/')?;
    let (namespace, name) = rest.split_once('/')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains('/')).then_some((namespace, name))
}

/// gRPC at the gateway, as Seldon v1's ingress routes it: a gRPC request whose metadata
/// `seldon` and `namespace` name a deployment goes to that deployment's route, path kept
/// (`/seldon.protos.Seldon/Predict`), over HTTP/2 (the `-grpc` twin of each cluster: gRPC's
/// trailers do not cross HTTP/1.1). One per deployment route (`/seldon/<ns>/<name>/`), with
/// its split, mirror and timeout; first, since gRPC paths match no deployment prefix.
fn grpc_gateway_routes(routes: &[GatewayRoute]) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    routes
        .iter()
        .filter_map(|r| {
            let (namespace, name) = deployment_of(&r.prefix)?;
            if !seen.insert((namespace, name)) {
                return None;
            }
            let twin = |c: &str| format!("{c}{GRPC_TWIN_SUFFIX}");
            let grpc = GatewayRoute {
                prefix: "/".into(),
                rewrite: None,
                clusters: r
                    .clusters
                    .iter()
                    .map(|wc| crate::config::WeightedCluster {
                        cluster: twin(&wc.cluster),
                        weight: wc.weight,
                    })
                    .collect(),
                mirror: r.mirror.as_ref().map(|m| crate::config::Mirror {
                    cluster: twin(&m.cluster),
                    percent: m.percent,
                }),
                timeout: r.timeout,
            };
            let mut route = gateway_route(&grpc);
            route["match"] = json!({
                "prefix": "/",
                "grpc": {},
                "headers": [
                    { "name": "seldon", "string_match": { "exact": name } },
                    { "name": "namespace", "string_match": { "exact": namespace } },
                ],
            });
            Some(route)
        })
        .collect()
}

/// The HTTP/2 twins of the clusters the gRPC gateway routes use ([`grpc_gateway_routes`]).
fn grpc_twins(config: &EnvoyConfig) -> Vec<Cluster> {
    let mut names = std::collections::BTreeSet::new();
    for l in &config.listeners {
        if let ListenerKind::Gateway { routes } = &l.kind {
            for r in routes.iter().filter(|r| deployment_of(&r.prefix).is_some()) {
                names.extend(r.clusters.iter().map(|wc| wc.cluster.as_str()));
                names.extend(r.mirror.iter().map(|m| m.cluster.as_str()));
            }
        }
    }
    config
        .clusters
        .iter()
        .filter(|c| names.contains(c.name.as_str()))
        .map(|c| Cluster {
            name: format!("{}{GRPC_TWIN_SUFFIX}", c.name),
            http2: true,
            ..c.clone()
        })
        .collect()
}

/// The gateway's last route: a path no deployment serves gets a JSON 404 in Seldon's status
/// format, not Envoy's empty one.
fn gateway_not_found() -> Value {
    json!({
        "match": { "prefix": "/" },
        "direct_response": {
            "status": 404,
            "body": { "inline_string": GATEWAY_NOT_FOUND_BODY },
        },
        "response_headers_to_add": [{
            "header": { "key": "content-type", "value": "application/json" },
            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
        }],
    })
}

/// Body of [`gateway_not_found`].
pub const GATEWAY_NOT_FOUND_BODY: &str = r#"{"status":{"code":404,"info":"no SeldonDeployment is served at this path; call /seldon/<namespace>/<name>/api/v1.0/predictions (or /v2/models/<model>/infer)","reason":"NOT_FOUND","status":"FAILURE"}}"#;

/// The filter's request body limit (`bodyLimitBytes` of its `FilterConfig` JSON), which its
/// own 413 names; this crate does not depend on the graph crate, so it reads the one field.
fn filter_body_limit(plugin_config_json: &str) -> Option<u32> {
    let config: Value = serde_json::from_str(plugin_config_json).ok()?;
    u32::try_from(config.get("bodyLimitBytes")?.as_u64()?).ok()
}

fn set_opt(obj: &mut Value, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        obj[key] = v;
    }
}

fn cluster(c: &Cluster, limit: u32) -> Value {
    let is_ip = c.host.parse::<IpAddr>().is_ok();
    let mut v = json!({
        "name": c.name,
        "type": if is_ip { "STATIC" } else { "STRICT_DNS" },
        "connect_timeout": duration(c.connect_timeout),
        "per_connection_buffer_limit_bytes": limit,
        "load_assignment": {
            "cluster_name": c.name,
            "endpoints": [{
                "lb_endpoints": [{ "endpoint": { "address": socket_address(&c.host, c.port) } }],
            }],
        },
    });
    if !is_ip {
        // `localhost` may resolve to ::1 first while local servers bind 127.0.0.1.
        v["dns_lookup_family"] = json!("V4_PREFERRED");
    }
    if c.http2 {
        v["typed_extension_protocol_options"] = json!({
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": HTTP_PROTOCOL_OPTIONS_TYPE,
                "explicit_http_config": { "http2_protocol_options": {} },
            },
        });
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_render_as_protobuf_json() {
        assert_eq!(duration(Duration::from_secs(2)), "2s");
        assert_eq!(duration(Duration::from_millis(1500)), "1.500s");
        assert_eq!(duration(Duration::from_millis(5)), "0.005s");
    }

    #[test]
    fn single_cluster_route_is_not_weighted_and_mirror_is_per_million() {
        let r = GatewayRoute {
            prefix: "/p/".into(),
            rewrite: None,
            clusters: vec![crate::WeightedCluster {
                cluster: "a".into(),
                weight: 100,
            }],
            mirror: Some(crate::Mirror {
                cluster: "s".into(),
                percent: 12.5,
            }),
            timeout: None,
        };
        let v = gateway_route(&r);
        assert_eq!(v["route"]["cluster"], "a");
        assert!(v["route"].get("weighted_clusters").is_none());
        assert_eq!(
            v["route"]["request_mirror_policies"][0]["runtime_fraction"]["default_value"]["numerator"],
            125_000
        );
    }

    #[test]
    fn grpc_routes_match_seldon_metadata_and_use_http2_twins() {
        assert_eq!(deployment_of("/seldon/ns/iris/"), Some(("ns", "iris")));
        assert_eq!(deployment_of("/seldon/ns/"), None);
        assert_eq!(deployment_of("/docs/"), None);
        assert_eq!(deployment_of("/seldon/ns/a/b/"), None);
        let mut config = EnvoyConfig::new(9901);
        config.clusters = vec![Cluster::http1("iris-main", "127.0.0.1", 9000)];
        config.listeners = vec![Listener {
            name: "gateway".into(),
            port: 8080,
            kind: ListenerKind::Gateway {
                routes: vec![GatewayRoute {
                    prefix: "/seldon/ns/iris/".into(),
                    rewrite: Some("/".into()),
                    clusters: vec![crate::config::WeightedCluster {
                        cluster: "iris-main".into(),
                        weight: 1,
                    }],
                    mirror: None,
                    timeout: None,
                }],
            },
        }];
        let r = resources(&config).unwrap();
        let twin = &r.clusters[1];
        assert_eq!(twin["name"], "iris-main-grpc");
        assert!(twin.to_string().contains("http2_protocol_options"));
        let routes = &r.listeners[0]["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]
            ["virtual_hosts"][0]["routes"];
        assert_eq!(
            routes[0]["match"]["headers"][0]["string_match"]["exact"],
            "iris"
        );
        assert_eq!(
            routes[0]["match"]["headers"][1]["string_match"]["exact"],
            "ns"
        );
        assert_eq!(routes[0]["route"]["cluster"], "iris-main-grpc");
        assert!(routes[0]["route"].get("prefix_rewrite").is_none());
        assert_eq!(routes[1]["match"]["prefix"], "/seldon/ns/iris/");
    }
}
