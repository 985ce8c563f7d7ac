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
    /// The explainer images (Seldon's `seldon-config` key `explainer`): the Alibi explainer
    /// server for protocols seldon/tensorflow, MLServer's Alibi runtime for v2. A catalogue
    /// without the section gets Seldon 1.18.2's images.
    #[serde(default)]
    pub explainer: ExplainerImages,
}

/// Seldon's `explainer: {image, image_v2}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainerImages {
    /// `seldonio/alibiexplainer` (`--model_name … <Type> --k=v`), serving `/api/v1.0/explain`.
    pub image: String,
    /// `seldonio/mlserver:*-alibi-explain` (`mlserver_alibi_explain.AlibiExplainRuntime`).
    pub image_v2: String,
}

/// Seldon 1.18.2's Helm values (`explainer.image`, `explainer.image_v2`).
pub const SELDON_EXPLAINER_IMAGE: &str = "seldonio/alibiexplainer:1.18.2";
pub const SELDON_EXPLAINER_IMAGE_V2: &str = "seldonio/mlserver:1.3.5-alibi-explain";

impl Default for ExplainerImages {
    fn default() -> Self {
        Self {
            image: SELDON_EXPLAINER_IMAGE.to_string(),
            image_v2: SELDON_EXPLAINER_IMAGE_V2.to_string(),
        }
    }
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
    /// HTTP GET readiness probe path on the `http` port (Triton, MLServer:
    /// `/v2/health/ready`); default: Seldon's TCP probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_path: Option<String>,
    /// HTTP GET liveness probe path (`/v2/health/live`); default: Seldon's TCP probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_path: Option<String>,
}

/// What `{…}` placeholders in a server's `args` and `env` values stand for.
#[derive(Debug, Clone, PartialEq)]
pub struct Placeholders<'a> {
    /// `{model_name}`: the node's name.
    pub model_name: &'a str,
    /// `{http_port}`, `{grpc_port}`: the node's allocated ports.
    pub http_port: i32,
    pub grpc_port: i32,
    /// `{model_dir}`: `/mnt/models`, or the `modelUri` itself with
    /// `seldon.io/no-storage-initializer: "true"` (Triton reads cloud storage directly).
    pub model_dir: &'a str,
    /// `{namespace}`: the SeldonDeployment's namespace.
    pub namespace: &'a str,
}

impl Placeholders<'_> {
    /// `text` with every placeholder replaced.
    pub fn apply(&self, text: &str) -> String {
        text.replace("{model_name}", self.model_name)
            .replace("{http_port}", &self.http_port.to_string())
            .replace("{grpc_port}", &self.grpc_port.to_string())
            .replace("{model_dir}", self.model_dir)
            .replace("{namespace}", self.namespace)
    }
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

    /// `args` with the placeholders replaced.
    pub fn args(server: &Server, vars: &Placeholders<'_>) -> Vec<String> {
        server.args.iter().map(|a| vars.apply(a)).collect()
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
        // Seldon's own v2 servers, with Seldon 1.18.2's images
        for (key, image) in [
            ("TRITON_SERVER", "nvcr.io/nvidia/tritonserver:21.08-py3"),
            ("HUGGINGFACE_SERVER", "seldonio/mlserver:1.3.5-huggingface"),
            ("TEMPO_SERVER", "seldonio/mlserver:1.3.5-slim"),
        ] {
            let s = c.get(key).unwrap();
            assert_eq!(
                (s.image.as_str(), s.protocols.as_slice()),
                (image, &[Protocol::V2][..])
            );
            assert_eq!(s.readiness_path.as_deref(), Some("/v2/health/ready"));
        }
        assert_eq!(c.explainer, ExplainerImages::default());
        assert_eq!(c.explainer.image, SELDON_EXPLAINER_IMAGE);
    }

    #[test]
    fn user_keys_parse_and_typos_fail() {
        let c = Catalogue::from_yaml(
            "servers:\n  MY_SERVER: {image: me/srv:1, args: [\"--name={model_name}\"]}\n",
        )
        .unwrap();
        let s = c.get("MY_SERVER").unwrap();
        let vars = Placeholders {
            model_name: "clf",
            http_port: 9001,
            grpc_port: 9501,
            model_dir: "/mnt/models",
            namespace: "ns",
        };
        assert_eq!(Catalogue::args(s, &vars), ["--name=clf"]);
        assert_eq!(
            vars.apply("{http_port}/{grpc_port}/{model_dir}/{namespace}/{other}"),
            "9001/9501//mnt/models/ns/{other}"
        );
        assert_eq!(c.explainer, ExplainerImages::default());
        assert_eq!(s.protocols, [Protocol::Seldon, Protocol::V2]);
        let err = Catalogue::from_yaml("servers:\n  X: {image: a, imag: b}\n").unwrap_err();
        assert!(err.to_string().contains("imag"), "{err}");
        let err =
            Catalogue::from_yaml("explainer: {image: a, image2: b}\nservers: {}\n").unwrap_err();
        assert!(err.to_string().contains("image2"), "{err}");
    }
}
