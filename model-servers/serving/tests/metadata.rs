//! User model metadata (`MODEL_METADATA`, `<model_uri>/metadata.yaml`) on the real server:
//! every metadata endpoint (v1 REST both paths, v2 REST, Seldon gRPC, OIP gRPC) answers the
//! merged metadata; invalid metadata keeps the server from starting, with one line naming
//! the variable or file.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use seldon_serving::builtin::SumModel;
use seldon_serving::config::Config;
use seldon_serving::grpc::pb::inference::{
    self as inf, grpc_inference_service_client::GrpcInferenceServiceClient,
};
use seldon_serving::grpc::pb::seldon::protos::{
    self as sp, model_client::ModelClient, seldon_client::SeldonClient,
};
use seldon_serving::server::bind_all;
use seldon_supervise::Supervised;
use seldon_test_jaeger::free_port;
use serde_json::{Value, json};

/// Seldon's documented example shape: a v1 input and a v2 output, plus custom.
const ENV_JSON: &str = r#"{"name":"my-sum","versions":["sum/v3"],"platform":"sklearn",
  "inputs":[{"messagetype":"ndarray","schema":{"names":["a","b"],"shape":[2]}},
            {"name":"input","datatype":"FP32","shape":[-1,2]}],
  "outputs":[{"name":"total","datatype":"FP64","shape":[-1,1]}],
  "custom":{"team":"ml"}}"#;

async fn get(url: String) -> (u16, Value) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn model_metadata_env_is_served_on_every_metadata_endpoint() {
    let mut config = Config::for_tests();
    config.unit_id = "sum".into();
    config.model_metadata = Some(ENV_JSON.into());
    let bound = bind_all(config, Arc::new(SumModel::default()))
        .await
        .unwrap();
    let (http, grpc) = (bound.http_addr, bound.grpc_addr);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(bound.serve(async move {
        let _ = stopped.await;
    }));

    let v1 = json!({"name":"my-sum","versions":["sum/v3"],"platform":"sklearn",
        "inputs":[{"messagetype":"ndarray","schema":{"names":["a","b"],"shape":[2]}},
                  {"name":"input","datatype":"FP32","shape":[-1,2]}],
        "outputs":[{"name":"total","datatype":"FP64","shape":[-1,1]}],
        "custom":{"team":"ml"}});
    for path in ["/metadata", "/api/v1.0/metadata"] {
        assert_eq!(
            get(format!("http://{http}{path}")).await,
            (200, v1.clone()),
            "{path}"
        );
    }
    // v2: the served name (it is in the URL); v1-only entries have no v2 form
    let v2 = json!({"name":"sum","versions":["sum/v3"],"platform":"sklearn",
        "inputs":[{"name":"input","datatype":"FP32","shape":[-1,2]}],
        "outputs":[{"name":"total","datatype":"FP64","shape":[-1,1]}]});
    assert_eq!(
        get(format!("http://{http}/v2/models/sum")).await,
        (200, v2.clone())
    );
    assert_eq!(
        get(format!("http://{http}/v2/models/sum/versions/sum"))
            .await
            .0,
        404,
        "the version is the served one, not the metadata's"
    );

    // Seldon gRPC: Model.Metadata and Seldon.ModelMetadata
    let want_pb = |md: sp::SeldonModelMetadata| {
        assert_eq!(
            (md.name.as_str(), md.versions, md.platform.as_str()),
            ("my-sum", vec!["sum/v3".to_string()], "sklearn")
        );
        assert_eq!(md.inputs.len(), 2);
        assert_eq!(md.inputs[0].messagetype, "ndarray");
        assert_eq!(
            (
                md.inputs[1].name.as_str(),
                md.inputs[1].datatype.as_str(),
                &md.inputs[1].shape
            ),
            ("input", "FP32", &vec![-1, 2])
        );
        assert_eq!(
            (md.outputs[0].name.as_str(), md.outputs[0].datatype.as_str()),
            ("total", "FP64")
        );
        assert_eq!(md.custom.get("team").map(String::as_str), Some("ml"));
    };
    let mut model = ModelClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    want_pb(model.metadata(()).await.unwrap().into_inner());
    let mut seldon = SeldonClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    want_pb(
        seldon
            .model_metadata(sp::SeldonModelMetadataRequest { name: "sum".into() })
            .await
            .unwrap()
            .into_inner(),
    );
    // OIP gRPC ModelMetadata
    let mut oip = GrpcInferenceServiceClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    let md = oip
        .model_metadata(inf::ModelMetadataRequest {
            name: "sum".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (md.name.as_str(), md.versions, md.platform.as_str()),
        ("sum", vec!["sum/v3".to_string()], "sklearn")
    );
    let t = |l: &[inf::model_metadata_response::TensorMetadata]| {
        l.iter()
            .map(|t| (t.name.clone(), t.datatype.clone(), t.shape.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        t(&md.inputs),
        [("input".into(), "FP32".into(), vec![-1, 2])]
    );
    assert_eq!(
        t(&md.outputs),
        [("total".into(), "FP64".into(), vec![-1, 1])]
    );

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn without_user_metadata_the_runtimes_is_served() {
    let mut config = Config::for_tests();
    config.unit_id = "sum".into();
    let bound = bind_all(config, Arc::new(SumModel::default()))
        .await
        .unwrap();
    let http = bound.http_addr;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(bound.serve(async move {
        let _ = stopped.await;
    }));
    assert_eq!(
        get(format!("http://{http}/metadata")).await,
        (
            200,
            json!({"name":"sum","platform":"seldon_builtin",
                "inputs":[{"name":"input","datatype":"FP64","shape":[-1,-1]}],
                "outputs":[{"name":"predict","datatype":"FP64","shape":[-1,1]}]})
        )
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn invalid_model_metadata_fails_before_binding() {
    let mut config = Config::for_tests();
    config.model_metadata = Some("{name: [".into());
    let err = bind_all(config.clone(), Arc::new(SumModel::default()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("MODEL_METADATA is not valid Seldon model metadata: not YAML or JSON:"),
        "{err}"
    );
    config.model_metadata =
        Some(r#"{"inputs":[{"name":"x","datatype":"FLOAT","shape":[1]}]}"#.into());
    let err = bind_all(config, Arc::new(SumModel::default()))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "MODEL_METADATA is not valid Seldon model metadata: inputs[0]: datatype \"FLOAT\" is not one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES"
    );
}

/// The real binary, `SUM_MODEL`, with `model_dir` as its model URI and `env` added.
fn command(model_dir: &Path, http: u16, env: &[(&str, &str)]) -> std::process::Command {
    let mut cmd = seldon_supervise::command(env!("CARGO_BIN_EXE_seldon-server-builtin"));
    cmd.args(["--implementation", "SUM_MODEL", "--bind", "127.0.0.1"])
        .args(["--http-port", &http.to_string()])
        .args(["--grpc-port", &free_port().to_string()])
        .args(["--metrics-port", &free_port().to_string()])
        .arg("--model-uri")
        .arg(model_dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PREDICTIVE_UNIT_ID", "summer");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

#[tokio::test]
async fn the_binary_lays_the_env_over_metadata_yaml_over_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("metadata.yaml"),
        "name: from-file\nplatform: file-platform\ncustom:\n  source: file\n",
    )
    .unwrap();
    let env_yaml = "name: from-env\nversions: [\"2\"]\ninputs:\n  - messagetype: tensor\n    schema: {shape: [3]}\n";
    let http = free_port();
    let mut cmd = command(dir.path(), http, &[("MODEL_METADATA", env_yaml)]);
    cmd.stdout(std::process::Stdio::null());
    let mut process = Supervised::spawn("metadata-server", cmd).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        assert!(process.try_wait().unwrap().is_none(), "server exited");
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{http}/metadata")).await {
            break r.json::<Value>().await.unwrap();
        }
        assert!(Instant::now() < deadline, "server not up in 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // name: env over file; platform, custom: file over runtime; inputs: env; outputs: runtime
    assert_eq!(
        body,
        json!({"name":"from-env","versions":["2"],"platform":"file-platform",
            "inputs":[{"messagetype":"tensor","schema":{"shape":[3]}}],
            "outputs":[{"name":"predict","datatype":"FP64","shape":[-1,1]}],
            "custom":{"source":"file"}})
    );
    process.stop().unwrap();
}

/// Runs the binary to its exit; returns (exit code, stderr).
fn run_to_exit(model_dir: &Path, env: &[(&str, &str)]) -> (Option<i32>, String, u16) {
    let http = free_port();
    let mut cmd = command(model_dir, http, env);
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server did not refuse to start");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.code(), stderr, http)
}

#[test]
fn the_binary_refuses_to_start_on_bad_metadata_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr, http) = run_to_exit(dir.path(), &[("MODEL_METADATA", "name: [unclosed")]);
    assert_eq!(code, Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with(
            "Error: MODEL_METADATA is not valid Seldon model metadata: not YAML or JSON: "
        ),
        "{stderr}"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", http)).is_err(),
        "nothing listens"
    );

    let (code, stderr, _) = run_to_exit(dir.path(), &[("MODEL_METADATA", "model: sum")]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr.trim(),
        "Error: MODEL_METADATA is not valid Seldon model metadata: metadata: unknown key `model` (allowed: name, versions, platform, inputs, outputs, custom)"
    );

    // a bad metadata.yaml is named by its path
    std::fs::write(dir.path().join("metadata.yaml"), "custom: {a: [1]}\n").unwrap();
    let (code, stderr, _) = run_to_exit(dir.path(), &[]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr.trim(),
        format!(
            "Error: {} is not valid Seldon model metadata: custom must be a mapping of strings to strings",
            dir.path().join("metadata.yaml").display()
        )
    );
}
