//! Seldon's gRPC `SeldonMessage` ⇄ its REST JSON, without generated code: a small protobuf
//! wire codec for the messages of `proto/seldon/prediction.proto`, and gRPC message framing.
//!
//! A gRPC call at the graph entry must reach REST nodes as the JSON Seldon's REST API speaks
//! (the protobuf JSON mapping: `binData` as base64, `ndarray` and `jsonData` as JSON,
//! default values left out), and their JSON answer must go back as protobuf. Converted:
//! `status`, `meta` (`puid`, `tags`, `routing`, `requestPath`, `metrics`), `data` (`names`,
//! `tensor`, `ndarray`), `binData`, `strData`, `jsonData`. Not converted, with an error naming
//! the field: `data.tftensor` and `customData` (a `google.protobuf.Any` needs its type's
//! descriptor). Unknown protobuf fields are skipped; unknown JSON keys are refused.
//!
//! ```text
//!   gRPC body ─ unframe ─► SeldonMessage (protobuf) ─ seldon_message_to_json ─► REST JSON
//!   gRPC body ◄─ frame ─── SeldonMessage (protobuf) ◄ seldon_message_from_json ─ REST JSON
//! ```

use serde_json::{Map, Number, Value};

use crate::ProtocolError;
use crate::proto_json::{decode_base64, encode_base64};
use crate::wire::{
    Fields, Varints, Wire, put_bytes, put_message, put_tag, put_varint, put_varint_field,
};

/// gRPC method paths (`:path`) of the services in `proto/`: what a gRPC call at the entry
/// names, and what the filter calls on a gRPC node for each step. Pinned against the `.proto`
/// services in `tests/grpc.rs`.
pub mod method {
    /// Entry (graph-level API, service `seldon.protos.Seldon`).
    pub const SELDON_PREDICT: &str = "/seldon.protos.Seldon/Predict";
    pub const SELDON_SEND_FEEDBACK: &str = "/seldon.protos.Seldon/SendFeedback";
    /// Node calls, Seldon protocol: one service per node kind, as Seldon's executor calls them.
    pub const MODEL_PREDICT: &str = "/seldon.protos.Model/Predict";
    pub const MODEL_SEND_FEEDBACK: &str = "/seldon.protos.Model/SendFeedback";
    pub const TRANSFORMER_TRANSFORM_INPUT: &str = "/seldon.protos.Transformer/TransformInput";
    pub const OUTPUT_TRANSFORMER_TRANSFORM_OUTPUT: &str =
        "/seldon.protos.OutputTransformer/TransformOutput";
    pub const ROUTER_ROUTE: &str = "/seldon.protos.Router/Route";
    pub const ROUTER_SEND_FEEDBACK: &str = "/seldon.protos.Router/SendFeedback";
    pub const COMBINER_AGGREGATE: &str = "/seldon.protos.Combiner/Aggregate";
    /// `UNKNOWN_TYPE` nodes with several methods serve `Generic`.
    pub const GENERIC_TRANSFORM_INPUT: &str = "/seldon.protos.Generic/TransformInput";
    pub const GENERIC_TRANSFORM_OUTPUT: &str = "/seldon.protos.Generic/TransformOutput";
    pub const GENERIC_ROUTE: &str = "/seldon.protos.Generic/Route";
    pub const GENERIC_AGGREGATE: &str = "/seldon.protos.Generic/Aggregate";
    pub const GENERIC_SEND_FEEDBACK: &str = "/seldon.protos.Generic/SendFeedback";
    /// Open Inference Protocol (`inference.GRPCInferenceService`), entry and v2 nodes alike.
    pub const MODEL_INFER: &str = "/inference.GRPCInferenceService/ModelInfer";
    pub const MODEL_READY: &str = "/inference.GRPCInferenceService/ModelReady";
    pub const MODEL_METADATA: &str = "/inference.GRPCInferenceService/ModelMetadata";
    pub const SERVER_LIVE: &str = "/inference.GRPCInferenceService/ServerLive";
    pub const SERVER_READY: &str = "/inference.GRPCInferenceService/ServerReady";
    pub const SERVER_METADATA: &str = "/inference.GRPCInferenceService/ServerMetadata";

    /// Every path above.
    pub const ALL: [&str; 20] = [
        SELDON_PREDICT,
        SELDON_SEND_FEEDBACK,
        MODEL_PREDICT,
        MODEL_SEND_FEEDBACK,
        TRANSFORMER_TRANSFORM_INPUT,
        OUTPUT_TRANSFORMER_TRANSFORM_OUTPUT,
        ROUTER_ROUTE,
        ROUTER_SEND_FEEDBACK,
        COMBINER_AGGREGATE,
        GENERIC_TRANSFORM_INPUT,
        GENERIC_TRANSFORM_OUTPUT,
        GENERIC_ROUTE,
        GENERIC_AGGREGATE,
        GENERIC_SEND_FEEDBACK,
        MODEL_INFER,
        MODEL_READY,
        MODEL_METADATA,
        SERVER_LIVE,
        SERVER_READY,
        SERVER_METADATA,
    ];
}

const CONTEXT: &str = "SeldonMessage (gRPC)";

/// One uncompressed gRPC message with its 5-byte prefix (flag 0, big-endian length).
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 5);
    out.push(0);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// The message of a unary gRPC body: exactly one uncompressed frame.
pub fn unframe(body: &[u8]) -> Result<&[u8], ProtocolError> {
    let err = |reason: String| ProtocolError::Field {
        context: "gRPC body",
        field: "frame",
        reason,
    };
    let (prefix, rest) = body.split_first_chunk::<5>().ok_or_else(|| {
        err(format!(
            "is {} bytes, shorter than the 5-byte prefix",
            body.len()
        ))
    })?;
    if prefix[0] != 0 {
        return Err(err(
            "is compressed (flag 1); send uncompressed messages".into()
        ));
    }
    let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
    if rest.len() != len {
        return Err(err(format!(
            "announces {len} bytes but carries {} (exactly one message expected)",
            rest.len()
        )));
    }
    Ok(rest)
}

/// A `SeldonMessage` in protobuf → its REST JSON.
pub fn seldon_message_to_json(pb: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let value = seldon_message(pb)?;
    serde_json::to_vec(&value).map_err(ProtocolError::json(CONTEXT))
}

/// A `SeldonMessage` in REST JSON → protobuf.
pub fn seldon_message_from_json(json: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let value: Value = serde_json::from_slice(json).map_err(ProtocolError::json(CONTEXT))?;
    seldon_message_pb(&value)
}

/// A `Feedback` in protobuf (gRPC `SendFeedback`) → its REST JSON
/// (`{"request","response","reward","truth"}`, defaults left out).
pub fn feedback_to_json(pb: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let mut obj = Map::new();
    for field in Fields::new(pb, CONTEXT) {
        let (number, wire) = field?;
        match (number, wire) {
            (1, Wire::Len(b)) => insert(&mut obj, "request", seldon_message(b)?),
            (2, Wire::Len(b)) => insert(&mut obj, "response", seldon_message(b)?),
            (3, Wire::Fixed32(bits)) => {
                let f = f32::from_bits(bits);
                if f != 0.0 {
                    insert(&mut obj, "reward", short_f32(f, "Feedback.reward")?);
                }
            }
            (4, Wire::Len(b)) => insert(&mut obj, "truth", seldon_message(b)?),
            (1..=4, _) => return Err(wrong_wire("Feedback", number)),
            _ => {}
        }
    }
    serde_json::to_vec(&Value::Object(obj)).map_err(ProtocolError::json(CONTEXT))
}

/// A `Feedback` in REST JSON → protobuf (to call a gRPC node's `SendFeedback`).
pub fn feedback_from_json(json: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let value: Value = serde_json::from_slice(json).map_err(ProtocolError::json(CONTEXT))?;
    let mut out = Vec::new();
    for (key, v) in object(&value, "Feedback")? {
        match key.as_str() {
            "request" => put_message(&mut out, 1, &seldon_message_pb(v)?),
            "response" => put_message(&mut out, 2, &seldon_message_pb(v)?),
            "reward" => {
                let f = v
                    .as_f64()
                    .ok_or_else(|| field_type("Feedback.reward", "a number"))?;
                let f =
                    crate::proto_json::f32_from_f64(f).map_err(|reason| ProtocolError::Field {
                        context: CONTEXT,
                        field: "Feedback.reward",
                        reason,
                    })?;
                put_tag(&mut out, 3, 5);
                out.extend_from_slice(&f.to_le_bytes());
            }
            "truth" => put_message(&mut out, 4, &seldon_message_pb(v)?),
            other => return Err(unknown_key("Feedback", other)),
        }
    }
    Ok(out)
}

/// A combiner's input in REST JSON — a bare array `[m1, m2, …]` (what
/// [`aggregate_request`](crate::aggregate_request) writes) or `{"seldonMessages": […]}` — →
/// a `SeldonMessageList` in protobuf (to call a gRPC node's `Aggregate`).
pub fn seldon_message_list_from_json(json: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let value: Value = serde_json::from_slice(json).map_err(ProtocolError::json(CONTEXT))?;
    let items = match &value {
        Value::Array(items) => items,
        Value::Object(obj) => {
            if let Some(other) = obj.keys().find(|k| *k != "seldonMessages") {
                return Err(unknown_key("SeldonMessageList", other));
            }
            match obj.get("seldonMessages") {
                Some(Value::Array(items)) => items,
                Some(_) => return Err(field_type("seldonMessages", "an array")),
                None => return Ok(Vec::new()),
            }
        }
        _ => return Err(field_type("SeldonMessageList", "an array or an object")),
    };
    let mut out = Vec::new();
    for m in items {
        put_message(&mut out, 1, &seldon_message_pb(m)?);
    }
    Ok(out)
}

/// A `SeldonMessageList` in protobuf → `{"seldonMessages": […]}`.
pub fn seldon_message_list_to_json(pb: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let mut items = Vec::new();
    for field in Fields::new(pb, CONTEXT) {
        match field? {
            (1, Wire::Len(b)) => items.push(seldon_message(b)?),
            (1, _) => return Err(wrong_wire("SeldonMessageList", 1)),
            _ => {}
        }
    }
    let mut obj = Map::new();
    if !items.is_empty() {
        obj.insert("seldonMessages".into(), Value::Array(items));
    }
    serde_json::to_vec(&Value::Object(obj)).map_err(ProtocolError::json(CONTEXT))
}

/// A 32-bit float as JSON in its shortest decimal form (0.1, not 0.10000000149011612).
fn short_f32(f: f32, field: &'static str) -> Result<Value, ProtocolError> {
    let wide = format!("{f}").parse::<f64>().unwrap_or(f64::from(f));
    number(wide, field)
}

fn seldon_message_pb(value: &Value) -> Result<Vec<u8>, ProtocolError> {
    let obj = object(value, "SeldonMessage")?;
    let mut out = Vec::new();
    let mut payloads = Vec::new();
    for (key, v) in obj {
        match key.as_str() {
            "status" => put_message(&mut out, 1, &status_pb(v)?),
            "meta" => put_message(&mut out, 2, &meta_pb(v)?),
            "data" => {
                payloads.push(key.clone());
                put_message(&mut out, 3, &default_data_pb(v)?);
            }
            "binData" => {
                payloads.push(key.clone());
                let text = str_of(v, "binData")?;
                let bytes = decode_base64(text).map_err(|source| ProtocolError::Base64 {
                    context: CONTEXT,
                    source,
                })?;
                put_bytes(&mut out, 4, &bytes);
            }
            "strData" => {
                payloads.push(key.clone());
                put_bytes(&mut out, 5, str_of(v, "strData")?.as_bytes());
            }
            "jsonData" => {
                payloads.push(key.clone());
                put_message(&mut out, 6, &value_pb(v));
            }
            "customData" => return Err(not_converted("customData")),
            other => return Err(unknown_key("SeldonMessage", other)),
        }
    }
    if payloads.len() > 1 {
        return Err(ProtocolError::OneOf {
            context: CONTEXT,
            members: "data, binData, strData, jsonData, customData",
            found: payloads.join(", "),
        });
    }
    Ok(out)
}

// ---- protobuf → JSON ----

fn seldon_message(pb: &[u8]) -> Result<Value, ProtocolError> {
    let mut obj = Map::new();
    for field in Fields::new(pb, CONTEXT) {
        let (number, wire) = field?;
        match (number, wire) {
            (1, Wire::Len(b)) => insert(&mut obj, "status", status_json(b)?),
            (2, Wire::Len(b)) => insert(&mut obj, "meta", meta_json(b)?),
            (3, Wire::Len(b)) => insert(&mut obj, "data", default_data_json(b)?),
            (4, Wire::Len(b)) => insert(&mut obj, "binData", Value::String(encode_base64(b))),
            (5, Wire::Len(b)) => insert(&mut obj, "strData", Value::String(utf8(b, "strData")?)),
            (6, Wire::Len(b)) => insert(&mut obj, "jsonData", value_json(b)?),
            (7, _) => return Err(not_converted("customData")),
            (1..=6, _) => return Err(wrong_wire("SeldonMessage", number)),
            _ => {}
        }
    }
    Ok(Value::Object(obj))
}

/// Sets `key`; a present but empty sub-message shows as `{}`, as the protobuf JSON mapping does.
fn insert(obj: &mut Map<String, Value>, key: &str, v: Value) {
    obj.insert(key.to_string(), v);
}

fn status_json(pb: &[u8]) -> Result<Value, ProtocolError> {
    let mut obj = Map::new();
    for field in Fields::new(pb, CONTEXT) {
        match field? {
            (1, Wire::Varint(v)) if v != 0 => {
                insert(&mut obj, "code", Value::from(v as i64 as i32));
            }
            (2, Wire::Len(b)) if !b.is_empty() => {
                insert(&mut obj, "info", Value::String(utf8(b, "status.info")?));
            }
            (3, Wire::Len(b)) if !b.is_empty() => {
                insert(&mut obj, "reason", Value::String(utf8(b, "status.reason")?));
            }
            (4, Wire::Varint(v)) if v != 0 => {
                let name = match v {
                    1 => Value::from("FAILURE"),
                    n => Value::from(n as i64 as i32),
                };
                insert(&mut obj, "status", name);
            }
            _ => {}
        }
    }
    Ok(Value::Object(obj))
}

fn meta_json(pb: &[u8]) -> Result<Value, ProtocolError> {
    let mut obj = Map::new();
    let mut tags = Map::new();
    let mut routing = Map::new();
    let mut request_path = Map::new();
    let mut metrics = Vec::new();
    for field in Fields::new(pb, CONTEXT) {
        match field? {
            (1, Wire::Len(b)) if !b.is_empty() => {
                insert(&mut obj, "puid", Value::String(utf8(b, "meta.puid")?));
            }
            (2, Wire::Len(b)) => {
                let (k, v) = map_entry(b, "meta.tags")?;
                let v = match v {
                    Some(Wire::Len(vb)) => value_json(vb)?,
                    _ => Value::Null,
                };
                tags.insert(k, v);
            }
            (3, Wire::Len(b)) => {
                let (k, v) = map_entry(b, "meta.routing")?;
                let n = match v {
                    Some(Wire::Varint(n)) => n as i64 as i32,
                    _ => 0,
                };
                routing.insert(k, Value::from(n));
            }
            (4, Wire::Len(b)) => {
                let (k, v) = map_entry(b, "meta.requestPath")?;
                let s = match v {
                    Some(Wire::Len(vb)) => utf8(vb, "meta.requestPath")?,
                    _ => String::new(),
                };
                request_path.insert(k, Value::String(s));
            }
            (5, Wire::Len(b)) => metrics.push(metric_json(b)?),
            _ => {}
        }
    }
    for (key, map) in [
        ("tags", tags),
        ("routing", routing),
        ("requestPath", request_path),
    ] {
        if !map.is_empty() {
            insert(&mut obj, key, Value::Object(map));
        }
    }
    if !metrics.is_empty() {
        insert(&mut obj, "metrics", Value::Array(metrics));
    }
    Ok(Value::Object(obj))
}

fn metric_json(pb: &[u8]) -> Result<Value, ProtocolError> {
    let mut obj = Map::new();
    let mut tags = Map::new();
    for field in Fields::new(pb, CONTEXT) {
        match field? {
            (1, Wire::Len(b)) if !b.is_empty() => {
                insert(&mut obj, "key", Value::String(utf8(b, "metric.key")?));
            }
            (2, Wire::Varint(v)) if v != 0 => {
                let name = match v {
                    1 => Value::from("GAUGE"),
                    2 => Value::from("TIMER"),
                    n => Value::from(n as i64 as i32),
                };
                insert(&mut obj, "type", name);
            }
            (3, Wire::Fixed32(bits)) => {
                let f = f32::from_bits(bits);
                if f != 0.0 {
                    insert(&mut obj, "value", short_f32(f, "metric.value")?);
                }
            }
            (4, Wire::Len(b)) => {
                let (k, v) = map_entry(b, "metric.tags")?;
                let s = match v {
                    Some(Wire::Len(vb)) => utf8(vb, "metric.tags")?,
                    _ => String::new(),
                };
                tags.insert(k, Value::String(s));
            }
            _ => {}
        }
    }
    if !tags.is_empty() {
        insert(&mut obj, "tags", Value::Object(tags));
    }
    Ok(Value::Object(obj))
}

fn default_data_json(pb: &[u8]) -> Result<Value, ProtocolError> {
    let mut obj = Map::new();
    let mut names = Vec::new();
    for field in Fields::new(pb, CONTEXT) {
        match field? {
            (1, Wire::Len(b)) => names.push(Value::String(utf8(b, "data.names")?)),
            (2, Wire::Len(b)) => insert(&mut obj, "tensor", tensor_json(b)?),
            (3, Wire::Len(b)) => insert(&mut obj, "ndarray", list_value_json(b)?),
            (4, _) => return Err(not_converted("data.tftensor")),
            _ => {}
        }
    }
    if !names.is_empty() {
        obj.insert("names".into(), Value::Array(names));
    }
    Ok(Value::Object(obj))
}

fn tensor_json(pb: &[u8]) -> Result<Value, ProtocolError> {
    let mut shape = Vec::new();
    let mut values = Vec::new();
    for field in Fields::new(pb, CONTEXT) {
        match field? {
            (1, Wire::Varint(v)) => shape.push(Value::from(v as i64 as i32)),
            (1, Wire::Len(b)) => {
                for v in Varints::new(b, CONTEXT) {
                    shape.push(Value::from(v? as i64 as i32));
                }
            }
            (2, Wire::Fixed64(bits)) => values.push(number(f64::from_bits(bits), "tensor.values")?),
            (2, Wire::Len(b)) => {
                if b.len() % 8 != 0 {
                    return Err(truncated("tensor.values"));
                }
                for chunk in b.chunks_exact(8) {
                    let mut eight = [0u8; 8];
                    eight.copy_from_slice(chunk);
                    values.push(number(f64::from_le_bytes(eight), "tensor.values")?);
                }
            }
            _ => {}
        }
    }
    let mut obj = Map::new();
    if !shape.is_empty() {
        obj.insert("shape".into(), Value::Array(shape));
    }
    if !values.is_empty() {
        obj.insert("values".into(), Value::Array(values));
    }
    Ok(Value::Object(obj))
}

/// `google.protobuf.Value` → JSON.
fn value_json(pb: &[u8]) -> Result<Value, ProtocolError> {
    let mut out = Value::Null;
    for field in Fields::new(pb, CONTEXT) {
        out = match field? {
            (1, Wire::Varint(_)) => Value::Null,
            (2, Wire::Fixed64(bits)) => number(f64::from_bits(bits), "google.protobuf.Value")?,
            (3, Wire::Len(b)) => Value::String(utf8(b, "google.protobuf.Value")?),
            (4, Wire::Varint(v)) => Value::Bool(v != 0),
            (5, Wire::Len(b)) => struct_json(b)?,
            (6, Wire::Len(b)) => list_value_json(b)?,
            _ => continue,
        };
    }
    Ok(out)
}

fn struct_json(pb: &[u8]) -> Result<Value, ProtocolError> {
    let mut obj = Map::new();
    for field in Fields::new(pb, CONTEXT) {
        if let (1, Wire::Len(b)) = field? {
            let (k, v) = map_entry(b, "google.protobuf.Struct")?;
            let v = match v {
                Some(Wire::Len(vb)) => value_json(vb)?,
                _ => Value::Null,
            };
            obj.insert(k, v);
        }
    }
    Ok(Value::Object(obj))
}

fn list_value_json(pb: &[u8]) -> Result<Value, ProtocolError> {
    let mut items = Vec::new();
    for field in Fields::new(pb, CONTEXT) {
        if let (1, Wire::Len(b)) = field? {
            items.push(value_json(b)?);
        }
    }
    Ok(Value::Array(items))
}

/// A map entry `{1: key (string), 2: value}`.
fn map_entry<'a>(
    pb: &'a [u8],
    context: &'static str,
) -> Result<(String, Option<Wire<'a>>), ProtocolError> {
    let mut key = String::new();
    let mut value = None;
    for field in Fields::new(pb, CONTEXT) {
        match field? {
            (1, Wire::Len(b)) => key = utf8(b, context)?,
            (2, w) => value = Some(w),
            _ => {}
        }
    }
    Ok((key, value))
}

fn number(f: f64, context: &'static str) -> Result<Value, ProtocolError> {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| ProtocolError::Field {
            context: CONTEXT,
            field: context,
            reason: format!("holds {f}, which JSON cannot represent"),
        })
}

fn utf8(b: &[u8], field: &'static str) -> Result<String, ProtocolError> {
    String::from_utf8(b.to_vec()).map_err(|_| ProtocolError::Field {
        context: CONTEXT,
        field,
        reason: "is not valid UTF-8".into(),
    })
}

// ---- JSON → protobuf ----

fn status_pb(v: &Value) -> Result<Vec<u8>, ProtocolError> {
    let mut out = Vec::new();
    for (key, v) in object(v, "status")? {
        match key.as_str() {
            "code" => put_varint_field(&mut out, 1, int32_of(v, "status.code")? as i64 as u64),
            "info" => put_bytes(&mut out, 2, str_of(v, "status.info")?.as_bytes()),
            "reason" => put_bytes(&mut out, 3, str_of(v, "status.reason")?.as_bytes()),
            "status" => {
                let n = enum_of(v, "status.status", &["SUCCESS", "FAILURE"])?;
                put_varint_field(&mut out, 4, n);
            }
            other => return Err(unknown_key("status", other)),
        }
    }
    Ok(out)
}

fn meta_pb(v: &Value) -> Result<Vec<u8>, ProtocolError> {
    let mut out = Vec::new();
    for (key, v) in object(v, "meta")? {
        match key.as_str() {
            "puid" => put_bytes(&mut out, 1, str_of(v, "meta.puid")?.as_bytes()),
            "tags" => {
                for (k, tag) in object(v, "meta.tags")? {
                    let mut entry = Vec::new();
                    put_bytes(&mut entry, 1, k.as_bytes());
                    put_message(&mut entry, 2, &value_pb(tag));
                    put_message(&mut out, 2, &entry);
                }
            }
            "routing" => {
                for (k, route) in object(v, "meta.routing")? {
                    let mut entry = Vec::new();
                    put_bytes(&mut entry, 1, k.as_bytes());
                    let n = int32_of(route, "meta.routing")?;
                    put_varint_field(&mut entry, 2, n as i64 as u64);
                    put_message(&mut out, 3, &entry);
                }
            }
            "requestPath" => {
                for (k, image) in object(v, "meta.requestPath")? {
                    let mut entry = Vec::new();
                    put_bytes(&mut entry, 1, k.as_bytes());
                    put_bytes(&mut entry, 2, str_of(image, "meta.requestPath")?.as_bytes());
                    put_message(&mut out, 4, &entry);
                }
            }
            "metrics" => {
                let Value::Array(items) = v else {
                    return Err(field_type("meta.metrics", "an array"));
                };
                for m in items {
                    put_message(&mut out, 5, &metric_pb(m)?);
                }
            }
            other => return Err(unknown_key("meta", other)),
        }
    }
    Ok(out)
}

fn metric_pb(v: &Value) -> Result<Vec<u8>, ProtocolError> {
    let mut out = Vec::new();
    for (key, v) in object(v, "metric")? {
        match key.as_str() {
            "key" => put_bytes(&mut out, 1, str_of(v, "metric.key")?.as_bytes()),
            "type" => {
                let n = enum_of(v, "metric.type", &["COUNTER", "GAUGE", "TIMER"])?;
                put_varint_field(&mut out, 2, n);
            }
            "value" => {
                let f = v
                    .as_f64()
                    .ok_or_else(|| field_type("metric.value", "a number"))?;
                // Beyond f32::MAX it would be written as infinity, which has no JSON form.
                let f =
                    crate::proto_json::f32_from_f64(f).map_err(|reason| ProtocolError::Field {
                        context: CONTEXT,
                        field: "metric.value",
                        reason,
                    })?;
                put_tag(&mut out, 3, 5);
                out.extend_from_slice(&f.to_le_bytes());
            }
            "tags" => {
                for (k, t) in object(v, "metric.tags")? {
                    let mut entry = Vec::new();
                    put_bytes(&mut entry, 1, k.as_bytes());
                    put_bytes(&mut entry, 2, str_of(t, "metric.tags")?.as_bytes());
                    put_message(&mut out, 4, &entry);
                }
            }
            other => return Err(unknown_key("metric", other)),
        }
    }
    Ok(out)
}

fn default_data_pb(v: &Value) -> Result<Vec<u8>, ProtocolError> {
    let mut out = Vec::new();
    let mut forms = Vec::new();
    for (key, v) in object(v, "data")? {
        match key.as_str() {
            "names" => {
                let Value::Array(names) = v else {
                    return Err(field_type("data.names", "an array of strings"));
                };
                for n in names {
                    put_bytes(&mut out, 1, str_of(n, "data.names")?.as_bytes());
                }
            }
            "tensor" => {
                forms.push("tensor");
                put_message(&mut out, 2, &tensor_pb(v)?);
            }
            "ndarray" => {
                forms.push("ndarray");
                let Value::Array(items) = v else {
                    return Err(field_type("data.ndarray", "an array"));
                };
                put_message(&mut out, 3, &list_value_pb(items));
            }
            "tftensor" => return Err(not_converted("data.tftensor")),
            other => return Err(unknown_key("data", other)),
        }
    }
    if forms.len() > 1 {
        return Err(ProtocolError::OneOf {
            context: CONTEXT,
            members: "data.tensor, data.ndarray, data.tftensor",
            found: forms.join(", "),
        });
    }
    Ok(out)
}

fn tensor_pb(v: &Value) -> Result<Vec<u8>, ProtocolError> {
    let mut out = Vec::new();
    for (key, v) in object(v, "data.tensor")? {
        let Value::Array(items) = v else {
            return Err(field_type("data.tensor", "arrays `shape` and `values`"));
        };
        match key.as_str() {
            "shape" => {
                let mut packed = Vec::new();
                for d in items {
                    put_varint(&mut packed, int32_of(d, "tensor.shape")? as i64 as u64);
                }
                if !packed.is_empty() {
                    put_bytes(&mut out, 1, &packed);
                }
            }
            "values" => {
                let mut packed = Vec::with_capacity(items.len() * 8);
                for x in items {
                    let f = x
                        .as_f64()
                        .ok_or_else(|| field_type("tensor.values", "numbers"))?;
                    packed.extend_from_slice(&f.to_le_bytes());
                }
                if !packed.is_empty() {
                    put_bytes(&mut out, 2, &packed);
                }
            }
            other => return Err(unknown_key("data.tensor", other)),
        }
    }
    Ok(out)
}

/// JSON → `google.protobuf.Value`.
fn value_pb(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    match v {
        Value::Null => put_varint_field(&mut out, 1, 0),
        Value::Bool(b) => put_varint_field(&mut out, 4, u64::from(*b)),
        Value::Number(n) => {
            put_tag(&mut out, 2, 1);
            out.extend_from_slice(&n.as_f64().unwrap_or_default().to_le_bytes());
        }
        Value::String(s) => put_bytes(&mut out, 3, s.as_bytes()),
        Value::Array(items) => put_message(&mut out, 6, &list_value_pb(items)),
        Value::Object(fields) => {
            let mut st = Vec::new();
            for (k, fv) in fields {
                let mut entry = Vec::new();
                put_bytes(&mut entry, 1, k.as_bytes());
                put_message(&mut entry, 2, &value_pb(fv));
                put_message(&mut st, 1, &entry);
            }
            put_message(&mut out, 5, &st);
        }
    }
    out
}

fn list_value_pb(items: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for item in items {
        put_message(&mut out, 1, &value_pb(item));
    }
    out
}

fn object<'a>(v: &'a Value, field: &'static str) -> Result<&'a Map<String, Value>, ProtocolError> {
    v.as_object().ok_or_else(|| field_type(field, "an object"))
}

fn str_of<'a>(v: &'a Value, field: &'static str) -> Result<&'a str, ProtocolError> {
    v.as_str().ok_or_else(|| field_type(field, "a string"))
}

fn int32_of(v: &Value, field: &'static str) -> Result<i32, ProtocolError> {
    let n = match v {
        Value::Number(n) => n.as_i64(),
        // The protobuf JSON mapping also accepts integers written as strings.
        Value::String(s) => s.parse::<i64>().ok(),
        _ => None,
    };
    n.and_then(|n| i32::try_from(n).ok())
        .ok_or_else(|| field_type(field, "a 32-bit integer"))
}

/// An enum by name (or number, as the protobuf JSON mapping allows).
fn enum_of(v: &Value, field: &'static str, names: &[&str]) -> Result<u64, ProtocolError> {
    match v {
        Value::String(s) => names
            .iter()
            .position(|n| n == s)
            .map(|i| i as u64)
            .ok_or_else(|| field_type(field, &format!("one of {}", names.join(", ")))),
        other => int32_of(other, field).map(|n| n as i64 as u64),
    }
}

fn field_type(field: &'static str, want: &str) -> ProtocolError {
    ProtocolError::Field {
        context: CONTEXT,
        field,
        reason: format!("must be {want}"),
    }
}

fn unknown_key(field: &'static str, key: &str) -> ProtocolError {
    ProtocolError::Field {
        context: CONTEXT,
        field,
        reason: format!("has an unknown key `{key}`"),
    }
}

fn not_converted(field: &'static str) -> ProtocolError {
    ProtocolError::Field {
        context: CONTEXT,
        field,
        reason: "is not converted between gRPC and REST (send data.tensor, data.ndarray, binData, strData or jsonData)".into(),
    }
}

fn wrong_wire(message: &'static str, number: u32) -> ProtocolError {
    ProtocolError::Field {
        context: CONTEXT,
        field: message,
        reason: format!("field {number} has the wrong wire type"),
    }
}

fn truncated(field: &'static str) -> ProtocolError {
    crate::wire::truncated(CONTEXT, field)
}
