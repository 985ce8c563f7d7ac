//! A real Jaeger v2 in the mesh, as a user gets it from Istio's `samples/addons/jaeger.yaml`,
//! and the span trees it holds.
//!
//! Jaeger runs as a process on the node (like the webhook): OTLP gRPC and HTTP on
//! `10.77.0.1:4317/4318`, where pods and the gateway reach it, and the query API on
//! `127.0.0.1:16686` under the addon's base path `/jaeger`. The addon's `jaeger-collector`
//! Service is applied without its selector, with an EndpointSlice at the node address, so
//! istiod makes the outbound clusters `outbound|4317||jaeger-collector.istio-system…` (Envoy's
//! OpenTelemetry tracer) and `outbound|4318||…` (the graph filter's OTLP/HTTP export).
//!
//! The span helpers ([`parse_trace`], [`Span`], [`tree`]) read Jaeger's `/api/traces/<id>`
//! answer into plain data, so a scenario asserts parents, kinds and attributes directly.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::HarnessError;

/// OTLP over gRPC (Envoy's OpenTelemetry tracer, the addon's Service port `grpc-otel`).
pub const OTLP_GRPC_PORT: u16 = 4317;
/// OTLP over HTTP (the graph filter, the addon's Service port `http-otel`).
pub const OTLP_HTTP_PORT: u16 = 4318;
/// Jaeger's query API and UI (the addon's Service `tracing`, port 80 → 16686).
pub const QUERY_PORT: u16 = 16686;
/// Jaeger's query gRPC port, moved off nothing but kept on loopback.
pub const QUERY_GRPC_PORT: u16 = 16685;
/// The addon serves the UI and API under `/jaeger` (`jaeger_query.base_path`).
pub const QUERY_BASE_PATH: &str = "/jaeger";
/// Where the collector Service lives in the addon.
pub const NAMESPACE: &str = "istio-system";
pub const COLLECTOR_SERVICE: &str = "jaeger-collector";

/// The pinned Jaeger v2 binary (`scripts/jaeger-test-env.sh` builds it once and prints it).
pub fn binary() -> Result<PathBuf, HarnessError> {
    let paths = crate::cluster::script_paths("scripts/jaeger-test-env.sh", &[])?;
    paths
        .into_iter()
        .next()
        .ok_or_else(|| HarnessError::Script {
            script: "scripts/jaeger-test-env.sh".into(),
            status: "ok".into(),
            stderr: "printed no path".into(),
        })
}

/// Jaeger's config: the addon's pipeline (OTLP receivers → batch → storage, the query
/// extension with base path `/jaeger`), with memory storage instead of badger on a volume
/// and only the listeners the mesh uses. OTLP listens on `otlp_host` (the node address pods
/// reach), the query API on loopback.
pub fn config(otlp_host: Ipv4Addr) -> String {
    format!(
        r#"service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  jaeger_query:
    base_path: {QUERY_BASE_PATH}
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{QUERY_PORT}
    grpc:
      endpoint: 127.0.0.1:{QUERY_GRPC_PORT}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {otlp_host}:{OTLP_GRPC_PORT}
      http:
        endpoint: {otlp_host}:{OTLP_HTTP_PORT}
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"#
    )
}

/// The addon's `jaeger-collector` Service (its ports as in `samples/addons/jaeger.yaml` of the
/// pinned Istio), without its selector since Jaeger is a process on the node, and an
/// EndpointSlice putting the two OTLP ports at `node_ip` (the apiserver refuses loopback
/// endpoints). istiod builds the outbound clusters from these, as from a Jaeger pod.
pub fn collector_objects(node_ip: Ipv4Addr) -> Vec<Value> {
    let labels = json!({"app": "jaeger"});
    vec![
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": COLLECTOR_SERVICE, "namespace": NAMESPACE, "labels": labels},
            "spec": {"type": "ClusterIP", "ports": [
                {"name": "jaeger-collector-http", "port": 14268, "targetPort": 14268, "protocol": "TCP"},
                {"name": "jaeger-collector-grpc", "port": 14250, "targetPort": 14250, "protocol": "TCP"},
                {"name": "http-zipkin", "port": 9411, "targetPort": 9411},
                {"name": "grpc-otel", "port": OTLP_GRPC_PORT},
                {"name": "http-otel", "port": OTLP_HTTP_PORT},
            ]}
        }),
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("{COLLECTOR_SERVICE}-node"), "namespace": NAMESPACE,
                         "labels": {"kubernetes.io/service-name": COLLECTOR_SERVICE,
                                    "endpointslice.kubernetes.io/managed-by": "mesh-test"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [node_ip.to_string()], "conditions": {"ready": true}}],
            "ports": [
                {"name": "grpc-otel", "port": OTLP_GRPC_PORT, "protocol": "TCP"},
                {"name": "http-otel", "port": OTLP_HTTP_PORT, "protocol": "TCP"},
            ]
        }),
    ]
}

/// One span as Jaeger's query API returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub trace_id: String,
    pub span_id: String,
    /// The `CHILD_OF` reference's span id.
    pub parent: Option<String>,
    pub operation: String,
    /// The process's `serviceName` (OpenTelemetry `service.name`).
    pub service: String,
    /// `span.kind` (`server`, `client`, …) when set.
    pub kind: Option<String>,
    /// Microseconds since the epoch.
    pub start_us: u64,
    pub duration_us: u64,
    pub tags: BTreeMap<String, Value>,
}

impl Span {
    /// A tag's value as a string, if it is one.
    pub fn tag_str(&self, key: &str) -> Option<&str> {
        self.tags.get(key).and_then(Value::as_str)
    }
}

fn malformed(what: &str, body: &Value) -> HarnessError {
    let mut text = body.to_string();
    text.truncate(500);
    HarnessError::Check(format!("Jaeger trace answer: {what}: {text}"))
}

/// The spans of the first trace in a `/api/traces/<id>` answer, with their services resolved.
/// An answer without `data[0].spans`, or a span without ids or an unknown process, is an
/// error naming what was missing.
pub fn parse_trace(body: &Value) -> Result<Vec<Span>, HarnessError> {
    let trace = &body["data"][0];
    let spans = trace["spans"]
        .as_array()
        .ok_or_else(|| malformed("no data[0].spans", body))?;
    let processes = &trace["processes"];
    spans
        .iter()
        .map(|s| {
            let text = |k: &str| {
                s[k].as_str()
                    .map(str::to_string)
                    .ok_or_else(|| malformed(&format!("span without {k}"), s))
            };
            let process = text("processID")?;
            let service = processes[&process]["serviceName"]
                .as_str()
                .ok_or_else(|| malformed(&format!("unknown process {process}"), body))?
                .to_string();
            let tags: BTreeMap<String, Value> = s["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| Some((t["key"].as_str()?.to_string(), t["value"].clone())))
                .collect();
            let parent = s["references"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| r["refType"] == "CHILD_OF")
                .and_then(|r| r["spanID"].as_str())
                .map(str::to_string);
            Ok(Span {
                trace_id: text("traceID")?,
                span_id: text("spanID")?,
                parent,
                operation: text("operationName")?,
                service,
                kind: tags
                    .get("span.kind")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                start_us: s["startTime"].as_u64().unwrap_or(0),
                duration_us: s["duration"].as_u64().unwrap_or(0),
                tags,
            })
        })
        .collect()
}

/// `GET <query>/api/traces/<trace_id>`: the trace's spans, or none while Jaeger has none
/// (it answers 404 until the first span arrives).
pub async fn trace(
    http: &reqwest::Client,
    query: &str,
    trace_id: &str,
) -> Result<Vec<Span>, HarnessError> {
    let r = http
        .get(format!("{query}/api/traces/{trace_id}"))
        .send()
        .await?;
    if r.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(Vec::new());
    }
    let body: Value = r.error_for_status()?.json().await?;
    parse_trace(&body)
}

/// The spans as an indented tree (roots: spans whose parent is not in the list), one line
/// each: service, kind, operation, span id, and the `seldon.node.name` tag when present. For
/// failure messages and the test's output.
pub fn tree(spans: &[Span]) -> String {
    fn walk(spans: &[Span], span: &Span, depth: usize, out: &mut String) {
        out.push_str(&format!(
            "{:indent$}{} [{}] {:?} {}{}{}\n",
            "",
            span.service,
            span.kind.as_deref().unwrap_or("-"),
            span.operation,
            span.span_id,
            span.parent
                .as_deref()
                .map(|p| format!(" ← {p}"))
                .unwrap_or_default(),
            span.tag_str("seldon.node.name")
                .map(|n| format!(" node={n}"))
                .unwrap_or_default(),
            indent = depth * 2
        ));
        let mut children: Vec<&Span> = spans
            .iter()
            .filter(|s| s.parent.as_deref() == Some(span.span_id.as_str()))
            .collect();
        children.sort_by_key(|s| s.start_us);
        for c in children {
            walk(spans, c, depth + 1, out);
        }
    }
    let mut out = String::new();
    let mut roots: Vec<&Span> = spans
        .iter()
        .filter(|s| {
            s.parent
                .as_deref()
                .is_none_or(|p| !spans.iter().any(|o| o.span_id == p))
        })
        .collect();
    roots.sort_by_key(|s| s.start_us);
    for r in roots {
        walk(spans, r, 0, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> Value {
        json!({"data": [{
            "traceID": "4bf9",
            "spans": [
                {"traceID": "4bf9", "spanID": "a1", "operationName": "gw", "processID": "p1",
                 "references": [{"refType": "CHILD_OF", "traceID": "4bf9", "spanID": "caller"}],
                 "startTime": 10, "duration": 50,
                 "tags": [{"key": "span.kind", "type": "string", "value": "server"}]},
                {"traceID": "4bf9", "spanID": "b2", "operationName": "m predict", "processID": "p2",
                 "references": [{"refType": "CHILD_OF", "traceID": "4bf9", "spanID": "a1"}],
                 "startTime": 20, "duration": 5,
                 "tags": [{"key": "span.kind", "type": "string", "value": "client"},
                          {"key": "seldon.node.name", "type": "string", "value": "m"},
                          {"key": "http.response.status_code", "type": "int64", "value": 200}]}
            ],
            "processes": {"p1": {"serviceName": "istio-ingressgateway.istio-system"},
                          "p2": {"serviceName": "bandit-default.seldon"}}
        }]})
    }

    #[test]
    fn parse_trace_resolves_services_parents_kinds_and_tags() {
        let spans = parse_trace(&answer()).unwrap();
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0].service, "istio-ingressgateway.istio-system");
        assert_eq!(spans[0].parent.as_deref(), Some("caller"));
        assert_eq!(spans[0].kind.as_deref(), Some("server"));
        assert_eq!(spans[1].parent.as_deref(), Some("a1"));
        assert_eq!(spans[1].tag_str("seldon.node.name"), Some("m"));
        assert_eq!(spans[1].tags["http.response.status_code"], json!(200));
        assert_eq!((spans[1].start_us, spans[1].duration_us), (20, 5));
        let t = tree(&spans);
        assert_eq!(t.lines().count(), 2, "{t}");
        assert!(
            t.lines()
                .nth(1)
                .unwrap()
                .starts_with("  bandit-default.seldon [client]"),
            "{t}"
        );
    }

    #[test]
    fn parse_trace_names_what_is_missing() {
        let err = parse_trace(&json!({"data": []})).unwrap_err().to_string();
        assert!(err.contains("no data[0].spans"), "{err}");
        let mut bad = answer();
        bad["data"][0]["spans"][1]["processID"] = json!("p9");
        let err = parse_trace(&bad).unwrap_err().to_string();
        assert!(err.contains("unknown process p9"), "{err}");
        let mut bad = answer();
        bad["data"][0]["spans"][0]
            .as_object_mut()
            .unwrap()
            .remove("spanID");
        let err = parse_trace(&bad).unwrap_err().to_string();
        assert!(err.contains("span without spanID"), "{err}");
    }

    #[test]
    fn config_puts_otlp_on_the_node_and_the_query_api_on_loopback_under_jaeger() {
        let text = config(Ipv4Addr::new(10, 77, 0, 1));
        let v: Value = serde_yaml::from_str(&text).unwrap();
        let otlp = &v["receivers"]["otlp"]["protocols"];
        assert_eq!(otlp["grpc"]["endpoint"], "10.77.0.1:4317");
        assert_eq!(otlp["http"]["endpoint"], "10.77.0.1:4318");
        assert_eq!(v["extensions"]["jaeger_query"]["base_path"], "/jaeger");
        assert_eq!(
            v["extensions"]["jaeger_query"]["http"]["endpoint"],
            "127.0.0.1:16686"
        );
    }

    #[test]
    fn collector_endpoints_are_the_node_address_on_the_services_port_names() {
        let objs = collector_objects(Ipv4Addr::new(10, 77, 0, 1));
        let service_ports: Vec<&str> = objs[0]["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert!(objs[0]["spec"]["selector"].is_null());
        for p in objs[1]["ports"].as_array().unwrap() {
            assert!(service_ports.contains(&p["name"].as_str().unwrap()), "{p}");
        }
        assert_eq!(objs[1]["endpoints"][0]["addresses"][0], "10.77.0.1");
        assert_eq!(
            objs[1]["metadata"]["labels"]["kubernetes.io/service-name"],
            "jaeger-collector"
        );
    }
}
