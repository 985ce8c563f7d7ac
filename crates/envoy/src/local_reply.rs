//! Envoy's own answers (local replies) as Seldon status JSON: the HTTP connection manager's
//! `local_reply_config` (issue 11). Without it a client sees Envoy's plain text — `Payload
//! Too Large`, `Upgrade Required`, an empty 404, `no healthy upstream`, `upstream request
//! timeout` — beside the filter's JSON.
//!
//! Every body has the filter's shape, `{"status":{"code","info","reason","status":"FAILURE"}}`,
//! and `content-type: application/json` (Envoy sets it for a `json_format`). `info` keeps
//! Envoy's own words (`%LOCAL_REPLY_BODY%`) and its response code details. When the request
//! carries a `Seldon-Puid` (the gateway route adds one, see [`PUID_FROM_REQUEST_ID`]), the
//! reply echoes it.
//!
//! Which replies are rewritten depends on the listener:
//!
//! - **gateway** (no wasm filter): every local reply of status 400 or more, by status. The
//!   filter's answers reach the gateway as upstream responses, never as its local replies,
//!   so they are not touched. The gateway's catch-all 404 route (a direct response, hence a
//!   local reply too) is rewritten to the same JSON it already has.
//! - **graph** (the wasm filter answers with local replies of its own, already JSON, with no
//!   response flag, always to a request whose headers arrived): only Envoy's, i.e. replies
//!   that carry a response flag (an upstream failure `UH`/`UF`/`UT`…) or that Envoy sent before
//!   the request existed — no `:method` header: the codec's refusals (HTTP/1.0, oversized
//!   headers, not HTTP), which have no response flag yet when the mappers run (measured on
//!   Envoy 1.40: `reliability.rs`). The one exception is 413, matched by status: Envoy's
//!   buffer overflow there has neither, and the filter's own 413 has the same body.

use serde_json::{Value, json};

/// The request header that carries the prediction's unique id (the filter's `Seldon-Puid`).
pub const PUID_HEADER: &str = "seldon-puid";

/// The gateway route's `request_headers_to_add` value for [`PUID_HEADER`] when the client sent
/// none: Envoy's generated `x-request-id` (a UUID v4, like the filter's own puid). The filter
/// then uses and echoes it, and a local reply of the gateway (its 504) carries the same id.
pub const PUID_FROM_REQUEST_ID: &str = "%REQ(x-request-id)%";

/// Which listener the config is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// No filter answers here: every local reply is Envoy's.
    Gateway,
    /// The graph filter answers with local replies of its own, which must stay as they are.
    Graph,
}

/// One status Envoy answers by itself, and what the client is told.
struct Known {
    code: u16,
    reason: &'static str,
    info: String,
}

fn known(limit: Option<u32>) -> Vec<Known> {
    let k = |code, reason, info: &str| Known {
        code,
        reason,
        info: info.to_string(),
    };
    vec![
        k(
            400,
            "BAD_REQUEST",
            "Envoy refused the request: %LOCAL_REPLY_BODY% (%RESPONSE_CODE_DETAILS%)",
        ),
        k(
            404,
            "NOT_FOUND",
            "no SeldonDeployment is served at this path; call /seldon/<namespace>/<name>/api/v1.0/predictions (or /v2/models/<model>/infer)",
        ),
        k(
            408,
            "REQUEST_TIMEOUT",
            "the request did not arrive in time: %LOCAL_REPLY_BODY%",
        ),
        Known {
            code: 413,
            reason: "PAYLOAD_TOO_LARGE",
            info: match limit {
                Some(limit) => format!("request body is larger than the limit of {limit} bytes"),
                None => "request body is larger than the gateway accepts".to_string(),
            },
        },
        k(
            426,
            "UPGRADE_REQUIRED",
            "HTTP/1.0 is not served: use HTTP/1.1 or HTTP/2",
        ),
        k(
            431,
            "HEADERS_TOO_LARGE",
            "the request headers are larger than Envoy accepts (60 KiB, max_request_headers_kb)",
        ),
        k(
            502,
            "BAD_GATEWAY",
            "the predictor's answer was unusable: %LOCAL_REPLY_BODY% (%RESPONSE_CODE_DETAILS%)",
        ),
        k(
            503,
            "UNAVAILABLE",
            "no predictor could take the request: %LOCAL_REPLY_BODY%",
        ),
        k(
            504,
            "GATEWAY_TIMEOUT",
            "the predictor did not answer within the route timeout derived from its graph (the filter answers a late node itself, naming it): %LOCAL_REPLY_BODY%",
        ),
    ]
}

/// The body of a rewritten reply: the filter's status JSON (`code` keeps its number type).
fn body(code: &str, reason: &str, info: &str) -> Value {
    json!({
        "json_format": {
            "status": {"code": code, "info": info, "reason": reason, "status": "FAILURE"},
        },
    })
}

fn status_is(code: u16) -> Value {
    json!({
        "status_code_filter": {
            "comparison": {
                "op": "EQ",
                "value": {"default_value": code, "runtime_key": format!("seldon_mesh.local_reply.{code}")},
            },
        },
    })
}

/// On a graph listener, a local reply that is Envoy's, not the filter's: it carries a response
/// flag, or the request has no `:method` (Envoy refused it before it was a request; the
/// filter only ever answers requests whose headers it has seen).
fn envoys_own() -> Value {
    json!({"or_filter": {"filters": [
        {"response_flag_filter": {}},
        {"header_filter": {"header": {"name": ":method", "present_match": true, "invert_match": true}}},
    ]}})
}

/// The HTTP connection manager's `local_reply_config` for a listener of `scope` whose request
/// body limit is `limit` bytes (a graph listener's: the filter's `bodyLimitBytes`).
pub fn local_reply_config(scope: Scope, limit: u32) -> Value {
    config(scope, Some(limit))
}

fn config(scope: Scope, limit: Option<u32>) -> Value {
    let puid = json!([{
        "header": {"key": PUID_HEADER, "value": format!("%REQ({PUID_HEADER})%")},
        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
    }]);
    let mut mappers = Vec::new();
    for k in known(limit) {
        let filter = match (scope, k.code) {
            (Scope::Gateway, _) => status_is(k.code),
            // Envoy's own 413 on a graph listener (its buffer overflowed before the filter saw
            // the chunk: a large write from the gateway) has a request and no flag, so it is
            // matched by status; `limit` is then the filter's, and the filter's own 413 is
            // rewritten to the same body it already has.
            (Scope::Graph, 413) => status_is(k.code),
            (Scope::Graph, _) => {
                json!({"and_filter": {"filters": [status_is(k.code), envoys_own()]}})
            }
        };
        mappers.push(json!({
            "filter": filter,
            "headers_to_add": puid,
            "body_format_override": body("%RESPONSE_CODE%", k.reason, &k.info),
        }));
    }
    // Anything else Envoy answers by itself (4xx/5xx): the same shape, its own words.
    let any_error = json!({
        "status_code_filter": {
            "comparison": {
                "op": "GE",
                "value": {"default_value": 400, "runtime_key": "seldon_mesh.local_reply.any"},
            },
        },
    });
    let fallback_filter = match scope {
        Scope::Gateway => any_error,
        Scope::Graph => json!({"and_filter": {"filters": [any_error, envoys_own()]}}),
    };
    mappers.push(json!({
        "filter": fallback_filter,
        "headers_to_add": puid,
        "body_format_override": body(
            "%RESPONSE_CODE%",
            "ENVOY_ERROR",
            "%LOCAL_REPLY_BODY% (%RESPONSE_CODE_DETAILS%)",
        ),
    }));
    json!({ "mappers": mappers })
}

/// Path prefix of every SeldonDeployment on a shared Istio ingress gateway.
pub const SELDON_PATH_PREFIX: &str = "/seldon/";

/// The Istio side (issue 11): an `EnvoyFilter` for the ingress gateway (`istio:
/// ingressgateway` in `istio-system`) that merges the gateway mappers into its HTTP connection
/// managers, each restricted to requests under [`SELDON_PATH_PREFIX`] (the `:path`, or
/// `x-envoy-original-path` once a VirtualService rewrote it), so other applications on a shared
/// gateway keep Envoy's own answers. Installed once with the gateway (`istio/local-replies.yaml`,
/// kept equal to this by a test), not per SeldonDeployment: a SeldonDeployment's objects live in
/// its own namespace and cannot own an object in `istio-system`.
pub fn istio_gateway_envoy_filter() -> Value {
    let seldon_path = json!({"or_filter": {"filters": [
        {"header_filter": {"header": {"name": ":path", "string_match": {"prefix": SELDON_PATH_PREFIX}}}},
        {"header_filter": {"header": {"name": "x-envoy-original-path", "string_match": {"prefix": SELDON_PATH_PREFIX}}}},
    ]}});
    let mut config = config(Scope::Gateway, None);
    if let Some(mappers) = config["mappers"].as_array_mut() {
        for m in mappers {
            let own = m["filter"].take();
            m["filter"] = json!({"and_filter": {"filters": [seldon_path.clone(), own]}});
        }
    }
    json!({
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "EnvoyFilter",
        "metadata": {"name": "seldon-mesh-local-replies", "namespace": "istio-system"},
        "spec": {
            "workloadSelector": {"labels": {"istio": "ingressgateway"}},
            "configPatches": [{
                "applyTo": "NETWORK_FILTER",
                "match": {
                    "context": "GATEWAY",
                    "listener": {"filterChain": {"filter": {
                        "name": "envoy.filters.network.http_connection_manager",
                    }}},
                },
                "patch": {
                    "operation": "MERGE",
                    "value": {"typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "local_reply_config": config,
                    }},
                },
            }],
        },
    })
}
