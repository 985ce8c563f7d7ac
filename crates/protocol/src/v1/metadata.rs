//! Model metadata (`GET /metadata` of a node) and graph metadata (`GET /api/v1.0/metadata`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ProtocolError;

/// One input or output of a model: v1 style (`messagetype` + `schema`) or v2 style
/// (`name` + `datatype` + `shape`). Unknown members are kept in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messagetype: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datatype: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<Vec<i64>>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Metadata of one graph node (`SeldonModelMetadata`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelMetadata {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<String>,
    #[serde(default)]
    pub platform: String,
    #[serde(default)]
    pub inputs: Vec<MessageMetadata>,
    #[serde(default)]
    pub outputs: Vec<MessageMetadata>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom: BTreeMap<String, String>,
}

impl ModelMetadata {
    /// Parses a node's `/metadata` reply.
    pub fn from_slice(body: &[u8]) -> Result<Self, ProtocolError> {
        serde_json::from_slice(body).map_err(ProtocolError::json("model metadata"))
    }
}

/// Metadata of a predictor's whole graph:
/// `{"name":<predictor>,"models":{<node>:{..}},"graphinputs":[..],"graphoutputs":[..]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GraphMetadata {
    pub name: String,
    #[serde(default)]
    pub models: BTreeMap<String, ModelMetadata>,
    #[serde(default)]
    pub graphinputs: Vec<MessageMetadata>,
    #[serde(default)]
    pub graphoutputs: Vec<MessageMetadata>,
}

/// The kind of a graph node, as far as metadata is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeKind {
    Model,
    Transformer,
    OutputTransformer,
    Combiner,
    Router,
    /// Anything else (e.g. `UNKNOWN_TYPE` with explicit methods): its own inputs and outputs.
    Other,
}

/// The shape of a graph, just enough to place metadata (kept here so this crate does not
/// depend on `seldon-graph`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphNode {
    pub name: String,
    pub kind: NodeKind,
    pub children: Vec<GraphNode>,
}

impl GraphNode {
    /// A node without children.
    pub fn leaf(name: impl Into<String>, kind: NodeKind) -> Self {
        Self {
            name: name.into(),
            kind,
            children: Vec::new(),
        }
    }

    /// A node with children.
    pub fn with_children(
        name: impl Into<String>,
        kind: NodeKind,
        children: Vec<GraphNode>,
    ) -> Self {
        Self {
            name: name.into(),
            kind,
            children,
        }
    }

    fn walk<'a>(&'a self, out: &mut Vec<&'a GraphNode>) {
        out.push(self);
        for child in &self.children {
            child.walk(out);
        }
    }
}

/// Builds the graph metadata of predictor `predictor` from each node's model metadata.
///
/// `graphinputs` are the inputs of the graph's first "input" node and `graphoutputs` the
/// outputs of its last node, following Seldon's rule per node kind (first child only):
///
/// | node | inputs from | outputs from |
/// |---|---|---|
/// | leaf (any kind) | itself | itself |
/// | MODEL, TRANSFORMER | itself | first child |
/// | OUTPUT_TRANSFORMER, COMBINER | first child | itself |
/// | ROUTER | first child | first child |
/// | other | itself | itself |
///
/// Every node of the tree must have an entry in `models`; `models` of the result holds the
/// tree's nodes only.
pub fn graph_metadata(
    predictor: &str,
    root: &GraphNode,
    models: &BTreeMap<String, ModelMetadata>,
) -> Result<GraphMetadata, ProtocolError> {
    let mut nodes = Vec::new();
    root.walk(&mut nodes);
    let mut tree_models = BTreeMap::new();
    for node in nodes {
        let meta = models
            .get(&node.name)
            .ok_or_else(|| ProtocolError::MissingNodeMetadata {
                node: node.name.clone(),
            })?;
        tree_models.insert(node.name.clone(), meta.clone());
    }
    let input = tree_models
        .get(&input_node(root).name)
        .map(|m| m.inputs.clone())
        .unwrap_or_default();
    let output = tree_models
        .get(&output_node(root).name)
        .map(|m| m.outputs.clone())
        .unwrap_or_default();
    Ok(GraphMetadata {
        name: predictor.to_owned(),
        models: tree_models,
        graphinputs: input,
        graphoutputs: output,
    })
}

/// The node whose inputs are the subtree's inputs.
fn input_node(node: &GraphNode) -> &GraphNode {
    match (node.kind, node.children.first()) {
        (NodeKind::OutputTransformer | NodeKind::Combiner | NodeKind::Router, Some(first)) => {
            input_node(first)
        }
        _ => node,
    }
}

/// The node whose outputs are the subtree's outputs.
fn output_node(node: &GraphNode) -> &GraphNode {
    match (node.kind, node.children.first()) {
        (NodeKind::Model | NodeKind::Transformer | NodeKind::Router, Some(first)) => {
            output_node(first)
        }
        _ => node,
    }
}
