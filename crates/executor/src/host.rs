//! What the executor asks of its host (Envoy through proxy-wasm, or a fake in tests), and the
//! plain values that cross that line.

use crate::service::Service;

pub use seldon_trace::Span;

/// A header as (lower-case name, value).
pub type Header = (String, String);

/// The services the executor needs from its host.
pub trait Host {
    /// Starts an HTTP call; the answer comes back later as `on_call_response(token, ..)`.
    fn dispatch(&mut self, call: &Call) -> Result<u32, String>;
    /// Sends `call` later, outside the request (payload logs): it never delays or fails the
    /// request, and nobody waits for its answer.
    fn send_later(&mut self, call: Call);
    /// A uniform random number in [0, 1) (RANDOM_ABTEST).
    fn random_f64(&mut self) -> f64;
    /// 128 random bits (generated `Seldon-Puid`s, CloudEvent ids).
    fn random_u128(&mut self) -> u128;
    /// Wall-clock time in nanoseconds since the Unix epoch: span times, and differences for
    /// call latency.
    fn now_ns(&mut self) -> u64;
    /// A node call finished, answered or not (client metrics).
    fn call_done(&mut self, done: &CallDone<'_>);
    /// A span finished (tracing on, request sampled): the request's SERVER span or a node
    /// call's CLIENT span. The host queues it for export; it must not block.
    fn span_done(&mut self, span: Span);
}

/// One HTTP call to a node (or to the payload logger).
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The node called; empty for payload-log calls.
    pub node: String,
    pub cluster: String,
    pub method: &'static str,
    pub path: String,
    pub authority: String,
    /// Headers other than `:method`, `:path`, `:authority`.
    pub headers: Vec<Header>,
    pub body: Option<Vec<u8>>,
    pub timeout_ms: u64,
}

impl Call {
    /// The value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// A finished node call, as reported to `Host::call_done`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallDone<'a> {
    pub node: &'a str,
    pub service: Service,
    /// `None` when the call failed without a response.
    pub status: Option<u16>,
    pub elapsed_ns: u64,
}

/// A node's answer as the host saw it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CallResponse {
    /// `None` when the call failed without a response (reset, no headers).
    pub status: Option<u16>,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
}

impl CallResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// The response the filter sends to the client.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
    /// For a gRPC call: the status the client gets in `grpc-status`/`grpc-message`
    /// (trailers), `body` then being the framed message (or empty on an error).
    pub grpc: Option<GrpcStatus>,
}

/// A gRPC status: code (0 OK, 3 INVALID_ARGUMENT, …) and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcStatus {
    pub code: u32,
    pub message: String,
}

impl GrpcStatus {
    /// The message as `grpc-message` carries it: percent-encoded outside printable ASCII
    /// (and `%` itself), as the gRPC HTTP/2 spec asks.
    pub fn encoded_message(&self) -> String {
        let mut out = String::with_capacity(self.message.len());
        for b in self.message.bytes() {
            if (0x20..=0x7e).contains(&b) && b != b'%' {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// A JSON response.
    pub fn json(status: u16, body: Vec<u8>) -> Self {
        Self::with_type(status, "application/json", body)
    }

    /// A response with this content type.
    pub fn with_type(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body,
            grpc: None,
        }
    }
}

pub(crate) fn find_header<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}
