//! Borrowed, order-preserving views of JSON objects, so payload operations can splice the one
//! value they change and copy every other byte of the body verbatim.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::ProtocolError;

/// Parses `body` as exactly one JSON value (surrounding whitespace allowed) without decoding it.
pub(crate) fn parse_raw<'a>(
    body: &'a [u8],
    context: &'static str,
) -> Result<&'a RawValue, ProtocolError> {
    serde_json::from_slice(body).map_err(ProtocolError::json(context))
}

/// The JSON type of a raw value, for error messages.
pub(crate) fn kind(raw: &RawValue) -> &'static str {
    match raw.get().as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

pub(crate) fn is_null(raw: &RawValue) -> bool {
    raw.get() == "null"
}

/// Byte range of `inner` inside `outer`; `inner` must be borrowed from `outer`.
pub(crate) fn span(outer: &[u8], inner: &RawValue) -> Range<usize> {
    // Both are slices of the same allocation (serde_json borrows raw values from the input),
    // so the address difference is the offset. No unsafe needed for the arithmetic.
    let start = (inner.get().as_ptr() as usize).saturating_sub(outer.as_ptr() as usize);
    start..start + inner.get().len()
}

/// A JSON object's members in document order, each value left undecoded.
#[derive(Debug)]
pub(crate) struct RawObject<'a> {
    pub(crate) entries: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> RawObject<'a> {
    /// Views `raw` as an object; anything else is a [`ProtocolError::NotAnObject`].
    pub(crate) fn parse(raw: &'a RawValue, context: &'static str) -> Result<Self, ProtocolError> {
        if !raw.get().starts_with('{') {
            return Err(ProtocolError::NotAnObject {
                context,
                found: kind(raw),
            });
        }
        let Entries(entries) =
            serde_json::from_str(raw.get()).map_err(ProtocolError::json(context))?;
        Ok(Self { entries })
    }

    /// The value of member `key`; with duplicate keys the last one wins, as in serde.
    pub(crate) fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| *v)
    }

    /// Like [`get`](Self::get), treating an explicit `null` as absent.
    pub(crate) fn get_non_null(&self, key: &str) -> Option<&'a RawValue> {
        self.get(key).filter(|v| !is_null(v))
    }
}

struct Entries<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

#[derive(Deserialize)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some((Key(k), v)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    entries.push((k, v));
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// Writes `s` as a JSON string literal (quotes included), escaping what JSON requires.
pub(crate) fn write_json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{08}' => out.extend_from_slice(b"\\b"),
            '\u{0c}' => out.extend_from_slice(b"\\f"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// Inserts member `"key":value` just before the closing brace of `object`, which lives at
/// `object_span` of `body`, and returns the new body.
pub(crate) fn insert_member(
    body: &[u8],
    object: &RawObject<'_>,
    object_span: Range<usize>,
    key: &str,
    value: &[u8],
) -> Vec<u8> {
    // The raw text of an object always ends with its `}`.
    let at = object_span.end.saturating_sub(1);
    let mut member = Vec::with_capacity(key.len() + value.len() + 4);
    if !object.entries.is_empty() {
        member.push(b',');
    }
    write_json_string(&mut member, key);
    member.push(b':');
    member.extend_from_slice(value);
    splice(body, at..at, &member)
}

/// `body` with `range` replaced by `replacement`.
pub(crate) fn splice(body: &[u8], range: Range<usize>, replacement: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() - range.len() + replacement.len());
    out.extend_from_slice(&body[..range.start]);
    out.extend_from_slice(replacement);
    out.extend_from_slice(&body[range.end..]);
    out
}
