//! Issue 11, item 4: health endpoints answer within 100 ms while 4 × 10 MB predictions are in
//! flight. The real `seldon-server-builtin` binary (tokio's default runtime: one worker per
//! core) serving `SUM_MODEL` gets two 10 MB v1 JSON predictions, a 10 MB v2 JSON one and a
//! 10 MB gRPC `ModelInfer` at once; a probe pings `/health/ping` and `/v2/health/live` every 10 ms until all four are answered.
//! Asserted: the slowest probe, that the probes covered the whole window, and every body.

use std::process::Stdio;
use std::time::{Duration, Instant};

use seldon_serving::grpc::pb::inference::{
    self as inf, grpc_inference_service_client::GrpcInferenceServiceClient,
};
use seldon_supervise::Supervised;
use serde_json::{Value, json};

/// A free loopback port (bound, then released for the server to bind).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Values per big body: 2.6 M × `"1.5,"` ≈ 10 MB of JSON.
const N: usize = 10 * 1024 * 1024 / 4;
/// The bound the issue sets for a health answer.
const PROBE_LIMIT: Duration = Duration::from_millis(100);

fn numbers() -> String {
    let mut s = String::with_capacity(N * 4);
    for i in 0..N {
        if i > 0 {
            s.push(',');
        }
        s.push_str("1.5");
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_within_100_ms_while_four_10_mb_requests_are_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let (http, grpc, metrics) = (free_port(), free_port(), free_port());
    let log = dir.path().join("server.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut cmd = seldon_supervise::command(env!("CARGO_BIN_EXE_seldon-server-builtin"));
    cmd.args(["--implementation", "SUM_MODEL", "--bind", "127.0.0.1"])
        .args(["--http-port", &http.to_string()])
        .args(["--grpc-port", &grpc.to_string()])
        .args(["--metrics-port", &metrics.to_string()])
        .args(["--max-body-bytes", &(32 * 1024 * 1024).to_string()])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PREDICTIVE_UNIT_ID", "sum")
        .stdin(Stdio::null())
        .stderr(file.try_clone().unwrap())
        .stdout(file);
    let mut server = Supervised::spawn("seldon-server-builtin", cmd).unwrap();
    let base = format!("http://127.0.0.1:{http}");
    let grpc_base = format!("http://127.0.0.1:{grpc}");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !client
        .get(format!("{base}/health/ping"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        if let Some(status) = server.try_wait().unwrap() {
            panic!(
                "server exited ({status}):\n{}",
                std::fs::read_to_string(&log).unwrap()
            );
        }
        assert!(Instant::now() < deadline, "server not up in 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let numbers = numbers();
    let v1 = format!(r#"{{"data":{{"ndarray":[[{numbers}]]}}}}"#);
    let v2 = format!(
        r#"{{"inputs":[{{"name":"x","shape":[1,{N}],"datatype":"FP64","data":[{numbers}]}}]}}"#
    );
    assert!(v1.len() > 10_000_000 && v2.len() > 10_000_000);
    let expected = 1.5 * N as f64;

    // The machine may be shared (other builds, other tests): an attempt whose probes were
    // starved by outside load is repeated, up to 3 times. With the decode on the workers, the
    // slowest probe was ~300 ms in every attempt; since the move it is a few ms to tens of ms.
    let mut attempts = Vec::new();
    for _ in 0..3 {
        let a = attempt(&client, &base, &grpc_base, &v1, &v2, expected).await;
        eprintln!(
            "4 × 10 MB answered in {:?}; {} probes during the window, slowest {:?}",
            a.window, a.during, a.slowest
        );
        // the window must be long enough for the probes to mean something
        assert!(a.during >= 5, "only {} probes in {:?}", a.during, a.window);
        let ok = a.slowest < PROBE_LIMIT;
        attempts.push(a);
        if ok {
            break;
        }
    }
    let last = attempts.last().unwrap();
    assert!(
        last.slowest < PROBE_LIMIT,
        "slowest health answer over {PROBE_LIMIT:?} in {} attempts: {:?}",
        attempts.len(),
        attempts
            .iter()
            .map(|a| (a.slowest, a.probes_ms.clone()))
            .collect::<Vec<_>>()
    );
    server.stop().unwrap();
}

/// What one attempt measured.
struct Attempt {
    /// From sending the big requests to the last answer.
    window: Duration,
    /// Probes sent before the last big answer.
    during: usize,
    slowest: Duration,
    probes_ms: Vec<u128>,
}

/// Sends two 10 MB v1, one v2 JSON and one gRPC prediction at once and probes the health endpoints
/// every 10 ms (a fresh connection each, like a kubelet) until all four are answered; checks
/// every answer's body.
async fn attempt(
    client: &reqwest::Client,
    base: &str,
    grpc: &str,
    v1: &str,
    v2: &str,
    expected: f64,
) -> Attempt {
    let mut big = Vec::new();
    // the 4th: 10 MB of FP64 over gRPC (Open Inference Protocol)
    let grpc = grpc.to_string();
    big.push(tokio::spawn(async move {
        let mut client = GrpcInferenceServiceClient::connect(grpc).await.unwrap();
        let n = 10 * 1024 * 1024 / 8;
        let request = inf::ModelInferRequest {
            model_name: "sum".into(),
            inputs: vec![inf::model_infer_request::InferInputTensor {
                name: "x".into(),
                datatype: "FP64".into(),
                shape: vec![1, n as i64],
                contents: Some(inf::InferTensorContents {
                    fp64_contents: vec![1.5; n],
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let out = client.model_infer(request).await.unwrap().into_inner();
        let sum = out.outputs[0]
            .contents
            .as_ref()
            .unwrap()
            .fp64_contents
            .clone();
        assert_eq!(sum, vec![1.5 * n as f64], "gRPC answer");
        (3, Value::Null, Instant::now())
    }));
    for (i, (path, body)) in [
        ("/api/v1.0/predictions", v1),
        ("/v2/models/sum/infer", v2),
        ("/predict", v1),
    ]
    .into_iter()
    .enumerate()
    {
        let (client, url, body) = (client.clone(), format!("{base}{path}"), body.to_string());
        big.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "big request {i}");
            let body: Value = r.json().await.unwrap();
            (i, body, Instant::now())
        }));
    }
    let sent = Instant::now();
    let mut probes: Vec<(Duration, Instant)> = Vec::new();
    while !big.iter().all(tokio::task::JoinHandle::is_finished) {
        let path = if probes.len().is_multiple_of(2) {
            "/health/ping"
        } else {
            "/v2/health/live"
        };
        let probe = reqwest::Client::builder().no_proxy().build().unwrap();
        let started = Instant::now();
        let r = probe
            .get(format!("{base}{path}"))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .unwrap();
        let ok = r.status().is_success();
        let text = r.text().await.unwrap();
        let took = started.elapsed();
        assert!(ok, "{path}: {text}");
        if path == "/health/ping" {
            assert_eq!(text, "pong");
        }
        probes.push((took, started));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut last_answer = sent;
    for handle in big {
        let (i, body, at) = handle.await.unwrap();
        last_answer = last_answer.max(at);
        match i {
            0 | 2 => assert_eq!(body["data"]["ndarray"], json!([[expected]]), "request {i}"),
            1 => assert_eq!(body["outputs"][0]["data"], json!([expected]), "request {i}"),
            _ => {} // gRPC, checked in its task
        }
    }
    Attempt {
        window: last_answer - sent,
        during: probes.iter().filter(|(_, at)| *at < last_answer).count(),
        slowest: probes.iter().map(|(d, _)| *d).max().unwrap_or_default(),
        probes_ms: probes.iter().map(|(d, _)| d.as_millis()).collect(),
    }
}
