//! A real Jaeger v2 all-in-one for tracing tests: OTLP/HTTP and the query API on free loopback
//! ports, memory storage, supervised (stopped with the test, even on a panic). The binary
//! comes from `scripts/jaeger-test-env.sh`, which builds it once per machine and waits on a
//! running build's lock.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use seldon_supervise::Supervised;
use serde_json::Value;

/// A free loopback port for a listener a child binds later (below the ephemeral range, see
/// `seldon_envoy::free_port`).
pub fn free_port() -> u16 {
    seldon_envoy::free_port().expect("no free loopback port")
}

fn jaeger_bin() -> PathBuf {
    let out = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/jaeger-test-env.sh"
        ))
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "scripts/jaeger-test-env.sh failed");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// A running Jaeger; dropping it stops the process.
#[derive(Debug)]
pub struct Jaeger {
    _process: Supervised,
    /// OTLP/HTTP receiver port.
    pub otlp: u16,
    /// Query API port (`/api/traces/<id>`).
    pub query: u16,
}

impl Jaeger {
    pub async fn start(dir: &Path) -> Self {
        Self::start_on(dir, free_port()).await
    }

    /// Jaeger with its OTLP/HTTP receiver on `otlp` (a collector that comes up where a
    /// server was already sending).
    pub async fn start_on(dir: &Path, otlp: u16) -> Self {
        let (query, query_grpc) = (free_port(), free_port());
        let config = format!(
            r#"
service:
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
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 1000
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp}
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"#
        );
        let file = dir.join("jaeger.yaml");
        std::fs::write(&file, config).unwrap();
        let mut cmd = seldon_supervise::command(jaeger_bin());
        cmd.arg("--config")
            .arg(format!("file:{}", file.display()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("jaeger.log")).unwrap());
        let mut process = Supervised::spawn("jaeger", cmd).unwrap();
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = process.try_wait().unwrap() {
                panic!(
                    "jaeger exited ({status}):\n{}",
                    std::fs::read_to_string(dir.join("jaeger.log")).unwrap_or_default()
                );
            }
            let ok = http
                .get(format!("http://127.0.0.1:{query}/api/services"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok && std::net::TcpStream::connect(("127.0.0.1", otlp)).is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "jaeger not ready in 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            _process: process,
            otlp,
            query,
        }
    }

    /// `http://127.0.0.1:<otlp>`, the value for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.otlp)
    }

    /// The spans Jaeger holds for `trace_id` and the trace's processes (empty until they
    /// arrive).
    pub async fn trace(&self, trace_id: &str) -> (Vec<Value>, Value) {
        let r = reqwest::get(format!(
            "http://127.0.0.1:{}/api/traces/{trace_id}",
            self.query
        ))
        .await
        .unwrap();
        if !r.status().is_success() {
            return (Vec::new(), Value::Null);
        }
        let body: Value = r.json().await.unwrap();
        let trace = &body["data"][0];
        (
            trace["spans"].as_array().cloned().unwrap_or_default(),
            trace["processes"].clone(),
        )
    }

    /// The traces of `service` having a span with tag `key` = `value` (Jaeger's search).
    pub async fn find(&self, service: &str, key: &str, value: &str) -> Vec<Value> {
        let tags = serde_json::json!({ key: value }).to_string();
        let r = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{}/api/traces", self.query))
            .query(&[("service", service), ("tags", &tags), ("limit", "20")])
            .send()
            .await
            .unwrap();
        if !r.status().is_success() {
            return Vec::new();
        }
        let body: Value = r.json().await.unwrap();
        body["data"].as_array().cloned().unwrap_or_default()
    }
}

/// A span's tag value.
pub fn tag<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["tags"]
        .as_array()?
        .iter()
        .find(|t| t["key"] == key)
        .map(|t| &t["value"])
}

/// A span's CHILD_OF parent span id.
pub fn parent(span: &Value) -> Option<&str> {
    span["references"]
        .as_array()?
        .iter()
        .find(|r| r["refType"] == "CHILD_OF")
        .and_then(|r| r["spanID"].as_str())
}
