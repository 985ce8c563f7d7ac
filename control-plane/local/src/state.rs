//! What a running `up` is made of, in `<workdir>/up.json`, so `seldon-mesh status` and
//! `seldon-mesh logs` (other processes) can find the nodes, their ports, pids and logs.
//!
//! The work directory is predictable: `$XDG_STATE_HOME/seldon-mesh/up/<namespace>/<name>`
//! (default `~/.local/state/…`), kept after `up` stops so the logs can be read; the next `up`
//! of the same deployment replaces it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::LocalError;

/// File name of the state in the work directory.
pub const STATE_FILE: &str = "up.json";

/// A running (or last run) local deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunState {
    pub namespace: String,
    pub deployment: String,
    /// `seldon-mesh up`'s own pid.
    pub up_pid: u32,
    /// `http://127.0.0.1:<gateway>/seldon/<ns>/<name>`.
    pub base_url: String,
    /// Path of the graph's prediction endpoint under `base_url`.
    pub predict_path: String,
    pub envoy: EnvoyState,
    pub nodes: Vec<NodeState>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvoyState {
    pub pid: u32,
    pub admin_url: String,
    pub log: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeState {
    pub predictor: String,
    pub node: String,
    pub port: u16,
    pub pid: u32,
    pub log: PathBuf,
}

impl NodeState {
    /// `<predictor>.<node>`, how the CLI names a node.
    pub fn id(&self) -> String {
        format!("{}.{}", self.predictor, self.node)
    }
}

/// `<state home>/seldon-mesh/up/<namespace>/<name>`: `state_home` is `$XDG_STATE_HOME`, else
/// `<home>/.local/state`.
pub fn default_workdir(
    state_home: Option<PathBuf>,
    home: Option<PathBuf>,
    namespace: &str,
    name: &str,
) -> Result<PathBuf, LocalError> {
    let base = match (state_home.filter(|p| p.is_absolute()), home) {
        (Some(dir), _) => dir,
        (None, Some(home)) => home.join(".local/state"),
        (None, None) => return Err(LocalError::NoStateHome),
    };
    Ok(base.join("seldon-mesh/up").join(namespace).join(name))
}

impl RunState {
    pub fn write(&self, workdir: &Path) -> Result<(), LocalError> {
        let path = workdir.join(STATE_FILE);
        let text = serde_json::to_string_pretty(self).map_err(|e| LocalError::State {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        std::fs::write(&path, text).map_err(|source| LocalError::Io {
            action: "writing",
            path,
            source,
        })
    }

    pub fn read(workdir: &Path) -> Result<Self, LocalError> {
        let path = workdir.join(STATE_FILE);
        let text = std::fs::read_to_string(&path).map_err(|_| LocalError::NotStarted {
            workdir: workdir.to_path_buf(),
        })?;
        serde_json::from_str(&text).map_err(|e| LocalError::State {
            path,
            detail: e.to_string(),
        })
    }

    /// A node by `<predictor>.<node>`, or by `<node>` when only one predictor has it.
    pub fn node(&self, name: &str) -> Result<&NodeState, LocalError> {
        let exact: Vec<&NodeState> = self.nodes.iter().filter(|n| n.id() == name).collect();
        let matches = if exact.is_empty() {
            self.nodes.iter().filter(|n| n.node == name).collect()
        } else {
            exact
        };
        match matches.as_slice() {
            [one] => Ok(one),
            [] => Err(LocalError::UnknownNode {
                node: name.to_string(),
                known: self.node_ids(),
            }),
            _ => Err(LocalError::AmbiguousNode {
                node: name.to_string(),
                candidates: matches
                    .iter()
                    .map(|n| n.id())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    fn node_ids(&self) -> String {
        self.nodes
            .iter()
            .map(NodeState::id)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Whether `pid` is a live process (not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> RunState {
        let node = |p: &str, n: &str, port| NodeState {
            predictor: p.into(),
            node: n.into(),
            port,
            pid: 1,
            log: PathBuf::from(format!("/w/{p}.{n}.log")),
        };
        RunState {
            namespace: "ns".into(),
            deployment: "iris".into(),
            up_pid: 7,
            base_url: "http://127.0.0.1:8000/seldon/ns/iris".into(),
            predict_path: "/api/v1.0/predictions".into(),
            envoy: EnvoyState {
                pid: 2,
                admin_url: "http://127.0.0.1:9901".into(),
                log: "/w/envoy/envoy.log".into(),
            },
            nodes: vec![
                node("a", "model", 1),
                node("b", "model", 2),
                node("a", "tf", 3),
            ],
        }
    }

    #[test]
    fn default_workdir_follows_xdg_then_home_and_says_when_neither_is_set() {
        let dir = default_workdir(Some("/xdg".into()), Some("/home/u".into()), "ns", "iris");
        assert_eq!(dir.unwrap(), PathBuf::from("/xdg/seldon-mesh/up/ns/iris"));
        // A relative XDG_STATE_HOME is invalid per the spec and ignored.
        let dir = default_workdir(Some("rel".into()), Some("/home/u".into()), "ns", "iris");
        assert_eq!(
            dir.unwrap(),
            PathBuf::from("/home/u/.local/state/seldon-mesh/up/ns/iris")
        );
        let err = default_workdir(None, None, "ns", "iris").unwrap_err();
        assert!(err.to_string().contains("--workdir"), "{err}");
    }

    #[test]
    fn state_round_trips_and_a_missing_or_corrupt_file_is_explained() {
        let dir = tempfile::tempdir().unwrap();
        let err = RunState::read(dir.path()).unwrap_err();
        assert!(err.to_string().contains("seldon-mesh up"), "{err}");
        state().write(dir.path()).unwrap();
        assert_eq!(RunState::read(dir.path()).unwrap(), state());
        std::fs::write(dir.path().join(STATE_FILE), "{not json").unwrap();
        let err = RunState::read(dir.path()).unwrap_err();
        assert!(err.to_string().contains("up.json"), "{err}");
    }

    #[test]
    fn nodes_are_found_by_full_or_unique_short_name() {
        let s = state();
        assert_eq!(s.node("a.model").unwrap().port, 1);
        assert_eq!(s.node("tf").unwrap().port, 3);
        let err = s.node("model").unwrap_err().to_string();
        assert!(err.contains("a.model, b.model"), "{err}");
        let err = s.node("nope").unwrap_err().to_string();
        assert!(
            err.contains("nope") && err.contains("a.model, b.model, a.tf"),
            "{err}"
        );
    }

    #[test]
    fn alive_sees_this_process_and_not_a_free_pid() {
        assert!(alive(std::process::id()));
        assert!(!alive(u32::MAX));
    }
}
