//! Everything that can fail a request, and the one function that turns it into a response.

use seldon_graph::Protocol;
use thiserror::Error;

use crate::endpoint::NoEndpoint;
use crate::host::Response;
use crate::names;
use crate::service::Service;

/// Why a request failed. Node failures name the node.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum Failure {
    /// The node answered with a non-2xx status: passed to the client with that status; the
    /// body as is when it is JSON, else wrapped in a Seldon status quoting it
    /// (`request::node_error`).
    #[error("node `{node}` answered {status}")]
    NodeStatus {
        node: String,
        status: u16,
        content_type: Option<String>,
        body: Vec<u8>,
    },
    /// A gRPC node answered a non-zero `grpc-status`: a gRPC client gets that code, a REST
    /// client its HTTP equivalent (`grpc_node::http_status`); both the message naming the node.
    #[error("node `{node}` answered gRPC status {code} {} ({service}): {message}", crate::grpc_node::code_name(*code))]
    NodeGrpcStatus {
        node: String,
        service: Service,
        code: u32,
        message: String,
    },
    #[error("node `{node}` is unreachable ({service}): {detail}")]
    Unreachable {
        node: String,
        service: Service,
        detail: String,
    },
    #[error("node `{node}` timed out after {timeout_ms} ms ({service})")]
    Timeout {
        node: String,
        service: Service,
        timeout_ms: u64,
    },
    #[error("the filter could not call node `{node}` ({service}): {detail}")]
    DispatchFailed {
        node: String,
        service: Service,
        detail: String,
    },
    #[error("router `{node}` gave an unusable reply: {detail}")]
    BadRoute { node: String, detail: String },
    /// A 2xx answer that is not what its protocol promises (JSON where JSON is declared, a
    /// SeldonMessage object, a v2 InferenceResponse), or that the next step cannot use.
    #[error("node `{node}` gave an unusable answer ({service}): {detail}")]
    BadOutput {
        node: String,
        service: Service,
        detail: String,
    },
    /// A 2xx answer larger than the graph's body limit: it would be refused by the next node.
    #[error("node `{node}` answered {size} bytes ({service}), over the limit of {limit} bytes")]
    OutputTooLarge {
        node: String,
        service: Service,
        size: usize,
        limit: usize,
    },
    /// The client's payload is not what the graph's protocol accepts (the entry's check).
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("malformed feedback: {0}")]
    BadFeedback(String),
    #[error("feedback routing for `{node}` names child {route}, but it has {children} children")]
    BadFeedbackRoute {
        node: String,
        route: i32,
        children: usize,
    },
    #[error("request body is larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("node `{node}` is not ready (answered {status})")]
    NotReady { node: String, status: String },
    #[error("{0}")]
    NoEndpoint(NoEndpointText),
    /// A gRPC call whose answer would not come from one node call through Envoy's router
    /// (the tail call): a filter cannot put a message in a gRPC local reply.
    #[error(
        "gRPC answers need the graph's last step to be one node call through Envoy's router (the tail call): {0}"
    )]
    GrpcNeedsTail(String),
}

/// `NoEndpoint` with its message.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("{text}")]
pub struct NoEndpointText {
    pub kind: NoEndpoint,
    pub text: String,
}

impl From<NoEndpoint> for Failure {
    fn from(kind: NoEndpoint) -> Self {
        let text = match &kind {
            NoEndpoint::NotFound { path, protocol } => {
                format!("no endpoint {path}; {}", served(*protocol))
            }
            NoEndpoint::MethodNotAllowed { path, allowed } => {
                format!("{path} only accepts {allowed}")
            }
            NoEndpoint::UnknownModel(m) => format!("unknown model {m:?}"),
            NoEndpoint::NotCallable(m) => format!(
                "node {m:?} is run by the filter itself (RANDOM_ABTEST): it has no process to ask"
            ),
            NoEndpoint::WrongProtocol { path, protocol } => format!(
                "{path} is not served for a {} graph; {}",
                protocol_name(*protocol),
                served(*protocol)
            ),
            NoEndpoint::GrpcNotServed { path, protocol } => format!(
                "gRPC at the graph entry is not served yet ({path}); use REST: {}",
                match protocol {
                    Protocol::V2 => "POST /v2/models/<model>/infer",
                    _ => "POST /api/v1.0/predictions",
                }
            ),
            NoEndpoint::NoFeedbackInV2 => {
                "feedback is a Seldon protocol call: v2 graphs take none \
                 (Seldon's executor serves /api/v1.0/feedback only for protocol seldon)"
                    .to_string()
            }
        };
        Failure::NoEndpoint(NoEndpointText { kind, text })
    }
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Seldon => "seldon protocol",
        Protocol::V2 => "v2 protocol",
        Protocol::Tensorflow => "tensorflow protocol",
    }
}

/// The endpoints a graph of `protocol` serves, for 404 messages.
fn served(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::V2 => {
            "this predictor serves /v2/models/<model>/infer, /v2/models/infer, /v2/models/<model>[/ready], /v2/health/live|ready, /ready, /live, /health/ping, /health/status"
        }
        _ => {
            "this predictor serves /api/v1.0/predictions, /api/v1.0/feedback, /api/v1.0/metadata[/<node>], /api/v1.0/status/<node>, /api/v1.0/health/status, /ready, /live, /health/ping, /health/status"
        }
    }
}

impl Failure {
    /// The node this failure is about, if any.
    pub fn node(&self) -> Option<&str> {
        match self {
            Failure::NodeStatus { node, .. }
            | Failure::NodeGrpcStatus { node, .. }
            | Failure::Unreachable { node, .. }
            | Failure::Timeout { node, .. }
            | Failure::DispatchFailed { node, .. }
            | Failure::BadRoute { node, .. }
            | Failure::BadOutput { node, .. }
            | Failure::OutputTooLarge { node, .. }
            | Failure::BadFeedbackRoute { node, .. }
            | Failure::NotReady { node, .. } => Some(node),
            Failure::BadFeedback(_)
            | Failure::BadRequest(_)
            | Failure::BodyTooLarge { .. }
            | Failure::GrpcNeedsTail(_)
            | Failure::NoEndpoint(_) => None,
        }
    }

    /// HTTP status and Seldon `status.reason` for this failure.
    fn status_and_reason(&self) -> (u16, &'static str) {
        match self {
            Failure::NodeStatus { status, .. } => (*status, "NODE_ERROR"),
            Failure::NodeGrpcStatus { code, .. } => {
                (crate::grpc_node::http_status(*code), "NODE_GRPC_ERROR")
            }
            Failure::Unreachable { .. } => (503, "NODE_UNREACHABLE"),
            Failure::Timeout { .. } => (504, "NODE_TIMEOUT"),
            Failure::DispatchFailed { .. } => (500, "DISPATCH_FAILED"),
            Failure::BadRoute { .. } => (502, "BAD_ROUTER_REPLY"),
            Failure::BadOutput { .. } => (502, "BAD_NODE_OUTPUT"),
            Failure::OutputTooLarge { .. } => (502, "NODE_OUTPUT_TOO_LARGE"),
            Failure::BadRequest(_) => (400, "BAD_REQUEST"),
            Failure::BadFeedback(_) => (400, "BAD_FEEDBACK"),
            Failure::BadFeedbackRoute { .. } => (400, "BAD_FEEDBACK"),
            Failure::BodyTooLarge { .. } => (413, "PAYLOAD_TOO_LARGE"),
            Failure::NotReady { .. } => (503, "NOT_READY"),
            Failure::GrpcNeedsTail(_) => (501, "GRPC_NOT_SERVED"),
            Failure::NoEndpoint(t) => match t.kind {
                NoEndpoint::MethodNotAllowed { .. } => (405, "METHOD_NOT_ALLOWED"),
                NoEndpoint::NotFound { .. }
                | NoEndpoint::UnknownModel(_)
                | NoEndpoint::NotCallable(_)
                | NoEndpoint::WrongProtocol { .. }
                | NoEndpoint::NoFeedbackInV2 => (404, "NOT_FOUND"),
                NoEndpoint::GrpcNotServed { .. } => (404, "GRPC_NOT_SERVED"),
            },
        }
    }

    /// The gRPC status of this failure (a gRPC call's error): the code from its HTTP status
    /// (gRPC's own HTTP mapping, with a node's unusable answer INTERNAL), the message its
    /// text, naming the node.
    pub fn to_grpc(&self) -> crate::host::GrpcStatus {
        let code = match self {
            // A gRPC node's own code goes on unchanged.
            Failure::NodeGrpcStatus { code, .. } => *code,
            _ => grpc_code(self.status_and_reason().0),
        };
        crate::host::GrpcStatus {
            code,
            message: self.to_string(),
        }
    }

    /// The response for this failure: a node's own error passes through with its status and
    /// body; everything else is a Seldon status JSON. Both carry `seldon-node` when a node is
    /// to blame.
    pub fn to_response(&self) -> Response {
        let (status, reason) = self.status_and_reason();
        let mut response = match self {
            Failure::NodeStatus {
                content_type, body, ..
            } => Response {
                status,
                headers: content_type
                    .iter()
                    .map(|ct| ("content-type".to_string(), ct.clone()))
                    .collect(),
                body: body.clone(),
                grpc: None,
            },
            _ => Response::json(
                status,
                seldon_protocol::status_body(status, &self.to_string(), reason),
            ),
        };
        if let Some(node) = self.node() {
            response
                .headers
                .push((names::NODE_HEADER.to_string(), node.to_string()));
        }
        response
    }
}

/// gRPC status code for an HTTP status (gRPC's HTTP-to-gRPC mapping, refined for the filter:
/// 400 INVALID_ARGUMENT, 413 RESOURCE_EXHAUSTED, 502 INTERNAL (a node's unusable answer),
/// 504 DEADLINE_EXCEEDED).
pub fn grpc_code(status: u16) -> u32 {
    match status {
        200..=299 => 0,
        400 => 3,
        401 => 16,
        403 => 7,
        404 => 5,
        405 | 501 => 12,
        408 | 504 => 4,
        409 => 10,
        413 | 429 => 8,
        499 => 1,
        503 => 14,
        500..=599 => 13,
        _ => 2,
    }
}
