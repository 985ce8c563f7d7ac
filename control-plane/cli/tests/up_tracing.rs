//! Traces from local mode in a real Jaeger (issue 8): `seldon-mesh up --otlp-endpoint` with a
//! 4-node graph, a prediction carrying a known `traceparent`, then Jaeger's query API.
//!
//! The graph: transformer `tin` → router `rt` (always routes to child 1) → models `m0`, `m1`.
//! So `tin`, `rt` and `m1` run and `m0` does not. The trace must hold exactly one SERVER span
//! for the graph request, child of the caller's span, and one CLIENT span per node that ran,
//! children of the request span, with their attributes; none for `m0`.
//!
//! A second graph puts a Rust node server (the SDK's router) in the trace: its own SERVER
//! span hangs under the filter's span for its call.
//!
//! Jaeger is the real v2 all-in-one (`seldon-test-jaeger`; `scripts/jaeger-test-env.sh` builds
//! it once). Both it and `up` are supervised: a failing assertion stops them and everything
//! they started.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

use common::{sibling, start_up};
use seldon_test_jaeger::{Jaeger, parent, tag};

const GRAPH: &str = r#"
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: traced, namespace: team}
spec:
  predictors:
  - name: main
    graph:
      name: tin
      type: TRANSFORMER
      children:
      - name: rt
        type: ROUTER
        children:
        - {name: m0, type: MODEL}
        - {name: m1, type: MODEL}
    componentSpecs:
    - spec:
        containers:
        - {name: tin, image: me/tin:1}
        - {name: rt, image: me/rt:1}
        - {name: m0, image: me/m:1}
        - {name: m1, image: me/m:1}
"#;

/// The caller's trace: W3C ids this test chose.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn testmodel(name: &str, args: &str) -> String {
    format!(
        "exec {} --port $PREDICTIVE_UNIT_HTTP_SERVICE_PORT --name {name} {args}",
        sibling("testmodel").display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_span_per_node_that_ran_in_a_real_jaeger() {
    let dir = tempfile::tempdir().unwrap();
    let jaeger = Jaeger::start(dir.path()).await;
    let otlp = jaeger.endpoint();
    let runs = [
        ("tin", testmodel("tin", "--mode add --add 1")),
        ("rt", testmodel("rt", "--route 1")),
        ("m0", testmodel("m0", "--mode add --add 10")),
        ("m1", testmodel("m1", "--mode add --add 100")),
    ];
    let common::Started { up: _up, url, .. } =
        start_up(dir.path(), GRAPH, &["--otlp-endpoint", &otlp], &runs);

    let answer: Value = reqwest::Client::new()
        .post(&url)
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .json(&json!({"data": {"ndarray": [[1.0]]}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // tin adds 1, the router picks m1, which adds 100
    assert_eq!(answer["data"]["ndarray"], json!([[102.0]]), "{answer}");

    // exported every second, batched by Jaeger for 100 ms
    let deadline = Instant::now() + Duration::from_secs(20);
    let (spans, processes) = loop {
        let (spans, processes) = jaeger.trace(TRACE_ID).await;
        if spans.len() >= 4 {
            // one more flush period: a late span would show up now
            tokio::time::sleep(Duration::from_millis(1500)).await;
            break jaeger.trace(TRACE_ID).await;
        }
        assert!(
            Instant::now() < deadline,
            "Jaeger holds {} spans of trace {TRACE_ID} after 20 s: {spans:#?} {processes}",
            spans.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(spans.len(), 4, "{spans:#?}");
    for s in &spans {
        assert_eq!(s["traceID"], TRACE_ID, "{s}");
        let process = &processes[s["processID"].as_str().unwrap()];
        assert_eq!(process["serviceName"], "traced-main.team", "{process}");
    }

    let kind = |s: &Value| {
        tag(s, "span.kind")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let servers: Vec<&Value> = spans
        .iter()
        .filter(|s| kind(s).as_deref() == Some("server"))
        .collect();
    assert_eq!(servers.len(), 1, "{spans:#?}");
    let request = servers[0];
    assert_eq!(parent(request), Some(CALLER_SPAN), "{request}");
    let request_id = request["spanID"].as_str().unwrap();

    let nodes: BTreeMap<String, &Value> = spans
        .iter()
        .filter(|s| kind(s).as_deref() == Some("client"))
        .map(|s| {
            let name = tag(s, "seldon.node.name")
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("no seldon.node.name: {s}"));
            (name.to_string(), s)
        })
        .collect();
    assert_eq!(
        nodes.keys().map(String::as_str).collect::<Vec<_>>(),
        ["m1", "rt", "tin"],
        "one span per node that ran, none for m0"
    );
    for (node, node_type, method) in [
        ("tin", "TRANSFORMER", "transform-input"),
        ("rt", "ROUTER", "route"),
        ("m1", "MODEL", "predict"),
    ] {
        let s = nodes[node];
        assert_eq!(parent(s), Some(request_id), "{node}: {s}");
        assert_eq!(
            tag(s, "seldon.node.type"),
            Some(&json!(node_type)),
            "{node}: {s}"
        );
        assert_eq!(
            tag(s, "seldon.node.method"),
            Some(&json!(method)),
            "{node}: {s}"
        );
        assert_eq!(
            tag(s, "http.response.status_code"),
            Some(&json!(200)),
            "{node}: {s}"
        );
        assert!(s["duration"].as_u64().unwrap() > 0, "{node}: {s}");
        // inside the request span
        assert!(
            s["startTime"].as_u64() >= request["startTime"].as_u64(),
            "{node}"
        );
    }
}

/// `tin` → router `rt` → `m0`, `m1`, where `rt` is the SDK's epsilon-greedy router (a
/// `seldon-serving` server, `model-servers/sdk-example`) with epsilon 0: it always picks
/// branch 0 before any feedback.
const GRAPH_RUST_ROUTER: &str = r#"
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: traced, namespace: team}
spec:
  predictors:
  - name: main
    graph:
      name: tin
      type: TRANSFORMER
      children:
      - name: rt
        type: ROUTER
        parameters:
        - {name: n_branches, type: INT, value: "2"}
        - {name: epsilon, type: FLOAT, value: "0"}
        children:
        - {name: m0, type: MODEL}
        - {name: m1, type: MODEL}
    componentSpecs:
    - spec:
        containers:
        - {name: tin, image: me/tin:1}
        - {name: rt, image: me/rt:1}
        - {name: m0, image: me/m:1}
        - {name: m1, image: me/m:1}
"#;

/// The nodes' own servers join the trace: `up --otlp-endpoint` hands the collector to every
/// node process (`OTEL_EXPORTER_OTLP_ENDPOINT`), and a Rust node server continues the
/// `traceparent` the filter sent it. So Jaeger holds, in the caller's trace, the filter's
/// CLIENT span for `rt` and, as its child, `rt`'s own SERVER span (service `rt`, the node's
/// name). The `testmodel` nodes export nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_node_server_continues_the_trace_under_its_node_span() {
    const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    let dir = tempfile::tempdir().unwrap();
    let jaeger = Jaeger::start(dir.path()).await;
    let otlp = jaeger.endpoint();
    let runs = [
        ("tin", testmodel("tin", "--mode add --add 1")),
        (
            "rt",
            format!("exec {}", sibling("epsilon-greedy-router").display()),
        ),
        ("m0", testmodel("m0", "--mode add --add 10")),
        ("m1", testmodel("m1", "--mode add --add 100")),
    ];
    let common::Started { up: _up, url, .. } = start_up(
        dir.path(),
        GRAPH_RUST_ROUTER,
        &["--otlp-endpoint", &otlp],
        &runs,
    );

    let answer: Value = reqwest::Client::new()
        .post(&url)
        .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
        .json(&json!({"data": {"ndarray": [[1.0]]}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // tin adds 1, the router picks m0 (epsilon 0, no feedback yet), which adds 10
    assert_eq!(answer["data"]["ndarray"], json!([[12.0]]), "{answer}");

    // the filter's request span and 3 node spans, and rt's own server span
    let deadline = Instant::now() + Duration::from_secs(20);
    let (spans, processes) = loop {
        let (spans, processes) = jaeger.trace(TRACE).await;
        if spans.len() >= 5 {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            break jaeger.trace(TRACE).await;
        }
        assert!(
            Instant::now() < deadline,
            "Jaeger holds {} spans of trace {TRACE} after 20 s: {spans:#?} {processes}",
            spans.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(spans.len(), 5, "{spans:#?}");
    let service = |s: &Value| {
        processes[s["processID"].as_str().unwrap()]["serviceName"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let filter_rt = spans
        .iter()
        .find(|s| {
            service(s) == "traced-main.team" && tag(s, "seldon.node.name") == Some(&json!("rt"))
        })
        .unwrap_or_else(|| panic!("no filter span for rt: {spans:#?}"));
    let servers: Vec<&Value> = spans.iter().filter(|s| service(s) == "rt").collect();
    assert_eq!(servers.len(), 1, "one span from rt's server: {spans:#?}");
    let rt = servers[0];
    assert_eq!(rt["traceID"], TRACE, "{rt}");
    assert_eq!(rt["operationName"], "POST /route", "{rt}");
    assert_eq!(tag(rt, "span.kind"), Some(&json!("server")), "{rt}");
    assert_eq!(
        parent(rt),
        filter_rt["spanID"].as_str(),
        "rt's server span is a child of the filter's call to rt: {rt}\n{filter_rt}"
    );
    assert_eq!(tag(rt, "seldon.node.name"), Some(&json!("rt")), "{rt}");
    // inside the call that carried it (one clock: both processes run here)
    let window = |s: &Value| {
        let start = s["startTime"].as_u64().unwrap();
        (start, start + s["duration"].as_u64().unwrap())
    };
    let (call, server) = (window(filter_rt), window(rt));
    assert!(
        call.0 <= server.0 && server.1 <= call.1,
        "rt's server span {server:?} lies outside the filter's call {call:?}"
    );
}
