//! Metric names. Tags are encoded the way Istio encodes its own (`key=.=value;.;`), so Istio's
//! `extraStatTags` (or the `stats_tags` our local Envoy bootstrap sets) turn them into
//! Prometheus labels; the name that remains is `seldon_api_executor_{server,client}_requests_*`.
//!
//! Envoy histograms hold integers, so latencies are recorded in milliseconds
//! (`…_requests_ms`, like Envoy's own `upstream_rq_time`), not Seldon's `_seconds`.

/// Prefix of every metric the filter defines.
pub const PREFIX: &str = "seldon_api_executor_";

/// Tag names used, for the Envoy bootstrap's `stats_tags`.
pub const TAGS: &[&str] = &[
    "deployment_name",
    "predictor_name",
    "model_name",
    "service",
    "method",
    "code",
];

/// One request to the predictor (`service` = predictions, feedback, metadata, ready, …).
pub fn server(
    kind: Kind,
    deployment: &str,
    predictor: &str,
    service: &str,
    method: &str,
    code: u16,
) -> String {
    format!(
        "deployment_name=.={};.;predictor_name=.={};.;service=.={};.;method=.={};.;code=.={code};.;{PREFIX}server_requests_{}",
        clean(deployment),
        clean(predictor),
        clean(service),
        clean(&method.to_ascii_lowercase()),
        kind.suffix()
    )
}

/// One call from the filter to a node (`service` = the called path: /predict, /route, …).
pub fn client(
    kind: Kind,
    deployment: &str,
    predictor: &str,
    node: &str,
    service: &str,
    code: u16,
) -> String {
    format!(
        "deployment_name=.={};.;predictor_name=.={};.;model_name=.={};.;service=.={};.;code=.={code};.;{PREFIX}client_requests_{}",
        clean(deployment),
        clean(predictor),
        clean(node),
        clean(service),
        kind.suffix()
    )
}

/// Which of the pair of metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Counter of requests.
    Total,
    /// Histogram of latency in milliseconds.
    Ms,
}

impl Kind {
    fn suffix(self) -> &'static str {
        match self {
            Kind::Total => "total",
            Kind::Ms => "ms",
        }
    }
}

/// Keeps a tag value from breaking the encoding.
fn clean(value: &str) -> String {
    value.replace([';', '='], "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_istio_style_tags() {
        assert_eq!(
            server(Kind::Ms, "iris", "default", "predictions", "POST", 200),
            "deployment_name=.=iris;.;predictor_name=.=default;.;service=.=predictions;.;method=.=post;.;code=.=200;.;seldon_api_executor_server_requests_ms"
        );
        assert_eq!(
            client(Kind::Total, "iris", "default", "clf", "/predict", 503),
            "deployment_name=.=iris;.;predictor_name=.=default;.;model_name=.=clf;.;service=.=/predict;.;code=.=503;.;seldon_api_executor_client_requests_total"
        );
    }

    #[test]
    fn separators_in_values_cannot_forge_tags() {
        let name = server(Kind::Total, "a;.;code=.=1", "p", "s", "get", 200);
        assert!(
            name.starts_with("deployment_name=.=a_._code_._1;.;"),
            "{name}"
        );
    }
}
