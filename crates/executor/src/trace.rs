//! Spans of one request: the graph request (SERVER) and each node call (CLIENT), and the trace
//! context every node call carries.
//!
//! Traced endpoints are the graph runs: predictions (v1 and v2 `infer`) and feedback. Probes
//! (readiness, metadata, status, live, ping) make no span and forward headers as they came:
//! kubelet probes every pod every few seconds and would fill the trace store.
//!
//! With tracing on, a traced request continues the caller's trace (W3C, else B3) or starts
//! one; every node call gets a new span id and carries it as `traceparent` (plus B3 in the
//! caller's format when the caller used B3), replacing what was forwarded. A sampled-out
//! request records nothing but still propagates (`sampled=0`).
//!
//! Names: the request span is `seldon <deployment>/<predictor> <path>` (path without the
//! query string, e.g. `seldon iris/default /api/v1.0/predictions`); a node span is
//! `<node> <method>` (e.g. `classifier predict`).

use seldon_graph::{Plan, PlanNode};
use seldon_trace::context::PROPAGATION_HEADERS;
use seldon_trace::{
    AttrValue, B3Style, Span, SpanKind, Status, TraceContext, child_headers, continue_or_start,
    extract, span_id_from,
};

use crate::host::{Header, Host, find_header};
use crate::service::Service;

/// Attribute keys (OpenTelemetry semantic conventions where one fits, else `seldon.*`).
pub mod attr {
    pub const HTTP_METHOD: &str = "http.request.method";
    pub const URL_PATH: &str = "url.path";
    pub const HTTP_STATUS: &str = "http.response.status_code";
    /// Bytes of the request body (the client's, or what the filter sent a node).
    pub const REQUEST_BYTES: &str = "http.request.body.size";
    /// Bytes of the response body (to the client, or from a node).
    pub const RESPONSE_BYTES: &str = "http.response.body.size";
    pub const SERVER_ADDRESS: &str = "server.address";
    pub const DEPLOYMENT: &str = "seldon.deployment";
    pub const NAMESPACE: &str = "seldon.namespace";
    pub const PREDICTOR: &str = "seldon.predictor";
    /// `predictions` or `feedback` (the server metrics' `service` label).
    pub const ENDPOINT: &str = "seldon.endpoint";
    pub const PUID: &str = "seldon.puid";
    /// The failure the client was answered with (4xx and 5xx).
    pub const FAILURE: &str = "seldon.failure";
    pub const NODE_NAME: &str = "seldon.node.name";
    /// MODEL, TRANSFORMER, ROUTER, COMBINER, OUTPUT_TRANSFORMER (UNKNOWN_TYPE for nodes
    /// defined by `methods` only).
    pub const NODE_TYPE: &str = "seldon.node.type";
    /// predict, transform-input, route, aggregate, transform-output, send-feedback.
    pub const NODE_METHOD: &str = "seldon.node.method";
    /// Always 0: the filter does not retry node calls (Seldon's executor did not either).
    pub const NODE_RETRIES: &str = "seldon.node.retries";
}

/// The request span of a traced request, open until the response.
#[derive(Debug)]
pub(crate) struct RequestTrace {
    /// The request span's ids, the sampling decision, the caller's `tracestate`.
    ctx: TraceContext,
    parent: Option<[u8; 8]>,
    b3: Option<B3Style>,
    name: String,
    start_ns: u64,
    attributes: Vec<(&'static str, AttrValue)>,
    /// Set by `respond`: (status, body bytes), and the failure text if it failed.
    response: Option<(u16, usize)>,
    failure: Option<String>,
    ended: bool,
}

/// A node call's span, open while the call is in flight.
#[derive(Debug, Clone)]
pub(crate) struct NodeSpan {
    id: [u8; 8],
    start_ns: u64,
    bytes_out: usize,
}

impl RequestTrace {
    /// Continues the caller's trace found in `headers`, or starts one.
    pub fn start(
        host: &mut dyn Host,
        plan: &Plan,
        ratio: f64,
        method: &str,
        path: &str,
        headers: &[Header],
    ) -> Self {
        let incoming = extract(|name| find_header(headers, name));
        let started = continue_or_start(&incoming, ratio, &mut || host.random_u128());
        let path = path.split('?').next().unwrap_or_default();
        Self {
            ctx: started.context,
            parent: started.parent_span_id,
            b3: incoming.b3,
            name: format!("seldon {}/{} {path}", plan.deployment, plan.predictor),
            start_ns: host.now_ns(),
            attributes: vec![
                (attr::HTTP_METHOD, method.into()),
                (attr::URL_PATH, path.into()),
                (attr::DEPLOYMENT, plan.deployment.as_str().into()),
                (attr::NAMESPACE, plan.namespace.as_str().into()),
                (attr::PREDICTOR, plan.predictor.as_str().into()),
            ],
            response: None,
            failure: None,
            ended: false,
        }
    }

    /// Answered, and the request span not ended yet.
    pub fn open(&self) -> bool {
        self.response.is_some() && !self.ended
    }

    pub fn set(&mut self, key: &'static str, value: AttrValue) {
        self.attributes.push((key, value));
    }

    /// A new node span starting now, and `headers` with the propagation headers replaced by
    /// its context.
    pub fn child(
        &self,
        host: &mut dyn Host,
        headers: &mut Vec<Header>,
        bytes_out: usize,
        start_ns: u64,
    ) -> NodeSpan {
        let id = span_id_from(host.random_u128());
        let child = TraceContext {
            span_id: id,
            ..self.ctx.clone()
        };
        headers.retain(|(k, _)| {
            !PROPAGATION_HEADERS
                .iter()
                .any(|p| k.eq_ignore_ascii_case(p))
        });
        headers.extend(child_headers(
            &child,
            Some(self.ctx.span_id),
            self.b3.as_ref(),
        ));
        NodeSpan {
            id,
            start_ns,
            bytes_out,
        }
    }

    /// The finished span of a node call (`None` when sampled out). `status` is the node's
    /// HTTP status (`None`: no answer); `error` the failure its answer caused, if any.
    #[allow(clippy::too_many_arguments)]
    pub fn node_span(
        &self,
        span: &NodeSpan,
        node: &PlanNode,
        service: Service,
        status: Option<u16>,
        bytes_in: Option<usize>,
        end_ns: u64,
        error: Option<String>,
    ) -> Option<Span> {
        if !self.ctx.sampled {
            return None;
        }
        let method = service.label().trim_start_matches('/');
        let node_type = node
            .unit_type
            .as_ref()
            .map_or("UNKNOWN_TYPE", |t| t.as_str());
        let mut attributes: Vec<(&'static str, AttrValue)> = vec![
            (attr::NODE_NAME, node.name.as_str().into()),
            (attr::NODE_TYPE, node_type.into()),
            (attr::NODE_METHOD, method.into()),
            (attr::HTTP_METHOD, service.method().into()),
            (
                attr::URL_PATH,
                service.path(&node.name, node.protocol).into(),
            ),
        ];
        if let Some(up) = &node.upstream {
            attributes.push((attr::SERVER_ADDRESS, up.authority.as_str().into()));
        }
        if let Some(s) = status {
            attributes.push((attr::HTTP_STATUS, i64::from(s).into()));
        }
        attributes.push((attr::REQUEST_BYTES, bytes(span.bytes_out)));
        if let Some(n) = bytes_in {
            attributes.push((attr::RESPONSE_BYTES, bytes(n)));
        }
        attributes.push((attr::NODE_RETRIES, 0i64.into()));
        Some(Span {
            trace_id: self.ctx.trace_id,
            span_id: span.id,
            parent_span_id: Some(self.ctx.span_id),
            name: format!("{} {method}", node.name),
            kind: SpanKind::Client,
            start_unix_nanos: span.start_ns,
            end_unix_nanos: end_ns.max(span.start_ns),
            attributes,
            status: error.map_or(Status::Unset, Status::Error),
        })
    }

    /// Records the answer; the span ends at the next `end`.
    pub fn respond(&mut self, status: u16, body_bytes: usize) {
        if self.response.is_none() {
            self.response = Some((status, body_bytes));
        }
    }

    pub fn failed(&mut self, text: String) {
        if self.failure.is_none() {
            self.failure = Some(text);
        }
    }

    /// The request span, once answered and not yet ended (`None` when sampled out).
    pub fn end(&mut self, end_ns: u64) -> Option<Span> {
        let (status, body_bytes) = self.response?;
        if self.ended {
            return None;
        }
        self.ended = true;
        if !self.ctx.sampled {
            return None;
        }
        let mut attributes = std::mem::take(&mut self.attributes);
        attributes.push((attr::HTTP_STATUS, i64::from(status).into()));
        attributes.push((attr::RESPONSE_BYTES, bytes(body_bytes)));
        if let Some(text) = &self.failure {
            attributes.push((attr::FAILURE, text.as_str().into()));
        }
        // OpenTelemetry's HTTP server convention: 5xx is an error of the server; 4xx is the
        // client's (status left unset, the failure still recorded as an attribute).
        let status = match &self.failure {
            Some(text) if status >= 500 => Status::Error(text.clone()),
            None if status >= 500 => Status::Error(format!("answered {status}")),
            _ => Status::Unset,
        };
        Some(Span {
            trace_id: self.ctx.trace_id,
            span_id: self.ctx.span_id,
            parent_span_id: self.parent,
            name: std::mem::take(&mut self.name),
            kind: SpanKind::Server,
            start_unix_nanos: self.start_ns,
            end_unix_nanos: end_ns.max(self.start_ns),
            attributes,
            status,
        })
    }
}

fn bytes(n: usize) -> AttrValue {
    AttrValue::Int(i64::try_from(n).unwrap_or(i64::MAX))
}
