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
    /// The model init container's image for this key (TENSORFLOW_SERVER: the initializer with
    /// tensorflow-cpu + tf2onnx); default: the operator's initializer image. A node's
    /// `storageInitializerImage` wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initializer_image: Option<String>,
    /// How the server runs with `seldon.io/no-storage-initializer: "true"` (it reads the
    /// `modelUri` itself). Triton: Seldon 1.18.2's `addTritonServer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_storage_initializer: Option<NoStorageInitializer>,
}

/// A server's args when no initializer fetches the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoStorageInitializer {
    /// Replaces `args` (same placeholders; `{model_dir}` is the `modelUri`).
    pub args: Vec<String>,
    /// Node parameter name (matched case-insensitively, as Seldon's `strings.ToLower`) → flag
    /// prefix: each such parameter appends `<prefix><value>`, in the node's order.
    #[serde(default)]
    pub parameter_flags: BTreeMap<String, String>,
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

    /// The args without a storage initializer: `no_storage_initializer.args` plus a flag per
    /// matching node parameter (`(name, value)` in the node's order); `args` when the server
    /// has no such entry.
    pub fn no_storage_args<'p>(
        server: &Server,
        vars: &Placeholders<'_>,
        parameters: impl IntoIterator<Item = (&'p str, &'p str)>,
    ) -> Vec<String> {
        let Some(ns) = &server.no_storage_initializer else {
            return Self::args(server, vars);
        };
        let mut args: Vec<String> = ns.args.iter().map(|a| vars.apply(a)).collect();
        for (name, value) in parameters {
            if let Some(flag) = ns.parameter_flags.get(&name.to_lowercase()) {
                args.push(format!("{flag}{value}"));
            }
        }
        args
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
        // MLflow models only mlflow.pyfunc runs need Python beside seldon-server
        assert!(
            c.get("MLFLOW_SERVER")
                .unwrap()
                .image
                .starts_with("ghcr.io/seldon-mesh/server-python:")
        );
        // only TENSORFLOW_SERVER's init container converts with TensorFlow
        for (key, server) in &c.servers {
            assert_eq!(
                server
                    .initializer_image
                    .as_deref()
                    .map(|i| i.split(':').next()),
                (key == "TENSORFLOW_SERVER").then_some(Some("ghcr.io/seldon-mesh/initializer-tf")),
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
    fn triton_without_the_initializer_takes_seldons_parameter_flags() {
        let c = Catalogue::builtin();
        let triton = c.get("TRITON_SERVER").unwrap();
        let vars = Placeholders {
            model_name: "simple",
            http_port: 9000,
            grpc_port: 9500,
            model_dir: "gs://bucket/repo",
            namespace: "ns",
        };
        // Seldon 1.18.2: the bucket as repository, no --strict-model-config=false, and
        // model_control_mode / load_model (repeatable) / strict_model_config as flags
        assert_eq!(
            Catalogue::no_storage_args(
                triton,
                &vars,
                [
                    ("model_control_mode", "explicit"),
                    ("load_model", "simple"),
                    ("Load_Model", "other"),
                    ("unrelated", "x"),
                    ("STRICT_MODEL_CONFIG", "true"),
                ]
            ),
            [
                "/opt/tritonserver/bin/tritonserver",
                "--grpc-port=9500",
                "--http-port=9000",
                "--model-repository=gs://bucket/repo",
                "--model-control-mode=explicit",
                "--load-model=simple",
                "--load-model=other",
                "--strict-model-config=true",
            ]
        );
        // with the initializer: the usual args (parameters are not flags)
        let vars = Placeholders {
            model_dir: "/mnt/models",
            ..vars
        };
        assert_eq!(
            Catalogue::args(triton, &vars).last().map(String::as_str),
            Some("--strict-model-config=false")
        );
        // a server without the entry keeps its args
        let sk = c.get("SKLEARN_SERVER").unwrap();
        assert_eq!(
            Catalogue::no_storage_args(sk, &vars, [("load_model", "x")]),
            Catalogue::args(sk, &vars)
        );
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
