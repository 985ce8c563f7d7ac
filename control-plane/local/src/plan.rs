//! `plan`: what local mode runs for a SeldonDeployment, decided without touching the machine.
//!
//! Per predictor: one process per graph node that the filter calls, a graph listener running
//! the filter with the predictor's `FilterConfig` (the same one the operator renders, with
//! local cluster names), and one gateway listener that plays the ingress role: the
//! `/seldon/<ns>/<sdep>/` prefix, traffic weights and the shadow mirror.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use seldon_crd::SeldonDeployment;
use seldon_envoy::{
    Cluster, EnvoyConfig, GatewayRoute, Listener, ListenerKind, Mirror, WeightedCluster,
};
use seldon_graph::{
    FilterConfig, Implementation, NodeUpstream, PayloadLogger, PredictiveUnit, Tracing,
};
use seldon_render::{Context, Predictor, RenderOptions};

use crate::otlp::OtlpEndpoint;
use crate::payload_logs::LogTarget;

use crate::LocalError;

/// Where local mode finds its parts, and what the user told it.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Port of the gateway listener (the ingress role).
    pub gateway_port: u16,
    /// `seldon-server`, which serves every prepackaged implementation.
    pub server_bin: PathBuf,
    /// The filter module.
    pub filter_wasm: PathBuf,
    /// Commands for custom nodes, by node name (`--run node=command`); run with `sh -c`
    /// (a single simple command is `exec`'d, see [`shell_line`]).
    pub commands: BTreeMap<String, String>,
    /// Directory relative `modelUri`s are resolved against (the manifest's folder).
    pub base_dir: PathBuf,
    /// The OTLP/HTTP collector the filter exports spans to (`--otlp-endpoint`); `None`: no
    /// spans (trace headers are still forwarded to the nodes).
    pub otlp: Option<OtlpEndpoint>,
    /// Where the payload logs of nodes with a `logger` go (`--logger-url`, else `up`'s sink);
    /// `None`: a graph with a `logger` is refused.
    pub payload_logs: Option<LogTarget>,
    /// Port of the Swagger UI server on 127.0.0.1 (`crate::apidocs`); `Some` routes
    /// `<prefix>api/v1.0/doc` on the gateway to it.
    pub docs_port: Option<u16>,
}

/// One node process.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeProcess {
    pub predictor: String,
    pub node: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The `PREDICTIVE_UNIT_*` variables the operator would set, with local ports.
    pub env: Vec<(String, String)>,
    pub http_port: u16,
    /// A remote `modelUri` (`s3://`, `gs://`, `az://`, `https://`…): `up` fetches it into
    /// the model cache and sets `SELDON_MODEL_URI` to its folder (`crate::models`).
    pub model: Option<crate::models::RemoteModel>,
}

/// Everything to start.
#[derive(Debug, Clone)]
pub struct LocalPlan {
    pub processes: Vec<NodeProcess>,
    pub envoy: EnvoyConfig,
    /// Per predictor: name, its FilterConfig, its graph listener's port.
    pub predictors: Vec<(String, FilterConfig, u16)>,
    /// `/seldon/<ns>/<sdep>/` on the gateway.
    pub prefix: String,
}

/// Builds the plan; `port` hands out free ports (injected so this stays pure).
pub fn plan(
    sdep: &SeldonDeployment,
    opts: &LocalOptions,
    port: &mut dyn FnMut() -> Result<u16, LocalError>,
) -> Result<LocalPlan, LocalError> {
    plan_next(sdep, opts, port, None)
}

/// [`plan`] for a manifest that changed while `previous` runs: a node whose process is the
/// same apart from its ports keeps the previous process and ports (so it is not restarted),
/// and so do the admin port and each predictor's graph listener (Envoy updates a listener
/// in place only on the same address).
pub fn plan_next(
    sdep: &SeldonDeployment,
    opts: &LocalOptions,
    port: &mut dyn FnMut() -> Result<u16, LocalError>,
    previous: Option<&LocalPlan>,
) -> Result<LocalPlan, LocalError> {
    let problems = seldon_render::check(sdep, &RenderOptions::default());
    if !problems.is_empty() {
        let text: Vec<String> = problems
            .iter()
            .map(|v| format!("{}: {}", v.path, v.message))
            .collect();
        return Err(LocalError::Invalid(text.join("\n")));
    }
    // Explainers are rendered for the cluster only (issue 10): refused here, not run without.
    if let Some(i) = sdep.spec.predictors.iter().position(|p| {
        p.explainer
            .as_ref()
            .is_some_and(seldon_crd::v1_compat::explainer_requested)
    }) {
        return Err(LocalError::Invalid(format!(
            "spec.predictors[{i}].explainer: local mode does not run explainers (the Alibi \
             explain server is a Python image of Seldon's, not a local program); remove the \
             explainer to run the predictor locally — `seldon-mesh render` and the operator \
             deploy it in the cluster"
        )));
    }
    let cx = Context::new(sdep);
    let admin_port = match previous {
        Some(p) => p.envoy.admin_port,
        None => port()?,
    };
    let mut envoy = EnvoyConfig::new(admin_port);
    let mut processes = Vec::new();
    let mut predictors = Vec::new();
    let mut weighted = Vec::new();
    let mut mirror = None;
    let mut logs_used = false;

    for (index, spec) in cx.sdep.spec.predictors.iter().enumerate() {
        let predictor = Predictor::new(&cx, index, spec);
        let mut config = seldon_render::filter_config(&cx, &predictor, &RenderOptions::default());
        // the manifest's logger URL names a broker in the cluster; here it is --logger-url or
        // up's sink (payload_logs module)
        config.payload_logger = match (config.payload_logger.take(), &opts.payload_logs) {
            (None, _) => None,
            (Some(l), Some(to)) => {
                logs_used = true;
                Some(PayloadLogger {
                    cluster: crate::payload_logs::CLUSTER.into(),
                    authority: to.authority(),
                    path: to.path.clone(),
                    ..l
                })
            }
            (Some(_), None) => {
                return Err(LocalError::Invalid(format!(
                    "predictor {}: a node has a logger, and no payload-log destination was given",
                    spec.name
                )));
            }
        };
        let called = seldon_graph::compile(&config)
            .map_err(|e| LocalError::Invalid(format!("predictor {}: {e}", spec.name)))?;
        let mut local_nodes = BTreeMap::new();
        for (name, upstream) in &config.nodes {
            // RANDOM_ABTEST and friends are decided in the filter: no process.
            if !called
                .find(name)
                .is_some_and(|id| called.nodes[id].is_remote())
            {
                continue;
            }
            let unit = find(&spec.graph, name)
                .ok_or_else(|| LocalError::Invalid(format!("no node {name}")))?;
            let mut process = node_process(&cx, &spec.name, unit, port()?, opts, port)?;
            if let Some(same) = previous
                .into_iter()
                .flat_map(|p| &p.processes)
                .find(|p| same_but_ports(p, &process))
            {
                process = same.clone();
            }
            let http_port = process.http_port;
            let cluster = format!("{}.{}", spec.name, name);
            envoy
                .clusters
                .push(Cluster::http1(cluster.clone(), "127.0.0.1", http_port));
            local_nodes.insert(
                name.clone(),
                NodeUpstream {
                    cluster,
                    authority: format!("127.0.0.1:{http_port}"),
                    port: http_port,
                    ..upstream.clone()
                },
            );
            processes.push(process);
        }
        config.nodes = local_nodes;
        config.tracing = opts
            .otlp
            .as_ref()
            .map(|o| tracing(o, &predictor.service, &cx.namespace));
        seldon_graph::compile(&config)
            .map_err(|e| LocalError::Invalid(format!("predictor {}: {e}", spec.name)))?;

        let graph_port = match previous
            .into_iter()
            .flat_map(|p| &p.predictors)
            .find(|(name, _, _)| *name == spec.name)
        {
            Some((_, _, port)) => *port,
            None => port()?,
        };
        envoy.listeners.push(Listener {
            name: format!("predictor-{}", spec.name),
            port: graph_port,
            kind: ListenerKind::Graph {
                wasm_path: opts.filter_wasm.clone(),
                plugin_config_json: config.to_json(),
                vm_id: "seldon-graph".into(),
            },
        });
        let cluster = format!("predictor-{}", spec.name);
        envoy
            .clusters
            .push(Cluster::http1(cluster.clone(), "127.0.0.1", graph_port));
        let traffic = u32::try_from(spec.traffic.unwrap_or(0).max(0)).unwrap_or(0);
        if spec.is_shadow() {
            let percent = if traffic == 0 {
                100.0
            } else {
                f64::from(traffic)
            };
            mirror = Some(Mirror { cluster, percent });
        } else {
            weighted.push(WeightedCluster {
                cluster,
                weight: traffic,
            });
        }
        let buffer = u32::try_from(config.body_limit_bytes.saturating_mul(2)).unwrap_or(u32::MAX);
        envoy.buffer_limit_bytes = envoy.buffer_limit_bytes.max(buffer);
        predictors.push((spec.name.clone(), config, graph_port));
    }
    // One predictor without `traffic` takes it all, as in Seldon.
    if weighted.iter().all(|w| w.weight == 0) {
        for w in &mut weighted {
            w.weight = 1;
        }
    }
    if let Some(to) = opts.payload_logs.as_ref().filter(|_| logs_used) {
        envoy.clusters.push(Cluster::http1(
            crate::payload_logs::CLUSTER,
            to.host.clone(),
            to.port,
        ));
    }
    if let Some(otlp) = &opts.otlp {
        envoy.clusters.push(Cluster::http1(
            crate::otlp::CLUSTER,
            otlp.host.clone(),
            otlp.port,
        ));
    }
    let prefix = format!("/seldon/{}/{}/", cx.namespace, cx.name);
    envoy.listeners.push(Listener {
        name: "gateway".into(),
        port: opts.gateway_port,
        kind: ListenerKind::Gateway {
            routes: vec![GatewayRoute {
                prefix: prefix.clone(),
                rewrite: Some("/".into()),
                clusters: weighted,
                mirror,
                // Derived from the graphs, as the rendered VirtualService's (never Envoy's
                // 15 s default): the filter's JSON 504 naming the late node always comes first.
                timeout: Some(std::time::Duration::from_millis(
                    seldon_render::virtual_service::route_timeout_ms(
                        &cx,
                        &RenderOptions::default(),
                    ),
                )),
            }],
        },
    });
    if let Some(port) = opts.docs_port {
        crate::apidocs::doc_route(&mut envoy, &prefix, port);
    }
    Ok(LocalPlan {
        processes,
        envoy,
        predictors,
        prefix,
    })
}

/// The filter's tracing config for the collector `otlp`: spans of predictor Service `service`
/// are exported as `service.name` `<service>.<namespace>`, the way Istio names a workload's
/// spans (`<app>.<namespace>`), so a local trace reads like one from the mesh.
fn tracing(otlp: &OtlpEndpoint, service: &str, namespace: &str) -> Tracing {
    Tracing {
        path: otlp.path.clone(),
        service_name: format!("{service}.{namespace}"),
        ..Tracing::new(crate::otlp::CLUSTER, otlp.authority())
    }
}

/// The ports a node process is given (`PREDICTIVE_UNIT_*_PORT`).
const PORT_VARS: [&str; 3] = [
    "PREDICTIVE_UNIT_HTTP_SERVICE_PORT",
    "PREDICTIVE_UNIT_GRPC_SERVICE_PORT",
    "PREDICTIVE_UNIT_METRICS_SERVICE_PORT",
];

/// Same predictor, node, command and environment, ports aside.
fn same_but_ports(a: &NodeProcess, b: &NodeProcess) -> bool {
    let env = |p: &NodeProcess| -> Vec<(String, String)> {
        p.env
            .iter()
            .filter(|(k, _)| !PORT_VARS.contains(&k.as_str()))
            .cloned()
            .collect()
    };
    a.predictor == b.predictor
        && a.node == b.node
        && a.program == b.program
        && a.args == b.args
        && env(a) == env(b)
}

fn find<'a>(graph: &'a PredictiveUnit, name: &str) -> Option<&'a PredictiveUnit> {
    graph.walk().into_iter().find(|u| u.name == name)
}

/// How one node runs: the user's command, else `seldon-server` for a prepackaged server.
fn node_process(
    cx: &Context,
    predictor: &str,
    unit: &PredictiveUnit,
    http_port: u16,
    opts: &LocalOptions,
    port: &mut dyn FnMut() -> Result<u16, LocalError>,
) -> Result<NodeProcess, LocalError> {
    let parameters = serde_json::to_string(&unit.parameters).unwrap_or_else(|_| "[]".into());
    let mut env = vec![
        (
            "PREDICTIVE_UNIT_HTTP_SERVICE_PORT".to_string(),
            http_port.to_string(),
        ),
        (
            "PREDICTIVE_UNIT_GRPC_SERVICE_PORT".to_string(),
            port()?.to_string(),
        ),
        (
            "PREDICTIVE_UNIT_METRICS_SERVICE_PORT".to_string(),
            port()?.to_string(),
        ),
        (
            "PREDICTIVE_UNIT_METRICS_ENDPOINT".to_string(),
            "/prometheus".to_string(),
        ),
        ("PREDICTIVE_UNIT_ID".to_string(), unit.name.clone()),
        ("PREDICTIVE_UNIT_PARAMETERS".to_string(), parameters),
        ("PREDICTOR_ID".to_string(), predictor.to_string()),
        ("SELDON_DEPLOYMENT_ID".to_string(), cx.name.clone()),
    ];
    // The collector the filter exports to also takes the nodes' own SERVER spans
    // (seldon-server, the SDK and the Python wrapper read the OpenTelemetry variable; the
    // service name defaults to PREDICTIVE_UNIT_ID, the node's name).
    if let Some(otlp) = &opts.otlp {
        env.push(("OTEL_EXPORTER_OTLP_ENDPOINT".to_string(), otlp.base_url()));
    }
    let mut model = None;
    let (program, args) = if let Some(command) = opts.commands.get(&unit.name) {
        (
            PathBuf::from("sh"),
            vec!["-c".to_string(), shell_line(command)],
        )
    } else if let Some(Implementation::Prepackaged(key)) = &unit.implementation {
        let uri = unit.model_uri.as_deref().unwrap_or_default();
        env.push(("SELDON_IMPLEMENTATION".into(), key.clone()));
        if crate::models::is_remote(uri) {
            model = Some(crate::models::RemoteModel {
                uri: uri.to_string(),
                implementation: key.clone(),
            });
        } else {
            let dir = local_model_dir(uri, &opts.base_dir);
            env.push(("SELDON_MODEL_URI".into(), dir.display().to_string()));
        }
        (opts.server_bin.clone(), Vec::new())
    } else {
        return Err(LocalError::NoCommand {
            node: unit.name.clone(),
        });
    };
    Ok(NodeProcess {
        predictor: predictor.to_string(),
        node: unit.name.clone(),
        program,
        args,
        env,
        http_port,
        model,
    })
}

/// `file://…` or a plain path (relative ones against `base`; none: `base`).
fn local_model_dir(uri: &str, base: &Path) -> PathBuf {
    let path = Path::new(uri.strip_prefix("file://").unwrap_or(uri));
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

/// The `sh -c` line for a user's command: a single simple command is prefixed with `exec`,
/// so the shell is replaced by it and the parent-death signal (seldon-supervise) reaches the
/// node itself; a compound line (`;`, `&&`, pipes, subshells, redirections, or an explicit
/// `exec`) runs as written, and its processes are stopped with the process group.
pub fn shell_line(command: &str) -> String {
    let line = command.trim();
    let compound = line
        .chars()
        .any(|c| matches!(c, ';' | '&' | '|' | '(' | ')' | '<' | '>' | '`' | '\n'))
        || line.contains("$(");
    if compound || line.is_empty() || line.starts_with("exec ") {
        line.to_string()
    } else {
        format!("exec {line}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdep(yaml: &str) -> SeldonDeployment {
        seldon_crd::parse_yaml(yaml).unwrap().remove(0).sdep
    }

    fn opts() -> LocalOptions {
        LocalOptions {
            gateway_port: 8000,
            server_bin: "/bin/seldon-server".into(),
            filter_wasm: "/f.wasm".into(),
            commands: BTreeMap::from([("tin".to_string(), "python tin.py".to_string())]),
            base_dir: "/samples".into(),
            otlp: None,
            payload_logs: None,
            docs_port: None,
        }
    }

    fn ports() -> impl FnMut() -> Result<u16, LocalError> {
        let mut next = 20000;
        move || {
            next += 1;
            Ok(next)
        }
    }

    const TWO_PREDICTORS: &str = r#"
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: iris, namespace: ns}
spec:
  predictors:
  - name: main
    traffic: 75
    graph:
      name: tin
      type: TRANSFORMER
      children:
      - {name: clf, implementation: XGBOOST_SERVER, modelUri: models/xgb}
    componentSpecs: [{spec: {containers: [{name: tin, image: me/tin:1}]}}]
  - name: canary
    traffic: 25
    graph: {name: clf2, implementation: LIGHTGBM_SERVER, modelUri: "file:///abs/lgb"}
  - name: shadow
    shadow: true
    graph: {name: clf3, implementation: XGBOOST_SERVER, modelUri: "file:///abs/xgb"}
"#;

    #[test]
    fn predictors_become_graph_listeners_behind_one_gateway() {
        let plan = plan(&sdep(TWO_PREDICTORS), &opts(), &mut ports()).unwrap();
        assert_eq!(plan.prefix, "/seldon/ns/iris/");
        let gateway = plan.envoy.listener("gateway").unwrap();
        let ListenerKind::Gateway { routes } = &gateway.kind else {
            panic!("not a gateway")
        };
        let weights: Vec<(&str, u32)> = routes[0]
            .clusters
            .iter()
            .map(|w| (w.cluster.as_str(), w.weight))
            .collect();
        assert_eq!(weights, [("predictor-main", 75), ("predictor-canary", 25)]);
        let mirror = routes[0].mirror.as_ref().unwrap();
        assert_eq!(
            (mirror.cluster.as_str(), mirror.percent),
            ("predictor-shadow", 100.0)
        );
        assert_eq!(plan.predictors.len(), 3);
        let (_, main, _) = &plan.predictors[0];
        assert_eq!(main.nodes["clf"].cluster, "main.clf");
        assert!(main.nodes["clf"].authority.starts_with("127.0.0.1:"));
        seldon_graph::compile(main).unwrap();
    }

    #[test]
    fn an_otlp_endpoint_turns_tracing_on_in_every_predictor() {
        let off = plan(&sdep(TWO_PREDICTORS), &opts(), &mut ports()).unwrap();
        assert!(off.predictors.iter().all(|(_, c, _)| c.tracing.is_none()));
        assert!(
            off.envoy
                .clusters
                .iter()
                .all(|c| c.name != "otlp-collector")
        );

        let mut o = opts();
        o.otlp = Some(OtlpEndpoint::parse("http://127.0.0.1:4318").unwrap());
        let on = plan(&sdep(TWO_PREDICTORS), &o, &mut ports()).unwrap();
        let collector = on
            .envoy
            .clusters
            .iter()
            .find(|c| c.name == "otlp-collector")
            .unwrap();
        assert_eq!(
            (collector.host.as_str(), collector.port),
            ("127.0.0.1", 4318)
        );
        let names: Vec<&str> = on
            .predictors
            .iter()
            .map(|(_, c, _)| c.tracing.as_ref().unwrap().service_name.as_str())
            .collect();
        assert_eq!(names, ["iris-main.ns", "iris-canary.ns", "iris-shadow.ns"]);
        let (_, main, _) = &on.predictors[0];
        let t = main.tracing.as_ref().unwrap();
        assert_eq!(
            (t.cluster.as_str(), t.authority.as_str(), t.path.as_str()),
            ("otlp-collector", "127.0.0.1:4318", "/v1/traces")
        );
        // what the filter parses back
        let back = FilterConfig::from_json(main.to_json().as_bytes()).unwrap();
        assert_eq!(back.tracing.as_ref(), Some(t));
        seldon_graph::compile(&back).unwrap();

        // every node exports its own spans to the same collector; none without one
        let otel = |p: &LocalPlan| -> Vec<Option<String>> {
            p.processes
                .iter()
                .map(|n| {
                    n.env
                        .iter()
                        .find(|(k, _)| k == "OTEL_EXPORTER_OTLP_ENDPOINT")
                        .map(|(_, v)| v.clone())
                })
                .collect()
        };
        assert!(!on.processes.is_empty());
        assert!(
            otel(&on)
                .iter()
                .all(|v| v.as_deref() == Some("http://127.0.0.1:4318")),
            "{:?}",
            otel(&on)
        );
        assert!(otel(&off).iter().all(Option::is_none), "{:?}", otel(&off));
    }

    #[test]
    fn payload_logs_go_to_the_local_destination_not_the_clusters_broker() {
        let yaml = TWO_PREDICTORS.replace(
            "modelUri: models/xgb}",
            "modelUri: models/xgb, logger: {mode: all, url: \"http://default-broker\"}}",
        );
        assert_ne!(yaml, TWO_PREDICTORS);
        // no destination: refused, naming the predictor
        let err = plan(&sdep(&yaml), &opts(), &mut ports()).unwrap_err();
        assert!(
            err.to_string()
                .contains("predictor main: a node has a logger"),
            "{err}"
        );
        let mut o = opts();
        o.payload_logs = Some(LogTarget::sink(7000));
        let p = plan(&sdep(&yaml), &o, &mut ports()).unwrap();
        let logger = p.predictors[0].1.payload_logger.as_ref().unwrap();
        assert_eq!(
            (
                logger.cluster.as_str(),
                logger.authority.as_str(),
                logger.path.as_str()
            ),
            ("payload-logger", "127.0.0.1:7000", "/")
        );
        // the predictors without a logger log nothing
        assert!(p.predictors[1].1.payload_logger.is_none());
        let c = p
            .envoy
            .clusters
            .iter()
            .find(|c| c.name == "payload-logger")
            .unwrap();
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 7000));
        seldon_graph::compile(&p.predictors[0].1).unwrap();
        // a graph without loggers adds no cluster
        let p = plan(&sdep(TWO_PREDICTORS), &o, &mut ports()).unwrap();
        assert!(p.envoy.clusters.iter().all(|c| c.name != "payload-logger"));
    }

    #[test]
    fn a_simple_command_is_execd_and_a_compound_one_runs_as_written() {
        assert_eq!(shell_line(" python tin.py "), "exec python tin.py");
        assert_eq!(shell_line("exec ./srv --port 1"), "exec ./srv --port 1");
        for compound in [
            "cd m && python tin.py",
            "a; b",
            "a | b",
            "srv > out.log",
            "(srv)",
            "echo $(date)",
        ] {
            assert_eq!(shell_line(compound), compound);
        }
        assert_eq!(shell_line(""), "");
    }

    #[test]
    fn nodes_run_the_users_command_or_seldon_server() {
        let plan = plan(&sdep(TWO_PREDICTORS), &opts(), &mut ports()).unwrap();
        let tin = plan.processes.iter().find(|p| p.node == "tin").unwrap();
        assert_eq!(
            (tin.program.to_str().unwrap(), tin.args.as_slice()),
            (
                "sh",
                &["-c".to_string(), "exec python tin.py".to_string()][..]
            )
        );
        let clf = plan.processes.iter().find(|p| p.node == "clf").unwrap();
        assert_eq!(clf.program, PathBuf::from("/bin/seldon-server"));
        let env: BTreeMap<_, _> = clf.env.iter().cloned().collect();
        assert_eq!(env["SELDON_IMPLEMENTATION"], "XGBOOST_SERVER");
        assert_eq!(
            env["SELDON_MODEL_URI"], "/samples/models/xgb",
            "relative modelUri: against the manifest's folder"
        );
        assert_eq!(
            env["PREDICTIVE_UNIT_HTTP_SERVICE_PORT"],
            clf.http_port.to_string()
        );
        assert_eq!(env["PREDICTIVE_UNIT_ID"], "clf");
        let lgb = plan.processes.iter().find(|p| p.node == "clf2").unwrap();
        assert_eq!(
            lgb.env
                .iter()
                .find(|(k, _)| k == "SELDON_MODEL_URI")
                .unwrap()
                .1,
            "/abs/lgb"
        );
    }

    #[test]
    fn a_custom_node_without_a_command_is_explained() {
        let mut o = opts();
        o.commands.clear();
        let err = plan(&sdep(TWO_PREDICTORS), &o, &mut ports()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "node `tin` is a custom container; give its local command with --run tin='<command>'"
        );
    }

    #[test]
    fn remote_models_are_left_to_up_to_fetch() {
        let yaml = TWO_PREDICTORS.replace("models/xgb", "gs://bucket/xgb");
        let p = plan(&sdep(&yaml), &opts(), &mut ports()).unwrap();
        let clf = p.processes.iter().find(|p| p.node == "clf").unwrap();
        assert_eq!(
            clf.model,
            Some(crate::models::RemoteModel {
                uri: "gs://bucket/xgb".into(),
                implementation: "XGBOOST_SERVER".into()
            })
        );
        assert!(
            clf.env.iter().all(|(k, _)| k != "SELDON_MODEL_URI"),
            "set by up once fetched"
        );
        let local = p.processes.iter().find(|p| p.node == "clf2").unwrap();
        assert_eq!(local.model, None);
    }

    #[test]
    fn a_next_plan_keeps_the_ports_of_unchanged_nodes_and_listeners() {
        let first = plan(&sdep(TWO_PREDICTORS), &opts(), &mut ports()).unwrap();
        // clf's parameters change; tin and the canary stay as they were.
        let yaml = TWO_PREDICTORS.replace(
            "modelUri: models/xgb}",
            "modelUri: models/xgb, parameters: [{name: a, value: '1', type: STRING}]}",
        );
        let mut fresh = ports();
        for _ in 0..100 {
            fresh().unwrap(); // the next plan's new ports differ from the first's
        }
        let next = plan_next(&sdep(&yaml), &opts(), &mut fresh, Some(&first)).unwrap();
        let by_node = |p: &LocalPlan, n: &str| p.processes.iter().find(|x| x.node == n).cloned();
        assert_eq!(by_node(&next, "tin"), by_node(&first, "tin"));
        assert_eq!(by_node(&next, "clf2"), by_node(&first, "clf2"));
        let (old_clf, new_clf) = (
            by_node(&first, "clf").unwrap(),
            by_node(&next, "clf").unwrap(),
        );
        assert_ne!(
            old_clf.http_port, new_clf.http_port,
            "a changed node is a new process"
        );
        assert_eq!(next.predictors[0].1.nodes["clf"].port, new_clf.http_port);
        assert_eq!(next.envoy.admin_port, first.envoy.admin_port);
        let graph_ports = |p: &LocalPlan| p.predictors.iter().map(|x| x.2).collect::<Vec<_>>();
        assert_eq!(graph_ports(&next), graph_ports(&first));
        // Without a previous plan every port is new.
        let other = plan_next(&sdep(&yaml), &opts(), &mut fresh, None).unwrap();
        assert_ne!(by_node(&other, "tin"), by_node(&first, "tin"));
    }

    #[test]
    fn an_explainer_is_refused_with_advice() {
        let yaml = TWO_PREDICTORS.replace(
            "  - name: canary\n",
            "  - name: canary\n    explainer: {type: AnchorTabular}\n",
        );
        let err = plan(&sdep(&yaml), &opts(), &mut ports()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("spec.predictors[1].explainer: local mode does not run explainers")
                && text.contains("remove the explainer"),
            "{text}"
        );
        // Seldon's empty serialisation is not an explainer
        let empty = TWO_PREDICTORS.replace(
            "  - name: canary\n",
            "  - name: canary\n    explainer: {containerSpec: {name: ''}}\n",
        );
        assert!(plan(&sdep(&empty), &opts(), &mut ports()).is_ok());
    }

    #[test]
    fn invalid_deployments_are_refused_with_paths() {
        let yaml = TWO_PREDICTORS.replace("traffic: 25", "traffic: 30");
        let err = plan(&sdep(&yaml), &opts(), &mut ports()).unwrap_err();
        assert!(err.to_string().contains("traffic"), "{err}");
    }
}
