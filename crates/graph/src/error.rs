//! `GraphError`: every problem `compile` found, each naming the node, its path and the rule.

use thiserror::Error;

/// All problems found in one `FilterConfig`, in tree order. Never empty.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("{}", render(.problems))]
pub struct GraphError {
    pub problems: Vec<Problem>,
}

fn render(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    lines.join("; ")
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("{path} (node `{node}`): {rule}")]
pub struct Problem {
    /// Node name (may be empty when the name itself is the problem).
    pub node: String,
    /// Where in the config, e.g. `graph.children[1].children[0]`.
    pub path: String,
    pub rule: Rule,
}

/// The rules `compile` enforces, each with what it needs to explain itself.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum Rule {
    #[error(
        "name must be a DNS-1123 label (lower-case letters, digits and '-', at most 63 characters): {0:?}"
    )]
    InvalidName(String),
    #[error("duplicate node name; first used at {first_path}")]
    DuplicateName { first_path: String },
    #[error("unknown type {0:?}; expected one of {1}")]
    UnknownType(String, String),
    #[error("unknown method {0:?}; expected one of {1}")]
    UnknownMethod(String, String),
    #[error("unknown endpoint type {0:?}; expected one of {1}")]
    UnknownEndpointType(String, String),
    #[error("type UNKNOWN_TYPE needs `methods`")]
    MethodsRequired,
    #[error("a {0} needs at least one child")]
    NoChildren(&'static str),
    #[error("RANDOM_ABTEST needs exactly 2 children, found {0}")]
    AbTestChildren(usize),
    #[error("parameter `ratioA` must be a number between 0 and 1, got {0:?}")]
    BadRatio(String),
    #[error("parameter `{name}` of type {ty} has value {value:?} that does not parse")]
    BadParameter {
        name: String,
        ty: String,
        value: String,
    },
    #[error("prepackaged server {0} needs `modelUri`")]
    ModelUriRequired(String),
    #[error("logger.url {0:?} is not an http(s) URL")]
    BadLoggerUrl(String),
    #[error("the node logs payloads (logger.mode) but the config has no `payloadLogger`")]
    NoPayloadLogger,
    #[error("no upstream for this node in `nodes`")]
    MissingUpstream,
    #[error("`nodes` names a node that is not in the graph")]
    UnknownUpstream,
    #[error("upstream {0} must not be empty")]
    EmptyUpstreamField(&'static str),
    #[error("upstream timeoutMs must be greater than 0")]
    ZeroTimeout,
    #[error(
        "endpoint.type {endpoint} conflicts with the node's upstream transport {upstream} (nodes.<name>.transport)"
    )]
    TransportConflict { endpoint: String, upstream: String },
    #[error(
        "protocol {node} conflicts with the node's upstream protocol {upstream} (nodes.<name>.protocol)"
    )]
    ProtocolConflict { node: String, upstream: String },
    #[error("gRPC node calls are not supported by this executor; use REST (endpoint.type: REST)")]
    GrpcUnsupported,
    #[error("the {0} protocol is not supported by the filter; use seldon or v2")]
    ProtocolUnsupported(&'static str),
    #[error(
        "{0} is not supported with protocol v2: v2 graphs are model chains, optionally split by RANDOM_ABTEST"
    )]
    NotInV2(&'static str),
    #[error("graph deeper than {0} levels")]
    TooDeep(usize),
    #[error("bodyLimitBytes must be greater than 0")]
    ZeroBodyLimit,
    #[error("tracing.{0} must not be empty")]
    EmptyTracingField(&'static str),
    #[error("tracing.{0} must be greater than 0")]
    ZeroTracingField(&'static str),
    #[error("tracing.sampleRatio must be a number between 0 and 1, got {0}")]
    BadSampleRatio(f64),
    #[error("tracing.path must start with '/', got {0:?}")]
    BadTracingPath(String),
}
