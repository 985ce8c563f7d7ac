//! SKLEARN_SERVER's Python fallback: when the fetch-time conversion left
//! `python-fallback.json`, this process becomes `seldon-core-microservice SKLearnServer`
//! (the project's Python wrapper) on the same ports, and says why in the log.

use std::path::{Path, PathBuf};
use std::process::Command;

use seldon_serving::config::Config;
use serde_json::{Value, json};

/// Where the fallback runs from and with what.
#[derive(Debug, Clone, clap::Args)]
pub struct FallbackArgs {
    /// The Python wrapper's command (`seldon-core-microservice` from model-servers/python).
    #[arg(
        long,
        env = "SELDON_PYTHON_WRAPPER",
        default_value = "seldon-core-microservice"
    )]
    pub python_wrapper: PathBuf,
    /// Directory holding `SKLearnServer.py` (model-servers/onnx/python/fallback in the repo).
    #[arg(
        long,
        env = "SELDON_PYTHON_FALLBACK_DIR",
        default_value = "/opt/seldon-mesh/sklearn-fallback"
    )]
    pub python_fallback_dir: PathBuf,
}

/// The marker's reason, when `dir` must be served by Python.
pub fn reason(dir: &Path) -> Option<String> {
    let marker = dir.join(seldon_onnx::sklearn::FALLBACK_MARKER);
    let text = std::fs::read_to_string(marker).ok()?;
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let estimator = v
        .get("estimator")
        .and_then(Value::as_str)
        .unwrap_or("the estimator");
    let why = v
        .get("reason")
        .and_then(Value::as_str)
        .unwrap_or("no reason recorded");
    Some(format!("{estimator}: {why}"))
}

/// MLFLOW_SERVER's Python class in the wrapper package (`mlflow.pyfunc`; the wrapper's
/// `mlflow` extra).
pub const MLFLOW_CLASS: &str = "seldon_mesh_wrapper.mlflow_server.MLFlowServer";

/// The wrapper command for SKLEARN_SERVER: `SKLearnServer` from the fallback directory.
pub fn command(config: &Config, args: &FallbackArgs, dir: &Path) -> Command {
    command_for(
        "SKLearnServer",
        &args.python_fallback_dir,
        config,
        args,
        dir,
    )
}

/// The wrapper command: `class` (a module in `cwd`, or a dotted name the wrapper imports),
/// same ports and parameters, `model_uri` set to `dir`.
pub fn command_for(
    class: &str,
    cwd: &Path,
    config: &Config,
    args: &FallbackArgs,
    dir: &Path,
) -> Command {
    let mut params: Vec<Value> = serde_json::from_str(&config.parameters).unwrap_or_default();
    params.retain(|p| p.get("name").and_then(Value::as_str) != Some("model_uri"));
    params.push(json!({"name": "model_uri", "value": dir.display().to_string(), "type": "STRING"}));
    let mut cmd = Command::new(&args.python_wrapper);
    cmd.arg(class)
        .args(["--service-type", "MODEL"])
        .current_dir(cwd)
        .env(
            "PREDICTIVE_UNIT_PARAMETERS",
            Value::Array(params).to_string(),
        )
        .env(
            "PREDICTIVE_UNIT_HTTP_SERVICE_PORT",
            config.http_port.to_string(),
        )
        .env(
            "PREDICTIVE_UNIT_GRPC_SERVICE_PORT",
            config.grpc_port.to_string(),
        )
        .env(
            "PREDICTIVE_UNIT_METRICS_SERVICE_PORT",
            config.metrics_port.to_string(),
        )
        .env("PREDICTIVE_UNIT_METRICS_ENDPOINT", &config.metrics_path);
    // tracing given as flags reaches the wrapper as the variables it reads (the environment is
    // inherited anyway)
    if let Some(endpoint) = config.otlp_endpoint.as_deref().filter(|e| !e.is_empty()) {
        cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint);
    }
    if let Some(name) = config
        .otel_service_name
        .as_deref()
        .filter(|n| !n.is_empty())
    {
        cmd.env("OTEL_SERVICE_NAME", name);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn command_keeps_ports_and_sets_model_uri() {
        let config = Config::try_parse_from([
            "s",
            "--http-port",
            "9100",
            "--otlp-endpoint",
            "http://127.0.0.1:4318",
            "--parameters",
            r#"[{"name":"method","value":"predict","type":"STRING"},{"name":"model_uri","value":"gs://x","type":"STRING"}]"#,
        ])
        .unwrap();
        let args = FallbackArgs {
            python_wrapper: "/venv/bin/seldon-core-microservice".into(),
            python_fallback_dir: "/opt/fb".into(),
        };
        let cmd = command(&config, &args, Path::new("/mnt/models"));
        assert_eq!(cmd.get_program(), "/venv/bin/seldon-core-microservice");
        assert_eq!(
            cmd.get_args().collect::<Vec<_>>(),
            ["SKLearnServer", "--service-type", "MODEL"]
        );
        let env: std::collections::BTreeMap<_, _> = cmd
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect();
        assert_eq!(
            env["PREDICTIVE_UNIT_HTTP_SERVICE_PORT"].as_deref(),
            Some("9100")
        );
        assert_eq!(
            env["OTEL_EXPORTER_OTLP_ENDPOINT"].as_deref(),
            Some("http://127.0.0.1:4318")
        );
        let p: Value =
            serde_json::from_str(env["PREDICTIVE_UNIT_PARAMETERS"].as_deref().unwrap()).unwrap();
        assert_eq!(
            p,
            json!([{"name":"method","value":"predict","type":"STRING"},{"name":"model_uri","value":"/mnt/models","type":"STRING"}])
        );
    }

    #[test]
    fn reason_reads_the_marker_or_nothing() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(reason(d.path()), None);
        std::fs::write(
            d.path().join("python-fallback.json"),
            r#"{"estimator":"E","reason":"R"}"#,
        )
        .unwrap();
        assert_eq!(reason(d.path()).as_deref(), Some("E: R"));
    }
}
