//! The filter's `FilterConfig` for one predictor: the defaulted graph plus every node's
//! upstream resolved to Istio's Envoy cluster names.

use std::collections::BTreeMap;

use seldon_crd::names;
use seldon_graph::config::{DEFAULT_BODY_LIMIT_BYTES, DEFAULT_NODE_TIMEOUT_MS};
use seldon_graph::{FilterConfig, NodeUpstream, PayloadLogger, Tracing, Transport};

use crate::{Context, Predictor, RenderOptions, node_calls};

/// `FilterConfig` of predictor `p`. Nodes with a container get an upstream
/// `outbound|<port>||<sdep>-<pred>-<node>.<ns>.svc.cluster.local` (Istio's cluster for that
/// Service port) with authority `<fqdn>:<port>` and `seldon.io/rest-timeout` as timeout; with
/// node calls `localhost` (`node_calls`), the nodes in the filter's own pod get the static
/// cluster `seldon-local-<port>` (127.0.0.1) and authority `localhost:<port>` instead.
pub fn filter_config(cx: &Context, p: &Predictor<'_>, opts: &RenderOptions) -> FilterConfig {
    let transport = cx.sdep.spec.transport();
    let timeout_ms = p
        .timeout_ms(cx, names::ANNOTATION_REST_TIMEOUT)
        .filter(|t| *t > 0)
        .unwrap_or(DEFAULT_NODE_TIMEOUT_MS);
    let local = node_calls::local_nodes(cx, p, opts);
    let mut nodes = BTreeMap::new();
    for unit in p.spec.graph.walk() {
        let Some(endpoint) = &unit.endpoint else {
            continue;
        };
        let Some(port) = endpoint.service_port else {
            continue;
        };
        let port16 = u16::try_from(port).unwrap_or_default();
        let (cluster, authority) = if local.iter().any(|n| n.name == unit.name) {
            (
                node_calls::local_cluster(port16),
                node_calls::local_authority(port16),
            )
        } else {
            let svc = names::container_service(&cx.name, &p.spec.name, &unit.name);
            let fqdn = names::fqdn(&svc, &cx.namespace);
            (
                names::istio_outbound_cluster(&svc, &cx.namespace, port),
                format!("{fqdn}:{port}"),
            )
        };
        nodes.insert(
            unit.name.clone(),
            NodeUpstream {
                cluster,
                authority,
                port: port16,
                transport,
                protocol: None,
                timeout_ms,
            },
        );
    }
    let body_limit_bytes = p
        .annotation(cx, names::ANNOTATION_BODY_LIMIT)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_BODY_LIMIT_BYTES);
    let payload_logger = p
        .spec
        .graph
        .walk()
        .into_iter()
        .find_map(|u| u.logger.as_ref())
        .map(|l| {
            logger(
                l.url.as_deref().unwrap_or(&opts.default_logger_url),
                &cx.namespace,
                timeout_ms,
            )
        });
    FilterConfig {
        deployment: cx.name.clone(),
        namespace: cx.namespace.clone(),
        predictor: p.spec.name.clone(),
        protocol: cx.sdep.spec.protocol(),
        graph: p.spec.graph.clone(),
        nodes,
        body_limit_bytes,
        payload_logger: payload_logger.flatten(),
        tracing: opts
            .tracing_endpoint
            .as_deref()
            .and_then(|url| tracing(url, &p.service, &cx.namespace, opts.trace_sample_ratio)),
    }
}

/// The filter's tracing config for the collector at OTLP/HTTP base URL `url` (see
/// [`RenderOptions::tracing_endpoint`]): Istio's outbound cluster of the collector Service,
/// and the spans' `service.name` `<predictor Service>.<namespace>`, as Istio names a
/// workload's own spans (`<app>.<namespace>`). `None` when the URL is not `http(s)://`
/// (`check` refuses it first).
fn tracing(url: &str, service: &str, namespace: &str, sample_ratio: f64) -> Option<Tracing> {
    let to = logger(url, namespace, 0)?;
    let base = to.path.trim_end_matches('/');
    Some(Tracing {
        path: format!("{base}/v1/traces"),
        service_name: format!("{service}.{namespace}"),
        sample_ratio,
        ..Tracing::new(to.cluster, to.authority)
    })
}

/// Resolves `http://host[:port][/path]` to an Istio outbound cluster; a host without dots is a
/// Service in the SeldonDeployment's namespace, `svc.ns` and `svc.ns.svc` are completed to
/// `svc.ns.svc.cluster.local`.
fn logger(url: &str, namespace: &str, timeout_ms: u64) -> Option<PayloadLogger> {
    let (scheme_port, rest) = if let Some(r) = url.strip_prefix("http://") {
        (80, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (443, r)
    } else {
        return None;
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (authority, scheme_port),
    };
    // Istio names outbound clusters by the Service's full name: complete the short forms
    // Kubernetes DNS resolves (`svc`, `svc.ns`, `svc.ns.svc`); anything else is taken as is.
    let fqdn = match host.split('.').count() {
        1 => names::fqdn(host, namespace),
        2 => format!("{host}.svc.cluster.local"),
        3 if host.ends_with(".svc") => format!("{host}.cluster.local"),
        _ => host.to_string(),
    };
    Some(PayloadLogger {
        cluster: format!("outbound|{port}||{fqdn}"),
        authority: format!("{fqdn}:{port}"),
        path: path.to_string(),
        timeout_ms,
    })
}

/// The transport named in `FilterConfig` (kept for callers that only have the spec).
pub fn transport_of(cx: &Context) -> Transport {
    cx.sdep.spec.transport()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracing_endpoints_resolve_to_istio_clusters_and_the_signal_path() {
        let t = tracing(
            "http://jaeger-collector.observability:4318",
            "iris-default",
            "models",
            0.25,
        )
        .unwrap();
        assert_eq!(
            t.cluster,
            "outbound|4318||jaeger-collector.observability.svc.cluster.local"
        );
        assert_eq!(
            t.authority,
            "jaeger-collector.observability.svc.cluster.local:4318"
        );
        assert_eq!(t.path, "/v1/traces");
        assert_eq!(t.service_name, "iris-default.models");
        assert_eq!(t.sample_ratio, 0.25);
        // a bare Service name is in the SeldonDeployment's namespace; a base path is kept
        let t = tracing("http://otel-collector/otlp/", "s", "models", 1.0).unwrap();
        assert_eq!(
            t.cluster,
            "outbound|80||otel-collector.models.svc.cluster.local"
        );
        assert_eq!(t.path, "/otlp/v1/traces");
        assert!(tracing("grpc://otel-collector:4317", "s", "m", 1.0).is_none());
    }

    #[test]
    fn logger_urls_resolve_to_istio_clusters() {
        let l = logger("http://default-broker", "models", 5).unwrap();
        assert_eq!(
            l.cluster,
            "outbound|80||default-broker.models.svc.cluster.local"
        );
        assert_eq!(l.authority, "default-broker.models.svc.cluster.local:80");
        assert_eq!(l.path, "/");
        let l = logger("http://logs.obs.svc.cluster.local:8080/ingest", "models", 5).unwrap();
        assert_eq!(l.cluster, "outbound|8080||logs.obs.svc.cluster.local");
        assert_eq!(l.path, "/ingest");
        assert!(logger("ftp://x", "m", 5).is_none());
        // the short forms Kubernetes DNS resolves
        for short in ["http://logs.obs", "http://logs.obs.svc"] {
            assert_eq!(
                logger(short, "models", 5).unwrap().cluster,
                "outbound|80||logs.obs.svc.cluster.local",
                "{short}"
            );
        }
        assert!(logger("http://x:port", "m", 5).is_none());
    }
}
