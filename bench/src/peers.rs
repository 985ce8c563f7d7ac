//! The peer table (issue 12 item 5): the same 3-node chain behind each orchestrator, side by
//! side in one run.
//!
//! ```text
//!                         CPU 1 (orchestrators)                               CPU 0
//!  mesh up    ─▶ Envoy gateway ─▶ Envoy graph listener [filter] ───────┐
//!  mesh graph ─▶ Envoy graph listener [filter] ────────────────────────┤
//!  seldon+E   ─▶ Envoy route ─▶ seldon-executor ───────────────────────┤
//!  seldon     ─────────────────▶ seldon-executor ──────────────────────┼─▶ t1 /transform-input
//!  kserve+E   ─▶ Envoy route ─▶ kserve-router (:8080) ─────────────────┤   t2 /transform-input
//!  kserve     ─────────────────▶ kserve-router (:8080) ────────────────┘   m  /predict
//!  floor      ────────────────────────────────────────────────────────────▶ m  /predict
//! ```
//!
//! One Envoy (`--concurrency 1`) holds every Envoy listener; it and both peers are pinned to
//! the orchestrator CPU, the three `testmodel --mode echo` nodes and oha run where the bench
//! runs. The peers are binaries built by `scripts/peers-build.sh` (never part of CI), given as
//! `--peers DIR`.
//!
//! Each peer gets the chain in its own format: the Seldon executor a `PredictorSpec` (base64
//! JSON in `ENGINE_PREDICTOR`, as Seldon's operator passes it), the KServe router an
//! `InferenceGraphSpec` (`--graph-json`, as KServe's controller passes it) with one
//! `Sequence` node whose later steps send `$response`.
//!
//! Both peers listen on every interface (Go's `:port`), and the KServe router only on 8080 (a
//! constant in kserve's `pkg/constants`): `scripts/bench.sh` runs the bench in a network
//! namespace of its own when `--peers` is given, and [`PeerTopology::start`] refuses a busy
//! port 8080 with a clear error.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use seldon_e2e::{Mode, TestModel, TestModelSpec};
use seldon_envoy::{Cluster, EnvoyConfig, GatewayRoute, Listener, ListenerKind, WeightedCluster};
use seldon_supervise::Supervised;
use serde_json::{Value, json};

use crate::envoy::{BenchEnvoy, Runtime};
use crate::load::{self, Call};
use crate::oha::OhaSpec;
use crate::report::{PeerResult, PeerTable};
use crate::run::{RunError, cpu_us, oha_run};
use crate::topology::{SetupError, filter_config};

/// The binaries' names inside the `--peers` directory (what `scripts/peers-build.sh` writes).
pub const KSERVE_ROUTER: &str = "kserve-router";
pub const SELDON_EXECUTOR: &str = "seldon-executor";
/// The KServe router's port: `constants.RouterPort`, not configurable.
pub const KSERVE_ROUTER_PORT: u16 = 8080;
/// The chain: (node, Seldon type, path each orchestrator calls), in execution order.
pub const CHAIN: [(&str, &str, &str); 3] = [
    ("t1", "TRANSFORMER", "/transform-input"),
    ("t2", "TRANSFORMER", "/transform-input"),
    ("m", "MODEL", "/predict"),
];
/// The same chain as a Seldon graph (a transformer's child gets its output).
pub const GRAPH_YAML: &str = "
name: t1
type: TRANSFORMER
children:
- name: t2
  type: TRANSFORMER
  children: [{name: m, type: MODEL}]
";
/// `seldon-mesh up`'s prefix for SeldonDeployment `bench` in namespace `default`.
pub const UP_PREFIX: &str = "/seldon/default/bench/";
const PREDICTIONS: &str = "/api/v1.0/predictions";
const GRAPH_CLUSTER: &str = "predictor-default";

/// What went wrong with the peers.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error(
        "no {name} in {dir}: build the peers with `scripts/peers-build.sh` (it prints the directory)"
    )]
    Missing { name: &'static str, dir: PathBuf },
    #[error(
        "port {KSERVE_ROUTER_PORT} is taken ({0}); the KServe router can listen nowhere else: run the bench in a network namespace of its own (scripts/bench.sh does with --peers)"
    )]
    RouterPortBusy(std::io::Error),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Supervise(#[from] seldon_supervise::SuperviseError),
    #[error("{name} exited ({status}) before answering; its log {log}:\n{tail}")]
    Exited {
        name: &'static str,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("{name} did not answer the chain correctly within {timeout:?}: {last}")]
    NotReady {
        name: &'static str,
        timeout: Duration,
        last: String,
    },
}

/// The two peer binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerBins {
    pub kserve_router: PathBuf,
    pub seldon_executor: PathBuf,
}

impl PeerBins {
    /// Both binaries in `dir`, or which one is missing.
    pub fn find(dir: &Path) -> Result<Self, PeerError> {
        let bin = |name: &'static str| {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(PeerError::Missing {
                    name,
                    dir: dir.to_owned(),
                })
            }
        };
        Ok(Self {
            kserve_router: bin(KSERVE_ROUTER)?,
            seldon_executor: bin(SELDON_EXECUTOR)?,
        })
    }
}

/// The KServe router's `--graph-json`: an `InferenceGraphSpec` whose root is a `Sequence` of
/// the chain's calls, each later step fed the previous response (`data: $response`).
pub fn kserve_graph_json(ports: &BTreeMap<String, u16>) -> Result<String, String> {
    let mut steps = Vec::new();
    for (i, (node, _, path)) in CHAIN.iter().enumerate() {
        let port = ports
            .get(*node)
            .ok_or_else(|| format!("no server for node {node}"))?;
        let mut step =
            json!({"name": node, "serviceUrl": format!("http://127.0.0.1:{port}{path}")});
        if i > 0 {
            step["data"] = json!("$response");
        }
        steps.push(step);
    }
    Ok(json!({"nodes": {"root": {"routerType": "Sequence", "steps": steps}}}).to_string())
}

/// The Seldon executor's `PredictorSpec` (the JSON that `ENGINE_PREDICTOR` carries base64'd):
/// the chain as a graph of REST endpoints on 127.0.0.1.
pub fn seldon_predictor_json(ports: &BTreeMap<String, u16>) -> Result<String, String> {
    // Innermost first: m, then t2 around it, then t1.
    let mut graph: Option<Value> = None;
    for (node, kind, _) in CHAIN.iter().rev() {
        let port = ports
            .get(*node)
            .ok_or_else(|| format!("no server for node {node}"))?;
        let mut unit = json!({
            "name": node,
            "type": kind,
            "endpoint": {"type": "REST", "service_host": "127.0.0.1", "service_port": port, "httpPort": port},
            "children": [],
        });
        if let Some(child) = graph.take() {
            unit["children"] = json!([child]);
        }
        graph = Some(unit);
    }
    Ok(json!({"name": "default", "graph": graph, "componentSpecs": [], "replicas": 1}).to_string())
}

/// A free TCP port on every interface (the executor binds `:port`), or 127.0.0.1 when the
/// wildcard is refused.
fn free_port() -> Result<u16, SetupError> {
    Ok(TcpListener::bind(("0.0.0.0", 0))?.local_addr()?.port())
}

/// One row of the peer table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    MeshUp,
    MeshGraph,
    SeldonEnvoy,
    SeldonBare,
    KServeEnvoy,
    KServeBare,
    Floor,
}

/// Every row, in the table's order.
pub const ROWS: [Row; 7] = [
    Row::MeshUp,
    Row::MeshGraph,
    Row::SeldonBare,
    Row::SeldonEnvoy,
    Row::KServeBare,
    Row::KServeEnvoy,
    Row::Floor,
];

/// Who a row is, for the goals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum RowKind {
    /// seldon-mesh as `up` runs it: the goals' candidate.
    Candidate,
    /// seldon-mesh in another shape (information).
    Mesh,
    /// A peer orchestrator: the goals compare with the best of these.
    Peer,
    /// No orchestrator (the floor of one hop).
    Floor,
}

impl Row {
    pub fn label(self) -> &'static str {
        match self {
            Row::MeshUp => "seldon-mesh (`up`: gateway listener + graph filter, one Envoy)",
            Row::MeshGraph => "seldon-mesh graph listener alone (no gateway route)",
            Row::SeldonBare => "Seldon Core v1.18.2 executor, bare",
            Row::SeldonEnvoy => "Seldon v1.18.2 executor behind one Envoy route",
            Row::KServeBare => "KServe 0.17 InferenceGraph router, bare",
            Row::KServeEnvoy => "KServe 0.17 router behind one Envoy route",
            Row::Floor => "no orchestrator: one plain call to one node (the floor of a hop)",
        }
    }
    pub fn kind(self) -> RowKind {
        match self {
            Row::MeshUp => RowKind::Candidate,
            Row::MeshGraph => RowKind::Mesh,
            Row::Floor => RowKind::Floor,
            _ => RowKind::Peer,
        }
    }
}

/// The nodes, both peers and one Envoy, running; every process stops on drop, and (through
/// `seldon-supervise`) dies with the bench even when it aborts.
#[derive(Debug)]
pub struct PeerTopology {
    pub envoy: BenchEnvoy,
    pub nodes: BTreeMap<String, TestModel>,
    pub executor: Supervised,
    pub router: Supervised,
    pub executor_port: u16,
    pub config: EnvoyConfig,
    pub dir: tempfile::TempDir,
}

/// `taskset -c <cpu> <bin>` (or `<bin>`), supervised.
fn pinned(bin: &Path, cpu: Option<u32>) -> std::process::Command {
    match cpu {
        Some(cpu) => {
            let mut c = seldon_supervise::command("taskset");
            c.args(["-c", &cpu.to_string()]).arg(bin);
            c
        }
        None => seldon_supervise::command(bin),
    }
}

fn log_file(dir: &Path, name: &str) -> Result<(Stdio, Stdio, PathBuf), SetupError> {
    let path = dir.join(format!("{name}.log"));
    let f = std::fs::File::create(&path)?;
    Ok((Stdio::from(f.try_clone()?), Stdio::from(f), path))
}

/// The Envoy config: the `up` shape (gateway route → graph listener), and one plain route per
/// peer.
pub fn envoy_config(
    admin_port: u16,
    wasm: PathBuf,
    ports: &BTreeMap<String, u16>,
    executor_port: u16,
    listener_ports: &mut impl FnMut() -> Result<u16, seldon_envoy::EnvoyError>,
) -> Result<EnvoyConfig, SetupError> {
    let mut c = EnvoyConfig::new(admin_port);
    let fc = filter_config(GRAPH_YAML, ports).map_err(|e| SetupError::Graph("peer chain", e))?;
    let graph_port = listener_ports()?;
    c.listeners.push(Listener {
        name: GRAPH_CLUSTER.into(),
        port: graph_port,
        kind: ListenerKind::Graph {
            wasm_path: wasm,
            plugin_config_json: fc.to_json(),
            vm_id: "seldon-graph".into(),
        },
    });
    c.listeners.push(Listener {
        name: "gateway".into(),
        port: listener_ports()?,
        kind: ListenerKind::Gateway {
            routes: vec![GatewayRoute {
                prefix: UP_PREFIX.into(),
                rewrite: Some("/".into()),
                clusters: vec![WeightedCluster {
                    cluster: GRAPH_CLUSTER.into(),
                    weight: 1,
                }],
                mirror: None,
                timeout: Some(Duration::from_secs(10)),
            }],
        },
    });
    for (name, port) in [
        (SELDON_EXECUTOR, executor_port),
        (KSERVE_ROUTER, KSERVE_ROUTER_PORT),
    ] {
        c.clusters.push(Cluster::http1(name, "127.0.0.1", port));
        c.listeners.push(Listener {
            name: format!("route-{name}"),
            port: listener_ports()?,
            kind: ListenerKind::Route {
                cluster: name.into(),
                prefix_rewrite: None,
                timeout: None,
            },
        });
    }
    c.clusters
        .push(Cluster::http1(GRAPH_CLUSTER, "127.0.0.1", graph_port));
    for (node, port) in ports {
        c.clusters
            .push(Cluster::http1(node.clone(), "127.0.0.1", *port));
    }
    Ok(c)
}

impl PeerTopology {
    /// Starts the nodes, both peers and Envoy; returns once every row answers the payload.
    /// `orchestrator_cpu`: where Envoy and both peers are pinned.
    pub async fn start(
        bins: &PeerBins,
        runtime: Runtime,
        orchestrator_cpu: Option<u32>,
        body: &str,
    ) -> Result<Self, PeerError> {
        // The router cannot move: say so before starting anything.
        drop(
            TcpListener::bind(("0.0.0.0", KSERVE_ROUTER_PORT))
                .map_err(PeerError::RouterPortBusy)?,
        );
        let dir = tempfile::tempdir().map_err(SetupError::Io)?;
        let mut nodes = BTreeMap::new();
        for (name, _, _) in CHAIN {
            nodes.insert(
                name.to_string(),
                TestModel::spawn(&TestModelSpec::new(name, Mode::Echo))
                    .await
                    .map_err(SetupError::Harness)?,
            );
        }
        let ports: BTreeMap<String, u16> =
            nodes.iter().map(|(n, m)| (n.clone(), m.port())).collect();

        let executor_port = free_port()?;
        let predictor =
            seldon_predictor_json(&ports).map_err(|e| SetupError::Graph("seldon", e))?;
        let mut cmd = pinned(&bins.seldon_executor, orchestrator_cpu);
        cmd.args([
            "--sdep",
            "bench",
            "--namespace",
            "default",
            "--predictor",
            "default",
        ])
        .args(["--http_port", &executor_port.to_string()])
        .args(["--grpc_port", &free_port()?.to_string()])
        .args(["--protocol", "seldon", "--transport", "rest"])
        .args(["--log_level", "ERROR"])
        .env(
            "ENGINE_PREDICTOR",
            base64::engine::general_purpose::STANDARD.encode(predictor),
        )
        .env("JAEGER_DISABLED", "true")
        // It writes its OpenAPI file relative to the working directory.
        .current_dir(dir.path());
        let (out, err, executor_log) = log_file(dir.path(), SELDON_EXECUTOR)?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let executor = Supervised::spawn(SELDON_EXECUTOR, cmd)?.with_grace(Duration::from_secs(2));

        let graph = kserve_graph_json(&ports).map_err(|e| SetupError::Graph("kserve", e))?;
        let mut cmd = pinned(&bins.kserve_router, orchestrator_cpu);
        cmd.args(["--graph-json", &graph]).current_dir(dir.path());
        let (out, err, router_log) = log_file(dir.path(), KSERVE_ROUTER)?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        // SIGTERM makes it sleep 30 s ("drain") before exiting: do not wait for that.
        let router = Supervised::spawn(KSERVE_ROUTER, cmd)?.with_grace(Duration::from_millis(200));

        let config = envoy_config(
            seldon_envoy::free_port().map_err(SetupError::Envoy)?,
            seldon_e2e::graph::filter_wasm().map_err(SetupError::Harness)?,
            &ports,
            executor_port,
            &mut seldon_envoy::free_port,
        )?;
        let envoy = BenchEnvoy::start(&config, runtime, dir.path(), 1, orchestrator_cpu)
            .await
            .map_err(SetupError::Run)?;
        let mut t = Self {
            envoy,
            nodes,
            executor,
            router,
            executor_port,
            config,
            dir,
        };
        for row in ROWS {
            let logs = match row {
                Row::SeldonBare | Row::SeldonEnvoy => Some((SELDON_EXECUTOR, &executor_log)),
                Row::KServeBare | Row::KServeEnvoy => Some((KSERVE_ROUTER, &router_log)),
                _ => None,
            };
            t.wait_answering(row, body, logs).await?;
        }
        Ok(t)
    }

    fn addr(&self, listener: &str) -> SocketAddr {
        let port = self.config.listener(listener).map(|l| l.port).unwrap_or(0);
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// The one request of `row`.
    pub fn call(&self, row: Row) -> Call {
        let local = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let (addr, path) = match row {
            Row::MeshUp => (
                self.addr("gateway"),
                format!("{UP_PREFIX}api/v1.0/predictions"),
            ),
            Row::MeshGraph => (self.addr(GRAPH_CLUSTER), PREDICTIONS.into()),
            Row::SeldonBare => (local(self.executor_port), PREDICTIONS.into()),
            Row::SeldonEnvoy => (
                self.addr(&format!("route-{SELDON_EXECUTOR}")),
                PREDICTIONS.into(),
            ),
            Row::KServeBare => (local(KSERVE_ROUTER_PORT), "/".into()),
            Row::KServeEnvoy => (self.addr(&format!("route-{KSERVE_ROUTER}")), "/".into()),
            Row::Floor => (
                local(self.nodes.get("m").map(|m| m.port()).unwrap_or(0)),
                "/predict".into(),
            ),
        };
        Call { addr, path }
    }

    /// The pids on the orchestrator CPU that serve `row` (for CPU per request).
    pub fn orchestrator_pids(&self, row: Row) -> Vec<u32> {
        let envoy = self.envoy.pid();
        match row {
            Row::MeshUp | Row::MeshGraph => vec![envoy],
            Row::SeldonBare => vec![self.executor.pid()],
            Row::SeldonEnvoy => vec![envoy, self.executor.pid()],
            Row::KServeBare => vec![self.router.pid()],
            Row::KServeEnvoy => vec![envoy, self.router.pid()],
            Row::Floor => vec![],
        }
    }

    /// Polls `row` with the payload until it answers the payload's data (a Go peer takes a
    /// moment to listen); a peer that exits meanwhile is an error with its log.
    async fn wait_answering(
        &mut self,
        row: Row,
        body: &str,
        logs: Option<(&'static str, &PathBuf)>,
    ) -> Result<(), PeerError> {
        let timeout = Duration::from_secs(60);
        let deadline = Instant::now() + timeout;
        let chain = vec![self.call(row)];
        let mut last;
        loop {
            if let Some((name, log)) = logs {
                let child = if name == SELDON_EXECUTOR {
                    &mut self.executor
                } else {
                    &mut self.router
                };
                if let Ok(Some(status)) = child.try_wait() {
                    let text = std::fs::read_to_string(log).unwrap_or_default();
                    let tail: String = text
                        .chars()
                        .rev()
                        .take(3000)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect();
                    return Err(PeerError::Exited {
                        name,
                        status: status.to_string(),
                        log: log.clone(),
                        tail,
                    });
                }
            }
            match load::connect(&chain).await {
                Ok(mut conns) => {
                    match load::run_chain(&chain, &mut conns, Bytes::from(body.to_owned())).await {
                        Ok(got) => match crate::run::check_answer(row.label(), body, &got) {
                            Ok(()) => return Ok(()),
                            Err(e) => last = e.to_string(),
                        },
                        Err(e) => last = e.to_string(),
                    }
                }
                Err(e) => last = e.to_string(),
            }
            if Instant::now() > deadline {
                return Err(PeerError::NotReady {
                    name: row.label(),
                    timeout,
                    last,
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// How to measure the peer table.
#[derive(Debug, Clone)]
pub struct PeerSpec {
    pub bins: PeerBins,
    pub oha: PathBuf,
    /// The fixed rate (the issue: 500 rps).
    pub rate: u32,
    pub duration: Duration,
    pub warmup: Duration,
    pub rounds: usize,
    pub connections: usize,
    pub saturation: Duration,
    pub saturation_connections: usize,
    /// Where Envoy and both peers run.
    pub orchestrator_cpu: Option<u32>,
    pub runtime: Runtime,
    pub body: String,
}

/// Starts [`PeerTopology`], warms every row up, then per round measures every row at the
/// fixed rate and then at saturation (oha both), rows in alternating order.
pub async fn run(spec: &PeerSpec, log: &mut dyn FnMut(&str)) -> Result<PeerTable, RunError> {
    let loadavg = || {
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let mut checks = vec![format!(
        "peer table: load average at its start: {}",
        loadavg()
    )];
    let t =
        PeerTopology::start(&spec.bins, spec.runtime, spec.orchestrator_cpu, &spec.body).await?;
    log(&format!(
        "peers: envoy pid {}, seldon-executor pid {}, kserve-router pid {}",
        t.envoy.pid(),
        t.executor.pid(),
        t.router.pid()
    ));
    checks.push(format!(
        "peer table: before measuring, each of its {} rows answered the payload's `data` unchanged",
        ROWS.len()
    ));
    let oha_spec = |row: Row, duration: Duration, rate: Option<u32>| {
        let c = t.call(row);
        OhaSpec {
            url: format!("http://{}{}", c.addr, c.path),
            body: spec.body.clone(),
            duration,
            connections: if rate.is_some() {
                spec.connections
            } else {
                spec.saturation_connections
            },
            rate,
        }
    };
    for row in ROWS {
        log(&format!("peers: warm-up {}", row.label()));
        oha_run(
            &spec.oha,
            oha_spec(row, spec.warmup, Some(spec.rate)),
            row.label(),
        )
        .await?;
        t.clear_calls().await?;
    }
    let mut results: Vec<PeerResult> = ROWS
        .iter()
        .map(|r| PeerResult {
            label: r.label().into(),
            kind: r.kind(),
            fixed: Vec::new(),
            saturation: Vec::new(),
            cpu_us_per_request: Vec::new(),
        })
        .collect();
    for round in 0..spec.rounds {
        let mut order: Vec<(usize, Row)> = ROWS.into_iter().enumerate().collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for &(i, row) in &order {
            log(&format!(
                "peers: round {} oha -q {} {}",
                round + 1,
                spec.rate,
                row.label()
            ));
            let r = oha_run(
                &spec.oha,
                oha_spec(row, spec.duration, Some(spec.rate)),
                row.label(),
            )
            .await?;
            t.clear_calls().await?;
            results[i].fixed.push(r);
        }
        for &(i, row) in &order {
            log(&format!(
                "peers: round {} saturation {}",
                round + 1,
                row.label()
            ));
            let pids = t.orchestrator_pids(row);
            let cpu = |pids: &[u32]| pids.iter().map(|p| cpu_us(*p).unwrap_or(0)).sum::<u64>();
            let before = cpu(&pids);
            let r = oha_run(&spec.oha, oha_spec(row, spec.saturation, None), row.label()).await?;
            let per_req = (cpu(&pids).saturating_sub(before)) as f64 / r.ok.max(1) as f64;
            t.clear_calls().await?;
            log(&format!(
                "  {:.0} rps, orchestrator CPU {per_req:.0} µs/request",
                r.rps
            ));
            results[i].saturation.push(r);
            results[i].cpu_us_per_request.push(per_req);
        }
    }
    checks.push(format!(
        "peer table: load average at its end: {}",
        loadavg()
    ));
    for (name, pid) in [
        ("Envoy", t.envoy.pid()),
        (SELDON_EXECUTOR, t.executor.pid()),
        (KSERVE_ROUTER, t.router.pid()),
    ] {
        let threads = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Threads:").map(|v| v.trim().to_owned()))
            })
            .unwrap_or_else(|| "?".into());
        let affinity = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix("Cpus_allowed_list:")
                        .map(|v| v.trim().to_owned())
                })
            })
            .unwrap_or_else(|| "?".into());
        checks.push(format!(
            "peer table: {name} (pid {pid}) ran on CPUs {affinity}, {threads} threads"
        ));
    }
    Ok(PeerTable {
        rate: spec.rate,
        connections: spec.connections,
        saturation_connections: spec.saturation_connections,
        rows: results,
        checks,
    })
}

impl PeerTopology {
    /// Forgets what the nodes recorded, so memory stays flat.
    pub async fn clear_calls(&self) -> Result<(), SetupError> {
        for n in self.nodes.values() {
            n.clear_calls().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports() -> BTreeMap<String, u16> {
        [("t1", 1001), ("t2", 1002), ("m", 1003)]
            .into_iter()
            .map(|(n, p)| (n.to_string(), p))
            .collect()
    }

    #[test]
    fn kserve_gets_a_sequence_fed_by_each_response() {
        let g: Value = serde_json::from_str(&kserve_graph_json(&ports()).unwrap()).unwrap();
        let root = &g["nodes"]["root"];
        assert_eq!(root["routerType"], "Sequence");
        let steps = root["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 3);
        assert_eq!(
            steps[0]["serviceUrl"],
            "http://127.0.0.1:1001/transform-input"
        );
        assert_eq!(
            steps[0].get("data"),
            None,
            "the first step gets the request"
        );
        assert_eq!(
            steps[1]["serviceUrl"],
            "http://127.0.0.1:1002/transform-input"
        );
        assert_eq!(steps[1]["data"], "$response");
        assert_eq!(steps[2]["serviceUrl"], "http://127.0.0.1:1003/predict");
        assert_eq!(steps[2]["data"], "$response");
    }

    #[test]
    fn seldon_gets_the_chain_as_nested_rest_units() {
        let p: Value = serde_json::from_str(&seldon_predictor_json(&ports()).unwrap()).unwrap();
        assert_eq!(p["name"], "default");
        let t1 = &p["graph"];
        assert_eq!(
            (t1["name"].as_str(), t1["type"].as_str()),
            (Some("t1"), Some("TRANSFORMER"))
        );
        assert_eq!(t1["endpoint"]["httpPort"], 1001);
        assert_eq!(t1["endpoint"]["type"], "REST");
        let t2 = &t1["children"][0];
        assert_eq!(
            (t2["name"].as_str(), t2["type"].as_str()),
            (Some("t2"), Some("TRANSFORMER"))
        );
        let m = &t2["children"][0];
        assert_eq!(
            (m["name"].as_str(), m["type"].as_str()),
            (Some("m"), Some("MODEL"))
        );
        assert_eq!(m["endpoint"]["service_host"], "127.0.0.1");
        assert_eq!(m["children"], json!([]));
    }

    #[test]
    fn a_node_without_a_server_is_an_error_for_both_peers() {
        let mut p = ports();
        p.remove("t2");
        assert!(kserve_graph_json(&p).unwrap_err().contains("t2"));
        assert!(seldon_predictor_json(&p).unwrap_err().contains("t2"));
    }

    #[test]
    fn missing_binaries_name_the_build_script() {
        let dir = tempfile::tempdir().unwrap();
        let e = PeerBins::find(dir.path()).unwrap_err();
        assert!(e.to_string().contains("scripts/peers-build.sh"), "{e}");
        assert!(e.to_string().contains(KSERVE_ROUTER), "{e}");
        std::fs::write(dir.path().join(KSERVE_ROUTER), "").unwrap();
        let e = PeerBins::find(dir.path()).unwrap_err();
        assert!(e.to_string().contains(SELDON_EXECUTOR), "{e}");
        std::fs::write(dir.path().join(SELDON_EXECUTOR), "").unwrap();
        let b = PeerBins::find(dir.path()).unwrap();
        assert_eq!(b.kserve_router, dir.path().join(KSERVE_ROUTER));
    }

    #[test]
    fn envoy_has_the_up_shape_and_a_route_per_peer() {
        let mut next = 2000;
        let c = envoy_config(1999, "/f.wasm".into(), &ports(), 3000, &mut || {
            next += 1;
            Ok(next)
        })
        .unwrap();
        let names: Vec<_> = c.listeners.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(
            names,
            [
                GRAPH_CLUSTER,
                "gateway",
                "route-seldon-executor",
                "route-kserve-router"
            ]
        );
        let ListenerKind::Gateway { routes } = &c.listener("gateway").unwrap().kind else {
            panic!("not a gateway");
        };
        assert_eq!(routes[0].prefix, UP_PREFIX);
        assert_eq!(routes[0].clusters[0].cluster, GRAPH_CLUSTER);
        let cluster = |n: &str| c.clusters.iter().find(|x| x.name == n).unwrap().port;
        assert_eq!(
            cluster(GRAPH_CLUSTER),
            2001,
            "the gateway routes to the graph listener"
        );
        assert_eq!(cluster(SELDON_EXECUTOR), 3000);
        assert_eq!(cluster(KSERVE_ROUTER), KSERVE_ROUTER_PORT);
        assert_eq!(cluster("t2"), 1002);
        assert!(c.check().is_ok());
    }

    #[test]
    fn only_the_up_row_is_the_candidate_and_both_peers_count() {
        let kinds: Vec<_> = ROWS.iter().map(|r| r.kind()).collect();
        assert_eq!(
            kinds.iter().filter(|k| **k == RowKind::Candidate).count(),
            1
        );
        assert_eq!(kinds.iter().filter(|k| **k == RowKind::Peer).count(), 4);
        assert_eq!(Row::Floor.kind(), RowKind::Floor);
    }
}
