//! Seldon v1 and Open Inference Protocol v2 payloads: typed JSON models, the wire `.proto` files, and the byte-level payload operations the graph executor needs.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod error;
mod ops;
mod proto_json;
mod raw;
pub mod v1;
pub mod v2;

pub use error::ProtocolError;
pub use ops::{
    aggregate_request, feedback_routing, inject_routing, route_from_reply, status_body, v2_chain,
};
