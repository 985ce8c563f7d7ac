//! Byte-level payload operations for the graph executor: decode only what a step needs and copy
//! everything else verbatim, so any payload form (ndarray, tftensor, binData, custom keys, ...)
//! passes through unchanged.

use std::collections::BTreeMap;

use serde_json::value::RawValue;

use crate::ProtocolError;
use crate::raw::{self, RawObject, insert_member, parse_raw, span, splice, write_json_string};

const ROUTE_FORMS: &str =
    "expected data.ndarray, data.tensor.values, data.tftensor.intVal or a bare JSON int array";

/// Reads the child index chosen by a router (its `/route` reply).
///
/// Accepted forms, first element used: a SeldonMessage with `data.ndarray` (`[[n]]` or `[n]`),
/// `data.tensor.values`, `data.tftensor.intVal`, or a bare JSON array of ints (`[n]`).
/// Integral floats (`1.0`, as `tensor.values` are doubles) are accepted; `1.5`, strings,
/// empty arrays and values outside `i32` are rejected.
///
/// Deliberately stricter than Seldon's Go executor, which truncates `1.5` to `1` and treats a
/// SeldonMessage without `data` (e.g. `{}`) as `-1` (all children): both are errors here.
pub fn route_from_reply(body: &[u8]) -> Result<i32, ProtocolError> {
    let raw = parse_raw(body, "router reply")?;
    if raw.get().starts_with('[') {
        return first_int(raw, "the reply array");
    }
    let reply = RawObject::parse(raw, "router reply")?;
    let Some(data) = reply.get_non_null("data") else {
        return Err(route_err(format!("no `data` member; {ROUTE_FORMS}")));
    };
    let data = RawObject::parse(data, "router reply data")?;
    if let Some(ndarray) = data.get_non_null("ndarray") {
        return first_int(ndarray, "data.ndarray");
    }
    if let Some(tensor) = data.get_non_null("tensor") {
        let tensor = RawObject::parse(tensor, "router reply data.tensor")?;
        let values = tensor
            .get_non_null("values")
            .ok_or_else(|| route_err("data.tensor has no `values`".into()))?;
        return first_int(values, "data.tensor.values");
    }
    if let Some(tftensor) = data.get_non_null("tftensor") {
        let tftensor = RawObject::parse(tftensor, "router reply data.tftensor")?;
        let values = tftensor
            .get_non_null("intVal")
            .ok_or_else(|| route_err("data.tftensor has no `intVal`".into()))?;
        return first_int(values, "data.tftensor.intVal");
    }
    Err(route_err(format!("`data` has no route; {ROUTE_FORMS}")))
}

fn route_err(reason: String) -> ProtocolError {
    ProtocolError::RouteReply { reason }
}

/// First element of the array `raw` (descending once into `[[n]]`) as an `i32`.
fn first_int(raw: &RawValue, what: &str) -> Result<i32, ProtocolError> {
    let mut current = raw;
    // `[[n]]` (one row of a 2-d ndarray) or `[n]`.
    for depth in 0..2 {
        if !current.get().starts_with('[') {
            if depth == 0 {
                return Err(route_err(format!(
                    "{what} must be an array, found {}",
                    raw::kind(current)
                )));
            }
            break;
        }
        let items: Vec<&RawValue> = serde_json::from_str(current.get())
            .map_err(|e| route_err(format!("{what} is not a JSON array: {e}")))?;
        current = items
            .first()
            .copied()
            .ok_or_else(|| route_err(format!("{what} is empty")))?;
    }
    let text = current.get();
    let number: serde_json::Number = serde_json::from_str(text)
        .map_err(|_| route_err(format!("first element of {what} is {text}, not an integer")))?;
    let value = if let Some(i) = number.as_i64() {
        Some(i)
    } else {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() <= f64::from(i32::MAX) + 1.0)
            .map(|f| f as i64)
    };
    value.and_then(|i| i32::try_from(i).ok()).ok_or_else(|| {
        route_err(format!(
            "first element of {what} is {text}, not a 32-bit integer"
        ))
    })
}

/// Builds a combiner's `/aggregate` request: the bare JSON array `[m1,m2,...]` of its
/// children's outputs, each copied verbatim. Every part must be valid JSON in UTF-8.
pub fn aggregate_request(parts: &[&[u8]]) -> Result<Vec<u8>, ProtocolError> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum::<usize>() + 2);
    out.push(b'[');
    for (index, part) in parts.iter().enumerate() {
        // A borrowed RawValue, not IgnoredAny: ignoring skips string contents without checking
        // UTF-8, so a part with invalid UTF-8 inside a string was copied into the request
        // (found by fuzz/ protocol_ops).
        serde_json::from_slice::<&RawValue>(part)
            .map_err(|source| ProtocolError::AggregatePart { index, source })?;
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(part);
    }
    out.push(b']');
    Ok(out)
}

/// Reads `response.meta.routing` of a Feedback body: node name → child index chosen at
/// prediction time. Absent (or `null`) at any level gives an empty map.
pub fn feedback_routing(body: &[u8]) -> Result<BTreeMap<String, i32>, ProtocolError> {
    let feedback = RawObject::parse(parse_raw(body, "feedback")?, "feedback")?;
    let Some(response) = feedback.get_non_null("response") else {
        return Ok(BTreeMap::new());
    };
    let response = RawObject::parse(response, "feedback response")?;
    let Some(meta) = response.get_non_null("meta") else {
        return Ok(BTreeMap::new());
    };
    let meta = RawObject::parse(meta, "feedback response.meta")?;
    match meta.get_non_null("routing") {
        None => Ok(BTreeMap::new()),
        Some(routing) => parse_routing(routing, "feedback response.meta"),
    }
}

fn parse_routing(
    routing: &RawValue,
    context: &'static str,
) -> Result<BTreeMap<String, i32>, ProtocolError> {
    serde_json::from_str(routing.get()).map_err(|e| ProtocolError::Field {
        context,
        field: "routing",
        reason: format!("must be an object of node name to 32-bit integer: {e}"),
    })
}

/// Sets `meta.routing` of a SeldonMessage body, merging `routing` into any existing routing
/// map (new entries win). Every other byte, including other `meta` members and every other
/// top-level member, is copied verbatim.
pub fn inject_routing(
    body: &[u8],
    routing: &BTreeMap<String, i32>,
) -> Result<Vec<u8>, ProtocolError> {
    let top_raw = parse_raw(body, "message")?;
    let top = RawObject::parse(top_raw, "message")?;
    let Some(meta_raw) = top.get("meta") else {
        let meta = routing_member_object(routing)?;
        return Ok(insert_member(
            body,
            &top,
            span(body, top_raw),
            "meta",
            &meta,
        ));
    };
    if raw::is_null(meta_raw) {
        let meta = routing_member_object(routing)?;
        return Ok(splice(body, span(body, meta_raw), &meta));
    }
    let meta = RawObject::parse(meta_raw, "message meta")?;
    match meta.get("routing") {
        None => {
            let value = routing_json(routing)?;
            Ok(insert_member(
                body,
                &meta,
                span(body, meta_raw),
                "routing",
                &value,
            ))
        }
        Some(existing) => {
            let mut merged = if raw::is_null(existing) {
                BTreeMap::new()
            } else {
                parse_routing(existing, "message meta")?
            };
            merged.extend(routing.iter().map(|(k, v)| (k.clone(), *v)));
            Ok(splice(body, span(body, existing), &routing_json(&merged)?))
        }
    }
}

fn routing_json(routing: &BTreeMap<String, i32>) -> Result<Vec<u8>, ProtocolError> {
    serde_json::to_vec(routing).map_err(ProtocolError::json("routing"))
}

fn routing_member_object(routing: &BTreeMap<String, i32>) -> Result<Vec<u8>, ProtocolError> {
    let mut out = b"{\"routing\":".to_vec();
    out.extend_from_slice(&routing_json(routing)?);
    out.push(b'}');
    Ok(out)
}

/// Turns a v2 inference response into the request for the next node of a pipeline:
/// `outputs` become `inputs` (each tensor keeps `name`, `shape`, `datatype`, `parameters`
/// and `data`, values copied verbatim), `id` and `parameters` are kept, `model_name`,
/// `model_version` and any other member are dropped. JSON bodies only: split a
/// binary-extension body first (see [`crate::v2::binary`]).
pub fn v2_chain(output: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    const CONTEXT: &str = "v2 inference response";
    let response = RawObject::parse(parse_raw(output, CONTEXT)?, CONTEXT)?;
    let Some(outputs) = response.get("outputs") else {
        return Err(ProtocolError::MissingField {
            context: CONTEXT,
            field: "outputs",
        });
    };
    let tensors: Vec<&RawValue> =
        serde_json::from_str(outputs.get()).map_err(|e| ProtocolError::Field {
            context: CONTEXT,
            field: "outputs",
            reason: format!("must be an array of tensors: {e}"),
        })?;

    let mut out = Vec::with_capacity(output.len());
    out.push(b'{');
    let mut first = true;
    let mut member = |out: &mut Vec<u8>, key: &str| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        write_json_string(out, key);
        out.push(b':');
    };
    // Document order; with duplicate keys only the winning (last) occurrence is written.
    for (i, (key, value)) in response.entries.iter().enumerate() {
        let key = key.as_ref();
        let is_last = !response.entries[i + 1..].iter().any(|(k, _)| k == key);
        if !is_last {
            continue;
        }
        match key {
            "id" | "parameters" => {
                member(&mut out, key);
                out.extend_from_slice(value.get().as_bytes());
            }
            "outputs" => {
                member(&mut out, "inputs");
                out.push(b'[');
                for (index, tensor) in tensors.iter().enumerate() {
                    if index > 0 {
                        out.push(b',');
                    }
                    write_chained_tensor(&mut out, tensor)?;
                }
                out.push(b']');
            }
            _ => {}
        }
    }
    out.push(b'}');
    Ok(out)
}

fn write_chained_tensor(out: &mut Vec<u8>, tensor: &RawValue) -> Result<(), ProtocolError> {
    const CONTEXT: &str = "v2 output tensor";
    const KEPT: [&str; 5] = ["name", "shape", "datatype", "parameters", "data"];
    let tensor = RawObject::parse(tensor, CONTEXT)?;
    for field in ["name", "shape", "datatype"] {
        if tensor.get_non_null(field).is_none() {
            return Err(ProtocolError::MissingField {
                context: CONTEXT,
                field,
            });
        }
    }
    out.push(b'{');
    let mut first = true;
    for (i, (key, value)) in tensor.entries.iter().enumerate() {
        let key = key.as_ref();
        if !KEPT.contains(&key) || tensor.entries[i + 1..].iter().any(|(k, _)| k == key) {
            continue;
        }
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        write_json_string(out, key);
        out.push(b':');
        out.extend_from_slice(value.get().as_bytes());
    }
    out.push(b'}');
    Ok(())
}

/// The Seldon failure body `{"status":{"code":..,"info":..,"reason":..,"status":"FAILURE"}}`.
pub fn status_body(code: u16, info: &str, reason: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + info.len() + reason.len());
    out.extend_from_slice(b"{\"status\":{\"code\":");
    out.extend_from_slice(code.to_string().as_bytes());
    out.extend_from_slice(b",\"info\":");
    write_json_string(&mut out, info);
    out.extend_from_slice(b",\"reason\":");
    write_json_string(&mut out, reason);
    out.extend_from_slice(b",\"status\":\"FAILURE\"}}");
    out
}

/// Checks that `body` is exactly one JSON object (a SeldonMessage, a TensorFlow Serving
/// answer, a feedback reply) without decoding its values. `context` names the payload in the
/// error.
pub fn check_json_object(body: &[u8], context: &'static str) -> Result<(), ProtocolError> {
    let raw = parse_raw(body, context)?;
    if !raw.get().starts_with('{') {
        return Err(ProtocolError::NotAnObject {
            context,
            found: raw::kind(raw),
        });
    }
    Ok(())
}

/// Checks a v2 inference response as far as the next step of a graph needs it: a JSON object
/// whose `outputs` is an array of tensors, each an object with non-null `name`, `shape` and
/// `datatype` (what [`v2_chain`] copies). Tensor values are not decoded.
pub fn check_v2_response(body: &[u8]) -> Result<(), ProtocolError> {
    const CONTEXT: &str = "v2 inference response";
    let response = RawObject::parse(parse_raw(body, CONTEXT)?, CONTEXT)?;
    let Some(outputs) = response.get_non_null("outputs") else {
        return Err(ProtocolError::MissingField {
            context: CONTEXT,
            field: "outputs",
        });
    };
    let tensors: Vec<&RawValue> =
        serde_json::from_str(outputs.get()).map_err(|e| ProtocolError::Field {
            context: CONTEXT,
            field: "outputs",
            reason: format!("must be an array of tensors: {e}"),
        })?;
    for tensor in tensors {
        let tensor = RawObject::parse(tensor, "v2 output tensor")?;
        for field in ["name", "shape", "datatype"] {
            if tensor.get_non_null(field).is_none() {
                return Err(ProtocolError::MissingField {
                    context: "v2 output tensor",
                    field,
                });
            }
        }
    }
    Ok(())
}

/// Checks a client's v2 inference request (JSON form) fully: every input has a `name`, a
/// `shape`, one of the 13 `datatype`s, and `data` (when present) of that type with as many
/// elements as the shape calls for.
pub fn check_v2_request(body: &[u8]) -> Result<(), ProtocolError> {
    const CONTEXT: &str = "v2 inference request";
    serde_json::from_slice::<crate::v2::InferenceRequest>(body)
        .map(|_| ())
        .map_err(|e| match e.classify() {
            serde_json::error::Category::Data => ProtocolError::Invalid {
                context: CONTEXT,
                reason: e.to_string(),
            },
            _ => ProtocolError::Json {
                context: CONTEXT,
                source: e,
            },
        })
}
