//! Without a library the runtime says where to get one (own process: the library is loaded
//! once per process).

use std::collections::BTreeMap;

use seldon_onnx::{OnnxError, RuntimeConfig, SklearnServer};
use seldon_serving::model::Model;

#[tokio::test]
async fn missing_library_names_the_setup_script() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/logreg");
    let cfg = RuntimeConfig {
        library: None,
        ..RuntimeConfig::default()
    };
    let mut s = SklearnServer::new(&dir, &BTreeMap::new(), cfg).unwrap();
    let err = s.load().await.unwrap_err().to_string();
    assert!(
        err.contains("ORT_DYLIB_PATH") && err.contains("scripts/setup.sh"),
        "{err}"
    );

    let cfg = RuntimeConfig {
        library: Some("/nonexistent/libonnxruntime.so".into()),
        ..RuntimeConfig::default()
    };
    let err = seldon_onnx::runtime::environment(&cfg).unwrap_err();
    assert!(matches!(err, OnnxError::LibraryMissing(_)));
    assert!(err.to_string().contains("/nonexistent/libonnxruntime.so"));

    let cfg = RuntimeConfig {
        library: Some("/etc/hostname".into()),
        ..RuntimeConfig::default()
    };
    let err = seldon_onnx::runtime::environment(&cfg).unwrap_err();
    assert!(matches!(err, OnnxError::Library { .. }), "{err:?}");
}

#[test]
fn cuda_without_the_feature_is_a_clear_error() {
    if cfg!(feature = "cuda") {
        return;
    }
    // reaches the CUDA check only after the library loads, so check the message itself
    assert!(
        OnnxError::CudaNotBuilt
            .to_string()
            .contains("`cuda` feature")
    );
}
