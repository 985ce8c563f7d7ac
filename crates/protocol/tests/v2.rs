//! Open Inference Protocol v2 types and the binary tensor extension against `testdata/v2`.

mod common;

use common::{golden, read};
use seldon_protocol::ProtocolError;
use seldon_protocol::v2::binary::{
    self, BINARY_DATA_SIZE, decode_request, decode_response, encode_request, encode_response,
};
use seldon_protocol::v2::{
    Datatype, ErrorResponse, InferTensor, InferenceRequest, InferenceResponse, ModelMetadata,
    ModelReady, ServerLive, ServerMetadata, ServerReady, TensorData,
};

#[test]
fn requests_and_responses_round_trip() {
    for file in ["v2/request_fp32.json", "v2/request_mixed.json"] {
        let parsed =
            InferenceRequest::from_slice(&read(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let again = InferenceRequest::from_slice(&parsed.to_vec().unwrap()).unwrap();
        assert_eq!(parsed, again, "{file}");
    }
    for file in ["v2/response_fp32.json", "v2/response_mixed.json"] {
        let parsed =
            InferenceResponse::from_slice(&read(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let again = InferenceResponse::from_slice(&parsed.to_vec().unwrap()).unwrap();
        assert_eq!(parsed, again, "{file}");
    }
}

#[test]
fn every_json_datatype_decodes_to_its_typed_data() {
    let req = InferenceRequest::from_slice(&read("v2/request_mixed.json")).unwrap();
    let data: Vec<(Datatype, TensorData)> = req
        .inputs
        .iter()
        .map(|t| (t.datatype, t.data.clone().unwrap()))
        .collect();
    let expected = vec![
        (Datatype::Bool, TensorData::Bool(vec![true, false, true])),
        (Datatype::Uint8, TensorData::Uint8(vec![0, 255])),
        (Datatype::Uint16, TensorData::Uint16(vec![u16::MAX])),
        (Datatype::Uint32, TensorData::Uint32(vec![u32::MAX])),
        (Datatype::Uint64, TensorData::Uint64(vec![u64::MAX])),
        (Datatype::Int8, TensorData::Int8(vec![i8::MIN, i8::MAX])),
        (Datatype::Int16, TensorData::Int16(vec![i16::MIN])),
        (Datatype::Int32, TensorData::Int32(vec![i32::MIN])),
        (Datatype::Int64, TensorData::Int64(vec![i64::MIN, i64::MAX])),
        (
            Datatype::Fp64,
            TensorData::Fp64(vec![std::f64::consts::PI, -0.0]),
        ),
        (
            Datatype::Bytes,
            TensorData::Bytes(vec![b"hello".to_vec(), "é <&> \"q\"".as_bytes().to_vec()]),
        ),
    ];
    assert_eq!(data, expected);
    // Nested data is flattened row-major and checked against the shape.
    let fp32 = InferenceRequest::from_slice(&read("v2/request_fp32.json")).unwrap();
    assert_eq!(
        fp32.inputs[0].data,
        Some(TensorData::Fp32(vec![1.0, 2.5, -3.25, 0.1, 0.0, 1e-7]))
    );
    assert_eq!(fp32.outputs.unwrap()[0].name, "output-0");
    assert_eq!(fp32.parameters.unwrap()["priority"], 1);
    // FP32 is written with f32 precision, not widened to f64 digits.
    let written = String::from_utf8(
        fp32.inputs[0]
            .data
            .as_ref()
            .map(|d| serde_json::to_vec(d).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(written, "[1.0,2.5,-3.25,0.1,0.0,1e-7]");
}

#[test]
fn datatype_names_and_sizes() {
    let names: Vec<String> = Datatype::ALL
        .iter()
        .map(|d| serde_json::to_string(d).unwrap())
        .collect();
    assert_eq!(
        names.join(","),
        r#""BOOL","UINT8","UINT16","UINT32","UINT64","INT8","INT16","INT32","INT64","FP16","FP32","FP64","BYTES""#
    );
    for d in Datatype::ALL {
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            format!("\"{}\"", d.as_str())
        );
    }
    assert_eq!(Datatype::Fp16.size(), Some(2));
    assert_eq!(Datatype::Bytes.size(), None);
    assert!(serde_json::from_str::<Datatype>("\"FLOAT32\"").is_err());
}

#[test]
fn malformed_tensors_are_rejected_with_the_reason() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"inputs":[{"name":"a","shape":[2],"datatype":"FLOAT","data":[1,2]}]}"#,
            "unknown variant `FLOAT`",
        ),
        (
            r#"{"inputs":[{"name":"a","shape":[3],"datatype":"FP32","data":[1,2]}]}"#,
            "tensor `a`: shape [3] needs 3 elements, data has 2",
        ),
        (
            r#"{"inputs":[{"name":"a","shape":[1],"datatype":"UINT8","data":[256]}]}"#,
            "tensor `a`: element 0 (256) is not a valid UINT8",
        ),
        (
            r#"{"inputs":[{"name":"a","shape":[1],"datatype":"INT32","data":[1.5]}]}"#,
            "element 0 (1.5) is not a valid INT32",
        ),
        (
            r#"{"inputs":[{"name":"a","shape":[1],"datatype":"BYTES","data":[1]}]}"#,
            "element 0 (1) is not a valid BYTES",
        ),
        (
            r#"{"inputs":[{"name":"a","shape":[1],"datatype":"BOOL","data":["yes"]}]}"#,
            "is not a valid BOOL",
        ),
        (
            r#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP16","data":[1.0]}]}"#,
            "FP16 has no JSON representation",
        ),
        (
            r#"{"inputs":[{"name":"a","shape":[-1],"datatype":"FP32","data":[1.0]}]}"#,
            "invalid value",
        ),
        (
            r#"{"inputs":[{"shape":[1],"datatype":"FP32","data":[1.0]}]}"#,
            "missing field `name`",
        ),
        (r#"{"id":"x"}"#, "missing field `inputs`"),
        ("[", "v2 inference request is not valid JSON"),
    ];
    for (body, needle) in cases {
        let err = InferenceRequest::from_slice(body.as_bytes()).unwrap_err();
        assert!(err.to_string().contains(needle), "{body}: {err}");
    }
    let err = InferenceResponse::from_slice(br#"{"outputs":[]}"#).unwrap_err();
    assert!(
        err.to_string().contains("missing field `model_name`"),
        "{err}"
    );
}

/// Found by fuzzing (fuzz/ v2_binary): FP32 JSON data beyond f32::MAX was read as infinity,
/// which serializes as `null`. Now refused, naming the element.
#[test]
fn fp32_data_beyond_f32_is_refused() {
    let body = br#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[1.5,1e39]}]}"#;
    let err = InferenceRequest::from_slice(body).unwrap_err();
    assert!(
        err.to_string()
            .contains("FP32 element 1: 1e39 is out of range for a 32-bit float"),
        "{err}"
    );
    let ok = br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[-3.4028235e38]}]}"#;
    assert!(InferenceRequest::from_slice(ok).is_ok());
}

#[test]
fn tensors_without_a_json_form_fail_to_serialize() {
    let fp16 = InferTensor::new("h", vec![1], TensorData::Fp16(vec![0x3c00])).unwrap();
    let req = InferenceRequest {
        inputs: vec![fp16],
        ..Default::default()
    };
    let err = req.to_vec().unwrap_err();
    assert!(
        err.to_string().contains("FP16 has no JSON representation"),
        "{err}"
    );
    let raw = InferTensor::new("b", vec![1], TensorData::Bytes(vec![vec![0xff, 0xfe]])).unwrap();
    let resp = InferenceResponse {
        model_name: "m".into(),
        outputs: vec![raw],
        ..Default::default()
    };
    let err = resp.to_vec().unwrap_err();
    assert!(
        err.to_string().contains("BYTES element 0 is not UTF-8"),
        "{err}"
    );
}

#[test]
fn infer_tensor_checks_shape_and_datatype() {
    let err = InferTensor::new("t", vec![2, 2], TensorData::Int32(vec![1, 2, 3])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tensor `t`: shape [2, 2] needs 4 elements, data has 3"
    );
    let mut t = InferTensor::new("t", vec![], TensorData::Int32(vec![7])).unwrap();
    assert_eq!(t.element_count().unwrap(), 1);
    t.datatype = Datatype::Int64;
    assert_eq!(
        t.check().unwrap_err().to_string(),
        "tensor `t`: data is INT32 but datatype is INT64"
    );
    t.shape = vec![u64::MAX, u64::MAX];
    assert!(
        t.element_count()
            .unwrap_err()
            .to_string()
            .contains("too large")
    );
}

#[test]
fn metadata_readiness_and_error_bodies_round_trip() {
    let m: ModelMetadata = serde_json::from_slice(&read("v2/model_metadata.json")).unwrap();
    assert_eq!(m.inputs[0].shape, [-1, 4]);
    assert_eq!(m.outputs[1].datatype, Datatype::Fp32);
    assert_eq!(
        serde_json::from_slice::<ModelMetadata>(&serde_json::to_vec(&m).unwrap()).unwrap(),
        m
    );

    let s: ServerMetadata = serde_json::from_slice(&read("v2/server_metadata.json")).unwrap();
    assert_eq!(s.extensions, [binary::EXTENSION]);
    assert_eq!(
        serde_json::from_slice::<ServerMetadata>(&serde_json::to_vec(&s).unwrap()).unwrap(),
        s
    );

    let r: ModelReady = serde_json::from_slice(&read("v2/model_ready.json")).unwrap();
    assert_eq!(
        r,
        ModelReady {
            name: "iris".into(),
            ready: true
        }
    );
    assert_eq!(
        serde_json::to_string(&ServerLive { live: true }).unwrap(),
        r#"{"live":true}"#
    );
    assert_eq!(
        serde_json::to_string(&ServerReady { ready: false }).unwrap(),
        r#"{"ready":false}"#
    );

    let e: ErrorResponse = serde_json::from_slice(&read("v2/error.json")).unwrap();
    assert_eq!(e.error, "model `nope` not found");
    assert_eq!(
        ErrorResponse::body(&e.error),
        read("v2/error.json").trim_ascii_end()
    );
}

#[test]
fn metadata_failure_cases() {
    assert!(
        serde_json::from_str::<ModelMetadata>(
            r#"{"name":"m","platform":"p","inputs":[{"name":"x","datatype":"F32","shape":[1]}]}"#
        )
        .is_err()
    );
    assert!(serde_json::from_str::<ModelReady>(r#"{"name":"m","ready":"yes"}"#).is_err());
    assert!(serde_json::from_str::<ErrorResponse>(r#"{"message":"x"}"#).is_err());
    let hostile = "bad \"input\"\n\\";
    let body = ErrorResponse::body(hostile);
    assert_eq!(
        serde_json::from_slice::<ErrorResponse>(&body)
            .unwrap()
            .error,
        hostile
    );
}

fn binary_request() -> InferenceRequest {
    InferenceRequest {
        id: Some("bin-1".into()),
        parameters: Some([("binary_data_output".to_owned(), serde_json::json!(true))].into()),
        inputs: vec![
            InferTensor::new("half", vec![2], TensorData::Fp16(vec![0x3c00, 0xc000])).unwrap(),
            InferTensor::new("fp32", vec![1, 2], TensorData::Fp32(vec![1.5, -2.0])).unwrap(),
            InferTensor::new("flags", vec![3], TensorData::Bool(vec![true, false, true])).unwrap(),
            InferTensor::new(
                "text",
                vec![2],
                TensorData::Bytes(vec![b"ab".to_vec(), vec![0xff]]),
            )
            .unwrap(),
            InferTensor::new("i64", vec![1], TensorData::Int64(vec![-2])).unwrap(),
        ],
        outputs: None,
    }
}

#[test]
fn binary_request_matches_the_golden_body_and_decodes_back() {
    let request = binary_request();
    let encoded = encode_request(&request).unwrap();
    let (header, data) = binary::split(&encoded.body, encoded.header_length).unwrap();
    golden("v2/binary_request.header.json", header);
    golden("v2/binary_request.bin", &encoded.body);
    // Little-endian sections in input order; BYTES are length-prefixed.
    let mut expected = vec![0x00, 0x3c, 0x00, 0xc0];
    expected.extend_from_slice(&1.5f32.to_le_bytes());
    expected.extend_from_slice(&(-2.0f32).to_le_bytes());
    expected.extend_from_slice(&[1, 0, 1]);
    expected.extend_from_slice(&[2, 0, 0, 0, b'a', b'b', 1, 0, 0, 0, 0xff]);
    expected.extend_from_slice(&(-2i64).to_le_bytes());
    assert_eq!(data, expected);
    let header: serde_json::Value = serde_json::from_slice(header).unwrap();
    assert_eq!(header["inputs"][3]["parameters"][BINARY_DATA_SIZE], 11);
    assert!(header["inputs"][0].get("data").is_none());

    let decoded =
        decode_request(&read("v2/binary_request.bin"), Some(encoded.header_length)).unwrap();
    assert_eq!(decoded, request);
}

#[test]
fn binary_response_round_trips_and_mixes_with_json_tensors() {
    let response = InferenceResponse::from_slice(&read("v2/response_mixed.json")).unwrap();
    let encoded = encode_response(&response).unwrap();
    golden("v2/binary_response.bin", &encoded.body);
    let length = binary::parse_header_length(encoded.header_length.to_string().as_bytes()).unwrap();
    assert_eq!(
        decode_response(&encoded.body, Some(length)).unwrap(),
        response
    );
    // A JSON body without the header decodes as plain JSON.
    assert_eq!(
        decode_response(&read("v2/response_mixed.json"), None).unwrap(),
        response
    );
    // One tensor in JSON, one in binary.
    let body = br#"{"model_name":"m","outputs":[{"name":"a","shape":[1],"datatype":"INT32","data":[5]},{"name":"b","shape":[2],"datatype":"UINT16","parameters":{"binary_data_size":4,"keep":1}}]}"#;
    let mut full = body.to_vec();
    full.extend_from_slice(&[1, 0, 2, 0]);
    let decoded = decode_response(&full, Some(body.len())).unwrap();
    assert_eq!(decoded.outputs[0].data, Some(TensorData::Int32(vec![5])));
    assert_eq!(
        decoded.outputs[1].data,
        Some(TensorData::Uint16(vec![1, 2]))
    );
    assert_eq!(
        decoded.outputs[1].parameters.as_ref().unwrap().len(),
        1,
        "binary_data_size dropped, others kept"
    );
}

#[test]
fn inconsistent_binary_bodies_are_rejected() {
    let header = br#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}}]}"#;
    let with = |tail: &[u8]| {
        let mut b = header.to_vec();
        b.extend_from_slice(tail);
        b
    };
    let n = header.len();
    let cases: Vec<(Vec<u8>, usize, &str)> = vec![
        (
            with(&[0; 4]),
            n,
            "binary_data_size is 8 but only 4 binary bytes remain",
        ),
        (
            with(&[0; 12]),
            n,
            "4 trailing bytes not claimed by any tensor",
        ),
        (with(&[0; 8]), n + 100, "but the body has only"),
        (with(&[0; 8]), n - 1, "not valid JSON"),
    ];
    for (body, len, needle) in cases {
        let err = decode_request(&body, Some(len)).unwrap_err();
        assert!(err.to_string().contains(needle), "{needle}: {err}");
    }
    let bad_sizes: &[(&[u8], &[u8], &str)] = &[
        (br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":3}}]}"#, &[0; 3], "3 bytes is not a whole number of FP32 elements"),
        (br#"{"inputs":[{"name":"x","shape":[3],"datatype":"FP32","parameters":{"binary_data_size":8}}]}"#, &[0; 8], "shape [3] needs 3 elements, data has 2"),
        (br#"{"inputs":[{"name":"x","shape":[1],"datatype":"BOOL","parameters":{"binary_data_size":1}}]}"#, &[7], "BOOL element 0 is byte 7"),
        (br#"{"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":6}}]}"#, &[9, 0, 0, 0, 1, 2], "claims 9 bytes, only 2 left"),
        (br#"{"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":2}}]}"#, &[9, 0], "truncated 4-byte length prefix"),
        (br#"{"inputs":[{"name":"x","shape":[1],"datatype":"INT8","parameters":{"binary_data_size":-1}}]}"#, &[], "binary_data_size -1 is not a byte count"),
        (br#"{"inputs":[{"name":"x","shape":[1],"datatype":"INT8","data":[1],"parameters":{"binary_data_size":1}}]}"#, &[1], "has both JSON data and binary_data_size"),
    ];
    for (header, tail, needle) in bad_sizes {
        let mut body = header.to_vec();
        body.extend_from_slice(tail);
        let err = decode_request(&body, Some(header.len())).unwrap_err();
        assert!(err.to_string().contains(needle), "{needle}: {err}");
    }
    assert!(matches!(
        binary::parse_header_length(b"12x"),
        Err(ProtocolError::BinaryBody { .. })
    ));
    assert!(binary::parse_header_length(b"-1").is_err());
    assert_eq!(binary::parse_header_length(b" 42 ").unwrap(), 42);
    assert!(binary::split(b"{}", 3).is_err());
}

#[test]
fn encoding_rejects_tensors_whose_data_disagrees_with_shape() {
    let mut t = InferTensor::new("x", vec![2], TensorData::Uint8(vec![1, 2])).unwrap();
    t.shape = vec![3];
    let err = encode_request(&InferenceRequest {
        inputs: vec![t],
        ..Default::default()
    })
    .unwrap_err();
    assert!(
        err.to_string().contains("shape [3] needs 3 elements"),
        "{err}"
    );
    let mut t = InferTensor::new("y", vec![1], TensorData::Uint8(vec![1])).unwrap();
    t.datatype = Datatype::Fp64;
    let err = encode_response(&InferenceResponse {
        model_name: "m".into(),
        outputs: vec![t],
        ..Default::default()
    })
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("data is UINT8 but datatype is FP64"),
        "{err}"
    );
}

#[test]
fn tensor_data_binary_form_round_trips_for_every_datatype() {
    let all = vec![
        TensorData::Bool(vec![true, false]),
        TensorData::Uint8(vec![0, 255]),
        TensorData::Uint16(vec![1, u16::MAX]),
        TensorData::Uint32(vec![1, u32::MAX]),
        TensorData::Uint64(vec![1, u64::MAX]),
        TensorData::Int8(vec![i8::MIN, -1]),
        TensorData::Int16(vec![i16::MIN, 2]),
        TensorData::Int32(vec![i32::MIN, 3]),
        TensorData::Int64(vec![i64::MIN, 4]),
        TensorData::Fp16(vec![0x3c00, 0x7bff]),
        TensorData::Fp32(vec![f32::MIN_POSITIVE, -0.5]),
        TensorData::Fp64(vec![f64::MAX, 1e-300]),
        TensorData::Bytes(vec![vec![], b"xyz".to_vec()]),
    ];
    assert_eq!(all.len(), Datatype::ALL.len());
    for data in all {
        let bytes = data.to_le_bytes();
        if let Some(size) = data.datatype().size() {
            assert_eq!(bytes.len(), size * data.len(), "{:?}", data.datatype());
        }
        assert_eq!(
            TensorData::from_le_bytes(data.datatype(), &bytes).unwrap(),
            data
        );
        assert!(!data.is_empty());
    }
    assert!(TensorData::from_le_bytes(Datatype::Int64, &[0; 7]).is_err());
    assert!(TensorData::from_json(Datatype::Uint16, &serde_json::json!([[1], [-1]])).is_err());
    assert_eq!(
        TensorData::from_json(Datatype::Bool, &serde_json::json!([[0, 1]])).unwrap(),
        TensorData::Bool(vec![false, true])
    );
}
