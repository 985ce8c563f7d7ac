//! Open Inference Protocol v2 codec: `InferenceRequest` ⇄ [`Request`]/[`Output`]. Pure.
//!
//! Every datatype decodes; numeric ones become f32 (`FP32`, `FP16`, `BOOL`, 8/16-bit
//! integers: exact in f32) or f64 (`FP64`, 32/64-bit integers; 64-bit integers above 2^53
//! lose precision), `BYTES` stays bytes.

use std::collections::BTreeMap;

use seldon_protocol::v2::{Datatype, InferTensor, InferenceRequest, InferenceResponse, TensorData};
use serde_json::Value;

use crate::error::ModelError;
use crate::model::{Output, Payload, Request};
use crate::tensor::{Tensor, Values};

/// Name of an output tensor the model left unnamed (MLServer's convention).
pub const DEFAULT_OUTPUT_NAME: &str = "predict";

/// Decodes a request: one input → [`Payload::Tensor`], several → [`Payload::Tensors`].
pub fn decode(request: InferenceRequest) -> Result<Request, ModelError> {
    let mut tensors = request
        .inputs
        .into_iter()
        .map(decode_tensor)
        .collect::<Result<Vec<_>, _>>()?;
    let payload = match tensors.len() {
        0 => return Err(ModelError::bad_data("the request has no inputs")),
        1 => Payload::Tensor(tensors.remove(0)),
        _ => Payload::Tensors(tensors),
    };
    Ok(Request {
        payload,
        meta: Default::default(),
        parameters: request.parameters.unwrap_or_default(),
    })
}

/// One v2 tensor → [`Tensor`] (widened or narrowed as the module doc says).
pub fn decode_tensor(t: InferTensor) -> Result<Tensor, ModelError> {
    let data = t
        .data
        .ok_or_else(|| ModelError::bad_data(format!("input `{}` has no data", t.name)))?;
    let shape = t
        .shape
        .iter()
        .map(|d| {
            usize::try_from(*d).map_err(|_| {
                ModelError::bad_data(format!("input `{}`: dimension {d} is too large", t.name))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Tensor::new(shape, values_of(data))?.with_name(t.name))
}

#[allow(clippy::cast_precision_loss)]
fn values_of(data: TensorData) -> Values {
    fn f32s<T: Copy + Into<f32>>(v: Vec<T>) -> Values {
        Values::F32(v.into_iter().map(Into::into).collect())
    }
    fn f64s<T: Copy + Into<f64>>(v: Vec<T>) -> Values {
        Values::F64(v.into_iter().map(Into::into).collect())
    }
    match data {
        TensorData::Bool(v) => Values::F32(v.into_iter().map(|b| f32::from(u8::from(b))).collect()),
        TensorData::Uint8(v) => f32s(v),
        TensorData::Uint16(v) => f32s(v),
        TensorData::Int8(v) => f32s(v),
        TensorData::Int16(v) => f32s(v),
        TensorData::Fp16(v) => Values::F32(
            v.into_iter()
                .map(|b| half::f16::from_bits(b).to_f32())
                .collect(),
        ),
        TensorData::Fp32(v) => Values::F32(v),
        TensorData::Uint32(v) => f64s(v),
        TensorData::Int32(v) => f64s(v),
        TensorData::Uint64(v) => Values::F64(v.into_iter().map(|x| x as f64).collect()),
        TensorData::Int64(v) => Values::F64(v.into_iter().map(|x| x as f64).collect()),
        TensorData::Fp64(v) => Values::F64(v),
        TensorData::Bytes(v) => Values::Bytes(v),
    }
}

/// One [`Tensor`] → a v2 output (`FP32`, `FP64` or `BYTES`).
pub fn encode_tensor(t: Tensor, index: usize) -> Result<InferTensor, ModelError> {
    let name = if !t.name.is_empty() {
        t.name
    } else if index == 0 {
        DEFAULT_OUTPUT_NAME.to_string()
    } else {
        format!("{DEFAULT_OUTPUT_NAME}-{index}")
    };
    let data = match t.values {
        Values::F32(v) => TensorData::Fp32(v),
        Values::F64(v) => TensorData::Fp64(v),
        Values::Bytes(v) => TensorData::Bytes(v),
    };
    let shape = t.shape.iter().map(|d| *d as u64).collect();
    InferTensor::new(name, shape, data).map_err(|e| ModelError::internal(e.to_string()))
}

/// Builds the response: outputs from the payload, `id` echoed, per-call tags in `parameters`.
pub fn encode(
    out: Output<Payload>,
    model_name: &str,
    model_version: Option<&str>,
    id: Option<String>,
) -> Result<InferenceResponse, ModelError> {
    let outputs = match out.value {
        Payload::Tensor(t) => vec![encode_tensor(t, 0)?],
        Payload::Tensors(ts) => ts
            .into_iter()
            .enumerate()
            .map(|(i, t)| encode_tensor(t, i))
            .collect::<Result<_, _>>()?,
        Payload::Str(s) => vec![bytes_output(s.into_bytes())?],
        Payload::Bin(b) => vec![bytes_output(b)?],
        Payload::Json(j) => vec![bytes_output(j.to_string().into_bytes())?],
        Payload::None => Vec::new(),
    };
    let parameters: BTreeMap<String, Value> = out.tags;
    Ok(InferenceResponse {
        model_name: model_name.to_string(),
        model_version: model_version.map(str::to_string),
        id,
        parameters: (!parameters.is_empty()).then_some(parameters),
        outputs,
    })
}

fn bytes_output(b: Vec<u8>) -> Result<InferTensor, ModelError> {
    InferTensor::new(DEFAULT_OUTPUT_NAME, vec![1], TensorData::Bytes(vec![b]))
        .map_err(|e| ModelError::internal(e.to_string()))
}

/// True when the client asked for binary outputs (request `binary_data_output` or any
/// requested output's `binary_data`).
pub fn wants_binary(request: &InferenceRequest) -> bool {
    use seldon_protocol::v2::binary::{BINARY_DATA, BINARY_DATA_OUTPUT};
    let truthy = |p: Option<&BTreeMap<String, Value>>, key: &str| {
        p.and_then(|p| p.get(key))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    truthy(request.parameters.as_ref(), BINARY_DATA_OUTPUT)
        || request
            .outputs
            .iter()
            .flatten()
            .any(|o| truthy(o.parameters.as_ref(), BINARY_DATA))
}

/// Parses a metadata datatype string (`"FP32"`), for v2 model metadata.
pub fn datatype(name: &str) -> Option<Datatype> {
    Datatype::ALL.into_iter().find(|d| d.as_str() == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(v: Value) -> InferenceRequest {
        InferenceRequest::from_slice(v.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn every_numeric_datatype_decodes_to_floats() {
        for (dt, data, expect) in [
            ("BOOL", json!([true, false]), Values::F32(vec![1.0, 0.0])),
            ("UINT8", json!([1, 2]), Values::F32(vec![1.0, 2.0])),
            ("INT16", json!([-1, 2]), Values::F32(vec![-1.0, 2.0])),
            ("FP32", json!([0.5, 2]), Values::F32(vec![0.5, 2.0])),
            ("INT32", json!([-7, 2]), Values::F64(vec![-7.0, 2.0])),
            ("UINT64", json!([1, 2]), Values::F64(vec![1.0, 2.0])),
            ("INT64", json!([3, -4]), Values::F64(vec![3.0, -4.0])),
            ("FP64", json!([0.25, 1]), Values::F64(vec![0.25, 1.0])),
            (
                "BYTES",
                json!(["a", "bc"]),
                Values::Bytes(vec![b"a".to_vec(), b"bc".to_vec()]),
            ),
        ] {
            let r = decode(req(
                json!({"inputs":[{"name":"x","shape":[1,2],"datatype":dt,"data":data}]}),
            ))
            .unwrap();
            let t = r.payload.tensor().unwrap();
            assert_eq!(
                (t.name.as_str(), &t.shape, &t.values),
                ("x", &vec![1, 2], &expect),
                "{dt}"
            );
        }
    }

    #[test]
    fn fp16_decodes_from_bits() {
        let t = InferTensor::new("h", vec![2], TensorData::Fp16(vec![0x3c00, 0xc000])).unwrap();
        assert_eq!(
            decode_tensor(t).unwrap().values,
            Values::F32(vec![1.0, -2.0])
        );
    }

    #[test]
    fn several_inputs_and_no_inputs() {
        let r = decode(req(json!({"inputs":[
            {"name":"a","shape":[1],"datatype":"FP32","data":[1]},
            {"name":"b","shape":[1],"datatype":"FP32","data":[2]}]})))
        .unwrap();
        assert!(matches!(r.payload, Payload::Tensors(ref v) if v.len() == 2));
        let err = decode(req(json!({"inputs":[]}))).unwrap_err();
        assert_eq!(err.to_string(), "the request has no inputs");
    }

    #[test]
    fn missing_data_is_bad_data() {
        let err = decode(req(
            json!({"inputs":[{"name":"a","shape":[1],"datatype":"FP32"}]}),
        ))
        .unwrap_err();
        assert_eq!(err.to_string(), "input `a` has no data");
    }

    #[test]
    fn encode_names_outputs_and_echoes_id() {
        let t = Tensor::matrix_f32(1, 2, vec![0.25, 0.75]).unwrap();
        let resp = encode(
            Output::new(Payload::Tensor(t)).tag("k", "v"),
            "iris",
            Some("1"),
            Some("req-1".into()),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&resp).unwrap(),
            json!({"model_name":"iris","model_version":"1","id":"req-1","parameters":{"k":"v"},
                   "outputs":[{"name":"predict","shape":[1,2],"datatype":"FP32","data":[0.25,0.75]}]})
        );
        let s = encode(Output::new(Payload::Str("hi".into())), "m", None, None).unwrap();
        assert_eq!(s.outputs[0].datatype, Datatype::Bytes);
    }

    #[test]
    fn wants_binary_reads_both_parameters() {
        assert!(!wants_binary(&req(json!({"inputs":[]}))));
        assert!(wants_binary(&req(
            json!({"inputs":[],"parameters":{"binary_data_output":true}})
        )));
        assert!(wants_binary(&req(
            json!({"inputs":[],"outputs":[{"name":"predict","parameters":{"binary_data":true}}]})
        )));
    }

    #[test]
    fn datatype_names_round_trip() {
        assert_eq!(datatype("FP32"), Some(Datatype::Fp32));
        assert_eq!(datatype("FLOAT"), None);
    }
}
