//! Compare against lightgbm 4.7.0's own predictions (testdata/make_models.py) and check failures.
//!
//! Tolerance: |ours − lightgbm| ≤ max(1e-5 · |lightgbm|, 1e-6).

use std::path::PathBuf;

use seldon_lightgbm::{LgbError, LgbModel};
use serde_json::Value;

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

fn read_json(name: &str) -> Value {
    let bytes = std::fs::read(testdata(name)).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN))
        .collect()
}

/// (rows flattened row-major, n_rows, n_features); `null` → NaN.
fn input() -> (Vec<f64>, usize, usize) {
    let doc = read_json("input.json");
    let n_features = doc["n_features"].as_u64().unwrap() as usize;
    let rows = doc["rows"].as_array().unwrap();
    let flat: Vec<f64> = rows.iter().flat_map(floats).collect();
    assert_eq!(flat.len(), rows.len() * n_features);
    assert!(
        flat.iter().any(|x| x.is_nan()),
        "test input must contain NaNs"
    );
    assert!(flat.contains(&0.0), "test input must contain zeros");
    (flat, rows.len(), n_features)
}

fn compare(what: &str, ours: &[f64], theirs: &[f64]) {
    assert_eq!(ours.len(), theirs.len(), "{what}: length");
    let (mut max_abs, mut max_rel) = (0.0f64, 0.0f64);
    for (i, (&a, &b)) in ours.iter().zip(theirs).enumerate() {
        let err = (a - b).abs();
        max_abs = max_abs.max(err);
        if b.abs() > 0.1 {
            max_rel = max_rel.max(err / b.abs());
        }
        assert!(
            err <= (1e-5 * b.abs()).max(1e-6),
            "{what}[{i}]: ours {a} vs lightgbm {b}"
        );
    }
    eprintln!("{what}: max abs err {max_abs:e}, max rel err {max_rel:e}");
}

const CASES: &[(&str, &str, usize)] = &[
    ("binary", "binary", 1),
    ("multiclass", "multiclass", 3),
    ("regression", "regression", 1),
    ("regression_l1_zero_as_missing", "regression_l1", 1),
    ("poisson_no_missing", "poisson", 1),
    ("rf_binary", "binary", 1),
];

#[test]
fn matches_lightgbm_predict() {
    let (rows, n_rows, n_features) = input();
    for &(case, objective, outputs) in CASES {
        let expected = read_json(&format!("{case}.expected.json"));
        let model = LgbModel::load(testdata(&format!("{case}.txt"))).unwrap();
        assert_eq!(model.num_features(), n_features);
        assert_eq!(model.num_outputs(), outputs, "{case}");
        assert_eq!(model.objective(), objective);
        assert_eq!(model.num_iterations(), 20);
        compare(
            &format!("{case} predict"),
            &model.predict(&rows, n_rows).unwrap(),
            &floats(&expected["predictions"]),
        );
        compare(
            &format!("{case} raw"),
            &model.predict_margin(&rows, n_rows).unwrap(),
            &floats(&expected["raw_scores"]),
        );
    }
}

#[test]
fn predicts_all_rows_in_one_call() {
    let (rows, n_rows, _) = input();
    let model = LgbModel::load(testdata("multiclass.txt")).unwrap();
    let pred = model.predict(&rows, n_rows).unwrap();
    assert_eq!(pred.len(), n_rows * 3);
    for row in pred.chunks(3) {
        assert!(
            (row.iter().sum::<f64>() - 1.0).abs() < 1e-12,
            "softmax rows sum to 1"
        );
    }
}

#[test]
fn iteration_limit_truncates_trees() {
    let (rows, n_rows, _) = input();
    let model = LgbModel::load(testdata("multiclass.txt")).unwrap();
    let limited = model.clone().with_iteration_limit(5).unwrap();
    assert_eq!(limited.num_iterations(), 5);
    assert_ne!(
        limited.predict(&rows, n_rows).unwrap(),
        model.predict(&rows, n_rows).unwrap()
    );
    let all = model.clone().with_iteration_limit(20).unwrap();
    assert_eq!(
        all.predict(&rows, n_rows).unwrap(),
        model.predict(&rows, n_rows).unwrap()
    );
    for bad in [0, 21] {
        let err = model.clone().with_iteration_limit(bad).unwrap_err();
        assert!(
            matches!(err, LgbError::IterationLimit { requested, available: 20 } if requested == bad)
        );
    }
}

#[test]
fn rejects_categorical_split_naming_tree_and_node() {
    let err = LgbModel::load(testdata("categorical.txt")).unwrap_err();
    assert!(
        matches!(err, LgbError::CategoricalSplit { tree: 0, node: 0 }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "tree 0 node 0 is a categorical split; categorical features are not supported by the native LightGBM evaluator"
    );
}

#[test]
fn rejects_wrong_feature_count() {
    let model = LgbModel::load(testdata("binary.txt")).unwrap();
    let err = model.predict(&[0.0; 9], 1).unwrap_err();
    assert!(
        matches!(
            err,
            LgbError::InputShape {
                n_rows: 1,
                expected: 8,
                got: 9
            }
        ),
        "{err:?}"
    );
    let err = model.predict_margin(&[0.0; 8], 2).unwrap_err();
    assert!(
        matches!(
            err,
            LgbError::InputShape {
                n_rows: 2,
                expected: 8,
                got: 8
            }
        ),
        "{err:?}"
    );
    assert!(model.predict(&[], 0).unwrap().is_empty());
}

#[test]
fn rejects_truncated_and_garbage_files() {
    let text = std::fs::read_to_string(testdata("binary.txt")).unwrap();
    // Cut inside the trees: no `end of trees`.
    let err = LgbModel::from_text(&text[..text.len() / 3]).unwrap_err();
    assert!(
        matches!(&err, LgbError::Parse { reason, .. } if reason.contains("truncated")),
        "{err:?}"
    );
    // Whole trees dropped but the end marker kept: tree_sizes gives it away.
    let cut = text.find("Tree=10").unwrap();
    let end = text.find("end of trees").unwrap();
    let dropped = format!("{}{}", &text[..cut], &text[end..]);
    let err = LgbModel::from_text(&dropped).unwrap_err();
    assert!(
        matches!(&err, LgbError::Parse { reason, .. } if reason.contains("tree_sizes lists 20")),
        "{err:?}"
    );

    let err = LgbModel::from_bytes(&[0xff, 0xfe, 0x00, 0x01]).unwrap_err();
    assert!(
        matches!(&err, LgbError::Parse { line: 0, reason } if reason.contains("UTF-8")),
        "{err:?}"
    );
    let err = LgbModel::from_text("hello\nworld\n").unwrap_err();
    assert!(matches!(err, LgbError::Parse { .. }), "{err:?}");
    let err = LgbModel::from_text("").unwrap_err();
    assert!(matches!(err, LgbError::Parse { .. }), "{err:?}");

    let bad_number = text.replacen("leaf_value=-0.", "leaf_value=abc", 1);
    let err = LgbModel::from_text(&bad_number).unwrap_err();
    assert!(
        matches!(&err, LgbError::Parse { line, reason } if *line > 10 && reason.contains("\"abc")),
        "{err:?}"
    );

    let bad_child = text.replacen("left_child=4 ", "left_child=400 ", 1);
    let err = LgbModel::from_text(&bad_child).unwrap_err();
    assert!(
        matches!(&err, LgbError::Invalid(m) if m.contains("child 400 out of range")),
        "{err:?}"
    );
}

#[test]
fn rejects_unsupported_objective_and_linear_trees() {
    let text = std::fs::read_to_string(testdata("binary.txt")).unwrap();
    let ranked = text.replacen("objective=binary sigmoid:1", "objective=lambdarank", 1);
    let err = LgbModel::from_text(&ranked).unwrap_err();
    assert!(
        matches!(&err, LgbError::UnsupportedObjective(o) if o == "lambdarank"),
        "{err:?}"
    );

    // A custom objective leaves no `objective=` line: predict returns raw scores.
    let (rows, n_rows, _) = input();
    let custom =
        LgbModel::from_text(&text.replacen("objective=binary sigmoid:1\n", "", 1)).unwrap();
    assert_eq!(custom.objective(), "custom");
    let expected = read_json("binary.expected.json");
    compare(
        "custom objective",
        &custom.predict(&rows, n_rows).unwrap(),
        &floats(&expected["raw_scores"]),
    );

    let linear = text.replacen("is_linear=0", "is_linear=1", 1);
    let err = LgbModel::from_text(&linear).unwrap_err();
    assert!(matches!(err, LgbError::LinearTree { tree: 0 }), "{err:?}");
}

#[test]
fn missing_file_is_an_io_error_naming_the_path() {
    let err = LgbModel::load(testdata("nope.txt")).unwrap_err();
    assert!(
        matches!(&err, LgbError::Io { path, .. } if path.ends_with("nope.txt")),
        "{err:?}"
    );
}

#[test]
fn single_leaf_tree_predicts_its_value() {
    let text = "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\n\
        max_feature_idx=1\nobjective=regression\ntree_sizes=1\n\nTree=0\nnum_leaves=1\nnum_cat=0\n\
        split_feature=\nsplit_gain=\nthreshold=\ndecision_type=\nleaf_value=2.5\nleaf_weight=\n\
        leaf_count=\ninternal_value=\ninternal_weight=\ninternal_count=\nis_linear=0\nshrinkage=1\n\n\n\
        end of trees\n";
    let model = LgbModel::from_text(text).unwrap();
    assert_eq!(
        model.predict(&[1.0, f64::NAN, 0.0, 0.0], 2).unwrap(),
        vec![2.5, 2.5]
    );
}
