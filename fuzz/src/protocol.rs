//! `protocol_ops`: every byte-level operation and typed parser of seldon-protocol on one body.
//!
//! The input is used whole as a payload (so real payloads from crates/protocol/testdata are
//! meaningful seeds), and split at NUL bytes as the parts of a combiner's `/aggregate` request.

use std::collections::BTreeMap;

use seldon_protocol::{
    aggregate_request, check_json_object, check_v2_request, check_v2_response, feedback_routing,
    grpc, inject_routing, route_from_reply, status_body, v1, v2, v2_chain,
};
use serde_json::Value;
use serde_json::value::RawValue;

/// Valid JSON text in UTF-8 (numbers unbounded, as the byte-level ops treat them).
fn is_json(bytes: &[u8]) -> bool {
    serde_json::from_slice::<&RawValue>(bytes).is_ok()
}

use crate::json::{same_json, value};

pub fn protocol_ops(data: &[u8]) {
    // Router reply: any answer is fine, it must not panic.
    let _ = route_from_reply(data);
    let _ = check_json_object(data, "fuzz");
    let _ = check_v2_request(data);

    feedback(data);
    routing(data);
    aggregate(data);
    chain(data);
    typed(data);
    grpc_json(data);
    status(data);
}

/// `feedback_routing` agrees with a full decode of `response.meta.routing`.
fn feedback(data: &[u8]) {
    let Ok(routing) = feedback_routing(data) else {
        return;
    };
    assert!(is_json(data), "feedback_routing accepted non-JSON");
    let Some(value) = value(data) else {
        return;
    };
    let full = &value["response"]["meta"]["routing"];
    for (node, child) in &routing {
        assert_eq!(
            full[node].as_i64(),
            Some(i64::from(*child)),
            "feedback_routing read {node}={child}, a full decode says {full}"
        );
    }
}

/// `inject_routing` writes valid JSON in which `meta.routing` holds every injected entry.
fn routing(data: &[u8]) {
    let mut routing = BTreeMap::new();
    routing.insert("router".to_string(), (data.len() % 3) as i32 - 1);
    routing.insert("n\"é\\".to_string(), i32::MAX);
    let Ok(out) = inject_routing(data, &routing) else {
        return;
    };
    assert!(
        is_json(&out),
        "inject_routing wrote invalid JSON: {}",
        String::from_utf8_lossy(&out)
    );
    if value(data).is_none() {
        return;
    }
    let value = value(&out).expect("decodes as its input did");
    for (node, child) in &routing {
        assert_eq!(
            value["meta"]["routing"][node].as_i64(),
            Some(i64::from(*child)),
            "inject_routing lost {node}: {}",
            String::from_utf8_lossy(&out)
        );
    }
}

/// `aggregate_request` of the NUL-separated parts is a JSON array of exactly those parts.
fn aggregate(data: &[u8]) {
    let parts: Vec<&[u8]> = data.split(|b| *b == 0).collect();
    let Ok(out) = aggregate_request(&parts) else {
        return;
    };
    let items: Vec<&RawValue> = serde_json::from_slice(&out).unwrap_or_else(|e| {
        panic!(
            "aggregate_request wrote invalid JSON ({e}): {}",
            String::from_utf8_lossy(&out)
        )
    });
    assert_eq!(items.len(), parts.len(), "aggregate_request lost parts");
    for (item, part) in items.iter().zip(&parts) {
        // Verbatim: the same text, less surrounding whitespace.
        let part = std::str::from_utf8(part).expect("accepted part is UTF-8");
        assert_eq!(
            item.get(),
            part.trim_matches([' ', '\t', '\n', '\r']),
            "aggregate_request changed a part"
        );
    }
}

/// A response `check_v2_response` accepts chains; the chained request is JSON and passes the
/// same shape check as inputs.
fn chain(data: &[u8]) {
    let checked = check_v2_response(data);
    let chained = v2_chain(data);
    if checked.is_ok() {
        let out = chained.unwrap_or_else(|e| panic!("checked v2 response does not chain: {e}"));
        assert!(
            is_json(&out),
            "v2_chain wrote invalid JSON: {}",
            String::from_utf8_lossy(&out)
        );
        let Some(value) = value(&out) else {
            return;
        };
        let inputs = value["inputs"]
            .as_array()
            .expect("chained request has inputs");
        for input in inputs {
            for field in ["name", "shape", "datatype"] {
                assert!(!input[field].is_null(), "chained input lost `{field}`");
            }
        }
    } else if let Ok(out) = chained {
        // Whatever v2_chain accepts, it must write JSON.
        assert!(is_json(&out), "v2_chain wrote invalid JSON");
    }
}

/// Typed v1/v2 models: parse → serialize → parse is stable.
fn typed(data: &[u8]) {
    macro_rules! round_trip {
        ($ty:ty) => {
            if let Ok(first) = <$ty>::from_slice(data) {
                let bytes =
                    serde_json::to_vec(&first).expect(concat!(stringify!($ty), " serializes"));
                let second = <$ty>::from_slice(&bytes).unwrap_or_else(|e| {
                    panic!(
                        "{} does not re-parse its own output ({e}): {}",
                        stringify!($ty),
                        String::from_utf8_lossy(&bytes)
                    )
                });
                let again = serde_json::to_vec(&second).expect("serializes");
                assert!(
                    same_json(&bytes, &again),
                    "{} round trip is not stable:\n{}\n{}",
                    stringify!($ty),
                    String::from_utf8_lossy(&bytes),
                    String::from_utf8_lossy(&again),
                );
            }
        };
    }
    round_trip!(v1::SeldonMessage);
    round_trip!(v1::Feedback);
    round_trip!(v1::SeldonMessageList);
    round_trip!(v1::ModelMetadata);
    round_trip!(v2::InferenceRequest);
    round_trip!(v2::InferenceResponse);
}

/// gRPC: unframe never panics; JSON → protobuf → JSON → protobuf is stable.
fn grpc_json(data: &[u8]) {
    if let Ok(message) = grpc::unframe(data) {
        assert_eq!(grpc::frame(message), data, "frame(unframe(x)) != x");
    }
    let _ = grpc::seldon_message_to_json(data);
    let Ok(pb) = grpc::seldon_message_from_json(data) else {
        return;
    };
    let json = grpc::seldon_message_to_json(&pb)
        .unwrap_or_else(|e| panic!("protobuf written by from_json does not decode: {e}"));
    let pb2 = grpc::seldon_message_from_json(&json).unwrap_or_else(|e| {
        panic!(
            "JSON written by to_json is refused ({e}): {}",
            String::from_utf8_lossy(&json)
        )
    });
    let json2 = grpc::seldon_message_to_json(&pb2).expect("decodes");
    assert!(
        same_json(&json, &json2),
        "gRPC JSON round trip is not stable:\n{}\n{}",
        String::from_utf8_lossy(&json),
        String::from_utf8_lossy(&json2)
    );
}

/// `status_body` quotes any text into valid JSON.
fn status(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let body = status_body(502, &text, &text);
    let value: Value = serde_json::from_slice(&body).expect("status_body writes JSON");
    assert_eq!(value["status"]["info"].as_str(), Some(&*text));
}
