//! Header names and paths, defined once.

/// Request id, generated when absent and echoed on the response (Seldon's `Seldon-Puid`).
pub const PUID_HEADER: &str = "seldon-puid";
/// `true`, `on` or `1` turns payload logging off for a request (Seldon's header).
pub const SKIP_LOGGING_HEADER: &str = "seldon-skip-logging";
/// Names the node an error response is about.
pub const NODE_HEADER: &str = "seldon-node";

/// The request header a tail call (`Step::Tail`) names its node's cluster in: the graph
/// listener's route `cluster_header` reads it.
pub const UPSTREAM_HEADER: &str = "x-seldon-upstream";
/// The request header a tail call carries its node's timeout in (Envoy's router reads it;
/// the connection manager strips a client's `x-envoy-*` headers before any filter runs).
pub const TIMEOUT_HEADER: &str = "x-envoy-upstream-rq-timeout-ms";

/// Hop-by-hop and framing headers that are never forwarded to node calls. Pseudo-headers
/// (`:path`, …) and `x-envoy-*` are dropped too.
pub const NOT_FORWARDED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
    "expect",
];
