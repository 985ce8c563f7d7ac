//! Typed errors of this crate: one enum for a bad description, one for running Envoy.

use std::path::PathBuf;

/// An [`crate::EnvoyConfig`] that must not be rendered.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("two listeners are called {0:?}")]
    DuplicateListener(String),
    #[error("two clusters are called {0:?}")]
    DuplicateCluster(String),
    #[error("port {0} is used twice")]
    DuplicatePort(u16),
    #[error("{what} has port 0; Envoy would pick one nobody knows")]
    ZeroPort { what: String },
    #[error("listener {listener:?} routes to cluster {cluster:?}, which is not declared")]
    UnknownCluster { listener: String, cluster: String },
    #[error("gateway listener {0:?} has no routes")]
    NoRoutes(String),
    #[error("gateway listener {listener:?}: route {prefix:?} has no cluster with a weight above 0")]
    NoWeight { listener: String, prefix: String },
    #[error("gateway listener {listener:?}: mirror percent {percent} is outside 0..=100")]
    MirrorPercent { listener: String, percent: f64 },
    #[error("buffer_limit_bytes is 0")]
    ZeroBufferLimit,
}

/// What went wrong rendering, validating or running Envoy.
#[derive(Debug, thiserror::Error)]
pub enum EnvoyError {
    #[error("invalid Envoy config: {0}")]
    Config(#[from] ConfigError),
    #[error("rendering the bootstrap YAML")]
    Yaml(#[from] serde_yaml::Error),
    #[error(
        "envoy binary not found at {path} ({reason}); run scripts/setup.sh or set SELDON_ENVOY_BIN"
    )]
    BinaryNotFound { path: PathBuf, reason: String },
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("envoy rejected {path}:\n{stderr}")]
    Invalid { path: PathBuf, stderr: String },
    #[error("envoy exited early ({status}); tail of {log}:\n{tail}")]
    Exited {
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error(
        "envoy admin /ready did not say LIVE within {secs} s (last: {last}); tail of {log}:\n{tail}"
    )]
    NotReady {
        secs: u64,
        last: String,
        log: PathBuf,
        tail: String,
    },
    #[error("envoy admin request {url} failed")]
    Admin {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("no listener called {0:?}")]
    UnknownListener(String),
}
