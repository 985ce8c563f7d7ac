//! `v2_binary`: the v2 binary tensor extension (`crates/protocol/src/v2/binary.rs`).
//!
//! Input: 2 bytes little-endian `Inference-Header-Content-Length` (0xFFFF: header absent),
//! the rest the body. Files in the corpus are built that way from real bodies.

use seldon_protocol::v2::binary::{self, BinaryBody};
use seldon_protocol::v2::{self, Datatype, TensorData};

use crate::json::same_json;

/// Same binary section, same JSON header up to the known 1-ULP float drift (crate::json).
fn assert_stable(a: &BinaryBody, b: &BinaryBody, what: &str) {
    let (a_header, a_binary) = a.body.split_at(a.header_length);
    let (b_header, b_binary) = b.body.split_at(b.header_length);
    assert_eq!(
        a_binary, b_binary,
        "binary {what}: the binary section changed"
    );
    assert!(
        same_json(a_header, b_header),
        "binary {what} round trip is not stable:\n{}\n{}",
        String::from_utf8_lossy(a_header),
        String::from_utf8_lossy(b_header)
    );
}

pub fn v2_binary(data: &[u8]) {
    let Some((len, body)) = data.split_first_chunk::<2>() else {
        return;
    };
    let header_length = match u16::from_le_bytes(*len) {
        u16::MAX => None,
        n => Some(usize::from(n)),
    };
    let _ = binary::parse_header_length(body);
    if let Some(n) = header_length {
        let _ = binary::split(body, n);
    }

    // Decode → encode → decode gives the same tensors (compared as bytes: NaN != NaN).
    if let Ok(request) = binary::decode_request(body, header_length) {
        let encoded = binary::encode_request(&request)
            .unwrap_or_else(|e| panic!("a decoded request does not encode: {e}"));
        let again = binary::decode_request(&encoded.body, Some(encoded.header_length))
            .unwrap_or_else(|e| panic!("encode_request wrote a body it cannot decode: {e}"));
        let re_encoded = binary::encode_request(&again).expect("encodes");
        assert_stable(&encoded, &re_encoded, "request");
    }
    if let Ok(response) = binary::decode_response(body, header_length) {
        let encoded = binary::encode_response(&response)
            .unwrap_or_else(|e| panic!("a decoded response does not encode: {e}"));
        let again = binary::decode_response(&encoded.body, Some(encoded.header_length))
            .unwrap_or_else(|e| panic!("encode_response wrote a body it cannot decode: {e}"));
        let re_encoded = binary::encode_response(&again).expect("encodes");
        assert_stable(&encoded, &re_encoded, "response");
    }

    // Raw sections of every datatype: from_le_bytes ∘ to_le_bytes is the identity on bytes.
    let datatype = Datatype::ALL[usize::from(len[0]) % Datatype::ALL.len()];
    if let Ok(tensor) = TensorData::from_le_bytes(datatype, body) {
        assert_eq!(tensor.datatype(), datatype);
        assert_eq!(
            tensor.to_le_bytes(),
            body,
            "{datatype} to_le_bytes(from_le_bytes(x)) != x"
        );
        // And the JSON form, where the datatype has one (FP16 has none).
        if let Ok(json) = serde_json::to_value(&tensor) {
            match TensorData::from_json(datatype, &json) {
                Ok(back) => assert_eq!(
                    back.to_le_bytes(),
                    body,
                    "{datatype} JSON round trip changed the values: {json}"
                ),
                // NaN and infinities have no JSON number; serde_json writes them as null.
                Err(_) if matches!(datatype, Datatype::Fp32 | Datatype::Fp64) => {}
                // BYTES elements that are not UTF-8 have no JSON string form.
                Err(_) if datatype == Datatype::Bytes => {}
                Err(e) => panic!("{datatype} JSON form {json} does not parse back: {e}"),
            }
        }
    }
    let _ = v2::InferenceRequest::from_slice(body);
}
