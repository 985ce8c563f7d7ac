//! What runs during a benchmark: three `testmodel` nodes (echo), a collector sink, and ONE
//! Envoy with every listener side by side — three graph listeners running the filter and one
//! plain route per node.
//!
//! ```text
//!               ┌──────────────── Envoy (one process) ─────────────────────┐
//!  (b) ───────▶ │ graph3         [filter: tin → m → out] ──┬──▶ tin  /transform-input
//!  (d) ───────▶ │ graph3-traced  [same graph, tracing] ────┼──▶ m    /predict
//!  (c) filter ▶ │ graph1         [filter: m]  ─────────────┼──▶ out  /transform-output
//!  (a) ×3 ────▶ │ direct-tin | direct-m | direct-out ──────┘
//!  (c) direct ▶ │ direct-m
//!               │ graph3-traced's root context ── OTLP/HTTP ──▶ otlp-sink (bench's Sink)
//!               └──────────────────────────────────────────────────────────┘
//! ```
//!
//! `graph3-traced` runs in its own Wasm VM (`vm_id` [`TRACED_VM_ID`]). Sharing the `seldon` VM
//! would also be correct — Envoy gives every plugin config its own root context, and the
//! filter builds its span exporter per root context from that root's config (`glue.rs`,
//! `on_configure`), so `graph3` would still trace nothing — but a VM of its own keeps the
//! traced side's heap (queued spans, protobuf bodies) out of the untraced side's VM, so (b)
//! measures exactly what it measured before (d) existed, and each side warms its own VM.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use seldon_e2e::{Mode, TestModel, TestModelSpec};
use seldon_envoy::{Cluster, EnvoyConfig, Listener, ListenerKind};
use seldon_graph::{FilterConfig, NodeUpstream, PredictiveUnit, Protocol, Tracing, Transport};

use crate::envoy::{BenchEnvoy, EnvoyRunError, Runtime};
use crate::load::Call;
use crate::sink::Sink;

/// The 3-node graph: transformer → model → output transformer (Seldon puts the output
/// transformer above what it transforms).
pub const GRAPH3_YAML: &str = "
name: out
type: OUTPUT_TRANSFORMER
children:
- name: tin
  type: TRANSFORMER
  children: [{name: m, type: MODEL}]
";
/// The 1-node graph, on the same `m` server as the 3-node graph's model.
pub const GRAPH1_YAML: &str = "{name: m, type: MODEL}";
/// Node names in execution order, with the path the filter (and the direct client) calls.
pub const CHAIN: [(&str, &str); 3] = [
    ("tin", "/transform-input"),
    ("m", "/predict"),
    ("out", "/transform-output"),
];
pub const PREDICTIONS: &str = "/api/v1.0/predictions";
/// The Envoy cluster of the collector sink (scenario (d)).
pub const SINK_CLUSTER: &str = "otlp-sink";
/// The traced listener's Wasm VM (see the module docs for why not `seldon`).
pub const TRACED_VM_ID: &str = "seldon-traced";
/// Spans one traced request makes: the graph request's span and one per node call.
pub const SPANS_PER_TRACED_REQUEST: u64 = 1 + CHAIN.len() as u64;

/// The filter's default `maxQueueSpans` (per worker).
pub fn default_trace_queue_spans() -> u32 {
    Tracing::new(SINK_CLUSTER, "").max_queue_spans
}

/// Tracing of `graph3-traced`: every request sampled, a queue of `max_queue_spans` per worker,
/// every other setting the default (flush 1000 ms, batch 512).
pub fn traced(sink_port: u16, max_queue_spans: u32) -> Tracing {
    Tracing {
        sample_ratio: 1.0,
        max_queue_spans,
        ..Tracing::new(SINK_CLUSTER, format!("127.0.0.1:{sink_port}"))
    }
}

/// What went wrong setting up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Harness(#[from] seldon_e2e::HarnessError),
    #[error(transparent)]
    Envoy(#[from] seldon_envoy::EnvoyError),
    #[error(transparent)]
    Run(#[from] EnvoyRunError),
    #[error("graph {0}: {1}")]
    Graph(&'static str, String),
    #[error("temp dir: {0}")]
    Io(#[from] std::io::Error),
    #[error("collector sink: {0}")]
    Sink(#[source] std::io::Error),
}

/// The filter config for `graph_yaml`, every node reachable through the cluster of its name.
pub fn filter_config(
    graph_yaml: &str,
    ports: &BTreeMap<String, u16>,
) -> Result<FilterConfig, String> {
    let graph: PredictiveUnit = serde_yaml::from_str(graph_yaml).map_err(|e| e.to_string())?;
    let mut nodes = BTreeMap::new();
    for unit in graph.walk() {
        let port = *ports
            .get(&unit.name)
            .ok_or_else(|| format!("no server for node {}", unit.name))?;
        nodes.insert(
            unit.name.clone(),
            NodeUpstream {
                cluster: unit.name.clone(),
                authority: format!("{}:{port}", unit.name),
                port,
                transport: Transport::Rest,
                protocol: None,
                timeout_ms: 5_000,
            },
        );
    }
    let config = FilterConfig {
        deployment: "bench".into(),
        namespace: "default".into(),
        predictor: "default".into(),
        protocol: Protocol::Seldon,
        graph,
        nodes,
        body_limit_bytes: 1024 * 1024,
        payload_logger: None,
        tracing: None,
    };
    seldon_graph::compile(&config).map_err(|e| e.to_string())?;
    Ok(config)
}

/// The Envoy config: clusters per node and for the sink, `graph3`, `graph3-traced`,
/// `graph1`, and `direct-<node>` routes.
pub fn envoy_config(
    admin_port: u16,
    wasm: PathBuf,
    ports: &BTreeMap<String, u16>,
    traced: &Tracing,
    sink_port: u16,
    listener_ports: &mut impl FnMut() -> Result<u16, seldon_envoy::EnvoyError>,
) -> Result<EnvoyConfig, SetupError> {
    let mut c = EnvoyConfig::new(admin_port);
    for (name, yaml, tracing) in [
        ("graph3", GRAPH3_YAML, None),
        ("graph3-traced", GRAPH3_YAML, Some(traced.clone())),
        ("graph1", GRAPH1_YAML, None),
    ] {
        let mut fc = filter_config(yaml, ports).map_err(|e| SetupError::Graph(name, e))?;
        let vm_id = if tracing.is_some() {
            TRACED_VM_ID
        } else {
            "seldon"
        };
        fc.tracing = tracing;
        seldon_graph::compile(&fc).map_err(|e| SetupError::Graph(name, e.to_string()))?;
        c.listeners.push(Listener {
            name: name.into(),
            port: listener_ports()?,
            kind: ListenerKind::Graph {
                wasm_path: wasm.clone(),
                plugin_config_json: fc.to_json(),
                vm_id: vm_id.into(),
            },
        });
    }
    c.clusters
        .push(Cluster::http1(SINK_CLUSTER, "127.0.0.1", sink_port));
    for (node, port) in ports {
        c.clusters
            .push(Cluster::http1(node.clone(), "127.0.0.1", *port));
        c.listeners.push(Listener {
            name: format!("direct-{node}"),
            port: listener_ports()?,
            kind: ListenerKind::Route {
                cluster: node.clone(),
                prefix_rewrite: None,
                timeout: None,
            },
        });
    }
    Ok(c)
}

/// Nodes, the sink and Envoy, running; everything stops on drop.
#[derive(Debug)]
pub struct Topology {
    pub envoy: BenchEnvoy,
    pub nodes: BTreeMap<String, TestModel>,
    /// The collector `graph3-traced` exports to.
    pub sink: Sink,
    /// `graph3-traced`'s tracing config.
    pub tracing: Tracing,
    pub config: EnvoyConfig,
    _dir: tempfile::TempDir,
}

impl Topology {
    pub async fn start(
        runtime: Runtime,
        concurrency: u32,
        envoy_cpu: Option<u32>,
        trace_queue_spans: u32,
    ) -> Result<Self, SetupError> {
        let mut nodes = BTreeMap::new();
        for (name, _) in CHAIN {
            nodes.insert(
                name.to_string(),
                TestModel::spawn(&TestModelSpec::new(name, Mode::Echo)).await?,
            );
        }
        let ports: BTreeMap<String, u16> =
            nodes.iter().map(|(n, m)| (n.clone(), m.port())).collect();
        let sink = Sink::start().await.map_err(SetupError::Sink)?;
        let tracing = traced(sink.port(), trace_queue_spans);
        let config = envoy_config(
            seldon_envoy::free_port()?,
            seldon_e2e::graph::filter_wasm()?,
            &ports,
            &tracing,
            sink.port(),
            &mut seldon_envoy::free_port,
        )?;
        let dir = tempfile::tempdir()?;
        let envoy = BenchEnvoy::start(&config, runtime, dir.path(), concurrency, envoy_cpu).await?;
        Ok(Self {
            envoy,
            nodes,
            sink,
            tracing,
            config,
            _dir: dir,
        })
    }

    fn addr(&self, listener: &str) -> SocketAddr {
        let port = self.config.listener(listener).map(|l| l.port).unwrap_or(0);
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// (a): the client calls the three nodes itself, each through its plain Envoy route.
    pub fn direct3(&self) -> Vec<Call> {
        CHAIN
            .iter()
            .map(|(n, p)| Call {
                addr: self.addr(&format!("direct-{n}")),
                path: (*p).into(),
            })
            .collect()
    }
    /// (b): one request through the filter running the 3-node graph.
    pub fn filter3(&self) -> Vec<Call> {
        vec![Call {
            addr: self.addr("graph3"),
            path: PREDICTIONS.into(),
        }]
    }
    /// (d): the same 3-node graph, every request traced and its spans exported to the sink.
    pub fn filter3_traced(&self) -> Vec<Call> {
        vec![Call {
            addr: self.addr("graph3-traced"),
            path: PREDICTIONS.into(),
        }]
    }
    /// (c) filter side: the 1-node graph.
    pub fn filter1(&self) -> Vec<Call> {
        vec![Call {
            addr: self.addr("graph1"),
            path: PREDICTIONS.into(),
        }]
    }
    /// (c) direct side: a plain route to the same `m` server.
    pub fn direct1(&self) -> Vec<Call> {
        vec![Call {
            addr: self.addr("direct-m"),
            path: "/predict".into(),
        }]
    }

    /// Forgets what the nodes recorded (`testmodel` keeps every call), so memory stays flat.
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
        [("tin", 1001), ("m", 1002), ("out", 1003)]
            .into_iter()
            .map(|(n, p)| (n.to_string(), p))
            .collect()
    }

    #[test]
    fn both_graphs_compile_against_the_three_servers() {
        let c = filter_config(GRAPH3_YAML, &ports()).unwrap();
        assert_eq!(c.nodes.len(), 3);
        assert_eq!(c.nodes["m"].port, 1002);
        let c1 = filter_config(GRAPH1_YAML, &ports()).unwrap();
        assert_eq!(c1.nodes.keys().collect::<Vec<_>>(), ["m"]);
    }

    #[test]
    fn a_node_without_a_server_is_an_error() {
        let mut p = ports();
        p.remove("out");
        assert!(filter_config(GRAPH3_YAML, &p).unwrap_err().contains("out"));
    }

    #[test]
    fn envoy_config_has_one_graph_listener_per_graph_and_a_route_per_node() {
        let mut next = 2000;
        let c = envoy_config(
            1999,
            "/f.wasm".into(),
            &ports(),
            &traced(3999, 2048),
            3999,
            &mut || {
                next += 1;
                Ok(next)
            },
        )
        .unwrap();
        let names: Vec<_> = c.listeners.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "graph3",
                "graph3-traced",
                "graph1",
                "direct-m",
                "direct-out",
                "direct-tin"
            ]
        );
        let clusters: Vec<_> = c.clusters.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(clusters, ["otlp-sink", "m", "out", "tin"]);
        assert_eq!(c.clusters[0].port, 3999);
        assert!(c.check().is_ok());
    }

    /// `(vm_id, plugin config)` of a graph listener.
    fn graph(c: &EnvoyConfig, name: &str) -> (String, FilterConfig) {
        match &c.listener(name).unwrap().kind {
            ListenerKind::Graph {
                plugin_config_json,
                vm_id,
                ..
            } => (
                vm_id.clone(),
                FilterConfig::from_json(plugin_config_json.as_bytes()).unwrap(),
            ),
            other => panic!("{name} is not a graph listener: {other:?}"),
        }
    }

    #[test]
    fn the_traced_queue_is_the_filters_default_unless_asked() {
        assert_eq!(default_trace_queue_spans(), 2048);
        let t = traced(3999, 16384);
        assert_eq!((t.max_queue_spans, t.sample_ratio), (16384, 1.0));
        assert_eq!(t.flush_interval_ms, 1000);
    }

    #[test]
    fn only_graph3_traced_traces_every_request_to_the_sink_in_its_own_vm() {
        let mut next = 2000;
        let c = envoy_config(
            1999,
            "/f.wasm".into(),
            &ports(),
            &traced(3999, 2048),
            3999,
            &mut || {
                next += 1;
                Ok(next)
            },
        )
        .unwrap();
        let (vm, traced_fc) = graph(&c, "graph3-traced");
        assert_eq!(vm, TRACED_VM_ID);
        let t = traced_fc.tracing.clone().unwrap();
        assert_eq!(t.cluster, "otlp-sink");
        assert_eq!(t.authority, "127.0.0.1:3999");
        assert_eq!(t.sample_ratio, 1.0);
        assert_eq!(
            (t.flush_interval_ms, t.batch_spans, t.max_queue_spans),
            (1000, 512, 2048)
        );
        let (vm3, fc3) = graph(&c, "graph3");
        assert_eq!(vm3, "seldon");
        assert_eq!(fc3.tracing, None);
        assert_eq!(fc3.graph, traced_fc.graph, "same graph on both sides");
        assert_eq!(fc3.nodes, traced_fc.nodes);
        assert_eq!(graph(&c, "graph1").1.tracing, None);
    }
}
