//! The cluster side of `make test-mesh`: a real apiserver, controller-manager, istiod, our
//! operator and webhook, an ingress gateway and a node agent, all as child processes inside a
//! network namespace the test owns. See README.md.

pub mod cluster;
pub mod jaeger;
pub mod netns;
pub mod node_agent;
pub mod procs;
pub mod registry;

use std::path::PathBuf;

/// What went wrong while bringing up or driving the mesh.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("starting {name} ({program}): {source}")]
    Spawn {
        name: String,
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{name} exited ({status}); log {}:\n{tail}", log.display())]
    Exited {
        name: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("program not found: {0}")]
    MissingProgram(String),
    #[error("{script} failed ({status}): {stderr}")]
    Script {
        script: String,
        status: String,
        stderr: String,
    },
    #[error("timed out after {after:?} waiting for {what}{}", if detail.is_empty() { String::new() } else { format!(": {detail}") })]
    Timeout {
        what: String,
        after: std::time::Duration,
        detail: String,
    },
    #[error("certificates: {0}")]
    Pki(#[from] rcgen::Error),
    #[error("kubernetes API: {0}")]
    Kube(#[from] Box<kube::Error>),
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    #[error("manifest {file}: {message}")]
    Manifest { file: String, message: String },
    #[error("kubectl {args} failed ({status}): {stderr}")]
    Kubectl {
        args: String,
        status: String,
        stderr: String,
    },
    #[error("network namespace: {0}")]
    Netns(#[from] netns::NetnsError),
    #[error("node agent: {0}")]
    NodeAgent(#[from] node_agent::NodeAgentError),
    #[error("{0}")]
    Check(String),
}

impl From<kube::Error> for HarnessError {
    fn from(e: kube::Error) -> Self {
        HarnessError::Kube(Box::new(e))
    }
}
