//! Host-agnostic executor of a Seldon inference graph: request events in, node calls and one
//! response out.
//!
//! ```text
//!  host (proxy-wasm glue / FakeHost)            RequestExecutor (one per request)
//!  ─────────────────────────────────            ─────────────────────────────────
//!  on_headers(headers) ───────────────────────► classify endpoint, puid, forwarded headers
//!  on_body(bytes) ────────────────────────────► root Task: input → route → children → combine → output
//!                      ◄─── host.dispatch(Call) ── (token kept in `pending`, the one map)
//!                      ◄─ host.send_later(Call) ── payload-log CloudEvents, sent after the request
//!  on_call_response(token, CallResponse) ─────► host.call_done (metrics); resume the parked
//!                                                Task, fan in children
//!                      ◄────────── Step::Respond ── respond(): final answer or the first
//!                                                Failure, with Seldon-Puid
//!                      ◄──── host.span_done(Span) ── tracing on: a CLIENT span per node call,
//!                                                the SERVER span once answered (trace.rs)
//! ```
//!
//! Pure: no proxy-wasm, no I/O; builds for `wasm32-wasip1`. Every decision is testable with a
//! scripted fake host (see `tests/`).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod deadline;
pub mod endpoint;
pub mod entry_check;
pub mod failure;
mod grpc_node;
pub mod host;
pub mod metadata;
pub mod names;
pub mod payload_log;
pub mod request;
pub mod service;
pub mod trace;

pub use deadline::{GATEWAY_GRACE_MS, graph_deadline_ms, route_timeout_ms};
pub use endpoint::{Endpoint, NoEndpoint, classify};
pub use failure::Failure;
pub use host::{Call, CallDone, CallResponse, Header, Host, Response, Span};
pub use payload_log::{LogKind, PayloadLog, cloudevent};
pub use request::{RequestExecutor, Step, uuid_v4};
pub use service::Service;
