//! The binary tensor data extension: a JSON header of `Inference-Header-Content-Length` bytes
//! followed by raw tensors, in input/output order, each announced by the tensor parameter
//! `"binary_data_size"`.
//!
//! ```text
//! | {"inputs":[{"name":"a",...,"parameters":{"binary_data_size":8}}]} | 8 raw LE bytes |
//! |<---------------- Inference-Header-Content-Length ---------------->|
//! ```
//!
//! Decoding moves each binary section into the tensor's typed `data` (and drops
//! `binary_data_size`), so callers see the same [`InferenceRequest`] / [`InferenceResponse`]
//! as for a JSON body. Encoding does the reverse for every tensor that has data.

use serde_json::Value;

use super::{InferTensor, InferenceRequest, InferenceResponse, TensorData};
use crate::ProtocolError;

/// HTTP header carrying the JSON header's length in bytes (lower-case, as HTTP/2 sends it).
pub const HEADER_CONTENT_LENGTH: &str = "inference-header-content-length";
/// Tensor parameter: size in bytes of this tensor's binary section.
pub const BINARY_DATA_SIZE: &str = "binary_data_size";
/// Requested-output parameter: return this output in binary.
pub const BINARY_DATA: &str = "binary_data";
/// Request parameter: return every output in binary.
pub const BINARY_DATA_OUTPUT: &str = "binary_data_output";
/// Name advertised in server metadata `extensions`.
pub const EXTENSION: &str = "binary_tensor_data";

/// An encoded body and the value for [`HEADER_CONTENT_LENGTH`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryBody {
    pub body: Vec<u8>,
    pub header_length: usize,
}

/// Parses an `Inference-Header-Content-Length` header value.
pub fn parse_header_length(value: &[u8]) -> Result<usize, ProtocolError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| ProtocolError::BinaryBody {
            reason: format!(
                "{HEADER_CONTENT_LENGTH} `{}` is not a byte count",
                String::from_utf8_lossy(value)
            ),
        })
}

/// Splits a body into its JSON header and binary section.
pub fn split(body: &[u8], header_length: usize) -> Result<(&[u8], &[u8]), ProtocolError> {
    if header_length > body.len() {
        return Err(ProtocolError::BinaryBody {
            reason: format!(
                "{HEADER_CONTENT_LENGTH} is {header_length} but the body has only {} bytes",
                body.len()
            ),
        });
    }
    Ok(body.split_at(header_length))
}

/// Decodes a request body; `header_length` is the [`HEADER_CONTENT_LENGTH`] value, `None`
/// when the header was absent (plain JSON body).
pub fn decode_request(
    body: &[u8],
    header_length: Option<usize>,
) -> Result<InferenceRequest, ProtocolError> {
    let (json, binary) = split(body, header_length.unwrap_or(body.len()))?;
    let mut request = InferenceRequest::from_slice(json)?;
    attach(&mut request.inputs, binary)?;
    Ok(request)
}

/// Decodes a response body (see [`decode_request`]).
pub fn decode_response(
    body: &[u8],
    header_length: Option<usize>,
) -> Result<InferenceResponse, ProtocolError> {
    let (json, binary) = split(body, header_length.unwrap_or(body.len()))?;
    let mut response = InferenceResponse::from_slice(json)?;
    attach(&mut response.outputs, binary)?;
    Ok(response)
}

/// Encodes a request with every input's data in the binary section.
pub fn encode_request(request: &InferenceRequest) -> Result<BinaryBody, ProtocolError> {
    let mut header = request.clone();
    let binary = detach(&mut header.inputs)?;
    finish(header.to_vec()?, binary)
}

/// Encodes a response with every output's data in the binary section.
pub fn encode_response(response: &InferenceResponse) -> Result<BinaryBody, ProtocolError> {
    let mut header = response.clone();
    let binary = detach(&mut header.outputs)?;
    finish(header.to_vec()?, binary)
}

fn finish(mut body: Vec<u8>, binary: Vec<u8>) -> Result<BinaryBody, ProtocolError> {
    let header_length = body.len();
    body.extend_from_slice(&binary);
    Ok(BinaryBody {
        body,
        header_length,
    })
}

/// Moves each tensor's data into one binary section, announcing sizes in the parameters.
fn detach(tensors: &mut [InferTensor]) -> Result<Vec<u8>, ProtocolError> {
    let mut binary = Vec::new();
    for tensor in tensors {
        let Some(data) = tensor.data.take() else {
            continue;
        };
        tensor.check_data(&data)?;
        let bytes = data.to_le_bytes();
        tensor
            .parameters
            .get_or_insert_with(Default::default)
            .insert(BINARY_DATA_SIZE.to_owned(), Value::from(bytes.len()));
        binary.extend_from_slice(&bytes);
    }
    Ok(binary)
}

/// Gives each tensor with `binary_data_size` its slice of `binary`, in order.
fn attach(tensors: &mut [InferTensor], mut binary: &[u8]) -> Result<(), ProtocolError> {
    for tensor in tensors.iter_mut() {
        let Some(params) = tensor.parameters.as_mut() else {
            continue;
        };
        let Some(size) = params.remove(BINARY_DATA_SIZE) else {
            continue;
        };
        if params.is_empty() {
            tensor.parameters = None;
        }
        let size = size
            .as_u64()
            .and_then(|s| usize::try_from(s).ok())
            .ok_or_else(|| {
                tensor.error(format!("{BINARY_DATA_SIZE} {size} is not a byte count"))
            })?;
        if tensor.data.is_some() {
            return Err(tensor.error(format!("has both JSON data and {BINARY_DATA_SIZE}")));
        }
        if size > binary.len() {
            return Err(tensor.error(format!(
                "{BINARY_DATA_SIZE} is {size} but only {} binary bytes remain",
                binary.len()
            )));
        }
        let (section, rest) = binary.split_at(size);
        binary = rest;
        let data =
            TensorData::from_le_bytes(tensor.datatype, section).map_err(|r| tensor.error(r))?;
        tensor.data = Some(data);
        tensor.check()?;
    }
    if !binary.is_empty() {
        return Err(ProtocolError::BinaryBody {
            reason: format!("{} trailing bytes not claimed by any tensor", binary.len()),
        });
    }
    Ok(())
}
