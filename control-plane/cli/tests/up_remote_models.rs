//! `up` on a manifest whose `modelUri` is `s3://…`, served by moto's S3 server (the pinned
//! `moto[server]` of the initializer's tests, on loopback): the model is fetched with the
//! initializer's code into the model cache, `model.joblib` is converted to ONNX by the
//! SKLEARN_SERVER hook, `seldon-server` serves it, and the prediction body is checked. A
//! second `up` reuses the cache; `--refresh-models` fetches again. A missing bucket fails in
//! one line naming the node, the URI and why, and leaves no process behind.
//!
//! Needs `seldon-server` built beside `seldon-mesh`, the release filter (`make wasm`), the
//! onnx venv (`model-servers/onnx/scripts/setup.sh`) and moto
//! (`model-servers/initializer/scripts/setup-moto.sh`); the scripts are idempotent.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{envoy_ready, filter, free_port, marked, sibling};
use serde_json::Value;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
const MARK: &str = "SELDON_TEST_REMOTE_MODELS";

/// moto's S3 server on a loopback port; stopped (with its process group) on drop.
struct Moto {
    _child: seldon_supervise::Supervised,
    endpoint: String,
    bin: PathBuf,
}

fn moto() -> Moto {
    let out = Command::new(format!(
        "{ROOT}/model-servers/initializer/scripts/setup-moto.sh"
    ))
    .stderr(Stdio::inherit())
    .output()
    .unwrap();
    assert!(out.status.success(), "setup-moto.sh failed");
    let bin = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let port = free_port();
    let mut cmd = seldon_supervise::command(bin.join("moto_server"));
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = seldon_supervise::Supervised::spawn("moto", cmd).unwrap();
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "moto never listened"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Moto {
        _child: child,
        endpoint: format!("http://127.0.0.1:{port}"),
        bin,
    }
}

/// Bucket `models` with `src`'s files under `prefix/` (boto3, the initializer's fixture).
fn fill(moto: &Moto, src: &Path, prefix: &str) {
    let out = Command::new(moto.bin.join("python"))
        .arg(format!(
            "{ROOT}/model-servers/initializer/tests/moto_fixture.py"
        ))
        .args([&moto.endpoint, "models", src.to_str().unwrap(), prefix])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fixture: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The onnx venv: (ORT library, its Python).
fn onnx() -> (String, PathBuf) {
    let out = Command::new("bash")
        .arg(format!("{ROOT}/model-servers/onnx/scripts/setup.sh"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "onnx setup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ort = String::from_utf8_lossy(&out.stdout)
        .trim()
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    let cache = std::env::var_os("SELDON_MESH_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&std::env::var("HOME").unwrap()).join(".cache/seldon-mesh"));
    let python = std::env::var("SELDON_ONNX_VENV")
        .map(|v| PathBuf::from(v).join("bin/python"))
        .unwrap_or_else(|_| cache.join("onnxvenv/bin/python"));
    (ort, python)
}

fn manifest(uri: &str) -> String {
    format!(
        r#"apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {{name: iris, namespace: default}}
spec:
  predictors:
  - name: default
    graph: {{name: clf, type: MODEL, implementation: SKLEARN_SERVER, modelUri: "{uri}"}}
"#
    )
}

const REQUEST: &str = r#"{"data":{"ndarray":[[5.1,3.5,1.4,0.2]]}}"#;

/// `seldon-mesh up --request` on `uri` with S3 configured for `moto`; every process it
/// starts carries `MARK=<mark>`.
fn up_request(
    dir: &Path,
    moto: &Moto,
    uri: &str,
    (ort, python): &(String, PathBuf),
    mark: &str,
    extra: &[&str],
) -> Output {
    envoy_ready();
    let file = dir.join("sdep.yaml");
    std::fs::write(&file, manifest(uri)).unwrap();
    Command::new(env!("CARGO_BIN_EXE_seldon-mesh"))
        .env("ORT_DYLIB_PATH", ort)
        .env("SELDON_PYTHON", python)
        .env("SELDON_MODEL_CACHE", dir.join("models"))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env(MARK, mark)
        .args(["up", "-f"])
        .arg(&file)
        .args(["--port", &free_port().to_string()])
        .arg("--server")
        .arg(sibling("seldon-server"))
        .arg("--filter")
        .arg(filter())
        .arg("--workdir")
        .arg(dir.join("run"))
        .args(["--request", REQUEST])
        .args(extra)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn an_s3_model_is_fetched_converted_served_and_cached() {
    let moto = moto();
    let onnx = onnx();
    // only the pickled model: the SKLEARN_SERVER hook must convert it after the fetch
    let src = tempfile::tempdir().unwrap();
    std::fs::copy(
        format!("{ROOT}/model-servers/onnx/testdata/logreg/model.joblib"),
        src.path().join("model.joblib"),
    )
    .unwrap();
    fill(&moto, src.path(), "sklearn/iris");
    let dir = tempfile::tempdir().unwrap();
    let uri = "s3://models/sklearn/iris";

    let out = up_request(dir.path(), &moto, uri, &onnx, "fetch", &[]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("fetching {uri} for default.clf")),
        "{stderr}"
    );
    let fetched = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("model   default.clf: fetched to "))
        .unwrap_or_else(|| panic!("no fetched line: {stderr}"));
    let entry = PathBuf::from(fetched.split(" after ").next().unwrap());
    assert!(entry.starts_with(dir.path().join("models")), "{entry:?}");
    // the conversion hook ran in the cache entry
    for f in ["model.joblib", "model.onnx", "conversion.json"] {
        assert!(entry.join(f).is_file(), "{f} in {entry:?}");
    }
    let body: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let probs: Vec<f64> = body["data"]["ndarray"][0]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|p| p.as_f64().unwrap())
        .collect();
    assert_eq!(probs.len(), 3, "{body}");
    assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-5, "{body}");
    assert!(probs[0] > 0.5, "a setosa flower is class 0: {body}");

    // again: served from the cache, no fetch
    let out = up_request(dir.path(), &moto, uri, &onnx, "cached", &[]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stderr.contains("fetching"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "model   default.clf: cached in {}",
            entry.display()
        )),
        "{stderr}"
    );
    let again: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(again["data"], body["data"]);

    // --refresh-models: fetched (and converted) again into the same entry
    std::fs::remove_file(entry.join("model.onnx")).unwrap();
    let out = up_request(
        dir.path(),
        &moto,
        uri,
        &onnx,
        "refresh",
        &["--refresh-models"],
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("fetching {uri}")), "{stderr}");
    assert!(entry.join("model.onnx").is_file());
    for mark in ["fetch", "cached", "refresh"] {
        assert_eq!(marked(MARK, mark, 0), vec![], "left running ({mark})");
    }
}

#[test]
fn a_missing_bucket_is_one_line_naming_node_uri_and_why_and_leaks_nothing() {
    let moto = moto();
    let onnx = onnx();
    let dir = tempfile::tempdir().unwrap();
    let out = up_request(
        dir.path(),
        &moto,
        "s3://nobucket/iris",
        &onnx,
        "nobucket",
        &[],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        "error: node `default.clf`: cannot fetch s3://nobucket/iris: HTTP 404: NoSuchBucket: The specified bucket does not exist",
        "{stderr}"
    );
    assert!(
        !stderr.contains("started "),
        "no node starts before its model is there: {stderr}"
    );
    assert_eq!(marked(MARK, "nobucket", 0), vec![]);
    // nothing half-fetched is left in the cache
    let left: Vec<_> = std::fs::read_dir(dir.path().join("models"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}
