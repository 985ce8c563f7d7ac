//! The span model: what the filter records about the graph request and each node call.

/// A span's role, as OTLP names it (only the two the filter makes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// The graph request, as the filter served it.
    Server,
    /// One call from the filter to a node.
    Client,
}

/// An attribute value (OTLP `AnyValue`: string, int or bool).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrValue {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> Self {
        AttrValue::Str(s.to_string())
    }
}

impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        AttrValue::Str(s)
    }
}

impl From<i64> for AttrValue {
    fn from(n: i64) -> Self {
        AttrValue::Int(n)
    }
}

impl From<bool> for AttrValue {
    fn from(b: bool) -> Self {
        AttrValue::Bool(b)
    }
}

/// A span's status (OTLP `Status`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Status {
    #[default]
    Unset,
    Ok,
    /// Failed, with what went wrong.
    Error(String),
}

/// One finished span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// `None` for a trace's root span.
    pub parent_span_id: Option<[u8; 8]>,
    pub name: String,
    pub kind: SpanKind,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    /// Keys are the filter's own constants (semantic-convention or `seldon.*` names).
    pub attributes: Vec<(&'static str, AttrValue)>,
    pub status: Status,
}

impl Span {
    /// The value of attribute `key`.
    pub fn attr(&self, key: &str) -> Option<&AttrValue> {
        self.attributes
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// Adds (or replaces) attribute `key`.
    pub fn set(&mut self, key: &'static str, value: impl Into<AttrValue>) {
        let value = value.into();
        match self.attributes.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.attributes.push((key, value)),
        }
    }
}

/// A trace id from 128 random bits; never the invalid all-zero id.
pub fn trace_id_from(bits: u128) -> [u8; 16] {
    let bits = if bits == 0 { 1 } else { bits };
    bits.to_be_bytes()
}

/// A span id from the low 64 of 128 random bits (the high half when the low one is zero);
/// never the invalid all-zero id.
pub fn span_id_from(bits: u128) -> [u8; 8] {
    let low = bits as u64;
    let id = if low != 0 {
        low
    } else if (bits >> 64) as u64 != 0 {
        (bits >> 64) as u64
    } else {
        1
    };
    id.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_never_zero() {
        assert_eq!(trace_id_from(0), 1u128.to_be_bytes());
        assert_eq!(span_id_from(0), 1u64.to_be_bytes());
        assert_eq!(span_id_from(7u128 << 64), 7u64.to_be_bytes());
        assert_eq!(span_id_from(u128::MAX), u64::MAX.to_be_bytes());
        assert_eq!(trace_id_from(0xab), 0xabu128.to_be_bytes());
    }

    #[test]
    fn set_replaces_and_attr_reads() {
        let mut s = Span {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent_span_id: None,
            name: "x".into(),
            kind: SpanKind::Server,
            start_unix_nanos: 1,
            end_unix_nanos: 2,
            attributes: Vec::new(),
            status: Status::Unset,
        };
        assert_eq!(s.attr("a"), None);
        s.set("a", 1i64);
        s.set("a", "two");
        s.set("b", true);
        assert_eq!(s.attr("a"), Some(&AttrValue::Str("two".into())));
        assert_eq!(s.attr("b"), Some(&AttrValue::Bool(true)));
        assert_eq!(s.attributes.len(), 2);
    }
}
