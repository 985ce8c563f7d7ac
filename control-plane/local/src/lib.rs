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
//! `up` is Envoy's control plane (ADS, see `seldon_envoy::xds`): [`Running::reload`] applies
//! a changed plan without restarting Envoy.

pub mod apidocs;
mod http_url;
pub mod models;
pub mod otlp;
pub mod payload_logs;
pub mod plan;
pub mod state;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use seldon_envoy::xds::{XdsError, XdsServer};
use seldon_envoy::{Envoy, EnvoyError, EnvoyOptions};
use seldon_supervise::{SuperviseError, Supervised};
use thiserror::Error;

pub use models::{ModelCache, RemoteModel};
pub use plan::{LocalOptions, LocalPlan, NodeProcess, plan, plan_next};
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
    #[error("node `{node}`: cannot fetch {uri}: {reason}")]
    ModelFetch {
        node: String,
        uri: String,
        reason: String,
    },
    #[error(
        "neither SELDON_MESH_CACHE nor HOME is set: no folder for fetched models; set SELDON_MESH_CACHE"
    )]
    NoCacheHome,
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
    #[error(transparent)]
    Xds(#[from] XdsError),
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
    xds: XdsServer,
    /// In the order of `plan.processes`.
    nodes: Nodes,
    plan: LocalPlan,
    node_states: Vec<NodeState>,
    workdir: PathBuf,
    http: reqwest::Client,
    /// Where remote models are fetched to (a reload may add some).
    models: Arc<ModelCache>,
    /// What earlier reloads replaced and Envoy may still use while it drains: retired by
    /// [`Running::retire_due`], in the order they were replaced.
    retiring: Vec<Retiring>,
    /// `http://127.0.0.1:<gateway>` + the deployment prefix.
    pub base_url: String,
    /// Pids of nodes already reported by [`Running::reap_exited`].
    exited: HashSet<u32>,
}

impl Running {
    /// Each node: predictor, name, port, pid and log.
    pub fn nodes(&self) -> &[NodeState] {
        &self.node_states
    }

    /// The plan that runs (after the last successful reload).
    pub fn plan(&self) -> &LocalPlan {
        &self.plan
    }

    /// Reaps node processes that exited on their own (a crash, a kill from outside), so no
    /// zombie stays, and reports each once as [`Progress::NodeExited`]. `up` does not restart
    /// them (as `docker run` without a restart policy would not): the graph answers 503
    /// naming the node until something listens on its port again, and `status` names it.
    pub fn reap_exited(&mut self, progress: &mut dyn FnMut(Progress)) {
        for child in &mut self.nodes.0 {
            let pid = child.pid();
            if self.exited.contains(&pid) {
                continue;
            }
            let Ok(Some(status)) = child.try_wait() else {
                continue;
            };
            self.exited.insert(pid);
            let log = self
                .node_states
                .iter()
                .find(|n| n.pid == pid)
                .map(|n| n.log.clone())
                .unwrap_or_default();
            progress(Progress::NodeExited {
                node: child.name().to_string(),
                status: status.to_string(),
                log,
            });
        }
    }

    /// Stops Envoy, then every node; the same as dropping it, spelled out at call sites.
    pub fn stop(self) {
        let Running {
            envoy, xds, nodes, ..
        } = self;
        drop(envoy);
        drop(xds);
        drop(nodes);
    }

    /// Applies a changed plan (from [`plan_next`] with the running plan) without restarting
    /// Envoy:
    ///
    /// 1. starts the processes of new or changed nodes and waits for their `/health/ping`;
    /// 2. pushes the new clusters (keeping the old ones) and then the new listeners over
    ///    ADS, each waiting for Envoy's ACK; Envoy drains a replaced listener (its requests
    ///    in flight finish) while new connections get the new graph;
    /// 3. waits until every predictor answers `/ready` ([`Progress::Reloaded`]);
    /// 4. hands the clusters and processes of removed or changed nodes to
    ///    [`Running::retire_due`], which drops and stops them once Envoy's drain is over
    ///    ([`DRAIN_TIME`] + [`RETIRE_MARGIN`]); until then every push keeps their clusters. So
    ///    the next edit applies at once, not after the drain of the previous one.
    ///
    /// If a new node does not start, or Envoy rejects the update (a NACK, quoted in the
    /// error), the new processes are stopped and the running graph stays as it was.
    pub async fn reload(
        &mut self,
        next: LocalPlan,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), LocalError> {
        let began = Instant::now();
        let mut started = Nodes::default();
        let mut started_specs = Vec::new();
        for p in &next.processes {
            if !self.plan.processes.contains(p) {
                let model = fetch_model(&self.models, p, progress).await?;
                let child = spawn_node(p, model.as_deref(), &self.workdir, true)?;
                progress(Progress::NodeStarted {
                    node: child.name().to_string(),
                    pid: child.pid(),
                });
                started.0.push(child);
                started_specs.push(p.clone());
            }
        }
        for (p, child) in started_specs.iter().zip(started.0.iter_mut()) {
            wait_ping(&self.http, p, child, &node_log(&self.workdir, p)).await?;
            progress(Progress::NodeReady {
                node: child.name().to_string(),
                after: began.elapsed(),
            });
        }
        // The running plan and the ones still retiring stay served where `next` drops them:
        // the old gateway listener drains for DRAIN_TIME and may still route to a removed
        // predictor's graph listener and to removed nodes' clusters.
        let serving = self.draining_with(&next.envoy, true);
        self.xds.push_clusters(&next.envoy, &serving).await?;
        if let Err(e) = self.xds.push_listeners(&serving).await {
            // Envoy kept its listeners; serve the clusters they (and the draining ones) use.
            let now = self.draining_with(&self.plan.envoy, false);
            let _ = self.xds.push_clusters(&self.plan.envoy, &now).await;
            return Err(e.into());
        }

        // Envoy runs `next` now: keep the unchanged nodes, add the new ones, retire the rest.
        let old_specs = std::mem::take(&mut self.plan.processes);
        let old_nodes = std::mem::take(&mut self.nodes.0);
        let mut pool: Vec<(NodeProcess, Supervised)> = old_specs
            .into_iter()
            .zip(old_nodes)
            .chain(
                started_specs
                    .into_iter()
                    .zip(std::mem::take(&mut started.0)),
            )
            .collect();
        for p in &next.processes {
            if let Some(i) = pool.iter().position(|(spec, _)| spec == p) {
                self.nodes.0.push(pool.remove(i).1);
            }
        }
        // Envoy closes what the replaced listeners still hold at the end of DRAIN_TIME; a
        // margin after it, so a client's keep-alive connection to an old listener is gone
        // before the clusters and nodes it may still route to are.
        self.retiring.push(Retiring {
            due: Instant::now() + DRAIN_TIME + RETIRE_MARGIN,
            envoy: self.plan.envoy.clone(),
            nodes: Nodes(pool.into_iter().map(|(_, child)| child).collect()),
        });
        self.envoy.set_config(next.envoy.clone());
        self.node_states = node_states(&next.processes, &self.nodes, &self.workdir);
        self.plan = next;
        let ready = wait_predictors(&self.http, &self.plan, Duration::from_secs(10)).await;
        progress(Progress::Reloaded {
            after: began.elapsed(),
        });
        ready
    }

    /// Retires what reloads replaced once Envoy's drain is over: drops the clusters nothing
    /// routes to any more (one push, waiting for the ACK) and stops the processes of removed or
    /// changed nodes ([`Progress::NodeStopped`]). Nothing is due: returns at once. `up` calls
    /// it between manifest reads; [`Running::stop`] stops whatever is still retiring.
    pub async fn retire_due(
        &mut self,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), LocalError> {
        let now = Instant::now();
        let (due, waiting): (Vec<Retiring>, Vec<Retiring>) = std::mem::take(&mut self.retiring)
            .into_iter()
            .partition(|r| r.due <= now);
        self.retiring = waiting;
        if due.is_empty() {
            return Ok(());
        }
        let serving = self.draining_with(&self.plan.envoy, false);
        self.xds.push_listeners(&serving).await?;
        self.xds.push_clusters(&self.plan.envoy, &serving).await?;
        for mut r in due {
            let names: Vec<String> = r.nodes.0.iter().map(|c| c.name().to_string()).collect();
            let _ = seldon_supervise::stop_all(&mut r.nodes.0);
            r.nodes.0.clear();
            for node in names {
                progress(Progress::NodeStopped { node });
            }
        }
        Ok(())
    }

    /// `base` plus what Envoy may still use while replaced listeners drain: the listeners and
    /// clusters of the plans still retiring (and of the running plan, when `base` is the one
    /// replacing it) that `base` does not have. `base`'s own listeners and clusters win by name
    /// (and a listener also by port).
    fn draining_with(
        &self,
        base: &seldon_envoy::EnvoyConfig,
        replacing_running: bool,
    ) -> seldon_envoy::EnvoyConfig {
        let mut out = base.clone();
        let running = replacing_running.then_some(&self.plan.envoy);
        for old in running
            .into_iter()
            .chain(self.retiring.iter().map(|r| &r.envoy))
        {
            for l in &old.listeners {
                if !out
                    .listeners
                    .iter()
                    .any(|k| k.name == l.name || k.port == l.port)
                {
                    out.listeners.push(l.clone());
                }
            }
            for c in &old.clusters {
                if !out.clusters.iter().any(|k| k.name == c.name) {
                    out.clusters.push(c.clone());
                }
            }
        }
        out
    }
}

/// What one reload replaced: the plan Envoy's draining listeners were built from (their
/// clusters stay served) and the processes of its removed or changed nodes, retired at `due`.
#[derive(Debug)]
struct Retiring {
    due: Instant,
    envoy: seldon_envoy::EnvoyConfig,
    nodes: Nodes,
}

/// How long a listener replaced by a reload keeps serving the requests it has (Envoy's
/// `--drain-time-s`), and how long the processes of removed nodes keep running after it.
pub const DRAIN_TIME: Duration = Duration::from_secs(5);

/// How long after [`DRAIN_TIME`] the clusters and processes of removed nodes go.
pub const RETIRE_MARGIN: Duration = Duration::from_secs(1);

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
    /// A node's remote `modelUri` is being fetched (it was not in the cache, or
    /// `--refresh-models`).
    ModelFetching { node: String, uri: String },
    /// A node's remote model is in `dir`: fetched now, or found in the cache.
    ModelReady {
        node: String,
        dir: PathBuf,
        cached: bool,
        after: Duration,
    },
    /// A reload is live: Envoy took the new listeners and every predictor answers `/ready`,
    /// this long after the reload began.
    Reloaded { after: Duration },
    /// A removed or replaced node's process was stopped after the drain.
    NodeStopped { node: String },
    /// A node's process exited on its own while running ([`Running::reap_exited`]).
    NodeExited {
        node: String,
        status: String,
        log: PathBuf,
    },
}

/// How long a node may take to answer `/health/ping` (model loading included).
pub const NODE_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Fetches every remote model (into `models`), starts every node and Envoy (at once); returns once
/// each predictor answers `/ready` through its graph listener. Node output goes to
/// `<workdir>/<predictor>.<node>.log`.
///
/// A failed start stops everything it started before it returns the error; so does dropping
/// the future (e.g. on a signal while starting). A failed fetch happens before any process
/// starts.
pub async fn up(
    plan: LocalPlan,
    workdir: &Path,
    models: Arc<ModelCache>,
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

    let mut model_dirs = Vec::new();
    for p in &plan.processes {
        model_dirs.push(fetch_model(&models, p, progress).await?);
    }
    // Dropped on every early return below: a failed start leaves nothing running.
    let mut nodes = Nodes::default();
    for (p, model) in plan.processes.iter().zip(&model_dirs) {
        let child = spawn_node(p, model.as_deref(), workdir, false)?;
        progress(Progress::NodeStarted {
            node: child.name().to_string(),
            pid: child.pid(),
        });
        nodes.0.push(child);
    }
    // Envoy starts while the nodes load, so start-up costs the slower of the two rather than
    // their sum: Envoy's V8 compiles the filter module eagerly (TurboFan, no Liftoff) for
    // 0.3–0.4 s on a quiet machine, about what seldon-server or a Python node needs to load.
    // Nothing in Envoy waits for a node (its clusters are static addresses).
    let options = EnvoyOptions {
        concurrency: 2,
        ..EnvoyOptions::default()
    };
    let mut xds = XdsServer::start(&plan.envoy).await?;
    let start_envoy = async {
        let envoy = Envoy::start_xds(
            plan.envoy.clone(),
            xds.port(),
            DRAIN_TIME,
            &workdir.join("envoy"),
            &options,
        )
        .await?;
        Ok::<_, LocalError>((envoy, began.elapsed()))
    };
    let nodes_ready = async {
        for (p, child) in plan.processes.iter().zip(nodes.0.iter_mut()) {
            wait_ping(&http, p, child, &node_log(workdir, p)).await?;
            progress(Progress::NodeReady {
                node: child.name().to_string(),
                after: began.elapsed(),
            });
        }
        Ok::<_, LocalError>(())
    };
    // The first error wins and drops the other future: a half-started Envoy is killed with it
    // (`Supervised`), and the nodes when `nodes` drops on the return.
    let ((envoy, envoy_after), ()) = tokio::try_join!(start_envoy, nodes_ready)?;
    // Envoy says it is ready even when a listener could not bind its port (the gateway's
    // port taken by another program): its NACK of the first config is the only sign, and
    // `up` must fail then rather than print a URL that something else answers.
    xds.initial_config_accepted().await?;
    progress(Progress::EnvoyReady {
        pid: envoy.pid(),
        after: envoy_after,
    });
    wait_predictors(&http, &plan, Duration::ZERO).await?;
    progress(Progress::Ready {
        after: began.elapsed(),
    });
    let gateway = plan
        .envoy
        .listener("gateway")
        .map(|l| l.port)
        .unwrap_or_default();
    let node_states = node_states(&plan.processes, &nodes, workdir);
    let base_url = format!(
        "http://127.0.0.1:{gateway}{}",
        plan.prefix.trim_end_matches('/')
    );
    Ok(Running {
        envoy,
        xds,
        nodes,
        plan,
        node_states,
        workdir: workdir.to_path_buf(),
        http,
        models,
        retiring: Vec::new(),
        base_url,
        exited: HashSet::new(),
    })
}

/// The local folder of `p`'s remote model (fetched or cached), if it has one.
async fn fetch_model(
    models: &ModelCache,
    p: &NodeProcess,
    progress: &mut dyn FnMut(Progress),
) -> Result<Option<PathBuf>, LocalError> {
    let Some(model) = &p.model else {
        return Ok(None);
    };
    let env = |k: &str| std::env::var(k).ok();
    let node = format!("{}.{}", p.predictor, p.node);
    models.ensure(&node, model, &env, progress).await.map(Some)
}

/// Spawns one node process, its output to [`node_log`] (appended to when `append`: a
/// reload may start a node while its predecessor still writes there). `model`: the local
/// folder of its remote model (`SELDON_MODEL_URI`).
fn spawn_node(
    p: &NodeProcess,
    model: Option<&Path>,
    workdir: &Path,
    append: bool,
) -> Result<Supervised, LocalError> {
    let log_path = node_log(workdir, p);
    let io = |action, source| LocalError::Io {
        action,
        path: log_path.clone(),
        source,
    };
    let log = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(&log_path)
        .map_err(|e| io("creating", e))?;
    let log_err = log.try_clone().map_err(|e| io("cloning", e))?;
    let mut cmd = seldon_supervise::command(&p.program);
    cmd.args(&p.args)
        .envs(p.env.iter().map(|(k, v)| (k, v)))
        .envs(model.map(|m| ("SELDON_MODEL_URI", m.as_os_str())))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    Ok(
        Supervised::spawn(format!("{}.{}", p.predictor, p.node), cmd)
            .map_err(|source| LocalError::Spawn {
                node: p.node.clone(),
                source,
            })?
            .with_grace(NODE_STOP_GRACE),
    )
}

fn node_states(processes: &[NodeProcess], nodes: &Nodes, workdir: &Path) -> Vec<NodeState> {
    processes
        .iter()
        .zip(&nodes.0)
        .map(|(p, child)| NodeState {
            predictor: p.predictor.clone(),
            node: p.node.clone(),
            port: p.http_port,
            pid: child.pid(),
            log: node_log(workdir, p),
        })
        .collect()
}

/// Every predictor answers `/ready` through its graph listener; retried for `patience`
/// (a listener Envoy just took may still be warming).
async fn wait_predictors(
    http: &reqwest::Client,
    plan: &LocalPlan,
    patience: Duration,
) -> Result<(), LocalError> {
    let deadline = Instant::now() + patience;
    for (name, _, port) in &plan.predictors {
        let url = format!("http://127.0.0.1:{port}/ready");
        loop {
            let detail = match http.get(&url).send().await {
                Ok(r) if r.status().is_success() => break,
                Ok(r) => format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(LocalError::PredictorNotReady {
                    predictor: name.clone(),
                    detail,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
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
