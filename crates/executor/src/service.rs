//! What a node call is for, and the path it takes on a node of each protocol — in one place.

use std::fmt;

use seldon_graph::Protocol;

/// The purpose of one call to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    Predict,
    TransformInput,
    TransformOutput,
    Route,
    Aggregate,
    SendFeedback,
    /// Readiness probe (`/ready` and friends fan out one per node).
    Ready,
    /// The node's metadata.
    Metadata,
    /// The node's own health status (`/api/v1.0/status/<node>`).
    Status,
}

impl Service {
    /// The name used in metrics and error messages: the Seldon node path for graph steps
    /// (`/predict`, …), a word for the GET probes.
    pub fn label(self) -> &'static str {
        match self {
            Service::Predict => "/predict",
            Service::TransformInput => "/transform-input",
            Service::TransformOutput => "/transform-output",
            Service::Route => "/route",
            Service::Aggregate => "/aggregate",
            Service::SendFeedback => "/send-feedback",
            Service::Ready => "ready",
            Service::Metadata => "metadata",
            Service::Status => "status",
        }
    }

    /// HTTP method of the call: graph steps POST a payload, probes GET.
    pub fn method(self) -> &'static str {
        match self {
            Service::Ready | Service::Metadata | Service::Status => "GET",
            _ => "POST",
        }
    }

    /// The path called on node `node` speaking `protocol`, as Seldon's executor calls it
    /// (`executor/api/rest/client.go`, `modifyMethod`; readiness is the wrapper's `/health/ping`).
    pub fn path(self, node: &str, protocol: Protocol) -> String {
        match protocol {
            Protocol::Seldon => match self {
                Service::Ready => "/health/ping".into(),
                Service::Metadata => "/metadata".into(),
                Service::Status => "/health/status".into(),
                step => step.label().into(),
            },
            Protocol::V2 => match self {
                Service::Predict | Service::TransformInput | Service::TransformOutput => {
                    format!("/v2/models/{node}/infer")
                }
                Service::Route => format!("/v2/models/{node}/route"),
                Service::Aggregate => format!("/v2/models/{node}/aggregate"),
                Service::SendFeedback => format!("/v2/models/{node}/feedback"),
                Service::Ready | Service::Status => format!("/v2/models/{node}/ready"),
                Service::Metadata => format!("/v2/models/{node}"),
            },
            Protocol::Tensorflow => match self {
                Service::Predict | Service::TransformInput | Service::TransformOutput => {
                    format!("/v1/models/{node}:predict")
                }
                Service::Route => format!("/v1/models/{node}:route"),
                Service::Aggregate => format!("/v1/models/{node}:aggregate"),
                Service::SendFeedback => format!("/v1/models/{node}:feedback"),
                Service::Ready | Service::Status => format!("/v1/models/{node}"),
                Service::Metadata => format!("/v1/models/{node}/metadata"),
            },
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seldon_paths_are_the_labels_of_graph_steps() {
        for s in [
            Service::Predict,
            Service::TransformInput,
            Service::TransformOutput,
            Service::Route,
            Service::Aggregate,
            Service::SendFeedback,
        ] {
            assert_eq!(s.path("m", Protocol::Seldon), s.label());
            assert_eq!(s.method(), "POST");
        }
        assert_eq!(Service::Ready.path("m", Protocol::Seldon), "/health/ping");
        assert_eq!(
            Service::Status.path("m", Protocol::Seldon),
            "/health/status"
        );
        assert_eq!(Service::Metadata.method(), "GET");
    }

    #[test]
    fn v2_paths_name_the_model() {
        assert_eq!(
            Service::TransformInput.path("m", Protocol::V2),
            "/v2/models/m/infer"
        );
        assert_eq!(Service::Metadata.path("m", Protocol::V2), "/v2/models/m");
        assert_eq!(
            Service::Status.path("m", Protocol::V2),
            "/v2/models/m/ready"
        );
        assert_eq!(
            Service::Predict.path("m", Protocol::Tensorflow),
            "/v1/models/m:predict"
        );
    }
}
