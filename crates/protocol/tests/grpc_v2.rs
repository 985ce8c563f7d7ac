//! `grpc_v2`: Open Inference Protocol gRPC ⇄ REST JSON, checked against the prost types the
//! model server generates from the same `proto/inference/open_inference_grpc.proto`
//! (`seldon_serving::grpc::pb`, tonic-prost-build): what prost encodes we read, what we write
//! prost decodes to the same values. Plus round trips over `testdata/v2/` and a failure case
//! for every public function.

use std::collections::HashMap;
use std::path::PathBuf;

use prost::Message;
use seldon_protocol::ProtocolError;
use seldon_protocol::grpc_v2::{
    ModelRef, bool_response, infer_request_from_json, infer_request_to_json,
    infer_response_from_json, infer_response_to_json, model_metadata_response_from_json,
    model_metadata_response_to_json, model_ready_response, model_ref, server_live_response,
    server_metadata_response_from_json, server_ready_response,
};
use seldon_protocol::v2::{InferenceRequest, InferenceResponse};
use seldon_serving::grpc::pb::inference as pb;
use seldon_serving::grpc::pb::inference::infer_parameter::ParameterChoice;
use seldon_serving::grpc::pb::inference::model_infer_request::{
    InferInputTensor, InferRequestedOutputTensor,
};
use seldon_serving::grpc::pb::inference::model_infer_response::InferOutputTensor;
use serde_json::{Value, json};

fn testdata(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/v2")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn param(choice: ParameterChoice) -> pb::InferParameter {
    pb::InferParameter {
        parameter_choice: Some(choice),
    }
}

fn input(
    name: &str,
    datatype: &str,
    shape: &[i64],
    contents: pb::InferTensorContents,
) -> InferInputTensor {
    InferInputTensor {
        name: name.into(),
        datatype: datatype.into(),
        shape: shape.to_vec(),
        parameters: HashMap::new(),
        contents: Some(contents),
    }
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

/// A prost-encoded request using every typed contents field and every parameter kind.
fn typed_request() -> pb::ModelInferRequest {
    let c = pb::InferTensorContents::default;
    pb::ModelInferRequest {
        model_name: "iris".into(),
        model_version: "3".into(),
        id: "req-1".into(),
        parameters: HashMap::from([
            ("b".to_string(), param(ParameterChoice::BoolParam(true))),
            ("i".to_string(), param(ParameterChoice::Int64Param(-7))),
            (
                "s".to_string(),
                param(ParameterChoice::StringParam("np".into())),
            ),
            ("d".to_string(), param(ParameterChoice::DoubleParam(0.25))),
            (
                "u".to_string(),
                param(ParameterChoice::Uint64Param(u64::MAX)),
            ),
        ]),
        inputs: vec![
            input(
                "flags",
                "BOOL",
                &[2],
                pb::InferTensorContents {
                    bool_contents: vec![true, false],
                    ..c()
                },
            ),
            input(
                "i8",
                "INT8",
                &[2],
                pb::InferTensorContents {
                    int_contents: vec![-128, 127],
                    ..c()
                },
            ),
            input(
                "i16",
                "INT16",
                &[1],
                pb::InferTensorContents {
                    int_contents: vec![-32768],
                    ..c()
                },
            ),
            input(
                "i32",
                "INT32",
                &[1],
                pb::InferTensorContents {
                    int_contents: vec![i32::MIN],
                    ..c()
                },
            ),
            input(
                "i64",
                "INT64",
                &[2, 1],
                pb::InferTensorContents {
                    int64_contents: vec![i64::MIN, i64::MAX],
                    ..c()
                },
            ),
            input(
                "u8",
                "UINT8",
                &[1],
                pb::InferTensorContents {
                    uint_contents: vec![255],
                    ..c()
                },
            ),
            input(
                "u16",
                "UINT16",
                &[1],
                pb::InferTensorContents {
                    uint_contents: vec![65535],
                    ..c()
                },
            ),
            input(
                "u32",
                "UINT32",
                &[1],
                pb::InferTensorContents {
                    uint_contents: vec![u32::MAX],
                    ..c()
                },
            ),
            input(
                "u64",
                "UINT64",
                &[1],
                pb::InferTensorContents {
                    uint64_contents: vec![u64::MAX],
                    ..c()
                },
            ),
            input(
                "f32",
                "FP32",
                &[1, 3],
                pb::InferTensorContents {
                    fp32_contents: vec![0.1, -2.5, 1e-7],
                    ..c()
                },
            ),
            input(
                "f64",
                "FP64",
                &[2],
                pb::InferTensorContents {
                    fp64_contents: vec![std::f64::consts::PI, -0.0],
                    ..c()
                },
            ),
            input(
                "text",
                "BYTES",
                &[2],
                pb::InferTensorContents {
                    bytes_contents: vec![b"hello".to_vec(), "é <&>".as_bytes().to_vec()],
                    ..c()
                },
            ),
        ],
        outputs: vec![InferRequestedOutputTensor {
            name: "proba".into(),
            parameters: HashMap::from([(
                "binary_data".to_string(),
                param(ParameterChoice::BoolParam(false)),
            )]),
        }],
        raw_input_contents: vec![],
    }
}

#[test]
fn prost_request_with_typed_contents_becomes_v2_json() {
    let got = infer_request_to_json(&typed_request().encode_to_vec()).unwrap();
    assert_eq!(got.model_name, "iris");
    assert_eq!(got.model_version, "3");
    assert_eq!(
        json_of(&got.json),
        json!({
            "id": "req-1",
            "parameters": {"b": true, "d": 0.25, "i": -7, "s": "np", "u": 18446744073709551615u64},
            "inputs": [
                {"name": "flags", "shape": [2], "datatype": "BOOL", "data": [true, false]},
                {"name": "i8", "shape": [2], "datatype": "INT8", "data": [-128, 127]},
                {"name": "i16", "shape": [1], "datatype": "INT16", "data": [-32768]},
                {"name": "i32", "shape": [1], "datatype": "INT32", "data": [-2147483648]},
                {"name": "i64", "shape": [2, 1], "datatype": "INT64", "data": [i64::MIN, i64::MAX]},
                {"name": "u8", "shape": [1], "datatype": "UINT8", "data": [255]},
                {"name": "u16", "shape": [1], "datatype": "UINT16", "data": [65535]},
                {"name": "u32", "shape": [1], "datatype": "UINT32", "data": [4294967295u32]},
                {"name": "u64", "shape": [1], "datatype": "UINT64", "data": [u64::MAX]},
                {"name": "f32", "shape": [1, 3], "datatype": "FP32", "data": [0.1, -2.5, 1e-7]},
                {"name": "f64", "shape": [2], "datatype": "FP64", "data": [std::f64::consts::PI, -0.0]},
                {"name": "text", "shape": [2], "datatype": "BYTES", "data": ["hello", "é <&>"]},
            ],
            "outputs": [{"name": "proba", "parameters": {"binary_data": false}}],
        })
    );
}

#[test]
fn prost_request_with_raw_contents_is_read_little_endian() {
    let mut bytes = Vec::new();
    for s in ["ab", "", "ü"] {
        bytes.extend_from_slice(&(s.len() as u32).to_le_bytes());
        bytes.extend_from_slice(s.as_bytes());
    }
    let request = pb::ModelInferRequest {
        inputs: vec![
            InferInputTensor {
                name: "x".into(),
                datatype: "FP32".into(),
                shape: vec![2],
                ..Default::default()
            },
            InferInputTensor {
                name: "n".into(),
                datatype: "INT16".into(),
                shape: vec![2],
                ..Default::default()
            },
            InferInputTensor {
                name: "s".into(),
                datatype: "BYTES".into(),
                shape: vec![3],
                ..Default::default()
            },
            InferInputTensor {
                name: "b".into(),
                datatype: "BOOL".into(),
                shape: vec![],
                ..Default::default()
            },
        ],
        raw_input_contents: vec![
            [1.5f32.to_le_bytes(), (-2.0f32).to_le_bytes()].concat(),
            [(-1i16).to_le_bytes(), 300i16.to_le_bytes()].concat(),
            bytes,
            vec![1],
        ],
        ..Default::default()
    };
    let got = infer_request_to_json(&request.encode_to_vec()).unwrap();
    assert_eq!(got.model_name, "");
    assert_eq!(
        json_of(&got.json),
        json!({"inputs": [
            {"name": "x", "shape": [2], "datatype": "FP32", "data": [1.5, -2.0]},
            {"name": "n", "shape": [2], "datatype": "INT16", "data": [-1, 300]},
            {"name": "s", "shape": [3], "datatype": "BYTES", "data": ["ab", "", "ü"]},
            {"name": "b", "shape": [], "datatype": "BOOL", "data": [true]},
        ]})
    );
}

#[test]
fn unpacked_repeated_fields_are_read_too() {
    // Protobuf parsers must accept repeated scalars unpacked; write them by hand.
    // InferInputTensor { name "x" (1), datatype "INT64" (2), shape 2 unpacked (3), contents (5) { int64 3 and -1 unpacked } }
    let mut contents = vec![0x18, 3]; // field 3 varint 3
    contents.extend([
        0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
    ]); // -1
    let mut tensor = vec![0x0a, 1, b'x', 0x12, 5];
    tensor.extend(b"INT64");
    tensor.extend([0x18, 2]);
    tensor.push(0x2a);
    tensor.push(contents.len() as u8);
    tensor.extend(&contents);
    let mut request = vec![0x2a, tensor.len() as u8];
    request.extend(&tensor);
    let got = infer_request_to_json(&request).unwrap();
    assert_eq!(
        json_of(&got.json),
        json!({"inputs": [{"name": "x", "shape": [2], "datatype": "INT64", "data": [3, -1]}]})
    );
}

#[test]
fn request_json_round_trips_through_protobuf_and_prost_reads_it() {
    for name in ["request_fp32.json", "request_mixed.json"] {
        let json = testdata(name);
        let ours = infer_request_from_json(&json, "model-a", "").unwrap();
        let decoded = pb::ModelInferRequest::decode(ours.as_slice())
            .unwrap_or_else(|e| panic!("{name}: prost cannot decode ours: {e}"));
        assert_eq!(decoded.model_name, "model-a");
        let original = InferenceRequest::from_slice(&json).unwrap();
        assert_eq!(decoded.inputs.len(), original.inputs.len(), "{name}");
        assert!(decoded.raw_input_contents.is_empty(), "typed contents");
        let back = infer_request_to_json(&ours).unwrap();
        assert_eq!(back.model_name, "model-a");
        assert_eq!(
            InferenceRequest::from_slice(&back.json).unwrap(),
            original,
            "{name}"
        );
    }
    // What prost read, field by field, for one of them.
    let ours = infer_request_from_json(&testdata("request_fp32.json"), "m", "2").unwrap();
    let d = pb::ModelInferRequest::decode(ours.as_slice()).unwrap();
    assert_eq!((d.model_version.as_str(), d.id.as_str()), ("2", "req-fp32"));
    assert_eq!(
        d.parameters["priority"],
        param(ParameterChoice::Int64Param(1))
    );
    assert_eq!(
        d.parameters["trace"],
        param(ParameterChoice::BoolParam(true))
    );
    assert_eq!(
        d.parameters["content_type"],
        param(ParameterChoice::StringParam("np".into()))
    );
    let x = &d.inputs[0];
    assert_eq!(
        (x.name.as_str(), x.datatype.as_str(), &x.shape[..]),
        ("input-0", "FP32", &[2, 3][..])
    );
    assert_eq!(
        x.contents.as_ref().unwrap().fp32_contents,
        [1.0, 2.5, -3.25, 0.1, 0.0, 1e-7]
    );
    assert_eq!(d.outputs[0].name, "output-0");
    assert_eq!(
        d.outputs[0].parameters["binary_data"],
        param(ParameterChoice::BoolParam(false))
    );
}

#[test]
fn response_json_becomes_typed_contents_prost_reads() {
    let ours = infer_response_from_json(&testdata("response_mixed.json")).unwrap();
    let d = pb::ModelInferResponse::decode(ours.as_slice()).unwrap();
    assert_eq!(
        (d.model_name.as_str(), d.id.as_str()),
        ("multi", "req-mixed")
    );
    assert!(d.raw_output_contents.is_empty());
    let out = |i: usize| {
        (
            &d.outputs[i],
            d.outputs[i].contents.clone().unwrap_or_default(),
        )
    };
    let (label, c) = out(0);
    assert_eq!(
        (label.datatype.as_str(), &label.shape[..]),
        ("BYTES", &[2][..])
    );
    assert_eq!(
        c.bytes_contents,
        [b"setosa".to_vec(), b"virginica".to_vec()]
    );
    let (class, c) = out(1);
    assert_eq!(class.datatype, "INT64");
    assert_eq!(c.int64_contents, [0, 2]);
    let (ok, c) = out(2);
    assert_eq!((ok.datatype.as_str(), ok.shape.len()), ("BOOL", 0));
    assert_eq!(c.bool_contents, [true]);
    // ... and back.
    let back = infer_response_to_json(&ours).unwrap();
    assert_eq!(
        InferenceResponse::from_slice(&back).unwrap(),
        InferenceResponse::from_slice(&testdata("response_mixed.json")).unwrap()
    );
}

#[test]
fn fp16_answers_are_refused_by_name() {
    // A gRPC node may answer FP16 (raw only); the JSON the graph speaks has no FP16 form.
    let resp = pb::ModelInferResponse {
        model_name: "m".into(),
        outputs: vec![InferOutputTensor {
            name: "h".into(),
            datatype: "FP16".into(),
            shape: vec![1],
            ..Default::default()
        }],
        raw_output_contents: vec![vec![0x00, 0x3c]],
        ..Default::default()
    };
    let err = infer_response_to_json(&resp.encode_to_vec()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tensor `h`: is FP16, which has no JSON form (the nodes speak JSON); send FP32"
    );
}

#[test]
fn prost_response_with_raw_and_typed_outputs_becomes_json() {
    let raw = pb::ModelInferResponse {
        model_name: "triton".into(),
        model_version: "1".into(),
        id: "r".into(),
        parameters: HashMap::from([(
            "sequence_end".to_string(),
            param(ParameterChoice::BoolParam(true)),
        )]),
        outputs: vec![
            InferOutputTensor {
                name: "p".into(),
                datatype: "FP64".into(),
                shape: vec![1, 2],
                ..Default::default()
            },
            InferOutputTensor {
                name: "k".into(),
                datatype: "UINT32".into(),
                shape: vec![1],
                ..Default::default()
            },
        ],
        raw_output_contents: vec![
            [0.5f64.to_le_bytes(), 0.25f64.to_le_bytes()].concat(),
            7u32.to_le_bytes().to_vec(),
        ],
    };
    assert_eq!(
        json_of(&infer_response_to_json(&raw.encode_to_vec()).unwrap()),
        json!({"model_name": "triton", "model_version": "1", "id": "r",
               "parameters": {"sequence_end": true},
               "outputs": [
                   {"name": "p", "shape": [1, 2], "datatype": "FP64", "data": [0.5, 0.25]},
                   {"name": "k", "shape": [1], "datatype": "UINT32", "data": [7]}]})
    );
}

#[test]
fn health_answers_decode_with_prost() {
    assert!(
        pb::ModelReadyResponse::decode(&model_ready_response(true)[..])
            .unwrap()
            .ready
    );
    assert!(
        !pb::ModelReadyResponse::decode(&model_ready_response(false)[..])
            .unwrap()
            .ready
    );
    assert!(
        pb::ServerLiveResponse::decode(&server_live_response(true)[..])
            .unwrap()
            .live
    );
    assert!(
        pb::ServerReadyResponse::decode(&server_ready_response(true)[..])
            .unwrap()
            .ready
    );
    assert!(bool_response(&pb::ServerReadyResponse { ready: true }.encode_to_vec()).unwrap());
    assert!(!bool_response(&[]).unwrap());
    let r = model_ref(
        &pb::ModelReadyRequest {
            name: "iris".into(),
            version: "2".into(),
        }
        .encode_to_vec(),
    )
    .unwrap();
    assert_eq!(
        r,
        ModelRef {
            name: "iris".into(),
            version: "2".into()
        }
    );
    let r = model_ref(
        &pb::ModelMetadataRequest {
            name: "m".into(),
            version: String::new(),
        }
        .encode_to_vec(),
    )
    .unwrap();
    assert_eq!(
        r,
        ModelRef {
            name: "m".into(),
            version: String::new()
        }
    );
}

#[test]
fn metadata_goes_both_ways() {
    let json = testdata("model_metadata.json");
    let ours = model_metadata_response_from_json(&json).unwrap();
    let d = pb::ModelMetadataResponse::decode(ours.as_slice()).unwrap();
    assert_eq!(d.name, "iris");
    assert_eq!(d.versions, ["v1", "v2"]);
    assert_eq!(d.platform, "onnx_onnxv1");
    assert_eq!(
        (
            d.inputs[0].name.as_str(),
            d.inputs[0].datatype.as_str(),
            &d.inputs[0].shape[..]
        ),
        ("input-0", "FP32", &[-1, 4][..])
    );
    assert_eq!(
        d.outputs
            .iter()
            .map(|o| o.name.as_str())
            .collect::<Vec<_>>(),
        ["predict", "proba"]
    );
    assert_eq!(d.outputs[1].shape, [-1, 3]);
    // Back: everything but the tensor `parameters`, which the message has no field for.
    let mut expected = json_of(&json);
    expected["outputs"][1]
        .as_object_mut()
        .unwrap()
        .remove("parameters");
    assert_eq!(
        json_of(&model_metadata_response_to_json(&d.encode_to_vec()).unwrap()),
        expected
    );

    let server = server_metadata_response_from_json(&testdata("server_metadata.json")).unwrap();
    let d = pb::ServerMetadataResponse::decode(server.as_slice()).unwrap();
    assert_eq!(
        (d.name.as_str(), d.version.as_str()),
        ("seldon-mesh", "0.1.0")
    );
    assert_eq!(d.extensions, ["binary_tensor_data"]);
}

// ---------------------------------------------------------------- failures

fn err_text(r: Result<impl std::fmt::Debug, ProtocolError>) -> String {
    r.unwrap_err().to_string()
}

fn encoded(request: &pb::ModelInferRequest) -> Vec<u8> {
    request.encode_to_vec()
}

#[test]
fn request_failures_name_what_is_wrong() {
    let base = typed_request();
    // truncated varint: a lone continuation byte
    assert_eq!(
        err_text(infer_request_to_json(&[0x80])),
        "ModelInferRequest (gRPC): field `varint` is truncated"
    );
    // truncated message: cut the encoding short
    let whole = encoded(&base);
    assert!(err_text(infer_request_to_json(&whole[..whole.len() - 3])).contains("is truncated"));
    // wrong wire type: field 1 (model_name) as a varint
    assert_eq!(
        err_text(infer_request_to_json(&[0x08, 1])),
        "ModelInferRequest (gRPC): field `ModelInferRequest` field 1 has the wrong wire type"
    );
    // shape / data mismatch
    let mut r = base.clone();
    r.inputs[0].shape = vec![3];
    assert_eq!(
        err_text(infer_request_to_json(&encoded(&r))),
        "tensor `flags`: shape [3] needs 3 elements, data has 2"
    );
    // unknown datatype
    let mut r = base.clone();
    r.inputs[0].datatype = "FLOAT".into();
    assert!(
        err_text(infer_request_to_json(&encoded(&r)))
            .starts_with("tensor `flags`: unknown datatype \"FLOAT\"")
    );
    // contents in another datatype's field
    let mut r = base.clone();
    r.inputs[9].datatype = "FP64".into();
    assert_eq!(
        err_text(infer_request_to_json(&encoded(&r))),
        "tensor `f32`: carries fp32_contents but its datatype is FP64"
    );
    // out of range for the datatype
    let mut r = base.clone();
    r.inputs[1].contents.as_mut().unwrap().int_contents = vec![128, 0];
    assert_eq!(
        err_text(infer_request_to_json(&encoded(&r))),
        "tensor `i8`: element 0 (128) is out of range for INT8"
    );
    // negative dimension
    let mut r = base.clone();
    r.inputs[0].shape = vec![-1];
    assert_eq!(
        err_text(infer_request_to_json(&encoded(&r))),
        "tensor `flags`: shape dimension -1 is negative"
    );
    // NaN cannot go to JSON
    let mut r = base.clone();
    r.inputs[10].contents.as_mut().unwrap().fp64_contents = vec![f64::NAN, 1.0];
    assert_eq!(
        err_text(infer_request_to_json(&encoded(&r))),
        "tensor `f64`: element 0 is NaN, which JSON cannot carry"
    );
    // BYTES that are not UTF-8
    let mut r = base.clone();
    r.inputs[11].contents.as_mut().unwrap().bytes_contents = vec![vec![0xff], vec![]];
    assert_eq!(
        err_text(infer_request_to_json(&encoded(&r))),
        "tensor `text`: BYTES element 0 is not UTF-8, which JSON cannot carry"
    );
    // a tensor with no data for a non-empty shape
    let mut r = base.clone();
    r.inputs[0].contents = None;
    assert_eq!(
        err_text(infer_request_to_json(&encoded(&r))),
        "tensor `flags`: shape [2] needs 2 elements, data has 0"
    );
}

#[test]
fn raw_contents_failures() {
    let tensor = |dt: &str, shape: Vec<i64>| InferInputTensor {
        name: "x".into(),
        datatype: dt.into(),
        shape,
        ..Default::default()
    };
    let req = |inputs, raw| pb::ModelInferRequest {
        inputs,
        raw_input_contents: raw,
        ..Default::default()
    };
    // length not a whole number of elements
    assert_eq!(
        err_text(infer_request_to_json(&encoded(&req(
            vec![tensor("FP32", vec![2])],
            vec![vec![0; 7]]
        )))),
        "tensor `x`: raw_input_contents: 7 bytes is not a whole number of FP32 elements (4 bytes each)"
    );
    // whole elements, wrong count for the shape
    assert_eq!(
        err_text(infer_request_to_json(&encoded(&req(
            vec![tensor("FP32", vec![2])],
            vec![vec![0; 12]]
        )))),
        "tensor `x`: shape [2] needs 2 elements, data has 3"
    );
    // BYTES length prefix beyond the buffer
    assert_eq!(
        err_text(infer_request_to_json(&encoded(&req(
            vec![tensor("BYTES", vec![1])],
            vec![vec![9, 0, 0, 0, b'a']]
        )))),
        "tensor `x`: raw_input_contents: BYTES element 0 claims 9 bytes, only 1 left"
    );
    // buffer count differs from the inputs
    assert_eq!(
        err_text(infer_request_to_json(&encoded(&req(
            vec![tensor("UINT8", vec![1]), tensor("UINT8", vec![1])],
            vec![vec![1]]
        )))),
        "ModelInferRequest (gRPC): field `raw_input_contents` has 1 buffers for 2 tensors (one per tensor, in order)"
    );
    // contents and raw for one tensor
    let mut both = tensor("UINT8", vec![1]);
    both.contents = Some(pb::InferTensorContents {
        uint_contents: vec![1],
        ..Default::default()
    });
    assert_eq!(
        err_text(infer_request_to_json(&encoded(&req(
            vec![both],
            vec![vec![1]]
        )))),
        "tensor `x`: carries both contents and raw_input_contents"
    );
    // FP16 is raw only, and has no JSON form
    assert_eq!(
        err_text(infer_request_to_json(&encoded(&req(
            vec![tensor("FP16", vec![1])],
            vec![vec![0, 0x3c]]
        )))),
        "tensor `x`: is FP16, which has no JSON form (the nodes speak JSON); send FP32"
    );
    let mut typed16 = tensor("FP16", vec![1]);
    typed16.contents = Some(pb::InferTensorContents {
        fp32_contents: vec![1.0],
        ..Default::default()
    });
    assert_eq!(
        err_text(infer_request_to_json(&encoded(&req(vec![typed16], vec![])))),
        "tensor `x`: carries fp32_contents but its datatype is FP16 (FP16 travels in raw contents only)"
    );
}

#[test]
fn json_side_failures() {
    // not JSON
    assert!(
        err_text(infer_request_from_json(b"{", "m", ""))
            .starts_with("v2 inference request is not valid JSON")
    );
    assert!(
        err_text(infer_response_from_json(b"[]"))
            .starts_with("v2 inference response is not valid JSON")
    );
    // shape / data mismatch in the JSON
    let bad = br#"{"inputs":[{"name":"a","shape":[3],"datatype":"INT32","data":[1,2]}]}"#;
    assert!(
        err_text(infer_request_from_json(bad, "m", ""))
            .contains("shape [3] needs 3 elements, data has 2")
    );
    // a parameter gRPC cannot carry
    let bad = br#"{"parameters":{"tags":["a"]},"inputs":[]}"#;
    assert_eq!(
        err_text(infer_request_from_json(bad, "m", "")),
        "ModelInferRequest (gRPC): field `parameters` `tags` is [\"a\"]; a gRPC parameter is a bool, a number or a string"
    );
    // an output whose data is in a binary section
    let bad = br#"{"model_name":"m","outputs":[{"name":"o","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}]}"#;
    assert_eq!(
        err_text(infer_response_from_json(bad)),
        "tensor `o`: has no data (binary tensor extension bodies are not converted to gRPC)"
    );
    // response protobuf: wrong wire type and truncation
    assert!(err_text(infer_response_to_json(&[0x2a, 5, 1])).contains("is truncated"));
    assert_eq!(
        err_text(infer_response_to_json(&[0x30, 1])),
        "ModelInferResponse (gRPC): field `ModelInferResponse` field 6 has the wrong wire type"
    );
    // metadata
    assert!(err_text(model_metadata_response_from_json(br#"{"name":"m"}"#)).contains("platform"));
    let mut tm = vec![0x0a, 1, b'x', 0x12, 3];
    tm.extend(b"F32");
    let mut m = vec![0x22, tm.len() as u8];
    m.extend(tm);
    assert!(
        err_text(model_metadata_response_to_json(&m))
            .starts_with("tensor `x`: unknown datatype \"F32\"")
    );
    assert!(
        err_text(server_metadata_response_from_json(br#"{"name":1}"#))
            .contains("ServerMetadataResponse")
    );
    // readiness and model refs
    assert!(err_text(bool_response(&[0x0a, 0])).contains("wrong wire type"));
    assert!(err_text(model_ref(&[0x0a, 4, b'a'])).contains("is truncated"));
    assert!(err_text(model_ref(&[0x08, 0x80])).contains("truncated"));
}

/// The model server's own gRPC conversions (`seldon_serving::grpc`, what a real gRPC node
/// runs) agree with ours: it reads what we send a gRPC node, and we read what it answers.
#[test]
fn the_model_servers_conversions_agree_with_ours() {
    use seldon_serving::grpc::{infer_request_from_pb, infer_response_to_pb};
    for name in ["request_fp32.json", "request_mixed.json"] {
        let json = testdata(name);
        let ours = infer_request_from_json(&json, "m", "").unwrap();
        let theirs = infer_request_from_pb(pb::ModelInferRequest::decode(ours.as_slice()).unwrap())
            .unwrap_or_else(|e| panic!("{name}: the server refuses ours: {e}"));
        let mut expected = InferenceRequest::from_slice(&json).unwrap();
        expected.outputs = None; // the server does not read requested outputs
        assert_eq!(theirs, expected, "{name}");
    }
    for name in ["response_fp32.json", "response_mixed.json"] {
        let response = InferenceResponse::from_slice(&testdata(name)).unwrap();
        let pb = infer_response_to_pb(response.clone()).encode_to_vec();
        let ours = infer_response_to_json(&pb).unwrap();
        // The server leaves output tensor `parameters` out of its gRPC answer
        // (`infer_response_to_pb` writes an empty map); everything else must match.
        let mut expected = response;
        for o in &mut expected.outputs {
            o.parameters = None;
        }
        assert_eq!(
            InferenceResponse::from_slice(&ours).unwrap(),
            expected,
            "{name}"
        );
    }
}
