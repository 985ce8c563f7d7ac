//! The `Model` trait and the one model-server process around it: Seldon v1 REST and gRPC, Open Inference Protocol v2 REST and gRPC, Prometheus metrics.
//!
//! ```text
//!   REST :9000 ──┐  v1 /predict … , v2 /v2/models/{m}/infer      ┌── metrics :6000 /prometheus
//!   gRPC :9500 ──┼─► decode (v1.rs / v2.rs) ─► Arc<dyn Model> ───┤
//!                └─► encode (echo request's data type, merge meta) ◄┘
//! ```
//! Decoding and encoding are pure functions (`v1`, `v2`); `rest`, `grpc` and `server`
//! are the edges.

pub mod error;
pub mod model;
pub mod tensor;

pub use error::ModelError;
pub use model::{
    Feedback, Meta, Metric, MetricType, Model, ModelMetadata, Output, Payload, Request, metric,
};
pub use tensor::{Tensor, Values};

/// Re-exported so runtime crates implement [`Model`] without naming the dependency.
pub use async_trait::async_trait;

pub mod api_error;
pub mod builtin;
pub mod catalogue;
pub mod config;
pub mod grpc;
pub mod metadata;
pub mod metrics;
pub mod offload;
pub mod otel;
pub mod parse_errors;
pub mod rest;
pub mod server;
pub mod service;
pub mod v1;
pub mod v2;
