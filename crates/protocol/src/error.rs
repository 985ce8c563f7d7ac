//! The one error type of this crate.

/// What went wrong reading or writing a Seldon v1 / Open Inference Protocol v2 payload.
///
/// Messages name the payload (`context`) and the part that was wrong, because they end up in
/// the `status.info` / `error` body a client sees.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The bytes are not (the expected) JSON.
    #[error("{context} is not valid JSON: {source}")]
    Json {
        context: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// A combiner input (one child's output) is not valid JSON.
    #[error("aggregate part {index} is not valid JSON: {source}")]
    AggregatePart {
        index: usize,
        #[source]
        source: serde_json::Error,
    },
    /// The JSON is well formed but does not have the protocol's shape (serde's data errors).
    #[error("{context} is invalid: {reason}")]
    Invalid {
        context: &'static str,
        reason: String,
    },
    /// A value that must be a JSON object is something else.
    #[error("{context} must be a JSON object, found {found}")]
    NotAnObject {
        context: &'static str,
        found: &'static str,
    },
    /// A router reply carried no usable route.
    #[error("router reply: {reason}")]
    RouteReply { reason: String },
    /// A field is present but has the wrong shape or type.
    #[error("{context}: field `{field}` {reason}")]
    Field {
        context: &'static str,
        field: &'static str,
        reason: String,
    },
    /// A required field is absent.
    #[error("{context}: missing field `{field}`")]
    MissingField {
        context: &'static str,
        field: &'static str,
    },
    /// A message sets more than one member of a protobuf `oneof`.
    #[error("{context}: only one of {members} may be set, found {found}")]
    OneOf {
        context: &'static str,
        members: &'static str,
        found: String,
    },
    /// `binData` or another base64 field does not decode.
    #[error("{context}: invalid base64: {source}")]
    Base64 {
        context: &'static str,
        #[source]
        source: base64::DecodeError,
    },
    /// A v2 tensor's data does not match its datatype or shape.
    #[error("tensor `{name}`: {reason}")]
    Tensor { name: String, reason: String },
    /// A binary-tensor-extension body is inconsistent with its JSON header.
    #[error("binary tensor body: {reason}")]
    BinaryBody { reason: String },
    /// Graph metadata was asked for a node whose model metadata is missing.
    #[error("graph metadata: no model metadata for node `{node}`")]
    MissingNodeMetadata { node: String },
    /// A payload has no form in the other protocol (`bridge`): e.g. `jsonData` into v2.
    #[error("cannot convert {direction}: {reason}")]
    Bridge {
        /// e.g. `"Seldon v1 request → v2"`.
        direction: &'static str,
        reason: String,
    },
}

impl ProtocolError {
    pub(crate) fn json(context: &'static str) -> impl FnOnce(serde_json::Error) -> Self {
        move |source| Self::Json { context, source }
    }
}
