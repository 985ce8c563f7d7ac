//! The filter's spans in a real Envoy 1.40: a prediction with a known `traceparent` through
//! transformer → router → two models (one branch runs), exported by the root context as
//! OTLP/HTTP protobuf to a small receiver on 127.0.0.1 (this file's `Receiver`, a fixture for
//! the export only), decoded with the real `opentelemetry-proto` messages.
//!
//! Needs the release filter module (`make wasm`) and Envoy (`scripts/setup.sh`).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value as Any};
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind, status::StatusCode};
use prost::Message;
use seldon_e2e::graph::{GraphSpec, GraphUnderTest};
use seldon_e2e::{Mode, TestModelSpec};
use seldon_graph::Tracing;
use seldon_trace::hex;

const TID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const ONE: &str = r#"{"data":{"ndarray":[[1.0]]}}"#;

/// One POST the receiver got.
#[derive(Debug, Clone)]
struct Post {
    path: String,
    content_type: Option<String>,
    body: Bytes,
}

/// A tiny OTLP/HTTP receiver: records every POST, answers 200 with an empty
/// `ExportTraceServiceResponse`. The task stops when it is dropped.
struct Receiver {
    port: u16,
    posts: Arc<Mutex<Vec<Post>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let posts = Arc::new(Mutex::new(Vec::new()));
        let store = Arc::clone(&posts);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let store = Arc::clone(&store);
                        async move {
                            let path = req.uri().path().to_string();
                            let content_type = req
                                .headers()
                                .get("content-type")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_string);
                            let body = req.into_body().collect().await.map(|b| b.to_bytes());
                            store.lock().unwrap().push(Post {
                                path,
                                content_type,
                                body: body.unwrap_or_default(),
                            });
                            let answer = Response::builder()
                                .header("content-type", "application/x-protobuf")
                                .body(Full::new(Bytes::new()))
                                .unwrap();
                            Ok::<_, Infallible>(answer)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { port, posts, task }
    }

    fn posts(&self) -> Vec<Post> {
        self.posts.lock().unwrap().clone()
    }

    /// Every span received so far, with its resource's `service.name` and scope name.
    fn spans(&self) -> Vec<(String, String, Span)> {
        let mut out = Vec::new();
        for post in self.posts() {
            let req = ExportTraceServiceRequest::decode(post.body.as_ref()).unwrap();
            for rs in req.resource_spans {
                let service = rs
                    .resource
                    .iter()
                    .flat_map(|r| &r.attributes)
                    .find(|kv| kv.key == "service.name")
                    .and_then(|kv| string(kv.value.as_ref()))
                    .unwrap_or_default();
                for ss in rs.scope_spans {
                    let scope = ss.scope.map(|s| s.name).unwrap_or_default();
                    for span in ss.spans {
                        out.push((service.clone(), scope.clone(), span));
                    }
                }
            }
        }
        out
    }

    /// Polls until at least `n` spans arrived (exports leave on the root context's tick).
    async fn wait_spans(&self, n: usize) -> Vec<(String, String, Span)> {
        for _ in 0..200 {
            let spans = self.spans();
            if spans.len() >= n {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("fewer than {n} spans arrived: {:?}", self.spans());
    }
}

fn string(v: Option<&AnyValue>) -> Option<String> {
    match v?.value.as_ref()? {
        Any::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a Any> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn str_attr(span: &Span, key: &str) -> Option<String> {
    match attr(span, key)? {
        Any::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn int_attr(span: &Span, key: &str) -> Option<i64> {
    match attr(span, key)? {
        Any::IntValue(n) => Some(*n),
        _ => None,
    }
}

fn tracing_to(port: u16, flush_ms: u64) -> (Tracing, u16) {
    let mut t = Tracing::new("otlp", format!("otlp:{port}"));
    t.service_name = "iris-default".into();
    t.flush_interval_ms = flush_ms;
    (t, port)
}

fn router_graph(tracing: (Tracing, u16)) -> GraphSpec {
    let mut spec = GraphSpec::new(
        "{name: t, type: TRANSFORMER, children: [{name: r, type: ROUTER, children: [{name: a, type: MODEL}, {name: b, type: MODEL}]}]}",
        vec![
            TestModelSpec::new("t", Mode::Echo),
            TestModelSpec::new("r", Mode::Route).routing_to(1),
            TestModelSpec::new("a", Mode::Add).adding(1.0),
            TestModelSpec::new("b", Mode::Add).adding(2.0),
        ],
    );
    spec.tracing = Some(tracing);
    spec
}

async fn start(spec: GraphSpec) -> GraphUnderTest {
    match GraphUnderTest::start(spec).await {
        Ok(g) => g,
        Err(e) => panic!("starting the graph failed: {e:#?}"),
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// The value of a filter counter in Envoy's Prometheus output (0 when absent).
async fn counter(g: &GraphUnderTest, name: &str) -> u64 {
    let prom = g.envoy.admin_get("/stats/prometheus").await.unwrap();
    prom.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .inspect(|l| {
            assert!(l.contains(r#"deployment_name="sdep""#), "{l}");
            assert!(l.contains(r#"predictor_name="default""#), "{l}");
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn spans_of_a_prediction_reach_the_collector_as_otlp() {
    let receiver = Receiver::start().await;
    let g = start(router_graph(tracing_to(receiver.port, 100))).await;
    let answer = client()
        .post(format!("{}/api/v1.0/predictions", g.url))
        .header("content-type", "application/json")
        .header("traceparent", format!("00-{TID}-{CALLER_SPAN}-01"))
        .header("tracestate", "vendor=1")
        .body(ONE)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["data"]["ndarray"], serde_json::json!([[3.0]]), "b ran");

    let spans = receiver.wait_spans(4).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let spans = if receiver.spans().len() > spans.len() {
        receiver.spans()
    } else {
        spans
    };
    for post in receiver.posts() {
        assert_eq!(post.path, "/v1/traces");
        assert_eq!(post.content_type.as_deref(), Some("application/x-protobuf"));
    }
    let mut names: Vec<&str> = spans.iter().map(|(_, _, s)| s.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "b predict",
            "r route",
            "seldon sdep/default /api/v1.0/predictions",
            "t transform-input",
        ],
        "one span per node call that ran (none for a), and the request span"
    );
    for (service, scope, span) in &spans {
        assert_eq!(service, "iris-default");
        assert_eq!(scope, "seldon-mesh");
        assert_eq!(
            hex(&span.trace_id),
            TID,
            "{}: the caller's trace continues",
            span.name
        );
        assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
        assert!(
            span.start_time_unix_nano > 1_700_000_000_000_000_000,
            "Unix time"
        );
    }
    let find = |name: &str| &spans.iter().find(|(_, _, s)| s.name == name).unwrap().2;
    let server = find("seldon sdep/default /api/v1.0/predictions");
    assert_eq!(server.kind, SpanKind::Server as i32);
    assert_eq!(hex(&server.parent_span_id), CALLER_SPAN);
    assert_eq!(int_attr(server, "http.response.status_code"), Some(200));
    assert_eq!(
        int_attr(server, "http.request.body.size"),
        Some(ONE.len() as i64)
    );
    assert_eq!(
        str_attr(server, "seldon.endpoint").as_deref(),
        Some("predictions")
    );
    assert!(str_attr(server, "seldon.puid").is_some_and(|p| p.len() == 36));

    for (name, node, node_type, method, path) in [
        (
            "t transform-input",
            "t",
            "TRANSFORMER",
            "transform-input",
            "/transform-input",
        ),
        ("r route", "r", "ROUTER", "route", "/route"),
        ("b predict", "b", "MODEL", "predict", "/predict"),
    ] {
        let span = find(name);
        assert_eq!(span.kind, SpanKind::Client as i32, "{name}");
        assert_eq!(
            span.parent_span_id, server.span_id,
            "{name} is a child of the request"
        );
        assert!(span.start_time_unix_nano >= server.start_time_unix_nano);
        assert!(span.end_time_unix_nano <= server.end_time_unix_nano);
        assert_eq!(str_attr(span, "seldon.node.name").as_deref(), Some(node));
        assert_eq!(
            str_attr(span, "seldon.node.type").as_deref(),
            Some(node_type)
        );
        assert_eq!(
            str_attr(span, "seldon.node.method").as_deref(),
            Some(method)
        );
        assert_eq!(int_attr(span, "http.response.status_code"), Some(200));
        assert_eq!(int_attr(span, "seldon.node.retries"), Some(0));
        assert!(int_attr(span, "http.request.body.size").is_some_and(|n| n > 0));
        assert!(int_attr(span, "http.response.body.size").is_some_and(|n| n > 0));
        assert!(
            span.status
                .as_ref()
                .is_none_or(|s| s.code == StatusCode::Unset as i32)
        );
        // the node received the node span's own context
        let calls = g.node(node).calls().await.unwrap();
        let call = calls.iter().find(|c| c.path == path).unwrap();
        let expected = format!("00-{TID}-{}-01", hex(&span.span_id));
        assert_eq!(
            call.header("traceparent"),
            Some(expected.as_str()),
            "{name}"
        );
        assert_eq!(call.header("tracestate"), Some("vendor=1"));
    }
    assert!(g.node("a").calls().await.unwrap().is_empty(), "a never ran");
    assert_eq!(counter(&g, "seldon_trace_spans_exported_total").await, 4);
    assert_eq!(counter(&g, "seldon_trace_export_failures_total").await, 0);
}

#[tokio::test]
async fn a_failing_node_is_an_error_span_naming_it() {
    let receiver = Receiver::start().await;
    let mut spec = GraphSpec::new(
        "{name: t, type: TRANSFORMER, children: [{name: m}]}",
        vec![
            TestModelSpec::new("t", Mode::Echo),
            TestModelSpec::new("m", Mode::Fail).fail(500, None),
        ],
    );
    spec.tracing = Some(tracing_to(receiver.port, 100));
    let g = start(spec).await;
    let answer = client()
        .post(format!("{}/api/v1.0/predictions", g.url))
        .header("b3", format!("{TID}-{CALLER_SPAN}-1"))
        .body(ONE)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 500);
    let spans = receiver.wait_spans(3).await;
    let find = |name: &str| {
        &spans
            .iter()
            .find(|(_, _, s)| s.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .2
    };
    let m = find("m predict");
    let status = m.status.as_ref().unwrap();
    assert_eq!(status.code, StatusCode::Error as i32);
    assert_eq!(status.message, "node `m` answered 500");
    assert_eq!(int_attr(m, "http.response.status_code"), Some(500));
    let server = find("seldon sdep/default /api/v1.0/predictions");
    assert_eq!(
        server.status.as_ref().unwrap().code,
        StatusCode::Error as i32
    );
    assert_eq!(
        hex(&server.trace_id),
        TID,
        "the B3 caller's trace continues"
    );
    // B3 in, B3 (and traceparent) out
    let calls = g.node("m").calls().await.unwrap();
    let expected = format!("{TID}-{}-1-{}", hex(&m.span_id), hex(&server.span_id));
    assert_eq!(calls[0].header("b3"), Some(expected.as_str()));
    let tp = format!("00-{TID}-{}-01", hex(&m.span_id));
    assert_eq!(calls[0].header("traceparent"), Some(tp.as_str()));
}

#[tokio::test]
async fn a_full_queue_drops_and_an_unreachable_collector_fails_counted() {
    // Nothing listens on the collector port: every export fails.
    let dead = seldon_envoy::free_port().unwrap();
    let (mut t, port) = tracing_to(dead, 100);
    t.max_queue_spans = 1;
    let mut spec = GraphSpec::new("name: m", vec![TestModelSpec::new("m", Mode::Echo)]);
    spec.tracing = Some((t, port));
    spec.concurrency = 1;
    let g = start(spec).await;
    let answer = client()
        .post(format!("{}/api/v1.0/predictions", g.url))
        .body(ONE)
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.status(),
        200,
        "the request never waits on the collector"
    );
    let mut failures = 0;
    for _ in 0..100 {
        failures = counter(&g, "seldon_trace_export_failures_total").await;
        if failures > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(failures, 1, "one export POST (of the one span kept) failed");
    // two spans (m predict, the request), a queue of one: one dropped
    assert_eq!(counter(&g, "seldon_trace_spans_dropped_total").await, 1);
    assert_eq!(counter(&g, "seldon_trace_spans_exported_total").await, 0);
}

#[tokio::test]
async fn tracing_off_forwards_trace_headers_untouched() {
    let g = start(GraphSpec::new(
        "name: m",
        vec![TestModelSpec::new("m", Mode::Echo)],
    ))
    .await;
    let tp = format!("00-{TID}-{CALLER_SPAN}-01");
    let answer = client()
        .post(format!("{}/api/v1.0/predictions", g.url))
        .header("traceparent", &tp)
        .header("x-b3-traceid", TID)
        .body(ONE)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let calls = g.node("m").calls().await.unwrap();
    assert_eq!(calls[0].header("traceparent"), Some(tp.as_str()));
    assert_eq!(calls[0].header("x-b3-traceid"), Some(TID));
}
