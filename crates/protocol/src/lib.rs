//! Seldon v1 and Open Inference Protocol v2 payloads: typed JSON models, the wire `.proto` files, and the byte-level payload operations the graph executor needs.
//!
//! ```text
//!                 ┌──────────────────────── seldon-protocol ────────────────────────┐
//!  executor  ───▶ │ byte-level ops (crate root): decode only what a step needs,     │
//!  (filter)       │ splice, copy the rest verbatim                                  │
//!                 │   route_from_reply · aggregate_request · feedback_routing       │
//!                 │   inject_routing · v2_chain · status_body · check_* (hop checks)  │
//!                 ├─────────────────────────────────────────────────────────────────┤
//!  model     ───▶ │ typed models (decode fully)                                     │
//!  servers,       │   v1: SeldonMessage, Feedback, SeldonMessageList, metadata,     │
//!  tests          │       graph_metadata(tree)                                      │
//!                 │   v2: InferenceRequest/Response, TensorData (all 13 datatypes), │
//!                 │       metadata, ready, errors, binary tensor extension          │
//!                 ├─────────────────────────────────────────────────────────────────┤
//!  executor  ───▶ │ bridge: v1 ⇄ v2 between nodes of different protocols            │
//!                 ├─────────────────────────────────────────────────────────────────┤
//!  gRPC entry,    │ grpc: SeldonMessage, Feedback, SeldonMessageList                │
//!  gRPC nodes ──▶ │ grpc_v2: ModelInfer, health, metadata                           │
//!                 │ (protobuf ⇄ REST JSON over a hand-written wire codec, wire.rs)  │
//!                 ├─────────────────────────────────────────────────────────────────┤
//!  gRPC      ───▶ │ proto/: seldon/prediction.proto, tensorflow/…, inference/…      │
//!  codegen        │ (wire facts; compiled by the servers, not here)                 │
//!                 └─────────────────────────────────────────────────────────────────┘
//! ```
//!
//! Pure and wasm-safe: depends only on serde, serde_json, thiserror and base64.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod bridge;
mod error;
pub mod grpc;
pub mod grpc_v2;
mod ops;
mod proto_json;
mod raw;
pub mod v1;
pub mod v2;
mod wire;

pub use error::ProtocolError;
pub use ops::{
    aggregate_request, check_json_object, check_v2_request, check_v2_response, feedback_routing,
    inject_routing, route_from_reply, status_body, v2_chain,
};
