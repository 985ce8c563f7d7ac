//! The typed description of a local Envoy: listeners, clusters, limits.
//!
//! Plain data; [`crate::render`] turns it into a bootstrap. [`EnvoyConfig::check`] rejects
//! what Envoy would reject (or, worse, accept and misroute) before Envoy ever sees it.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use crate::ConfigError;

/// Envoy's own default for `per_connection_buffer_limit_bytes` (1 MiB).
pub const DEFAULT_BUFFER_LIMIT_BYTES: u32 = 1024 * 1024;

/// Status of the graph listener's fallback route. A client that sees it got a request past
/// the graph filter to the router, which must never happen (see DESIGN.md, "The header trap").
pub const GRAPH_FALLBACK_STATUS: u16 = 599;

/// Body of the graph listener's fallback route.
pub const GRAPH_FALLBACK_BODY: &str = "seldon-mesh: request reached the router of a graph listener; the graph filter did not answer it";

/// Everything one local Envoy serves.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvoyConfig {
    /// Port of the admin interface on 127.0.0.1 (`/ready`, `/stats`).
    pub admin_port: u16,
    pub listeners: Vec<Listener>,
    pub clusters: Vec<Cluster>,
    /// `per_connection_buffer_limit_bytes` of every listener and cluster, and the graph
    /// listener's buffer filter `max_request_bytes`: a bigger body is answered with 413.
    pub buffer_limit_bytes: u32,
    /// `allow_on_headers_stop_iteration` of graph listeners' wasm filter (header-trap fix 1).
    /// Istio's WasmPlugin cannot set it, so tests also run with `false` to prove that the
    /// buffer filter alone (fix 2) keeps requests from the router.
    pub allow_on_headers_stop_iteration: bool,
}

/// A listener on 127.0.0.1.
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    /// Listener name; also the HTTP connection manager's `stat_prefix`.
    pub name: String,
    pub port: u16,
    pub kind: ListenerKind,
}

/// What a listener does with a request.
#[derive(Debug, Clone, PartialEq)]
pub enum ListenerKind {
    /// The graph filter answers every request: wasm filter → buffer filter → router, whose
    /// only route is a `direct_response` [`GRAPH_FALLBACK_STATUS`] tripwire.
    Graph {
        /// The filter's `.wasm` module.
        wasm_path: PathBuf,
        /// The filter's configuration (a `FilterConfig` as JSON), passed as
        /// `google.protobuf.StringValue`.
        plugin_config_json: String,
        /// Listeners with the same `vm_id` (and module) share one VM per worker.
        vm_id: String,
    },
    /// A plain Envoy route of everything to one cluster (the baseline without the filter).
    Route {
        cluster: String,
        /// Replaces the matched prefix `/`; `None` keeps the path.
        prefix_rewrite: Option<String>,
        /// Route timeout; `None` is Envoy's default (15 s), zero disables it.
        timeout: Option<Duration>,
    },
    /// The ingress role of local mode, like an Istio VirtualService: prefixes, traffic
    /// split and shadow. The first matching route wins.
    Gateway { routes: Vec<GatewayRoute> },
}

/// One route of a [`ListenerKind::Gateway`].
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayRoute {
    /// Path prefix to match, e.g. `/seldon/default/iris/`.
    pub prefix: String,
    /// Replacement for the matched prefix, e.g. `/`.
    pub rewrite: Option<String>,
    /// Traffic split; weights are relative (Istio uses percentages).
    pub clusters: Vec<WeightedCluster>,
    /// Shadow traffic: a copy of the request whose response is discarded.
    pub mirror: Option<Mirror>,
    /// Route timeout; `None` is Envoy's default (15 s), zero disables it.
    pub timeout: Option<Duration>,
}

/// A cluster and its share of a [`GatewayRoute`]'s traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightedCluster {
    pub cluster: String,
    pub weight: u32,
}

/// Mirror (shadow) a share of a route's requests to a cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Mirror {
    pub cluster: String,
    /// 0.0..=100.0, like Istio's `mirrorPercentage.value`.
    pub percent: f64,
}

/// An upstream: one host and port.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// The name routes and the graph filter's callouts use.
    pub name: String,
    /// An IP literal (static cluster) or a DNS name (strict DNS, IPv4 preferred).
    pub host: String,
    pub port: u16,
    pub connect_timeout: Duration,
    /// Speak HTTP/2 (prior knowledge, e.g. gRPC) instead of HTTP/1.1.
    pub http2: bool,
}

impl Cluster {
    /// An HTTP/1.1 cluster with a 1 s connect timeout.
    pub fn http1(name: impl Into<String>, host: impl Into<String>, port: u16) -> Self {
        Self {
            name: name.into(),
            host: host.into(),
            port,
            connect_timeout: Duration::from_secs(1),
            http2: false,
        }
    }
}

impl EnvoyConfig {
    /// A config with no listeners or clusters and Envoy's default buffer limit.
    pub fn new(admin_port: u16) -> Self {
        Self {
            admin_port,
            listeners: Vec::new(),
            clusters: Vec::new(),
            buffer_limit_bytes: DEFAULT_BUFFER_LIMIT_BYTES,
            allow_on_headers_stop_iteration: true,
        }
    }

    /// The listener called `name`.
    pub fn listener(&self, name: &str) -> Option<&Listener> {
        self.listeners.iter().find(|l| l.name == name)
    }

    /// Rejects what would make a broken or misleading bootstrap: duplicate names or ports,
    /// port 0, routes to undeclared clusters, a split with no weight, a mirror share outside
    /// 0..=100, a zero buffer limit.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.buffer_limit_bytes == 0 {
            return Err(ConfigError::ZeroBufferLimit);
        }
        let mut ports = HashSet::new();
        if self.admin_port == 0 {
            return Err(ConfigError::ZeroPort {
                what: "admin".into(),
            });
        }
        ports.insert(self.admin_port);

        let mut clusters = HashSet::new();
        for c in &self.clusters {
            if !clusters.insert(c.name.as_str()) {
                return Err(ConfigError::DuplicateCluster(c.name.clone()));
            }
            if c.port == 0 {
                return Err(ConfigError::ZeroPort {
                    what: format!("cluster {}", c.name),
                });
            }
        }

        let mut names = HashSet::new();
        for l in &self.listeners {
            if !names.insert(l.name.as_str()) {
                return Err(ConfigError::DuplicateListener(l.name.clone()));
            }
            if l.port == 0 {
                return Err(ConfigError::ZeroPort {
                    what: format!("listener {}", l.name),
                });
            }
            if !ports.insert(l.port) {
                return Err(ConfigError::DuplicatePort(l.port));
            }
            let known = |cluster: &str| -> Result<(), ConfigError> {
                if clusters.contains(cluster) {
                    Ok(())
                } else {
                    Err(ConfigError::UnknownCluster {
                        listener: l.name.clone(),
                        cluster: cluster.to_owned(),
                    })
                }
            };
            match &l.kind {
                ListenerKind::Graph { .. } => {}
                ListenerKind::Route { cluster, .. } => known(cluster)?,
                ListenerKind::Gateway { routes } => {
                    if routes.is_empty() {
                        return Err(ConfigError::NoRoutes(l.name.clone()));
                    }
                    for r in routes {
                        for wc in &r.clusters {
                            known(&wc.cluster)?;
                        }
                        if r.clusters
                            .iter()
                            .map(|wc| u64::from(wc.weight))
                            .sum::<u64>()
                            == 0
                        {
                            return Err(ConfigError::NoWeight {
                                listener: l.name.clone(),
                                prefix: r.prefix.clone(),
                            });
                        }
                        if let Some(m) = &r.mirror {
                            known(&m.cluster)?;
                            if !(0.0..=100.0).contains(&m.percent) {
                                return Err(ConfigError::MirrorPercent {
                                    listener: l.name.clone(),
                                    percent: m.percent,
                                });
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
