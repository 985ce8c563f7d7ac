//! Renders an Envoy bootstrap for local runs (graph, baseline and gateway listeners) and runs Envoy as a child process.
//!
//! ```text
//!  EnvoyConfig ──check──► render() ──► envoy.yaml ──► validate()   (envoy --mode validate)
//!   (plain data)          (pure)                 └──► Envoy::start (child process, waits
//!                                                                   for admin /ready = LIVE)
//!
//!  EnvoyConfig ──resources()──► xds::XdsServer (feature `xds`: ADS over gRPC, JSON → protobuf
//!                                through the vendored protos) ◄── Envoy::start_xds
//! ```

mod config;
mod error;
pub mod local_reply;
mod process;
mod render;
#[cfg(feature = "xds")]
pub mod xds;

pub use config::{
    Cluster, DEFAULT_BUFFER_LIMIT_BYTES, EnvoyConfig, GRAPH_FALLBACK_BODY, GRAPH_FALLBACK_STATUS,
    GatewayRoute, Listener, ListenerKind, Mirror, WeightedCluster,
};
pub use error::{ConfigError, EnvoyError};
pub use process::{
    CACHE_DIR_ENV, ENVOY_BIN_ENV, Envoy, EnvoyOptions, envoy_binary, free_port, validate,
};
pub use render::{
    FILTER_METRIC_TAGS, Resources, WASM_RUNTIME, XDS_CLUSTER, bootstrap, render, resources,
    xds_bootstrap,
};
