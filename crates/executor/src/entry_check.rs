//! The entry's strict check of a client's JSON body (issue 11 item 6).
//!
//! `seldon_protocol`'s checks parse into a `RawValue`, which skips values without decoding
//! them: a lone surrogate escape (`"\ud800"`), a number out of `f64`'s range (`1e400`) and
//! nesting deeper than serde_json's limit of 128 passed the entry, and the first node's JSON
//! decoder refused them — a 400 naming the node for the client's malformed body. Walking the
//! body with `deserialize_any` decodes every string and number as a node would, keeping
//! nothing (no allocation beyond serde_json's scratch buffer for escaped strings).

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// What the top level of a valid JSON body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Object,
    Array,
    String,
    Number,
    Boolean,
    Null,
}

impl Kind {
    /// As `seldon_protocol` words it (`found an array`).
    pub fn described(self) -> &'static str {
        match self {
            Kind::Object => "an object",
            Kind::Array => "an array",
            Kind::String => "a string",
            Kind::Number => "a number",
            Kind::Boolean => "a boolean",
            Kind::Null => "null",
        }
    }
}

/// Checks that `body` is one valid JSON value, decoded as strictly as `serde_json::Value`
/// would be, and says what kind it is.
pub fn json_kind(body: &[u8]) -> Result<Kind, serde_json::Error> {
    serde_json::from_slice::<Walk>(body).map(|w| w.0)
}

/// Checks a feedback's `reward` is a number when it is there (the filter forwards feedback to
/// the nodes, whose decoders would refuse it, each answering for the client's mistake).
pub fn feedback_reward(body: &[u8]) -> Result<(), serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Reward {
        #[serde(default)]
        #[allow(dead_code)] // read only to be checked
        reward: Option<f64>,
    }
    serde_json::from_slice::<Reward>(body).map(|_| ())
}

/// A value walked and dropped; `.0` is its kind.
struct Walk(Kind);

impl<'de> Deserialize<'de> for Walk {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(WalkVisitor)
    }
}

struct WalkVisitor;

impl<'de> Visitor<'de> for WalkVisitor {
    type Value = Walk;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Walk, E> {
        Ok(Walk(Kind::Boolean))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Walk, E> {
        Ok(Walk(Kind::Number))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Walk, E> {
        Ok(Walk(Kind::Number))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Walk, E> {
        Ok(Walk(Kind::Number))
    }
    fn visit_str<E>(self, _: &str) -> Result<Walk, E> {
        Ok(Walk(Kind::String))
    }
    fn visit_unit<E>(self) -> Result<Walk, E> {
        Ok(Walk(Kind::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Walk, A::Error> {
        while seq.next_element::<Walk>()?.is_some() {}
        Ok(Walk(Kind::Array))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Walk, A::Error> {
        while map.next_entry::<Walk, Walk>()?.is_some() {}
        Ok(Walk(Kind::Object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_of_valid_bodies() {
        assert_eq!(
            json_kind(br#"{"a":[1,-2,3.5,"x\n",true,null]}"#).unwrap(),
            Kind::Object
        );
        assert_eq!(json_kind(b" [1] ").unwrap(), Kind::Array);
        assert_eq!(json_kind(b"null").unwrap(), Kind::Null);
        assert_eq!(json_kind(b"1e308").unwrap(), Kind::Number);
    }

    /// What a `RawValue` lets through and a node's decoder refuses.
    #[test]
    fn refuses_what_a_node_would() {
        let err = |b: &[u8]| json_kind(b).unwrap_err().to_string();
        assert!(err(br#"{"a":"\ud800"}"#).contains("hex escape"));
        assert!(err(br#"{"a":1e400}"#).contains("number out of range"));
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        assert!(err(deep.as_bytes()).contains("recursion limit exceeded"));
        assert!(err(b"{\"a\":\"\xff\"}").contains("invalid unicode"));
        assert!(err(b"{} {}").contains("trailing characters"));
        assert!(err(b"").contains("EOF"));
    }

    #[test]
    fn a_reward_must_be_a_number() {
        assert!(feedback_reward(br#"{"reward":1.5,"request":{}}"#).is_ok());
        assert!(feedback_reward(b"{}").is_ok());
        let e = feedback_reward(br#"{"reward":"high"}"#).unwrap_err();
        assert!(e.to_string().contains("expected f64"), "{e}");
    }
}
