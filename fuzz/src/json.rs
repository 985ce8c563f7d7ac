//! JSON comparisons the properties share.

use serde_json::Value;

/// A full decode, when one exists: `serde_json::Value` refuses numbers beyond f64 (`1e999`),
/// which JSON allows and the byte-level ops pass through.
pub(crate) fn value(bytes: &[u8]) -> Option<Value> {
    serde_json::from_slice(bytes).ok()
}

/// The same JSON, except that doubles may differ by one ULP: serde_json's default float
/// parser is not correctly rounded (0.9184467440737095 reads as ...096), a known finding
/// (docs/fuzzing.md) until its `float_roundtrip` feature is on.
pub(crate) fn same_json(a: &[u8], b: &[u8]) -> bool {
    fn eq(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
                match (x.as_f64(), y.as_f64()) {
                    (Some(x), Some(y)) => x == y || x.to_bits().abs_diff(y.to_bits()) <= 1,
                    _ => false,
                }
            }
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(x, y)| eq(x, y))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| eq(v, w)))
            }
            _ => a == b,
        }
    }
    match (value(a), value(b)) {
        (Some(x), Some(y)) => eq(&x, &y),
        _ => a == b,
    }
}
