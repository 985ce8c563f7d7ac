//! Graph metadata (`GET /api/v1.0/metadata`) built from every node's `/metadata`, and the
//! v2 graph-as-one-model metadata (`GET /v2/models/<deployment>`).
//!
//! Seldon's rule: the graph's inputs are those of the first node that reads the request
//! (a node with an input step, else its first child), its outputs those of the last node that
//! writes the answer (a node with an output or aggregate step, else its first child).

use std::collections::BTreeMap;

use seldon_graph::{NodeId, Plan};
use serde_json::{Map, Value};

/// `{"name": <predictor>, "models": {<node>: <metadata>}, "graphinputs": …, "graphoutputs": …}`.
/// A node whose metadata is not JSON appears as `null`.
pub fn graph_metadata(plan: &Plan, answers: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let models: Map<String, Value> = answers
        .iter()
        .map(|(name, body)| {
            (
                name.clone(),
                serde_json::from_slice(body).unwrap_or(Value::Null),
            )
        })
        .collect();
    let field = |id: NodeId, key: &str| -> Value {
        models
            .get(&plan.nodes[id].name)
            .and_then(|m| m.get(key))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let inputs = field(reader(plan, 0), "inputs");
    let outputs = field(writer(plan, 0), "outputs");
    let body = serde_json::json!({
        "name": plan.predictor,
        "models": models,
        "graphinputs": inputs,
        "graphoutputs": outputs,
    });
    body.to_string().into_bytes()
}

/// The v2 model metadata of the whole graph: `{"name": <name>, "versions": [], "platform":
/// "seldon-mesh", "inputs": …, "outputs": …}`, tensors from the reading and the answering node's
/// `GET /v2/models/<node>` (`null` when a node's answer is not JSON).
pub fn v2_graph_metadata(plan: &Plan, name: &str, answers: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let (reader, writer) = edges(plan);
    let field = |id: NodeId, key: &str| -> Value {
        answers
            .get(&plan.nodes[id].name)
            .and_then(|b| serde_json::from_slice::<Value>(b).ok())
            .and_then(|m| m.get(key).cloned())
            .unwrap_or(Value::Null)
    };
    serde_json::json!({
        "name": name,
        "versions": [],
        "platform": "seldon-mesh",
        "inputs": field(reader, "inputs"),
        "outputs": field(writer, "outputs"),
    })
    .to_string()
    .into_bytes()
}

/// The node whose inputs are the graph's and the node whose outputs are the graph's.
pub fn edges(plan: &Plan) -> (NodeId, NodeId) {
    (reader(plan, 0), writer(plan, 0))
}

fn reader(plan: &Plan, id: NodeId) -> NodeId {
    let node = &plan.nodes[id];
    match node.children.first() {
        Some(&child) if node.input.is_none() => reader(plan, child),
        _ => id,
    }
}

fn writer(plan: &Plan, id: NodeId) -> NodeId {
    let node = &plan.nodes[id];
    match node.children.first() {
        Some(&child) if !node.transform_output && !node.aggregate => writer(plan, child),
        _ => id,
    }
}
