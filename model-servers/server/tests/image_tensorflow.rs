//! TENSORFLOW_SERVER in the cluster, image by image, as the rendered pod runs it:
//!
//! 1. the `initializer-tf` init container (images/initializer-tf.Containerfile, the catalogue's
//!    `initializer_image` for TENSORFLOW_SERVER) copies a TensorFlow SavedModel (TF Serving's
//!    `<model>/1/saved_model.pb` layout) into an empty /mnt/models, as user 1337 with no
//!    network and SELDON_IMPLEMENTATION=TENSORFLOW_SERVER, and converts it with its pinned
//!    tensorflow-cpu 2.15.1 + tf2onnx 1.17.0 to model.onnx;
//! 2. the `server` image (`FROM scratch`) serves that directory, mounted read-only, with
//!    `--implementation TENSORFLOW_SERVER`; its answers on 1000 rows match TensorFlow's own.
//!
//! The SavedModels are written by model-servers/onnx/python/make_savedmodel.py run with the
//! image's own TensorFlow (which also computes TensorFlow's answers).
//!
//! Binaries: `seldon-server` is this test's own; `seldon-mesh-initializer` is taken from the
//! same target directory (`cargo test --workspace` builds every binary first; a scoped run
//! needs `cargo build -p seldon-mesh-initializer`, and the test says so if it is missing or
//! older than the initializer's sources).

mod common;

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::*;
use seldon_images::{Container, build, free_port, run_to_completion, wait_until};
use serde_json::{Value, json};

/// The newest modification time of the files under `dir`.
fn newest(dir: &Path) -> SystemTime {
    let mut t = SystemTime::UNIX_EPOCH;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = if e.file_type().unwrap().is_dir() {
            newest(&e.path())
        } else {
            e.metadata().unwrap().modified().unwrap()
        };
        t = t.max(m);
    }
    t
}

/// `seldon-mesh-initializer` beside this test's `seldon-server`, checked to be there and
/// built after its sources last changed.
fn initializer_bin_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_seldon-server"))
        .parent()
        .unwrap()
        .to_path_buf();
    let bin = dir.join("seldon-mesh-initializer");
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; build it first: cargo build -p seldon-mesh-initializer (cargo test --workspace does)",
                bin.display()
            )
        });
    let sources = newest(&repo().join("model-servers/initializer/src"));
    assert!(
        built >= sources,
        "{} is older than model-servers/initializer/src: cargo build -p seldon-mesh-initializer",
        bin.display()
    );
    dir
}

#[tokio::test]
async fn initializer_tf_converts_a_saved_model_and_the_server_image_serves_it() {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_seldon-server"))
        .parent()
        .unwrap()
        .to_path_buf();
    // seldon-mesh-initializer is in the same directory (checked)
    assert_eq!(initializer_bin_dir(), bin_dir);
    let init = build(
        "initializer-tf",
        &[
            ("SELDON_IMAGE_BIN_DIR", bin_dir.as_os_str()),
            ("SELDON_IMAGE_TAG", OsStr::new("test")),
        ],
    )
    .unwrap();
    assert_eq!(init.reference, "ghcr.io/seldon-mesh/initializer-tf:test");
    eprintln!("initializer-tf image: {} bytes", init.size);

    // SavedModels and TensorFlow's own answers, from the image's TensorFlow
    let made = tempfile::tempdir().unwrap();
    std::fs::set_permissions(made.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let script = repo().join("model-servers/onnx/python/make_savedmodel.py");
    run_to_completion(&[
        "--network".to_string(),
        "none".into(),
        "-v".into(),
        format!("{}:/make_savedmodel.py:ro", script.display()),
        "-v".into(),
        format!("{}:/out", made.path().display()),
        "--entrypoint".into(),
        "/opt/seldon-mesh/tfvenv/bin/python".into(),
        init.reference.clone(),
        "/make_savedmodel.py".into(),
        "/out".into(),
    ])
    .unwrap();
    let src = made.path().join("keras");
    assert!(src.join("1/saved_model.pb").is_file());

    // the init container, as rendered: UID 1337, no network, an empty /mnt/models
    let dest = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dest.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = run_to_completion(&[
        "--network".to_string(),
        "none".into(),
        "--user".into(),
        "1337:1337".into(),
        "-v".into(),
        format!("{}:/models/mnist:ro", src.display()),
        "-v".into(),
        format!("{}:/mnt/models", dest.path().display()),
        "-e".into(),
        "SELDON_IMPLEMENTATION=TENSORFLOW_SERVER".into(),
        init.reference.clone(),
        "/models/mnist".into(),
        "/mnt/models".into(),
    ])
    .unwrap();
    let record: Value = serde_json::from_slice(
        &std::fs::read(dest.path().join("tensorflow-conversion.json")).unwrap_or_else(|e| {
            panic!(
                "no tensorflow-conversion.json ({e}):\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        }),
    )
    .unwrap();
    assert_eq!(record["versions"]["tensorflow"], "2.15.1", "{record}");
    assert_eq!(record["versions"]["tf2onnx"], "1.17.0", "{record}");
    assert!(dest.path().join("model.onnx").is_file());
    assert!(dest.path().join("1/saved_model.pb").is_file());

    // the model container: the scratch server image on the converted directory
    let server = build(
        "server",
        &[
            ("SELDON_IMAGE_BIN_DIR", bin_dir.as_os_str()),
            ("SELDON_IMAGE_TAG", OsStr::new("test")),
        ],
    )
    .unwrap();
    let (http, grpc, metrics) = (free_port(), free_port(), free_port());
    let container = Container::run(&[
        "--network".to_string(),
        "host".into(),
        "-v".into(),
        format!("{}:/mnt/models:ro", dest.path().display()),
        "-e".into(),
        "SELDON_BIND_ADDRESS=127.0.0.1".into(),
        server.reference.clone(),
        "--implementation".into(),
        "TENSORFLOW_SERVER".into(),
        "--http-port".into(),
        http.to_string(),
        "--grpc-port".into(),
        grpc.to_string(),
        "--metrics-port".into(),
        metrics.to_string(),
    ])
    .unwrap();
    wait_until(
        "TENSORFLOW_SERVER in the server image",
        Duration::from_secs(60),
        || {
            assert!(
                container.running(),
                "container exited:\n{}",
                container.logs()
            );
            std::net::TcpStream::connect(("127.0.0.1", http)).is_ok()
        },
        || container.logs(),
    )
    .unwrap();

    let expected = read_json(&made.path().join("keras.expected.json"));
    assert_eq!(expected["tensorflow"], "2.15.1");
    let rows = &expected["rows"];
    let want = flat(&expected["predictions"]);
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{http}/api/v1.0/predictions"))
        .json(&json!({"data": {"ndarray": rows}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let got = flat(&body["data"]["ndarray"]);
    assert_eq!(got.len(), 3000, "{body}");
    assert_eq!(
        body["data"]["names"],
        json!(["t:0", "t:1", "t:2"]),
        "{}",
        body["data"]["names"]
    );
    let err = max_error(&got, &want);
    assert!(err <= 1e-5, "TENSORFLOW_SERVER max error {err}");
    eprintln!(
        "TENSORFLOW_SERVER (initializer-tf → server image) over 1000 rows: max error {err:.3e}"
    );
    // softmax rows sum to 1
    for row in got.chunks(3) {
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-5, "{row:?}");
    }
}
