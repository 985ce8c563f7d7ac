//! Local mode (`seldon-mesh up`): a SeldonDeployment on one machine — node processes, and a
//! real Envoy running the same filter with the same `FilterConfig` the operator renders, only
//! with local cluster names.
//!
//! ```text
//!  client ─► gateway listener (/seldon/<ns>/<sdep>/ → weights, shadow mirror)
//!               └─► predictor-<p> listener: graph filter ─► <p>.<node> clusters ─► node processes
//! ```
//!
//! `plan` decides everything (pure); `up` starts it and waits until every predictor is ready.

pub mod plan;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use seldon_envoy::{Envoy, EnvoyError, EnvoyOptions};
use thiserror::Error;

pub use plan::{LocalOptions, LocalPlan, NodeProcess, plan};

/// What can stop local mode.
#[derive(Debug, Error)]
pub enum LocalError {
    #[error("the SeldonDeployment is invalid:\n{0}")]
    Invalid(String),
    #[error(
        "node `{node}` is a custom container; give its local command with --run {node}='<command>'"
    )]
    NoCommand { node: String },
    #[error(
        "node `{node}` loads {uri:?}; local mode serves models from local paths or file:// URIs (copy it first, e.g. with seldon-mesh-initializer)"
    )]
    RemoteModel { node: String, uri: String },
    #[error("starting node `{node}` ({program}) failed")]
    Spawn {
        node: String,
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("node `{node}` exited before it was ready ({status}); its output is in {log}")]
    NodeExited {
        node: String,
        status: String,
        log: PathBuf,
    },
    #[error(
        "node `{node}` did not answer /health/ping on port {port} within {secs} s; its output is in {log}"
    )]
    NodeNotReady {
        node: String,
        port: u16,
        secs: u64,
        log: PathBuf,
    },
    #[error("predictor `{predictor}` is not ready: {detail}")]
    PredictorNotReady { predictor: String, detail: String },
    #[error(transparent)]
    Envoy(#[from] EnvoyError),
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Node processes and Envoy, running; everything stops on drop.
#[derive(Debug)]
pub struct Running {
    pub envoy: Envoy,
    nodes: Vec<(String, Child)>,
    /// `http://127.0.0.1:<gateway>` + the deployment prefix.
    pub base_url: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How long a node may take to answer `/health/ping` (model loading included).
pub const NODE_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts every node, then Envoy; returns once each predictor answers `/ready` through its
/// graph listener. Node output goes to `<workdir>/<predictor>.<node>.log`.
pub async fn up(plan: LocalPlan, workdir: &std::path::Path) -> Result<Running, LocalError> {
    let io = |action, path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| LocalError::Io {
            action,
            path,
            source,
        }
    };
    std::fs::create_dir_all(workdir).map_err(io("creating", workdir))?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| LocalError::PredictorNotReady {
            predictor: String::new(),
            detail: e.to_string(),
        })?;

    let mut nodes = Vec::new();
    for p in &plan.processes {
        let log_path = workdir.join(format!("{}.{}.log", p.predictor, p.node));
        let log = std::fs::File::create(&log_path).map_err(io("creating", &log_path))?;
        let log_err = log.try_clone().map_err(io("cloning", &log_path))?;
        let child = Command::new(&p.program)
            .args(&p.args)
            .envs(p.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|source| LocalError::Spawn {
                node: p.node.clone(),
                program: p.program.clone(),
                source,
            })?;
        nodes.push((p.node.clone(), child));
    }
    let mut running_nodes = nodes;
    for (p, (_, child)) in plan.processes.iter().zip(running_nodes.iter_mut()) {
        let log = workdir.join(format!("{}.{}.log", p.predictor, p.node));
        wait_ping(&http, p, child, &log).await?;
    }
    let options = EnvoyOptions {
        concurrency: 2,
        ..EnvoyOptions::default()
    };
    let envoy = Envoy::start_with(plan.envoy.clone(), &workdir.join("envoy"), &options).await?;
    for (name, _, port) in &plan.predictors {
        let url = format!("http://127.0.0.1:{port}/ready");
        let answer = http.get(&url).send().await;
        match answer {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => {
                let detail = format!("{} {}", r.status(), r.text().await.unwrap_or_default());
                return Err(LocalError::PredictorNotReady {
                    predictor: name.clone(),
                    detail,
                });
            }
            Err(e) => {
                return Err(LocalError::PredictorNotReady {
                    predictor: name.clone(),
                    detail: e.to_string(),
                });
            }
        }
    }
    let gateway = plan
        .envoy
        .listener("gateway")
        .map(|l| l.port)
        .unwrap_or_default();
    Ok(Running {
        envoy,
        nodes: running_nodes,
        base_url: format!(
            "http://127.0.0.1:{gateway}{}",
            plan.prefix.trim_end_matches('/')
        ),
    })
}

async fn wait_ping(
    http: &reqwest::Client,
    p: &NodeProcess,
    child: &mut Child,
    log: &std::path::Path,
) -> Result<(), LocalError> {
    let url = format!("http://127.0.0.1:{}/health/ping", p.http_port);
    let deadline = Instant::now() + NODE_READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(LocalError::NodeExited {
                node: p.node.clone(),
                status: status.to_string(),
                log: log.to_path_buf(),
            });
        }
        if let Ok(r) = http.get(&url).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(LocalError::NodeNotReady {
                node: p.node.clone(),
                port: p.http_port,
                secs: NODE_READY_TIMEOUT.as_secs(),
                log: log.to_path_buf(),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
