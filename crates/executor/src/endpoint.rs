//! Which predictor endpoint a request is for, from its method and path.
//!
//! As in Seldon's executor (`executor/api/rest/server.go`), the prediction API depends on the
//! graph's protocol: `/api/v1.0/...` for `seldon` graphs, `/v2/models/...` for `v2` graphs. The
//! health paths answer for both.
//!
//! | path | protocol | endpoint |
//! |---|---|---|
//! | `POST /api/v1.0/predictions` (and `v0.1`) | seldon | run the graph |
//! | `POST /api/v1.0/feedback` (and `v0.1`) | seldon | reward down the recorded route |
//! | `GET /api/v1.0/metadata` | seldon | graph metadata from every node |
//! | `GET /api/v1.0/metadata/<node>` | seldon | that node's `/metadata`, passed through |
//! | `GET /api/v1.0/status/<node>` | seldon | that node's `/health/status`, passed through |
//! | `POST /v2/models/<m>/infer`, `POST /v2/models/infer` | v2 | run the graph |
//! | `GET /v2/models/<node>`, `GET /v2/models/<node>/ready` | v2 | that node's answer |
//! | `GET /v2/models/<deployment>` (or a root the filter runs) | v2 | the graph as one model |
//! | `GET /v2/models/<deployment>/ready` (idem) | v2 | every node ready |
//! | `GET /ready`, `/api/v1.0/status`, `/api/v1.0/health/status`, `/health/status`, `/v2/health/ready` | any | every node ready |
//! | `GET /live`, `/v2/health/live` | any | the filter is up |
//! | `GET /health/ping` | any | `pong` |
//! | `POST /seldon.protos.Seldon/Predict`, `/seldon.protos.Seldon/SendFeedback` (gRPC, one unary frame) | seldon | run the graph / feedback, answered as gRPC (needs tail calls) |
//! | `POST /inference.GRPCInferenceService/ModelInfer` (gRPC, one unary frame) | v2 | run the graph, answered as a `ModelInferResponse` (needs tail calls) |
//! | `POST /inference.GRPCInferenceService/ServerLive`, `/ServerReady`, `/ModelReady` (gRPC) | v2 | as `/v2/health/live`, `/v2/health/ready`, `/v2/models/<m>/ready`, the answer carried by a tail call to a node's ready path |
//! | other `POST /seldon.protos.*`, `/inference.*`, `/tensorflow.serving.*` (gRPC) | any | 404 `GRPC_NOT_SERVED` (gRPC clients see `grpc-status: 12`) |

use seldon_graph::{NodeId, Plan, Protocol};

/// A predictor endpoint the filter serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /api/v1.0/predictions` (also `/api/v0.1/...`): run the graph.
    Predictions,
    /// `POST /api/v1.0/feedback`: send a reward down the recorded route.
    Feedback,
    /// `GET /api/v1.0/metadata`: graph metadata built from every node's.
    GraphMetadata,
    /// `GET /api/v1.0/metadata/<node>`, `GET /v2/models/<node>`: the node's metadata.
    NodeMetadata(NodeId),
    /// `GET /api/v1.0/status/<node>` (the node's `/health/status`), `GET /v2/models/<node>/ready`.
    NodeStatus(NodeId),
    /// `POST /v2/models/<m>/infer` or `/v2/models/infer`: run a v2 graph.
    V2Infer,
    /// `GET /v2/models/<m>/ready` for the deployment (or a root the filter runs itself): every
    /// node is ready.
    V2ModelReady(String),
    /// `GET /v2/models/<m>` for the deployment (or a root the filter runs itself): the graph as
    /// one model, inputs of the node that reads the request, outputs of the one that answers.
    V2ModelMetadata(String),
    /// `GET /ready`, `/api/v1.0/status`, `/api/v1.0/health/status`, `/health/status`,
    /// `/v2/health/ready`: every node is ready.
    Ready,
    /// `GET /live`, `/v2/health/live`: the filter is up.
    Live,
    /// `GET /health/ping`: `pong`, as Seldon's Python wrapper answers.
    Ping,
    /// gRPC `seldon.protos.Seldon/Predict` (seldon graphs): the SeldonMessage turned into its
    /// REST JSON, the graph run as for `Predictions`, the answer turned back.
    GrpcPredict,
    /// gRPC `seldon.protos.Seldon/SendFeedback`: as `Feedback`, answered with a SeldonMessage.
    GrpcFeedback,
    /// gRPC `inference.GRPCInferenceService/ModelInfer` (v2 graphs): the `ModelInferRequest`
    /// turned into v2 REST JSON, the graph run as for `V2Infer`, the answer turned into a
    /// `ModelInferResponse`. Like `/v2/models/infer`, any model name runs the graph.
    GrpcV2Infer,
    /// gRPC `ServerLive` (v2 graphs): `live: true` once the filter runs. The answer is carried
    /// by a tail call to one node's ready path, whose status is ignored (a gRPC answer with a
    /// body must come through the router).
    GrpcV2ServerLive,
    /// gRPC `ServerReady` (v2 graphs): every node ready, as `/v2/health/ready`; the last
    /// node's probe is the tail call carrying the answer.
    GrpcV2ServerReady,
    /// gRPC `ModelReady` (v2 graphs): the named node ready, or every node for the deployment
    /// (or a root the filter runs), as `/v2/models/<m>/ready`; the last probe is the tail.
    GrpcV2ModelReady,
    /// gRPC `ModelMetadata` (v2 graphs): the named node's `GET /v2/models/<node>`, or the
    /// graph's metadata for the deployment (as `/v2/models/<m>`), turned into a
    /// `ModelMetadataResponse`; the last metadata probe is the tail call carrying it.
    GrpcV2ModelMetadata,
    /// gRPC `ServerMetadata` (v2 graphs): the filter's own (`seldon-mesh`, its version, no
    /// extensions), carried like `ServerLive` by one node's readiness probe.
    GrpcV2ServerMetadata,
}

impl Endpoint {
    /// The `service` label of the server metrics (Seldon's names where it has one).
    pub fn metric_service(&self) -> &'static str {
        match self {
            Endpoint::Predictions
            | Endpoint::V2Infer
            | Endpoint::GrpcPredict
            | Endpoint::GrpcV2Infer => "predictions",
            Endpoint::Feedback | Endpoint::GrpcFeedback => "feedback",
            Endpoint::GraphMetadata
            | Endpoint::NodeMetadata(_)
            | Endpoint::V2ModelMetadata(_)
            | Endpoint::GrpcV2ModelMetadata
            | Endpoint::GrpcV2ServerMetadata => "metadata",
            Endpoint::Ready | Endpoint::V2ModelReady(_) | Endpoint::NodeStatus(_) => "status",
            Endpoint::Live | Endpoint::Ping | Endpoint::GrpcV2ServerLive => "live",
            Endpoint::GrpcV2ServerReady | Endpoint::GrpcV2ModelReady => "status",
        }
    }

    /// A gRPC call (answered with gRPC status and framed protobuf).
    pub fn is_grpc(&self) -> bool {
        matches!(
            self,
            Endpoint::GrpcPredict
                | Endpoint::GrpcFeedback
                | Endpoint::GrpcV2Infer
                | Endpoint::GrpcV2ServerLive
                | Endpoint::GrpcV2ServerReady
                | Endpoint::GrpcV2ModelReady
                | Endpoint::GrpcV2ModelMetadata
                | Endpoint::GrpcV2ServerMetadata
        )
    }
}

/// Seldon's gRPC service at the entry (`proto/seldon/prediction.proto`).
pub const GRPC_SELDON_PREDICT: &str = "/seldon.protos.Seldon/Predict";
/// Seldon's gRPC feedback method.
pub const GRPC_SELDON_FEEDBACK: &str = "/seldon.protos.Seldon/SendFeedback";
/// The Open Inference Protocol's gRPC inference method (`inference.proto`).
pub const GRPC_V2_MODEL_INFER: &str = seldon_protocol::grpc::method::MODEL_INFER;

/// Why a request matches no endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoEndpoint {
    NotFound {
        path: String,
        protocol: Protocol,
    },
    MethodNotAllowed {
        path: String,
        allowed: &'static str,
    },
    UnknownModel(String),
    /// A node the filter runs itself (RANDOM_ABTEST): there is no process to ask.
    NotCallable(String),
    /// A path of the other protocol's API.
    WrongProtocol {
        path: String,
        protocol: Protocol,
    },
    /// Feedback on a v2 graph: not part of the Open Inference Protocol.
    NoFeedbackInV2,
    /// A gRPC method (`/seldon.protos.*`, `/inference.*`, `/tensorflow.serving.*`, the paths
    /// Seldon's gRPC ingress routes): the filter serves REST only so far. Envoy turns the 404
    /// of a gRPC request into `grpc-status: 12` (UNIMPLEMENTED) with the message.
    GrpcNotServed {
        path: String,
        protocol: Protocol,
    },
}

/// Classifies a request.
pub fn classify(plan: &Plan, method: &str, path: &str) -> Result<Endpoint, NoEndpoint> {
    let path = path.split('?').next().unwrap_or_default();
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let get = |e: Endpoint| expect_method(method, "GET", path, e);
    match path {
        "/ready"
        | "/api/v1.0/status"
        | "/api/v1.0/health/status"
        | "/health/status"
        | "/v2/health/ready" => return get(Endpoint::Ready),
        "/live" | "/v2/health/live" => return get(Endpoint::Live),
        "/health/ping" => return get(Endpoint::Ping),
        _ => {}
    }
    if plan.protocol == Protocol::Seldon {
        let post = |e: Endpoint| expect_method(method, "POST", path, e);
        match path {
            GRPC_SELDON_PREDICT => return post(Endpoint::GrpcPredict),
            GRPC_SELDON_FEEDBACK => return post(Endpoint::GrpcFeedback),
            _ => {}
        }
    }
    if plan.protocol == Protocol::V2 {
        use seldon_protocol::grpc::method as m;
        let post = |e: Endpoint| expect_method(method, "POST", path, e);
        match path {
            GRPC_V2_MODEL_INFER => return post(Endpoint::GrpcV2Infer),
            m::SERVER_LIVE => return post(Endpoint::GrpcV2ServerLive),
            m::SERVER_READY => return post(Endpoint::GrpcV2ServerReady),
            m::MODEL_READY => return post(Endpoint::GrpcV2ModelReady),
            m::MODEL_METADATA => return post(Endpoint::GrpcV2ModelMetadata),
            m::SERVER_METADATA => return post(Endpoint::GrpcV2ServerMetadata),
            _ => {}
        }
    }
    if is_grpc_method(path) {
        return Err(NoEndpoint::GrpcNotServed {
            path: path.to_string(),
            protocol: plan.protocol,
        });
    }
    let wrong_protocol = || NoEndpoint::WrongProtocol {
        path: path.to_string(),
        protocol: plan.protocol,
    };
    if let Some(rest) = path.strip_prefix("/v2/") {
        if plan.protocol != Protocol::V2 {
            return Err(wrong_protocol());
        }
        return classify_v2(plan, method, path, rest);
    }
    let Some(rest) = path
        .strip_prefix("/api/v1.0/")
        .or_else(|| path.strip_prefix("/api/v0.1/"))
    else {
        return Err(not_found(plan, path));
    };
    if plan.protocol == Protocol::V2 {
        return Err(if rest == "feedback" {
            NoEndpoint::NoFeedbackInV2
        } else {
            wrong_protocol()
        });
    }
    let post = |e: Endpoint| expect_method(method, "POST", path, e);
    match rest.split('/').collect::<Vec<_>>().as_slice() {
        ["predictions"] => post(Endpoint::Predictions),
        ["feedback"] => post(Endpoint::Feedback),
        ["metadata"] => get(Endpoint::GraphMetadata),
        ["metadata", node] => {
            let id = callable_node(plan, node)?;
            get(Endpoint::NodeMetadata(id))
        }
        ["status", node] => {
            let id = callable_node(plan, node)?;
            get(Endpoint::NodeStatus(id))
        }
        _ => Err(not_found(plan, path)),
    }
}

/// `/v2/...` on a v2 graph (`rest` is the path after `/v2/`).
fn classify_v2(plan: &Plan, method: &str, path: &str, rest: &str) -> Result<Endpoint, NoEndpoint> {
    let get = |e: Endpoint| expect_method(method, "GET", path, e);
    let post = |e: Endpoint| expect_method(method, "POST", path, e);
    let Some(model_path) = rest.strip_prefix("models/") else {
        return Err(not_found(plan, path));
    };
    let parts: Vec<&str> = model_path.split('/').collect();
    let (model, action) = match parts.as_slice() {
        // Seldon's extension: the graph without naming a model.
        ["infer"] => return post(Endpoint::V2Infer),
        [m] | [m, "versions", _] => (*m, None),
        [m, a] | [m, "versions", _, a] => (*m, Some(*a)),
        _ => return Err(not_found(plan, path)),
    };
    match action {
        Some("infer") => {
            if model != plan.root().name && model != plan.deployment {
                return Err(NoEndpoint::UnknownModel(model.to_string()));
            }
            post(Endpoint::V2Infer)
        }
        Some("ready") => match v2_target(plan, model)? {
            Some(id) => get(Endpoint::NodeStatus(id)),
            None => get(Endpoint::V2ModelReady(model.to_string())),
        },
        None => match v2_target(plan, model)? {
            Some(id) => get(Endpoint::NodeMetadata(id)),
            None => get(Endpoint::V2ModelMetadata(model.to_string())),
        },
        Some(_) => Err(not_found(plan, path)),
    }
}

/// A gRPC method of Seldon's, KServe's or TensorFlow Serving's services.
fn is_grpc_method(path: &str) -> bool {
    ["/seldon.protos.", "/inference.", "/tensorflow.serving."]
        .iter()
        .any(|prefix| path.starts_with(prefix))
}

/// What `/v2/models/<model>` names: a node the filter calls (`Some`), or the whole graph
/// (`None`: the deployment's name, or a root the filter runs itself).
pub(crate) fn v2_target(plan: &Plan, model: &str) -> Result<Option<NodeId>, NoEndpoint> {
    match plan.find(model) {
        Some(id) if plan.nodes[id].is_remote() => Ok(Some(id)),
        Some(0) => Ok(None),
        Some(_) => Err(NoEndpoint::NotCallable(model.to_string())),
        None if model == plan.deployment => Ok(None),
        None => Err(NoEndpoint::UnknownModel(model.to_string())),
    }
}

/// The node called `name`, if the filter calls it.
fn callable_node(plan: &Plan, name: &str) -> Result<NodeId, NoEndpoint> {
    match plan.find(name) {
        Some(id) if plan.nodes[id].is_remote() => Ok(id),
        Some(_) => Err(NoEndpoint::NotCallable(name.to_string())),
        None => Err(NoEndpoint::UnknownModel(name.to_string())),
    }
}

fn not_found(plan: &Plan, path: &str) -> NoEndpoint {
    NoEndpoint::NotFound {
        path: path.to_string(),
        protocol: plan.protocol,
    }
}

fn expect_method(
    method: &str,
    want: &'static str,
    path: &str,
    e: Endpoint,
) -> Result<Endpoint, NoEndpoint> {
    if method.eq_ignore_ascii_case(want) {
        Ok(e)
    } else {
        Err(NoEndpoint::MethodNotAllowed {
            path: path.to_string(),
            allowed: want,
        })
    }
}
