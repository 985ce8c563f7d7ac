//! `compile`: validates a `FilterConfig` and resolves it into a `Plan`, the flat form the
//! executor walks.
//!
//! Each node's behaviour is resolved once here, following Seldon's executor
//! (`predictor_process.go`):
//!
//! | step            | when                                                        | call                 |
//! |-----------------|-------------------------------------------------------------|----------------------|
//! | input           | MODEL → predict; TRANSFORMER or TRANSFORM_INPUT → transform | `/predict`, `/transform-input` |
//! | route           | ROUTER or ROUTE → remote; RANDOM_ABTEST → in the filter; else all children | `/route` |
//! | aggregate       | COMBINER or AGGREGATE                                       | `/aggregate`         |
//! | output          | OUTPUT_TRANSFORMER or TRANSFORM_OUTPUT                      | `/transform-output`  |
//! | feedback        | MODEL, ROUTER (not RANDOM_ABTEST) or SEND_FEEDBACK; never v2 nodes | `/send-feedback` |
//!
//! Each node also gets its **protocol** (`PredictiveUnit.protocol`, else `nodes.<n>.protocol`,
//! else the deployment's) and its **transport** (`nodes.<n>.transport`, which must agree with
//! `endpoint.type` when that is set). REST and gRPC nodes may be mixed in one graph, and so may
//! Seldon and v2 nodes: `receives` and `returns` say which protocol the payload has where it
//! enters and leaves each node, so the executor knows where to convert
//! (`seldon_protocol::bridge`):
//!
//! * a body sent to a node is converted from its protocol to the node's `protocol`;
//! * a child's answer is converted to its parent's `protocol` before the parent's
//!   `/aggregate` or `/transform-output`, else to the parent's `returns`;
//! * the root's answer (in `root.returns`) is converted to `Plan::protocol` for the client.
//!
//! v2 nodes are called on `/v2/models/<node>/infer` for every step. v2 graphs are model chains
//! that RANDOM_ABTEST may split (decided in the filter, as Seldon's executor decides it); a
//! ROUTER's `/route` and a COMBINER's `/aggregate` have no v2 form and are refused. Feedback is
//! a Seldon protocol call: v2 nodes take none (Seldon's REST client skips it for them).

use std::collections::BTreeMap;

use crate::config::{FilterConfig, NodeUpstream, PayloadLogger, Protocol, Tracing, Transport};
use crate::error::{GraphError, Problem, Rule};
use crate::unit::{
    EndpointType, Implementation, Logger, ParameterType, PredictiveUnit, PredictiveUnitMethod,
    PredictiveUnitType,
};

/// Deepest graph accepted; the executor recurses over it.
pub const MAX_DEPTH: usize = 32;

/// Index of a node in `Plan::nodes`; the root is 0.
pub type NodeId = usize;

/// A validated graph, ready to execute.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub deployment: String,
    pub namespace: String,
    pub predictor: String,
    pub protocol: Protocol,
    /// All nodes, parents before children; `nodes[0]` is the root.
    pub nodes: Vec<PlanNode>,
    pub body_limit_bytes: usize,
    pub payload_logger: Option<PayloadLogger>,
    /// True when some node makes a routing decision, so responses carry `meta.routing`.
    pub routes: bool,
    /// Spans and their export; `None`: tracing is off.
    pub tracing: Option<Tracing>,
}

/// One node with its behaviour resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanNode {
    pub name: String,
    pub unit_type: Option<PredictiveUnitType>,
    pub input: Option<InputStep>,
    pub route: RouteStep,
    pub aggregate: bool,
    pub transform_output: bool,
    pub send_feedback: bool,
    pub children: Vec<NodeId>,
    pub parent: Option<NodeId>,
    /// None for nodes the filter handles alone (RANDOM_ABTEST).
    pub upstream: Option<NodeUpstream>,
    /// Protocol for calls to this node.
    pub protocol: Protocol,
    /// How the filter calls this node (REST for nodes it never calls).
    pub transport: Transport,
    /// Protocol of the payload this node is handed: the entry's for the root, else what its
    /// parent passes down (the parent's `protocol` after its input step, else the parent's
    /// `receives`).
    pub receives: Protocol,
    /// Protocol of what this node hands back: its `protocol` when its last call is its own
    /// (`/predict`, `/transform-input` of a leaf, `/aggregate`, `/transform-output`); else its
    /// children's common `returns`, or — when those differ — the protocol it passed down.
    pub returns: Protocol,
    pub logger: Option<Logger>,
}

impl PlanNode {
    /// Whether payloads change protocol at this node (on the way in or out).
    pub fn bridges(&self) -> bool {
        self.is_remote() && (self.receives != self.protocol || self.returns != self.protocol)
    }
}

/// The first call made on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputStep {
    Predict,
    TransformInput,
}

/// How a node with children picks them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RouteStep {
    /// Every child, in parallel (Seldon's route -1).
    AllChildren,
    /// Ask the node's `/route`.
    Remote,
    /// Child 0 with probability `ratio_a`, else child 1, decided in the filter.
    RandomAbTest { ratio_a: f64 },
}

impl Plan {
    pub fn root(&self) -> &PlanNode {
        &self.nodes[0]
    }

    /// The node called `name`.
    pub fn find(&self, name: &str) -> Option<NodeId> {
        self.nodes.iter().position(|n| n.name == name)
    }
}

impl PlanNode {
    /// Whether the filter ever calls this node.
    pub fn is_remote(&self) -> bool {
        self.upstream.is_some()
    }
}

/// What the executor that runs a plan can do; `compile_with` refuses what it cannot, by node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Calls nodes over gRPC (`transport: grpc`, `endpoint.type: GRPC`).
    pub grpc_nodes: bool,
}

impl Capabilities {
    /// The filter: REST and gRPC node calls (issue 12, item 2; `seldon-executor`'s
    /// `grpc_node.rs` says which calls a gRPC node gets).
    pub const FILTER: Self = Self { grpc_nodes: true };
    /// An executor that calls nodes over REST only (`GrpcUnsupported` for gRPC nodes).
    pub const REST_ONLY: Self = Self { grpc_nodes: false };
    /// Everything the graph model allows.
    pub const ALL: Self = Self { grpc_nodes: true };
}

/// Validates `config` for the filter ([`Capabilities::FILTER`]) and builds its `Plan`; on
/// failure returns every problem found.
pub fn compile(config: &FilterConfig) -> Result<Plan, GraphError> {
    compile_with(config, Capabilities::FILTER)
}

/// [`compile`] for an executor with `capabilities`.
pub fn compile_with(config: &FilterConfig, capabilities: Capabilities) -> Result<Plan, GraphError> {
    let mut cx = Compiler {
        config,
        capabilities,
        problems: Vec::new(),
        seen: BTreeMap::new(),
        nodes: Vec::new(),
    };
    if config.body_limit_bytes == 0 {
        cx.problem(&config.graph.name, "bodyLimitBytes", Rule::ZeroBodyLimit);
    }
    if config.protocol == Protocol::Tensorflow {
        cx.problem(
            &config.graph.name,
            "protocol",
            Rule::ProtocolUnsupported("tensorflow"),
        );
    }
    if let Some(tracing) = &config.tracing {
        cx.tracing(tracing);
    }
    cx.node(&config.graph, "graph".to_string(), None, 1, config.protocol);
    for name in config.nodes.keys() {
        if !cx.seen.contains_key(name) {
            cx.problem(name, &format!("nodes.{name}"), Rule::UnknownUpstream);
        }
    }
    if !cx.problems.is_empty() {
        return Err(GraphError {
            problems: cx.problems,
        });
    }
    let routes = cx
        .nodes
        .iter()
        .any(|n| !n.children.is_empty() && n.route != RouteStep::AllChildren);
    Ok(Plan {
        deployment: config.deployment.clone(),
        namespace: config.namespace.clone(),
        predictor: config.predictor.clone(),
        protocol: config.protocol,
        nodes: cx.nodes,
        body_limit_bytes: usize::try_from(config.body_limit_bytes).unwrap_or(usize::MAX),
        payload_logger: config.payload_logger.clone(),
        routes,
        tracing: config.tracing.clone(),
    })
}

struct Compiler<'a> {
    config: &'a FilterConfig,
    capabilities: Capabilities,
    problems: Vec<Problem>,
    /// node name → path where first seen
    seen: BTreeMap<String, String>,
    nodes: Vec<PlanNode>,
}

impl Compiler<'_> {
    fn tracing(&mut self, t: &Tracing) {
        let root = self.config.graph.name.clone();
        for (field, value) in [
            ("cluster", &t.cluster),
            ("authority", &t.authority),
            ("serviceName", &t.service_name),
        ] {
            if value.trim().is_empty() {
                let path = format!("tracing.{field}");
                self.problem(&root, &path, Rule::EmptyTracingField(field));
            }
        }
        if !t.path.starts_with('/') {
            self.problem(&root, "tracing.path", Rule::BadTracingPath(t.path.clone()));
        }
        if !(0.0..=1.0).contains(&t.sample_ratio) {
            let rule = Rule::BadSampleRatio(t.sample_ratio);
            self.problem(&root, "tracing.sampleRatio", rule);
        }
        for (field, value) in [
            ("maxQueueSpans", u64::from(t.max_queue_spans)),
            ("batchSpans", u64::from(t.batch_spans)),
            ("flushIntervalMs", t.flush_interval_ms),
            ("timeoutMs", t.timeout_ms),
        ] {
            if value == 0 {
                let path = format!("tracing.{field}");
                self.problem(&root, &path, Rule::ZeroTracingField(field));
            }
        }
    }

    fn problem(&mut self, node: &str, path: &str, rule: Rule) {
        self.problems.push(Problem {
            node: node.to_string(),
            path: path.to_string(),
            rule,
        });
    }

    /// Checks one node, pushes its `PlanNode`, then its children; returns its id.
    fn node(
        &mut self,
        unit: &PredictiveUnit,
        path: String,
        parent: Option<NodeId>,
        depth: usize,
        receives: Protocol,
    ) -> NodeId {
        let name = unit.name.as_str();
        if depth > MAX_DEPTH {
            self.problem(name, &path, Rule::TooDeep(MAX_DEPTH));
        }
        if !is_dns_label(name) {
            self.problem(name, &path, Rule::InvalidName(name.to_string()));
        }
        match self.seen.get(name) {
            Some(first) => {
                let first_path = first.clone();
                self.problem(name, &path, Rule::DuplicateName { first_path });
            }
            None => {
                self.seen.insert(name.to_string(), path.clone());
            }
        }

        let unit_type = unit.effective_type();
        if let Some(PredictiveUnitType::Other(t)) = &unit_type {
            self.problem(
                name,
                &format!("{path}.type"),
                Rule::UnknownType(t.clone(), PredictiveUnitType::KNOWN.join(", ")),
            );
        }
        for (i, m) in unit.methods.iter().flatten().enumerate() {
            if let PredictiveUnitMethod::Other(s) = m {
                self.problem(
                    name,
                    &format!("{path}.methods[{i}]"),
                    Rule::UnknownMethod(s.clone(), PredictiveUnitMethod::KNOWN.join(", ")),
                );
            }
        }
        if unit_type == Some(PredictiveUnitType::UnknownType)
            && unit.methods.as_ref().is_none_or(Vec::is_empty)
        {
            self.problem(name, &format!("{path}.methods"), Rule::MethodsRequired);
        }
        self.check_parameters(unit, &path);
        self.check_implementation(unit, &path);
        if let Some(url) = unit.logger.as_ref().and_then(|l| l.url.as_ref())
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            self.problem(
                name,
                &format!("{path}.logger.url"),
                Rule::BadLoggerUrl(url.clone()),
            );
        }
        if unit.logger.is_some() && self.config.payload_logger.is_none() {
            self.problem(name, &format!("{path}.logger"), Rule::NoPayloadLogger);
        }

        let is = |t: PredictiveUnitType| unit_type.as_ref() == Some(&t);
        let abtest = unit.implementation == Some(Implementation::RandomAbtest);
        let input = if is(PredictiveUnitType::Model) {
            Some(InputStep::Predict)
        } else if is(PredictiveUnitType::Transformer)
            || unit.has_method(PredictiveUnitMethod::TransformInput)
        {
            Some(InputStep::TransformInput)
        } else {
            None
        };
        let route = if abtest {
            RouteStep::RandomAbTest {
                ratio_a: self.ratio_a(unit, &path),
            }
        } else if is(PredictiveUnitType::Router) || unit.has_method(PredictiveUnitMethod::Route) {
            RouteStep::Remote
        } else {
            RouteStep::AllChildren
        };
        let aggregate =
            is(PredictiveUnitType::Combiner) || unit.has_method(PredictiveUnitMethod::Aggregate);
        let transform_output = is(PredictiveUnitType::OutputTransformer)
            || unit.has_method(PredictiveUnitMethod::TransformOutput);
        let mut send_feedback = (is(PredictiveUnitType::Model)
            || is(PredictiveUnitType::Router)
            || unit.has_method(PredictiveUnitMethod::SendFeedback))
            && !abtest;

        if route != RouteStep::AllChildren && unit.children.is_empty() {
            self.problem(
                name,
                &format!("{path}.children"),
                Rule::NoChildren("router"),
            );
        }
        if abtest && !unit.children.is_empty() && unit.children.len() != 2 {
            self.problem(
                name,
                &format!("{path}.children"),
                Rule::AbTestChildren(unit.children.len()),
            );
        }
        if aggregate && unit.children.is_empty() {
            self.problem(
                name,
                &format!("{path}.children"),
                Rule::NoChildren("combiner"),
            );
        }

        let remote = input.is_some()
            || route == RouteStep::Remote
            || aggregate
            || transform_output
            || send_feedback;
        let upstream = if remote {
            self.upstream(unit, &path)
        } else {
            None
        };
        let protocol = self.protocol(unit, upstream.as_ref(), &path);
        let transport = upstream.as_ref().map(|u| u.transport).unwrap_or_default();
        if protocol == Protocol::V2 {
            if route == RouteStep::Remote {
                self.problem(name, &path, Rule::NotInV2("a ROUTER's /route"));
            }
            if aggregate {
                self.problem(name, &path, Rule::NotInV2("a COMBINER's /aggregate"));
            }
            send_feedback = false;
        }

        let id = self.nodes.len();
        self.nodes.push(PlanNode {
            name: name.to_string(),
            unit_type,
            input,
            route,
            aggregate,
            transform_output,
            send_feedback,
            children: Vec::new(),
            parent,
            upstream,
            protocol,
            transport,
            receives,
            returns: protocol,
            logger: unit.logger.clone(),
        });
        let passed_down = if input.is_some() { protocol } else { receives };
        let children: Vec<NodeId> = unit
            .children
            .iter()
            .enumerate()
            .map(|(i, child)| {
                let path = format!("{path}.children[{i}]");
                self.node(child, path, Some(id), depth + 1, passed_down)
            })
            .collect();
        // What this node hands back (see `PlanNode::returns`).
        let own_last_call = aggregate || transform_output || children.is_empty();
        let returns = if own_last_call {
            protocol
        } else {
            let mut answers = children.iter().map(|c| self.nodes[*c].returns);
            let first = answers.next().unwrap_or(passed_down);
            if answers.all(|p| p == first) {
                first
            } else {
                passed_down
            }
        };
        self.nodes[id].children = children;
        self.nodes[id].returns = returns;
        id
    }

    /// The node's protocol: its own field, else its upstream's, else the deployment's.
    fn protocol(
        &mut self,
        unit: &PredictiveUnit,
        upstream: Option<&NodeUpstream>,
        path: &str,
    ) -> Protocol {
        let upstream = upstream.and_then(|u| u.protocol);
        if let (Some(node), Some(up)) = (unit.protocol, upstream)
            && node != up
        {
            let rule = Rule::ProtocolConflict {
                node: node.to_string(),
                upstream: up.to_string(),
            };
            self.problem(&unit.name, &format!("{path}.protocol"), rule);
        }
        if unit.protocol == Some(Protocol::Tensorflow) {
            let rule = Rule::ProtocolUnsupported("tensorflow");
            self.problem(&unit.name, &format!("{path}.protocol"), rule);
        }
        unit.protocol.or(upstream).unwrap_or(self.config.protocol)
    }

    fn check_parameters(&mut self, unit: &PredictiveUnit, path: &str) {
        for (i, p) in unit.parameters.iter().enumerate() {
            let ok = match &p.parameter_type {
                ParameterType::Int => p.value.trim().parse::<i64>().is_ok(),
                ParameterType::Float | ParameterType::Double => {
                    p.value.trim().parse::<f64>().is_ok()
                }
                // Seldon's wrapper reads BOOL with strtobool, and its bandit examples write
                // `"1"`; the values our wrapper reads the same way are accepted.
                ParameterType::Bool => matches!(
                    p.value.trim().to_ascii_lowercase().as_str(),
                    "true" | "false" | "1" | "0"
                ),
                ParameterType::String => true,
                ParameterType::Other(_) => false,
            };
            if !ok {
                let rule = Rule::BadParameter {
                    name: p.name.clone(),
                    ty: p.parameter_type.to_string(),
                    value: p.value.clone(),
                };
                self.problem(&unit.name, &format!("{path}.parameters[{i}]"), rule);
            }
        }
    }

    fn check_implementation(&mut self, unit: &PredictiveUnit, path: &str) {
        if let Some(Implementation::Prepackaged(key)) = &unit.implementation
            && key != "HUGGINGFACE_SERVER"
            && unit.model_uri.as_deref().is_none_or(str::is_empty)
        {
            self.problem(
                &unit.name,
                &format!("{path}.modelUri"),
                Rule::ModelUriRequired(key.clone()),
            );
        }
        if let Some(EndpointType::Other(t)) = unit
            .endpoint
            .as_ref()
            .and_then(|e| e.endpoint_type.as_ref())
        {
            let rule = Rule::UnknownEndpointType(t.clone(), EndpointType::KNOWN.join(", "));
            self.problem(&unit.name, &format!("{path}.endpoint.type"), rule);
        }
    }

    fn ratio_a(&mut self, unit: &PredictiveUnit, path: &str) -> f64 {
        let Some(p) = unit.parameter("ratioA") else {
            return 0.5;
        };
        match p.value.trim().parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => r,
            _ => {
                self.problem(
                    &unit.name,
                    &format!("{path}.parameters"),
                    Rule::BadRatio(p.value.clone()),
                );
                0.5
            }
        }
    }

    fn upstream(&mut self, unit: &PredictiveUnit, path: &str) -> Option<NodeUpstream> {
        let name = unit.name.as_str();
        let upath = format!("nodes.{name}");
        let Some(up) = self.config.nodes.get(name) else {
            self.problem(name, path, Rule::MissingUpstream);
            return None;
        };
        if up.cluster.is_empty() {
            self.problem(
                name,
                &format!("{upath}.cluster"),
                Rule::EmptyUpstreamField("cluster"),
            );
        }
        if up.authority.is_empty() {
            self.problem(
                name,
                &format!("{upath}.authority"),
                Rule::EmptyUpstreamField("authority"),
            );
        }
        if up.timeout_ms == 0 {
            self.problem(name, &format!("{upath}.timeoutMs"), Rule::ZeroTimeout);
        }
        // `endpoint.type` is what the user wrote; the upstream is what the renderer resolved
        // (cluster and port). They must agree, or the node would be called on the wrong port.
        let endpoint = unit
            .endpoint
            .as_ref()
            .and_then(|e| e.endpoint_type.as_ref());
        let declared = match endpoint {
            Some(EndpointType::Rest) => Some(Transport::Rest),
            Some(EndpointType::Grpc) => Some(Transport::Grpc),
            _ => None,
        };
        if let (Some(declared), Some(t)) = (declared, endpoint)
            && declared != up.transport
        {
            let rule = Rule::TransportConflict {
                endpoint: t.to_string(),
                upstream: up.transport.to_string(),
            };
            self.problem(name, &format!("{path}.endpoint.type"), rule);
        }
        if up.transport == Transport::Grpc && !self.capabilities.grpc_nodes {
            self.problem(name, &format!("{upath}.transport"), Rule::GrpcUnsupported);
        }
        if up.protocol == Some(Protocol::Tensorflow) {
            self.problem(
                name,
                &format!("{upath}.protocol"),
                Rule::ProtocolUnsupported("tensorflow"),
            );
        }
        Some(up.clone())
    }
}

/// Kubernetes container names are DNS-1123 labels, and Seldon matches nodes to containers by name.
fn is_dns_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config whose nodes all get a local upstream.
    fn config(graph: &str) -> FilterConfig {
        let graph: PredictiveUnit = serde_yaml::from_str(graph).unwrap();
        let mut nodes = BTreeMap::new();
        for n in graph.walk() {
            nodes.insert(
                n.name.clone(),
                NodeUpstream {
                    cluster: format!("node_{}", n.name),
                    authority: n.name.clone(),
                    port: 9000,
                    transport: Transport::Rest,
                    protocol: None,
                    timeout_ms: 1000,
                },
            );
        }
        FilterConfig {
            deployment: "d".into(),
            namespace: "ns".into(),
            predictor: "p".into(),
            protocol: Protocol::Seldon,
            graph,
            nodes,
            body_limit_bytes: 1024,
            payload_logger: None,
            tracing: None,
        }
    }

    fn rules(cfg: &FilterConfig) -> Vec<Rule> {
        compile(cfg)
            .unwrap_err()
            .problems
            .into_iter()
            .map(|p| p.rule)
            .collect()
    }

    #[test]
    fn tracing_is_compiled_into_the_plan() {
        let mut cfg = config("name: m");
        assert_eq!(compile(&cfg).unwrap().tracing, None);
        cfg.tracing = Some(Tracing::new("otlp", "collector:4318"));
        let plan = compile(&cfg).unwrap();
        assert_eq!(plan.tracing, cfg.tracing);
    }

    #[test]
    fn tracing_problems_name_the_field() {
        let mut cfg = config("name: m");
        let mut t = Tracing::new(" ", "");
        t.path = "v1/traces".into();
        t.sample_ratio = 1.5;
        t.service_name = String::new();
        t.max_queue_spans = 0;
        t.batch_spans = 0;
        t.flush_interval_ms = 0;
        t.timeout_ms = 0;
        cfg.tracing = Some(t);
        let err = compile(&cfg).unwrap_err();
        let paths: Vec<&str> = err.problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "tracing.cluster",
                "tracing.authority",
                "tracing.serviceName",
                "tracing.path",
                "tracing.sampleRatio",
                "tracing.maxQueueSpans",
                "tracing.batchSpans",
                "tracing.flushIntervalMs",
                "tracing.timeoutMs",
            ]
        );
        let text = err.to_string();
        assert!(
            text.contains("tracing.sampleRatio must be a number between 0 and 1, got 1.5"),
            "{text}"
        );
        assert!(text.contains("tracing.cluster must not be empty"), "{text}");
        let mut t = Tracing::new("c", "a");
        t.sample_ratio = -0.01;
        cfg.tracing = Some(t);
        assert_eq!(rules(&cfg), [Rule::BadSampleRatio(-0.01)]);
        let mut t = Tracing::new("c", "a");
        t.sample_ratio = f64::NAN;
        cfg.tracing = Some(t);
        assert!(matches!(rules(&cfg)[..], [Rule::BadSampleRatio(_)]));
    }

    #[test]
    fn single_model_predicts_and_takes_feedback() {
        let plan = compile(&config("name: m")).unwrap();
        let root = plan.root();
        assert_eq!(root.input, Some(InputStep::Predict));
        assert!(root.send_feedback);
        assert!(!root.aggregate && !root.transform_output);
        assert!(!plan.routes);
    }

    #[test]
    fn behaviours_resolve_per_seldon_algorithm() {
        let plan = compile(&config(
            r#"
name: out
type: OUTPUT_TRANSFORMER
children:
- name: tin
  type: TRANSFORMER
  children:
  - name: router
    type: ROUTER
    children:
    - {name: a, type: MODEL}
    - name: comb
      type: COMBINER
      children: [{name: b}, {name: c}]
- name: odd
  type: UNKNOWN_TYPE
  methods: [TRANSFORM_INPUT, AGGREGATE]
  children: [{name: e}]
"#,
        ))
        .unwrap();
        let node = |n: &str| &plan.nodes[plan.find(n).unwrap()];
        assert!(node("out").transform_output && node("out").input.is_none());
        assert_eq!(node("tin").input, Some(InputStep::TransformInput));
        assert_eq!(node("router").route, RouteStep::Remote);
        assert!(node("router").send_feedback);
        assert!(node("comb").aggregate && !node("comb").send_feedback);
        assert_eq!(node("odd").input, Some(InputStep::TransformInput));
        assert!(node("odd").aggregate);
        assert_eq!(node("comb").children.len(), 2);
        assert_eq!(node("b").parent, plan.find("comb"));
        assert!(plan.routes);
    }

    #[test]
    fn abtest_is_decided_in_the_filter_without_an_upstream() {
        let mut cfg = config(
            r#"
name: ab
type: ROUTER
implementation: RANDOM_ABTEST
parameters: [{name: ratioA, value: "0.25", type: FLOAT}]
children: [{name: a}, {name: b}]
"#,
        );
        cfg.nodes.remove("ab");
        let plan = compile(&cfg).unwrap();
        assert_eq!(plan.root().route, RouteStep::RandomAbTest { ratio_a: 0.25 });
        assert!(!plan.root().is_remote());
        assert!(!plan.root().send_feedback);
    }

    #[test]
    fn every_problem_is_reported_with_node_and_path() {
        let err = compile(&config(
            r#"
name: Root_Node
type: MODLE
children:
- {name: dup}
- {name: dup, type: UNKNOWN_TYPE}
- {name: r, type: ROUTER}
- {name: c, type: COMBINER}
- {name: p, parameters: [{name: k, value: "1.5", type: INT}]}
- {name: s, implementation: SKLEARN_SERVER}
"#,
        ))
        .unwrap_err();
        let text = err.to_string();
        for needle in [
            "graph (node `Root_Node`): name must be a DNS-1123 label",
            "graph.type (node `Root_Node`): unknown type \"MODLE\"",
            "graph.children[1] (node `dup`): duplicate node name; first used at graph.children[0]",
            "graph.children[1].methods (node `dup`): type UNKNOWN_TYPE needs `methods`",
            "graph.children[2].children (node `r`): a router needs at least one child",
            "graph.children[3].children (node `c`): a combiner needs at least one child",
            "graph.children[4].parameters[0] (node `p`): parameter `k` of type INT",
            "graph.children[5].modelUri (node `s`): prepackaged server SKLEARN_SERVER needs `modelUri`",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in {text}");
        }
    }

    #[test]
    fn bool_parameters_take_seldons_one_and_zero() {
        for v in ["true", "False", "1", "0"] {
            let graph =
                format!("{{name: r, parameters: [{{name: verbose, value: '{v}', type: BOOL}}]}}");
            assert!(compile(&config(&graph)).is_ok(), "{v}");
        }
        let graph = "{name: r, parameters: [{name: verbose, value: 'yes', type: BOOL}]}";
        assert!(
            matches!(&rules(&config(graph))[..], [Rule::BadParameter { value, .. }] if value == "yes")
        );
    }

    #[test]
    fn abtest_rules() {
        let bad_ratio = config(
            "{name: ab, implementation: RANDOM_ABTEST, type: ROUTER, parameters: [{name: ratioA, value: '1.5', type: FLOAT}], children: [{name: a}, {name: b}]}",
        );
        assert_eq!(rules(&bad_ratio), [Rule::BadRatio("1.5".into())]);
        let three = config(
            "{name: ab, implementation: RANDOM_ABTEST, type: ROUTER, children: [{name: a}, {name: b}, {name: c}]}",
        );
        assert_eq!(rules(&three), [Rule::AbTestChildren(3)]);
    }

    #[test]
    fn upstream_rules() {
        let mut cfg = config("{name: m, children: [{name: n}]}");
        cfg.nodes.remove("n");
        cfg.nodes.insert("ghost".into(), cfg.nodes["m"].clone());
        cfg.nodes.get_mut("m").unwrap().timeout_ms = 0;
        cfg.nodes.get_mut("m").unwrap().cluster.clear();
        let got = rules(&cfg);
        assert!(got.contains(&Rule::MissingUpstream), "{got:?}");
        assert!(got.contains(&Rule::UnknownUpstream), "{got:?}");
        assert!(got.contains(&Rule::ZeroTimeout), "{got:?}");
        assert!(
            got.contains(&Rule::EmptyUpstreamField("cluster")),
            "{got:?}"
        );
    }

    #[test]
    fn grpc_nodes_may_mix_with_rest_and_a_rest_only_executor_refuses_them() {
        let mut cfg = config(
            "{name: m, endpoint: {type: REST}, children: [{name: n, endpoint: {type: GRPC}}]}",
        );
        cfg.nodes.get_mut("n").unwrap().transport = Transport::Grpc;
        let err = compile_with(&cfg, Capabilities::REST_ONLY).unwrap_err();
        assert_eq!(
            err.to_string(),
            "nodes.n.transport (node `n`): gRPC node calls are not supported by this executor; use REST (endpoint.type: REST)"
        );
        // The filter calls gRPC nodes: a plan mixing both.
        assert_eq!(
            compile(&cfg).unwrap(),
            compile_with(&cfg, Capabilities::ALL).unwrap()
        );
        let plan = compile(&cfg).unwrap();
        let node = |n: &str| &plan.nodes[plan.find(n).unwrap()];
        assert_eq!(node("m").transport, Transport::Rest);
        assert_eq!(node("n").transport, Transport::Grpc);
    }

    #[test]
    fn endpoint_type_must_agree_with_the_upstream() {
        let cfg = config("{name: m, endpoint: {type: GRPC}}");
        let err = compile_with(&cfg, Capabilities::ALL).unwrap_err();
        assert_eq!(
            err.to_string(),
            "graph.endpoint.type (node `m`): endpoint.type GRPC conflicts with the node's upstream transport rest (nodes.<name>.transport)"
        );
        let cfg = config("{name: m, endpoint: {type: QUIC}}");
        assert_eq!(
            rules(&cfg),
            [Rule::UnknownEndpointType(
                "QUIC".into(),
                "REST, GRPC".into()
            )]
        );
    }

    #[test]
    fn a_node_may_declare_its_protocol() {
        let mut cfg = config(
            "{name: t, type: TRANSFORMER, children: [{name: m, implementation: TRITON_SERVER, modelUri: 'gs://m', protocol: v2}]}",
        );
        let plan = compile(&cfg).unwrap();
        assert_eq!(plan.nodes[1].protocol, Protocol::V2);
        // `kfserving` is v2 here too; the upstream may say the same, not something else.
        cfg.graph.children[0].protocol = serde_json::from_str(r#""kfserving""#).unwrap();
        cfg.nodes.get_mut("m").unwrap().protocol = Some(Protocol::V2);
        assert!(compile(&cfg).is_ok());
        cfg.nodes.get_mut("m").unwrap().protocol = Some(Protocol::Seldon);
        assert_eq!(
            compile(&cfg).unwrap_err().to_string(),
            "graph.children[0].protocol (node `m`): protocol v2 conflicts with the node's upstream protocol seldon (nodes.<name>.protocol)"
        );
        cfg.nodes.get_mut("m").unwrap().protocol = None;
        cfg.graph.children[0].protocol = Some(Protocol::Tensorflow);
        assert_eq!(rules(&cfg), [Rule::ProtocolUnsupported("tensorflow")]);
    }

    /// (protocol, receives, returns, bridges) of node `n`.
    fn flow(plan: &Plan, n: &str) -> (Protocol, Protocol, Protocol, bool) {
        let node = &plan.nodes[plan.find(n).unwrap()];
        (node.protocol, node.receives, node.returns, node.bridges())
    }

    #[test]
    fn a_v1_transformer_feeds_a_v2_model_and_back() {
        use Protocol::{Seldon, V2};
        let plan = compile(&config(
            "{name: t, type: TRANSFORMER, children: [{name: m, protocol: v2}]}",
        ))
        .unwrap();
        assert_eq!(flow(&plan, "t"), (Seldon, Seldon, V2, true));
        // The model is handed v1 (converted on the way in) and answers v2, which the executor
        // converts to the graph's protocol for the client.
        assert_eq!(flow(&plan, "m"), (V2, Seldon, V2, true));
        assert_eq!(plan.protocol, Seldon);
        // With an output transformer on top, the v2 answer is converted for it, and it
        // answers v1.
        let plan = compile(&config(
            "{name: o, type: OUTPUT_TRANSFORMER, children: [{name: t, type: TRANSFORMER, children: [{name: m, protocol: v2}]}]}",
        ))
        .unwrap();
        assert_eq!(flow(&plan, "o"), (Seldon, Seldon, Seldon, false));
        assert_eq!(flow(&plan, "m"), (V2, Seldon, V2, true));
    }

    #[test]
    fn a_v2_graph_may_hold_a_v1_transformer() {
        use Protocol::{Seldon, V2};
        let mut cfg =
            config("{name: t, type: TRANSFORMER, protocol: seldon, children: [{name: m}]}");
        cfg.protocol = V2;
        let plan = compile(&cfg).unwrap();
        assert_eq!(flow(&plan, "t"), (Seldon, V2, V2, true));
        assert_eq!(flow(&plan, "m"), (V2, Seldon, V2, true));
        assert!(
            plan.nodes
                .iter()
                .all(|n| !n.send_feedback || n.protocol == Seldon)
        );
    }

    #[test]
    fn answers_of_mixed_children_meet_in_one_protocol() {
        use Protocol::{Seldon, V2};
        // A combiner takes every child's answer in its own protocol.
        let plan = compile(&config(
            "{name: c, type: COMBINER, children: [{name: a, protocol: v2}, {name: b}]}",
        ))
        .unwrap();
        assert_eq!(flow(&plan, "c"), (Seldon, Seldon, Seldon, false));
        assert_eq!(flow(&plan, "a"), (V2, Seldon, V2, true));
        assert_eq!(flow(&plan, "b"), (Seldon, Seldon, Seldon, false));
        // A router passes its chosen child's answer up: when children answer in different
        // protocols, in the protocol it passed down.
        let plan = compile(&config(
            "{name: r, type: ROUTER, children: [{name: a, protocol: v2}, {name: b}]}",
        ))
        .unwrap();
        assert_eq!(flow(&plan, "r"), (Seldon, Seldon, Seldon, false));
        // ... and when they agree, in theirs.
        let plan = compile(&config(
            "{name: r, type: ROUTER, children: [{name: a, protocol: v2}, {name: b, protocol: v2}]}",
        ))
        .unwrap();
        assert_eq!(flow(&plan, "r"), (Seldon, Seldon, V2, true));
        // A v2 node still cannot route or combine.
        let cfg = config("{name: r, type: ROUTER, protocol: v2, children: [{name: a}]}");
        assert_eq!(rules(&cfg), [Rule::NotInV2("a ROUTER's /route")]);
    }

    #[test]
    fn v2_graphs_are_chains() {
        let mut cfg = config("{name: r, type: ROUTER, children: [{name: a}]}");
        cfg.protocol = Protocol::V2;
        assert_eq!(rules(&cfg), [Rule::NotInV2("a ROUTER's /route")]);
        let mut comb = config("{name: c, type: COMBINER, children: [{name: a}]}");
        comb.protocol = Protocol::V2;
        assert_eq!(rules(&comb), [Rule::NotInV2("a COMBINER's /aggregate")]);
        let mut chain = config("{name: a, children: [{name: b}]}");
        chain.protocol = Protocol::V2;
        let plan = compile(&chain).unwrap();
        assert_eq!(plan.nodes[1].protocol, Protocol::V2);
    }

    #[test]
    fn v2_graphs_may_split_with_random_abtest() {
        let mut cfg = config(
            "{name: ab, implementation: RANDOM_ABTEST, parameters: [{name: ratioA, value: '0.3', type: FLOAT}], children: [{name: a}, {name: b}]}",
        );
        cfg.protocol = Protocol::V2;
        cfg.nodes.remove("ab");
        let plan = compile(&cfg).unwrap();
        assert_eq!(plan.root().route, RouteStep::RandomAbTest { ratio_a: 0.3 });
        assert!(plan.routes);
        assert!(!plan.root().is_remote());
    }

    #[test]
    fn v2_nodes_take_no_feedback() {
        let mut cfg = config("{name: a, children: [{name: b}]}");
        cfg.protocol = Protocol::V2;
        let plan = compile(&cfg).unwrap();
        assert!(plan.nodes.iter().all(|n| !n.send_feedback));
        // A v2 node inside a Seldon graph is skipped by feedback too.
        let mut mixed = config("{name: a, children: [{name: b}]}");
        mixed.nodes.get_mut("b").unwrap().protocol = Some(Protocol::V2);
        let plan = compile(&mixed).unwrap();
        assert!(plan.nodes[0].send_feedback);
        assert!(!plan.nodes[1].send_feedback);
    }

    #[test]
    fn limits_and_protocols() {
        let mut cfg = config("name: m");
        cfg.body_limit_bytes = 0;
        cfg.protocol = Protocol::Tensorflow;
        let got = rules(&cfg);
        assert!(got.contains(&Rule::ZeroBodyLimit));
        assert!(got.contains(&Rule::ProtocolUnsupported("tensorflow")));
    }

    #[test]
    fn too_deep_graphs_are_refused() {
        let mut yaml = String::from("name: n0");
        for i in 1..=MAX_DEPTH {
            yaml = format!("{{name: n{i}, type: TRANSFORMER, children: [{yaml}]}}");
        }
        let got = rules(&config(&yaml));
        assert_eq!(got, [Rule::TooDeep(MAX_DEPTH)]);
    }

    #[test]
    fn logger_url_must_be_http() {
        let mut cfg = config("{name: m, logger: {mode: all, url: 'kafka://x'}}");
        cfg.payload_logger = Some(PayloadLogger {
            cluster: "logger".into(),
            authority: "logger".into(),
            path: "/".into(),
            timeout_ms: 1000,
        });
        assert_eq!(rules(&cfg), [Rule::BadLoggerUrl("kafka://x".into())]);
        cfg.payload_logger = None;
        cfg.graph.logger.as_mut().unwrap().url = None;
        assert_eq!(rules(&cfg), [Rule::NoPayloadLogger]);
    }

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("a-1"));
        for bad in ["", "-a", "a-", "A", "a_b", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }
}
