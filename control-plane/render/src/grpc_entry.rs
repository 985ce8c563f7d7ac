//! gRPC at the entry in the cluster (issue 12, item 1): an Istio `EnvoyFilter`
//! `<predictor Service>-grpc-entry` that runs the graph filter on the sidecar's inbound port
//! 5001 (the predictor Service's `grpc` port) with what the filter's tail call needs, which
//! the WasmPlugin of port 8000 cannot give it.
//!
//! Why not the WasmPlugin: a gRPC answer cannot be a local reply (Envoy makes every local
//! reply to a gRPC request trailers-only and drops its body, `wasm-filter/README.md`
//! "Answering gRPC"), so the filter answers through a *tail call*: the graph's last node call
//! goes through Envoy's router, chosen in the request-body callback. That needs
//! `allow_on_headers_stop_iteration: true` in the Wasm `PluginConfig` (request headers held
//! and still writable in the body callback) and the VM environment
//! `SELDON_TAIL_CALLS=enabled`. Istio's WasmPlugin builds the `PluginConfig` itself
//! (`TrafficExtensionWrapper::buildWasmConfig` in Istio's `pilot/pkg/model/extensions.go`:
//! name, root id, configuration, VM, failure policy, nothing else) and serves it over ECDS,
//! where no EnvoyFilter can merge into it (`InsertedExtensionConfigurations` applies `ADD`
//! only). So this EnvoyFilter brings its own extension config:
//!
//! 1. `EXTENSION_CONFIG` `ADD`: a `TypedExtensionConfig` named [`extension_name`] holding the
//!    whole `envoy.extensions.filters.http.wasm.v3.Wasm`: the same module URL (`remote.http_uri`,
//!    which the sidecar's istio-agent pulls and rewrites to a local file exactly as for a
//!    WasmPlugin, `MaybeConvertWasmExtensionConfig` in Istio's `pkg/wasm/convert.go`), the
//!    same `FilterConfig` JSON as the WasmPlugin's `pluginConfig`, `FAIL_CLOSED`,
//!    `allow_on_headers_stop_iteration: true`, the env `SELDON_TAIL_CALLS=enabled`, and a VM
//!    id of its own ([`VM_ID`]: Envoy keys VMs by id, configuration and code, not by
//!    environment, so without it the port-8000 VM, created without the variable, could be
//!    shared).
//! 2. `HTTP_FILTER` `INSERT_BEFORE` the router on the `SIDECAR_INBOUND` port-5001 chain: the
//!    filter, as a `config_discovery` reference to (1) over ADS, set as Istio sets a
//!    WasmPlugin's (`initial_fetch_timeout: 0s`: the listener waits for the module rather than
//!    serve without it; type URLs Wasm and RBAC: istio-agent serves a deny-all RBAC filter when
//!    the pull fails).
//! 3. `HTTP_ROUTE` `INSERT_FIRST` in the inbound port-5001 route configuration: the tail-call
//!    route, as local mode's (`crates/envoy`): requests carrying `x-seldon-upstream` (set only
//!    by the filter; it rewrites every header of a tail call and answers every other request
//!    itself) go to the cluster it names, the node's `seldon-local-<port>` or Istio's
//!    `outbound|<port>||<fqdn>` cluster, with the node's own timeout
//!    (`x-envoy-upstream-rq-timeout-ms`).
//!
//! `priority` as the header trap's EnvoyFilter ([`crate::envoy_filter::PRIORITY`]): (2) is a
//! relative patch (IST0151 without one). Nothing listens on 5001 in the pod: a request the
//! filter let through without naming a node would reach Istio's default inbound route and get
//! a 503, never a node.

use seldon_crd::names;
use serde_json::json;

use crate::filter_config::filter_config;
use crate::{Context, CustomObject, Predictor, RenderOptions};

/// The Wasm VM id of the gRPC entry's filter (distinct from the WasmPlugin's, see the module doc).
pub const VM_ID: &str = "seldon-mesh-tail-calls";

/// The request header the filter names the tail call's cluster in
/// (`seldon_executor::names::UPSTREAM_HEADER`).
pub const TAIL_CALL_HEADER: &str = "x-seldon-upstream";

/// The filter's VM environment variable turning tail calls on
/// (`seldon_filter::glue::TAIL_CALLS_ENV`).
pub const TAIL_CALLS_ENV: &str = "SELDON_TAIL_CALLS";

/// Istio-agent's pull-policy variable (stripped by the agent before Envoy sees the config),
/// the same one WasmPlugin's `imagePullPolicy` becomes.
pub const PULL_POLICY_ENV: &str = "ISTIO_META_WASM_IMAGE_PULL_POLICY";

const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
/// What istio-agent serves instead when it cannot pull the module (a deny-all RBAC filter for
/// `FAIL_CLOSED`); the filter must accept it, as Istio's own WasmPlugin filters do.
const RBAC_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC";

/// The ECDS resource name of predictor `p`'s gRPC-entry filter.
pub fn extension_name(cx: &Context, p: &Predictor<'_>) -> String {
    format!("seldon-mesh.{}.{}.grpc", cx.namespace, p.service)
}

pub fn render(cx: &Context, p: &Predictor<'_>, opts: &RenderOptions) -> Option<CustomObject> {
    if !opts.grpc_entry {
        return None;
    }
    let config = serde_json::to_string(&filter_config(cx, p, opts)).unwrap_or_default();
    let name = extension_name(cx, p);
    let port = names::PREDICTOR_GRPC_PORT;
    // istio-agent replaces "nil" by no checksum (Envoy's RemoteDataSource needs a non-empty one)
    let sha256 = opts.filter_sha256.clone().unwrap_or_else(|| "nil".into());
    let wasm = json!({
        "@type": WASM_TYPE,
        "config": {
            "name": format!("{}.{}.grpc", cx.namespace, p.service),
            "vm_config": {
                "vm_id": VM_ID,
                "runtime": "envoy.wasm.runtime.v8",
                "code": {"remote": {
                    "http_uri": {"uri": opts.filter_url, "cluster": "_", "timeout": "30s"},
                    "sha256": sha256,
                }},
                "environment_variables": {"key_values": {
                    TAIL_CALLS_ENV: "enabled",
                    PULL_POLICY_ENV: "IfNotPresent",
                }},
            },
            "configuration": {
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": config,
            },
            "failure_policy": "FAIL_CLOSED",
            "allow_on_headers_stop_iteration": true,
        },
    });
    let inbound_chain = json!({
        "context": "SIDECAR_INBOUND",
        "listener": {
            "portNumber": port,
            "filterChain": {"filter": {
                "name": "envoy.filters.network.http_connection_manager",
                "subFilter": {"name": "envoy.filters.http.router"},
            }},
        },
    });
    Some(CustomObject {
        api_version: "networking.istio.io/v1alpha3".to_string(),
        kind: "EnvoyFilter".to_string(),
        metadata: cx.meta(
            &names::k8s_name(&format!("{}-grpc-entry", p.service)),
            cx.base_labels(),
        ),
        spec: json!({
            "workloadSelector": {"labels": {names::LABEL_SELDON_APP: p.service}},
            "priority": crate::envoy_filter::PRIORITY,
            "configPatches": [
                {
                    "applyTo": "EXTENSION_CONFIG",
                    "patch": {"operation": "ADD", "value": {"name": name, "typed_config": wasm}},
                },
                {
                    "applyTo": "HTTP_FILTER",
                    "match": inbound_chain,
                    "patch": {"operation": "INSERT_BEFORE", "value": {
                        "name": name,
                        "config_discovery": {
                            "config_source": {
                                "ads": {},
                                "initial_fetch_timeout": "0s",
                                "resource_api_version": "V3",
                            },
                            "type_urls": [WASM_TYPE, RBAC_TYPE],
                        },
                    }},
                },
                {
                    "applyTo": "HTTP_ROUTE",
                    "match": {
                        "context": "SIDECAR_INBOUND",
                        "routeConfiguration": {"portNumber": port},
                    },
                    "patch": {"operation": "INSERT_FIRST", "value": {
                        "name": "seldon-mesh-tail-call",
                        "match": {
                            "prefix": "/",
                            "headers": [{"name": TAIL_CALL_HEADER, "present_match": true}],
                        },
                        "route": {"cluster_header": TAIL_CALL_HEADER, "timeout": "0s"},
                        "request_headers_to_remove": [TAIL_CALL_HEADER],
                    }},
                },
            ],
        }),
    })
}
