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
pub mod state;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use seldon_envoy::{Envoy, EnvoyError, EnvoyOptions};
use seldon_supervise::{SuperviseError, Supervised};
use thiserror::Error;

pub use plan::{LocalOptions, LocalPlan, NodeProcess, plan};
pub use state::{EnvoyState, NodeState, RunState};

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
    #[error("starting node `{node}` failed")]
    Spawn {
        node: String,
        #[source]
        source: SuperviseError,
    },
    #[error(
        "node `{node}` exited before it was ready ({status}); its output is in {log}, ending with:\n{tail}"
    )]
    NodeExited {
        node: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error(
        "node `{node}` did not answer /health/ping on port {port} within {secs} s; its output is in {log}, ending with:\n{tail}"
    )]
    NodeNotReady {
        node: String,
        port: u16,
        secs: u64,
        log: PathBuf,
        tail: String,
    },
    #[error("predictor `{predictor}` is not ready: {detail}")]
    PredictorNotReady { predictor: String, detail: String },
    #[error(transparent)]
    Envoy(#[from] EnvoyError),
    #[error("neither XDG_STATE_HOME nor HOME is set; give a work directory with --workdir")]
    NoStateHome,
    #[error(
        "nothing has run in {workdir}: start it with `seldon-mesh up -f <sdep.yaml>` (or pass the same --workdir)"
    )]
    NotStarted { workdir: PathBuf },
    #[error("{path} is not a state file written by seldon-mesh up: {detail}")]
    State { path: PathBuf, detail: String },
    #[error("no node `{node}`; the nodes are: {known}")]
    UnknownNode { node: String, known: String },
    #[error("`{node}` is in several predictors; say which: {candidates}")]
    AmbiguousNode { node: String, candidates: String },
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Node processes and Envoy, running; everything stops on drop: Envoy first (no new calls
/// reach the nodes), then every node's process group at once (SIGTERM, a grace period,
/// SIGKILL; see seldon-supervise).
#[derive(Debug)]
pub struct Running {
    pub envoy: Envoy,
    nodes: Nodes,
    node_states: Vec<NodeState>,
    /// `http://127.0.0.1:<gateway>` + the deployment prefix.
    pub base_url: String,
}

impl Running {
    /// Each node: predictor, name, port, pid and log.
    pub fn nodes(&self) -> &[NodeState] {
        &self.node_states
    }

    /// Stops Envoy, then every node; the same as dropping it, spelled out at call sites.
    pub fn stop(self) {
        let Running { envoy, nodes, .. } = self;
        drop(envoy);
        drop(nodes);
    }
}

/// Started node processes; stopped together on drop (also when a start fails half way).
#[derive(Debug, Default)]
struct Nodes(Vec<Supervised>);

impl Drop for Nodes {
    fn drop(&mut self) {
        let _ = seldon_supervise::stop_all(&mut self.0);
    }
}

/// How long a node gets between SIGTERM and SIGKILL when local mode stops.
pub const NODE_STOP_GRACE: Duration = Duration::from_secs(5);

/// What `up` reports while it starts, in order, for the CLI's progress lines.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// A node process was spawned (`<predictor>.<node>`).
    NodeStarted { node: String, pid: u32 },
    /// It answered `/health/ping`, this long after `up` began.
    NodeReady { node: String, after: Duration },
    /// Envoy answered admin `/ready` with the filter loaded in every worker.
    EnvoyReady { pid: u32, after: Duration },
    /// Every predictor answered `/ready` through its graph listener.
    Ready { after: Duration },
}

/// How long a node may take to answer `/health/ping` (model loading included).
pub const NODE_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts every node, then Envoy; returns once each predictor answers `/ready` through its
/// graph listener. Node output goes to `<workdir>/<predictor>.<node>.log`.
///
/// A failed start stops everything it started before it returns the error; so does dropping
/// the future (e.g. on a signal while starting).
pub async fn up(
    plan: LocalPlan,
    workdir: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<Running, LocalError> {
    let began = Instant::now();
    let io = |action, path: &Path| {
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

    // Dropped on every early return below: a failed start leaves nothing running.
    let mut nodes = Nodes::default();
    for p in &plan.processes {
        let log_path = node_log(workdir, p);
        let log = std::fs::File::create(&log_path).map_err(io("creating", &log_path))?;
        let log_err = log.try_clone().map_err(io("cloning", &log_path))?;
        let mut cmd = seldon_supervise::command(&p.program);
        cmd.args(&p.args)
            .envs(p.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let child = Supervised::spawn(format!("{}.{}", p.predictor, p.node), cmd)
            .map_err(|source| LocalError::Spawn {
                node: p.node.clone(),
                source,
            })?
            .with_grace(NODE_STOP_GRACE);
        progress(Progress::NodeStarted {
            node: child.name().to_string(),
            pid: child.pid(),
        });
        nodes.0.push(child);
    }
    for (p, child) in plan.processes.iter().zip(nodes.0.iter_mut()) {
        wait_ping(&http, p, child, &node_log(workdir, p)).await?;
        progress(Progress::NodeReady {
            node: child.name().to_string(),
            after: began.elapsed(),
        });
    }
    let options = EnvoyOptions {
        concurrency: 2,
        ..EnvoyOptions::default()
    };
    let envoy = Envoy::start_with(plan.envoy.clone(), &workdir.join("envoy"), &options).await?;
    progress(Progress::EnvoyReady {
        pid: envoy.pid(),
        after: began.elapsed(),
    });
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
    progress(Progress::Ready {
        after: began.elapsed(),
    });
    let gateway = plan
        .envoy
        .listener("gateway")
        .map(|l| l.port)
        .unwrap_or_default();
    let node_states = plan
        .processes
        .iter()
        .zip(&nodes.0)
        .map(|(p, child)| NodeState {
            predictor: p.predictor.clone(),
            node: p.node.clone(),
            port: p.http_port,
            pid: child.pid(),
            log: node_log(workdir, p),
        })
        .collect();
    Ok(Running {
        envoy,
        nodes,
        node_states,
        base_url: format!(
            "http://127.0.0.1:{gateway}{}",
            plan.prefix.trim_end_matches('/')
        ),
    })
}

/// `<workdir>/<predictor>.<node>.log`.
pub fn node_log(workdir: &Path, p: &NodeProcess) -> PathBuf {
    workdir.join(format!("{}.{}.log", p.predictor, p.node))
}

/// The last `lines` lines of a log, for error messages ("(empty)" or why it can't be read).
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let tail = all[all.len().saturating_sub(lines)..].join("\n");
            if tail.trim().is_empty() {
                "(empty)".to_string()
            } else {
                tail
            }
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Lines of a failing node's log quoted in errors.
const TAIL_LINES: usize = 15;

async fn wait_ping(
    http: &reqwest::Client,
    p: &NodeProcess,
    child: &mut Supervised,
    log: &Path,
) -> Result<(), LocalError> {
    let url = format!("http://127.0.0.1:{}/health/ping", p.http_port);
    let deadline = Instant::now() + NODE_READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(LocalError::NodeExited {
                node: p.node.clone(),
                status: status.to_string(),
                log: log.to_path_buf(),
                tail: log_tail(log, TAIL_LINES),
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
                tail: log_tail(log, TAIL_LINES),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tail_keeps_the_last_lines_and_says_when_it_cannot() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("n.log");
        std::fs::write(&log, "a\nb\nc\nd\n").unwrap();
        assert_eq!(log_tail(&log, 2), "c\nd");
        assert_eq!(log_tail(&log, 10), "a\nb\nc\nd");
        std::fs::write(&log, "").unwrap();
        assert_eq!(log_tail(&log, 3), "(empty)");
        let missing = log_tail(&dir.path().join("none.log"), 3);
        assert!(
            missing.starts_with("(cannot read") && missing.contains("none.log"),
            "{missing}"
        );
    }
}
