//! Where the graph filter calls nodes (issue 7, "Where node calls go"): for nodes in the
//! filter's own pod, over localhost (default, the faster path measured in the mesh test), or
//! through the node's Service; nodes in other pods always through their Service.
//!
//! The filter runs in the sidecar of the pods labelled `seldon-app` (the componentSpec holding
//! the graph root, [`Predictor::root_component`]). Its callouts name an Envoy cluster. By
//! default that is Istio's outbound cluster of the node's Service, which may pick another
//! replica and goes out through mTLS and the node pod's inbound listener, even when the
//! node's container sits next to the filter. Seldon's executor called the containers of its
//! own pod on localhost.
//!
//! Istio has no cluster a callout can use for that: with the default
//! `inboundTrafficPolicy: PASSTHROUGH`, the sidecar's `inbound|<port>||` clusters are
//! `ORIGINAL_DST` (`buildInboundCluster` in Istio's `cluster_builder.go`), whose destination
//! comes from a downstream connection an async callout does not have. So with
//! [`NodeCalls::Localhost`] render adds one `STATIC` cluster per node port, `127.0.0.1:<port>`,
//! through an EnvoyFilter `CLUSTER` `ADD` patch in context `SIDECAR_OUTBOUND` (istiod appends
//! these to the sidecar's CDS, `InsertedClusters` in `envoyfilter/cluster_patch.go`; a cluster
//! is global to the Envoy, so the inbound graph filter's callouts can name it). Envoy's
//! connections run as the proxy UID 1337, which istio-iptables lets out unredirected
//! (`-m owner --uid-owner 1337 -j RETURN`, and `127.0.0.1` is excluded from the
//! loopback-to-inbound redirect), so the call reaches the container directly.

use std::str::FromStr;

use seldon_crd::defaults::find_unit;
use seldon_crd::names;
use seldon_graph::Transport;
use serde_json::{Value, json};

use crate::options::NodeCalls;
use crate::{Context, CustomObject, Predictor, RenderOptions};

/// Prefix of the static localhost clusters: `seldon-local-<port>`. One per port, and a port
/// is bound once per pod, so the name is unique in the sidecar.
pub const LOCAL_CLUSTER_PREFIX: &str = "seldon-local-";

/// Connect timeout of the localhost clusters: Istio's default `connectTimeout` (10 s), so both
/// paths fail a connect alike.
pub const CONNECT_TIMEOUT: &str = "10s";

/// The localhost cluster of container port `port`.
pub fn local_cluster(port: u16) -> String {
    format!("{LOCAL_CLUSTER_PREFIX}{port}")
}

/// The `:authority` of a localhost call (what Seldon's executor sent: `localhost:<port>`).
pub fn local_authority(port: u16) -> String {
    format!("localhost:{port}")
}

/// The mode for predictor `p`: its `mesh.seldon.io/node-calls` annotation, else the
/// SeldonDeployment's, else `opts.node_calls`. An invalid value is reported by `check`.
pub fn mode(cx: &Context, p: &Predictor<'_>, opts: &RenderOptions) -> NodeCalls {
    p.annotation(cx, names::ANNOTATION_NODE_CALLS)
        .and_then(|v| NodeCalls::from_str(v).ok())
        .unwrap_or(opts.node_calls)
}

/// A node the filter calls over localhost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalNode {
    /// The graph node (= its container's name).
    pub name: String,
    /// The container port the node serves on (its Service port, which targets it).
    pub port: u16,
    pub transport: Transport,
}

/// The nodes of `p` called over localhost: none with [`NodeCalls::Service`]; with
/// [`NodeCalls::Localhost`] (the default), each graph node whose container is in the root component (the
/// pod the filter runs in), in container order.
pub fn local_nodes(cx: &Context, p: &Predictor<'_>, opts: &RenderOptions) -> Vec<LocalNode> {
    if mode(cx, p, opts) != NodeCalls::Localhost {
        return Vec::new();
    }
    let Some(component) = p.spec.component_specs.get(p.root_component()) else {
        return Vec::new();
    };
    let transport = cx.sdep.spec.transport();
    component
        .spec
        .containers
        .iter()
        .filter_map(|c| {
            let unit = find_unit(&p.spec.graph, &c.name)?;
            let port = unit.endpoint.as_ref()?.service_port?;
            Some(LocalNode {
                name: unit.name.clone(),
                port: u16::try_from(port).ok()?,
                transport,
            })
        })
        .collect()
}

/// The EnvoyFilter `<predictor Service>-node-calls` adding the localhost clusters to the
/// sidecars of the predictor's graph pods; `None` when no node is called over localhost.
pub fn render(cx: &Context, p: &Predictor<'_>, opts: &RenderOptions) -> Option<CustomObject> {
    let nodes = local_nodes(cx, p, opts);
    if nodes.is_empty() {
        return None;
    }
    let patches: Vec<Value> = nodes
        .iter()
        .map(|n| {
            json!({
                "applyTo": "CLUSTER",
                "match": {"context": "SIDECAR_OUTBOUND"},
                "patch": {"operation": "ADD", "value": cluster(n)},
            })
        })
        .collect();
    Some(CustomObject {
        api_version: "networking.istio.io/v1alpha3".to_string(),
        kind: "EnvoyFilter".to_string(),
        metadata: cx.meta(
            &names::k8s_name(&format!("{}-node-calls", p.service)),
            cx.base_labels(),
        ),
        spec: json!({
            "workloadSelector": {"labels": {names::LABEL_SELDON_APP: p.service}},
            "configPatches": patches,
        }),
    })
}

/// Envoy's `Cluster` (v3, JSON) for one local node: `STATIC` at `127.0.0.1:<port>`, Istio's
/// circuit-breaker defaults (every threshold at its maximum, as `getDefaultCircuitBreakerThresholds`
/// sets on Istio's own clusters; Envoy's 1024 would otherwise cap concurrent node calls), and
/// HTTP/2 for gRPC nodes (HTTP/1.1 otherwise, like Istio's cluster for an `http` port).
fn cluster(n: &LocalNode) -> Value {
    let name = local_cluster(n.port);
    let max = u64::from(u32::MAX);
    let mut c = json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": CONNECT_TIMEOUT,
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                "address": "127.0.0.1",
                "port_value": n.port,
            }}}}]}],
        },
        "circuit_breakers": {"thresholds": [{
            "max_connections": max,
            "max_pending_requests": max,
            "max_requests": max,
            "max_retries": max,
        }]},
    });
    if n.transport == Transport::Grpc {
        c["typed_extension_protocol_options"] = json!({
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            },
        });
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_and_authority() {
        assert_eq!(local_cluster(9000), "seldon-local-9000");
        assert_eq!(local_authority(9001), "localhost:9001");
    }

    #[test]
    fn rest_clusters_are_http1_and_grpc_clusters_http2() {
        let rest = cluster(&LocalNode {
            name: "m".into(),
            port: 9000,
            transport: Transport::Rest,
        });
        assert_eq!(rest["type"], "STATIC");
        assert_eq!(
            rest["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"],
            json!({"address": "127.0.0.1", "port_value": 9000})
        );
        assert!(rest.get("typed_extension_protocol_options").is_none());
        let grpc = cluster(&LocalNode {
            name: "m".into(),
            port: 9500,
            transport: Transport::Grpc,
        });
        assert_eq!(grpc["name"], "seldon-local-9500");
        assert!(
            grpc["typed_extension_protocol_options"]
                ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["explicit_http_config"]
                .get("http2_protocol_options")
                .is_some()
        );
    }
}
