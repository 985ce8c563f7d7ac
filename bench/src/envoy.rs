//! Runs the one Envoy of a benchmark. Unlike `seldon_envoy::Envoy` it can swap the wasm
//! runtime (the bench's V8-vs-Wasmtime switch) and pin Envoy to a CPU with `taskset`, and it
//! knows Envoy's pid (for `perf`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use seldon_envoy::{EnvoyConfig, WASM_RUNTIME};
use seldon_supervise::Supervised;

/// Which wasm runtime runs the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    V8,
    Wasmtime,
    Wamr,
}

impl Runtime {
    /// Envoy's extension name, e.g. `envoy.wasm.runtime.v8`.
    pub fn extension(self) -> &'static str {
        match self {
            Runtime::V8 => "envoy.wasm.runtime.v8",
            Runtime::Wasmtime => "envoy.wasm.runtime.wasmtime",
            Runtime::Wamr => "envoy.wasm.runtime.wamr",
        }
    }
}

/// What went wrong starting Envoy.
#[derive(Debug, thiserror::Error)]
pub enum EnvoyRunError {
    #[error(transparent)]
    Envoy(#[from] seldon_envoy::EnvoyError),
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the rendered config names no {WASM_RUNTIME} to replace")]
    NoRuntime,
    #[error("Envoy exited ({status}); log {log}:\n{tail}")]
    Exited {
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("Envoy not LIVE within {0:?}; log {1}")]
    NotReady(Duration, PathBuf),
}

/// Renders `config` with `runtime` in place of the default one.
pub fn render(config: &EnvoyConfig, runtime: Runtime) -> Result<String, EnvoyRunError> {
    let yaml = seldon_envoy::render(config)?;
    if runtime == Runtime::V8 {
        return Ok(yaml);
    }
    if !yaml.contains(WASM_RUNTIME) {
        return Err(EnvoyRunError::NoRuntime);
    }
    Ok(yaml.replace(WASM_RUNTIME, runtime.extension()))
}

/// A running Envoy, stopped on drop; through `seldon-supervise` it also dies with the bench
/// (parent-death signal) when the bench aborts (the release profile aborts on panic).
#[derive(Debug)]
pub struct BenchEnvoy {
    child: Supervised,
    pub admin_url: String,
    pub log_path: PathBuf,
    http: reqwest::Client,
}

impl BenchEnvoy {
    /// Validates and starts `config` under `workdir` with `concurrency` workers, on `cpu` if set.
    pub async fn start(
        config: &EnvoyConfig,
        runtime: Runtime,
        workdir: &Path,
        concurrency: u32,
        cpu: Option<u32>,
    ) -> Result<Self, EnvoyRunError> {
        let io = |action, path: &Path| {
            let path = path.to_owned();
            move |source| EnvoyRunError::Io {
                action,
                path,
                source,
            }
        };
        let config_path = workdir.join("envoy.yaml");
        std::fs::write(&config_path, render(config, runtime)?)
            .map_err(io("writing", &config_path))?;
        seldon_envoy::validate(&config_path)?;
        let bin = seldon_envoy::envoy_binary()?;
        let log_path = workdir.join("envoy.log");
        let log = File::create(&log_path).map_err(io("creating", &log_path))?;
        let log_err = log.try_clone().map_err(io("cloning", &log_path))?;
        let mut cmd = match cpu {
            Some(cpu) => {
                let mut c = seldon_supervise::command("taskset");
                c.args(["-c", &cpu.to_string()]).arg(&bin);
                c
            }
            None => seldon_supervise::command(&bin),
        };
        cmd.arg("-c")
            .arg(&config_path)
            .args(["--concurrency", &concurrency.to_string()])
            .args(["--base-id", &config.admin_port.to_string()])
            .arg("--disable-hot-restart")
            .args(["-l", "warning"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let child = Supervised::spawn("envoy", cmd)
            .map_err(|e| EnvoyRunError::Io {
                action: "spawning",
                path: bin.clone(),
                source: std::io::Error::other(e),
            })?
            .with_grace(Duration::from_secs(2));
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| EnvoyRunError::Io {
                action: "building client for",
                path: "admin".into(),
                source: std::io::Error::other(e),
            })?;
        let mut envoy = Self {
            child,
            admin_url: format!("http://127.0.0.1:{}", config.admin_port),
            log_path,
            http,
        };
        envoy.wait_live(Duration::from_secs(120)).await?;
        Ok(envoy)
    }

    async fn wait_live(&mut self, timeout: Duration) -> Result<(), EnvoyRunError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let tail = std::fs::read_to_string(&self.log_path).unwrap_or_default();
                let tail = tail
                    .chars()
                    .rev()
                    .take(4000)
                    .collect::<String>()
                    .chars()
                    .rev()
                    .collect();
                return Err(EnvoyRunError::Exited {
                    status: status.to_string(),
                    log: self.log_path.clone(),
                    tail,
                });
            }
            if let Ok(body) = self.admin_get("/ready").await
                && body.trim() == "LIVE"
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(EnvoyRunError::NotReady(timeout, self.log_path.clone()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Envoy's pid (setpriv and taskset exec Envoy, so it is the same process).
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// GET an admin path; `None`-like errors become an empty string for the report.
    pub async fn admin_get(&self, path: &str) -> Result<String, reqwest::Error> {
        self.http
            .get(format!("{}{path}", self.admin_url))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await
    }

    /// The value of one counter, 0 if absent.
    pub async fn counter(&self, name: &str) -> u64 {
        let stats = self
            .admin_get(&format!("/stats?filter=^{}$", name.replace('.', "\\.")))
            .await
            .unwrap_or_default();
        stats
            .lines()
            .find_map(|l| {
                l.split_once(": ")
                    .filter(|(k, _)| *k == name)
                    .and_then(|(_, v)| v.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// A filter metric summed over its tags, from `/stats/prometheus` (0 if absent or the admin
    /// did not answer). The filter's metrics carry Istio-style tags that the bootstrap's
    /// `stats_tags` extract, so Prometheus output has the bare name (`seldon_trace_…`) with
    /// labels, while `/stats` shows the tag-encoded name.
    pub async fn prometheus_sum(&self, name: &str) -> u64 {
        let text = self
            .admin_get("/stats/prometheus")
            .await
            .unwrap_or_default();
        prometheus_sum(&text, name)
    }
}

/// Sum of every sample of the metric `name` (any labels) in Prometheus text format.
pub fn prometheus_sum(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.trim().parse::<u64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> EnvoyConfig {
        let mut c = EnvoyConfig::new(9901);
        c.listeners.push(seldon_envoy::Listener {
            name: "graph".into(),
            port: 8080,
            kind: seldon_envoy::ListenerKind::Graph {
                wasm_path: "/x.wasm".into(),
                plugin_config_json: "{}".into(),
                vm_id: "v".into(),
            },
        });
        c
    }

    #[test]
    fn prometheus_sum_adds_every_labelled_sample_of_exactly_that_metric() {
        let text = "# TYPE seldon_trace_spans_exported_total counter
seldon_trace_spans_exported_total{deployment_name=\"bench\",predictor_name=\"default\"} 40
seldon_trace_spans_exported_total{deployment_name=\"other\",predictor_name=\"default\"} 2
seldon_trace_spans_exported_total_extra{a=\"b\"} 1000
seldon_trace_spans_dropped_total{deployment_name=\"bench\"} 7
";
        assert_eq!(
            prometheus_sum(text, "seldon_trace_spans_exported_total"),
            42
        );
        assert_eq!(prometheus_sum(text, "seldon_trace_spans_dropped_total"), 7);
    }

    #[test]
    fn prometheus_sum_of_an_absent_metric_or_garbage_is_zero() {
        assert_eq!(prometheus_sum("", "seldon_trace_spans_exported_total"), 0);
        assert_eq!(
            prometheus_sum(
                "seldon_trace_spans_exported_total{a=\"b\"} not-a-number\n",
                "seldon_trace_spans_exported_total"
            ),
            0
        );
    }

    #[test]
    fn wasmtime_replaces_the_runtime() {
        let yaml = render(&config(), Runtime::Wasmtime).unwrap();
        assert!(yaml.contains("envoy.wasm.runtime.wasmtime"), "{yaml}");
        assert!(!yaml.contains(WASM_RUNTIME));
    }

    #[test]
    fn a_config_without_wasm_cannot_switch_runtime() {
        let c = EnvoyConfig::new(9901);
        assert!(matches!(
            render(&c, Runtime::Wasmtime),
            Err(EnvoyRunError::NoRuntime)
        ));
        assert!(render(&c, Runtime::V8).is_ok());
    }
}
