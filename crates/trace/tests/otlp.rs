//! What `encode_export` writes, decoded by the real OTLP messages (opentelemetry-proto, prost).

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind as PbKind, status::StatusCode};
use prost::Message;
use seldon_trace::{AttrValue, SCOPE_NAME, Span, SpanKind, Status, encode_export};

fn span(n: u8, kind: SpanKind, status: Status, parent: Option<[u8; 8]>) -> Span {
    Span {
        trace_id: [0xa0 | n; 16],
        span_id: [n; 8],
        parent_span_id: parent,
        name: format!("span {n} ünïcode"),
        kind,
        start_unix_nanos: 1_765_000_000_000_000_000 + u64::from(n),
        end_unix_nanos: 1_765_000_000_123_456_789 + u64::from(n),
        attributes: vec![
            ("seldon.node.name", AttrValue::Str(format!("node-{n}"))),
            ("http.response.status_code", AttrValue::Int(200)),
            ("negative", AttrValue::Int(-5)),
            ("big", AttrValue::Int(i64::MAX)),
            ("flag", AttrValue::Bool(true)),
            ("off", AttrValue::Bool(false)),
            ("empty", AttrValue::Str(String::new())),
        ],
        status,
    }
}

#[test]
fn every_field_round_trips() {
    let spans = vec![
        span(1, SpanKind::Server, Status::Unset, None),
        span(2, SpanKind::Client, Status::Ok, Some([1; 8])),
        span(
            3,
            SpanKind::Client,
            Status::Error("node `m` answered 500".into()),
            Some([1; 8]),
        ),
    ];
    let body = encode_export("iris-default", &spans);
    let req = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
    assert_eq!(req.resource_spans.len(), 1);
    let rs = &req.resource_spans[0];
    let resource = rs.resource.as_ref().unwrap();
    assert_eq!(resource.attributes.len(), 1);
    assert_eq!(resource.attributes[0].key, "service.name");
    assert_eq!(
        resource.attributes[0].value.as_ref().unwrap().value,
        Some(Value::StringValue("iris-default".into()))
    );
    assert_eq!(rs.scope_spans.len(), 1);
    let ss = &rs.scope_spans[0];
    assert_eq!(ss.scope.as_ref().unwrap().name, SCOPE_NAME);
    assert_eq!(ss.spans.len(), 3);
    for (pb, ours) in ss.spans.iter().zip(&spans) {
        assert_eq!(pb.trace_id, ours.trace_id);
        assert_eq!(pb.span_id, ours.span_id);
        assert_eq!(
            pb.parent_span_id,
            ours.parent_span_id.map(|p| p.to_vec()).unwrap_or_default()
        );
        assert_eq!(pb.name, ours.name);
        let kind = match ours.kind {
            SpanKind::Server => PbKind::Server,
            SpanKind::Client => PbKind::Client,
        };
        assert_eq!(pb.kind, kind as i32);
        assert_eq!(pb.start_time_unix_nano, ours.start_unix_nanos);
        assert_eq!(pb.end_time_unix_nano, ours.end_unix_nanos);
        assert_eq!(pb.trace_state, "");
        assert_eq!(pb.attributes.len(), ours.attributes.len());
        for (kv, (key, value)) in pb.attributes.iter().zip(&ours.attributes) {
            assert_eq!(kv.key, *key);
            let expected = match value {
                AttrValue::Str(s) => Value::StringValue(s.clone()),
                AttrValue::Int(n) => Value::IntValue(*n),
                AttrValue::Bool(b) => Value::BoolValue(*b),
            };
            assert_eq!(kv.value.as_ref().unwrap().value, Some(expected), "{key}");
        }
        match &ours.status {
            Status::Unset => assert!(
                pb.status
                    .as_ref()
                    .is_none_or(|s| s.code == StatusCode::Unset as i32)
            ),
            Status::Ok => {
                let s = pb.status.as_ref().unwrap();
                assert_eq!(s.code, StatusCode::Ok as i32);
                assert_eq!(s.message, "");
            }
            Status::Error(text) => {
                let s = pb.status.as_ref().unwrap();
                assert_eq!(s.code, StatusCode::Error as i32);
                assert_eq!(&s.message, text);
            }
        }
    }
}

#[test]
fn a_large_batch_decodes_whole() {
    let spans: Vec<Span> = (0..600u32)
        .map(|i| {
            let mut s = span((i % 200) as u8, SpanKind::Client, Status::Ok, Some([9; 8]));
            s.name = "x".repeat(300);
            s
        })
        .collect();
    let body = encode_export("svc", &spans);
    let req = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
    assert_eq!(req.resource_spans[0].scope_spans[0].spans.len(), 600);
}

#[test]
fn empty_batch_is_a_valid_request() {
    let body = encode_export("svc", &[]);
    let req = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
    assert!(req.resource_spans[0].scope_spans[0].spans.is_empty());
    // and a truncated body is not: the writer's lengths are the real ones
    assert!(ExportTraceServiceRequest::decode(&body[..body.len() - 1]).is_err());
}
