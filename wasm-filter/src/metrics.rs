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

/// Prefix of the span-export counters.
pub const TRACE_PREFIX: &str = "seldon_trace_";

/// What a span-export counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceCounter {
    /// Spans accepted by the collector (2xx).
    Exported,
    /// Spans dropped because the VM's queue was full.
    Dropped,
    /// Export POSTs that failed (dispatch refused, no answer, or a non-2xx answer).
    ExportFailures,
}

/// A span-export counter of this predictor: `seldon_trace_spans_exported_total`,
/// `seldon_trace_spans_dropped_total`, `seldon_trace_export_failures_total`.
pub fn trace(counter: TraceCounter, deployment: &str, predictor: &str) -> String {
    let name = match counter {
        TraceCounter::Exported => "spans_exported_total",
        TraceCounter::Dropped => "spans_dropped_total",
        TraceCounter::ExportFailures => "export_failures_total",
    };
    format!(
        "deployment_name=.={};.;predictor_name=.={};.;{TRACE_PREFIX}{name}",
        clean(deployment),
        clean(predictor),
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
    fn trace_counters() {
        assert_eq!(
            trace(TraceCounter::Dropped, "iris", "default"),
            "deployment_name=.=iris;.;predictor_name=.=default;.;seldon_trace_spans_dropped_total"
        );
        assert!(
            trace(TraceCounter::Exported, "a", "b")
                .ends_with(";.;seldon_trace_spans_exported_total")
        );
        assert!(
            trace(TraceCounter::ExportFailures, "a;b", "c").starts_with("deployment_name=.=a_b;.;")
        );
        assert!(
            trace(TraceCounter::ExportFailures, "a", "b")
                .ends_with(";.;seldon_trace_export_failures_total")
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
