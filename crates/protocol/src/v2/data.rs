//! Typed tensor contents: JSON (flattened row-major) and little-endian binary forms.

use serde::Serialize;
use serde::ser::Error as _;
use serde_json::Value;

use super::Datatype;

/// A tensor's elements, flattened row-major, typed by datatype.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    Bool(Vec<bool>),
    Uint8(Vec<u8>),
    Uint16(Vec<u16>),
    Uint32(Vec<u32>),
    Uint64(Vec<u64>),
    Int8(Vec<i8>),
    Int16(Vec<i16>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    /// IEEE 754 half-precision bit patterns. FP16 has no JSON form: binary extension only.
    Fp16(Vec<u16>),
    Fp32(Vec<f32>),
    Fp64(Vec<f64>),
    /// Each element's bytes; UTF-8 strings in JSON.
    Bytes(Vec<Vec<u8>>),
}

/// Applies `$body` to the vector inside any variant.
macro_rules! each_variant {
    ($value:expr, $v:ident => $body:expr) => {
        match $value {
            TensorData::Bool($v) => $body,
            TensorData::Uint8($v) => $body,
            TensorData::Uint16($v) => $body,
            TensorData::Uint32($v) => $body,
            TensorData::Uint64($v) => $body,
            TensorData::Int8($v) => $body,
            TensorData::Int16($v) => $body,
            TensorData::Int32($v) => $body,
            TensorData::Int64($v) => $body,
            TensorData::Fp16($v) => $body,
            TensorData::Fp32($v) => $body,
            TensorData::Fp64($v) => $body,
            TensorData::Bytes($v) => $body,
        }
    };
}

impl TensorData {
    /// The datatype these elements have.
    pub const fn datatype(&self) -> Datatype {
        match self {
            Self::Bool(_) => Datatype::Bool,
            Self::Uint8(_) => Datatype::Uint8,
            Self::Uint16(_) => Datatype::Uint16,
            Self::Uint32(_) => Datatype::Uint32,
            Self::Uint64(_) => Datatype::Uint64,
            Self::Int8(_) => Datatype::Int8,
            Self::Int16(_) => Datatype::Int16,
            Self::Int32(_) => Datatype::Int32,
            Self::Int64(_) => Datatype::Int64,
            Self::Fp16(_) => Datatype::Fp16,
            Self::Fp32(_) => Datatype::Fp32,
            Self::Fp64(_) => Datatype::Fp64,
            Self::Bytes(_) => Datatype::Bytes,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        each_variant!(self, v => v.len())
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decodes JSON `data` (a nested or flat array, or a single scalar) as `datatype`.
    pub fn from_json(datatype: Datatype, data: &Value) -> Result<Self, String> {
        let mut leaves = Vec::new();
        flatten(data, &mut leaves);
        let bad = |i: usize, v: &Value| format!("element {i} ({v}) is not a valid {datatype}");
        macro_rules! ints {
            ($variant:ident, $t:ty) => {
                Self::$variant(
                    leaves
                        .iter()
                        .enumerate()
                        .map(|(i, v)| {
                            int_value(v)
                                .and_then(|n| <$t>::try_from(n).ok())
                                .ok_or_else(|| bad(i, v))
                        })
                        .collect::<Result<_, _>>()?,
                )
            };
        }
        Ok(match datatype {
            Datatype::Bool => Self::Bool(
                leaves
                    .iter()
                    .enumerate()
                    .map(|(i, v)| match v {
                        Value::Bool(b) => Ok(*b),
                        Value::Number(n) if n.as_u64() == Some(0) => Ok(false),
                        Value::Number(n) if n.as_u64() == Some(1) => Ok(true),
                        _ => Err(bad(i, v)),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Datatype::Uint8 => ints!(Uint8, u8),
            Datatype::Uint16 => ints!(Uint16, u16),
            Datatype::Uint32 => ints!(Uint32, u32),
            Datatype::Uint64 => ints!(Uint64, u64),
            Datatype::Int8 => ints!(Int8, i8),
            Datatype::Int16 => ints!(Int16, i16),
            Datatype::Int32 => ints!(Int32, i32),
            Datatype::Int64 => ints!(Int64, i64),
            Datatype::Fp16 => {
                return Err(
                    "FP16 has no JSON representation; use the binary tensor extension".into(),
                );
            }
            // f64 → f32 rounds to nearest, which is what a JSON reader of FP32 must do; a value
            // beyond f32::MAX is refused, not read as infinity (found by fuzzing).
            Datatype::Fp32 => Self::Fp32(
                leaves
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        let f = v.as_f64().ok_or_else(|| bad(i, v))?;
                        crate::proto_json::f32_from_f64(f)
                            .map_err(|e| format!("FP32 element {i}: {e}"))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Datatype::Fp64 => Self::Fp64(
                leaves
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v.as_f64().ok_or_else(|| bad(i, v)))
                    .collect::<Result<_, _>>()?,
            ),
            Datatype::Bytes => Self::Bytes(
                leaves
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        v.as_str()
                            .map(|s| s.as_bytes().to_vec())
                            .ok_or_else(|| bad(i, v))
                    })
                    .collect::<Result<_, _>>()?,
            ),
        })
    }

    /// The binary-extension / gRPC raw form: little-endian, row-major; BOOL one byte;
    /// each BYTES element a 4-byte little-endian length then its bytes.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        match self {
            Self::Bool(v) => v.iter().map(|b| u8::from(*b)).collect(),
            Self::Uint8(v) => v.clone(),
            Self::Uint16(v) | Self::Fp16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Self::Uint32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Self::Uint64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Self::Int8(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Self::Int16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Self::Int32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Self::Int64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Self::Fp32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Self::Fp64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Self::Bytes(v) => {
                let mut out = Vec::with_capacity(v.iter().map(|e| e.len() + 4).sum());
                for element in v {
                    // Elements are bounded by 2^32 - 1 bytes by the protocol.
                    let len = u32::try_from(element.len()).unwrap_or(u32::MAX);
                    out.extend_from_slice(&len.to_le_bytes());
                    out.extend_from_slice(element);
                }
                out
            }
        }
    }

    /// Decodes the little-endian binary form of `datatype` (see [`to_le_bytes`](Self::to_le_bytes)).
    pub fn from_le_bytes(datatype: Datatype, bytes: &[u8]) -> Result<Self, String> {
        macro_rules! fixed {
            ($variant:ident, $t:ty) => {{
                const N: usize = std::mem::size_of::<$t>();
                if bytes.len() % N != 0 {
                    return Err(format!(
                        "{} bytes is not a whole number of {datatype} elements ({N} bytes each)",
                        bytes.len()
                    ));
                }
                Self::$variant(
                    bytes
                        .chunks_exact(N)
                        .map(|c| {
                            let mut a = [0u8; N];
                            a.copy_from_slice(c);
                            <$t>::from_le_bytes(a)
                        })
                        .collect(),
                )
            }};
        }
        Ok(match datatype {
            Datatype::Bool => Self::Bool(
                bytes
                    .iter()
                    .enumerate()
                    .map(|(i, b)| match b {
                        0 => Ok(false),
                        1 => Ok(true),
                        _ => Err(format!("BOOL element {i} is byte {b}, not 0 or 1")),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Datatype::Uint8 => Self::Uint8(bytes.to_vec()),
            Datatype::Uint16 => fixed!(Uint16, u16),
            Datatype::Uint32 => fixed!(Uint32, u32),
            Datatype::Uint64 => fixed!(Uint64, u64),
            Datatype::Int8 => Self::Int8(bytes.iter().map(|b| i8::from_le_bytes([*b])).collect()),
            Datatype::Int16 => fixed!(Int16, i16),
            Datatype::Int32 => fixed!(Int32, i32),
            Datatype::Int64 => fixed!(Int64, i64),
            Datatype::Fp16 => fixed!(Fp16, u16),
            Datatype::Fp32 => fixed!(Fp32, f32),
            Datatype::Fp64 => fixed!(Fp64, f64),
            Datatype::Bytes => {
                let mut elements = Vec::new();
                let mut rest = bytes;
                while !rest.is_empty() {
                    let Some((len, tail)) = rest.split_first_chunk::<4>() else {
                        return Err(format!(
                            "BYTES element {} has a truncated 4-byte length prefix",
                            elements.len()
                        ));
                    };
                    let len = u32::from_le_bytes(*len) as usize;
                    if tail.len() < len {
                        return Err(format!(
                            "BYTES element {} claims {len} bytes, only {} left",
                            elements.len(),
                            tail.len()
                        ));
                    }
                    let (element, tail) = tail.split_at(len);
                    elements.push(element.to_vec());
                    rest = tail;
                }
                Self::Bytes(elements)
            }
        })
    }
}

fn flatten<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| flatten(v, out)),
        leaf => out.push(leaf),
    }
}

/// An integer JSON number as i128 (covers both i64 and u64); floats are rejected.
fn int_value(v: &Value) -> Option<i128> {
    let n = v.as_number()?;
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

impl Serialize for TensorData {
    /// Flat JSON array. FP16 and non-UTF-8 BYTES have no JSON form and fail.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Fp16(_) => Err(S::Error::custom(
                "FP16 has no JSON representation; use the binary tensor extension",
            )),
            Self::Bytes(v) => {
                let strings = v
                    .iter()
                    .enumerate()
                    .map(|(i, b)| {
                        std::str::from_utf8(b).map_err(|_| {
                            S::Error::custom(format!(
                                "BYTES element {i} is not UTF-8; use the binary tensor extension"
                            ))
                        })
                    })
                    .collect::<Result<Vec<&str>, _>>()?;
                s.collect_seq(strings)
            }
            other => each_variant!(other, v => s.collect_seq(v)),
        }
    }
}
