//! serde helpers for the protobuf JSON mapping: base64 `bytes`, 64-bit integers as strings,
//! enums by name (or number when reading).

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);

/// A JSON number as a 32-bit float, refusing one beyond `f32::MAX` instead of reading it as
/// infinity (which JSON cannot carry back: serde_json writes it as `null`). Found by fuzzing
/// (fuzz/ protocol_ops: a `reward` of 1e39 re-serialized as `"reward":null`).
pub(crate) fn f32_from_f64(value: f64) -> Result<f32, String> {
    let narrowed = value as f32;
    if narrowed.is_finite() {
        Ok(narrowed)
    } else {
        Err(format!("{value:e} is out of range for a 32-bit float"))
    }
}

/// `f32` fields (`deserialize_with`): see [`f32_from_f64`].
pub(crate) fn finite_f32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    let value = <f64 as serde::Deserialize>::deserialize(d)?;
    f32_from_f64(value).map_err(serde::de::Error::custom)
}

/// `Vec<f32>` fields (`deserialize_with`): see [`f32_from_f64`].
pub(crate) fn finite_f32_vec<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
    let values = <Vec<f64> as serde::Deserialize>::deserialize(d)?;
    values
        .into_iter()
        .map(f32_from_f64)
        .collect::<Result<_, _>>()
        .map_err(serde::de::Error::custom)
}

/// Encodes as standard padded base64, as protobuf JSON writers do.
pub(crate) fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes standard or URL-safe base64, padded or not (protobuf JSON readers accept all four).
pub(crate) fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    STANDARD
        .decode(text)
        .or_else(|e| URL_SAFE.decode(text).map_err(|_| e))
}

/// `bytes` fields: `Vec<u8>` ⇄ base64 string.
pub(crate) mod bytes {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(crate) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::encode_base64(v))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        super::decode_base64(&text).map_err(|e| D::Error::custom(format!("invalid base64: {e}")))
    }
}

/// Optional `bytes` fields.
pub(crate) mod opt_bytes {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    #[allow(clippy::ref_option)] // serde's `with` passes `&Option<T>`
    pub(crate) fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => super::bytes::serialize(v, s),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| {
                super::decode_base64(&t)
                    .map_err(|e| D::Error::custom(format!("invalid base64: {e}")))
            })
            .transpose()
    }
}

/// `repeated bytes` fields.
pub(crate) mod bytes_vec {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(crate) fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|b| super::encode_base64(b)))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|t| {
                super::decode_base64(t)
                    .map_err(|e| D::Error::custom(format!("invalid base64: {e}")))
            })
            .collect()
    }
}

/// A 64-bit integer written as a JSON string or number.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Int64Repr {
    Number(i64),
    Text(String),
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Uint64Repr {
    Number(u64),
    Text(String),
}

/// `int64` fields: written as strings (protobuf JSON), read from strings or numbers.
pub(crate) mod int64 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(crate) fn serialize<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        match super::Int64Repr::deserialize(d)? {
            super::Int64Repr::Number(n) => Ok(n),
            super::Int64Repr::Text(t) => t
                .parse()
                .map_err(|_| D::Error::custom(format!("`{t}` is not an int64"))),
        }
    }
}

/// `repeated int64` fields.
pub(crate) mod int64_vec {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(crate) fn serialize<S: Serializer>(v: &[i64], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(ToString::to_string))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<i64>, D::Error> {
        Vec::<super::Int64Repr>::deserialize(d)?
            .into_iter()
            .map(|r| match r {
                super::Int64Repr::Number(n) => Ok(n),
                super::Int64Repr::Text(t) => t
                    .parse()
                    .map_err(|_| D::Error::custom(format!("`{t}` is not an int64"))),
            })
            .collect()
    }
}

/// `repeated uint64` fields.
pub(crate) mod uint64_vec {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(crate) fn serialize<S: Serializer>(v: &[u64], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(ToString::to_string))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
        Vec::<super::Uint64Repr>::deserialize(d)?
            .into_iter()
            .map(|r| match r {
                super::Uint64Repr::Number(n) => Ok(n),
                super::Uint64Repr::Text(t) => t
                    .parse()
                    .map_err(|_| D::Error::custom(format!("`{t}` is not a uint64"))),
            })
            .collect()
    }
}

/// A protobuf enum in JSON: written by name, read by name or number. Mark the zero value
/// `#[default]`.
macro_rules! proto_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $number:literal => $json:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant = $number, )+
        }

        impl $name {
            /// Every value, in protobuf number order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The protobuf JSON name.
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $json,)+ }
            }

            /// The protobuf enum number.
            pub const fn number(self) -> i32 {
                self as i32
            }

            /// Looks a value up by its protobuf JSON name.
            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == name)
            }

            /// Looks a value up by its protobuf number.
            pub fn from_number(number: i64) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| i64::from(v.number()) == number)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                use ::serde::de::Error as _;
                #[derive(::serde::Deserialize)]
                #[serde(untagged)]
                enum Repr {
                    Number(i64),
                    Name(String),
                }
                match Repr::deserialize(d)? {
                    Repr::Number(n) => Self::from_number(n).ok_or_else(|| {
                        D::Error::custom(format!("{n} is not a {} number", stringify!($name)))
                    }),
                    Repr::Name(n) => Self::from_name(&n).ok_or_else(|| {
                        D::Error::custom(format!("`{n}` is not a {} name", stringify!($name)))
                    }),
                }
            }
        }
    };
}
pub(crate) use proto_enum;
