//! Typed configuration, loaded once: every setting is a flag with the env var Seldon's
//! operator (or our catalogue) sets.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;
use serde_json::Value;

/// Settings of one model-server process.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "seldon-server",
    about = "Seldon v1 + Open Inference Protocol v2 model server"
)]
pub struct Config {
    /// Runtime key from the catalogue (`SKLEARN_SERVER`, `XGBOOST_SERVER`, `SUM_MODEL`, ...).
    #[arg(long, env = "SELDON_IMPLEMENTATION", default_value = "IDENTITY_MODEL")]
    pub implementation: String,
    /// Where the model artifact is (default: the `model_uri` parameter, else `/mnt/models`).
    #[arg(long, env = "SELDON_MODEL_URI")]
    pub model_uri: Option<String>,
    /// Seldon v1 + v2 REST port.
    #[arg(
        long,
        env = "PREDICTIVE_UNIT_HTTP_SERVICE_PORT",
        default_value_t = 9000
    )]
    pub http_port: u16,
    /// Seldon v1 + v2 gRPC port.
    #[arg(
        long,
        env = "PREDICTIVE_UNIT_GRPC_SERVICE_PORT",
        default_value_t = 9500
    )]
    pub grpc_port: u16,
    /// Prometheus port.
    #[arg(
        long,
        env = "PREDICTIVE_UNIT_METRICS_SERVICE_PORT",
        default_value_t = 6000
    )]
    pub metrics_port: u16,
    /// Prometheus path.
    #[arg(
        long,
        env = "PREDICTIVE_UNIT_METRICS_ENDPOINT",
        default_value = "/prometheus"
    )]
    pub metrics_path: String,
    /// Address all three ports bind to.
    #[arg(long, env = "SELDON_BIND_ADDRESS", default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// Typed parameters: `[{"name":"method","value":"predict","type":"STRING"}]`.
    #[arg(long, env = "PREDICTIVE_UNIT_PARAMETERS", default_value = "[]")]
    pub parameters: String,
    /// This unit's name in the graph (`meta.requestPath` key, routing key, metrics label).
    #[arg(long, env = "PREDICTIVE_UNIT_ID", default_value = "")]
    pub unit_id: String,
    /// This unit's image (`meta.requestPath` value, metrics labels).
    #[arg(long, env = "PREDICTIVE_UNIT_IMAGE", default_value = "")]
    pub unit_image: String,
    #[arg(long, env = "PREDICTOR_ID", default_value = "")]
    pub predictor_id: String,
    /// JSON object of predictor labels; its `version` becomes `predictor_version`.
    #[arg(long, env = "PREDICTOR_LABELS", default_value = "{}")]
    pub predictor_labels: String,
    #[arg(long, env = "SELDON_DEPLOYMENT_ID", default_value = "")]
    pub deployment_id: String,
    /// v2 model name (default: `PREDICTIVE_UNIT_ID`, else `model`).
    #[arg(long, env = "SELDON_MODEL_NAME")]
    pub model_name: Option<String>,
    /// v2 model version, if any.
    #[arg(long, env = "SELDON_MODEL_VERSION")]
    pub model_version: Option<String>,
    /// Largest accepted request body (413 above it).
    #[arg(long, env = "SELDON_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Copy custom metrics into response `meta.metrics` (Seldon's default).
    #[arg(long, env = "INCLUDE_METRICS_IN_CLIENT_RESPONSE", default_value_t = true, action = clap::ArgAction::Set)]
    pub include_metrics_in_client_response: bool,
    /// `tracing` filter (`info`, `seldon_serving=debug`, ...).
    #[arg(long, env = "SELDON_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// OTLP/HTTP collector base URL: one span per request goes to `<URL>/v1/traces`
    /// (protobuf). Unset: no spans, no exporter.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the spans (default: `PREDICTIVE_UNIT_ID`, else `seldon-server`).
    #[arg(long, env = "OTEL_SERVICE_NAME")]
    pub otel_service_name: Option<String>,
    /// Seldon's model metadata (YAML or JSON: name, versions, platform, inputs, outputs,
    /// custom); its keys replace the runtime's and `<model_uri>/metadata.yaml`'s. Invalid:
    /// the server does not start.
    #[arg(long, env = "MODEL_METADATA")]
    pub model_metadata: Option<String>,
}

impl Config {
    /// Defaults with every port 0 (tests bind free ports).
    pub fn for_tests() -> Self {
        use clap::Parser;
        let mut c = Config::parse_from(["seldon-server"]);
        c.http_port = 0;
        c.grpc_port = 0;
        c.metrics_port = 0;
        c.bind = IpAddr::from([127, 0, 0, 1]);
        // the caller's environment must not turn tracing on
        c.otlp_endpoint = None;
        c.otel_service_name = None;
        c.model_metadata = None;
        c
    }

    /// Where the model artifact is: `--model-uri`, else the `model_uri` parameter, else
    /// `/mnt/models`.
    pub fn model_uri(&self, parameters: &BTreeMap<String, Value>) -> String {
        self.model_uri
            .clone()
            .or_else(|| {
                parameters
                    .get("model_uri")
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "/mnt/models".into())
    }

    /// The v2 model name.
    pub fn model_name(&self) -> String {
        self.model_name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| {
                if self.unit_id.is_empty() {
                    "model".into()
                } else {
                    self.unit_id.clone()
                }
            })
    }
}

/// A bad setting, named.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("PREDICTIVE_UNIT_PARAMETERS is not a JSON array of {{name, value, type}}: {0}")]
    ParametersJson(#[source] serde_json::Error),
    #[error("parameter `{name}`: value `{value}` is not a valid {kind}")]
    ParameterValue {
        name: String,
        value: String,
        kind: String,
    },
    #[error("parameter `{name}`: unknown type `{kind}` (INT, FLOAT, DOUBLE, STRING, BOOL, JSON)")]
    ParameterType { name: String, kind: String },
}

#[derive(Deserialize)]
struct RawParameter {
    name: String,
    value: Value,
    #[serde(rename = "type", default = "string_type")]
    kind: String,
}

fn string_type() -> String {
    "STRING".into()
}

/// Parses `PREDICTIVE_UNIT_PARAMETERS` into typed values, as Seldon's wrapper does
/// (`value` may be a string holding the typed value, the operator's form).
pub fn parse_parameters(json: &str) -> Result<BTreeMap<String, Value>, ConfigError> {
    let raw: Vec<RawParameter> = serde_json::from_str(json).map_err(ConfigError::ParametersJson)?;
    raw.into_iter()
        .map(|p| {
            let text = match &p.value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let invalid = || ConfigError::ParameterValue {
                name: p.name.clone(),
                value: text.clone(),
                kind: p.kind.clone(),
            };
            let value = match p.kind.as_str() {
                "INT" => Value::from(text.trim().parse::<i64>().map_err(|_| invalid())?),
                "FLOAT" | "DOUBLE" => {
                    let f = text.trim().parse::<f64>().map_err(|_| invalid())?;
                    serde_json::Number::from_f64(f)
                        .map(Value::Number)
                        .ok_or_else(invalid)?
                }
                "BOOL" => Value::Bool(match text.trim().to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(invalid()),
                }),
                "STRING" => Value::String(text.clone()),
                "JSON" => serde_json::from_str(&text).map_err(|_| invalid())?,
                other => {
                    return Err(ConfigError::ParameterType {
                        name: p.name.clone(),
                        kind: other.to_string(),
                    });
                }
            };
            Ok((p.name, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parameters_are_typed() {
        let p = parse_parameters(
            r#"[{"name":"method","value":"predict","type":"STRING"},{"name":"n","value":"3","type":"INT"},
                {"name":"eps","value":0.1,"type":"FLOAT"},{"name":"on","value":"True","type":"BOOL"},
                {"name":"j","value":"{\"a\":1}","type":"JSON"}]"#,
        )
        .unwrap();
        assert_eq!(p["method"], json!("predict"));
        assert_eq!(p["n"], json!(3));
        assert_eq!(p["eps"], json!(0.1));
        assert_eq!(p["on"], json!(true));
        assert_eq!(p["j"], json!({"a":1}));
    }

    #[test]
    fn bad_parameters_name_the_problem() {
        let e = parse_parameters(r#"[{"name":"n","value":"x","type":"INT"}]"#).unwrap_err();
        assert_eq!(e.to_string(), "parameter `n`: value `x` is not a valid INT");
        let e = parse_parameters(r#"[{"name":"n","value":"x","type":"DATE"}]"#).unwrap_err();
        assert!(e.to_string().contains("unknown type `DATE`"));
        assert!(parse_parameters("{").is_err());
    }

    #[test]
    fn env_vars_feed_the_config() {
        use clap::Parser;
        let c = Config::try_parse_from(["s", "--http-port", "9100", "--unit-id", "clf"]).unwrap();
        assert_eq!(
            (c.http_port, c.grpc_port, c.metrics_port),
            (9100, 9500, 6000)
        );
        assert_eq!(c.model_name(), "clf");
        assert!(Config::try_parse_from(["s", "--http-port", "x"]).is_err());
    }
}
