//! Pure-Rust evaluator for LightGBM text models (`model.txt` from `booster.save_model`) that matches `Booster.predict`.
//!
//! ```text
//!   model.txt ──parse header + `Tree=i` blocks──validate──► LgbModel
//!   rows (f64, row-major) ──► walk each tree (f64 `<=`, decision_type: default_left + missing None/Zero/NaN)
//!                         ──► raw[k] = Σ leaf over iterations (÷ iterations for rf) ──► objective transform
//! ```

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What failed while loading a model or predicting with it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LgbError {
    /// The model file could not be read.
    #[error("cannot read LightGBM model file {path}")]
    Io {
        /// The file we tried to read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The text does not follow the `model.txt` format.
    #[error("not a valid LightGBM text model: line {line}: {reason}")]
    Parse {
        /// 1-based line number (0 when the problem is the file as a whole).
        line: usize,
        /// What was wrong.
        reason: String,
    },
    /// The file parsed but breaks an invariant of the format.
    #[error("invalid LightGBM model: {0}")]
    Invalid(String),
    /// The objective's output transform is not implemented.
    #[error("unsupported LightGBM objective {0:?} (supported: {SUPPORTED_OBJECTIVES})")]
    UnsupportedObjective(String),
    /// A categorical split (`decision_type & 1`).
    #[error(
        "tree {tree} node {node} is a categorical split; categorical features are not supported \
         by the native LightGBM evaluator"
    )]
    CategoricalSplit {
        /// Index of the tree (`Tree=<tree>`).
        tree: usize,
        /// Internal node index inside that tree.
        node: usize,
    },
    /// A linear tree (`linear_tree=true`, `is_linear=1`).
    #[error("tree {tree} is a linear tree; not supported by the native LightGBM evaluator")]
    LinearTree {
        /// Index of the tree (`Tree=<tree>`).
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
    /// [`LgbModel::with_iteration_limit`] outside `1..=num_iterations()`.
    #[error("iteration limit {requested} is outside 1..={available}")]
    IterationLimit {
        /// The limit asked for.
        requested: usize,
        /// Iterations in the model.
        available: usize,
    },
}

const SUPPORTED_OBJECTIVES: &str = "binary, multiclass, multiclassova, cross_entropy, \
    regression, regression_l1, huber, fair, quantile, mape, poisson, gamma, tweedie, \
    custom (no objective line: raw scores)";

/// LightGBM's `kZeroThreshold`: |x| ≤ this counts as zero (and is dropped from dense rows).
const ZERO_THRESHOLD: f64 = 1e-35_f32 as f64;

/// What turns raw scores into `predict` output.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Transform {
    Identity,
    /// `sign(x)·x²` for regression objectives trained with `reg_sqrt`.
    Square,
    Sigmoid(f64),
    Softmax,
    Exp,
}

fn transform_for(objective_line: &str) -> Result<Transform, LgbError> {
    let mut tokens = objective_line.split_whitespace();
    let name = tokens.next().unwrap_or_default();
    let mut sigmoid = 1.0;
    let mut sqrt = false;
    for token in tokens {
        match token.split_once(':') {
            Some(("sigmoid", v)) => {
                sigmoid = v.parse().map_err(|_| {
                    LgbError::Invalid(format!("objective {objective_line:?}: bad sigmoid {v:?}"))
                })?;
            }
            None if token == "sqrt" => sqrt = true,
            _ => {}
        }
    }
    Ok(match name {
        "binary" | "multiclassova" => Transform::Sigmoid(sigmoid),
        "cross_entropy" => Transform::Sigmoid(1.0),
        "multiclass" => Transform::Softmax,
        "regression" | "regression_l1" | "huber" | "fair" | "quantile" | "mape" => {
            if sqrt {
                Transform::Square
            } else {
                Transform::Identity
            }
        }
        "poisson" | "gamma" | "tweedie" => Transform::Exp,
        "custom" => Transform::Identity,
        _ => return Err(LgbError::UnsupportedObjective(name.to_string())),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Missing {
    None,
    Zero,
    NaN,
}

#[derive(Debug, Clone, Copy)]
struct Split {
    threshold: f64,
    feature: u32,
    /// Child references as in the file: `>= 0` internal node, `< 0` leaf `!child`.
    left: i32,
    right: i32,
    default_left: bool,
    missing: Missing,
}

#[derive(Debug, Clone)]
struct Tree {
    splits: Vec<Split>,
    leaves: Vec<f64>,
}

impl Tree {
    fn predict(&self, row: &[f64]) -> f64 {
        if self.splits.is_empty() {
            return self.leaves[0];
        }
        let mut node = 0i32;
        while node >= 0 {
            let s = &self.splits[node as usize];
            let mut x = row[s.feature as usize];
            if x.is_nan() && s.missing != Missing::NaN {
                x = 0.0;
            }
            let is_missing = match s.missing {
                Missing::Zero => (-ZERO_THRESHOLD..=ZERO_THRESHOLD).contains(&x),
                Missing::NaN => x.is_nan(),
                Missing::None => false,
            };
            let left = if is_missing {
                s.default_left
            } else {
                x <= s.threshold
            };
            node = if left { s.left } else { s.right };
        }
        self.leaves[!node as usize]
    }
}

/// A loaded LightGBM tree model (gbdt, dart, goss or rf), ready to predict.
#[derive(Debug, Clone)]
pub struct LgbModel {
    objective: String,
    transform: Transform,
    num_features: usize,
    trees_per_iteration: usize,
    average_output: bool,
    trees: Vec<Tree>,
}

impl LgbModel {
    /// Load a `model.txt` file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, LgbError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| LgbError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes)
    }

    /// Load from the bytes of a `model.txt` (must be UTF-8).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, LgbError> {
        let text = std::str::from_utf8(bytes).map_err(|e| LgbError::Parse {
            line: 0,
            reason: format!("not UTF-8 text (byte {})", e.valid_up_to()),
        })?;
        Self::from_text(text)
    }

    /// Load from the text of a `model.txt` (`booster.model_to_string()`).
    pub fn from_text(text: &str) -> Result<Self, LgbError> {
        let parsed = parse(text)?;
        let header = &parsed.header;
        let get = |key: &str| {
            header.get(key).copied().ok_or_else(|| LgbError::Parse {
                line: 0,
                reason: format!("header has no `{key}=` line"),
            })
        };
        if parsed.first_line.trim() != "tree" {
            return Err(LgbError::Parse {
                line: 1,
                reason: "expected `tree` on the first line".into(),
            });
        }
        let num_features = parse_num::<usize>(get("max_feature_idx")?, "max_feature_idx")? + 1;
        let trees_per_iteration =
            parse_num::<usize>(get("num_tree_per_iteration")?, "num_tree_per_iteration")?;
        if trees_per_iteration == 0 {
            return Err(LgbError::Invalid("num_tree_per_iteration is 0".into()));
        }
        // No `objective=` line: trained with a custom objective; lightgbm returns raw scores.
        let objective_line = header.get("objective").copied().unwrap_or("custom");
        let transform = transform_for(objective_line)?;
        let objective = objective_line
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();

        if let Some(sizes) = header.get("tree_sizes") {
            let expected = sizes.split_whitespace().count();
            if expected != parsed.trees.len() {
                return Err(LgbError::Parse {
                    line: 0,
                    reason: format!(
                        "tree_sizes lists {expected} trees but {} were found",
                        parsed.trees.len()
                    ),
                });
            }
        }
        let trees = parsed
            .trees
            .iter()
            .enumerate()
            .map(|(i, block)| build_tree(i, block, num_features))
            .collect::<Result<Vec<_>, _>>()?;
        if trees.is_empty() || trees.len() % trees_per_iteration != 0 {
            return Err(LgbError::Invalid(format!(
                "{} trees is not a positive multiple of {trees_per_iteration} trees per iteration",
                trees.len()
            )));
        }
        if transform == Transform::Softmax && trees_per_iteration < 2 {
            return Err(LgbError::Invalid(
                "multiclass model with one tree per iteration".into(),
            ));
        }
        Ok(Self {
            objective,
            transform,
            num_features,
            trees_per_iteration,
            average_output: parsed.average_output,
            trees,
        })
    }

    /// Use only the first `iterations` iterations, like `predict(num_iteration=iterations)`.
    pub fn with_iteration_limit(mut self, iterations: usize) -> Result<Self, LgbError> {
        let available = self.num_iterations();
        if iterations == 0 || iterations > available {
            return Err(LgbError::IterationLimit {
                requested: iterations,
                available,
            });
        }
        self.trees.truncate(iterations * self.trees_per_iteration);
        Ok(self)
    }

    /// Number of input features per row (`max_feature_idx + 1`).
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// Values per row returned by `predict` and `predict_margin`: classes for multiclass, else 1.
    pub fn num_outputs(&self) -> usize {
        self.trees_per_iteration
    }

    /// The objective name as saved, e.g. `"binary"` (parameters such as `sigmoid:1` dropped);
    /// `"custom"` when the file has no objective (then `predict` returns raw scores).
    pub fn objective(&self) -> &str {
        &self.objective
    }

    /// Boosting iterations in use.
    pub fn num_iterations(&self) -> usize {
        self.trees.len() / self.trees_per_iteration
    }

    /// Predict `n_rows` row-major rows; returns `n_rows × num_outputs()` values:
    /// probabilities for binary/multiclass, values for regression, rates for poisson.
    pub fn predict(&self, rows: &[f64], n_rows: usize) -> Result<Vec<f64>, LgbError> {
        let mut out = self.raw_scores(rows, n_rows, self.average_output)?;
        match self.transform {
            Transform::Identity => {}
            Transform::Square => out.iter_mut().for_each(|x| *x = x.signum() * *x * *x),
            Transform::Sigmoid(s) => out
                .iter_mut()
                .for_each(|x| *x = 1.0 / (1.0 + (-s * *x).exp())),
            Transform::Exp => out.iter_mut().for_each(|x| *x = x.exp()),
            Transform::Softmax => out.chunks_mut(self.trees_per_iteration).for_each(softmax),
        }
        Ok(out)
    }

    /// Raw scores (`predict(raw_score=True)`): `n_rows × num_outputs()` values. Like
    /// LightGBM, this is the plain sum over trees even for `rf` (`average_output`): only
    /// [`predict`](Self::predict) divides by the number of iterations.
    pub fn predict_margin(&self, rows: &[f64], n_rows: usize) -> Result<Vec<f64>, LgbError> {
        self.raw_scores(rows, n_rows, false)
    }

    fn raw_scores(&self, rows: &[f64], n_rows: usize, average: bool) -> Result<Vec<f64>, LgbError> {
        let f = self.num_features;
        if n_rows.checked_mul(f) != Some(rows.len()) {
            return Err(LgbError::InputShape {
                n_rows,
                expected: f,
                got: rows.len(),
            });
        }
        let k = self.trees_per_iteration;
        let iterations = self.num_iterations() as f64;
        let mut out = vec![0.0f64; n_rows * k];
        let mut row = vec![0.0f64; f];
        for (r, scores) in out.chunks_mut(k).enumerate() {
            // LightGBM drops |x| ≤ kZeroThreshold from dense rows, so they read as 0.0.
            for (dst, &x) in row.iter_mut().zip(&rows[r * f..(r + 1) * f]) {
                *dst = if x.abs() <= ZERO_THRESHOLD { 0.0 } else { x };
            }
            for (t, tree) in self.trees.iter().enumerate() {
                scores[t % k] += tree.predict(&row);
            }
            if average {
                scores.iter_mut().for_each(|s| *s /= iterations);
            }
        }
        Ok(out)
    }
}

struct Parsed<'a> {
    first_line: &'a str,
    header: HashMap<&'a str, &'a str>,
    average_output: bool,
    trees: Vec<Block<'a>>,
}

/// One `Tree=i` block: key → (value, line number).
type Block<'a> = HashMap<&'a str, (&'a str, usize)>;

fn parse(text: &str) -> Result<Parsed<'_>, LgbError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')));
    let first_line = lines.next().map(|(_, l)| l).unwrap_or_default();
    let mut parsed = Parsed {
        first_line,
        header: HashMap::new(),
        average_output: false,
        trees: Vec::new(),
    };
    let mut current: Option<Block<'_>> = None;
    for (n, line) in lines {
        if line == "end of trees" {
            parsed.trees.extend(current.take());
            return Ok(parsed);
        }
        if line.is_empty() {
            continue;
        }
        if let Some(index) = line.strip_prefix("Tree=") {
            parsed.trees.extend(current.take());
            if index.parse::<usize>().ok() != Some(parsed.trees.len()) {
                return Err(LgbError::Parse {
                    line: n,
                    reason: format!("expected Tree={}, found {line:?}", parsed.trees.len()),
                });
            }
            current = Some(HashMap::new());
            continue;
        }
        match (&mut current, line.split_once('=')) {
            (Some(block), Some((key, value))) => {
                block.insert(key, (value, n));
            }
            (None, Some((key, value))) => {
                parsed.header.insert(key, value);
            }
            (None, None) if line == "average_output" => parsed.average_output = true,
            (None, None) => {} // other bare header flags carry no prediction semantics
            (Some(_), None) => {
                return Err(LgbError::Parse {
                    line: n,
                    reason: format!("expected key=value, found {line:?}"),
                });
            }
        }
    }
    Err(LgbError::Parse {
        line: 0,
        reason: "truncated: no `end of trees` line".into(),
    })
}

fn parse_num<T: std::str::FromStr>(value: &str, what: &str) -> Result<T, LgbError> {
    value.trim().parse().map_err(|_| LgbError::Parse {
        line: 0,
        reason: format!("{what}: {value:?} is not a number"),
    })
}

fn build_tree(t: usize, block: &Block<'_>, num_features: usize) -> Result<Tree, LgbError> {
    let field = |key: &str| {
        block.get(key).copied().ok_or_else(|| LgbError::Parse {
            line: 0,
            reason: format!("tree {t} has no `{key}=` line"),
        })
    };
    let array = |key: &str, len: usize| -> Result<Vec<&str>, LgbError> {
        let (value, line) = field(key)?;
        let items: Vec<&str> = value.split_whitespace().collect();
        if items.len() != len {
            return Err(LgbError::Parse {
                line,
                reason: format!("tree {t}: {key} has {} values, expected {len}", items.len()),
            });
        }
        Ok(items)
    };
    let numbers = |key: &str, len: usize| -> Result<Vec<f64>, LgbError> {
        let (_, line) = field(key)?;
        array(key, len)?
            .into_iter()
            .map(|v| {
                v.parse::<f64>().map_err(|_| LgbError::Parse {
                    line,
                    reason: format!("tree {t}: {key} value {v:?} is not a number"),
                })
            })
            .collect()
    };
    let integers = |key: &str, len: usize| -> Result<Vec<i64>, LgbError> {
        let (_, line) = field(key)?;
        array(key, len)?
            .into_iter()
            .map(|v| {
                v.parse::<i64>().map_err(|_| LgbError::Parse {
                    line,
                    reason: format!("tree {t}: {key} value {v:?} is not an integer"),
                })
            })
            .collect()
    };

    if block.get("is_linear").is_some_and(|(v, _)| v.trim() != "0") {
        return Err(LgbError::LinearTree { tree: t });
    }
    let (num_leaves_raw, line) = field("num_leaves")?;
    let num_leaves: usize = num_leaves_raw.trim().parse().map_err(|_| LgbError::Parse {
        line,
        reason: format!("tree {t}: num_leaves {num_leaves_raw:?} is not a count"),
    })?;
    if num_leaves == 0 {
        return Err(LgbError::Invalid(format!("tree {t} has no leaves")));
    }
    let leaves = numbers("leaf_value", num_leaves)?;
    let n = num_leaves - 1;
    if n == 0 {
        return Ok(Tree {
            splits: Vec::new(),
            leaves,
        });
    }
    let features = integers("split_feature", n)?;
    let thresholds = numbers("threshold", n)?;
    let decision_types = integers("decision_type", n)?;
    let lefts = integers("left_child", n)?;
    let rights = integers("right_child", n)?;

    let child = |c: i64, node: usize| -> Result<i32, LgbError> {
        let ok = if c >= 0 {
            (c as usize) < n
        } else {
            ((!c) as usize) < num_leaves
        };
        match i32::try_from(c) {
            Ok(c) if ok => Ok(c),
            _ => Err(LgbError::Invalid(format!(
                "tree {t} node {node}: child {c} out of range"
            ))),
        }
    };
    let mut splits = Vec::with_capacity(n);
    for i in 0..n {
        let decision = decision_types[i];
        if decision & 1 != 0 {
            return Err(LgbError::CategoricalSplit { tree: t, node: i });
        }
        let missing = match (decision >> 2) & 3 {
            0 => Missing::None,
            1 => Missing::Zero,
            2 => Missing::NaN,
            other => {
                return Err(LgbError::Invalid(format!(
                    "tree {t} node {i}: missing type {other}"
                )));
            }
        };
        let feature = u32::try_from(features[i])
            .ok()
            .filter(|&f| (f as usize) < num_features)
            .ok_or_else(|| {
                LgbError::Invalid(format!(
                    "tree {t} node {i}: feature {} of {num_features}",
                    features[i]
                ))
            })?;
        splits.push(Split {
            threshold: thresholds[i],
            feature,
            left: child(lefts[i], i)?,
            right: child(rights[i], i)?,
            default_left: decision & 2 != 0,
            missing,
        });
    }
    // Every node and leaf reachable from the root exactly once: the walk always ends.
    let mut seen_node = vec![false; n];
    let mut seen_leaf = vec![false; num_leaves];
    let mut stack = vec![0i32];
    while let Some(c) = stack.pop() {
        let seen = if c >= 0 {
            &mut seen_node[c as usize]
        } else {
            &mut seen_leaf[!c as usize]
        };
        if std::mem::replace(seen, true) {
            return Err(LgbError::Invalid(format!(
                "tree {t}: node {c} is reached twice (not a tree)"
            )));
        }
        if c >= 0 {
            let s = &splits[c as usize];
            stack.extend([s.left, s.right]);
        }
    }
    Ok(Tree { splits, leaves })
}

fn softmax(row: &mut [f64]) {
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objective_line_picks_transform() {
        assert_eq!(
            transform_for("binary sigmoid:2").unwrap(),
            Transform::Sigmoid(2.0)
        );
        assert_eq!(
            transform_for("multiclass num_class:3").unwrap(),
            Transform::Softmax
        );
        assert_eq!(transform_for("regression sqrt").unwrap(), Transform::Square);
        assert_eq!(transform_for("regression_l1").unwrap(), Transform::Identity);
        assert_eq!(transform_for("poisson").unwrap(), Transform::Exp);
        assert!(
            matches!(transform_for("lambdarank"), Err(LgbError::UnsupportedObjective(o)) if o == "lambdarank")
        );
        assert!(matches!(
            transform_for("binary sigmoid:x"),
            Err(LgbError::Invalid(_))
        ));
    }
}
