//! Server spans in a real Jaeger (issue 8): the real `seldon-server-builtin` binary with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at a real Jaeger v2, requests over REST and gRPC
//! (Seldon v1 and v2) with known `traceparent`s, then Jaeger's query API: each SERVER span has
//! the caller's trace id, the caller's span as parent, and its attributes. Also: B3, no
//! context (a new root), a malformed `traceparent` (a new root, request still answered), a
//! failing request (error status), and spans still queued at SIGTERM exported before exit.

use std::path::Path;
use std::time::{Duration, Instant};

use seldon_serving::grpc::pb::inference::{
    self as inf, grpc_inference_service_client::GrpcInferenceServiceClient,
};
use seldon_serving::grpc::pb::seldon::protos::{self as sp, model_client::ModelClient};
use seldon_supervise::Supervised;
use serde_json::{Value, json};

use seldon_test_jaeger::{Jaeger, free_port, parent, tag};

const SERVICE: &str = "summer";

/// One running server process and its ports.
struct Server {
    process: Supervised,
    http: String,
    grpc: String,
    metrics: String,
    log: std::path::PathBuf,
}

/// Starts the binary serving `SUM_MODEL` as unit `summer`, exporting to `jaeger` with the
/// given batch delay (ms).
async fn start_server(dir: &Path, jaeger: &Jaeger, name: &str, batch_delay_ms: u64) -> Server {
    start_server_to(dir, &jaeger.endpoint(), name, batch_delay_ms).await
}

/// [`start_server`] exporting to any OTLP/HTTP base URL.
async fn start_server_to(dir: &Path, endpoint: &str, name: &str, batch_delay_ms: u64) -> Server {
    let (http, grpc, metrics) = (free_port(), free_port(), free_port());
    let log = dir.join(format!("{name}.log"));
    let mut cmd = seldon_supervise::command(env!("CARGO_BIN_EXE_seldon-server-builtin"));
    cmd.args(["--implementation", "SUM_MODEL", "--bind", "127.0.0.1"])
        .args(["--http-port", &http.to_string()])
        .args(["--grpc-port", &grpc.to_string()])
        .args(["--metrics-port", &metrics.to_string()])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PREDICTIVE_UNIT_ID", SERVICE)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_BSP_SCHEDULE_DELAY", batch_delay_ms.to_string());
    // the server logs (tracing's fmt layer) to stdout; panics go to stderr: both in the log
    let file = std::fs::File::create(&log).unwrap();
    cmd.stderr(file.try_clone().unwrap()).stdout(file);
    let mut process = Supervised::spawn(name, cmd).unwrap();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = process.try_wait().unwrap() {
            panic!(
                "server exited ({status}):\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        let up = client
            .get(format!("http://127.0.0.1:{http}/health/ping"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if up {
            break;
        }
        assert!(Instant::now() < deadline, "server not up in 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Server {
        process,
        http: format!("http://127.0.0.1:{http}"),
        grpc: format!("http://127.0.0.1:{grpc}"),
        metrics: format!("http://127.0.0.1:{metrics}"),
        log,
    }
}

/// The value of an unlabelled sample on the server's `/prometheus`.
async fn sample(server: &Server, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("{}/prometheus", server.metrics))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// The one span of `trace_id`, waiting up to 20 s for it to arrive.
async fn only_span(jaeger: &Jaeger, trace_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (spans, processes) = jaeger.trace(trace_id).await;
        if !spans.is_empty() {
            assert_eq!(spans.len(), 1, "{spans:#?}");
            let span = spans.into_iter().next().unwrap();
            let process = &processes[span["processID"].as_str().unwrap()];
            assert_eq!(process["serviceName"], SERVICE, "{process}");
            assert_eq!(span["traceID"], trace_id, "{span}");
            assert_eq!(tag(&span, "span.kind"), Some(&json!("server")), "{span}");
            assert_eq!(tag(&span, "seldon.model.name"), Some(&json!(SERVICE)));
            assert_eq!(tag(&span, "seldon.node.name"), Some(&json!(SERVICE)));
            return span;
        }
        assert!(
            Instant::now() < deadline,
            "no span of trace {trace_id} in Jaeger after 20 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The one trace of `service` with a span whose `url.path` is `path`.
async fn only_trace_with_path(jaeger: &Jaeger, path: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let traces = jaeger.find(SERVICE, "url.path", path).await;
        if !traces.is_empty() {
            assert_eq!(traces.len(), 1, "{traces:#?}");
            let spans = traces[0]["spans"].as_array().unwrap().clone();
            assert_eq!(spans.len(), 1, "{spans:#?}");
            return spans[0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "no trace with url.path {path} after 20 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn traceparent(trace: &str, span: &str) -> String {
    format!("00-{trace}-{span}-01")
}

const CALLER: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_spans_continue_the_callers_trace_in_a_real_jaeger() {
    let dir = tempfile::tempdir().unwrap();
    let jaeger = Jaeger::start(dir.path()).await;
    let server = start_server(dir.path(), &jaeger, "summer", 100).await;
    let http = reqwest::Client::new();

    // REST, Seldon v1
    let t_v1 = "4bf92f3577b34da6a3ce929d0e0e4736";
    let v1: Value = http
        .post(format!("{}/api/v1.0/predictions", server.http))
        .header("traceparent", traceparent(t_v1, CALLER))
        .json(&json!({"data": {"ndarray": [[1, 2, 3]]}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v1["data"]["ndarray"], json!([[6.0]]), "{v1}");

    // REST, Open Inference Protocol v2
    let t_v2 = "5bf92f3577b34da6a3ce929d0e0e4737";
    let v2: Value = http
        .post(format!("{}/v2/models/{SERVICE}/infer", server.http))
        .header("traceparent", traceparent(t_v2, CALLER))
        .json(&json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1.5, 2.0]}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v2["outputs"][0]["data"], json!([3.5]), "{v2}");

    // gRPC, Seldon v1 and v2, context in the metadata
    let t_grpc1 = "6bf92f3577b34da6a3ce929d0e0e4738";
    let mut seldon = ModelClient::connect(server.grpc.clone()).await.unwrap();
    let mut req = tonic::Request::new(sp::SeldonMessage {
        data_oneof: Some(sp::seldon_message::DataOneof::Data(sp::DefaultData {
            names: vec![],
            data_oneof: Some(sp::default_data::DataOneof::Tensor(sp::Tensor {
                shape: vec![1, 2],
                values: vec![1.0, 2.0],
            })),
        })),
        ..Default::default()
    });
    req.metadata_mut()
        .insert("traceparent", traceparent(t_grpc1, CALLER).parse().unwrap());
    seldon.predict(req).await.unwrap();
    let t_grpc2 = "7bf92f3577b34da6a3ce929d0e0e4739";
    let mut oip = GrpcInferenceServiceClient::connect(server.grpc.clone())
        .await
        .unwrap();
    let infer = inf::ModelInferRequest {
        model_name: SERVICE.into(),
        inputs: vec![inf::model_infer_request::InferInputTensor {
            name: "x".into(),
            datatype: "FP64".into(),
            shape: vec![1, 1],
            contents: Some(inf::InferTensorContents {
                fp64_contents: vec![4.0],
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut req = tonic::Request::new(infer.clone());
    req.metadata_mut()
        .insert("traceparent", traceparent(t_grpc2, CALLER).parse().unwrap());
    oip.model_infer(req).await.unwrap();
    // a gRPC failure: unknown model → NOT_FOUND (5), not a server error
    let t_grpc3 = "8bf92f3577b34da6a3ce929d0e0e473a";
    let mut req = tonic::Request::new(inf::ModelInferRequest {
        model_name: "nope".into(),
        ..infer
    });
    req.metadata_mut()
        .insert("traceparent", traceparent(t_grpc3, CALLER).parse().unwrap());
    let status = oip.model_infer(req).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);

    // B3 single header, no traceparent
    let t_b3 = "9bf92f3577b34da6a3ce929d0e0e473b";
    let r = http
        .post(format!("{}/transform-input", server.http))
        .header("b3", format!("{t_b3}-{CALLER}-1"))
        .json(&json!({"data": {"ndarray": [[1]]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // a model failure (NaN) → 500, span status error
    let t_fail = "abf92f3577b34da6a3ce929d0e0e473c";
    let r = http
        .post(format!("{}/api/v1.0/predictions", server.http))
        .header("traceparent", traceparent(t_fail, CALLER))
        .json(&json!({"data": {"ndarray": [[1, null]]}}))
        .send()
        .await
        .unwrap();
    let (status, body) = (r.status(), r.text().await.unwrap());
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("sum is NaN"), "{body}");

    // no context → a new root; malformed traceparent → a new root, request still answered
    let r: Value = http
        .post(format!("{}/predict", server.http))
        .json(&json!({"data": {"ndarray": [[2, 2]]}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["data"]["ndarray"], json!([[4.0]]), "{r}");
    let r: Value = http
        .post(format!("{}/api/v0.1/predictions", server.http))
        .header("traceparent", "00-not-a-trace-01")
        .json(&json!({"data": {"ndarray": [[3, 3]]}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["data"]["ndarray"], json!([[6.0]]), "{r}");

    // ---- what Jaeger holds
    let s = only_span(&jaeger, t_v1).await;
    assert_eq!(parent(&s), Some(CALLER), "{s}");
    assert_eq!(s["operationName"], "POST /api/v1.0/predictions");
    for (k, v) in [
        ("http.request.method", json!("POST")),
        ("http.route", json!("/api/v1.0/predictions")),
        ("url.path", json!("/api/v1.0/predictions")),
        ("http.response.status_code", json!(200)),
        ("seldon.protocol", json!("seldon")),
    ] {
        assert_eq!(tag(&s, k), Some(&v), "{k}: {s}");
    }
    assert!(tag(&s, "otel.status_code").is_none(), "{s}");

    let s = only_span(&jaeger, t_v2).await;
    assert_eq!(parent(&s), Some(CALLER), "{s}");
    assert_eq!(s["operationName"], "POST /v2/models/{model}/infer");
    assert_eq!(tag(&s, "url.path"), Some(&json!("/v2/models/summer/infer")));
    assert_eq!(tag(&s, "seldon.protocol"), Some(&json!("v2")));
    assert_eq!(tag(&s, "http.response.status_code"), Some(&json!(200)));

    let s = only_span(&jaeger, t_grpc1).await;
    assert_eq!(parent(&s), Some(CALLER), "{s}");
    assert_eq!(s["operationName"], "seldon.protos.Model/Predict");
    for (k, v) in [
        ("rpc.system", json!("grpc")),
        ("rpc.service", json!("seldon.protos.Model")),
        ("rpc.method", json!("Predict")),
        ("rpc.grpc.status_code", json!(0)),
        ("seldon.protocol", json!("seldon")),
    ] {
        assert_eq!(tag(&s, k), Some(&v), "{k}: {s}");
    }

    let s = only_span(&jaeger, t_grpc2).await;
    assert_eq!(parent(&s), Some(CALLER), "{s}");
    assert_eq!(
        s["operationName"],
        "inference.GRPCInferenceService/ModelInfer"
    );
    assert_eq!(tag(&s, "seldon.protocol"), Some(&json!("v2")));
    assert_eq!(tag(&s, "rpc.grpc.status_code"), Some(&json!(0)));

    let s = only_span(&jaeger, t_grpc3).await;
    assert_eq!(tag(&s, "rpc.grpc.status_code"), Some(&json!(5)), "{s}");
    assert!(
        tag(&s, "otel.status_code").is_none(),
        "NOT_FOUND is no server error: {s}"
    );

    let s = only_span(&jaeger, t_b3).await;
    assert_eq!(parent(&s), Some(CALLER), "{s}");
    assert_eq!(s["operationName"], "POST /transform-input");

    let s = only_span(&jaeger, t_fail).await;
    assert_eq!(
        tag(&s, "http.response.status_code"),
        Some(&json!(500)),
        "{s}"
    );
    assert_eq!(tag(&s, "otel.status_code"), Some(&json!("ERROR")), "{s}");

    let known = [t_v1, t_v2, t_grpc1, t_grpc2, t_grpc3, t_b3, t_fail];
    for path in ["/predict", "/api/v0.1/predictions"] {
        let s = only_trace_with_path(&jaeger, path).await;
        assert_eq!(parent(&s), None, "{path}: a new root: {s}");
        let trace = s["traceID"].as_str().unwrap();
        assert!(!known.contains(&trace), "{path}: {s}");
        assert_eq!(tag(&s, "http.response.status_code"), Some(&json!(200)));
    }
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_queued_at_sigterm_are_exported_before_exit() {
    let dir = tempfile::tempdir().unwrap();
    let jaeger = Jaeger::start(dir.path()).await;
    // a 10-minute batch delay: only the shutdown flush can export this span
    let mut server = start_server(dir.path(), &jaeger, "summer-late", 600_000).await;
    let trace = "cbf92f3577b34da6a3ce929d0e0e473d";
    let r = reqwest::Client::new()
        .post(format!("{}/predict", server.http))
        .header("traceparent", traceparent(trace, CALLER))
        .json(&json!({"data": {"ndarray": [[1]]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        jaeger.trace(trace).await.0.is_empty(),
        "exported before the stop: the batch delay did not apply"
    );
    let status = server.process.stop().unwrap();
    assert!(
        status.success(),
        "graceful stop: {status}\n{}",
        std::fs::read_to_string(&server.log).unwrap_or_default()
    );
    let s = only_span(&jaeger, trace).await;
    assert_eq!(parent(&s), Some(CALLER), "{s}");
}

#[tokio::test]
async fn a_bad_endpoint_stops_the_server_from_starting() {
    let mut config = seldon_serving::config::Config::for_tests();
    config.otlp_endpoint = Some("https://collector:4318".into());
    let err = seldon_serving::server::bind_all(
        config,
        std::sync::Arc::new(seldon_serving::builtin::SumModel::default()),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "tracing: OTEL_EXPORTER_OTLP_ENDPOINT `https://collector:4318` is not an http:// URL (OTLP/HTTP without TLS is supported)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_costs_spans_not_requests() {
    let dir = tempfile::tempdir().unwrap();
    // nothing listens here yet: every export is refused
    let otlp = free_port();
    let server = start_server_to(
        dir.path(),
        &format!("http://127.0.0.1:{otlp}"),
        "summer-nocollector",
        100,
    )
    .await;
    let http = reqwest::Client::new();
    let mut slowest = Duration::ZERO;
    for i in 0..5u32 {
        let trace = format!("{:032x}", 0xdead_0000u32 + i);
        let started = Instant::now();
        let r: Value = http
            .post(format!("{}/predict", server.http))
            .header("traceparent", traceparent(&trace, CALLER))
            .json(&json!({"data": {"ndarray": [[i, 1]]}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        slowest = slowest.max(started.elapsed());
        assert_eq!(r["data"]["ndarray"], json!([[f64::from(i) + 1.0]]), "{r}");
        // let at least one batch fail while requests keep coming
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // generous: a request must not wait for the export (10 s timeout) or its retries
    assert!(
        slowest < Duration::from_secs(1),
        "slowest request {slowest:?}"
    );

    // the failures are counted on /prometheus and logged
    let deadline = Instant::now() + Duration::from_secs(20);
    while sample(&server, "seldon_otlp_spans_failed_total").await < Some(5.0) {
        assert!(
            Instant::now() < deadline,
            "5 failed spans not counted in 20 s:\n{}",
            reqwest::get(format!("{}/prometheus", server.metrics))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // (the start-up health pings were spans too: at least 5, and nothing more pending)
    tokio::time::sleep(Duration::from_millis(500)).await;
    let failed = sample(&server, "seldon_otlp_spans_failed_total").await;
    assert!(failed >= Some(5.0), "{failed:?}");
    assert!(sample(&server, "seldon_otlp_export_failures_total").await >= Some(1.0));
    assert_eq!(
        sample(&server, "seldon_otlp_spans_exported_total").await,
        Some(0.0)
    );
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(
        log.contains("OTLP span export failed; spans dropped")
            && log.contains(&format!("127.0.0.1:{otlp}/v1/traces")),
        "{log}"
    );

    // the collector comes up on that port: the next spans arrive, with their parent
    let jaeger = Jaeger::start_on(dir.path(), otlp).await;
    let trace = "ebf92f3577b34da6a3ce929d0e0e473f";
    let r = http
        .post(format!("{}/api/v1.0/predictions", server.http))
        .header("traceparent", traceparent(trace, CALLER))
        .json(&json!({"data": {"ndarray": [[1]]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let s = only_span(&jaeger, trace).await;
    assert_eq!(parent(&s), Some(CALLER), "{s}");
    // counted once the collector's answer is back (Jaeger may show the span a moment before)
    let deadline = Instant::now() + Duration::from_secs(5);
    while sample(&server, "seldon_otlp_spans_exported_total").await != Some(1.0) {
        assert!(Instant::now() < deadline, "exported span not counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        sample(&server, "seldon_otlp_spans_failed_total").await,
        failed
    );
    drop(server);
}
