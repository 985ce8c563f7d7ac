//! Seldon v1 types against the canonical payloads in `testdata/v1`.

mod common;

use std::collections::BTreeMap;

use common::read;
use seldon_protocol::v1::{
    Feedback, GraphMetadata, GraphNode, MetricType, ModelMetadata, NodeKind, SeldonMessage,
    SeldonMessageList, StatusFlag, TfDataType, graph_metadata,
};
use seldon_protocol::{ProtocolError, status_body};

const MESSAGES: &[&str] = &[
    "v1/ndarray.json",
    "v1/ndarray_strings.json",
    "v1/tensor.json",
    "v1/tftensor.json",
    "v1/tftensor_int.json",
    "v1/strdata.json",
    "v1/bindata.json",
    "v1/jsondata.json",
    "v1/status_failure.json",
];

#[test]
fn every_canonical_message_round_trips() {
    for file in MESSAGES {
        let parsed =
            SeldonMessage::from_slice(&read(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let written = parsed.to_vec().unwrap();
        let reparsed = SeldonMessage::from_slice(&written).unwrap();
        assert_eq!(parsed, reparsed, "{file}");
        assert_ne!(parsed, SeldonMessage::default(), "{file} parsed to nothing");
    }
}

/// Found by fuzzing (fuzz/corpus/protocol_ops/float-roundtrip.json): serde_json's default
/// float parser read 0.9184467440737095 one ULP off, so decode → encode changed the value.
/// The fix is serde_json's `float_roundtrip` feature, not yet enabled: switching a serde_json
/// feature rebuilds every crate that uses serde_json (docs/fuzzing.md, "Open").
#[test]
#[ignore = "needs serde_json float_roundtrip (docs/fuzzing.md)"]
fn float_values_survive_a_round_trip() {
    for text in [
        "0.9184467440737095",
        "0.1",
        "2.2250738585072014e-308",
        "1.7976931348623157e308",
        "-0.0",
        "5e-324",
    ] {
        let body = format!(r#"{{"data":{{"ndarray":[[{text}]]}}}}"#);
        let written = SeldonMessage::from_slice(body.as_bytes())
            .unwrap()
            .to_vec()
            .unwrap();
        let again = SeldonMessage::from_slice(&written)
            .unwrap()
            .to_vec()
            .unwrap();
        assert_eq!(written, again, "{text}");
        let value: f64 = text.parse().unwrap();
        let parsed: serde_json::Value = serde_json::from_slice(&written).unwrap();
        assert_eq!(
            parsed["data"]["ndarray"][0][0].as_f64(),
            Some(value),
            "{text}"
        );
    }
}

#[test]
fn ndarray_message_fields_land_where_seldon_puts_them() {
    let msg = SeldonMessage::from_slice(&read("v1/ndarray.json")).unwrap();
    let meta = msg.meta.unwrap();
    assert_eq!(meta.puid, "9a6b0d3e-puid");
    assert_eq!(meta.routing["router"], 1);
    assert_eq!(meta.routing["ab-test"], -1);
    assert_eq!(meta.request_path["classifier"], "seldonio/sklearn-iris:0.3");
    assert_eq!(meta.tags["score"], 0.5);
    let kinds: Vec<_> = meta.metrics.iter().map(|m| m.metric_type).collect();
    assert_eq!(
        kinds,
        [MetricType::Counter, MetricType::Gauge, MetricType::Timer]
    );
    assert_eq!(meta.metrics[1].tags["node"], "classifier");
    let data = msg.data.unwrap();
    assert_eq!(data.names, ["sepal_length", "sepal_width"]);
    assert_eq!(data.ndarray.unwrap()[1], serde_json::json!([4.9, 3.0]));
}

#[test]
fn payload_forms_decode() {
    let t = SeldonMessage::from_slice(&read("v1/tensor.json"))
        .unwrap()
        .data
        .unwrap()
        .tensor
        .unwrap();
    assert_eq!(
        (t.shape, t.values),
        (vec![2, 2], vec![0.0, 0.5, 1.0, 0.001])
    );

    let tf = SeldonMessage::from_slice(&read("v1/tftensor.json"))
        .unwrap()
        .data
        .unwrap()
        .tftensor
        .unwrap();
    assert_eq!(tf.dtype, TfDataType::Float);
    let dims: Vec<i64> = tf
        .tensor_shape
        .unwrap()
        .dim
        .iter()
        .map(|d| d.size)
        .collect();
    assert_eq!(dims, [1, 3]);
    assert_eq!(tf.float_val, [1.5, -2.25, 0.1]);

    // int64 travels as strings in protobuf JSON; 2^53 + 1 must survive exactly.
    let tf = SeldonMessage::from_slice(&read("v1/tftensor_int.json"))
        .unwrap()
        .data
        .unwrap()
        .tftensor
        .unwrap();
    assert_eq!(tf.int64_val, [9_007_199_254_740_993, -1]);
    let written = String::from_utf8(
        SeldonMessage {
            data: None,
            ..Default::default()
        }
        .to_vec()
        .unwrap(),
    )
    .unwrap();
    assert_eq!(written, "{}");
    let msg = SeldonMessage::from_slice(&read("v1/tftensor_int.json")).unwrap();
    let written = String::from_utf8(msg.to_vec().unwrap()).unwrap();
    assert!(
        written.contains(r#""int64Val":["9007199254740993","-1"]"#),
        "{written}"
    );
    assert!(
        written.contains(r#""size":"2","name":"batch""#),
        "{written}"
    );

    let bin = SeldonMessage::from_slice(&read("v1/bindata.json")).unwrap();
    assert_eq!(
        bin.bin_data.as_deref(),
        Some(&[0u8, 1, 2, 3, 255, 16, 254, 253][..])
    );
    assert!(
        String::from_utf8(bin.to_vec().unwrap())
            .unwrap()
            .contains(r#""binData":"AAECA/8Q/v0=""#)
    );

    let s = SeldonMessage::from_slice(&read("v1/strdata.json")).unwrap();
    assert!(
        s.str_data
            .unwrap()
            .starts_with("The quick brown fox — jumps")
    );

    let j = SeldonMessage::from_slice(&read("v1/jsondata.json")).unwrap();
    assert_eq!(
        j.json_data.unwrap()["instances"][1]["nested"]["deep"],
        "yes"
    );

    let f = SeldonMessage::from_slice(&read("v1/status_failure.json"))
        .unwrap()
        .status
        .unwrap();
    assert_eq!(
        (f.code, f.status, f.reason.as_str()),
        (500, StatusFlag::Failure, "MICROSERVICE_INTERNAL_ERROR")
    );
}

#[test]
fn bin_data_accepts_url_safe_and_unpadded_base64() {
    let msg = SeldonMessage::from_slice(br#"{"binData":"AAECA_8Q_v0"}"#).unwrap();
    assert_eq!(msg.bin_data.unwrap(), [0, 1, 2, 3, 255, 16, 254, 253]);
}

#[test]
fn enums_read_names_and_numbers() {
    let msg = SeldonMessage::from_slice(
        br#"{"status":{"code":1,"status":1},"meta":{"metrics":[{"key":"k","type":2,"value":1}]}}"#,
    )
    .unwrap();
    assert_eq!(msg.status.unwrap().status, StatusFlag::Failure);
    assert_eq!(msg.meta.unwrap().metrics[0].metric_type, MetricType::Timer);
    assert_eq!(TfDataType::from_name("DT_HALF"), Some(TfDataType::Half));
    assert_eq!(TfDataType::from_number(23), Some(TfDataType::Uint64));
    assert_eq!(TfDataType::from_name("DT_NOPE"), None);
    assert_eq!(StatusFlag::from_number(2), None);
}

#[test]
fn malformed_messages_are_rejected_with_the_reason() {
    let cases: &[(&str, &str)] = &[
        ("{", "SeldonMessage is not valid JSON"),
        (
            r#"{"strData":"a","binData":"AA=="}"#,
            "only one of data, binData, strData, jsonData, customData may be set, found binData, strData",
        ),
        (
            r#"{"data":{"ndarray":[1],"tensor":{"shape":[1],"values":[1]}}}"#,
            "found tensor, ndarray",
        ),
        (r#"{"binData":"not base64!"}"#, "invalid base64"),
        (
            r#"{"status":{"status":"MAYBE"}}"#,
            "`MAYBE` is not a StatusFlag name",
        ),
        (
            r#"{"meta":{"metrics":[{"key":"k","type":7}]}}"#,
            "7 is not a MetricType number",
        ),
        (r#"{"meta":{"routing":{"r":"1"}}}"#, "invalid type"),
        (r#"{"data":{"ndarray":{"a":1}}}"#, "invalid type"),
        (
            r#"{"data":{"tftensor":{"int64Val":["x"]}}}"#,
            "`x` is not an int64",
        ),
    ];
    for (body, needle) in cases {
        let err = SeldonMessage::from_slice(body.as_bytes()).unwrap_err();
        assert!(err.to_string().contains(needle), "{body}: {err}");
    }
}

#[test]
fn failure_message_matches_status_body() {
    let typed = SeldonMessage::failure(503, "node `m` failed", "UPSTREAM");
    let from_bytes =
        SeldonMessage::from_slice(&status_body(503, "node `m` failed", "UPSTREAM")).unwrap();
    assert_eq!(typed, from_bytes);
    assert!(typed.check_oneof().is_ok());
}

#[test]
fn feedback_round_trips_and_exposes_routing() {
    let fb = Feedback::from_slice(&read("v1/feedback.json")).unwrap();
    assert_eq!(fb.reward, 1.0);
    assert_eq!(
        fb.response.as_ref().unwrap().meta.as_ref().unwrap().routing["router"],
        1
    );
    let again = Feedback::from_slice(&serde_json::to_vec(&fb).unwrap()).unwrap();
    assert_eq!(fb, again);
    // The typed and byte-level readers agree.
    let routing = seldon_protocol::feedback_routing(&read("v1/feedback.json")).unwrap();
    assert_eq!(routing, fb.response.unwrap().meta.unwrap().routing);
}

#[test]
fn feedback_failure_cases() {
    assert!(matches!(
        Feedback::from_slice(b"[1]"),
        Err(ProtocolError::Json { .. })
    ));
    let err = Feedback::from_slice(br#"{"truth":{"strData":"a","jsonData":1}}"#).unwrap_err();
    assert!(matches!(err, ProtocolError::OneOf { .. }), "{err}");
    let err = Feedback::from_slice(br#"{"reward":"high"}"#).unwrap_err();
    assert!(err.to_string().contains("invalid type"), "{err}");
}

/// Found by fuzzing (fuzz/corpus/protocol_ops/reward-beyond-f32.json): a 32-bit float field
/// given a number beyond f32::MAX was read as infinity, which serializes as `null`, so the
/// message did not read back. Now refused with the reason; f32::MAX itself still reads.
#[test]
fn f32_fields_refuse_numbers_beyond_f32() {
    let err = Feedback::from_slice(br#"{"response":{},"reward":1e39}"#).unwrap_err();
    assert!(
        err.to_string().contains("out of range for a 32-bit float"),
        "{err}"
    );
    let err = SeldonMessage::from_slice(
        br#"{"meta":{"metrics":[{"key":"k","type":"GAUGE","value":-3.5e38}]}}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
    let err = SeldonMessage::from_slice(
        br#"{"data":{"tftensor":{"dtype":"DT_FLOAT","floatVal":[1,4e38]}}}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
    let fb = Feedback::from_slice(br#"{"reward":3.4028235e38}"#).unwrap();
    assert_eq!(fb.reward, f32::MAX);
    let written = serde_json::to_vec(&fb).unwrap();
    assert_eq!(Feedback::from_slice(&written).unwrap(), fb);
}

#[test]
fn message_list_reads_both_forms_and_writes_the_bare_array() {
    let bare = SeldonMessageList::from_slice(&read("v1/message_list.json")).unwrap();
    let wrapped = SeldonMessageList::from_slice(&read("v1/message_list_wrapped.json")).unwrap();
    assert_eq!(bare, wrapped);
    assert_eq!(bare.seldon_messages.len(), 3);
    let written = serde_json::to_vec(&bare).unwrap();
    assert!(written.starts_with(b"[{"));
    assert_eq!(SeldonMessageList::from_slice(&written).unwrap(), bare);
    // What the executor's aggregate_request builds is a valid list.
    let parts: Vec<Vec<u8>> = bare
        .seldon_messages
        .iter()
        .map(|m| m.to_vec().unwrap())
        .collect();
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let body = seldon_protocol::aggregate_request(&refs).unwrap();
    assert_eq!(SeldonMessageList::from_slice(&body).unwrap(), bare);
}

#[test]
fn message_list_failure_cases() {
    for body in [
        &b"{\"seldonMessages\":1}"[..],
        b"\"x\"",
        b"[1]",
        b"[{\"strData\":1}]",
    ] {
        let err = SeldonMessageList::from_slice(body).unwrap_err();
        assert!(
            err.to_string()
                .contains("expected a JSON array of SeldonMessages"),
            "{err}"
        );
    }
    let err = SeldonMessageList::from_slice(br#"[{"strData":"a","binData":""}]"#).unwrap_err();
    assert!(matches!(err, ProtocolError::OneOf { .. }), "{err}");
}

#[test]
fn model_metadata_round_trips() {
    let m = ModelMetadata::from_slice(&read("v1/model_metadata.json")).unwrap();
    assert_eq!(m.custom["author"], "seldon-mesh");
    assert_eq!(m.inputs[0].messagetype.as_deref(), Some("ndarray"));
    let again = ModelMetadata::from_slice(&serde_json::to_vec(&m).unwrap()).unwrap();
    assert_eq!(m, again);
    let err = ModelMetadata::from_slice(br#"{"name":1}"#).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("model metadata is not valid JSON"),
        "{err}"
    );
}

fn models(names: &[&str]) -> BTreeMap<String, ModelMetadata> {
    names
        .iter()
        .map(|n| {
            let io = |dir: &str| {
                vec![serde_json::from_value(serde_json::json!({"name": format!("{n}-{dir}"), "datatype": "FP32", "shape": [-1]})).unwrap()]
            };
            (n.to_string(), ModelMetadata { name: n.to_string(), inputs: io("in"), outputs: io("out"), ..Default::default() })
        })
        .collect()
}

fn edges(g: &GraphMetadata) -> (String, String) {
    (
        g.graphinputs[0].name.clone().unwrap(),
        g.graphoutputs[0].name.clone().unwrap(),
    )
}

#[test]
fn graph_metadata_follows_seldons_edge_rule() {
    use NodeKind::*;
    let all = models(&["a", "b", "c", "d"]);
    let cases: Vec<(GraphNode, (&str, &str))> = vec![
        (GraphNode::leaf("a", Model), ("a-in", "a-out")),
        (GraphNode::leaf("a", Combiner), ("a-in", "a-out")),
        // MODEL / TRANSFORMER: own inputs, first child's outputs (recursively).
        (
            GraphNode::with_children(
                "a",
                Transformer,
                vec![GraphNode::with_children(
                    "b",
                    Model,
                    vec![GraphNode::leaf("c", Model)],
                )],
            ),
            ("a-in", "c-out"),
        ),
        // OUTPUT_TRANSFORMER: child's inputs, own outputs.
        (
            GraphNode::with_children(
                "a",
                OutputTransformer,
                vec![GraphNode::with_children(
                    "b",
                    Transformer,
                    vec![GraphNode::leaf("c", Model)],
                )],
            ),
            ("b-in", "a-out"),
        ),
        // COMBINER: first child's inputs, own outputs.
        (
            GraphNode::with_children(
                "a",
                Combiner,
                vec![GraphNode::leaf("b", Model), GraphNode::leaf("c", Model)],
            ),
            ("b-in", "a-out"),
        ),
        // ROUTER: first child's.
        (
            GraphNode::with_children(
                "a",
                Router,
                vec![
                    GraphNode::with_children("b", Model, vec![GraphNode::leaf("d", Model)]),
                    GraphNode::leaf("c", Model),
                ],
            ),
            ("b-in", "d-out"),
        ),
        // Other: its own.
        (
            GraphNode::with_children("a", Other, vec![GraphNode::leaf("b", Model)]),
            ("a-in", "a-out"),
        ),
    ];
    for (tree, (input, output)) in cases {
        let g = graph_metadata("p", &tree, &all).unwrap();
        assert_eq!(edges(&g), (input.to_owned(), output.to_owned()), "{tree:?}");
        assert_eq!(g.name, "p");
    }
}

#[test]
fn graph_metadata_matches_the_golden_payload() {
    let golden: GraphMetadata = serde_json::from_slice(&read("v1/graph_metadata.json")).unwrap();
    let tree = GraphNode::with_children(
        "transformer",
        NodeKind::Transformer,
        vec![GraphNode::leaf("classifier", NodeKind::Model)],
    );
    let mut per_node = golden.models.clone();
    per_node.insert("unrelated".into(), ModelMetadata::default());
    let built = graph_metadata("example", &tree, &per_node).unwrap();
    assert_eq!(built, golden);
    assert_eq!(
        serde_json::from_slice::<GraphMetadata>(&serde_json::to_vec(&built).unwrap()).unwrap(),
        golden
    );
    let v: serde_json::Value = serde_json::to_value(&built).unwrap();
    for key in ["name", "models", "graphinputs", "graphoutputs"] {
        assert!(v.get(key).is_some(), "{key}");
    }
}

#[test]
fn graph_metadata_without_a_nodes_metadata_fails() {
    let tree = GraphNode::with_children(
        "a",
        NodeKind::Model,
        vec![GraphNode::leaf("ghost", NodeKind::Model)],
    );
    let err = graph_metadata("p", &tree, &models(&["a"])).unwrap_err();
    assert!(
        matches!(&err, ProtocolError::MissingNodeMetadata { node } if node == "ghost"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "graph metadata: no model metadata for node `ghost`"
    );
}
