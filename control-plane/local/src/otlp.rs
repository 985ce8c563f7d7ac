//! Where local mode sends the filter's spans: `seldon-mesh up --otlp-endpoint URL`
//! (`OTEL_EXPORTER_OTLP_ENDPOINT`).
//!
//! The URL is read as OpenTelemetry's SDKs read `OTEL_EXPORTER_OTLP_ENDPOINT` with
//! `http/protobuf`: a base URL to which the signal path `v1/traces` is appended
//! (`http://127.0.0.1:4318` → `POST http://127.0.0.1:4318/v1/traces`,
//! `http://collector:4318/otel` → `/otel/v1/traces`). Only `http://`: the filter's export
//! leaves Envoy in the clear, which is what a collector on this machine expects. Envoy reaches
//! it through one cluster, [`CLUSTER`].

use thiserror::Error;

/// The Envoy cluster of the collector.
pub const CLUSTER: &str = "otlp-collector";

/// A parsed `--otlp-endpoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpEndpoint {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// The request path of trace exports, ending in `/v1/traces`.
    pub path: String,
}

/// Why an `--otlp-endpoint` was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "--otlp-endpoint {url:?}: {reason} (give the collector's OTLP/HTTP base URL, e.g. http://127.0.0.1:4318)"
)]
pub struct OtlpEndpointError {
    pub url: String,
    pub reason: String,
}

impl OtlpEndpoint {
    /// Parses a base URL; see the module docs.
    pub fn parse(url: &str) -> Result<Self, OtlpEndpointError> {
        let fail = |reason: String| OtlpEndpointError {
            url: url.to_string(),
            reason,
        };
        let u = crate::http_url::parse(url).map_err(fail)?;
        if u.query.is_some() {
            return Err(fail("a query has no meaning here".into()));
        }
        let base = u.path.trim_end_matches('/');
        Ok(Self {
            path: format!("{base}/v1/traces"),
            host: u.host,
            port: u.port,
        })
    }

    /// The `:authority` of the export requests.
    pub fn authority(&self) -> String {
        crate::http_url::authority(&self.host, self.port)
    }

    /// The base URL again (`http://<authority>[/base]`, no `/v1/traces`), as node processes
    /// read it from `OTEL_EXPORTER_OTLP_ENDPOINT` to export their own SERVER spans.
    pub fn base_url(&self) -> String {
        let base = self.path.strip_suffix("/v1/traces").unwrap_or(&self.path);
        format!("http://{}{base}", self.authority())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_gets_the_signal_path() {
        let e = OtlpEndpoint::parse("http://127.0.0.1:4318").unwrap();
        assert_eq!(
            e,
            OtlpEndpoint {
                host: "127.0.0.1".into(),
                port: 4318,
                path: "/v1/traces".into()
            }
        );
        assert_eq!(e.authority(), "127.0.0.1:4318");
        let e = OtlpEndpoint::parse("http://collector.local:4318/otel/").unwrap();
        assert_eq!(e.host, "collector.local");
        assert_eq!(e.path, "/otel/v1/traces");
        let e = OtlpEndpoint::parse("http://[::1]:4318").unwrap();
        assert_eq!(e.host, "::1");
        assert_eq!(e.authority(), "[::1]:4318");
        assert_eq!(OtlpEndpoint::parse("http://jaeger").unwrap().port, 80);
    }

    #[test]
    fn the_base_url_round_trips_for_the_nodes() {
        for (url, base) in [
            ("http://127.0.0.1:4318", "http://127.0.0.1:4318"),
            ("http://127.0.0.1:4318/", "http://127.0.0.1:4318"),
            (
                "http://collector.local:4318/otel/",
                "http://collector.local:4318/otel",
            ),
            ("http://[::1]:4318", "http://[::1]:4318"),
            ("http://jaeger", "http://jaeger:80"),
        ] {
            assert_eq!(OtlpEndpoint::parse(url).unwrap().base_url(), base, "{url}");
        }
    }

    #[test]
    fn what_cannot_work_is_refused_with_the_reason() {
        for (url, reason) in [
            (
                "https://127.0.0.1:4318",
                "scheme \"https\" is not supported",
            ),
            ("localhost:4318", "scheme \"localhost\" is not supported"),
            ("127.0.0.1:4318", "relative URL without a base"),
            ("localhost", "relative URL without a base"),
            ("http://127.0.0.1:4318?x=1", "a query"),
            ("http://u:p@127.0.0.1:4318", "credentials"),
        ] {
            let e = OtlpEndpoint::parse(url).unwrap_err();
            assert!(e.reason.contains(reason), "{url}: {e}");
            assert!(e.to_string().contains("http://127.0.0.1:4318"), "{e}");
        }
    }
}
