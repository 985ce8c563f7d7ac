//! What the executor asks of its host (Envoy through proxy-wasm, or a fake in tests), and the
//! plain values that cross that line.

/// A header as (lower-case name, value).
pub type Header = (String, String);

/// The services the executor needs from its host.
pub trait Host {
    /// Starts an HTTP call; the answer comes back later as `on_call_response(token, ..)`.
    fn dispatch(&mut self, call: &Call) -> Result<u32, String>;
    /// A uniform random number in [0, 1) (RANDOM_ABTEST).
    fn random_f64(&mut self) -> f64;
    /// 128 random bits (generated `Seldon-Puid`s).
    fn random_u128(&mut self) -> u128;
    /// Queues a payload for the payload logger; the host sends it outside the request.
    fn log_payload(&mut self, log: crate::payload_log::PayloadLog);
}

/// One HTTP call to a node (or to the payload logger).
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The node called; empty for payload-log calls.
    pub node: String,
    /// What the call is for (`/predict`, `/route`, …), used for metrics and errors.
    pub service: &'static str,
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
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// A JSON response.
    pub fn json(status: u16, body: Vec<u8>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body,
        }
    }
}

pub(crate) fn find_header<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}
