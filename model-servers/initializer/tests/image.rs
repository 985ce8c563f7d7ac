//! The initializer container image (images/initializer.Containerfile), built by
//! images/build.sh around this test's own binary and RUN with podman the way the rendered init
//! container runs: `<uri> /mnt/models` with SELDON_IMPLEMENTATION=SKLEARN_SERVER, as user
//! 1337 (the operator's default initializerUserId), no network. The image's Python (pinned
//! scikit-learn, skl2onnx, onnx, onnxruntime) must turn the iris model.joblib into model.onnx
//! and conversion.json — what seldon-server then serves — and, with XGBOOST_SERVER, a legacy
//! binary model.bst (written by xgboost 1.7.6) into model.ubj. The container is removed however the
//! test ends (seldon_images::Container).

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use seldon_images::{ImageError, build, run_to_completion};
use serde_json::Value;

#[test]
fn initializer_image_converts_sklearn_models_at_fetch_time() {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_seldon-mesh-initializer"))
        .parent()
        .unwrap()
        .to_path_buf();
    let built = build(
        "initializer",
        &[
            ("SELDON_IMAGE_BIN_DIR", bin_dir.as_os_str()),
            ("SELDON_IMAGE_TAG", OsStr::new("test")),
        ],
    )
    .unwrap();
    assert_eq!(built.reference, "ghcr.io/seldon-mesh/initializer:test");

    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("../onnx/testdata");
    let src = tempfile::tempdir().unwrap();
    std::fs::copy(
        testdata.join("logreg/model.joblib"),
        src.path().join("model.joblib"),
    )
    .unwrap();
    std::fs::set_permissions(src.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // the emptyDir the init container fills: writable by user 8888
    let dest = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dest.path(), std::fs::Permissions::from_mode(0o777)).unwrap();

    let args = |uri: &str, dest: &Path| {
        vec![
            "--network".to_string(),
            "none".into(),
            // the rendered init container's runAsUser (initializerUserId: Istio's proxy UID)
            "--user".into(),
            "1337:1337".into(),
            "-v".into(),
            format!("{}:/models/iris:ro", src.path().display()),
            "-v".into(),
            format!("{}:/mnt/models", dest.display()),
            "-e".into(),
            "SELDON_IMPLEMENTATION=SKLEARN_SERVER".into(),
            built.reference.clone(),
            uri.into(),
            "/mnt/models".into(),
        ]
    };
    run_to_completion(&args("/models/iris", dest.path())).unwrap();

    let mut files: Vec<String> = std::fs::read_dir(dest.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "conversion.json",
            "decision_function.onnx",
            "model.joblib",
            "model.onnx"
        ]
    );
    let record: Value =
        serde_json::from_slice(&std::fs::read(dest.path().join("conversion.json")).unwrap())
            .unwrap();
    assert_eq!(record["estimator"], "LogisticRegression", "{record}");
    assert_eq!(record["methods"]["predict_proba"]["file"], "model.onnx");
    // the pins of model-servers/onnx/python/requirements.txt, checked by the script itself
    assert_eq!(record["versions"]["scikit-learn"], "1.9.1", "{record}");
    assert_eq!(record["versions"]["onnxruntime"], "1.31.1", "{record}");
    let max = record["check"]["max_error"]["predict_proba"]
        .as_f64()
        .unwrap();
    assert!(max <= 1e-5, "{record}");

    // XGBOOST_SERVER: a legacy binary model.bst written by xgboost 1.7.6 becomes model.ubj with
    // the image's xgboost-cpu 3.0.5 and convert_xgboost.py (found beside convert_sklearn.py)
    let legacy_python = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../xgboost/scripts/setup-legacy.sh"))
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(legacy_python.status.success(), "setup-legacy.sh failed");
    let made = tempfile::tempdir().unwrap();
    let out = Command::new(String::from_utf8(legacy_python.stdout).unwrap().trim())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../xgboost/testdata/make_legacy.py"))
        .arg(made.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let xgb_src = made.path().join("binary_logistic");
    std::fs::set_permissions(&xgb_src, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        xgb_src.join("model.bst"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let xgb_dest = tempfile::tempdir().unwrap();
    std::fs::set_permissions(xgb_dest.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    run_to_completion(&[
        "--network".to_string(),
        "none".into(),
        "--user".into(),
        "1337:1337".into(),
        "-v".into(),
        format!("{}:/models/xgb:ro", xgb_src.display()),
        "-v".into(),
        format!("{}:/mnt/models", xgb_dest.path().display()),
        "-e".into(),
        "SELDON_IMPLEMENTATION=XGBOOST_SERVER".into(),
        built.reference.clone(),
        "/models/xgb".into(),
        "/mnt/models".into(),
    ])
    .unwrap();
    let record: Value = serde_json::from_slice(
        &std::fs::read(xgb_dest.path().join("xgboost-conversion.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["xgboost"], "3.0.5", "{record}");
    assert_eq!(record["check"]["max_abs_diff"], 0.0, "{record}");
    assert!(xgb_dest.path().join("model.ubj").is_file());

    // a URI with nothing behind it: exit 1 with the initializer's message, no files
    let empty = tempfile::tempdir().unwrap();
    std::fs::set_permissions(empty.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = run_to_completion(&args("/models/iris/missing", empty.path())).unwrap_err();
    match err {
        ImageError::Failed { status, stderr, .. } => {
            assert!(status.contains("exit status: 1"), "{status}");
            assert!(stderr.contains("/models/iris/missing"), "{stderr}");
        }
        other => panic!("expected a failed run, got {other}"),
    }
}
