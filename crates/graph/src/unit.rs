//! The graph node, `PredictiveUnit`, with every field a Seldon Core v1 graph node has.
//!
//! JSON/YAML field names are Seldon's (`modelUri`, `envSecretRefName`, `service_host`, …) so a
//! v1 manifest deserializes unchanged. Enumerations keep unknown strings (`Other`) instead of
//! failing to parse: `compile` then rejects them with the node's name and path, which a serde
//! error could not do.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::Protocol;

/// One node of an inference graph (Seldon's `PredictiveUnit`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct PredictiveUnit {
    /// Node name; also the container name and the model name in v2 paths.
    pub name: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub unit_type: Option<PredictiveUnitType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<PredictiveUnitMethod>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub implementation: Option<Implementation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,
    /// The protocol this node speaks (`seldon`, `v2`), overriding the deployment's
    /// `spec.protocol` for calls to this node; the filter converts payloads between nodes of
    /// different protocols. A seldon-mesh extension: Seldon v1 has only the graph-level one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<Parameter>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<PredictiveUnit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_secret_ref_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_initializer_image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logger: Option<Logger>,
}

impl PredictiveUnit {
    /// Every node of the tree, depth first, parents before children.
    pub fn walk(&self) -> Vec<&PredictiveUnit> {
        let mut out = vec![self];
        let mut i = 0;
        while i < out.len() {
            let node = out[i];
            out.extend(node.children.iter());
            i += 1;
        }
        out
    }

    /// True when `methods` lists `method`.
    pub fn has_method(&self, method: PredictiveUnitMethod) -> bool {
        self.methods.as_ref().is_some_and(|m| m.contains(&method))
    }

    /// Seldon's defaulting: a node with no type, no methods and no implementation is a MODEL,
    /// and a prepackaged implementation forces MODEL.
    pub fn effective_type(&self) -> Option<PredictiveUnitType> {
        match (&self.unit_type, &self.methods, &self.implementation) {
            (_, _, Some(Implementation::Prepackaged(_))) => Some(PredictiveUnitType::Model),
            (None, None, None) => Some(PredictiveUnitType::Model),
            (t, _, _) => t.clone(),
        }
    }

    /// The value of parameter `name`, if set.
    pub fn parameter(&self, name: &str) -> Option<&Parameter> {
        self.parameters.iter().find(|p| p.name == name)
    }
}

/// Generates an enum over Seldon's upper-case names with an `Other(String)` catch-all.
macro_rules! seldon_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)+
            /// A value Seldon does not define; kept so `compile` can name it.
            Other(String),
        }

        impl $name {
            /// Seldon's spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)+
                    Self::Other(s) => s,
                }
            }

            /// The defined values, for error messages.
            pub const KNOWN: &'static [&'static str] = &[$($text),+];
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $($text => Self::$variant,)+
                    other => Self::Other(other.to_string()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Ok(Self::from(s.as_str()))
            }
        }

        /// A plain string in the schema: unknown values must reach `compile`, which names the
        /// node and path, instead of being refused by the API server with a generic message.
        #[cfg(feature = "schema")]
        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn inline_schema() -> bool {
                true
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                let description = format!("One of {}.", Self::KNOWN.join(", "));
                schemars::json_schema!({"type": "string", "description": description})
            }
        }
    };
}

seldon_enum!(
    /// What a node is: decides which endpoints the orchestrator calls on it.
    PredictiveUnitType {
        Model => "MODEL",
        Router => "ROUTER",
        Combiner => "COMBINER",
        Transformer => "TRANSFORMER",
        OutputTransformer => "OUTPUT_TRANSFORMER",
        UnknownType => "UNKNOWN_TYPE",
    }
);

seldon_enum!(
    /// Behaviours composed on an `UNKNOWN_TYPE` node.
    PredictiveUnitMethod {
        TransformInput => "TRANSFORM_INPUT",
        TransformOutput => "TRANSFORM_OUTPUT",
        Route => "ROUTE",
        Aggregate => "AGGREGATE",
        SendFeedback => "SEND_FEEDBACK",
    }
);

seldon_enum!(
    /// Parameter value types; the value itself is always a string.
    ParameterType {
        Int => "INT",
        Float => "FLOAT",
        Double => "DOUBLE",
        String => "STRING",
        Bool => "BOOL",
    }
);

seldon_enum!(
    /// How a node is reached.
    EndpointType {
        Rest => "REST",
        Grpc => "GRPC",
    }
);

/// Seldon's built-in implementations; any other string names a prepackaged server in the
/// catalogue (`SKLEARN_SERVER`, `XGBOOST_SERVER`, user-added keys, …).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Implementation {
    SimpleModel,
    SimpleRouter,
    RandomAbtest,
    AverageCombiner,
    UnknownImplementation,
    /// A prepackaged server key, looked up in the server catalogue.
    Prepackaged(String),
}

impl Implementation {
    /// Seldon's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::SimpleModel => "SIMPLE_MODEL",
            Self::SimpleRouter => "SIMPLE_ROUTER",
            Self::RandomAbtest => "RANDOM_ABTEST",
            Self::AverageCombiner => "AVERAGE_COMBINER",
            Self::UnknownImplementation => "UNKNOWN_IMPLEMENTATION",
            Self::Prepackaged(key) => key,
        }
    }
}

impl From<&str> for Implementation {
    fn from(s: &str) -> Self {
        match s {
            "SIMPLE_MODEL" => Self::SimpleModel,
            "SIMPLE_ROUTER" => Self::SimpleRouter,
            "RANDOM_ABTEST" => Self::RandomAbtest,
            "AVERAGE_COMBINER" => Self::AverageCombiner,
            "UNKNOWN_IMPLEMENTATION" => Self::UnknownImplementation,
            key => Self::Prepackaged(key.to_string()),
        }
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for Implementation {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Implementation".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "SIMPLE_MODEL, SIMPLE_ROUTER, RANDOM_ABTEST, AVERAGE_COMBINER, UNKNOWN_IMPLEMENTATION, or a prepackaged server key from the catalogue (SKLEARN_SERVER, ...)."
        })
    }
}

impl std::fmt::Display for Implementation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Implementation {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Implementation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Self::from(s.as_str()))
    }
}

/// Where a node listens; filled by the operator (Seldon keeps snake_case here).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Endpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_port: Option<i32>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub endpoint_type: Option<EndpointType>,
    #[serde(default, rename = "httpPort", skip_serializing_if = "Option::is_none")]
    pub http_port: Option<i32>,
    #[serde(default, rename = "grpcPort", skip_serializing_if = "Option::is_none")]
    pub grpc_port: Option<i32>,
}

/// A constructor parameter, passed to the node as `PREDICTIVE_UNIT_PARAMETERS`.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parameter {
    pub name: String,
    pub value: String,
    #[serde(rename = "type")]
    pub parameter_type: ParameterType,
}

/// Payload logging for a node.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logger {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub mode: LoggerMode,
}

/// Which payloads of a node are logged.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoggerMode {
    Request,
    Response,
    All,
}

impl LoggerMode {
    pub fn logs_request(self) -> bool {
        matches!(self, Self::Request | Self::All)
    }
    pub fn logs_response(self) -> bool {
        matches!(self, Self::Response | Self::All)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_yaml_node_parses_with_seldon_field_names() {
        let yaml = r#"
name: classifier
type: MODEL
implementation: SKLEARN_SERVER
modelUri: gs://seldon-models/sklearn/iris
envSecretRefName: creds
endpoint: {service_host: localhost, service_port: 9000, type: REST, httpPort: 9000}
parameters: [{name: method, value: predict, type: STRING}]
logger: {mode: all}
"#;
        let unit: PredictiveUnit = serde_yaml::from_str(yaml).unwrap();
        assert_eq!(unit.unit_type, Some(PredictiveUnitType::Model));
        assert_eq!(
            unit.implementation,
            Some(Implementation::Prepackaged("SKLEARN_SERVER".into()))
        );
        assert_eq!(
            unit.model_uri.as_deref(),
            Some("gs://seldon-models/sklearn/iris")
        );
        assert_eq!(unit.endpoint.as_ref().unwrap().http_port, Some(9000));
        assert_eq!(unit.parameter("method").unwrap().value, "predict");
        assert_eq!(unit.logger.as_ref().unwrap().mode, LoggerMode::All);
        let back = serde_yaml::to_string(&unit).unwrap();
        let again: PredictiveUnit = serde_yaml::from_str(&back).unwrap();
        assert_eq!(unit, again);
    }

    #[test]
    fn unknown_enum_strings_are_kept_for_compile_to_reject() {
        let unit: PredictiveUnit =
            serde_json::from_str(r#"{"name":"x","type":"MODLE","methods":["ROUTE","FLY"]}"#)
                .unwrap();
        assert_eq!(
            unit.unit_type,
            Some(PredictiveUnitType::Other("MODLE".into()))
        );
        assert_eq!(
            unit.methods.unwrap(),
            vec![
                PredictiveUnitMethod::Route,
                PredictiveUnitMethod::Other("FLY".into())
            ]
        );
    }

    #[test]
    fn missing_required_field_is_a_parse_error() {
        let err = serde_json::from_str::<PredictiveUnit>(r#"{"type":"MODEL"}"#).unwrap_err();
        assert!(err.to_string().contains("name"), "{err}");
        let err = serde_json::from_str::<Logger>(r#"{"url":"http://x"}"#).unwrap_err();
        assert!(err.to_string().contains("mode"), "{err}");
    }

    #[test]
    fn defaulting_follows_seldon() {
        let bare = PredictiveUnit {
            name: "m".into(),
            ..Default::default()
        };
        assert_eq!(bare.effective_type(), Some(PredictiveUnitType::Model));
        let prepack = PredictiveUnit {
            name: "m".into(),
            unit_type: Some(PredictiveUnitType::Router),
            implementation: Some(Implementation::Prepackaged("SKLEARN_SERVER".into())),
            ..Default::default()
        };
        assert_eq!(prepack.effective_type(), Some(PredictiveUnitType::Model));
        let with_methods = PredictiveUnit {
            name: "m".into(),
            methods: Some(vec![PredictiveUnitMethod::Route]),
            ..Default::default()
        };
        assert_eq!(with_methods.effective_type(), None);
    }

    #[test]
    fn walk_visits_parents_before_children() {
        let tree: PredictiveUnit = serde_json::from_str(
            r#"{"name":"a","children":[{"name":"b","children":[{"name":"d"}]},{"name":"c"}]}"#,
        )
        .unwrap();
        let names: Vec<_> = tree.walk().iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
    }
}
