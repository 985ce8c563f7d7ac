//! Seldon v1 ⇄ Open Inference Protocol v2 payloads, so a node may speak another protocol than
//! the one before it (a v1 transformer feeding a Triton or MLServer model, and back).
//!
//! ```text
//!   SeldonMessage ── v1_to_v2_request ──► v2 request ──► v2 node
//!   SeldonMessage ◄─ v2_response_to_v1 ── v2 response ◄┘   (form and meta of the v1 request)
//!   v2 request ──── v2_request_to_v1 ───► SeldonMessage ──► v1 node
//!   v2 response ◄── v1_to_v2_response ─── SeldonMessage ◄┘  (id and output name of the v2 request)
//! ```
//!
//! The rules (also the table in the crate README):
//!
//! * **v1 → v2**: the message becomes **one** input tensor, [`V2_INPUT`] (`input-0`, MLServer's
//!   name); a v1 answer becomes one output, [`V2_OUTPUT`] (`output-0`) or the one output the v2
//!   request asked for. `data.tensor` is FP64 with its shape (no shape: `[len]`).
//!   `data.ndarray` gets its shape from the nesting and its datatype from the leaves: all
//!   integers INT64 (UINT64 when beyond i64), any float FP64, all booleans BOOL, all strings
//!   BYTES. `strData` is a one-element BYTES tensor with `parameters.content_type: "str"`
//!   (MLServer's string codec). `meta.puid` becomes the `id`. `data.names` (column names) and
//!   the rest of `meta` have no v2 field and are left out; the way back restores the request's
//!   `meta`.
//! * **v2 → v1**: one tensor becomes `data.ndarray` nested by its shape (a scalar `[]` becomes
//!   `[x]`), or `data.tensor` when the v1 side used that form and the tensor is numeric; several
//!   tensors become the columns of one `[n, k]` array when each is `[n]` or `[n, 1]`.
//!   `data.names` lists the tensor names. A one-element BYTES tensor with
//!   `content_type: "str"` becomes `strData` again. The `id` becomes `meta.puid`.
//! * **Refused**, with [`ProtocolError::Bridge`]: `binData` (BYTES in v2 JSON must be UTF-8),
//!   `jsonData`, `customData`, `data.tftensor`, a message with no payload, a FAILURE status,
//!   ragged or mixed-type `ndarray`s (or `null` in them), a `tensor` whose shape disagrees with
//!   its values, tensors that cannot form one v1 array, integers beyond 2^53 into `data.tensor`
//!   (doubles), and FP16 (no JSON form).

use serde_json::{Number, Value};

use crate::ProtocolError;
use crate::v1::{DefaultData, Meta, SeldonMessage, StatusFlag, Tensor};
use crate::v2::{
    Datatype, InferTensor, InferenceRequest, InferenceResponse, Parameters, TensorData,
};

/// The input name a v1 message takes in a v2 request (MLServer's default).
pub const V2_INPUT: &str = "input-0";
/// The output name a v1 answer takes in a v2 response, unless the request asked for one.
pub const V2_OUTPUT: &str = "output-0";
/// Tensor parameter marking a BYTES tensor that carries `strData` (MLServer's string codec).
pub const CONTENT_TYPE: &str = "content_type";

const V1_TO_V2_REQUEST: &str = "Seldon v1 request → v2";
const V1_TO_V2_RESPONSE: &str = "Seldon v1 answer → v2";
const V2_TO_V1_REQUEST: &str = "v2 request → Seldon v1";
const V2_TO_V1_RESPONSE: &str = "v2 answer → Seldon v1";

/// A v1 `SeldonMessage` (JSON) → a v2 inference request (JSON) with one input, [`V2_INPUT`].
pub fn v1_to_v2_request(seldon: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let msg = SeldonMessage::from_slice(seldon)?;
    let tensor = v1_tensor(&msg, V2_INPUT, V1_TO_V2_REQUEST)?;
    let request = InferenceRequest {
        id: msg.meta.map(|m| m.puid).filter(|p| !p.is_empty()),
        parameters: None,
        inputs: vec![tensor],
        outputs: None,
    };
    request.to_vec()
}

/// A v1 node's answer (JSON) → a v2 response (JSON) from `model_name`. `request` is the v2
/// request that was converted for the node, if any: its `id` is echoed and, when it asked
/// for exactly one output, the output takes that name (else [`V2_OUTPUT`]).
pub fn v1_to_v2_response(
    seldon: &[u8],
    model_name: &str,
    request: Option<&[u8]>,
) -> Result<Vec<u8>, ProtocolError> {
    let msg = SeldonMessage::from_slice(seldon)?;
    let request = request.map(InferenceRequest::from_slice).transpose()?;
    let name = match request.as_ref().and_then(|r| r.outputs.as_deref()) {
        Some([only]) => only.name.as_str(),
        _ => V2_OUTPUT,
    };
    let tensor = v1_tensor(&msg, name, V1_TO_V2_RESPONSE)?;
    let id = request
        .and_then(|r| r.id)
        .or_else(|| msg.meta.map(|m| m.puid).filter(|p| !p.is_empty()));
    InferenceResponse {
        model_name: model_name.to_string(),
        model_version: None,
        id,
        parameters: None,
        outputs: vec![tensor],
    }
    .to_vec()
}

/// A v2 request (JSON) → a v1 `SeldonMessage` (JSON, `data.ndarray`), for a v1 node in a v2
/// graph.
pub fn v2_request_to_v1(v2: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let request = InferenceRequest::from_slice(v2)?;
    let mut msg = v1_message(&request.inputs, false, V2_TO_V1_REQUEST)?;
    if let Some(id) = request.id.filter(|i| !i.is_empty()) {
        msg.meta = Some(Meta {
            puid: id,
            ..Meta::default()
        });
    }
    msg.to_vec()
}

/// A v2 node's answer (JSON) → a v1 `SeldonMessage` (JSON). `request` is the v1 message that
/// was converted for the node, if any: the answer takes its form (`data.tensor` or
/// `data.ndarray`) and its `meta` (puid, tags, routing, …), as a v1 node would have kept them.
pub fn v2_response_to_v1(v2: &[u8], request: Option<&[u8]>) -> Result<Vec<u8>, ProtocolError> {
    let response = InferenceResponse::from_slice(v2)?;
    let request = request.map(SeldonMessage::from_slice).transpose()?;
    let tensor_form = request
        .as_ref()
        .and_then(|r| r.data.as_ref())
        .is_some_and(|d| d.tensor.is_some());
    let mut msg = v1_message(&response.outputs, tensor_form, V2_TO_V1_RESPONSE)?;
    msg.meta = match request.and_then(|r| r.meta) {
        Some(meta) => Some(meta),
        None => response.id.filter(|i| !i.is_empty()).map(|puid| Meta {
            puid,
            ..Meta::default()
        }),
    };
    msg.to_vec()
}

// ---------------------------------------------------------------- v1 → one v2 tensor

fn v1_tensor(
    msg: &SeldonMessage,
    name: &str,
    direction: &'static str,
) -> Result<InferTensor, ProtocolError> {
    let refuse = |reason: String| ProtocolError::Bridge { direction, reason };
    if let Some(status) = &msg.status
        && status.status == StatusFlag::Failure
    {
        return Err(refuse(format!(
            "the message is a FAILURE status ({}: {}), which has no v2 inference form",
            status.code, status.info
        )));
    }
    if msg.bin_data.is_some() {
        return Err(refuse(
            "binData has no v2 JSON form (BYTES data in JSON must be UTF-8); send strData or data"
                .into(),
        ));
    }
    if msg.json_data.is_some() {
        return Err(refuse(
            "jsonData has no tensor form; send data.ndarray, data.tensor or strData".into(),
        ));
    }
    if msg.custom_data.is_some() {
        return Err(refuse("customData has no tensor form".into()));
    }
    if let Some(s) = &msg.str_data {
        let mut tensor = InferTensor::new(
            name,
            vec![1],
            TensorData::Bytes(vec![s.as_bytes().to_vec()]),
        )?;
        tensor.parameters = Some(Parameters::from([(
            CONTENT_TYPE.to_string(),
            Value::from("str"),
        )]));
        return Ok(tensor);
    }
    let Some(data) = &msg.data else {
        return Err(refuse(
            "the message has no payload (data, strData) to make a tensor of".into(),
        ));
    };
    if data.tftensor.is_some() {
        return Err(refuse(
            "data.tftensor is not converted; send data.ndarray or data.tensor".into(),
        ));
    }
    if let Some(t) = &data.tensor {
        let shape = if t.shape.is_empty() {
            vec![t.values.len() as u64]
        } else {
            t.shape
                .iter()
                .map(|d| u64::try_from(*d))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    refuse(format!(
                        "data.tensor.shape {:?} has a negative dimension",
                        t.shape
                    ))
                })?
        };
        return InferTensor::new(name, shape, TensorData::Fp64(t.values.clone()))
            .map_err(|e| refuse(format!("data.tensor: {e}")));
    }
    let items = data.ndarray.as_deref().unwrap_or_default();
    let array = Value::Array(items.to_vec());
    let mut leaves = Vec::new();
    let shape = shape_of(&array, &mut leaves).map_err(|e| refuse(format!("data.ndarray {e}")))?;
    let datatype = datatype_of(&leaves).map_err(|e| refuse(format!("data.ndarray {e}")))?;
    let values = TensorData::from_json(datatype, &array)
        .map_err(|e| refuse(format!("data.ndarray: {e}")))?;
    InferTensor::new(name, shape, values)
}

/// The shape of a nested array; every sub-array at one depth must have the same shape.
fn shape_of<'a>(v: &'a Value, leaves: &mut Vec<&'a Value>) -> Result<Vec<u64>, String> {
    let Value::Array(items) = v else {
        leaves.push(v);
        return Ok(Vec::new());
    };
    let mut inner: Option<Vec<u64>> = None;
    for (i, item) in items.iter().enumerate() {
        let s = shape_of(item, leaves)?;
        match &inner {
            None => inner = Some(s),
            Some(first) if *first != s => {
                return Err(format!(
                    "is ragged: element {i} has shape {s:?}, element 0 has {first:?}"
                ));
            }
            Some(_) => {}
        }
    }
    let mut shape = vec![items.len() as u64];
    shape.extend(inner.unwrap_or_default());
    Ok(shape)
}

/// One datatype for all leaves, or why not.
fn datatype_of(leaves: &[&Value]) -> Result<Datatype, String> {
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let Some(first) = leaves.first() else {
        return Ok(Datatype::Fp64);
    };
    if let Some((i, other)) = leaves
        .iter()
        .enumerate()
        .find(|(_, v)| kind(v) != kind(first))
    {
        return Err(format!(
            "mixes types: element 0 is a {}, element {i} a {} (a v2 tensor has one datatype)",
            kind(first),
            kind(other)
        ));
    }
    match first {
        Value::Bool(_) => Ok(Datatype::Bool),
        Value::String(_) => Ok(Datatype::Bytes),
        Value::Number(_) => {
            let numbers = leaves.iter().filter_map(|v| v.as_number());
            if numbers.clone().all(Number::is_i64) {
                Ok(Datatype::Int64)
            } else if numbers.clone().all(|n| n.is_i64() || n.is_u64()) {
                if numbers.clone().all(|n| n.as_i64().is_none_or(|i| i >= 0)) {
                    Ok(Datatype::Uint64)
                } else {
                    Ok(Datatype::Fp64)
                }
            } else {
                Ok(Datatype::Fp64)
            }
        }
        other => Err(format!(
            "holds a {}, which no v2 datatype carries",
            kind(other)
        )),
    }
}

// ---------------------------------------------------------------- v2 tensors → one v1 message

fn v1_message(
    tensors: &[InferTensor],
    tensor_form: bool,
    direction: &'static str,
) -> Result<SeldonMessage, ProtocolError> {
    let refuse = |reason: String| ProtocolError::Bridge { direction, reason };
    let datas = tensors
        .iter()
        .map(|t| {
            t.data.as_ref().ok_or_else(|| {
                refuse(format!(
                    "tensor `{}` has no data (binary tensor extension bodies are not converted)",
                    t.name
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    // strData travels as one BYTES element marked content_type "str"; it comes back as such.
    if let ([t], [TensorData::Bytes(elements)]) = (tensors, datas.as_slice())
        && let [element] = elements.as_slice()
        && t.parameters
            .as_ref()
            .and_then(|p| p.get(CONTENT_TYPE))
            .is_some_and(|c| c == "str")
    {
        let text = String::from_utf8(element.clone())
            .map_err(|_| refuse(format!("tensor `{}` is not UTF-8", t.name)))?;
        return Ok(SeldonMessage {
            str_data: Some(text),
            ..SeldonMessage::default()
        });
    }
    let names: Vec<String> = tensors.iter().map(|t| t.name.clone()).collect();
    let (shape, flat) = match (tensors, datas.as_slice()) {
        ([], _) => return Err(refuse("there is no tensor to convert".into())),
        ([t], [data]) => (t.shape.clone(), values(t, data, direction)?),
        _ => columns(tensors, &datas, direction)?,
    };
    let numeric = datas
        .iter()
        .all(|d| !matches!(d, TensorData::Bool(_) | TensorData::Bytes(_)));
    let data = if tensor_form && numeric {
        let values = flat
            .iter()
            .map(|v| exact_f64(v).ok_or_else(|| refuse(format!(
                "{v} does not fit data.tensor's doubles exactly (integers beyond 2^53); the v1 side should use data.ndarray"
            ))))
            .collect::<Result<Vec<_>, _>>()?;
        let shape = shape
            .iter()
            .map(|d| i32::try_from(*d))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| refuse(format!("shape {shape:?} does not fit data.tensor's int32")))?;
        DefaultData {
            names,
            tensor: Some(Tensor { shape, values }),
            ..DefaultData::default()
        }
    } else {
        let nested = match nest(flat, &shape) {
            Value::Array(items) => items,
            scalar => vec![scalar],
        };
        DefaultData {
            names,
            ndarray: Some(nested),
            ..DefaultData::default()
        }
    };
    Ok(SeldonMessage {
        data: Some(data),
        ..SeldonMessage::default()
    })
}

/// Several `[n]` / `[n, 1]` tensors as the columns of one `[n, k]` array.
fn columns(
    tensors: &[InferTensor],
    datas: &[&TensorData],
    direction: &'static str,
) -> Result<(Vec<u64>, Vec<Value>), ProtocolError> {
    let refuse = |reason: String| ProtocolError::Bridge { direction, reason };
    let rows = |t: &InferTensor| match t.shape.as_slice() {
        [n] | [n, 1] => Some(*n),
        _ => None,
    };
    let n = tensors.first().and_then(rows);
    let mut cols = Vec::with_capacity(tensors.len());
    for (t, data) in tensors.iter().zip(datas) {
        match (rows(t), n) {
            (Some(r), Some(n)) if r == n => cols.push(values(t, data, direction)?),
            _ => {
                let shapes: Vec<String> = tensors
                    .iter()
                    .map(|t| format!("`{}` {:?}", t.name, t.shape))
                    .collect();
                return Err(refuse(format!(
                    "{} tensors ({}) cannot form one v1 array: only [n] or [n, 1] tensors with the same n become its columns; ask for one output (request `outputs`)",
                    tensors.len(),
                    shapes.join(", ")
                )));
            }
        }
    }
    let n = n.unwrap_or_default();
    let k = cols.len() as u64;
    let mut flat = Vec::with_capacity(cols.iter().map(Vec::len).sum());
    let mut iters: Vec<_> = cols.into_iter().map(Vec::into_iter).collect();
    for _ in 0..n {
        for col in &mut iters {
            flat.extend(col.next());
        }
    }
    Ok((vec![n, k], flat))
}

/// A tensor's elements as JSON values, FP32 in their shortest decimal form.
fn values(
    t: &InferTensor,
    data: &TensorData,
    direction: &'static str,
) -> Result<Vec<Value>, ProtocolError> {
    let refuse = |reason: String| ProtocolError::Bridge { direction, reason };
    let finite = |f: f64| {
        Number::from_f64(f).map(Value::Number).ok_or_else(|| {
            refuse(format!(
                "tensor `{}` holds {f}, which JSON cannot carry",
                t.name
            ))
        })
    };
    Ok(match data {
        TensorData::Bool(v) => v.iter().map(|b| Value::Bool(*b)).collect(),
        TensorData::Uint8(v) => v.iter().map(|x| Value::from(*x)).collect(),
        TensorData::Uint16(v) => v.iter().map(|x| Value::from(*x)).collect(),
        TensorData::Uint32(v) => v.iter().map(|x| Value::from(*x)).collect(),
        TensorData::Uint64(v) => v.iter().map(|x| Value::from(*x)).collect(),
        TensorData::Int8(v) => v.iter().map(|x| Value::from(*x)).collect(),
        TensorData::Int16(v) => v.iter().map(|x| Value::from(*x)).collect(),
        TensorData::Int32(v) => v.iter().map(|x| Value::from(*x)).collect(),
        TensorData::Int64(v) => v.iter().map(|x| Value::from(*x)).collect(),
        TensorData::Fp16(_) => {
            return Err(refuse(format!(
                "tensor `{}` is FP16, which has no JSON form",
                t.name
            )));
        }
        // Widened through its shortest decimal form: 0.1f32 stays 0.1, not 0.10000000149011612.
        TensorData::Fp32(v) => v
            .iter()
            .map(|f| finite(format!("{f}").parse::<f64>().unwrap_or(f64::from(*f))))
            .collect::<Result<_, _>>()?,
        TensorData::Fp64(v) => v.iter().map(|f| finite(*f)).collect::<Result<_, _>>()?,
        TensorData::Bytes(v) => v
            .iter()
            .map(|b| {
                String::from_utf8(b.clone())
                    .map(Value::String)
                    .map_err(|_| {
                        refuse(format!(
                            "tensor `{}` holds BYTES that are not UTF-8",
                            t.name
                        ))
                    })
            })
            .collect::<Result<_, _>>()?,
    })
}

/// A number as a double, when the double is exact (integers up to 2^53).
fn exact_f64(v: &Value) -> Option<f64> {
    const EXACT: u64 = 1 << 53;
    let n = v.as_number()?;
    if let Some(i) = n.as_i64() {
        return (i.unsigned_abs() <= EXACT).then_some(i as f64);
    }
    if let Some(u) = n.as_u64() {
        return (u <= EXACT).then_some(u as f64);
    }
    n.as_f64()
}

/// Nests a flat row-major list by `shape`; a scalar shape `[]` gives the element itself.
fn nest(flat: Vec<Value>, shape: &[u64]) -> Value {
    match shape {
        [] => flat.into_iter().next().unwrap_or(Value::Null),
        [_] => Value::Array(flat),
        [rows, rest @ ..] => {
            let per_row: u64 = rest.iter().product();
            let mut it = flat.into_iter();
            let rows = (0..*rows)
                .map(|_| {
                    let row: Vec<Value> = it.by_ref().take(per_row as usize).collect();
                    nest(row, rest)
                })
                .collect();
            Value::Array(rows)
        }
    }
}
