//! A graph under test: `testmodel` nodes, and a real Envoy whose `graph` listener runs the
//! built filter with a `FilterConfig` for them. Used by the end-to-end tests and the benchmark.

use std::collections::BTreeMap;
use std::path::PathBuf;

use seldon_envoy::{
    Cluster, Envoy, EnvoyConfig, EnvoyOptions, GatewayRoute, Listener, ListenerKind,
    WeightedCluster,
};
use seldon_graph::{FilterConfig, NodeUpstream, PredictiveUnit, Protocol, Transport};

use crate::{HarnessError, TestModel, TestModelSpec};

/// Env var naming the filter module; default `<target>/wasm32-wasip1/release/seldon_filter.wasm`.
pub const FILTER_WASM_ENV: &str = "SELDON_FILTER_WASM";

/// Name of the listener running the filter.
pub const GRAPH_LISTENER: &str = "graph";

/// Name of the gateway listener in front of it ([`GraphSpec::gateway`]).
pub const GATEWAY_LISTENER: &str = "gateway";

/// The gateway's prefix for the graph (local mode's and Istio's `/seldon/<ns>/<sdep>/`).
pub const GATEWAY_PREFIX: &str = "/seldon/default/sdep/";

/// What to start.
#[derive(Debug, Clone)]
pub struct GraphSpec {
    /// The predictor's graph, as Seldon YAML.
    pub graph_yaml: String,
    pub protocol: Protocol,
    /// Processes to run; a graph node without one points at a port where nothing listens.
    pub nodes: Vec<TestModelSpec>,
    pub body_limit_bytes: u64,
    pub timeout_ms: u64,
    /// Envoy worker threads.
    pub concurrency: u32,
    /// A process that receives payload logs (the config's `payloadLogger`).
    pub payload_logger: Option<TestModelSpec>,
    /// Header-trap fix 1 on or off (Istio's WasmPlugin cannot set it: off is the mesh case).
    pub allow_on_headers_stop_iteration: bool,
    /// The config's `tracing`, and the port on 127.0.0.1 of the OTLP/HTTP receiver its
    /// `cluster` points at.
    pub tracing: Option<(seldon_graph::Tracing, u16)>,
    /// A gateway listener in front of the graph listener, as local mode's: [`GATEWAY_PREFIX`]
    /// rewritten to `/`, route timeout derived from the graph
    /// (`seldon_executor::route_timeout_ms`), Envoy's local replies as JSON.
    pub gateway: bool,
    /// Nodes called over gRPC (`transport: grpc`, an HTTP/2 cluster); testmodel serves both.
    pub grpc_nodes: Vec<String>,
}

impl GraphSpec {
    pub fn new(graph_yaml: &str, nodes: Vec<TestModelSpec>) -> Self {
        Self {
            graph_yaml: graph_yaml.to_string(),
            protocol: Protocol::Seldon,
            nodes,
            body_limit_bytes: 1024 * 1024,
            timeout_ms: 2_000,
            concurrency: 2,
            payload_logger: None,
            allow_on_headers_stop_iteration: true,
            tracing: None,
            gateway: false,
            grpc_nodes: Vec::new(),
        }
    }
}

/// Running nodes and Envoy; everything stops on drop.
#[derive(Debug)]
pub struct GraphUnderTest {
    pub envoy: Envoy,
    pub nodes: BTreeMap<String, TestModel>,
    pub config: FilterConfig,
    /// `http://127.0.0.1:<port>` of the graph listener.
    pub url: String,
    /// `http://127.0.0.1:<port>/seldon/default/sdep` of the gateway, when the spec has one.
    pub gateway_url: Option<String>,
    _dir: tempfile::TempDir,
}

/// The built filter module.
pub fn filter_wasm() -> Result<PathBuf, HarnessError> {
    let path = match std::env::var_os(FILTER_WASM_ENV) {
        Some(p) => PathBuf::from(p),
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
            target.join("wasm32-wasip1/release/seldon_filter.wasm")
        }
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(HarnessError::FilterNotBuilt(path))
    }
}

impl GraphUnderTest {
    pub async fn start(spec: GraphSpec) -> Result<Self, HarnessError> {
        let graph: PredictiveUnit = serde_yaml::from_str(&spec.graph_yaml)
            .map_err(|e| HarnessError::Spec(e.to_string()))?;
        let mut nodes = BTreeMap::new();
        for node_spec in &spec.nodes {
            nodes.insert(node_spec.name.clone(), TestModel::spawn(node_spec).await?);
        }
        let mut clusters = Vec::new();
        let mut upstreams = BTreeMap::new();
        for unit in graph.walk() {
            let port = match nodes.get(&unit.name) {
                Some(model) => model.port(),
                // "node down": a port that was free a moment ago, nothing listens there
                None => seldon_envoy::free_port()?,
            };
            let grpc = spec.grpc_nodes.contains(&unit.name);
            let mut cluster = Cluster::http1(unit.name.clone(), "127.0.0.1", port);
            cluster.http2 = grpc;
            clusters.push(cluster);
            upstreams.insert(
                unit.name.clone(),
                NodeUpstream {
                    cluster: unit.name.clone(),
                    authority: format!("{}:{port}", unit.name),
                    port,
                    transport: if grpc {
                        Transport::Grpc
                    } else {
                        Transport::Rest
                    },
                    protocol: None,
                    timeout_ms: spec.timeout_ms,
                },
            );
        }
        let mut payload_logger = None;
        if let Some(logger_spec) = &spec.payload_logger {
            let logger = TestModel::spawn(logger_spec).await?;
            clusters.push(logger.cluster());
            payload_logger = Some(seldon_graph::PayloadLogger {
                cluster: logger.name().to_string(),
                authority: format!("{}:{}", logger.name(), logger.port()),
                path: "/".into(),
                timeout_ms: spec.timeout_ms,
            });
            nodes.insert(logger.name().to_string(), logger);
        }
        let mut tracing = None;
        if let Some((t, port)) = &spec.tracing {
            clusters.push(Cluster::http1(t.cluster.clone(), "127.0.0.1", *port));
            tracing = Some(t.clone());
        }
        let config = FilterConfig {
            deployment: "sdep".into(),
            namespace: "default".into(),
            predictor: "default".into(),
            protocol: spec.protocol,
            graph,
            nodes: upstreams,
            body_limit_bytes: spec.body_limit_bytes,
            payload_logger,
            tracing,
        };
        let plan = seldon_graph::compile(&config).map_err(|e| HarnessError::Spec(e.to_string()))?;

        let mut envoy_config = EnvoyConfig::new(seldon_envoy::free_port()?);
        envoy_config.allow_on_headers_stop_iteration = spec.allow_on_headers_stop_iteration;
        // Envoy's own limit sits above the filter's so the filter answers first, with JSON.
        envoy_config.buffer_limit_bytes =
            u32::try_from(spec.body_limit_bytes.saturating_mul(2).max(65_536)).unwrap_or(u32::MAX);
        let graph_port = seldon_envoy::free_port()?;
        if spec.gateway {
            clusters.push(Cluster::http1(GRAPH_LISTENER, "127.0.0.1", graph_port));
            envoy_config.listeners.push(Listener {
                name: GATEWAY_LISTENER.into(),
                port: seldon_envoy::free_port()?,
                kind: ListenerKind::Gateway {
                    routes: vec![GatewayRoute {
                        prefix: GATEWAY_PREFIX.into(),
                        rewrite: Some("/".into()),
                        clusters: vec![WeightedCluster {
                            cluster: GRAPH_LISTENER.into(),
                            weight: 1,
                        }],
                        mirror: None,
                        timeout: Some(std::time::Duration::from_millis(
                            seldon_executor::route_timeout_ms([&plan], None),
                        )),
                    }],
                },
            });
        }
        envoy_config.listeners.push(Listener {
            name: GRAPH_LISTENER.into(),
            port: graph_port,
            kind: ListenerKind::Graph {
                wasm_path: filter_wasm()?,
                plugin_config_json: config.to_json(),
                vm_id: "seldon".into(),
            },
        });
        envoy_config.clusters = clusters;
        Self::with_envoy(envoy_config, nodes, config, spec.concurrency).await
    }

    /// Starts Envoy from an already built config (validated with `envoy --mode validate` first).
    pub async fn with_envoy(
        envoy_config: EnvoyConfig,
        nodes: BTreeMap<String, TestModel>,
        config: FilterConfig,
        concurrency: u32,
    ) -> Result<Self, HarnessError> {
        let dir = tempfile::tempdir().map_err(|e| HarnessError::Spec(e.to_string()))?;
        let yaml_path = dir.path().join("validate.yaml");
        std::fs::write(&yaml_path, seldon_envoy::render(&envoy_config)?)
            .map_err(|e| HarnessError::Spec(e.to_string()))?;
        seldon_envoy::validate(&yaml_path)?;
        let options = EnvoyOptions {
            concurrency,
            ..EnvoyOptions::default()
        };
        let envoy = Envoy::start_with(envoy_config, dir.path(), &options).await?;
        let url = envoy.listener_url(GRAPH_LISTENER)?;
        let gateway_url = match envoy.listener_url(GATEWAY_LISTENER) {
            Ok(u) => Some(format!("{u}{}", GATEWAY_PREFIX.trim_end_matches('/'))),
            Err(_) => None,
        };
        Ok(Self {
            envoy,
            nodes,
            config,
            url,
            gateway_url,
            _dir: dir,
        })
    }

    /// The node process called `name`.
    pub fn node(&self, name: &str) -> &TestModel {
        match self.nodes.get(name) {
            Some(n) => n,
            None => panic!("no node process called {name}"),
        }
    }
}
