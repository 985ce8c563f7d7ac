//! Compare against xgboost 3.2.0's own predictions (testdata/make_models.py) and check failures.
//!
//! Tolerance: |ours − xgboost| ≤ max(1e-5 · |xgboost|, 1e-6).

use std::path::PathBuf;

use seldon_xgboost::{XgbError, XgbModel};
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

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().map_or(f32::NAN, |f| f as f32))
        .collect()
}

/// (rows flattened row-major, n_rows, n_features); `null` → NaN.
fn input() -> (Vec<f32>, usize, usize) {
    let doc = read_json("input.json");
    let n_features = doc["n_features"].as_u64().unwrap() as usize;
    let rows = doc["rows"].as_array().unwrap();
    let flat: Vec<f32> = rows.iter().flat_map(floats).collect();
    assert_eq!(flat.len(), rows.len() * n_features);
    assert!(
        flat.iter().any(|x| x.is_nan()),
        "test input must contain NaNs"
    );
    (flat, rows.len(), n_features)
}

/// Largest absolute and relative error; panics past the tolerance.
fn compare(what: &str, ours: &[f32], theirs: &[f32]) -> (f32, f32) {
    assert_eq!(ours.len(), theirs.len(), "{what}: length");
    let (mut max_abs, mut max_rel) = (0.0f32, 0.0f32);
    for (i, (&a, &b)) in ours.iter().zip(theirs).enumerate() {
        let err = (a - b).abs();
        let rel = if b.abs() > 0.1 { err / b.abs() } else { 0.0 };
        max_abs = max_abs.max(err);
        max_rel = max_rel.max(rel);
        assert!(
            err <= (1e-5 * b.abs()).max(1e-6),
            "{what}[{i}]: ours {a} vs xgboost {b}"
        );
    }
    eprintln!("{what}: max abs err {max_abs:e}, max rel err {max_rel:e}");
    (max_abs, max_rel)
}

const CASES: &[(&str, usize)] = &[
    ("binary_logistic", 1),
    ("binary_logitraw", 1),
    ("reg_logistic", 1),
    ("multi_softprob", 3),
    ("multi_softmax", 1),
    ("reg_squarederror", 1),
    ("count_poisson", 1),
    ("dart_binary", 1),
];

#[test]
fn matches_xgboost_predict_for_json_and_ubjson() {
    let (rows, n_rows, n_features) = input();
    for &(case, outputs) in CASES {
        let expected = read_json(&format!("{case}.expected.json"));
        for ext in ["json", "ubj"] {
            let what = format!("{case}.{ext}");
            let model = XgbModel::load(testdata(&what)).unwrap();
            assert_eq!(model.num_features(), n_features);
            assert_eq!(model.num_outputs(), outputs, "{what}");
            assert_eq!(model.objective(), expected["objective"].as_str().unwrap());
            assert_eq!(model.num_iterations(), 20);
            let pred = model.predict(&rows, n_rows).unwrap();
            compare(
                &format!("{what} predict"),
                &pred,
                &floats(&expected["predictions"]),
            );
            let margin = model.predict_margin(&rows, n_rows).unwrap();
            assert_eq!(margin.len(), n_rows * model.num_margins());
            compare(
                &format!("{what} margin"),
                &margin,
                &floats(&expected["margins"]),
            );
        }
    }
}

#[test]
fn json_and_ubjson_load_the_same_model() {
    let (rows, n_rows, _) = input();
    for &(case, _) in CASES {
        let json =
            XgbModel::from_json_bytes(&std::fs::read(testdata(&format!("{case}.json"))).unwrap())
                .unwrap();
        let ubj = XgbModel::from_bytes(&std::fs::read(testdata(&format!("{case}.ubj"))).unwrap())
            .unwrap();
        assert_eq!(
            json.predict(&rows, n_rows).unwrap(),
            ubj.predict(&rows, n_rows).unwrap(),
            "{case}"
        );
    }
}

#[test]
fn predicts_all_rows_in_one_call() {
    let (rows, n_rows, _) = input();
    let model = XgbModel::load(testdata("multi_softprob.ubj")).unwrap();
    let pred = model.predict(&rows, n_rows).unwrap();
    assert_eq!(pred.len(), n_rows * 3);
    for row in pred.chunks(3) {
        assert!(
            (row.iter().sum::<f32>() - 1.0).abs() < 1e-5,
            "softprob rows sum to 1"
        );
    }
}

#[test]
fn configured_missing_value_goes_default_left() {
    let (rows, n_rows, _) = input();
    let sentinel: Vec<f32> = rows
        .iter()
        .map(|&x| if x.is_nan() { -999.0 } else { x })
        .collect();
    let expected = read_json("binary_logistic.expected.json");
    let model = XgbModel::load(testdata("binary_logistic.json"))
        .unwrap()
        .with_missing(-999.0);
    compare(
        "missing=-999",
        &model.predict(&sentinel, n_rows).unwrap(),
        &floats(&expected["predictions"]),
    );
}

#[test]
fn iteration_limit_reproduces_iteration_range() {
    let (rows, n_rows, _) = input();
    let expected = read_json("early_stop.expected.json");
    let model = XgbModel::load(testdata("early_stop.json")).unwrap();
    let best = expected["best_iteration"].as_u64().unwrap() as usize;
    assert_eq!(model.best_iteration(), Some(best));
    assert_eq!(
        model.num_iterations(),
        expected["rounds"].as_u64().unwrap() as usize
    );
    compare(
        "early_stop all",
        &model.predict(&rows, n_rows).unwrap(),
        &floats(&expected["predictions"]),
    );

    let limited = model.clone().with_iteration_limit(best + 1).unwrap();
    assert_eq!(limited.num_iterations(), best + 1);
    compare(
        "early_stop best",
        &limited.predict(&rows, n_rows).unwrap(),
        &floats(&expected["predictions_best"]),
    );

    for bad in [0, model.num_iterations() + 1] {
        let err = model.clone().with_iteration_limit(bad).unwrap_err();
        assert!(matches!(err, XgbError::IterationLimit { requested, .. } if requested == bad));
    }
}

#[test]
fn rejects_categorical_split_naming_tree_and_node() {
    let err = XgbModel::load(testdata("categorical.json")).unwrap_err();
    assert!(
        matches!(err, XgbError::CategoricalSplit { tree: 0, node: 0 }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "tree 0 node 0 is a categorical split; categorical features are not supported by the native XGBoost evaluator"
    );
}

#[test]
fn rejects_wrong_feature_count() {
    let model = XgbModel::load(testdata("binary_logistic.json")).unwrap();
    let err = model.predict(&[0.0; 7], 1).unwrap_err();
    assert!(
        matches!(
            err,
            XgbError::InputShape {
                n_rows: 1,
                expected: 8,
                got: 7
            }
        ),
        "{err:?}"
    );
    let err = model.predict_margin(&[0.0; 16], 3).unwrap_err();
    assert!(
        matches!(
            err,
            XgbError::InputShape {
                n_rows: 3,
                expected: 8,
                got: 16
            }
        ),
        "{err:?}"
    );
    assert_eq!(model.predict(&[], 0).unwrap(), Vec::<f32>::new());
}

#[test]
fn rejects_truncated_and_garbage_files() {
    let json = std::fs::read(testdata("binary_logistic.json")).unwrap();
    let err = XgbModel::from_json_bytes(&json[..json.len() / 2]).unwrap_err();
    assert!(matches!(err, XgbError::Json(_)), "{err:?}");

    let ubj = std::fs::read(testdata("binary_logistic.ubj")).unwrap();
    let err = XgbModel::from_ubjson_bytes(&ubj[..ubj.len() / 2]).unwrap_err();
    assert!(
        matches!(err, XgbError::Ubjson { offset, .. } if offset <= ubj.len() / 2),
        "{err:?}"
    );

    let err = XgbModel::from_ubjson_bytes(b"not ubjson at all").unwrap_err();
    assert!(
        matches!(&err, XgbError::Ubjson { reason, .. } if reason.contains("unknown marker")),
        "{err:?}"
    );
    let err = XgbModel::from_json_bytes(b"{\"learner\": 3}").unwrap_err();
    assert!(matches!(err, XgbError::Json(_)), "{err:?}");
    // Valid JSON, wrong schema inside a tree.
    let broken = String::from_utf8(json).unwrap().replacen(
        "\"left_children\":[1,",
        "\"left_children\":[9999,",
        1,
    );
    let err = XgbModel::from_json_bytes(broken.as_bytes()).unwrap_err();
    assert!(
        matches!(&err, XgbError::Invalid(m) if m.contains("out of range")),
        "{err:?}"
    );
}

#[test]
fn legacy_binary_is_a_typed_error() {
    let dir = std::env::temp_dir().join(format!("seldon-xgboost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.bst");
    let mut legacy = b"binf".to_vec();
    legacy.extend([0u8; 64]);
    std::fs::write(&path, &legacy).unwrap();
    let err = XgbModel::load(&path).unwrap_err();
    assert!(matches!(err, XgbError::LegacyBinary), "{err:?}");
    assert!(
        err.to_string()
            .contains("not supported by the native loader")
    );
    assert!(matches!(
        XgbModel::from_json_bytes(&legacy),
        Err(XgbError::LegacyBinary)
    ));

    // A `.bst` that xgboost ≥ 2 wrote as UBJSON is recognised by content.
    std::fs::copy(testdata("binary_logistic.ubj"), &path).unwrap();
    assert_eq!(
        XgbModel::load(&path).unwrap().objective(),
        "binary:logistic"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_file_is_an_io_error_naming_the_path() {
    let err = XgbModel::load(testdata("nope.json")).unwrap_err();
    assert!(
        matches!(&err, XgbError::Io { path, .. } if path.ends_with("nope.json")),
        "{err:?}"
    );
}

#[test]
fn rejects_unsupported_objective_and_booster() {
    let json = std::fs::read_to_string(testdata("binary_logistic.json")).unwrap();
    let ranked = json.replacen("\"name\":\"binary:logistic\"", "\"name\":\"rank:ndcg\"", 1);
    let err = XgbModel::from_json_bytes(ranked.as_bytes()).unwrap_err();
    assert!(
        matches!(&err, XgbError::UnsupportedObjective(o) if o == "rank:ndcg"),
        "{err:?}"
    );

    let linear = r#"{"learner":{"learner_model_param":{"base_score":"5E-1","num_class":"0","num_feature":"2"},
        "objective":{"name":"reg:squarederror"},
        "gradient_booster":{"name":"gblinear","model":{"weights":[1,2,3]}}}}"#;
    let err = XgbModel::from_json_bytes(linear.as_bytes()).unwrap_err();
    assert!(
        matches!(&err, XgbError::UnsupportedBooster(b) if b == "gblinear"),
        "{err:?}"
    );
}

#[test]
fn reads_pre_3x_layout_scalar_base_score_without_iteration_indptr() {
    // xgboost 1.x/2.x write `"base_score":"4.955E-1"` and (before 2.0) no iteration_indptr,
    // split_type or num_target; rewrite a 3.x file that way: predictions must not change.
    let (rows, n_rows, _) = input();
    let json = std::fs::read_to_string(testdata("binary_logistic.json")).unwrap();
    let indptr = format!(
        ",\"iteration_indptr\":[{}]",
        (0..=20)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    assert!(json.contains(&indptr));
    let old = json
        .replacen(
            "\"base_score\":\"[4.955E-1]\"",
            "\"base_score\":\"4.955E-1\"",
            1,
        )
        .replacen(&indptr, "", 1)
        .replacen(",\"num_target\":\"1\"", "", 1)
        .replace("\"split_type\":[", "\"ignored_split_type\":[");
    assert!(
        !old.contains("iteration_indptr")
            && !old.contains("[4.955E-1]")
            && !old.contains("num_target")
    );
    let model = XgbModel::from_json_bytes(old.as_bytes()).unwrap();
    let expected = read_json("binary_logistic.expected.json");
    compare(
        "pre-3.x layout",
        &model.predict(&rows, n_rows).unwrap(),
        &floats(&expected["predictions"]),
    );
}
