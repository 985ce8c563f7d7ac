//! Seldon v1 codec: `SeldonMessage` ⇄ [`Request`]/[`Output`], as Seldon's Python wrapper
//! decodes and builds them (data type echoed, meta merged). Pure functions.

use std::collections::BTreeMap;

use seldon_protocol::v1::{
    DefaultData, Feedback as WireFeedback, Meta, SeldonMessage, Tensor as WireTensor, TfDataType,
    TfDim, TfTensor, TfTensorShape,
};
use serde_json::{Number, Value};

use crate::error::ModelError;
use crate::model::{Feedback, Output, Payload, Request};
use crate::tensor::{Tensor, Values};

/// The `data` form a request used; the response answers in the same form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataKind {
    /// `data.tensor` (also the default when the request had no `data`, as in the wrapper).
    #[default]
    Tensor,
    Ndarray,
    TfTensor,
}

/// Who is answering: goes into `meta.requestPath` and picks this unit's routing entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unit {
    /// `PREDICTIVE_UNIT_ID`.
    pub id: String,
    /// `PREDICTIVE_UNIT_IMAGE`.
    pub image: String,
}

/// Decodes a request message into a hook input and the data kind to echo.
pub fn decode(msg: SeldonMessage) -> Result<(Request, DataKind), ModelError> {
    let meta = msg.meta.unwrap_or_default();
    let (payload, kind) = if let Some(data) = msg.data {
        let (tensor, kind) = decode_data(data)?;
        (Payload::Tensor(tensor), kind)
    } else if let Some(s) = msg.str_data {
        (Payload::Str(s), DataKind::default())
    } else if let Some(b) = msg.bin_data {
        (Payload::Bin(b), DataKind::default())
    } else if let Some(j) = msg.json_data {
        (Payload::Json(j), DataKind::default())
    } else if msg.custom_data.is_some() {
        return Err(ModelError::bad_data(
            "customData is not supported by this model server",
        ));
    } else {
        (Payload::None, DataKind::default())
    };
    Ok((
        Request {
            payload,
            meta,
            parameters: BTreeMap::new(),
        },
        kind,
    ))
}

/// Decodes `data` (names + one of tensor/ndarray/tftensor).
pub fn decode_data(data: DefaultData) -> Result<(Tensor, DataKind), ModelError> {
    let (tensor, kind) = if let Some(t) = data.tensor {
        let shape = t
            .shape
            .iter()
            .map(|d| {
                usize::try_from(*d).map_err(|_| {
                    bad(format!(
                        "tensor shape {:?} has a negative dimension",
                        t.shape
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        (Tensor::new(shape, Values::F64(t.values))?, DataKind::Tensor)
    } else if let Some(nd) = data.ndarray {
        (decode_ndarray(&nd)?, DataKind::Ndarray)
    } else if let Some(tf) = data.tftensor {
        (decode_tftensor(tf)?, DataKind::TfTensor)
    } else {
        return Err(bad("data has none of tensor, ndarray, tftensor"));
    };
    Ok((tensor.with_names(data.names), kind))
}

fn bad(msg: impl Into<String>) -> ModelError {
    ModelError::BadData(msg.into())
}

/// A rectangular nested list of numbers → tensor. Strings, objects, ragged rows are 400s.
fn decode_ndarray(nd: &[Value]) -> Result<Tensor, ModelError> {
    let mut shape = vec![nd.len()];
    let mut probe = nd.first();
    while let Some(Value::Array(inner)) = probe {
        shape.push(inner.len());
        probe = inner.first();
    }
    let mut values = Vec::with_capacity(shape.iter().product());
    flatten(nd, &shape, 0, &mut String::new(), &mut values)?;
    Tensor::new(shape, Values::F64(values))
}

fn flatten(
    items: &[Value],
    shape: &[usize],
    depth: usize,
    path: &mut String,
    out: &mut Vec<f64>,
) -> Result<(), ModelError> {
    if items.len() != shape[depth] {
        return Err(bad(format!(
            "ndarray is not rectangular: ndarray{path} has {} elements, expected {}",
            items.len(),
            shape[depth]
        )));
    }
    for (i, item) in items.iter().enumerate() {
        let len = path.len();
        path.push_str(&format!("[{i}]"));
        match item {
            Value::Array(inner) if depth + 1 < shape.len() => {
                flatten(inner, shape, depth + 1, path, out)?;
            }
            Value::Number(n) if depth + 1 == shape.len() => {
                out.push(n.as_f64().unwrap_or(f64::NAN));
            }
            Value::Null if depth + 1 == shape.len() => out.push(f64::NAN),
            other if depth + 1 == shape.len() => {
                return Err(bad(format!(
                    "ndarray{path} is {}, expected a number",
                    json_kind(other)
                )));
            }
            other => {
                return Err(bad(format!(
                    "ndarray is not rectangular: ndarray{path} is {}, expected a list",
                    json_kind(other)
                )));
            }
        }
        path.truncate(len);
    }
    Ok(())
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn decode_tftensor(tf: TfTensor) -> Result<Tensor, ModelError> {
    let shape = tf
        .tensor_shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| {
                    usize::try_from(d.size)
                        .map_err(|_| bad(format!("tftensor dimension {} is negative", d.size)))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?
        .unwrap_or_default();
    let content = &tf.tensor_content;
    let values = match tf.dtype {
        TfDataType::Float if !content.is_empty() => {
            Values::F32(le_chunks::<4, _>(content, f32::from_le_bytes)?)
        }
        TfDataType::Double if !content.is_empty() => {
            Values::F64(le_chunks::<8, _>(content, f64::from_le_bytes)?)
        }
        TfDataType::Float => Values::F32(tf.float_val),
        TfDataType::Double => Values::F64(tf.double_val),
        TfDataType::Int32
        | TfDataType::Int16
        | TfDataType::Int8
        | TfDataType::Uint8
        | TfDataType::Uint16 => Values::F64(tf.int_val.iter().map(|v| f64::from(*v)).collect()),
        #[allow(clippy::cast_precision_loss)]
        TfDataType::Int64 => Values::F64(tf.int64_val.iter().map(|v| *v as f64).collect()),
        TfDataType::Bool => Values::F32(
            tf.bool_val
                .iter()
                .map(|b| f32::from(u8::from(*b)))
                .collect(),
        ),
        other => {
            return Err(bad(format!(
                "tftensor dtype {} is not supported (use DT_FLOAT, DT_DOUBLE, integer or DT_BOOL)",
                other.as_str()
            )));
        }
    };
    Tensor::new(shape, values)
}

fn le_chunks<const N: usize, T>(bytes: &[u8], f: fn([u8; N]) -> T) -> Result<Vec<T>, ModelError> {
    if !bytes.len().is_multiple_of(N) {
        return Err(bad(format!(
            "tftensor tensorContent has {} bytes, not a multiple of {N}",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            f(a)
        })
        .collect())
}

/// Decodes a feedback body; `unit` picks this unit's routing decision.
pub fn decode_feedback(fb: WireFeedback, unit: &Unit) -> Result<(Feedback, DataKind), ModelError> {
    let (request, kind) = decode(fb.request.unwrap_or_default())?;
    let (response, _) = decode(fb.response.unwrap_or_default())?;
    let (truth, _) = decode(fb.truth.unwrap_or_default())?;
    let routing = response.meta.routing.get(&unit.id).copied();
    Ok((
        Feedback {
            request,
            response,
            reward: f64::from(fb.reward),
            truth: truth.payload,
            routing,
        },
        kind,
    ))
}

/// What the server adds to every response's meta.
#[derive(Debug, Clone)]
pub struct Extras<'a> {
    pub unit: &'a Unit,
    /// The model's `tags()`, then the call's `Output::tags` (later wins).
    pub tags: Vec<&'a BTreeMap<String, Value>>,
    /// The model's `metrics()` and the call's `Output::metrics`.
    pub metrics: Vec<seldon_protocol::v1::Metric>,
    /// `INCLUDE_METRICS_IN_CLIENT_RESPONSE`.
    pub include_metrics: bool,
}

/// Builds the response meta as the wrapper does: `puid` copied; tags = request tags ∪ model
/// tags ∪ call tags; metrics = request metrics + custom metrics; requestPath = request's ∪
/// `{unit id: image}`. `requests` are several for `/aggregate` (all merged).
pub fn merge_meta(requests: &[&Meta], extras: &Extras<'_>) -> Meta {
    let mut meta = Meta::default();
    for m in requests {
        if meta.puid.is_empty() {
            meta.puid.clone_from(&m.puid);
        }
        meta.tags
            .extend(m.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        meta.request_path
            .extend(m.request_path.iter().map(|(k, v)| (k.clone(), v.clone())));
        if extras.include_metrics {
            meta.metrics.extend(m.metrics.iter().cloned());
        }
    }
    for tags in &extras.tags {
        meta.tags
            .extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    if extras.include_metrics {
        meta.metrics.extend(extras.metrics.iter().cloned());
    }
    if !extras.unit.id.is_empty() {
        meta.request_path
            .insert(extras.unit.id.clone(), extras.unit.image.clone());
    }
    meta
}

/// Encodes a hook's payload as a response message (numeric data in the request's form).
/// `class_names` names the columns of a 2-D output when the tensor has no names.
pub fn encode(
    payload: Payload,
    kind: DataKind,
    class_names: Option<Vec<String>>,
    meta: Meta,
) -> Result<SeldonMessage, ModelError> {
    let mut msg = SeldonMessage {
        meta: (!meta_is_empty(&meta)).then_some(meta),
        ..SeldonMessage::default()
    };
    match payload {
        Payload::Tensor(t) => msg.data = Some(encode_data(t, kind, class_names)?),
        Payload::Str(s) => msg.str_data = Some(s),
        Payload::Bin(b) => msg.bin_data = Some(b),
        Payload::Json(j) => msg.json_data = Some(j),
        Payload::None => {}
        Payload::Tensors(ts) => {
            return Err(ModelError::internal(format!(
                "the model returned {} tensors; Seldon v1 carries one",
                ts.len()
            )));
        }
    }
    Ok(msg)
}

fn meta_is_empty(m: &Meta) -> bool {
    m == &Meta::default()
}

/// Encodes one tensor as `data` of the given kind.
pub fn encode_data(
    t: Tensor,
    kind: DataKind,
    class_names: Option<Vec<String>>,
) -> Result<DefaultData, ModelError> {
    let names = if !t.names.is_empty() {
        t.names.clone()
    } else if t.shape.len() == 2 {
        class_names.unwrap_or_else(|| (0..t.shape[1]).map(|i| format!("t:{i}")).collect())
    } else {
        Vec::new()
    };
    let mut data = DefaultData {
        names,
        ..DefaultData::default()
    };
    match kind {
        DataKind::Tensor => {
            let shape = t
                .shape
                .iter()
                .map(|d| {
                    i32::try_from(*d)
                        .map_err(|_| ModelError::internal("output dimension exceeds i32"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let values = match &t.values {
                Values::F64(v) => v.clone(),
                Values::F32(v) => v.iter().map(|x| f32_to_f64_shortest(*x)).collect(),
                Values::Bytes(_) => return Err(bytes_output()),
            };
            data.tensor = Some(WireTensor { shape, values });
        }
        DataKind::Ndarray => {
            let leaves: Vec<Value> = match &t.values {
                Values::F64(v) => v.iter().map(|x| number(*x)).collect(),
                Values::F32(v) => v.iter().map(|x| number(f32_to_f64_shortest(*x))).collect(),
                Values::Bytes(v) => v
                    .iter()
                    .map(|b| Value::String(String::from_utf8_lossy(b).into_owned()))
                    .collect(),
            };
            data.ndarray = Some(nest(leaves, &t.shape));
        }
        DataKind::TfTensor => {
            let dim = t
                .shape
                .iter()
                .map(|d| TfDim {
                    size: i64::try_from(*d).unwrap_or(i64::MAX),
                    name: String::new(),
                })
                .collect();
            let mut tf = TfTensor {
                tensor_shape: Some(TfTensorShape {
                    dim,
                    unknown_rank: false,
                }),
                ..TfTensor::default()
            };
            match t.values {
                Values::F32(v) => {
                    tf.dtype = TfDataType::Float;
                    tf.float_val = v;
                }
                Values::F64(v) => {
                    tf.dtype = TfDataType::Double;
                    tf.double_val = v;
                }
                Values::Bytes(_) => return Err(bytes_output()),
            }
            data.tftensor = Some(tf);
        }
    }
    Ok(data)
}

fn bytes_output() -> ModelError {
    ModelError::internal("a BYTES tensor can only be returned as ndarray or v2")
}

/// `0.1f32` as the double `0.1`, not `0.10000000149011612`: what a client reading a float
/// model's output expects to see in JSON.
pub(crate) fn f32_to_f64_shortest(x: f32) -> f64 {
    if x.is_finite() {
        x.to_string().parse().unwrap_or(f64::from(x))
    } else {
        f64::from(x)
    }
}

fn number(x: f64) -> Value {
    Number::from_f64(x).map_or(Value::Null, Value::Number)
}

/// Row-major leaves → nested lists of `shape` (a 1-D or 0-D tensor stays flat).
fn nest(leaves: Vec<Value>, shape: &[usize]) -> Vec<Value> {
    if shape.len() <= 1 {
        return leaves;
    }
    let inner: usize = shape[1..].iter().product();
    let mut rows = Vec::with_capacity(shape[0]);
    let mut it = leaves.into_iter();
    for _ in 0..shape[0] {
        let chunk: Vec<Value> = it.by_ref().take(inner).collect();
        rows.push(Value::Array(nest(chunk, &shape[1..])));
    }
    rows
}

/// The router reply for `branch`, in the request's data form (`[[branch]]`).
pub fn route_payload(branch: i32) -> Payload {
    Payload::Tensor(Tensor {
        name: String::new(),
        names: Vec::new(),
        shape: vec![1, 1],
        values: Values::F64(vec![f64::from(branch)]),
    })
}

/// Convenience for hooks returning an [`Output`] of a route.
pub fn route_output(out: Output<i32>) -> Output<Payload> {
    Output {
        value: route_payload(out.value),
        tags: out.tags,
        metrics: out.metrics,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg(v: Value) -> SeldonMessage {
        SeldonMessage::from_slice(v.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn ndarray_decodes_to_f64_matrix_with_names() {
        let (req, kind) = decode(msg(
            json!({"data":{"names":["a","b"],"ndarray":[[1,2],[3,4.5]]}}),
        ))
        .unwrap();
        assert_eq!(kind, DataKind::Ndarray);
        let t = req.payload.tensor().unwrap();
        assert_eq!(t.shape, vec![2, 2]);
        assert_eq!(t.values, Values::F64(vec![1.0, 2.0, 3.0, 4.5]));
        assert_eq!(t.names, vec!["a", "b"]);
    }

    #[test]
    fn ragged_ndarray_is_bad_data_naming_the_row() {
        let err = decode(msg(json!({"data":{"ndarray":[[1,2],[3]]}}))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ndarray is not rectangular: ndarray[1] has 1 elements, expected 2"
        );
    }

    #[test]
    fn string_in_ndarray_is_a_dtype_error() {
        let err = decode(msg(json!({"data":{"ndarray":[[1,"x"]]}}))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ndarray[0][1] is a string, expected a number"
        );
    }

    #[test]
    fn tensor_shape_must_match_values() {
        let err = decode(msg(
            json!({"data":{"tensor":{"shape":[2,2],"values":[1,2,3]}}}),
        ))
        .unwrap_err();
        assert!(matches!(err, ModelError::BadData(_)), "{err}");
        let err = decode(msg(
            json!({"data":{"tensor":{"shape":[-1,2],"values":[1,2]}}}),
        ))
        .unwrap_err();
        assert!(err.to_string().contains("negative"));
    }

    #[test]
    fn tftensor_float_val_and_content_decode() {
        let (req, kind) = decode(msg(json!({"data":{"tftensor":{"dtype":"DT_FLOAT","tensorShape":{"dim":[{"size":"1"},{"size":"2"}]},"floatVal":[1.5,2]}}}))).unwrap();
        assert_eq!(kind, DataKind::TfTensor);
        assert_eq!(
            req.payload.tensor().unwrap().values,
            Values::F32(vec![1.5, 2.0])
        );
        let err = decode(msg(
            json!({"data":{"tftensor":{"dtype":"DT_STRING","stringVal":["eA=="]}}}),
        ))
        .unwrap_err();
        assert!(err.to_string().contains("DT_STRING is not supported"));
    }

    #[test]
    fn other_payload_forms_pass_through() {
        let (req, _) = decode(msg(json!({"strData":"hi"}))).unwrap();
        assert_eq!(req.payload, Payload::Str("hi".into()));
        let (req, _) = decode(msg(json!({"jsonData":{"a":1}}))).unwrap();
        assert_eq!(req.payload, Payload::Json(json!({"a":1})));
        let (req, _) = decode(msg(json!({"binData":"aGk="}))).unwrap();
        assert_eq!(req.payload, Payload::Bin(b"hi".to_vec()));
        assert!(decode(msg(json!({"customData":{"@type":"x"}}))).is_err());
    }

    #[test]
    fn encode_echoes_each_data_kind() {
        let t = Tensor::matrix_f32(1, 2, vec![0.1, 0.9]).unwrap();
        let nd = encode(t.clone().into(), DataKind::Ndarray, None, Meta::default()).unwrap();
        assert_eq!(
            serde_json::to_value(&nd).unwrap(),
            json!({"data":{"names":["t:0","t:1"],"ndarray":[[0.1,0.9]]}})
        );
        let te = encode(
            t.clone().into(),
            DataKind::Tensor,
            Some(vec!["no".into(), "yes".into()]),
            Meta::default(),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&te).unwrap(),
            json!({"data":{"names":["no","yes"],"tensor":{"shape":[1,2],"values":[0.1,0.9]}}})
        );
        let tf = encode(t.into(), DataKind::TfTensor, None, Meta::default()).unwrap();
        let v = serde_json::to_value(&tf).unwrap();
        assert_eq!(v["data"]["tftensor"]["dtype"], "DT_FLOAT");
        assert_eq!(v["data"]["tftensor"]["tensorShape"]["dim"][1]["size"], "2");
    }

    #[test]
    fn encode_rejects_several_tensors_for_v1() {
        let t = Tensor::matrix_f32(1, 1, vec![0.0]).unwrap();
        let err = encode(
            Payload::Tensors(vec![t.clone(), t]),
            DataKind::Tensor,
            None,
            Meta::default(),
        )
        .unwrap_err();
        assert!(matches!(err, ModelError::Internal(_)));
    }

    #[test]
    fn merge_meta_copies_puid_unions_tags_and_adds_request_path() {
        let req: Meta = serde_json::from_value(json!({"puid":"p1","tags":{"a":1},"requestPath":{"up":"img:1"},"metrics":[{"key":"k","type":"COUNTER","value":1}]})).unwrap();
        let unit = Unit {
            id: "m".into(),
            image: "me:2".into(),
        };
        let model_tags =
            BTreeMap::from([("a".to_string(), json!(2)), ("b".to_string(), json!("x"))]);
        let extras = Extras {
            unit: &unit,
            tags: vec![&model_tags],
            metrics: vec![],
            include_metrics: true,
        };
        let meta = merge_meta(&[&req], &extras);
        assert_eq!(
            serde_json::to_value(&meta).unwrap(),
            json!({"puid":"p1","tags":{"a":2,"b":"x"},"requestPath":{"up":"img:1","m":"me:2"},"metrics":[{"key":"k","type":"COUNTER","value":1.0}]})
        );
        let extras = Extras {
            include_metrics: false,
            ..extras
        };
        assert!(merge_meta(&[&req], &extras).metrics.is_empty());
    }

    #[test]
    fn feedback_picks_this_units_routing() {
        let fb: WireFeedback = serde_json::from_value(json!({"request":{"data":{"ndarray":[[1]]}},"response":{"meta":{"routing":{"r":1,"other":0}}},"reward":0.5})).unwrap();
        let unit = Unit {
            id: "r".into(),
            image: String::new(),
        };
        let (f, kind) = decode_feedback(fb, &unit).unwrap();
        assert_eq!(
            (f.routing, f.reward, kind),
            (Some(1), 0.5, DataKind::Ndarray)
        );
        let fb: WireFeedback =
            serde_json::from_value(json!({"request":{"data":{"ndarray":[["x"]]}}})).unwrap();
        assert!(decode_feedback(fb, &unit).is_err());
    }
}
