//! The OTLP/HTTP body: an `ExportTraceServiceRequest` (opentelemetry-proto
//! `collector/trace/v1/trace_service.proto`) in protobuf, written by hand.
//!
//! ```text
//! ExportTraceServiceRequest { 1: ResourceSpans {
//!     1: Resource { 1: KeyValue service.name }
//!     2: ScopeSpans { 1: InstrumentationScope { 1: "seldon-mesh" }  2: Span* } } }
//! Span { 1 trace_id, 2 span_id, 3 trace_state, 4 parent_span_id, 5 name, 6 kind,
//!        7 start (fixed64), 8 end (fixed64), 9 attributes: KeyValue*, 15 status }
//! ```
//!
//! Only varints, fixed64 and length-delimited fields are needed; nested messages are written
//! into a scratch buffer and copied behind their length.

use crate::span::{AttrValue, Span, SpanKind, Status};

/// `content-type` of the POST.
pub const CONTENT_TYPE: &str = "application/x-protobuf";
/// The instrumentation scope's name.
pub const SCOPE_NAME: &str = "seldon-mesh";

/// The export body for `spans`, under resource attribute `service.name = service_name`.
pub fn encode_export(service_name: &str, spans: &[Span]) -> Vec<u8> {
    let resource_spans = message(|rs| {
        let resource = message(|r| {
            let kv = key_value("service.name", &AttrValue::Str(service_name.to_string()));
            bytes_field(r, 1, &kv);
        });
        bytes_field(rs, 1, &resource);
        let scope_spans = message(|ss| {
            let scope = message(|sc| string_field(sc, 1, SCOPE_NAME));
            bytes_field(ss, 1, &scope);
            for span in spans {
                bytes_field(ss, 2, &encode_span(span));
            }
        });
        bytes_field(rs, 2, &scope_spans);
    });
    let mut out = Vec::with_capacity(resource_spans.len() + 8);
    bytes_field(&mut out, 1, &resource_spans);
    out
}

fn encode_span(span: &Span) -> Vec<u8> {
    message(|m| {
        bytes_field(m, 1, &span.trace_id);
        bytes_field(m, 2, &span.span_id);
        if let Some(parent) = &span.parent_span_id {
            bytes_field(m, 4, parent);
        }
        string_field(m, 5, &span.name);
        let kind = match span.kind {
            SpanKind::Server => 2,
            SpanKind::Client => 3,
        };
        varint_field(m, 6, kind);
        fixed64_field(m, 7, span.start_unix_nanos);
        fixed64_field(m, 8, span.end_unix_nanos);
        for (key, value) in &span.attributes {
            bytes_field(m, 9, &key_value(key, value));
        }
        let status = match &span.status {
            Status::Unset => None,
            Status::Ok => Some(message(|s| varint_field(s, 3, 1))),
            Status::Error(text) => Some(message(|s| {
                if !text.is_empty() {
                    string_field(s, 2, text);
                }
                varint_field(s, 3, 2);
            })),
        };
        if let Some(status) = status {
            bytes_field(m, 15, &status);
        }
    })
}

/// `KeyValue { 1: key, 2: AnyValue { 1: string | 2: bool | 3: int64 } }`
fn key_value(key: &str, value: &AttrValue) -> Vec<u8> {
    message(|kv| {
        string_field(kv, 1, key);
        let any = message(|a| match value {
            AttrValue::Str(s) => string_field(a, 1, s),
            AttrValue::Bool(b) => varint_field(a, 2, u64::from(*b)),
            // int64: two's complement as a 10-byte varint for negatives, as protobuf does
            AttrValue::Int(n) => varint_field(a, 3, *n as u64),
        });
        bytes_field(kv, 2, &any);
    })
}

fn message(fill: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut buf = Vec::new();
    fill(&mut buf);
    buf
}

const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;

fn tag(buf: &mut Vec<u8>, field: u64, wire: u64) {
    varint(buf, field << 3 | wire);
}

fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn varint_field(buf: &mut Vec<u8>, field: u64, v: u64) {
    tag(buf, field, VARINT);
    varint(buf, v);
}

fn fixed64_field(buf: &mut Vec<u8>, field: u64, v: u64) {
    tag(buf, field, FIXED64);
    buf.extend_from_slice(&v.to_le_bytes());
}

fn bytes_field(buf: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    tag(buf, field, LEN);
    varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

fn string_field(buf: &mut Vec<u8>, field: u64, s: &str) {
    bytes_field(buf, field, s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_as_protobuf_writes_them() {
        let enc = |v| {
            let mut b = Vec::new();
            varint(&mut b, v);
            b
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(1), [1]);
        assert_eq!(enc(127), [127]);
        assert_eq!(enc(128), [0x80, 1]);
        assert_eq!(enc(300), [0xac, 0x02]);
        assert_eq!(enc(u64::MAX).len(), 10);
    }

    #[test]
    fn empty_batch_still_names_the_service() {
        let body = encode_export("svc", &[]);
        // 0a len 0a len (resource) ... "svc" appears
        assert_eq!(body[0], 0x0a);
        assert!(body.windows(3).any(|w| w == b"svc"));
        assert!(body.windows(11).any(|w| w == SCOPE_NAME.as_bytes()));
    }
}
