//! The Seldon inference graph as an Envoy HTTP filter: proxy-wasm glue around `seldon-executor`.
//!
//! The root context parses and compiles the `FilterConfig` once (a bad config fails the plugin's
//! configuration, so Envoy rejects it). Each request gets a `RequestExecutor`; this crate only
//! moves events in (headers, body, call responses) and carries its steps out (dispatch calls,
//! send the response), and records metrics. It never lets a request reach Envoy's router.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod export;
pub mod metrics;

#[cfg(target_arch = "wasm32")]
mod glue;
