//! Which predictor endpoint a request is for, from its method and path.

use seldon_graph::{Plan, Protocol};

/// A predictor endpoint the filter serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /api/v1.0/predictions` (also `/api/v0.1/...`): run the graph.
    Predictions,
    /// `POST /api/v1.0/feedback`: send a reward down the recorded route.
    Feedback,
    /// `GET /api/v1.0/metadata`: graph metadata built from every node's.
    Metadata,
    /// `POST /v2/models/<m>/infer` or `/v2/models/infer`: run a v2 model chain.
    V2Infer,
    /// `GET /v2/models/<m>/ready`: every node of the chain is ready.
    V2ModelReady(String),
    /// `GET /ready`, `/api/v1.0/health/status`, `/v2/health/ready`: every node is ready.
    Ready,
    /// `GET /live`, `/v2/health/live`: the filter is up.
    Live,
}

impl Endpoint {
    /// The `service` label of the server metrics (Seldon's names where it has one).
    pub fn metric_service(&self) -> &'static str {
        match self {
            Endpoint::Predictions | Endpoint::V2Infer => "predictions",
            Endpoint::Feedback => "feedback",
            Endpoint::Metadata => "metadata",
            Endpoint::Ready | Endpoint::V2ModelReady(_) => "status",
            Endpoint::Live => "live",
        }
    }
}

/// Why a request matches no endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoEndpoint {
    NotFound(String),
    MethodNotAllowed { path: String, allowed: &'static str },
    UnknownModel(String),
}

/// Classifies a request. v2 paths accept the model name of the graph's root node or the
/// deployment name (Seldon's `address.url` uses the root's name).
pub fn classify(plan: &Plan, method: &str, path: &str) -> Result<Endpoint, NoEndpoint> {
    let path = path.split('?').next().unwrap_or_default();
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let post = |e: Endpoint| expect_method(method, "POST", path, e);
    let get = |e: Endpoint| expect_method(method, "GET", path, e);
    match path {
        "/api/v1.0/predictions" | "/api/v0.1/predictions" => post(Endpoint::Predictions),
        "/api/v1.0/feedback" | "/api/v0.1/feedback" => post(Endpoint::Feedback),
        "/api/v1.0/metadata" => get(Endpoint::Metadata),
        "/ready" | "/api/v1.0/health/status" | "/v2/health/ready" => get(Endpoint::Ready),
        "/live" | "/v2/health/live" => get(Endpoint::Live),
        "/v2/models/infer" if plan.protocol == Protocol::V2 => post(Endpoint::V2Infer),
        _ => match path
            .strip_prefix("/v2/models/")
            .map(|rest| rest.split('/').collect::<Vec<_>>())
        {
            Some(parts) if plan.protocol == Protocol::V2 => {
                let model = parts.first().copied().unwrap_or_default();
                let action = match parts.as_slice() {
                    [_, "infer"] | [_, "versions", _, "infer"] => "infer",
                    [_, "ready"] | [_, "versions", _, "ready"] => "ready",
                    _ => return Err(NoEndpoint::NotFound(path.to_string())),
                };
                if model != plan.root().name && model != plan.deployment {
                    return Err(NoEndpoint::UnknownModel(model.to_string()));
                }
                match action {
                    "infer" => post(Endpoint::V2Infer),
                    _ => get(Endpoint::V2ModelReady(model.to_string())),
                }
            }
            _ => Err(NoEndpoint::NotFound(path.to_string())),
        },
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
