//! Tracing for the graph filter: the caller's trace context in (W3C `traceparent`, B3), the
//! sampling decision, spans, and the OTLP/HTTP protobuf body that exports them.
//!
//! ```text
//!  request headers ──► context::extract ──► Incoming (parent ids, sampled?, B3 style)
//!                                               │ context::continue_or_start(ratio, random)
//!                                               ▼
//!                        Started: the request span's TraceContext (+ its parent span id)
//!                                               │ child span ids per node call
//!                                               ▼
//!  node call headers ◄── context::child_headers (traceparent, and B3 when the caller used B3)
//!  finished Span ──► SpanQueue (bounded, drops counted) ──► otlp::encode_export ──► POST body
//! ```
//!
//! Pure: no I/O, no clock, no randomness of its own (ids come from the host's random bits);
//! builds for `wasm32-wasip1`. The protobuf writer is hand-written (a few varints and
//! length-delimited fields) so the filter does not carry prost.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod context;
pub mod otlp;
pub mod queue;
pub mod sampler;
pub mod span;

pub use context::{
    B3Context, B3Format, B3Style, ContextError, Incoming, Parent, Started, TraceContext,
    child_headers, continue_or_start, extract, parse_b3_multi, parse_b3_single, parse_traceparent,
};
pub use otlp::{CONTENT_TYPE, SCOPE_NAME, encode_export};
pub use queue::SpanQueue;
pub use sampler::{RatioError, check_ratio, sample_by_ratio};
pub use span::{AttrValue, Span, SpanKind, Status, span_id_from, trace_id_from};

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_is_lower_case() {
        assert_eq!(super::hex(&[0x00, 0xab, 0x1f]), "00ab1f");
        assert_eq!(super::hex(&[]), "");
    }
}
