//! Open Inference Protocol (KServe V2) REST JSON: inference request/response with typed tensor
//! data for every datatype, model/server metadata and readiness, errors, and the binary
//! tensor extension ([`binary`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ProtocolError;

pub mod binary;
mod data;

pub use data::TensorData;

/// `$parameters`: an object of string, number or boolean values.
pub type Parameters = BTreeMap<String, Value>;

/// A tensor element type, with its JSON name (`"FP32"`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Datatype {
    Bool,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Int8,
    Int16,
    Int32,
    Int64,
    Fp16,
    Fp32,
    Fp64,
    Bytes,
}

impl Datatype {
    /// Every datatype.
    pub const ALL: [Self; 13] = [
        Self::Bool,
        Self::Uint8,
        Self::Uint16,
        Self::Uint32,
        Self::Uint64,
        Self::Int8,
        Self::Int16,
        Self::Int32,
        Self::Int64,
        Self::Fp16,
        Self::Fp32,
        Self::Fp64,
        Self::Bytes,
    ];

    /// Size of one element in bytes; `None` for variable-size `BYTES`.
    pub const fn size(self) -> Option<usize> {
        match self {
            Self::Bool | Self::Uint8 | Self::Int8 => Some(1),
            Self::Uint16 | Self::Int16 | Self::Fp16 => Some(2),
            Self::Uint32 | Self::Int32 | Self::Fp32 => Some(4),
            Self::Uint64 | Self::Int64 | Self::Fp64 => Some(8),
            Self::Bytes => None,
        }
    }

    /// The JSON / gRPC name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Bool => "BOOL",
            Self::Uint8 => "UINT8",
            Self::Uint16 => "UINT16",
            Self::Uint32 => "UINT32",
            Self::Uint64 => "UINT64",
            Self::Int8 => "INT8",
            Self::Int16 => "INT16",
            Self::Int32 => "INT32",
            Self::Int64 => "INT64",
            Self::Fp16 => "FP16",
            Self::Fp32 => "FP32",
            Self::Fp64 => "FP64",
            Self::Bytes => "BYTES",
        }
    }
}

impl std::fmt::Display for Datatype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An input tensor of a request or an output tensor of a response.
///
/// `data` is decoded according to `datatype` (nested JSON arrays are flattened, row-major) and
/// checked against `shape`. It is `None` when the tensor travels in the binary section
/// (`parameters.binary_data_size`) or is absent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InferTensor {
    pub name: String,
    pub shape: Vec<u64>,
    pub datatype: Datatype,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<TensorData>,
}

impl InferTensor {
    /// A tensor with data; fails if the element count does not match `shape`.
    pub fn new(
        name: impl Into<String>,
        shape: Vec<u64>,
        data: TensorData,
    ) -> Result<Self, ProtocolError> {
        let tensor = Self {
            name: name.into(),
            shape,
            datatype: data.datatype(),
            parameters: None,
            data: Some(data),
        };
        tensor.check()?;
        Ok(tensor)
    }

    /// Number of elements `shape` calls for (1 for a scalar `[]`).
    pub fn element_count(&self) -> Result<usize, ProtocolError> {
        self.shape
            .iter()
            .try_fold(1usize, |acc, d| {
                usize::try_from(*d).ok().and_then(|d| acc.checked_mul(d))
            })
            .ok_or_else(|| self.error(format!("shape {:?} is too large", self.shape)))
    }

    /// Checks that `data` matches `datatype` and `shape`.
    pub fn check(&self) -> Result<(), ProtocolError> {
        match &self.data {
            Some(data) => self.check_data(data),
            None => Ok(()),
        }
    }

    fn check_data(&self, data: &TensorData) -> Result<(), ProtocolError> {
        if data.datatype() != self.datatype {
            return Err(self.error(format!(
                "data is {} but datatype is {}",
                data.datatype(),
                self.datatype
            )));
        }
        let expected = self.element_count()?;
        if data.len() != expected {
            return Err(self.error(format!(
                "shape {:?} needs {expected} elements, data has {}",
                self.shape,
                data.len()
            )));
        }
        Ok(())
    }

    pub(crate) fn error(&self, reason: String) -> ProtocolError {
        ProtocolError::Tensor {
            name: self.name.clone(),
            reason,
        }
    }
}

impl<'de> Deserialize<'de> for InferTensor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Repr {
            name: String,
            shape: Vec<u64>,
            datatype: Datatype,
            #[serde(default)]
            parameters: Option<Parameters>,
            #[serde(default)]
            data: Option<Value>,
        }
        let r = Repr::deserialize(d)?;
        let data = match r.data {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                TensorData::from_json(r.datatype, &v)
                    .map_err(|e| serde::de::Error::custom(format!("tensor `{}`: {e}", r.name)))?,
            ),
        };
        let tensor = Self {
            name: r.name,
            shape: r.shape,
            datatype: r.datatype,
            parameters: r.parameters,
            data,
        };
        tensor.check().map_err(serde::de::Error::custom)?;
        Ok(tensor)
    }
}

/// An output the client asks for: `{"name", "parameters"?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestOutput {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
}

/// `POST /v2/models/{m}/infer` body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InferenceRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
    pub inputs: Vec<InferTensor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<RequestOutput>>,
}

impl InferenceRequest {
    /// Parses a JSON request body (for binary-extension bodies use [`binary::decode_request`]).
    pub fn from_slice(body: &[u8]) -> Result<Self, ProtocolError> {
        serde_json::from_slice(body).map_err(ProtocolError::json("v2 inference request"))
    }

    /// Serializes to compact JSON.
    pub fn to_vec(&self) -> Result<Vec<u8>, ProtocolError> {
        serde_json::to_vec(self).map_err(ProtocolError::json("v2 inference request"))
    }
}

/// Inference response body; `id` echoes the request's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InferenceResponse {
    pub model_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
    pub outputs: Vec<InferTensor>,
}

impl InferenceResponse {
    /// Parses a JSON response body (for binary-extension bodies use [`binary::decode_response`]).
    pub fn from_slice(body: &[u8]) -> Result<Self, ProtocolError> {
        serde_json::from_slice(body).map_err(ProtocolError::json("v2 inference response"))
    }

    /// Serializes to compact JSON.
    pub fn to_vec(&self) -> Result<Vec<u8>, ProtocolError> {
        serde_json::to_vec(self).map_err(ProtocolError::json("v2 inference response"))
    }
}

/// One input or output in model metadata; `-1` in `shape` is a variable dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetadataTensor {
    pub name: String,
    pub datatype: Datatype,
    pub shape: Vec<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
}

/// `GET /v2/models/{m}` reply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelMetadata {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<Vec<String>>,
    pub platform: String,
    #[serde(default)]
    pub inputs: Vec<MetadataTensor>,
    #[serde(default)]
    pub outputs: Vec<MetadataTensor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
}

/// `GET /v2/models/{m}/ready` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelReady {
    pub name: String,
    pub ready: bool,
}

/// `GET /v2` reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerMetadata {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub extensions: Vec<String>,
}

/// `GET /v2/health/live` reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerLive {
    pub live: bool,
}

/// `GET /v2/health/ready` reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerReady {
    pub ready: bool,
}

/// Error body of any failed v2 call: `{"error": "<message>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub error: String,
}

impl ErrorResponse {
    /// The JSON body for `message`.
    pub fn body(message: &str) -> Vec<u8> {
        let mut out = b"{\"error\":".to_vec();
        crate::raw::write_json_string(&mut out, message);
        out.push(b'}');
        out
    }
}
