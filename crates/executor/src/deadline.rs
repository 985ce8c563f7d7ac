//! How long a request through a graph can take at most in node calls: the gateway's route
//! timeout (local mode's gateway, the rendered VirtualService) derives from it, so that no
//! Envoy default (15 s) cuts a graph whose every node answers within its own timeout.
//!
//! The executor's order of calls (`request.rs`) decides the sum. A node's own calls are
//! sequential: input (`/predict` or `/transform-input`), `/route`, then its children (all of
//! them in parallel, or the one a router picks), `/aggregate`, `/transform-output`. So the
//! deadline of a node is the sum of its own calls' timeouts plus the longest child's deadline.
//! Feedback walks the same tree (`/send-feedback` after the children); readiness and metadata
//! ask every node in parallel. The graph's deadline is the longest of the three.

use seldon_graph::{NodeId, Plan, RouteStep};

/// Added to the graph's deadline for the gateway's route timeout: time that is not a node call
/// (the filter's own work, Envoy's hops). With it, a late node is always answered by the
/// filter's JSON 504 naming the node, before the gateway's timer fires.
pub const GATEWAY_GRACE_MS: u64 = 1_000;

/// The largest route timeout: protobuf's largest `Duration` (10 000 years), which Envoy and
/// Istio accept. Node timeouts are `u64` milliseconds, so a sum can exceed it.
pub const MAX_ROUTE_TIMEOUT_MS: u64 = 315_576_000_000_000;

/// The longest a request can spend waiting on node calls, in milliseconds: the sum of node
/// timeouts along the slowest path of calls, for predictions, feedback or probes.
pub fn graph_deadline_ms(plan: &Plan) -> u64 {
    if plan.nodes.is_empty() {
        return 0;
    }
    let probes = plan
        .nodes
        .iter()
        .filter_map(|n| n.upstream.as_ref().map(|u| u.timeout_ms))
        .max()
        .unwrap_or(0);
    predict_ms(plan, 0, 0)
        .max(feedback_ms(plan, 0, 0))
        .max(probes)
}

/// The gateway's route timeout for `plans` (the predictors one route splits or mirrors over),
/// in milliseconds: the slowest graph's deadline, never less than `whole_request_ms`
/// (`seldon.io/rest-timeout`, which Seldon also applied to the whole request at the ingress),
/// plus [`GATEWAY_GRACE_MS`], at most [`MAX_ROUTE_TIMEOUT_MS`].
pub fn route_timeout_ms<'a>(
    plans: impl IntoIterator<Item = &'a Plan>,
    whole_request_ms: Option<u64>,
) -> u64 {
    plans
        .into_iter()
        .map(graph_deadline_ms)
        .max()
        .unwrap_or(0)
        .max(whole_request_ms.unwrap_or(0))
        .saturating_add(GATEWAY_GRACE_MS)
        .min(MAX_ROUTE_TIMEOUT_MS)
}

fn timeout_of(plan: &Plan, id: NodeId) -> u64 {
    plan.nodes
        .get(id)
        .and_then(|n| n.upstream.as_ref())
        .map(|u| u.timeout_ms)
        .unwrap_or(0)
}

fn predict_ms(plan: &Plan, id: NodeId, depth: usize) -> u64 {
    let Some(node) = plan.nodes.get(id) else {
        return 0;
    };
    if depth > seldon_graph::plan::MAX_DEPTH {
        return 0;
    }
    let t = timeout_of(plan, id);
    let own_calls = u64::from(node.input.is_some())
        + u64::from(!node.children.is_empty() && matches!(node.route, RouteStep::Remote))
        + u64::from(node.aggregate && !node.children.is_empty())
        + u64::from(node.transform_output);
    let children = node
        .children
        .iter()
        .map(|&c| predict_ms(plan, c, depth + 1))
        .max()
        .unwrap_or(0);
    t.saturating_mul(own_calls).saturating_add(children)
}

fn feedback_ms(plan: &Plan, id: NodeId, depth: usize) -> u64 {
    let Some(node) = plan.nodes.get(id) else {
        return 0;
    };
    if depth > seldon_graph::plan::MAX_DEPTH {
        return 0;
    }
    let own = if node.send_feedback {
        timeout_of(plan, id)
    } else {
        0
    };
    let children = node
        .children
        .iter()
        .map(|&c| feedback_ms(plan, c, depth + 1))
        .max()
        .unwrap_or(0);
    own.saturating_add(children)
}
