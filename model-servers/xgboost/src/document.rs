//! The subset of XGBoost's model schema (`doc/model.schema`) the evaluator reads.
//!
//! Shared by the JSON and UBJSON paths: JSON is deserialized straight into these types,
//! UBJSON is first decoded to a `serde_json::Value`. Unknown fields are ignored.

use std::collections::HashMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub(crate) struct Document {
    pub learner: Learner,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Learner {
    pub learner_model_param: LearnerModelParam,
    pub objective: Objective,
    pub gradient_booster: GradientBooster,
    #[serde(default)]
    pub attributes: HashMap<String, String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct LearnerModelParam {
    /// `"5E-1"` in xgboost 1.x/2.x, `"[4.955E-1]"` (one per output) in 3.x.
    pub base_score: String,
    #[serde(default)]
    pub num_class: Option<String>,
    pub num_feature: String,
    #[serde(default)]
    pub num_target: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Objective {
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "name")]
pub(crate) enum GradientBooster {
    #[serde(rename = "gbtree")]
    Gbtree { model: GbtreeModel },
    #[serde(rename = "dart")]
    Dart {
        gbtree: Box<DartInner>,
        weight_drop: Vec<f32>,
    },
    #[serde(rename = "gblinear")]
    Gblinear {},
}

#[derive(Debug, Deserialize)]
pub(crate) struct DartInner {
    pub model: GbtreeModel,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GbtreeModel {
    pub gbtree_model_param: GbtreeModelParam,
    pub tree_info: Vec<u32>,
    pub trees: Vec<Tree>,
    /// Tree offsets per boosting round (xgboost ≥ 2.0); absent in older files.
    #[serde(default)]
    pub iteration_indptr: Option<Vec<usize>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GbtreeModelParam {
    #[serde(default)]
    pub num_parallel_tree: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Tree {
    pub tree_param: TreeParam,
    pub left_children: Vec<i32>,
    pub right_children: Vec<i32>,
    pub split_indices: Vec<i64>,
    pub split_conditions: Vec<f32>,
    pub default_left: Vec<BoolLike>,
    /// 0 numerical, 1 categorical; absent before xgboost 1.3.
    #[serde(default)]
    pub split_type: Vec<u8>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TreeParam {
    #[serde(default)]
    pub size_leaf_vector: Option<String>,
}

/// `default_left` is `0`/`1` in current files; accept booleans too.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum BoolLike {
    Bool(bool),
    Int(i64),
}

impl BoolLike {
    pub fn get(&self) -> bool {
        match self {
            BoolLike::Bool(b) => *b,
            BoolLike::Int(i) => *i != 0,
        }
    }
}
