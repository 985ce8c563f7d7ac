//! `FilterConfig`: everything the filter needs to run one predictor's graph, as plain values.
//!
//! The operator (in a cluster) and `seldon-mesh up` (locally) write it; the filter reads it as
//! its plugin configuration (JSON). Kubernetes and Istio are already resolved here: a node's
//! upstream is an Envoy cluster name and an authority, nothing more.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::unit::PredictiveUnit;

/// Default request body limit: Envoy's default buffer limit (1 MiB).
pub const DEFAULT_BODY_LIMIT_BYTES: u64 = 1024 * 1024;
/// Default per-call timeout when a node gives none (Seldon's executor had none; we refuse to
/// wait forever).
pub const DEFAULT_NODE_TIMEOUT_MS: u64 = 10_000;

/// The filter's plugin configuration for one predictor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterConfig {
    /// SeldonDeployment name.
    pub deployment: String,
    pub namespace: String,
    /// Predictor name.
    pub predictor: String,
    /// The deployment's protocol; decides the paths called on nodes.
    #[serde(default)]
    pub protocol: Protocol,
    pub graph: PredictiveUnit,
    /// How to reach each node, keyed by node name.
    #[serde(default)]
    pub nodes: BTreeMap<String, NodeUpstream>,
    /// Largest request body the graph accepts; larger ones get 413.
    #[serde(default = "default_body_limit")]
    pub body_limit_bytes: u64,
    /// Where payload logs (CloudEvents) go, if any node logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_logger: Option<PayloadLogger>,
    /// Where the filter exports its spans (OTLP/HTTP protobuf); absent: tracing is off and
    /// trace headers are forwarded to nodes as they came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<Tracing>,
}

fn default_body_limit() -> u64 {
    DEFAULT_BODY_LIMIT_BYTES
}

/// Seldon's `spec.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Seldon,
    Tensorflow,
    /// Open Inference Protocol v2 (`kfserving` is Seldon's older name for it).
    #[serde(alias = "kfserving")]
    V2,
}

impl Protocol {
    /// The config spelling (`seldon`, `tensorflow`, `v2`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Seldon => "seldon",
            Self::Tensorflow => "tensorflow",
            Self::V2 => "v2",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lists `kfserving` too: the alias is accepted on input, so the schema must accept it.
#[cfg(feature = "schema")]
impl schemars::JsonSchema for Protocol {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Protocol".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "enum": ["seldon", "tensorflow", "kfserving", "v2"]})
    }
}

/// How the filter calls a node.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Rest,
    Grpc,
}

impl Transport {
    /// The config spelling (`rest`, `grpc`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Rest => "rest",
            Self::Grpc => "grpc",
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One node's upstream, resolved to Envoy terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeUpstream {
    /// Envoy cluster name, e.g. `outbound|9000||iris-default-classifier.ns.svc.cluster.local`.
    pub cluster: String,
    /// `:authority` sent on calls to the node.
    pub authority: String,
    pub port: u16,
    #[serde(default)]
    pub transport: Transport,
    /// Overrides the deployment's protocol for this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

fn default_timeout() -> u64 {
    DEFAULT_NODE_TIMEOUT_MS
}

/// The collector payload logs are POSTed to (Seldon's `logger.url`, resolved to a cluster).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PayloadLogger {
    pub cluster: String,
    pub authority: String,
    #[serde(default = "default_logger_path")]
    pub path: String,
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

fn default_logger_path() -> String {
    "/".to_string()
}

/// Tracing from the filter: one span per graph request and per node call, exported as
/// OTLP/HTTP protobuf to a collector reached through an Envoy cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tracing {
    /// Envoy cluster of the OTLP/HTTP collector (e.g. a Jaeger or OpenTelemetry Collector on
    /// port 4318).
    pub cluster: String,
    /// `:authority` of the export POST.
    pub authority: String,
    /// Path of the export POST.
    #[serde(default = "default_trace_path")]
    pub path: String,
    /// Share of new traces sampled when the caller sent no sampled flag, 0..=1. Default 1:
    /// Seldon's executor traced with Jaeger's `const` sampler set to 1 (every request), so
    /// users who turned tracing on saw every request.
    #[serde(default = "default_sample_ratio")]
    pub sample_ratio: f64,
    /// The exported resource's `service.name` (render may set one per predictor).
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// Finished spans kept per Envoy worker while waiting for export; beyond this, spans are
    /// dropped and counted.
    #[serde(default = "default_max_queue_spans")]
    pub max_queue_spans: u32,
    /// Most spans in one export POST.
    #[serde(default = "default_batch_spans")]
    pub batch_spans: u32,
    /// How often each worker exports what it queued.
    #[serde(default = "default_flush_interval_ms")]
    pub flush_interval_ms: u64,
    /// Timeout of one export POST.
    #[serde(default = "default_export_timeout_ms")]
    pub timeout_ms: u64,
}

/// Default OTLP/HTTP path for traces.
pub const DEFAULT_TRACE_PATH: &str = "/v1/traces";
/// Default `service.name` of exported spans.
pub const DEFAULT_SERVICE_NAME: &str = "seldon-mesh";

fn default_trace_path() -> String {
    DEFAULT_TRACE_PATH.to_string()
}
fn default_sample_ratio() -> f64 {
    1.0
}
fn default_service_name() -> String {
    DEFAULT_SERVICE_NAME.to_string()
}
fn default_max_queue_spans() -> u32 {
    2048
}
fn default_batch_spans() -> u32 {
    512
}
fn default_flush_interval_ms() -> u64 {
    1000
}
fn default_export_timeout_ms() -> u64 {
    5000
}

impl Tracing {
    /// Tracing to `cluster` with every default.
    pub fn new(cluster: impl Into<String>, authority: impl Into<String>) -> Self {
        Self {
            cluster: cluster.into(),
            authority: authority.into(),
            path: default_trace_path(),
            sample_ratio: default_sample_ratio(),
            service_name: default_service_name(),
            max_queue_spans: default_max_queue_spans(),
            batch_spans: default_batch_spans(),
            flush_interval_ms: default_flush_interval_ms(),
            timeout_ms: default_export_timeout_ms(),
        }
    }
}

impl FilterConfig {
    /// Parses the JSON plugin configuration.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The JSON plugin configuration.
    pub fn to_json(&self) -> String {
        // A struct of strings, numbers, maps and enums always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_gets_defaults() {
        let cfg = FilterConfig::from_json(
            br#"{"deployment":"d","namespace":"n","predictor":"p","graph":{"name":"m"},
                 "nodes":{"m":{"cluster":"c","authority":"m:9000","port":9000}}}"#,
        )
        .unwrap();
        assert_eq!(cfg.protocol, Protocol::Seldon);
        assert_eq!(cfg.body_limit_bytes, DEFAULT_BODY_LIMIT_BYTES);
        assert_eq!(cfg.nodes["m"].timeout_ms, DEFAULT_NODE_TIMEOUT_MS);
        assert_eq!(cfg.nodes["m"].transport, Transport::Rest);
        let again = FilterConfig::from_json(cfg.to_json().as_bytes()).unwrap();
        assert_eq!(cfg, again);
    }

    #[test]
    fn tracing_defaults_and_round_trip() {
        let cfg = FilterConfig::from_json(
            br#"{"deployment":"d","namespace":"n","predictor":"p","graph":{"name":"m"},
                 "tracing":{"cluster":"otlp","authority":"jaeger:4318"}}"#,
        )
        .unwrap();
        let t = cfg.tracing.clone().unwrap();
        assert_eq!(t, Tracing::new("otlp", "jaeger:4318"));
        assert_eq!(t.path, "/v1/traces");
        assert_eq!(t.sample_ratio, 1.0);
        assert_eq!(t.service_name, "seldon-mesh");
        assert_eq!(
            (
                t.max_queue_spans,
                t.batch_spans,
                t.flush_interval_ms,
                t.timeout_ms
            ),
            (2048, 512, 1000, 5000)
        );
        let json = cfg.to_json();
        assert!(json.contains(r#""sampleRatio":1.0"#), "{json}");
        assert_eq!(FilterConfig::from_json(json.as_bytes()).unwrap(), cfg);
        // absent: off, and not written back
        let off = FilterConfig {
            tracing: None,
            ..cfg
        };
        assert!(!off.to_json().contains("tracing"));
    }

    #[test]
    fn tracing_needs_cluster_and_refuses_unknown_fields() {
        let err = FilterConfig::from_json(
            br#"{"deployment":"d","namespace":"n","predictor":"p","graph":{"name":"m"},
                 "tracing":{"authority":"a"}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("cluster"), "{err}");
        let err = FilterConfig::from_json(
            br#"{"deployment":"d","namespace":"n","predictor":"p","graph":{"name":"m"},
                 "tracing":{"cluster":"c","authority":"a","sample_ratio":0.5}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("sample_ratio"), "{err}");
    }

    #[test]
    fn kfserving_is_v2() {
        let p: Protocol = serde_json::from_str(r#""kfserving""#).unwrap();
        assert_eq!(p, Protocol::V2);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = FilterConfig::from_json(
            br#"{"deployment":"d","namespace":"n","predictor":"p","graph":{"name":"m"},"bodyLimit":5}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("bodyLimit"), "{err}");
    }
}
