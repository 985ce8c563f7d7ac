//! Pure-Rust evaluator for native XGBoost models (`model.json` / `model.ubj`) that matches `Booster.predict`.
//!
//! ```text
//!   bytes ──(JSON | UBJSON → serde_json::Value)──► document::Document ──validate──► XgbModel
//!   rows (f32, row-major) ──► walk every tree (f32, strict `<`, NaN/missing → default_left)
//!                         ──► margin = base_margin + Σ weight·leaf ──► objective transform
//! ```
//!
//! Legacy binary `model.bst` files are not read: [`XgbError::LegacyBinary`].

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod document;
mod ubjson;

use std::path::{Path, PathBuf};

use document::{Document, GradientBooster};

/// What failed while loading a model or predicting with it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XgbError {
    /// The model file could not be read.
    #[error("cannot read XGBoost model file {path}")]
    Io {
        /// The file we tried to read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a JSON document of XGBoost's model schema.
    #[error("not a valid XGBoost JSON model: {0}")]
    Json(#[source] serde_json::Error),
    /// The bytes are not valid UBJSON.
    #[error("not a valid XGBoost UBJSON model: invalid UBJSON at byte {offset}: {reason}")]
    Ubjson {
        /// Byte offset of the problem.
        offset: usize,
        /// What was wrong there.
        reason: String,
    },
    /// A legacy binary (`model.bst`, pre-JSON) model: no public schema, not read natively.
    #[error(
        "legacy binary XGBoost model (`model.bst` format) is not supported by the native loader; \
         the model initializer converts it to model.ubj at fetch time (XGBOOST_SERVER), or \
         re-save it with `booster.save_model(\"model.json\")` or `\"model.ubj\"` (xgboost >= 1.0)"
    )]
    LegacyBinary,
    /// The document parsed but breaks an invariant of the format.
    #[error("invalid XGBoost model: {0}")]
    Invalid(String),
    /// The objective's output transform is not implemented.
    #[error("unsupported XGBoost objective {0:?} (supported: {SUPPORTED_OBJECTIVES})")]
    UnsupportedObjective(String),
    /// Only tree boosters are evaluated natively.
    #[error("unsupported XGBoost booster {0:?}: only gbtree and dart are evaluated natively")]
    UnsupportedBooster(String),
    /// A categorical split (`split_type == 1`).
    #[error(
        "tree {tree} node {node} is a categorical split; categorical features are not supported \
         by the native XGBoost evaluator"
    )]
    CategoricalSplit {
        /// Index into the model's tree list.
        tree: usize,
        /// Node id inside that tree.
        node: usize,
    },
    /// A tree with vector leaves (`multi_strategy="multi_output_tree"`).
    #[error(
        "tree {tree} has vector leaves (multi_output_tree); not supported by the native evaluator"
    )]
    VectorLeaf {
        /// Index into the model's tree list.
        tree: usize,
    },
    /// `rows.len()` is not `n_rows × num_features()`.
    #[error("input has {got} values for {n_rows} rows; expected {n_rows} × {expected} features")]
    InputShape {
        /// Rows the caller said it passed.
        n_rows: usize,
        /// Features the model was trained on.
        expected: usize,
        /// Values actually passed.
        got: usize,
    },
    /// [`XgbModel::with_iteration_limit`] outside `1..=num_iterations()`.
    #[error("iteration limit {requested} is outside 1..={available}")]
    IterationLimit {
        /// The limit asked for.
        requested: usize,
        /// Boosting rounds in the model.
        available: usize,
    },
}

const SUPPORTED_OBJECTIVES: &str = "binary:logistic, binary:logitraw, reg:logistic, \
    multi:softprob, multi:softmax, reg:squarederror, reg:linear, reg:absoluteerror, \
    reg:pseudohubererror, count:poisson, reg:gamma, reg:tweedie";

/// How `base_score` (stored in output space) maps to a margin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BaseSpace {
    Margin,
    Logit,
    Log,
}

/// What turns margins into `predict` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transform {
    Identity,
    Sigmoid,
    Exp,
    Softmax,
    ArgMax,
}

fn objective_kind(name: &str) -> Option<(BaseSpace, Transform)> {
    Some(match name {
        "binary:logistic" | "reg:logistic" => (BaseSpace::Logit, Transform::Sigmoid),
        // Unlike binary:logistic, logitraw's base_score is used as a margin (verified, 3.2.0).
        "binary:logitraw" => (BaseSpace::Margin, Transform::Identity),
        "multi:softprob" => (BaseSpace::Margin, Transform::Softmax),
        "multi:softmax" => (BaseSpace::Margin, Transform::ArgMax),
        "reg:squarederror" | "reg:linear" | "reg:absoluteerror" | "reg:pseudohubererror" => {
            (BaseSpace::Margin, Transform::Identity)
        }
        "count:poisson" | "reg:gamma" | "reg:tweedie" => (BaseSpace::Log, Transform::Exp),
        _ => return None,
    })
}

#[derive(Debug, Clone, Copy)]
struct Node {
    /// Split threshold, or the leaf value when `leaf`.
    value: f32,
    feature: u32,
    left: u32,
    right: u32,
    default_left: bool,
    leaf: bool,
}

#[derive(Debug, Clone)]
struct Tree {
    nodes: Vec<Node>,
    group: usize,
    /// `weight_drop` for dart, 1.0 for gbtree.
    weight: f32,
}

impl Tree {
    fn leaf_value(&self, row: &[f32], missing: f32) -> f32 {
        let mut i = 0usize;
        loop {
            let node = &self.nodes[i];
            if node.leaf {
                return node.value;
            }
            let x = row[node.feature as usize];
            // XGBoost compares in f32 with strict `<`; NaN and the `missing` value take the default.
            let left = if x.is_nan() || x == missing {
                node.default_left
            } else {
                x < node.value
            };
            i = if left { node.left } else { node.right } as usize;
        }
    }
}

/// A loaded XGBoost tree model (gbtree or dart), ready to predict.
#[derive(Debug, Clone)]
pub struct XgbModel {
    objective: String,
    transform: Transform,
    num_features: usize,
    num_groups: usize,
    base_margin: Vec<f32>,
    trees: Vec<Tree>,
    /// Tree offsets per boosting round: round `r` is `trees[rounds[r]..rounds[r + 1]]`.
    rounds: Vec<usize>,
    best_iteration: Option<usize>,
    missing: f32,
}

impl XgbModel {
    /// Load a model file. `.json` is read as JSON and `.ubj` as UBJSON; any other name
    /// (e.g. `model.bst`, which xgboost ≥ 2 also writes as UBJSON) is recognised by content.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, XgbError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| XgbError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Self::from_json_bytes(&bytes),
            Some("ubj") => Self::from_ubjson_bytes(&bytes),
            _ => Self::from_bytes(&bytes),
        }
    }

    /// Load from bytes in either encoding, recognised by the first bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, XgbError> {
        let mut rest = bytes.iter().copied().skip_while(u8::is_ascii_whitespace);
        match (rest.next(), rest.find(|b| !b.is_ascii_whitespace())) {
            (Some(b'{'), Some(b'"' | b'}')) => Self::from_json_bytes(bytes),
            (Some(b'{'), Some(b'i' | b'U' | b'I' | b'l' | b'L' | b'$' | b'#' | b'N')) => {
                Self::from_ubjson_bytes(bytes)
            }
            _ => Err(XgbError::LegacyBinary),
        }
    }

    /// Load a model saved as JSON (`booster.save_model("model.json")`).
    pub fn from_json_bytes(bytes: &[u8]) -> Result<Self, XgbError> {
        if bytes.starts_with(b"binf") {
            return Err(XgbError::LegacyBinary);
        }
        let doc: Document = serde_json::from_slice(bytes).map_err(XgbError::Json)?;
        Self::from_document(doc)
    }

    /// Load a model saved as UBJSON (`booster.save_model("model.ubj")`, the default format).
    pub fn from_ubjson_bytes(bytes: &[u8]) -> Result<Self, XgbError> {
        if bytes.starts_with(b"binf") {
            return Err(XgbError::LegacyBinary);
        }
        let value = ubjson::from_slice(bytes).map_err(|e| XgbError::Ubjson {
            offset: e.offset,
            reason: e.reason,
        })?;
        let doc: Document = serde_json::from_value(value).map_err(XgbError::Json)?;
        Self::from_document(doc)
    }

    fn from_document(doc: Document) -> Result<Self, XgbError> {
        let learner = doc.learner;
        let param = &learner.learner_model_param;
        let objective = learner.objective.name;
        let (base_space, transform) = objective_kind(&objective)
            .ok_or_else(|| XgbError::UnsupportedObjective(objective.clone()))?;

        let num_features = parse_count("num_feature", &param.num_feature)?;
        if num_features == 0 {
            return Err(invalid("num_feature is 0".into()));
        }
        let num_class = match &param.num_class {
            Some(s) => parse_count("num_class", s)?,
            None => 0,
        };
        let num_target = match &param.num_target {
            Some(s) => parse_count("num_target", s)?,
            None => 1,
        };
        let num_groups = if num_class > 0 {
            num_class
        } else {
            num_target.max(1)
        };
        let base_margin = base_margin(&param.base_score, num_groups, base_space)?;

        let (model, weights) = match learner.gradient_booster {
            GradientBooster::Gbtree { model } => (model, None),
            GradientBooster::Dart {
                gbtree,
                weight_drop,
            } => (gbtree.model, Some(weight_drop)),
            GradientBooster::Gblinear {} => {
                return Err(XgbError::UnsupportedBooster("gblinear".into()));
            }
        };
        let n_trees = model.trees.len();
        if model.tree_info.len() != n_trees {
            return Err(invalid(format!(
                "tree_info has {} entries for {n_trees} trees",
                model.tree_info.len()
            )));
        }
        if let Some(w) = &weights
            && w.len() != n_trees
        {
            return Err(invalid(format!(
                "weight_drop has {} entries for {n_trees} trees",
                w.len()
            )));
        }

        let mut trees = Vec::with_capacity(n_trees);
        for (t, doc_tree) in model.trees.iter().enumerate() {
            let group = model.tree_info[t] as usize;
            if group >= num_groups {
                return Err(invalid(format!(
                    "tree {t} belongs to output {group} of {num_groups}"
                )));
            }
            let weight = weights.as_ref().map_or(1.0, |w| w[t]);
            trees.push(Tree {
                nodes: build_nodes(t, doc_tree, num_features)?,
                group,
                weight,
            });
        }

        let rounds = match model.iteration_indptr {
            Some(ptr) => {
                let ok = ptr.first() == Some(&0)
                    && ptr.last() == Some(&n_trees)
                    && ptr.windows(2).all(|w| w[0] <= w[1]);
                if !ok {
                    return Err(invalid(
                        "iteration_indptr does not partition the trees".into(),
                    ));
                }
                ptr
            }
            None => {
                let parallel = match &model.gbtree_model_param.num_parallel_tree {
                    Some(s) => parse_count("num_parallel_tree", s)?.max(1),
                    None => 1,
                };
                let per_round = parallel * num_groups;
                if n_trees % per_round != 0 {
                    return Err(invalid(format!(
                        "{n_trees} trees is not a multiple of {per_round} trees per round"
                    )));
                }
                (0..=n_trees / per_round).map(|r| r * per_round).collect()
            }
        };

        let best_iteration = match learner.attributes.get("best_iteration") {
            Some(s) => Some(parse_count("best_iteration", s)?),
            None => None,
        };

        Ok(Self {
            objective,
            transform,
            num_features,
            num_groups,
            base_margin,
            trees,
            rounds,
            best_iteration,
            missing: f32::NAN,
        })
    }

    /// Treat `missing` (in addition to NaN) as a missing value, like `DMatrix(missing=…)`.
    #[must_use]
    pub fn with_missing(mut self, missing: f32) -> Self {
        self.missing = missing;
        self
    }

    /// Use only the first `iterations` boosting rounds, like
    /// `predict(iteration_range=(0, iterations))`; `best_iteration() + 1` reproduces the
    /// scikit-learn wrapper after early stopping. `Booster.predict` uses all rounds.
    pub fn with_iteration_limit(mut self, iterations: usize) -> Result<Self, XgbError> {
        let available = self.num_iterations();
        if iterations == 0 || iterations > available {
            return Err(XgbError::IterationLimit {
                requested: iterations,
                available,
            });
        }
        self.trees.truncate(self.rounds[iterations]);
        self.rounds.truncate(iterations + 1);
        Ok(self)
    }

    /// Number of input features per row.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// Values per row returned by [`predict`](Self::predict): classes for `multi:softprob`,
    /// 1 for `multi:softmax` (the class index) and for binary/regression objectives.
    pub fn num_outputs(&self) -> usize {
        if self.transform == Transform::ArgMax {
            1
        } else {
            self.num_groups
        }
    }

    /// Values per row returned by [`predict_margin`](Self::predict_margin).
    pub fn num_margins(&self) -> usize {
        self.num_groups
    }

    /// The objective name as saved, e.g. `"binary:logistic"`.
    pub fn objective(&self) -> &str {
        &self.objective
    }

    /// Boosting rounds in use.
    pub fn num_iterations(&self) -> usize {
        self.rounds.len().saturating_sub(1)
    }

    /// `best_iteration` recorded by early stopping (0-based), if any.
    pub fn best_iteration(&self) -> Option<usize> {
        self.best_iteration
    }

    /// Predict `n_rows` row-major rows; returns `n_rows × num_outputs()` values:
    /// probabilities for logistic/softprob, class index for softmax, values for regression.
    pub fn predict(&self, rows: &[f32], n_rows: usize) -> Result<Vec<f32>, XgbError> {
        let margins = self.predict_margin(rows, n_rows)?;
        let g = self.num_groups;
        Ok(match self.transform {
            Transform::Identity => margins,
            Transform::Sigmoid => margins.into_iter().map(sigmoid).collect(),
            Transform::Exp => margins.into_iter().map(f32::exp).collect(),
            Transform::Softmax => {
                let mut out = margins;
                out.chunks_mut(g).for_each(softmax);
                out
            }
            Transform::ArgMax => margins.chunks(g).map(argmax).collect(),
        })
    }

    /// Untransformed scores (`output_margin=True`): `n_rows × num_margins()` values.
    pub fn predict_margin(&self, rows: &[f32], n_rows: usize) -> Result<Vec<f32>, XgbError> {
        let f = self.num_features;
        if n_rows.checked_mul(f) != Some(rows.len()) {
            return Err(XgbError::InputShape {
                n_rows,
                expected: f,
                got: rows.len(),
            });
        }
        let g = self.num_groups;
        let mut out = Vec::with_capacity(n_rows * g);
        for r in 0..n_rows {
            let row = &rows[r * f..(r + 1) * f];
            let start = out.len();
            out.extend_from_slice(&self.base_margin);
            let margin = &mut out[start..];
            for tree in &self.trees {
                margin[tree.group] += tree.leaf_value(row, self.missing) * tree.weight;
            }
        }
        Ok(out)
    }
}

fn invalid(reason: String) -> XgbError {
    XgbError::Invalid(reason)
}

fn parse_count(field: &str, s: &str) -> Result<usize, XgbError> {
    s.trim()
        .parse()
        .map_err(|_| invalid(format!("{field} {s:?} is not a non-negative integer")))
}

/// `base_score` is `"5E-1"` (1.x/2.x) or `"[4.955E-1]"` / `"[a,b,c]"` (3.x), in output space.
fn base_margin(raw: &str, num_groups: usize, space: BaseSpace) -> Result<Vec<f32>, XgbError> {
    let inner = raw.trim().trim_start_matches('[').trim_end_matches(']');
    let values = inner
        .split(',')
        .map(|v| v.trim().parse::<f32>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| {
            invalid(format!(
                "base_score {raw:?} is not a number or list of numbers"
            ))
        })?;
    let values = match values.len() {
        n if n == num_groups => values,
        1 => vec![values[0]; num_groups],
        n => {
            return Err(invalid(format!(
                "base_score has {n} values for {num_groups} outputs"
            )));
        }
    };
    values
        .into_iter()
        .map(|b| {
            let m = match space {
                BaseSpace::Margin => b,
                // xgboost: -log(1/p - 1) and log(p), in f32.
                BaseSpace::Logit => -(1.0f32 / b - 1.0).ln(),
                BaseSpace::Log => b.ln(),
            };
            if m.is_finite() {
                Ok(m)
            } else {
                Err(invalid(format!("base_score {raw:?} has no finite margin")))
            }
        })
        .collect()
}

fn build_nodes(
    t: usize,
    tree: &document::Tree,
    num_features: usize,
) -> Result<Vec<Node>, XgbError> {
    let n = tree.left_children.len();
    let lens = [
        tree.right_children.len(),
        tree.split_indices.len(),
        tree.split_conditions.len(),
        tree.default_left.len(),
    ];
    if n == 0
        || lens.iter().any(|&l| l != n)
        || !(tree.split_type.is_empty() || tree.split_type.len() == n)
    {
        return Err(invalid(format!(
            "tree {t}: node arrays are empty or of different lengths"
        )));
    }
    if let Some(s) = &tree.tree_param.size_leaf_vector
        && parse_count("size_leaf_vector", s)? > 1
    {
        return Err(XgbError::VectorLeaf { tree: t });
    }
    let child = |c: i32, node: usize| -> Result<u32, XgbError> {
        u32::try_from(c)
            .ok()
            .filter(|&c| (c as usize) < n)
            .ok_or_else(|| invalid(format!("tree {t} node {node}: child {c} out of range")))
    };
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let leaf = tree.left_children[i] == -1;
        let mut node = Node {
            value: tree.split_conditions[i],
            feature: 0,
            left: 0,
            right: 0,
            default_left: tree.default_left[i].get(),
            leaf,
        };
        if !leaf {
            if tree.split_type.get(i).copied().unwrap_or(0) != 0 {
                return Err(XgbError::CategoricalSplit { tree: t, node: i });
            }
            let feature = tree.split_indices[i];
            node.feature = u32::try_from(feature)
                .ok()
                .filter(|&f| (f as usize) < num_features)
                .ok_or_else(|| {
                    invalid(format!(
                        "tree {t} node {i}: feature {feature} of {num_features}"
                    ))
                })?;
            node.left = child(tree.left_children[i], i)?;
            node.right = child(tree.right_children[i], i)?;
        }
        nodes.push(node);
    }
    // Every node reachable from the root exactly once: the walk always ends at a leaf.
    let mut seen = vec![false; n];
    let mut stack = vec![0u32];
    while let Some(i) = stack.pop() {
        let i = i as usize;
        if std::mem::replace(&mut seen[i], true) {
            return Err(invalid(format!(
                "tree {t}: node {i} is reached twice (not a tree)"
            )));
        }
        if !nodes[i].leaf {
            stack.extend([nodes[i].left, nodes[i].right]);
        }
    }
    Ok(nodes)
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

/// First index of the largest margin, as a float (xgboost's `multi:softmax` output).
fn argmax(row: &[f32]) -> f32 {
    let mut best = 0usize;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_score_scalar_and_vector_forms() {
        assert_eq!(base_margin("5E-1", 1, BaseSpace::Logit).unwrap(), vec![0.0]);
        assert_eq!(
            base_margin("[1E0,2E0]", 2, BaseSpace::Margin).unwrap(),
            vec![1.0, 2.0]
        );
        assert_eq!(
            base_margin("[5E-1]", 3, BaseSpace::Margin).unwrap(),
            vec![0.5; 3]
        );
        assert!(matches!(
            base_margin("[1,2]", 3, BaseSpace::Margin),
            Err(XgbError::Invalid(_))
        ));
        assert!(matches!(
            base_margin("abc", 1, BaseSpace::Margin),
            Err(XgbError::Invalid(_))
        ));
        assert!(matches!(
            base_margin("1E0", 1, BaseSpace::Logit),
            Err(XgbError::Invalid(_))
        ));
    }

    #[test]
    fn argmax_takes_first_maximum() {
        assert_eq!(argmax(&[0.1, 0.7, 0.7]), 1.0);
        assert_eq!(argmax(&[2.0]), 0.0);
    }
}
