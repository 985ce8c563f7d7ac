//! A small UBJSON (Draft 12) reader producing `serde_json::Value`, enough for XGBoost's `.ubj`.
//!
//! XGBoost writes objects with `L`-length keys and typed, counted arrays (`[$d#L…` for
//! `f32`, `[$l#…` for `i32`, `[$U#…` for `u8`). All numbers are big-endian. Floats become
//! JSON numbers (exact: `f32 → f64` is lossless); non-finite floats become `null`, which
//! the schema layer rejects where a number is required.

use serde_json::{Map, Number, Value};

/// Why a UBJSON document could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("invalid UBJSON at byte {offset}: {reason}")]
pub struct UbjsonError {
    /// Byte offset into the input where decoding failed.
    pub offset: usize,
    /// What was wrong there.
    pub reason: String,
}

/// Nesting deeper than this is rejected instead of risking the stack (XGBoost uses < 10).
const MAX_DEPTH: usize = 64;

/// Decode one UBJSON value that must span the whole input.
pub(crate) fn from_slice(bytes: &[u8]) -> Result<Value, UbjsonError> {
    let mut reader = Reader { bytes, pos: 0 };
    let value = reader.value(0)?;
    if reader.pos != bytes.len() {
        return Err(reader.error("trailing bytes after the document"));
    }
    Ok(value)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn error(&self, reason: impl Into<String>) -> UbjsonError {
        UbjsonError {
            offset: self.pos,
            reason: reason.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], UbjsonError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len());
        match end {
            Some(end) => {
                let out = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(out)
            }
            None => Err(self.error(format!("unexpected end of input (wanted {n} bytes)"))),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], UbjsonError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn marker(&mut self) -> Result<u8, UbjsonError> {
        loop {
            let [m] = self.array::<1>()?;
            if m != b'N' {
                return Ok(m); // `N` is a no-op padding marker
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// An integer introduced by `marker` (used for lengths and counts).
    fn int(&mut self, marker: u8) -> Result<i64, UbjsonError> {
        Ok(match marker {
            b'i' => i64::from(i8::from_be_bytes(self.array()?)),
            b'U' => i64::from(self.array::<1>()?[0]),
            b'I' => i64::from(i16::from_be_bytes(self.array()?)),
            b'l' => i64::from(i32::from_be_bytes(self.array()?)),
            b'L' => i64::from_be_bytes(self.array()?),
            other => {
                return Err(self.error(format!(
                    "expected an integer marker, got {:?}",
                    other as char
                )));
            }
        })
    }

    fn length(&mut self) -> Result<usize, UbjsonError> {
        let marker = self.marker()?;
        let n = self.int(marker)?;
        let n = usize::try_from(n).map_err(|_| self.error(format!("negative length {n}")))?;
        // Every element takes at least one byte: cheap guard against absurd allocations.
        if n > self.bytes.len() - self.pos {
            return Err(self.error(format!("length {n} exceeds the remaining input")));
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<String, UbjsonError> {
        let n = self.length()?;
        let start = self.pos;
        let raw = self.take(n)?.to_vec();
        String::from_utf8(raw).map_err(|_| UbjsonError {
            offset: start,
            reason: "string is not UTF-8".into(),
        })
    }

    fn value(&mut self, depth: usize) -> Result<Value, UbjsonError> {
        let marker = self.marker()?;
        self.value_of(marker, depth)
    }

    fn value_of(&mut self, marker: u8, depth: usize) -> Result<Value, UbjsonError> {
        Ok(match marker {
            b'Z' => Value::Null,
            b'T' => Value::Bool(true),
            b'F' => Value::Bool(false),
            b'i' | b'U' | b'I' | b'l' | b'L' => Value::Number(self.int(marker)?.into()),
            b'd' => float(f64::from(f32::from_be_bytes(self.array()?))),
            b'D' => float(f64::from_be_bytes(self.array()?)),
            b'C' => Value::String(char::from(self.array::<1>()?[0]).to_string()),
            b'S' => Value::String(self.string()?),
            b'H' => {
                let text = self.string()?;
                let n: f64 = text
                    .parse()
                    .map_err(|_| self.error("bad high-precision number"))?;
                float(n)
            }
            b'[' => self.container(depth, false)?,
            b'{' => self.container(depth, true)?,
            other => return Err(self.error(format!("unknown marker {:?}", other as char))),
        })
    }

    fn container(&mut self, depth: usize, object: bool) -> Result<Value, UbjsonError> {
        if depth >= MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        let mut elem_type = None;
        let mut count = None;
        if self.peek() == Some(b'$') {
            self.pos += 1;
            elem_type = Some(self.marker()?);
            if self.peek() != Some(b'#') {
                return Err(self.error("typed container without a count"));
            }
        }
        if self.peek() == Some(b'#') {
            self.pos += 1;
            count = Some(self.length()?);
        }
        let mut items = Vec::new();
        let mut map = Map::new();
        let mut i = 0usize;
        loop {
            match count {
                Some(n) if i == n => break,
                None if self.peek() == Some(if object { b'}' } else { b']' }) => {
                    self.pos += 1;
                    break;
                }
                _ => {}
            }
            let key = if object { Some(self.string()?) } else { None };
            let marker = match elem_type {
                Some(m) => m,
                None => self.marker()?,
            };
            let value = self.value_of(marker, depth + 1)?;
            match key {
                Some(key) => {
                    map.insert(key, value);
                }
                None => items.push(value),
            }
            i += 1;
        }
        Ok(if object {
            Value::Object(map)
        } else {
            Value::Array(items)
        })
    }
}

fn float(x: f64) -> Value {
    Number::from_f64(x).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_objects_strings_and_typed_arrays() {
        let mut doc = vec![b'{', b'i', 1, b'a', b'[', b'$', b'd', b'#', b'i', 2];
        doc.extend(1.5f32.to_be_bytes());
        doc.extend((-2.0f32).to_be_bytes());
        doc.extend([b'i', 1, b'b', b'S', b'U', 2, b'h', b'i']);
        doc.extend([
            b'i', 1, b'c', b'[', b'l', 0, 0, 1, 0, b'T', b'Z', b']', b'}',
        ]);
        let value = from_slice(&doc).unwrap();
        assert_eq!(
            value,
            json!({"a": [1.5, -2.0], "b": "hi", "c": [256, true, null]})
        );
    }

    #[test]
    fn rejects_truncated_input_with_offset() {
        let err = from_slice(&[b'{', b'i', 3, b'a']).unwrap_err();
        assert_eq!(err.offset, 3);
        assert!(err.reason.contains("exceeds the remaining input"), "{err}");
    }

    #[test]
    fn rejects_unknown_marker_trailing_bytes_and_deep_nesting() {
        assert!(
            from_slice(b"Q")
                .unwrap_err()
                .reason
                .contains("unknown marker")
        );
        assert!(from_slice(b"TT").unwrap_err().reason.contains("trailing"));
        let deep = vec![b'['; 100];
        assert!(from_slice(&deep).unwrap_err().reason.contains("too deep"));
    }
}
