//! Open Inference Protocol (KServe V2) gRPC ⇄ its REST JSON, without generated code: the
//! messages of `proto/inference/open_inference_grpc.proto` over the small wire codec of
//! [`crate::grpc`].
//!
//! The graph's nodes speak REST JSON (`{"id","parameters","inputs":[{"name","datatype",
//! "shape","parameters","data"}],"outputs"}`); a gRPC call at the entry (or to a gRPC node)
//! is converted here, going through the typed models of [`crate::v2`] so shape, datatype and
//! data are checked on the way.
//!
//! ```text
//!   ModelInferRequest  ─ infer_request_to_json ──► v2 request JSON (+ model name, version)
//!   ModelInferRequest  ◄ infer_request_from_json ─ v2 request JSON        (calling a gRPC node)
//!   ModelInferResponse ◄ infer_response_from_json  v2 response JSON
//!   ModelInferResponse ─ infer_response_to_json ─► v2 response JSON       (a gRPC node's answer)
//!   ModelReady / ModelMetadata requests ─► ModelRef;  readiness, liveness, metadata answers ◄ JSON
//! ```
//!
//! Tensor data, per datatype:
//!
//! | datatype | typed `contents` field | raw (`raw_input_contents` / `raw_output_contents`) |
//! |---|---|---|
//! | BOOL | `bool_contents` | 1 byte, 0 or 1 |
//! | INT8, INT16, INT32 | `int_contents` (range-checked) | little-endian, 1/2/4 bytes |
//! | INT64 | `int64_contents` | little-endian, 8 bytes |
//! | UINT8, UINT16, UINT32 | `uint_contents` (range-checked) | little-endian, 1/2/4 bytes |
//! | UINT64 | `uint64_contents` | little-endian, 8 bytes |
//! | FP16 | none: raw only, and JSON has no FP16 form (refused) | 2 bytes |
//! | FP32 / FP64 | `fp32_contents` / `fp64_contents` | IEEE 754 little-endian |
//! | BYTES | `bytes_contents` (UTF-8 to go to JSON) | each element: 4-byte LE length + bytes |
//!
//! Reading accepts either form (raw buffers, when present, are one per tensor in order, and a
//! tensor must not also carry `contents`); writing uses typed `contents` (what JSON holds always
//! has a typed field: JSON has no FP16). Floats that are NaN or infinite are refused on the way
//! to JSON, which cannot carry them.
//! Refused, by name: unknown datatypes, contents of another datatype's field, shape and
//! element count that disagree, raw buffers of the wrong size or count, negative dimensions,
//! parameter values that are not a bool, number or string.

use serde_json::{Number, Value};

use crate::ProtocolError;
use crate::v2::{
    Datatype, InferTensor, InferenceRequest, InferenceResponse, MetadataTensor, ModelMetadata,
    Parameters, RequestOutput, ServerMetadata, TensorData,
};
use crate::wire::{
    Fields, Varints, Wire, put_bytes, put_message, put_tag, put_varint, put_varint_field,
};

const REQUEST: &str = "ModelInferRequest (gRPC)";
const RESPONSE: &str = "ModelInferResponse (gRPC)";
const METADATA: &str = "ModelMetadataResponse (gRPC)";
const SERVER_METADATA: &str = "ServerMetadataResponse (gRPC)";
const MODEL_REF: &str = "ModelReadyRequest / ModelMetadataRequest (gRPC)";

/// A `ModelInferRequest` read from gRPC: the model it names and its body as v2 REST JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InferRequestJson {
    /// `model_name` (may be empty: the graph entry routes by metadata, not by it).
    pub model_name: String,
    /// `model_version`; empty when the client let the server pick.
    pub model_version: String,
    /// `{"id","parameters","inputs","outputs"}`, defaults left out.
    pub json: Vec<u8>,
}

/// The model a `ModelReadyRequest` or `ModelMetadataRequest` asks about.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelRef {
    pub name: String,
    /// Empty: any version.
    pub version: String,
}

// ---------------------------------------------------------------- inference

/// `ModelInferRequest` protobuf → the v2 REST JSON the nodes speak.
pub fn infer_request_to_json(pb: &[u8]) -> Result<InferRequestJson, ProtocolError> {
    let mut model_name = String::new();
    let mut model_version = String::new();
    let mut request = InferenceRequest::default();
    let mut parameters = Parameters::new();
    let mut inputs = Vec::new();
    let mut outputs = Vec::new();
    let mut raw = Vec::new();
    for field in Fields::new(pb, REQUEST) {
        let (number, wire) = field?;
        match (number, wire) {
            (1, Wire::Len(b)) => model_name = utf8(REQUEST, b, "model_name")?,
            (2, Wire::Len(b)) => model_version = utf8(REQUEST, b, "model_version")?,
            (3, Wire::Len(b)) => request.id = non_empty(utf8(REQUEST, b, "id")?),
            (4, Wire::Len(b)) => parameter_entry(REQUEST, b, &mut parameters)?,
            (5, Wire::Len(b)) => inputs.push(RawTensor::decode(REQUEST, b)?),
            (6, Wire::Len(b)) => outputs.push(requested_output(b)?),
            (7, Wire::Len(b)) => raw.push(b),
            (1..=7, _) => return Err(wrong_wire(REQUEST, "ModelInferRequest", number)),
            _ => {}
        }
    }
    request.parameters = (!parameters.is_empty()).then_some(parameters);
    request.inputs = attach_data(REQUEST, "raw_input_contents", inputs, &raw)?;
    request.outputs = (!outputs.is_empty()).then_some(outputs);
    let json = serde_json::to_vec(&request).map_err(ProtocolError::json(REQUEST))?;
    Ok(InferRequestJson {
        model_name,
        model_version,
        json,
    })
}

/// v2 REST request JSON → `ModelInferRequest` protobuf for `model_name` (calling a gRPC node).
/// Inputs go as typed `contents`.
pub fn infer_request_from_json(
    json: &[u8],
    model_name: &str,
    model_version: &str,
) -> Result<Vec<u8>, ProtocolError> {
    let request = InferenceRequest::from_slice(json)?;
    let mut out = Vec::new();
    put_string(&mut out, 1, model_name);
    put_string(&mut out, 2, model_version);
    put_string(&mut out, 3, request.id.as_deref().unwrap_or_default());
    put_parameters(&mut out, REQUEST, 4, request.parameters.as_ref())?;
    put_tensors(&mut out, REQUEST, 5, &request.inputs)?;
    for o in request.outputs.iter().flatten() {
        let mut m = Vec::new();
        put_string(&mut m, 1, &o.name);
        put_parameters(&mut m, REQUEST, 2, o.parameters.as_ref())?;
        put_message(&mut out, 6, &m);
    }
    Ok(out)
}

/// v2 REST response JSON → `ModelInferResponse` protobuf. Outputs go as typed `contents`.
///
/// A response parameter (the response's or an output's) that is not a bool, number or string
/// — an object, an array, `null` — has no `InferParameter` form and is left out, as MLServer's
/// `ParametersConverter.from_types` skips it: an answer is never refused for its metadata.
/// (Requests stay strict: `infer_request_from_json` refuses such a parameter.)
pub fn infer_response_from_json(json: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let response = InferenceResponse::from_slice(json)?;
    let mut out = Vec::new();
    put_string(&mut out, 1, &response.model_name);
    put_string(
        &mut out,
        2,
        response.model_version.as_deref().unwrap_or_default(),
    );
    put_string(&mut out, 3, response.id.as_deref().unwrap_or_default());
    put_parameters(&mut out, RESPONSE, 4, response.parameters.as_ref())?;
    put_tensors(&mut out, RESPONSE, 5, &response.outputs)?;
    Ok(out)
}

/// `ModelInferResponse` protobuf (a gRPC node's answer) → v2 REST response JSON.
pub fn infer_response_to_json(pb: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let mut response = InferenceResponse::default();
    let mut parameters = Parameters::new();
    let mut outputs = Vec::new();
    let mut raw = Vec::new();
    for field in Fields::new(pb, RESPONSE) {
        let (number, wire) = field?;
        match (number, wire) {
            (1, Wire::Len(b)) => response.model_name = utf8(RESPONSE, b, "model_name")?,
            (2, Wire::Len(b)) => {
                response.model_version = non_empty(utf8(RESPONSE, b, "model_version")?);
            }
            (3, Wire::Len(b)) => response.id = non_empty(utf8(RESPONSE, b, "id")?),
            (4, Wire::Len(b)) => parameter_entry(RESPONSE, b, &mut parameters)?,
            (5, Wire::Len(b)) => outputs.push(RawTensor::decode(RESPONSE, b)?),
            (6, Wire::Len(b)) => raw.push(b),
            (1..=6, _) => return Err(wrong_wire(RESPONSE, "ModelInferResponse", number)),
            _ => {}
        }
    }
    response.parameters = (!parameters.is_empty()).then_some(parameters);
    response.outputs = attach_data(RESPONSE, "raw_output_contents", outputs, &raw)?;
    serde_json::to_vec(&response).map_err(ProtocolError::json(RESPONSE))
}

// ---------------------------------------------------------------- health and metadata

/// `ModelReadyRequest` or `ModelMetadataRequest` protobuf (both `{name = 1, version = 2}`).
pub fn model_ref(pb: &[u8]) -> Result<ModelRef, ProtocolError> {
    let mut r = ModelRef::default();
    for field in Fields::new(pb, MODEL_REF) {
        match field? {
            (1, Wire::Len(b)) => r.name = utf8(MODEL_REF, b, "name")?,
            (2, Wire::Len(b)) => r.version = utf8(MODEL_REF, b, "version")?,
            (n @ 1..=2, _) => return Err(wrong_wire(MODEL_REF, "request", n)),
            _ => {}
        }
    }
    Ok(r)
}

/// `ModelReadyRequest` / `ModelMetadataRequest` protobuf for `name` (calling a gRPC node's
/// `ModelReady` or `ModelMetadata`); an empty `version` lets the server pick.
pub fn model_ref_request(name: &str, version: &str) -> Vec<u8> {
    let mut out = Vec::new();
    put_string(&mut out, 1, name);
    put_string(&mut out, 2, version);
    out
}

/// `ModelReadyResponse { ready }`.
pub fn model_ready_response(ready: bool) -> Vec<u8> {
    bool_message(ready)
}

/// `ServerLiveResponse { live }`.
pub fn server_live_response(live: bool) -> Vec<u8> {
    bool_message(live)
}

/// `ServerReadyResponse { ready }`.
pub fn server_ready_response(ready: bool) -> Vec<u8> {
    bool_message(ready)
}

/// The `ready`/`live` flag of a `ModelReadyResponse`, `ServerReadyResponse` or
/// `ServerLiveResponse` (a gRPC node's answer).
pub fn bool_response(pb: &[u8]) -> Result<bool, ProtocolError> {
    let mut flag = false;
    for field in Fields::new(pb, "readiness response (gRPC)") {
        match field? {
            (1, Wire::Varint(v)) => flag = v != 0,
            (1, _) => return Err(wrong_wire("readiness response (gRPC)", "response", 1)),
            _ => {}
        }
    }
    Ok(flag)
}

/// v2 model metadata JSON (`GET /v2/models/{m}`) → `ModelMetadataResponse` protobuf. The
/// JSON's `parameters` (model and tensor) have no field in the message and are left out.
pub fn model_metadata_response_from_json(json: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let m: ModelMetadata = serde_json::from_slice(json).map_err(ProtocolError::json(METADATA))?;
    let mut out = Vec::new();
    put_string(&mut out, 1, &m.name);
    for v in m.versions.iter().flatten() {
        put_bytes(&mut out, 2, v.as_bytes());
    }
    put_string(&mut out, 3, &m.platform);
    for (number, tensors) in [(4, &m.inputs), (5, &m.outputs)] {
        for t in tensors {
            let mut tm = Vec::new();
            put_string(&mut tm, 1, &t.name);
            put_string(&mut tm, 2, t.datatype.as_str());
            put_packed_varints(&mut tm, 3, t.shape.iter().map(|d| *d as u64));
            put_message(&mut out, number, &tm);
        }
    }
    Ok(out)
}

/// `ModelMetadataResponse` protobuf (a gRPC node's answer) → v2 model metadata JSON.
pub fn model_metadata_response_to_json(pb: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let mut m = ModelMetadata::default();
    let mut versions = Vec::new();
    for field in Fields::new(pb, METADATA) {
        let (number, wire) = field?;
        match (number, wire) {
            (1, Wire::Len(b)) => m.name = utf8(METADATA, b, "name")?,
            (2, Wire::Len(b)) => versions.push(utf8(METADATA, b, "versions")?),
            (3, Wire::Len(b)) => m.platform = utf8(METADATA, b, "platform")?,
            (4, Wire::Len(b)) => m.inputs.push(metadata_tensor(b)?),
            (5, Wire::Len(b)) => m.outputs.push(metadata_tensor(b)?),
            (1..=5, _) => return Err(wrong_wire(METADATA, "ModelMetadataResponse", number)),
            _ => {}
        }
    }
    m.versions = (!versions.is_empty()).then_some(versions);
    serde_json::to_vec(&m).map_err(ProtocolError::json(METADATA))
}

/// v2 server metadata JSON (`GET /v2`) → `ServerMetadataResponse` protobuf.
pub fn server_metadata_response_from_json(json: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let m: ServerMetadata =
        serde_json::from_slice(json).map_err(ProtocolError::json(SERVER_METADATA))?;
    let mut out = Vec::new();
    put_string(&mut out, 1, &m.name);
    put_string(&mut out, 2, &m.version);
    for e in &m.extensions {
        put_bytes(&mut out, 3, e.as_bytes());
    }
    Ok(out)
}

fn metadata_tensor(pb: &[u8]) -> Result<MetadataTensor, ProtocolError> {
    let mut name = String::new();
    let mut datatype = None;
    let mut shape = Vec::new();
    for field in Fields::new(pb, METADATA) {
        match field? {
            (1, Wire::Len(b)) => name = utf8(METADATA, b, "TensorMetadata.name")?,
            (2, Wire::Len(b)) => {
                datatype = Some(parse_datatype(&utf8(METADATA, b, "datatype")?, &name)?);
            }
            (3, Wire::Varint(v)) => shape.push(v as i64),
            (3, Wire::Len(b)) => {
                for v in Varints::new(b, METADATA) {
                    shape.push(v? as i64);
                }
            }
            (n @ 1..=3, _) => return Err(wrong_wire(METADATA, "TensorMetadata", n)),
            _ => {}
        }
    }
    let datatype = datatype.ok_or_else(|| ProtocolError::Tensor {
        name: name.clone(),
        reason: "has no datatype".into(),
    })?;
    Ok(MetadataTensor {
        name,
        datatype,
        shape,
        parameters: None,
    })
}

fn bool_message(flag: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if flag {
        put_varint_field(&mut out, 1, 1);
    }
    out
}

// ---------------------------------------------------------------- tensors, protobuf → typed

/// One `InferInputTensor` / `InferOutputTensor` as read, before raw buffers are attached.
struct RawTensor {
    name: String,
    datatype: Datatype,
    shape: Vec<u64>,
    parameters: Option<Parameters>,
    /// Typed `contents`, already checked against `datatype`; `None` when absent.
    contents: Option<TensorData>,
}

impl RawTensor {
    fn decode(context: &'static str, pb: &[u8]) -> Result<Self, ProtocolError> {
        let mut name = String::new();
        let mut datatype = None;
        let mut shape = Vec::new();
        let mut parameters = Parameters::new();
        let mut contents = None;
        for field in Fields::new(pb, context) {
            match field? {
                (1, Wire::Len(b)) => name = utf8(context, b, "tensor name")?,
                (2, Wire::Len(b)) => datatype = Some(utf8(context, b, "datatype")?),
                (3, Wire::Varint(v)) => shape.push(v as i64),
                (3, Wire::Len(b)) => {
                    for v in Varints::new(b, context) {
                        shape.push(v? as i64);
                    }
                }
                (4, Wire::Len(b)) => parameter_entry(context, b, &mut parameters)?,
                (5, Wire::Len(b)) => contents = Some(b),
                (n @ 1..=5, _) => return Err(wrong_wire(context, "tensor", n)),
                _ => {}
            }
        }
        let tensor_error = |reason: String| ProtocolError::Tensor {
            name: name.clone(),
            reason,
        };
        let datatype = match datatype {
            Some(d) => parse_datatype(&d, &name)?,
            None => return Err(tensor_error("has no datatype".into())),
        };
        let shape = shape
            .into_iter()
            .map(|d| {
                u64::try_from(d)
                    .map_err(|_| tensor_error(format!("shape dimension {d} is negative")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let contents = contents
            .map(|b| typed_contents(context, b, datatype, &name))
            .transpose()?;
        Ok(Self {
            name,
            datatype,
            shape,
            parameters: (!parameters.is_empty()).then_some(parameters),
            contents,
        })
    }
}

/// Gives every tensor its data — typed contents or its raw buffer — and checks it against the
/// shape.
fn attach_data(
    context: &'static str,
    raw_field: &'static str,
    tensors: Vec<RawTensor>,
    raw: &[&[u8]],
) -> Result<Vec<InferTensor>, ProtocolError> {
    if !raw.is_empty() && raw.len() != tensors.len() {
        return Err(ProtocolError::Field {
            context,
            field: raw_field,
            reason: format!(
                "has {} buffers for {} tensors (one per tensor, in order)",
                raw.len(),
                tensors.len()
            ),
        });
    }
    tensors
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let error = |reason: String| ProtocolError::Tensor {
                name: t.name.clone(),
                reason,
            };
            let data = match (t.contents, raw.get(i)) {
                (Some(_), Some(_)) => {
                    return Err(error(format!("carries both contents and {raw_field}")));
                }
                (Some(data), None) => data,
                (None, Some(bytes)) => TensorData::from_le_bytes(t.datatype, bytes)
                    .map_err(|e| error(format!("{raw_field}: {e}")))?,
                (None, None) => empty(t.datatype),
            };
            let mut tensor = InferTensor::new(t.name.clone(), t.shape, data)?;
            tensor.parameters = t.parameters;
            json_safe(&tensor)?;
            Ok(tensor)
        })
        .collect()
}

/// What an `InferTensorContents` holds, for `datatype`.
fn typed_contents(
    context: &'static str,
    pb: &[u8],
    datatype: Datatype,
    name: &str,
) -> Result<TensorData, ProtocolError> {
    let error = |reason: String| ProtocolError::Tensor {
        name: name.to_string(),
        reason,
    };
    // The one field this datatype may use.
    let expected: Option<u32> = match datatype {
        Datatype::Bool => Some(1),
        Datatype::Int8 | Datatype::Int16 | Datatype::Int32 => Some(2),
        Datatype::Int64 => Some(3),
        Datatype::Uint8 | Datatype::Uint16 | Datatype::Uint32 => Some(4),
        Datatype::Uint64 => Some(5),
        Datatype::Fp32 => Some(6),
        Datatype::Fp64 => Some(7),
        Datatype::Bytes => Some(8),
        Datatype::Fp16 => None,
    };
    let mut varints: Vec<u64> = Vec::new();
    let mut fixed32: Vec<u32> = Vec::new();
    let mut fixed64: Vec<u64> = Vec::new();
    let mut bytes: Vec<Vec<u8>> = Vec::new();
    for field in Fields::new(pb, context) {
        let (number, wire) = field?;
        if !(1..=8).contains(&number) {
            continue;
        }
        if Some(number) != expected {
            return Err(error(format!(
                "carries {} but its datatype is {datatype}{}",
                CONTENTS_FIELDS[number as usize - 1],
                if datatype == Datatype::Fp16 {
                    " (FP16 travels in raw contents only)"
                } else {
                    ""
                }
            )));
        }
        match (number, wire) {
            (1..=5, Wire::Varint(v)) => varints.push(v),
            (1..=5, Wire::Len(b)) => {
                for v in Varints::new(b, context) {
                    varints.push(v?);
                }
            }
            (6, Wire::Fixed32(v)) => fixed32.push(v),
            (6, Wire::Len(b)) => fixed32.extend(chunks::<4>(context, b)?.map(u32::from_le_bytes)),
            (7, Wire::Fixed64(v)) => fixed64.push(v),
            (7, Wire::Len(b)) => fixed64.extend(chunks::<8>(context, b)?.map(u64::from_le_bytes)),
            (8, Wire::Len(b)) => bytes.push(b.to_vec()),
            (n, _) => return Err(wrong_wire(context, "InferTensorContents", n)),
        }
    }
    // Narrows each varint to the datatype, refusing values out of its range.
    macro_rules! narrow {
        ($variant:ident, $t:ty, $wide:ty) => {
            TensorData::$variant(
                varints
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        // int32/uint32 fields keep the low 32 bits, as protobuf parsers do.
                        <$t>::try_from(*v as $wide).map_err(|_| {
                            error(format!(
                                "element {i} ({}) is out of range for {datatype}",
                                *v as $wide
                            ))
                        })
                    })
                    .collect::<Result<_, _>>()?,
            )
        };
    }
    Ok(match datatype {
        Datatype::Bool => TensorData::Bool(varints.iter().map(|v| *v != 0).collect()),
        Datatype::Int8 => narrow!(Int8, i8, i32),
        Datatype::Int16 => narrow!(Int16, i16, i32),
        Datatype::Int32 => narrow!(Int32, i32, i32),
        Datatype::Int64 => TensorData::Int64(varints.iter().map(|v| *v as i64).collect()),
        Datatype::Uint8 => narrow!(Uint8, u8, u32),
        Datatype::Uint16 => narrow!(Uint16, u16, u32),
        Datatype::Uint32 => narrow!(Uint32, u32, u32),
        Datatype::Uint64 => TensorData::Uint64(varints),
        Datatype::Fp32 => TensorData::Fp32(fixed32.into_iter().map(f32::from_bits).collect()),
        Datatype::Fp64 => TensorData::Fp64(fixed64.into_iter().map(f64::from_bits).collect()),
        Datatype::Bytes => TensorData::Bytes(bytes),
        Datatype::Fp16 => TensorData::Fp16(Vec::new()),
    })
}

const CONTENTS_FIELDS: [&str; 8] = [
    "bool_contents",
    "int_contents",
    "int64_contents",
    "uint_contents",
    "uint64_contents",
    "fp32_contents",
    "fp64_contents",
    "bytes_contents",
];

fn chunks<'a, const N: usize>(
    context: &'static str,
    b: &'a [u8],
) -> Result<impl Iterator<Item = [u8; N]> + 'a, ProtocolError> {
    if !b.len().is_multiple_of(N) {
        return Err(crate::wire::truncated(
            context,
            "packed fixed-size contents",
        ));
    }
    Ok(b.chunks_exact(N).map(|c| {
        let mut a = [0u8; N];
        a.copy_from_slice(c);
        a
    }))
}

fn empty(datatype: Datatype) -> TensorData {
    match datatype {
        Datatype::Bool => TensorData::Bool(Vec::new()),
        Datatype::Uint8 => TensorData::Uint8(Vec::new()),
        Datatype::Uint16 => TensorData::Uint16(Vec::new()),
        Datatype::Uint32 => TensorData::Uint32(Vec::new()),
        Datatype::Uint64 => TensorData::Uint64(Vec::new()),
        Datatype::Int8 => TensorData::Int8(Vec::new()),
        Datatype::Int16 => TensorData::Int16(Vec::new()),
        Datatype::Int32 => TensorData::Int32(Vec::new()),
        Datatype::Int64 => TensorData::Int64(Vec::new()),
        Datatype::Fp16 => TensorData::Fp16(Vec::new()),
        Datatype::Fp32 => TensorData::Fp32(Vec::new()),
        Datatype::Fp64 => TensorData::Fp64(Vec::new()),
        Datatype::Bytes => TensorData::Bytes(Vec::new()),
    }
}

/// Refuses what JSON cannot carry, naming the tensor: FP16, BYTES that are not UTF-8, NaN and
/// infinities (serde_json would write them as `null`).
fn json_safe(tensor: &InferTensor) -> Result<(), ProtocolError> {
    let error = |reason: String| ProtocolError::Tensor {
        name: tensor.name.clone(),
        reason,
    };
    match &tensor.data {
        Some(TensorData::Fp16(_)) => Err(error(
            "is FP16, which has no JSON form (the nodes speak JSON); send FP32".into(),
        )),
        Some(TensorData::Bytes(v)) => {
            match v.iter().position(|b| std::str::from_utf8(b).is_err()) {
                Some(i) => Err(error(format!(
                    "BYTES element {i} is not UTF-8, which JSON cannot carry"
                ))),
                None => Ok(()),
            }
        }
        Some(TensorData::Fp32(v)) => finite(v.iter().map(|f| f64::from(*f)), &error),
        Some(TensorData::Fp64(v)) => finite(v.iter().copied(), &error),
        _ => Ok(()),
    }
}

fn finite(
    values: impl Iterator<Item = f64>,
    error: &dyn Fn(String) -> ProtocolError,
) -> Result<(), ProtocolError> {
    for (i, f) in values.enumerate() {
        if !f.is_finite() {
            return Err(error(format!(
                "element {i} is {f}, which JSON cannot carry"
            )));
        }
    }
    Ok(())
}

fn parse_datatype(text: &str, tensor: &str) -> Result<Datatype, ProtocolError> {
    Datatype::ALL
        .into_iter()
        .find(|d| d.as_str() == text)
        .ok_or_else(|| ProtocolError::Tensor {
            name: tensor.to_string(),
            reason: format!(
                "unknown datatype {text:?} (expected one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES)"
            ),
        })
}

fn requested_output(pb: &[u8]) -> Result<RequestOutput, ProtocolError> {
    let mut name = String::new();
    let mut parameters = Parameters::new();
    for field in Fields::new(pb, REQUEST) {
        match field? {
            (1, Wire::Len(b)) => name = utf8(REQUEST, b, "outputs.name")?,
            (2, Wire::Len(b)) => parameter_entry(REQUEST, b, &mut parameters)?,
            (n @ 1..=2, _) => return Err(wrong_wire(REQUEST, "InferRequestedOutputTensor", n)),
            _ => {}
        }
    }
    Ok(RequestOutput {
        name,
        parameters: (!parameters.is_empty()).then_some(parameters),
    })
}

/// One `map<string, InferParameter>` entry into `out`; an entry with no value set is skipped.
fn parameter_entry(
    context: &'static str,
    pb: &[u8],
    out: &mut Parameters,
) -> Result<(), ProtocolError> {
    let mut key = String::new();
    let mut value = None;
    for field in Fields::new(pb, context) {
        match field? {
            (1, Wire::Len(b)) => key = utf8(context, b, "parameters key")?,
            (2, Wire::Len(b)) => value = parameter_value(context, b)?,
            (n @ 1..=2, _) => return Err(wrong_wire(context, "parameters entry", n)),
            _ => {}
        }
    }
    if let Some(v) = value {
        out.insert(key, v);
    }
    Ok(())
}

fn parameter_value(context: &'static str, pb: &[u8]) -> Result<Option<Value>, ProtocolError> {
    let mut value = None;
    for field in Fields::new(pb, context) {
        value = Some(match field? {
            (1, Wire::Varint(v)) => Value::Bool(v != 0),
            (2, Wire::Varint(v)) => Value::from(v as i64),
            (3, Wire::Len(b)) => Value::String(utf8(context, b, "string_param")?),
            (4, Wire::Fixed64(bits)) => {
                let f = f64::from_bits(bits);
                Value::Number(Number::from_f64(f).ok_or_else(|| ProtocolError::Field {
                    context,
                    field: "double_param",
                    reason: format!("holds {f}, which JSON cannot represent"),
                })?)
            }
            (5, Wire::Varint(v)) => Value::from(v),
            (n @ 1..=5, _) => return Err(wrong_wire(context, "InferParameter", n)),
            _ => continue,
        });
    }
    Ok(value)
}

// ---------------------------------------------------------------- typed → protobuf

/// Writes each tensor as field `number`, its data as typed `contents`.
fn put_tensors(
    out: &mut Vec<u8>,
    context: &'static str,
    number: u32,
    tensors: &[InferTensor],
) -> Result<(), ProtocolError> {
    for t in tensors {
        let error = |reason: &str| ProtocolError::Tensor {
            name: t.name.clone(),
            reason: reason.into(),
        };
        let data = t.data.as_ref().ok_or_else(|| {
            error("has no data (binary tensor extension bodies are not converted to gRPC)")
        })?;
        // JSON never holds FP16 (`TensorData::from_json` refuses it); a typed caller might.
        if data.datatype() == Datatype::Fp16 {
            return Err(error("is FP16, which has no typed gRPC contents"));
        }
        let mut m = Vec::new();
        put_string(&mut m, 1, &t.name);
        put_string(&mut m, 2, t.datatype.as_str());
        put_packed_varints(&mut m, 3, t.shape.iter().copied());
        put_parameters(&mut m, context, 4, t.parameters.as_ref())?;
        let contents = contents_pb(data);
        if !contents.is_empty() {
            put_message(&mut m, 5, &contents);
        }
        put_message(out, number, &m);
    }
    Ok(())
}

/// `InferTensorContents` for `data` (never FP16: the caller sends that raw).
fn contents_pb(data: &TensorData) -> Vec<u8> {
    let mut out = Vec::new();
    match data {
        TensorData::Bool(v) => put_packed_varints(&mut out, 1, v.iter().map(|b| u64::from(*b))),
        TensorData::Int8(v) => put_packed_varints(&mut out, 2, v.iter().map(|x| *x as i64 as u64)),
        TensorData::Int16(v) => {
            put_packed_varints(&mut out, 2, v.iter().map(|x| *x as i64 as u64));
        }
        TensorData::Int32(v) => {
            put_packed_varints(&mut out, 2, v.iter().map(|x| *x as i64 as u64));
        }
        TensorData::Int64(v) => put_packed_varints(&mut out, 3, v.iter().map(|x| *x as u64)),
        TensorData::Uint8(v) => put_packed_varints(&mut out, 4, v.iter().map(|x| u64::from(*x))),
        TensorData::Uint16(v) => put_packed_varints(&mut out, 4, v.iter().map(|x| u64::from(*x))),
        TensorData::Uint32(v) => put_packed_varints(&mut out, 4, v.iter().map(|x| u64::from(*x))),
        TensorData::Uint64(v) => put_packed_varints(&mut out, 5, v.iter().copied()),
        TensorData::Fp32(v) => {
            if !v.is_empty() {
                let packed: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                put_bytes(&mut out, 6, &packed);
            }
        }
        TensorData::Fp64(v) => {
            if !v.is_empty() {
                let packed: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                put_bytes(&mut out, 7, &packed);
            }
        }
        TensorData::Bytes(v) => {
            for b in v {
                put_bytes(&mut out, 8, b);
            }
        }
        TensorData::Fp16(_) => {}
    }
    out
}

/// A `map<string, InferParameter>` as field `number`.
fn put_parameters(
    out: &mut Vec<u8>,
    context: &'static str,
    number: u32,
    parameters: Option<&Parameters>,
) -> Result<(), ProtocolError> {
    for (key, value) in parameters.into_iter().flatten() {
        let mut p = Vec::new();
        match value {
            Value::Bool(b) => put_varint_field(&mut p, 1, u64::from(*b)),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    put_varint_field(&mut p, 2, i as u64);
                } else if let Some(u) = n.as_u64() {
                    put_varint_field(&mut p, 5, u);
                } else {
                    put_tag(&mut p, 4, 1);
                    p.extend_from_slice(&n.as_f64().unwrap_or_default().to_le_bytes());
                }
            }
            Value::String(s) => put_bytes(&mut p, 3, s.as_bytes()),
            // Answers: MLServer's rule (see `infer_response_from_json`).
            _ if context == RESPONSE => continue,
            other => {
                return Err(ProtocolError::Field {
                    context,
                    field: "parameters",
                    reason: format!(
                        "`{key}` is {other}; a gRPC parameter is a bool, a number or a string"
                    ),
                });
            }
        }
        let mut entry = Vec::new();
        put_bytes(&mut entry, 1, key.as_bytes());
        put_message(&mut entry, 2, &p);
        put_message(out, number, &entry);
    }
    Ok(())
}

fn put_packed_varints(out: &mut Vec<u8>, number: u32, values: impl Iterator<Item = u64>) {
    let mut packed = Vec::new();
    for v in values {
        put_varint(&mut packed, v);
    }
    if !packed.is_empty() {
        put_bytes(out, number, &packed);
    }
}

/// A proto3 string: left out when empty.
fn put_string(out: &mut Vec<u8>, number: u32, s: &str) {
    if !s.is_empty() {
        put_bytes(out, number, s.as_bytes());
    }
}

// ---------------------------------------------------------------- small helpers

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn utf8(context: &'static str, b: &[u8], field: &'static str) -> Result<String, ProtocolError> {
    String::from_utf8(b.to_vec()).map_err(|_| ProtocolError::Field {
        context,
        field,
        reason: "is not valid UTF-8".into(),
    })
}

fn wrong_wire(context: &'static str, message: &'static str, number: u32) -> ProtocolError {
    ProtocolError::Field {
        context,
        field: message,
        reason: format!("field {number} has the wrong wire type"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `model_ref_request` is read back by `model_ref`; a name with the wrong wire type (what
    /// a caller mixing up the messages would send) is refused by the reader.
    #[test]
    fn model_ref_request_round_trips_and_a_wrong_wire_type_is_refused() {
        let pb = model_ref_request("iris", "2");
        let r = model_ref(&pb).unwrap();
        assert_eq!((r.name.as_str(), r.version.as_str()), ("iris", "2"));
        assert_eq!(
            model_ref(&model_ref_request("", "")).unwrap(),
            ModelRef::default()
        );
        // field 1 as a varint instead of a string
        let err = model_ref(&[0x08, 0x01]).unwrap_err().to_string();
        assert!(
            err.contains("ModelReadyRequest / ModelMetadataRequest"),
            "{err}"
        );
    }

    /// Non-scalar parameters of an answer are left out (MLServer's rule), scalar ones kept;
    /// in a request they are refused.
    #[test]
    fn answers_drop_parameters_grpc_cannot_hold_requests_refuse_them() {
        let answer = br#"{"model_name":"m","parameters":{"tags":{"m":true},"list":[1],"none":null,"n":2,"s":"x"},
            "outputs":[{"name":"o","shape":[1],"datatype":"FP32","data":[1.0],"parameters":{"meta":{"a":1},"b":true}}]}"#;
        let pb = infer_response_from_json(answer).unwrap();
        let back: serde_json::Value =
            serde_json::from_slice(&infer_response_to_json(&pb).unwrap()).unwrap();
        assert_eq!(
            back,
            serde_json::json!({"model_name":"m","parameters":{"n":2,"s":"x"},
                "outputs":[{"name":"o","shape":[1],"datatype":"FP32","data":[1.0],"parameters":{"b":true}}]})
        );
        let request = br#"{"parameters":{"tags":{"m":true}},"inputs":[]}"#;
        assert!(
            infer_request_from_json(request, "m", "")
                .unwrap_err()
                .to_string()
                .contains("a gRPC parameter is a bool, a number or a string")
        );
    }
}
