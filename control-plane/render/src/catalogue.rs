//! The prepackaged-server catalogue: data (a file / ConfigMap), not a `match`.

use std::collections::BTreeMap;

use seldon_graph::Protocol;
use serde::{Deserialize, Serialize};

/// The catalogue shipped in `manifests/catalogue.yaml`.
pub const DEFAULT_CATALOGUE: &str = include_str!("../../../manifests/catalogue.yaml");

/// Implementation key → server.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    pub servers: BTreeMap<String, Server>,
}

/// How one prepackaged server runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub image: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default = "default_protocols")]
    pub protocols: Vec<Protocol>,
}

fn default_protocols() -> Vec<Protocol> {
    vec![Protocol::Seldon, Protocol::V2]
}

/// The catalogue file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("server catalogue: {0}")]
pub struct CatalogueError(#[from] serde_yaml::Error);

impl Catalogue {
    /// Parses a catalogue file.
    pub fn from_yaml(text: &str) -> Result<Self, CatalogueError> {
        Ok(serde_yaml::from_str(text)?)
    }

    /// The catalogue shipped with this build.
    pub fn builtin() -> Self {
        // Checked by a test; an empty catalogue would only make every prepackaged node fail.
        Self::from_yaml(DEFAULT_CATALOGUE).unwrap_or_default()
    }

    pub fn get(&self, key: &str) -> Option<&Server> {
        self.servers.get(key)
    }

    /// `args` with `{model_name}` replaced.
    pub fn args(server: &Server, model_name: &str) -> Vec<String> {
        server
            .args
            .iter()
            .map(|a| a.replace("{model_name}", model_name))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalogue_has_the_seldon_servers() {
        let c = Catalogue::from_yaml(DEFAULT_CATALOGUE).unwrap();
        for key in [
            "SKLEARN_SERVER",
            "XGBOOST_SERVER",
            "LIGHTGBM_SERVER",
            "MLFLOW_SERVER",
            "TENSORFLOW_SERVER",
        ] {
            assert!(
                c.get(key)
                    .unwrap()
                    .image
                    .starts_with("ghcr.io/seldon-mesh/server:"),
                "{key}"
            );
        }
    }

    #[test]
    fn user_keys_parse_and_typos_fail() {
        let c = Catalogue::from_yaml(
            "servers:\n  MY_SERVER: {image: me/srv:1, args: [\"--name={model_name}\"]}\n",
        )
        .unwrap();
        let s = c.get("MY_SERVER").unwrap();
        assert_eq!(Catalogue::args(s, "clf"), ["--name=clf"]);
        assert_eq!(s.protocols, [Protocol::Seldon, Protocol::V2]);
        let err = Catalogue::from_yaml("servers:\n  X: {image: a, imag: b}\n").unwrap_err();
        assert!(err.to_string().contains("imag"), "{err}");
    }
}
