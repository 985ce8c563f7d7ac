//! Seldon prediction protocol v1 (REST JSON form of `seldon.protos`): [`SeldonMessage`],
//! [`Feedback`], [`SeldonMessageList`], model and graph metadata.
//!
//! Field names are exactly Seldon's JSON names (`strData`, `binData`, `requestPath`, ...).
//! These types are for code that must *decode* payloads (model servers, tests); the executor's
//! pass-through path uses the byte-level functions at the crate root instead.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ProtocolError;
use crate::proto_json::{self, proto_enum};

mod metadata;

pub use metadata::{
    GraphMetadata, GraphNode, MessageMetadata, ModelMetadata, NodeKind, graph_metadata,
};

/// The payload every Seldon v1 graph node receives and returns.
///
/// At most one of `data`, `bin_data`, `str_data`, `json_data`, `custom_data` is set (a
/// protobuf `oneof`); [`SeldonMessage::from_slice`] enforces it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeldonMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DefaultData>,
    /// Raw bytes, base64 in JSON.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "proto_json::opt_bytes"
    )]
    pub bin_data: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub str_data: Option<String>,
    /// Any JSON value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_data: Option<Value>,
    /// A `google.protobuf.Any` (`{"@type": ..., ...}`); gRPC-only in practice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<Value>,
}

impl SeldonMessage {
    /// Parses a REST body, rejecting more than one payload form.
    pub fn from_slice(body: &[u8]) -> Result<Self, ProtocolError> {
        let msg: Self =
            serde_json::from_slice(body).map_err(ProtocolError::json("SeldonMessage"))?;
        msg.check_oneof()?;
        Ok(msg)
    }

    /// Serializes to compact JSON.
    pub fn to_vec(&self) -> Result<Vec<u8>, ProtocolError> {
        serde_json::to_vec(self).map_err(ProtocolError::json("SeldonMessage"))
    }

    /// A failure message, as nodes and orchestrators return on errors.
    pub fn failure(code: i32, info: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            status: Some(Status {
                code,
                info: info.into(),
                reason: reason.into(),
                status: StatusFlag::Failure,
            }),
            ..Self::default()
        }
    }

    /// Checks the `data_oneof` rule: at most one payload form.
    pub fn check_oneof(&self) -> Result<(), ProtocolError> {
        let set: Vec<&str> = [
            ("data", self.data.is_some()),
            ("binData", self.bin_data.is_some()),
            ("strData", self.str_data.is_some()),
            ("jsonData", self.json_data.is_some()),
            ("customData", self.custom_data.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, present)| present.then_some(name))
        .collect();
        if set.len() > 1 {
            return Err(ProtocolError::OneOf {
                context: "SeldonMessage",
                members: "data, binData, strData, jsonData, customData",
                found: set.join(", "),
            });
        }
        if let Some(data) = &self.data {
            data.check_oneof()?;
        }
        Ok(())
    }
}

/// Numeric payload with optional column names; at most one of `tensor`, `ndarray`, `tftensor`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DefaultData {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensor: Option<Tensor>,
    /// A (nested) JSON list, e.g. `[[1, 2], [3, 4]]`; may hold strings and mixed values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ndarray: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tftensor: Option<TfTensor>,
}

impl DefaultData {
    fn check_oneof(&self) -> Result<(), ProtocolError> {
        let set: Vec<&str> = [
            ("tensor", self.tensor.is_some()),
            ("ndarray", self.ndarray.is_some()),
            ("tftensor", self.tftensor.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, present)| present.then_some(name))
        .collect();
        if set.len() > 1 {
            return Err(ProtocolError::OneOf {
                context: "SeldonMessage data",
                members: "tensor, ndarray, tftensor",
                found: set.join(", "),
            });
        }
        Ok(())
    }
}

/// Dense row-major tensor of doubles: `{"shape":[2,2],"values":[0,0,1,1]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tensor {
    #[serde(default)]
    pub shape: Vec<i32>,
    #[serde(default)]
    pub values: Vec<f64>,
}

/// Request/response metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub puid: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, Value>,
    /// Router decisions: node name → chosen child (-1 all children, -2 none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub routing: BTreeMap<String, i32>,
    /// Node name → image that served it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub request_path: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
}

/// A custom metric reported by a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub key: String,
    #[serde(rename = "type", default)]
    pub metric_type: MetricType,
    #[serde(default, deserialize_with = "proto_json::finite_f32")]
    pub value: f32,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

proto_enum! {
    /// `Metric.MetricType`.
    pub enum MetricType {
        #[default]
        Counter = 0 => "COUNTER",
        Gauge = 1 => "GAUGE",
        Timer = 2 => "TIMER",
    }
}

/// Outcome of a call; failures carry `code`, `info`, `reason`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    #[serde(default)]
    pub code: i32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub info: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default)]
    pub status: StatusFlag,
}

proto_enum! {
    /// `Status.StatusFlag`.
    pub enum StatusFlag {
        #[default]
        Success = 0 => "SUCCESS",
        Failure = 1 => "FAILURE",
    }
}

/// Reward feedback: `{"request":..,"response":..,"reward":1.0,"truth":..}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<SeldonMessage>,
    /// Carries `meta.routing`, which decides which children receive the feedback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<SeldonMessage>,
    #[serde(default, deserialize_with = "proto_json::finite_f32")]
    pub reward: f32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truth: Option<SeldonMessage>,
}

impl Feedback {
    /// Parses a REST feedback body.
    pub fn from_slice(body: &[u8]) -> Result<Self, ProtocolError> {
        let fb: Self = serde_json::from_slice(body).map_err(ProtocolError::json("Feedback"))?;
        for msg in [&fb.request, &fb.response, &fb.truth].into_iter().flatten() {
            msg.check_oneof()?;
        }
        Ok(fb)
    }
}

/// A combiner's input, one message per child.
///
/// Reads both the executor's bare array `[m1, m2]` and the protobuf form
/// `{"seldonMessages": [m1, m2]}`; writes the bare array, as the executor sends it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeldonMessageList {
    pub seldon_messages: Vec<SeldonMessage>,
}

impl SeldonMessageList {
    /// Parses an `/aggregate` body in either form.
    pub fn from_slice(body: &[u8]) -> Result<Self, ProtocolError> {
        let list: Self =
            serde_json::from_slice(body).map_err(ProtocolError::json("SeldonMessageList"))?;
        for msg in &list.seldon_messages {
            msg.check_oneof()?;
        }
        Ok(list)
    }
}

impl Serialize for SeldonMessageList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.seldon_messages.serialize(s)
    }
}

impl<'de> Deserialize<'de> for SeldonMessageList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Wrapped {
            #[serde(default)]
            seldon_messages: Vec<SeldonMessage>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Bare(Vec<SeldonMessage>),
            Wrapped(Wrapped),
        }
        match Repr::deserialize(d) {
            Ok(Repr::Bare(seldon_messages)) => Ok(Self { seldon_messages }),
            Ok(Repr::Wrapped(w)) => Ok(Self {
                seldon_messages: w.seldon_messages,
            }),
            Err(_) => Err(serde::de::Error::custom(
                "expected a JSON array of SeldonMessages or {\"seldonMessages\": [...]}",
            )),
        }
    }
}

/// A TensorFlow `TensorProto` in protobuf JSON form (`data.tftensor`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TfTensor {
    #[serde(default)]
    pub dtype: TfDataType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensor_shape: Option<TfTensorShape>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub version_number: i32,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "proto_json::bytes"
    )]
    pub tensor_content: Vec<u8>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub half_val: Vec<i32>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "proto_json::finite_f32_vec"
    )]
    pub float_val: Vec<f32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub double_val: Vec<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub int_val: Vec<i32>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "proto_json::bytes_vec"
    )]
    pub string_val: Vec<Vec<u8>>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "proto_json::finite_f32_vec"
    )]
    pub scomplex_val: Vec<f32>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "proto_json::int64_vec"
    )]
    pub int64_val: Vec<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bool_val: Vec<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dcomplex_val: Vec<f64>,
    /// `ResourceHandleProto`s, kept as JSON.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_handle_val: Vec<Value>,
    /// `VariantTensorDataProto`s, kept as JSON.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variant_val: Vec<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uint32_val: Vec<u32>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "proto_json::uint64_vec"
    )]
    pub uint64_val: Vec<u64>,
}

fn is_zero(v: &i32) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

/// `TensorShapeProto`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TfTensorShape {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dim: Vec<TfDim>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub unknown_rank: bool,
}

/// `TensorShapeProto.Dim`; `size` is an int64 (a string in protobuf JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TfDim {
    #[serde(default, with = "proto_json::int64")]
    pub size: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

proto_enum! {
    /// TensorFlow `DataType` (the non-reference values).
    pub enum TfDataType {
        #[default]
        Invalid = 0 => "DT_INVALID",
        Float = 1 => "DT_FLOAT",
        Double = 2 => "DT_DOUBLE",
        Int32 = 3 => "DT_INT32",
        Uint8 = 4 => "DT_UINT8",
        Int16 = 5 => "DT_INT16",
        Int8 = 6 => "DT_INT8",
        String = 7 => "DT_STRING",
        Complex64 = 8 => "DT_COMPLEX64",
        Int64 = 9 => "DT_INT64",
        Bool = 10 => "DT_BOOL",
        Qint8 = 11 => "DT_QINT8",
        Quint8 = 12 => "DT_QUINT8",
        Qint32 = 13 => "DT_QINT32",
        Bfloat16 = 14 => "DT_BFLOAT16",
        Qint16 = 15 => "DT_QINT16",
        Quint16 = 16 => "DT_QUINT16",
        Uint16 = 17 => "DT_UINT16",
        Complex128 = 18 => "DT_COMPLEX128",
        Half = 19 => "DT_HALF",
        Resource = 20 => "DT_RESOURCE",
        Variant = 21 => "DT_VARIANT",
        Uint32 = 22 => "DT_UINT32",
        Uint64 = 23 => "DT_UINT64",
    }
}
