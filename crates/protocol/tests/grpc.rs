//! `grpc`: SeldonMessage protobuf ⇄ REST JSON, checked against an independent implementation
//! (prost-reflect's dynamic messages over `proto/seldon/prediction.proto`, with its protobuf
//! JSON mapping) on the canonical payloads in `testdata/v1/`.

use std::path::PathBuf;

use prost_reflect::prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};
use seldon_protocol::grpc::{
    feedback_from_json, feedback_to_json, frame, seldon_message_from_json,
    seldon_message_list_from_json, seldon_message_list_to_json, seldon_message_to_json, unframe,
};
use serde_json::{Value, json};

fn descriptor() -> MessageDescriptor {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("proto");
    let fds = protox::compile(["seldon/prediction.proto"], [dir]).unwrap();
    DescriptorPool::from_file_descriptor_set(fds)
        .unwrap()
        .get_message_by_name("seldon.protos.SeldonMessage")
        .unwrap()
}

fn testdata(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/v1")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The reference: JSON → DynamicMessage (protobuf JSON mapping).
fn reference(json: &[u8]) -> DynamicMessage {
    let mut de = serde_json::Deserializer::from_slice(json);
    DynamicMessage::deserialize(descriptor(), &mut de).unwrap()
}

/// The reference's JSON of a message (proto field names are already camelCase in Seldon's proto).
fn reference_json(m: &DynamicMessage) -> Value {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::new(&mut out);
    m.serialize_with_options(&mut ser, &SerializeOptions::new())
        .unwrap();
    serde_json::from_slice(&out).unwrap()
}

const CONVERTED: &[&str] = &[
    "ndarray.json",
    "ndarray_strings.json",
    "tensor.json",
    "strdata.json",
    "bindata.json",
    "jsondata.json",
    "status_failure.json",
];

#[test]
fn json_to_protobuf_matches_the_reference_encoding() {
    for name in CONVERTED {
        let json = testdata(name);
        let ours = seldon_message_from_json(&json).unwrap_or_else(|e| panic!("{name}: {e}"));
        let decoded = DynamicMessage::decode(descriptor(), ours.as_slice())
            .unwrap_or_else(|e| panic!("{name}: the reference cannot decode ours: {e}"));
        // Proto3 cannot tell an explicit default from an absent field: compare what the
        // reference makes of both messages.
        assert_eq!(
            reference_json(&decoded),
            reference_json(&reference(&json)),
            "{name}"
        );
    }
}

#[test]
fn protobuf_to_json_matches_the_reference_mapping() {
    for name in CONVERTED {
        let pb = reference(&testdata(name)).encode_to_vec();
        let ours: Value = serde_json::from_slice(&seldon_message_to_json(&pb).unwrap()).unwrap();
        let theirs = reference_json(&DynamicMessage::decode(descriptor(), pb.as_slice()).unwrap());
        assert_eq!(ours, theirs, "{name}");
    }
}

#[test]
fn round_trip_keeps_the_message() {
    for name in CONVERTED {
        let json: Value = serde_json::from_slice(&testdata(name)).unwrap();
        let pb = seldon_message_from_json(json.to_string().as_bytes()).unwrap();
        let back: Value = serde_json::from_slice(&seldon_message_to_json(&pb).unwrap()).unwrap();
        assert_eq!(
            back,
            reference_json(&reference(json.to_string().as_bytes())),
            "{name}"
        );
    }
    // Exactly what a REST node sees for a typical gRPC request.
    let pb = seldon_message_from_json(
        br#"{"data":{"names":["a"],"ndarray":[[1,2.5]]},"meta":{"puid":"p"}}"#,
    )
    .unwrap();
    assert_eq!(
        seldon_message_to_json(&pb).unwrap(),
        br#"{"data":{"names":["a"],"ndarray":[[1.0,2.5]]},"meta":{"puid":"p"}}"#
    );
}

#[test]
fn unconverted_forms_and_bad_input_are_refused_by_name() {
    let err = seldon_message_from_json(&testdata("tftensor.json")).unwrap_err();
    assert!(err.to_string().contains("data.tftensor"), "{err}");
    let tf_pb = reference(&testdata("tftensor.json")).encode_to_vec();
    let err = seldon_message_to_json(&tf_pb).unwrap_err();
    assert!(err.to_string().contains("data.tftensor"), "{err}");

    let cases: [(&[u8], &str); 6] = [
        (b"{nope", "is not valid JSON"),
        (br#"{"strData":"a","binData":"AA=="}"#, "only one of"),
        (br#"{"data":{"tensor":{},"ndarray":[]}}"#, "only one of"),
        (br#"{"extra":1}"#, "unknown key `extra`"),
        (br#"{"meta":{"routing":{"r":"x"}}}"#, "meta.routing"),
        (br#"{"binData":"***"}"#, "invalid base64"),
    ];
    for (input, needle) in cases {
        let err = seldon_message_from_json(input).unwrap_err().to_string();
        assert!(
            err.contains(needle),
            "{}: {err}",
            String::from_utf8_lossy(input)
        );
    }
    // Truncated protobuf: a length-delimited field longer than the buffer.
    let err = seldon_message_to_json(&[0x2a, 0x05, b'a']).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[test]
fn frames_are_one_uncompressed_message() {
    let framed = frame(b"abc");
    assert_eq!(framed, [0, 0, 0, 0, 3, b'a', b'b', b'c']);
    assert_eq!(unframe(&framed).unwrap(), b"abc");
    assert_eq!(unframe(&frame(b"")).unwrap(), b"");
    for (bad, needle) in [
        (&[0u8, 0, 0][..], "shorter than the 5-byte prefix"),
        (&[1, 0, 0, 0, 1, 7][..], "compressed"),
        (&[0, 0, 0, 0, 2, 7][..], "announces 2 bytes but carries 1"),
    ] {
        let err = unframe(bad).unwrap_err().to_string();
        assert!(err.contains(needle), "{err}");
    }
    assert_eq!(
        serde_json::from_slice::<Value>(
            &seldon_message_to_json(unframe(&frame(&[])).unwrap()).unwrap()
        )
        .unwrap(),
        json!({}),
        "an empty message is {{}}"
    );
}

/// Found while fixing the fuzzer's f32 finding (fuzz/ protocol_ops): a metric value beyond
/// f32::MAX became an infinite protobuf float, which the way back to JSON cannot write.
#[test]
fn a_metric_value_beyond_f32_is_refused() {
    let body = br#"{"meta":{"metrics":[{"key":"k","value":1e39}]}}"#;
    let err = seldon_message_from_json(body).unwrap_err();
    assert!(
        err.to_string()
            .contains("1e39 is out of range for a 32-bit float"),
        "{err}"
    );
    let ok = br#"{"meta":{"metrics":[{"key":"k","value":3.4028235e38}]}}"#;
    let pb = seldon_message_from_json(ok).unwrap();
    let back: Value = serde_json::from_slice(&seldon_message_to_json(&pb).unwrap()).unwrap();
    // Written in the float's shortest decimal form.
    assert_eq!(
        back["meta"]["metrics"][0]["value"].as_f64(),
        Some(3.4028235e38)
    );
}

fn descriptor_of(name: &str) -> MessageDescriptor {
    descriptor()
        .parent_pool()
        .get_message_by_name(name)
        .unwrap()
}

#[test]
fn feedback_matches_the_reference_both_ways() {
    let fb = descriptor_of("seldon.protos.Feedback");
    let json = testdata("feedback.json");
    let mut de = serde_json::Deserializer::from_slice(&json);
    let theirs = DynamicMessage::deserialize(fb.clone(), &mut de).unwrap();
    // protobuf → JSON: what the reference encodes, we read as the reference maps it.
    let ours: Value =
        serde_json::from_slice(&feedback_to_json(&theirs.encode_to_vec()).unwrap()).unwrap();
    assert_eq!(ours, reference_json(&theirs));
    assert_eq!(ours["reward"], json!(1.0));
    assert_eq!(
        ours["response"]["meta"]["routing"]["inner-router"],
        json!(0)
    );
    // JSON → protobuf: the reference decodes ours to the same message.
    let pb = feedback_from_json(&json).unwrap();
    let decoded = DynamicMessage::decode(fb, pb.as_slice()).unwrap();
    assert_eq!(reference_json(&decoded), reference_json(&theirs));
    // A reward with a fraction keeps its short form.
    let pb = feedback_from_json(br#"{"reward":0.1}"#).unwrap();
    assert_eq!(feedback_to_json(&pb).unwrap(), br#"{"reward":0.1}"#);
}

#[test]
fn feedback_failures_are_named() {
    for (input, needle) in [
        (&b"{"[..], "is not valid JSON"),
        (
            br#"{"reward":"high"}"#,
            "field `Feedback.reward` must be a number",
        ),
        (br#"{"reward":1e39}"#, "out of range for a 32-bit float"),
        (br#"{"score":1}"#, "unknown key `score`"),
        (br#"{"request":{"data":{"tftensor":{}}}}"#, "data.tftensor"),
    ] {
        let err = feedback_from_json(input).unwrap_err().to_string();
        assert!(
            err.contains(needle),
            "{}: {err}",
            String::from_utf8_lossy(input)
        );
    }
    // reward (field 3) as a varint: wrong wire type; a truncated sub-message.
    let err = feedback_to_json(&[0x18, 1]).unwrap_err().to_string();
    assert!(
        err.contains("Feedback` field 3 has the wrong wire type"),
        "{err}"
    );
    let err = feedback_to_json(&[0x0a, 4, 0x2a]).unwrap_err().to_string();
    assert!(err.contains("truncated"), "{err}");
}

#[test]
fn message_lists_match_the_reference() {
    let list = descriptor_of("seldon.protos.SeldonMessageList");
    let bare = testdata("message_list.json");
    let wrapped = testdata("message_list_wrapped.json");
    let mut de = serde_json::Deserializer::from_slice(&wrapped);
    let theirs = DynamicMessage::deserialize(list.clone(), &mut de).unwrap();
    for json in [&bare, &wrapped] {
        let pb = seldon_message_list_from_json(json).unwrap();
        let decoded = DynamicMessage::decode(list.clone(), pb.as_slice()).unwrap();
        assert_eq!(reference_json(&decoded), reference_json(&theirs));
    }
    let ours: Value =
        serde_json::from_slice(&seldon_message_list_to_json(&theirs.encode_to_vec()).unwrap())
            .unwrap();
    assert_eq!(ours, reference_json(&theirs));
    for (input, needle) in [
        (&br#"{"seldonMessages":{}}"#[..], "must be an array"),
        (br#"{"messages":[]}"#, "unknown key `messages`"),
        (br#""x""#, "an array or an object"),
        (br#"[{"strData":1}]"#, "strData"),
    ] {
        let err = seldon_message_list_from_json(input)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(needle),
            "{}: {err}",
            String::from_utf8_lossy(input)
        );
    }
    let err = seldon_message_list_to_json(&[0x08, 1])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("SeldonMessageList` field 1 has the wrong wire type"),
        "{err}"
    );
}

#[test]
fn method_paths_name_real_rpcs() {
    use seldon_protocol::grpc::method;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("proto");
    let fds = protox::compile(
        [
            "seldon/prediction.proto",
            "inference/open_inference_grpc.proto",
        ],
        [dir],
    )
    .unwrap();
    let pool = DescriptorPool::from_file_descriptor_set(fds).unwrap();
    let mut rpcs = Vec::new();
    for service in pool.services() {
        for m in service.methods() {
            rpcs.push(format!("/{}/{}", service.full_name(), m.name()));
        }
    }
    for path in method::ALL {
        assert!(
            rpcs.iter().any(|r| r == path),
            "{path} is not an rpc of proto/: {rpcs:?}"
        );
    }
    // Each step's input type is what our codecs read.
    let input_of = |path: &str| {
        let (service, name) = path[1..].split_once('/').unwrap();
        let s = pool.get_service_by_name(service).unwrap();
        let m = s.methods().find(|m| m.name() == name).unwrap();
        m.input().full_name().to_string()
    };
    assert_eq!(
        input_of(method::COMBINER_AGGREGATE),
        "seldon.protos.SeldonMessageList"
    );
    assert_eq!(
        input_of(method::MODEL_SEND_FEEDBACK),
        "seldon.protos.Feedback"
    );
    assert_eq!(
        input_of(method::SELDON_PREDICT),
        "seldon.protos.SeldonMessage"
    );
    assert_eq!(input_of(method::MODEL_INFER), "inference.ModelInferRequest");
    // The list is complete and has no duplicates.
    let unique: std::collections::BTreeSet<_> = method::ALL.iter().collect();
    assert_eq!(unique.len(), method::ALL.len());
}

/// Every JSON number as a double: protobuf carries `google.protobuf.Value` numbers (ndarray,
/// jsonData, tags) as doubles, so `1` comes back as `1.0` on any protobuf path.
fn doubles(v: Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        Value::Array(items) => Value::Array(items.into_iter().map(doubles).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, doubles(v))).collect()),
        other => other,
    }
}

/// The model server's own conversions (`seldon_serving::grpc`, what a real gRPC node runs)
/// agree with ours on every converted payload, both ways.
#[test]
fn the_model_servers_conversions_agree_with_ours() {
    use seldon_protocol::v1::SeldonMessage;
    use seldon_serving::grpc::pb::seldon::protos as sp;
    use seldon_serving::grpc::{msg_from_pb, msg_to_pb};
    let canonical = |m: &SeldonMessage| doubles(serde_json::to_value(m).unwrap());
    for name in CONVERTED {
        let json = testdata(name);
        let typed = SeldonMessage::from_slice(&json).unwrap();
        let ours = seldon_message_from_json(&json).unwrap();
        let theirs = msg_from_pb(sp::SeldonMessage::decode(ours.as_slice()).unwrap());
        assert_eq!(
            canonical(&theirs),
            canonical(&typed),
            "{name}: the server reads ours"
        );
        let pb = msg_to_pb(typed.clone()).encode_to_vec();
        let back = SeldonMessage::from_slice(&seldon_message_to_json(&pb).unwrap()).unwrap();
        assert_eq!(
            canonical(&back),
            canonical(&typed),
            "{name}: we read the server's"
        );
    }
}
