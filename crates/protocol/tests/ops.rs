//! The executor's byte-level payload operations: behaviour and failure cases.

use std::collections::BTreeMap;

use seldon_protocol::{
    ProtocolError, aggregate_request, feedback_routing, inject_routing, route_from_reply,
    status_body, v2_chain,
};
use serde_json::{Value, json};

fn routing(pairs: &[(&str, i32)]) -> BTreeMap<String, i32> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn value(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

// ---------------------------------------------------------------- route_from_reply

#[test]
fn route_from_every_documented_reply_form() {
    let cases: &[(&str, i32)] = &[
        (r#"{"data":{"ndarray":[[1]]}}"#, 1),
        (r#"{"data":{"ndarray":[2]}}"#, 2),
        (
            r#"{"data":{"names":["r"],"ndarray":[[0, 9]]},"meta":{"tags":{}}}"#,
            0,
        ),
        (r#"{"data":{"tensor":{"shape":[1,1],"values":[3.0]}}}"#, 3),
        (
            r#"{"data":{"tftensor":{"dtype":"DT_INT32","intVal":[4]}}}"#,
            4,
        ),
        ("[5]", 5),
        (" [ 6 , 7 ] \n", 6),
        ("[-1]", -1),
        (r#"{"data":{"ndarray":[[-2]]}}"#, -2),
        ("[1e0]", 1),
    ];
    for (body, expected) in cases {
        assert_eq!(
            route_from_reply(body.as_bytes()).unwrap(),
            *expected,
            "{body}"
        );
    }
}

#[test]
fn route_rejects_what_is_not_a_route_and_says_why() {
    let cases: &[(&str, &str)] = &[
        ("", "not valid JSON"),
        ("{\"data\":", "not valid JSON"),
        ("[]", "is empty"),
        (r#"{"data":{"ndarray":[]}}"#, "data.ndarray is empty"),
        (r#"{"data":{"ndarray":[[]]}}"#, "data.ndarray is empty"),
        (r#"{"data":{"ndarray":[1.5]}}"#, "1.5, not a 32-bit integer"),
        (r#"{"data":{"ndarray":["a"]}}"#, "\"a\", not an integer"),
        (r#"{"data":{"ndarray":{"a":1}}}"#, "must be an array"),
        ("[4294967296]", "not a 32-bit integer"),
        (r#"{"data":{"tensor":{"shape":[1]}}}"#, "no `values`"),
        (r#"{"data":{"tftensor":{"floatVal":[1]}}}"#, "no `intVal`"),
        (r#"{"strData":"1"}"#, "no `data` member"),
        (r#"{"data":{"names":["x"]}}"#, "`data` has no route"),
        ("\"1\"", "must be a JSON object"),
        ("7", "must be a JSON object"),
    ];
    for (body, needle) in cases {
        let err = route_from_reply(body.as_bytes()).unwrap_err();
        assert!(err.to_string().contains(needle), "{body:?}: {err}");
    }
}

// ---------------------------------------------------------------- aggregate_request

#[test]
fn aggregate_copies_parts_verbatim_into_a_bare_array() {
    let a = br#"{"data":{"ndarray":[[1, 2]]} , "meta":{"puid":"p"}}"#.as_slice();
    let b = b" {\"strData\":\"x\\u0041\"} ".as_slice();
    let c = b"[1,2]".as_slice();
    let out = aggregate_request(&[a, b, c]).unwrap();
    let mut expected = b"[".to_vec();
    expected.extend_from_slice(a);
    expected.push(b',');
    expected.extend_from_slice(b);
    expected.push(b',');
    expected.extend_from_slice(c);
    expected.push(b']');
    assert_eq!(out, expected);
    assert_eq!(value(&out)[1]["strData"], "xA");
    assert_eq!(aggregate_request(&[]).unwrap(), b"[]");
}

#[test]
fn aggregate_names_the_part_that_is_not_json() {
    let err = aggregate_request(&[b"{}", b"[1]", b"not json"]).unwrap_err();
    assert!(
        matches!(err, ProtocolError::AggregatePart { index: 2, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("aggregate part 2 is not valid JSON"),
        "{err}"
    );
    // Two values in one part would make the array wrong, so it is rejected too.
    let err = aggregate_request(&[b"{} {}"]).unwrap_err();
    assert!(
        matches!(err, ProtocolError::AggregatePart { index: 0, .. }),
        "{err:?}"
    );
    let err = aggregate_request(&[b""]).unwrap_err();
    assert!(
        matches!(err, ProtocolError::AggregatePart { index: 0, .. }),
        "{err:?}"
    );
}

/// Found by fuzzing (fuzz/corpus/protocol_ops/aggregate-invalid-utf8.bin): a part whose string
/// holds bytes that are not UTF-8 was accepted and copied, so the combiner got invalid JSON.
#[test]
fn aggregate_refuses_a_part_that_is_not_utf8() {
    let bad: &[u8] = b"{\"reque~\xc3hst\":1}";
    let err = aggregate_request(&[b"{}", bad]).unwrap_err();
    assert!(
        matches!(err, ProtocolError::AggregatePart { index: 1, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("invalid unicode code point"),
        "{err}"
    );
    // Valid UTF-8 (multi-byte) still passes verbatim.
    let ok = "{\"é\":\"ü\"}".as_bytes();
    assert_eq!(aggregate_request(&[ok]).unwrap(), [b"[", ok, b"]"].concat());
}

// ---------------------------------------------------------------- feedback_routing

#[test]
fn feedback_routing_reads_response_meta_routing() {
    let body = br#"{"request":{"data":{"ndarray":[[1]]}},"response":{"data":{"ndarray":[[0.9]]},"meta":{"puid":"x","routing":{"router":1,"ab":-1}}},"reward":1.0,"truth":{}}"#;
    assert_eq!(
        feedback_routing(body).unwrap(),
        routing(&[("router", 1), ("ab", -1)])
    );
}

#[test]
fn feedback_routing_absent_anywhere_is_empty() {
    for body in [
        r#"{}"#,
        r#"{"reward":1}"#,
        r#"{"response":null}"#,
        r#"{"response":{}}"#,
        r#"{"response":{"meta":{}}}"#,
        r#"{"response":{"meta":{"routing":null}}}"#,
        r#"{"response":{"meta":{"routing":{}}}}"#,
    ] {
        assert!(
            feedback_routing(body.as_bytes()).unwrap().is_empty(),
            "{body}"
        );
    }
}

#[test]
fn feedback_routing_rejects_malformed_feedback() {
    let cases: &[(&str, &str)] = &[
        ("{", "feedback is not valid JSON"),
        ("[]", "feedback must be a JSON object, found an array"),
        (
            r#"{"response":"x"}"#,
            "feedback response must be a JSON object, found a string",
        ),
        (
            r#"{"response":{"meta":1}}"#,
            "response.meta must be a JSON object, found a number",
        ),
        (
            r#"{"response":{"meta":{"routing":{"r":"1"}}}}"#,
            "field `routing` must be an object",
        ),
        (
            r#"{"response":{"meta":{"routing":{"r":1.5}}}}"#,
            "field `routing`",
        ),
        (
            r#"{"response":{"meta":{"routing":[1]}}}"#,
            "field `routing`",
        ),
    ];
    for (body, needle) in cases {
        let err = feedback_routing(body.as_bytes()).unwrap_err();
        assert!(err.to_string().contains(needle), "{body}: {err}");
    }
}

// ---------------------------------------------------------------- inject_routing

#[test]
fn inject_routing_adds_meta_and_keeps_every_other_byte() {
    let body = br#"{ "data" : {"ndarray":[[1.0, 2.50]]}, "x":"\u00e9" }"#;
    let out = inject_routing(body, &routing(&[("router", 0)])).unwrap();
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"{ "data" : {"ndarray":[[1.0, 2.50]]}, "x":"\u00e9" ,"meta":{"routing":{"router":0}}}"#
    );
}

#[test]
fn inject_routing_into_empty_object_and_null_meta() {
    let out = inject_routing(b"{}", &routing(&[("r", 1)])).unwrap();
    assert_eq!(out, br#"{"meta":{"routing":{"r":1}}}"#);
    let out = inject_routing(br#"{"meta":null,"strData":"s"}"#, &routing(&[("r", 1)])).unwrap();
    assert_eq!(out, br#"{"meta":{"routing":{"r":1}},"strData":"s"}"#);
}

#[test]
fn inject_routing_keeps_other_meta_members() {
    let body = br#"{"meta":{"puid":"abc","tags":{"t":[1, 2]}},"binData":"AAEC"}"#;
    let out = inject_routing(body, &routing(&[("b", 1), ("a", -1)])).unwrap();
    assert_eq!(
        out,
        br#"{"meta":{"puid":"abc","tags":{"t":[1, 2]},"routing":{"a":-1,"b":1}},"binData":"AAEC"}"#
    );
    let out = inject_routing(br#"{"meta":{}}"#, &routing(&[("a", 2)])).unwrap();
    assert_eq!(out, br#"{"meta":{"routing":{"a":2}}}"#);
}

#[test]
fn inject_routing_merges_with_existing_routing() {
    let body = br#"{"meta":{"routing":{"inner":1,"outer":0},"puid":"p"},"data":{"tensor":{"shape":[1],"values":[1]}}}"#;
    let out = inject_routing(body, &routing(&[("outer", -1), ("top", 2)])).unwrap();
    assert_eq!(
        out,
        br#"{"meta":{"routing":{"inner":1,"outer":-1,"top":2},"puid":"p"},"data":{"tensor":{"shape":[1],"values":[1]}}}"#
    );
    let out = inject_routing(br#"{"meta":{"routing":null}}"#, &routing(&[("a", 1)])).unwrap();
    assert_eq!(out, br#"{"meta":{"routing":{"a":1}}}"#);
}

#[test]
fn inject_routing_escapes_node_names() {
    let out = inject_routing(b"{}", &routing(&[("we\"ird\\", 1)])).unwrap();
    assert_eq!(value(&out)["meta"]["routing"]["we\"ird\\"], 1);
}

#[test]
fn inject_routing_rejects_what_it_cannot_edit() {
    let r = routing(&[("a", 1)]);
    let cases: &[(&[u8], &str)] = &[
        (b"[1]", "message must be a JSON object, found an array"),
        (b"\"s\"", "message must be a JSON object, found a string"),
        (b"not json", "message is not valid JSON"),
        (b"", "message is not valid JSON"),
        (
            br#"{"meta":[]}"#,
            "message meta must be a JSON object, found an array",
        ),
        (br#"{"meta":{"routing":{"a":"x"}}}"#, "field `routing`"),
    ];
    for (body, needle) in cases {
        let err = inject_routing(body, &r).unwrap_err();
        assert!(
            err.to_string().contains(needle),
            "{:?}: {err}",
            String::from_utf8_lossy(body)
        );
    }
}

// ---------------------------------------------------------------- v2_chain

#[test]
fn v2_chain_turns_outputs_into_inputs() {
    let response = br#"{"model_name":"m1","model_version":"3","id":"req-1","parameters":{"content_type":"np"},"outputs":[{"name":"out","shape":[1, 2],"datatype":"FP32","parameters":{"p":1},"data":[0.10, 2]},{"datatype":"BYTES","name":"s","shape":[1],"data":["a\u00e9"]}]}"#;
    let request = v2_chain(response).unwrap();
    assert_eq!(
        std::str::from_utf8(&request).unwrap(),
        r#"{"id":"req-1","parameters":{"content_type":"np"},"inputs":[{"name":"out","shape":[1, 2],"datatype":"FP32","parameters":{"p":1},"data":[0.10, 2]},{"datatype":"BYTES","name":"s","shape":[1],"data":["a\u00e9"]}]}"#
    );
    let parsed = value(&request);
    assert!(parsed.get("model_name").is_none() && parsed.get("outputs").is_none());
}

#[test]
fn v2_chain_drops_unknown_members_and_minimal_response() {
    let out = v2_chain(br#"{"model_name":"m","outputs":[{"name":"o","shape":[],"datatype":"INT64","data":[1],"extra":true}],"extra":1}"#).unwrap();
    assert_eq!(
        out,
        br#"{"inputs":[{"name":"o","shape":[],"datatype":"INT64","data":[1]}]}"#
    );
    assert_eq!(
        value(&v2_chain(br#"{"outputs":[]}"#).unwrap()),
        json!({"inputs": []})
    );
}

#[test]
fn v2_chain_rejects_what_is_not_an_inference_response() {
    let cases: &[(&[u8], &str)] = &[
        (b"{", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (br#"{"model_name":"m"}"#, "missing field `outputs`"),
        (br#"{"error":"boom"}"#, "missing field `outputs`"),
        (br#"{"outputs":{}}"#, "field `outputs` must be an array"),
        (
            br#"{"outputs":[1]}"#,
            "v2 output tensor must be a JSON object",
        ),
        (
            br#"{"outputs":[{"name":"o","shape":[1]}]}"#,
            "missing field `datatype`",
        ),
        (
            br#"{"outputs":[{"datatype":"FP32","shape":[1]}]}"#,
            "missing field `name`",
        ),
    ];
    for (body, needle) in cases {
        let err = v2_chain(body).unwrap_err();
        assert!(
            err.to_string().contains(needle),
            "{:?}: {err}",
            String::from_utf8_lossy(body)
        );
    }
}

// ---------------------------------------------------------------- status_body

#[test]
fn status_body_is_the_seldon_failure_message() {
    assert_eq!(
        status_body(500, "boom", ""),
        br#"{"status":{"code":500,"info":"boom","reason":"","status":"FAILURE"}}"#
    );
}

#[test]
fn status_body_escapes_hostile_text() {
    let info = "node \"a\" failed:\n\t\\ <b>\u{1}\u{7f} é 🚀";
    let reason = "\u{8}\u{c}\r";
    let out = status_body(503, info, reason);
    let parsed = value(&out);
    assert_eq!(parsed["status"]["info"], info);
    assert_eq!(parsed["status"]["reason"], reason);
    assert_eq!(parsed["status"]["code"], 503);
    assert_eq!(parsed["status"]["status"], "FAILURE");
    // The typed model reads it back too.
    let msg = seldon_protocol::v1::SeldonMessage::from_slice(&out).unwrap();
    assert_eq!(msg.status.unwrap().info, info);
}

#[test]
fn check_json_object_accepts_objects_only() {
    use seldon_protocol::check_json_object;
    check_json_object(br#" {"data":{"ndarray":[1]}} "#, "node answer").unwrap();
    let e = check_json_object(b"garbage", "node answer").unwrap_err();
    assert!(
        e.to_string().starts_with("node answer is not valid JSON"),
        "{e}"
    );
    let e = check_json_object(b"[1,2]", "node answer").unwrap_err();
    assert_eq!(
        e.to_string(),
        "node answer must be a JSON object, found an array"
    );
    assert!(check_json_object(b"", "node answer").is_err());
    assert!(check_json_object(b"{\"a\":1} trailing", "node answer").is_err());
}

#[test]
fn check_v2_response_needs_what_chaining_needs() {
    use seldon_protocol::check_v2_response;
    check_v2_response(
        br#"{"model_name":"m","outputs":[{"name":"y","shape":[1],"datatype":"FP32","data":[1]}]}"#,
    )
    .unwrap();
    check_v2_response(br#"{"outputs":[]}"#).unwrap();
    for (body, want) in [
        (&b"garbage"[..], "v2 inference response is not valid JSON"),
        (b"{}", "v2 inference response: missing field `outputs`"),
        (
            br#"{"outputs":{}}"#,
            "v2 inference response: field `outputs` must be an array",
        ),
        (
            br#"{"outputs":[{"name":"y","shape":[1]}]}"#,
            "v2 output tensor: missing field `datatype`",
        ),
        (
            br#"{"outputs":[3]}"#,
            "v2 output tensor must be a JSON object",
        ),
    ] {
        let e = check_v2_response(body).unwrap_err().to_string();
        assert!(e.starts_with(want), "{e}");
    }
}

#[test]
fn check_v2_request_validates_every_input() {
    use seldon_protocol::check_v2_request;
    check_v2_request(br#"{"inputs":[{"name":"x","shape":[2],"datatype":"INT32","data":[1,2]}]}"#)
        .unwrap();
    for (body, want) in [
        (&b"{nope"[..], "v2 inference request is not valid JSON"),
        (
            br#"{"inputs":[{"name":"x","shape":[1],"data":[1]}]}"#,
            "v2 inference request is invalid: missing field `datatype`",
        ),
        (
            br#"{"inputs":[{"name":"x","shape":[3],"datatype":"FP32","data":[1]}]}"#,
            "v2 inference request is invalid: tensor `x`: shape [3] needs 3 elements",
        ),
        (
            br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP33","data":[1]}]}"#,
            "v2 inference request is invalid: unknown variant `FP33`",
        ),
        (
            b"{}",
            "v2 inference request is invalid: missing field `inputs`",
        ),
    ] {
        let e = check_v2_request(body).unwrap_err().to_string();
        assert!(e.starts_with(want), "{e}");
    }
}
