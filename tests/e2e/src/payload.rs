//! Pure payload operations of the test model server, over `serde_json::Value`.
//!
//! Kept apart from the HTTP edge (`src/bin/testmodel.rs`) so they are tested without a socket.

use serde_json::{Map, Value, json};

/// What went wrong with a request payload; the server answers 400 with it.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PayloadError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("expected {0}")]
    Shape(String),
    #[error("ndarrays differ in shape at {path}")]
    ShapeMismatch { path: String },
}

/// Parses a request body.
pub fn parse(body: &[u8]) -> Result<Value, PayloadError> {
    serde_json::from_slice(body).map_err(|e| PayloadError::NotJson(e.to_string()))
}

/// Adds `n` to every number in `data.ndarray` and `data.tensor.values`.
pub fn add_to_message(msg: &mut Value, n: f64) {
    if let Some(nd) = msg.pointer_mut("/data/ndarray") {
        add_to_numbers(nd, n);
    }
    if let Some(vals) = msg.pointer_mut("/data/tensor/values") {
        add_to_numbers(vals, n);
    }
}

/// Adds `n` to every number in a (nested) JSON value.
pub fn add_to_numbers(v: &mut Value, n: f64) {
    match v {
        Value::Number(x) => {
            if let Some(f) = x.as_f64() {
                *v = json!(f + n);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| add_to_numbers(i, n)),
        _ => {}
    }
}

/// Records that node `name` handled `msg`: `meta.tags.<name> = true`, and `name` appended to
/// the `meta.tags.path` list, so a test sees which nodes a request passed and in what order.
pub fn tag(msg: &mut Value, name: &str) {
    if !msg.is_object() {
        *msg = json!({ "data": msg.take() });
    }
    let Some(obj) = msg.as_object_mut() else {
        return;
    };
    let meta = obj.entry("meta").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    let tags = meta.entry("tags").or_insert_with(|| json!({}));
    if !tags.is_object() {
        *tags = json!({});
    }
    let Some(tags) = tags.as_object_mut() else {
        return;
    };
    tags.insert(name.to_owned(), Value::Bool(true));
    let path = tags.entry("path").or_insert_with(|| json!([]));
    if !path.is_array() {
        *path = json!([]);
    }
    if let Some(p) = path.as_array_mut() {
        p.push(json!(name));
    }
}

/// The messages of an aggregate request: a JSON array of SeldonMessages, or Seldon's
/// `SeldonMessageList` (`{"seldonMessages": [...]}`).
pub fn aggregate_inputs(body: Value) -> Result<Vec<Value>, PayloadError> {
    match body {
        Value::Array(items) => Ok(items),
        Value::Object(mut o) => match o.remove("seldonMessages") {
            Some(Value::Array(items)) => Ok(items),
            _ => Err(PayloadError::Shape(
                "a JSON array or {\"seldonMessages\": [...]}".into(),
            )),
        },
        _ => Err(PayloadError::Shape(
            "a JSON array or {\"seldonMessages\": [...]}".into(),
        )),
    }
}

/// The element-wise sum of the messages' `data.ndarray`, as one SeldonMessage whose
/// `meta.tags` merges the inputs' tags and whose `meta.tags.path` concatenates their paths.
pub fn aggregate(messages: &[Value]) -> Result<Value, PayloadError> {
    let mut sum: Option<Value> = None;
    let mut tags = Map::new();
    let mut path = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let nd = m
            .pointer("/data/ndarray")
            .ok_or_else(|| PayloadError::Shape(format!("data.ndarray in message {i}")))?;
        sum = Some(match sum {
            None => nd.clone(),
            Some(acc) => add_arrays(&acc, nd, "ndarray")?,
        });
        if let Some(t) = m.pointer("/meta/tags").and_then(Value::as_object) {
            for (k, v) in t {
                match (k.as_str(), v) {
                    ("path", Value::Array(p)) => path.extend(p.iter().cloned()),
                    _ => {
                        tags.insert(k.clone(), v.clone());
                    }
                }
            }
        }
    }
    let sum = sum.ok_or_else(|| PayloadError::Shape("at least one message".into()))?;
    if !path.is_empty() {
        tags.insert("path".into(), Value::Array(path));
    }
    Ok(json!({ "data": { "ndarray": sum }, "meta": { "tags": tags } }))
}

fn add_arrays(a: &Value, b: &Value, at: &str) -> Result<Value, PayloadError> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            Ok(json!(x.as_f64().unwrap_or(0.0) + y.as_f64().unwrap_or(0.0)))
        }
        (Value::Array(xs), Value::Array(ys)) if xs.len() == ys.len() => xs
            .iter()
            .zip(ys)
            .enumerate()
            .map(|(i, (x, y))| add_arrays(x, y, &format!("{at}[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        _ => Err(PayloadError::ShapeMismatch {
            path: at.to_owned(),
        }),
    }
}

/// The answer of `/route`: `{"data":{"ndarray":[[n]]}}`.
pub fn route_answer(n: i32) -> Value {
    json!({ "data": { "ndarray": [[n]] } })
}

/// Open Inference Protocol v2 infer: every input becomes an output of the same name, with
/// `n` added to the data of FP32/FP64 inputs (others unchanged). The node name goes to
/// `parameters.tags` (v2 has no `meta`).
pub fn v2_infer(model: &str, name: &str, request: &Value, n: f64) -> Result<Value, PayloadError> {
    let inputs = request
        .get("inputs")
        .and_then(Value::as_array)
        .ok_or_else(|| PayloadError::Shape("\"inputs\": [...]".into()))?;
    let outputs = inputs
        .iter()
        .map(|input| {
            let mut out = Map::new();
            for key in ["name", "shape", "datatype", "data"] {
                if let Some(v) = input.get(key) {
                    out.insert(key.into(), v.clone());
                }
            }
            if matches!(
                input.get("datatype").and_then(Value::as_str),
                Some("FP32" | "FP64")
            ) && let Some(data) = out.get_mut("data")
            {
                add_to_numbers(data, n);
            }
            Value::Object(out)
        })
        .collect::<Vec<_>>();
    let mut resp = json!({
        "model_name": model,
        "outputs": outputs,
        "parameters": { "tags": { name: true } },
    });
    if let Some(id) = request.get("id") {
        resp["id"] = id.clone();
    }
    Ok(resp)
}

/// A Seldon v1 error body (`status.code`, `info`, `reason`, `status: FAILURE`).
pub fn seldon_error(code: u16, info: &str, reason: &str) -> Value {
    json!({ "status": { "code": code, "info": info, "reason": reason, "status": "FAILURE" } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_touches_ndarray_and_tensor_values_only() {
        let mut m =
            json!({"data": {"names": ["a"], "ndarray": [[1, 2.5], [3, 4]]}, "meta": {"puid": "x"}});
        add_to_message(&mut m, 10.0);
        assert_eq!(
            m,
            json!({"data": {"names": ["a"], "ndarray": [[11.0, 12.5], [13.0, 14.0]]}, "meta": {"puid": "x"}})
        );
        let mut t = json!({"data": {"tensor": {"shape": [2], "values": [1, 2]}}});
        add_to_message(&mut t, 1.0);
        assert_eq!(t["data"]["tensor"]["values"], json!([2.0, 3.0]));
    }

    #[test]
    fn tag_merges_tags_and_appends_to_path() {
        let mut m =
            json!({"data": {"ndarray": [1]}, "meta": {"tags": {"user": "kept", "path": ["a"]}}});
        tag(&mut m, "b");
        assert_eq!(
            m["meta"]["tags"],
            json!({"user": "kept", "b": true, "path": ["a", "b"]})
        );
        let mut bare = json!([1, 2]);
        tag(&mut bare, "n");
        assert_eq!(
            bare,
            json!({"data": [1, 2], "meta": {"tags": {"n": true, "path": ["n"]}}})
        );
    }

    #[test]
    fn aggregate_sums_elementwise_and_merges_paths() {
        let msgs = aggregate_inputs(json!({"seldonMessages": [
            {"data": {"ndarray": [[1, 2]]}, "meta": {"tags": {"a": true, "path": ["a"]}}},
            {"data": {"ndarray": [[10, 20]]}, "meta": {"tags": {"b": true, "path": ["b"]}}},
        ]}))
        .unwrap();
        let out = aggregate(&msgs).unwrap();
        assert_eq!(out["data"]["ndarray"], json!([[11.0, 22.0]]));
        assert_eq!(
            out["meta"]["tags"],
            json!({"a": true, "b": true, "path": ["a", "b"]})
        );
    }

    #[test]
    fn aggregate_rejects_mismatched_shapes_and_bad_inputs() {
        let msgs = vec![
            json!({"data": {"ndarray": [[1, 2]]}}),
            json!({"data": {"ndarray": [[1]]}}),
        ];
        assert_eq!(
            aggregate(&msgs),
            Err(PayloadError::ShapeMismatch {
                path: "ndarray[0]".into()
            })
        );
        assert!(matches!(aggregate(&[]), Err(PayloadError::Shape(_))));
        assert!(matches!(
            aggregate(&[json!({"data": {}})]),
            Err(PayloadError::Shape(_))
        ));
        assert!(aggregate_inputs(json!({"x": 1})).is_err());
        assert!(matches!(parse(b"{nope"), Err(PayloadError::NotJson(_))));
    }

    #[test]
    fn v2_infer_adds_to_float_inputs_only() {
        let req = json!({"id": "r1", "inputs": [
            {"name": "x", "shape": [2], "datatype": "FP32", "data": [1.0, 2.0]},
            {"name": "s", "shape": [1], "datatype": "BYTES", "data": ["a"]},
        ]});
        let out = v2_infer("m", "node", &req, 0.5).unwrap();
        assert_eq!(out["id"], "r1");
        assert_eq!(out["model_name"], "m");
        assert_eq!(
            out["outputs"][0],
            json!({"name": "x", "shape": [2], "datatype": "FP32", "data": [1.5, 2.5]})
        );
        assert_eq!(out["outputs"][1]["data"], json!(["a"]));
        assert_eq!(out["parameters"]["tags"], json!({"node": true}));
        assert!(v2_infer("m", "node", &json!({}), 1.0).is_err());
    }
}
