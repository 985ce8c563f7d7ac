//! User-declared model metadata, read once at startup: the `MODEL_METADATA` env (YAML or
//! JSON) and `<model_uri>/metadata.yaml`, checked against Seldon v1's metadata schema
//! (`seldon_core/metadata.py` `JSON_SCHEMA`, 1.18) and laid over what the runtime reports.
//!
//! Precedence, as in Seldon's wrapper (`{**init_metadata(), **MODEL_METADATA}`, key by key at
//! the top level): `MODEL_METADATA` > `metadata.yaml` (Seldon's prepackaged servers return
//! it from `init_metadata`) > the runtime's [`crate::Model::metadata`]. A key that is set
//! replaces the lower one whole (`inputs` is not merged entry by entry).
//!
//! Invalid metadata stops the server before it binds a port ([`MetadataError`], one line
//! naming the variable or file). Seldon's wrapper logged it and answered `/metadata` with
//! 500 `MICROSERVICE_BAD_METADATA` for the pod's whole life; a pod that does not start says
//! so where it is seen (`kubectl get pods`, the event) and a typo cannot go unnoticed.

use std::collections::BTreeMap;
use std::path::Path;

use seldon_protocol::v1::{MessageMetadata, ModelMetadata};
use serde_json::{Map, Value};

/// The env variable Seldon's wrapper reads.
pub const ENV: &str = "MODEL_METADATA";
/// The file Seldon's prepackaged servers read next to the model.
pub const FILE: &str = "metadata.yaml";

/// Unusable metadata: where it came from and why (no source chain: one line on stderr).
#[derive(Debug, thiserror::Error)]
#[error("{origin} is not valid Seldon model metadata: {reason}")]
pub struct MetadataError {
    /// `MODEL_METADATA` or the file's path.
    pub origin: String,
    pub reason: String,
}

/// The top-level keys a source sets; each one replaces the runtime's value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetadataOverride {
    pub name: Option<String>,
    pub versions: Option<Vec<String>>,
    pub platform: Option<String>,
    pub inputs: Option<Vec<MessageMetadata>>,
    pub outputs: Option<Vec<MessageMetadata>>,
    pub custom: Option<BTreeMap<String, String>>,
}

impl MetadataOverride {
    /// Parses and checks one source (`origin` names it in errors). Empty text, YAML `null`
    /// or `{}` set nothing.
    pub fn parse(origin: &str, text: &str) -> Result<Self, MetadataError> {
        let err = |reason: String| MetadataError {
            origin: origin.to_string(),
            reason,
        };
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        // JSON is YAML 1.2, so one parser takes both (as Seldon's `yaml.safe_load`).
        let value: Value = serde_yaml::from_str(text)
            .map_err(|e| err(format!("not YAML or JSON: {}", one_line(&e.to_string()))))?;
        let map = match value {
            Value::Null => return Ok(Self::default()),
            Value::Object(map) => map,
            other => return Err(err(format!("expected a mapping, got {}", kind(&other)))),
        };
        check_model(&map).map_err(err)?;
        let field = |key: &str| map.get(key).cloned();
        let decode = |key: &str| -> Result<Option<Vec<MessageMetadata>>, MetadataError> {
            field(key)
                .map(|v| serde_json::from_value(v).map_err(|e| err(format!("{key}: {e}"))))
                .transpose()
        };
        Ok(MetadataOverride {
            name: field("name").and_then(|v| v.as_str().map(str::to_string)),
            versions: field("versions")
                .map(|v| serde_json::from_value(v).map_err(|e| err(format!("versions: {e}"))))
                .transpose()?,
            platform: field("platform").and_then(|v| v.as_str().map(str::to_string)),
            inputs: decode("inputs")?,
            outputs: decode("outputs")?,
            custom: field("custom")
                .map(|v| serde_json::from_value(v).map_err(|e| err(format!("custom: {e}"))))
                .transpose()?,
        })
    }

    /// `lower` with every key this one sets put on top of it.
    pub fn over(self, lower: MetadataOverride) -> MetadataOverride {
        MetadataOverride {
            name: self.name.or(lower.name),
            versions: self.versions.or(lower.versions),
            platform: self.platform.or(lower.platform),
            inputs: self.inputs.or(lower.inputs),
            outputs: self.outputs.or(lower.outputs),
            custom: self.custom.or(lower.custom),
        }
    }

    /// The runtime's metadata with this override's keys replacing its own.
    pub fn apply(&self, mut md: ModelMetadata) -> ModelMetadata {
        if let Some(v) = &self.name {
            md.name.clone_from(v);
        }
        if let Some(v) = &self.versions {
            md.versions.clone_from(v);
        }
        if let Some(v) = &self.platform {
            md.platform.clone_from(v);
        }
        if let Some(v) = &self.inputs {
            md.inputs.clone_from(v);
        }
        if let Some(v) = &self.outputs {
            md.outputs.clone_from(v);
        }
        if let Some(v) = &self.custom {
            md.custom.clone_from(v);
        }
        md
    }

    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Reads both sources: `env_text` (the `MODEL_METADATA` value, if set) over
/// `<model_dir>/metadata.yaml` (if that file exists).
pub fn load(
    env_text: Option<&str>,
    model_dir: Option<&Path>,
) -> Result<MetadataOverride, MetadataError> {
    let file = match model_dir.map(|d| d.join(FILE)) {
        Some(path) if path.is_file() => {
            let origin = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|e| MetadataError {
                origin: origin.clone(),
                reason: e.to_string(),
            })?;
            MetadataOverride::parse(&origin, &text)?
        }
        _ => MetadataOverride::default(),
    };
    let env = match env_text {
        Some(text) => MetadataOverride::parse(ENV, text)?,
        None => MetadataOverride::default(),
    };
    Ok(env.over(file))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// v2 tensor datatypes Seldon's schema allows (`TENSOR_DATA_TYPES`).
const DATATYPES: &[&str] = &[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16",
    "FP32", "FP64", "BYTES",
];

fn only_keys(map: &Map<String, Value>, allowed: &[&str], what: &str) -> Result<(), String> {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "{what}: unknown key `{k}` (allowed: {})",
            allowed.join(", ")
        )),
        None => Ok(()),
    }
}

fn string(v: &Value, what: &str) -> Result<(), String> {
    v.as_str()
        .map(|_| ())
        .ok_or_else(|| format!("{what} must be a string, got {}", kind(v)))
}

fn list_of(v: &Value, what: &str, item: fn(&Value) -> bool, item_kind: &str) -> Result<(), String> {
    match v.as_array() {
        Some(items) if items.iter().all(item) => Ok(()),
        _ => Err(format!("{what} must be a list of {item_kind}")),
    }
}

/// The top level of Seldon's `JSON_SCHEMA` (`additionalProperties: false`).
fn check_model(map: &Map<String, Value>) -> Result<(), String> {
    only_keys(
        map,
        &[
            "name", "versions", "platform", "inputs", "outputs", "custom",
        ],
        "metadata",
    )?;
    if let Some(v) = map.get("name") {
        string(v, "name")?;
    }
    if let Some(v) = map.get("platform") {
        string(v, "platform")?;
    }
    if let Some(v) = map.get("versions") {
        list_of(v, "versions", Value::is_string, "strings")?;
    }
    for key in ["inputs", "outputs"] {
        if let Some(v) = map.get(key) {
            let items = v
                .as_array()
                .ok_or_else(|| format!("{key} must be a list, got {}", kind(v)))?;
            for (i, item) in items.iter().enumerate() {
                check_tensor(item).map_err(|e| format!("{key}[{i}]: {e}"))?;
            }
        }
    }
    if let Some(v) = map.get("custom") {
        match v.as_object() {
            Some(m) if m.values().all(Value::is_string) => {}
            _ => return Err("custom must be a mapping of strings to strings".into()),
        }
    }
    Ok(())
}

/// One input/output: a v1 entry (`messagetype`, Seldon's `SELDON_*_SCHEMA` and custom
/// definition) or a v2 tensor (`name`, `datatype`, `shape`; `METADATA_TENSOR_SCHEMA`).
fn check_tensor(v: &Value) -> Result<(), String> {
    let map = v
        .as_object()
        .ok_or_else(|| format!("expected a mapping, got {}", kind(v)))?;
    let Some(mt) = map.get("messagetype") else {
        only_keys(map, &["name", "datatype", "shape"], "v2 tensor")?;
        if let Some(n) = map.get("name") {
            string(n, "name")?;
        }
        if let Some(d) = map.get("datatype") {
            match d.as_str() {
                Some(d) if DATATYPES.contains(&d) => {}
                _ => {
                    return Err(format!(
                        "datatype {d} is not one of {}",
                        DATATYPES.join(", ")
                    ));
                }
            }
        }
        if let Some(s) = map.get("shape") {
            list_of(s, "shape", Value::is_i64, "integers")?;
        }
        return Ok(());
    };
    let mt = mt
        .as_str()
        .ok_or_else(|| format!("messagetype must be a string, got {}", kind(mt)))?;
    match mt {
        "tensor" | "ndarray" | "tftensor" => {
            only_keys(map, &["messagetype", "schema"], mt)?;
            if let Some(schema) = map.get("schema") {
                let s = schema
                    .as_object()
                    .ok_or_else(|| format!("schema must be a mapping, got {}", kind(schema)))?;
                only_keys(s, &["names", "shape"], "schema")?;
                if let Some(n) = s.get("names") {
                    list_of(n, "schema.names", Value::is_string, "strings")?;
                }
                if let Some(sh) = s.get("shape") {
                    list_of(sh, "schema.shape", Value::is_i64, "integers")?;
                }
            }
        }
        "strData" | "binData" => only_keys(map, &["messagetype"], mt)?,
        // jsonData and user-defined message types may carry any JSON schema
        _ => {
            only_keys(map, &["messagetype", "schema"], mt)?;
            if let Some(schema) = map.get("schema")
                && !schema.is_object()
            {
                return Err(format!("schema must be a mapping, got {}", kind(schema)));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_and_json_give_the_same_override() {
        let yaml = "name: iris\nversions: [v1]\nplatform: sklearn\ninputs:\n- messagetype: ndarray\n  schema: {names: [a, b], shape: [2]}\noutputs:\n- {name: proba, datatype: FP64, shape: [-1, 3]}\ncustom: {author: me}\n";
        let json = r#"{"name":"iris","versions":["v1"],"platform":"sklearn",
            "inputs":[{"messagetype":"ndarray","schema":{"names":["a","b"],"shape":[2]}}],
            "outputs":[{"name":"proba","datatype":"FP64","shape":[-1,3]}],"custom":{"author":"me"}}"#;
        let a = MetadataOverride::parse(ENV, yaml).unwrap();
        assert_eq!(a, MetadataOverride::parse(ENV, json).unwrap());
        let md = a.apply(ModelMetadata::default());
        assert_eq!(
            serde_json::to_value(&md).unwrap(),
            json!({"name":"iris","versions":["v1"],"platform":"sklearn",
                "inputs":[{"messagetype":"ndarray","schema":{"names":["a","b"],"shape":[2]}}],
                "outputs":[{"name":"proba","datatype":"FP64","shape":[-1,3]}],
                "custom":{"author":"me"}})
        );
    }

    #[test]
    fn set_keys_replace_the_runtimes_and_others_stay() {
        let runtime = ModelMetadata {
            name: "rt".into(),
            platform: "xgboost".into(),
            inputs: vec![MessageMetadata {
                name: Some("x".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let md = MetadataOverride::parse(ENV, "{name: mine, inputs: []}")
            .unwrap()
            .apply(runtime);
        assert_eq!(
            (md.name.as_str(), md.platform.as_str()),
            ("mine", "xgboost")
        );
        assert!(md.inputs.is_empty());
        for empty in ["", "  ", "null", "{}"] {
            assert!(MetadataOverride::parse(ENV, empty).unwrap().is_empty());
        }
    }

    #[test]
    fn env_wins_over_the_file_key_by_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), "name: from-file\nplatform: p\n").unwrap();
        let o = load(Some("name: from-env"), Some(dir.path())).unwrap();
        assert_eq!(o.name.as_deref(), Some("from-env"));
        assert_eq!(o.platform.as_deref(), Some("p"));
        // no file, no env: nothing
        assert!(
            load(None, Some(&dir.path().join("none")))
                .unwrap()
                .is_empty()
        );
        std::fs::write(dir.path().join(FILE), "name: [").unwrap();
        let e = load(None, Some(dir.path())).unwrap_err();
        assert!(e.origin.ends_with("metadata.yaml"), "{e}");
    }

    #[test]
    fn what_seldons_schema_refuses_is_refused_with_the_reason() {
        let cases = [
            ("name: [", "not YAML or JSON"),
            ("[1, 2]", "expected a mapping, got a list"),
            ("name: 3", "name must be a string"),
            ("versions: v1", "versions must be a list of strings"),
            ("model: x", "unknown key `model`"),
            ("inputs: {a: 1}", "inputs must be a list"),
            (
                "inputs: [{messagetype: ndarray, shape: [1]}]",
                "inputs[0]: ndarray: unknown key `shape`",
            ),
            (
                "inputs: [{messagetype: tensor, schema: {shape: [a]}}]",
                "schema.shape must be a list of integers",
            ),
            (
                "outputs: [{name: y, datatype: FP31, shape: [1]}]",
                "outputs[0]: datatype \"FP31\" is not one of",
            ),
            (
                "outputs: [{name: y, datatype: FP32, shape: [1.5]}]",
                "shape must be a list of integers",
            ),
            (
                "outputs: [{name: y, type: FP32}]",
                "v2 tensor: unknown key `type`",
            ),
            (
                "inputs: [{messagetype: strData, schema: {}}]",
                "strData: unknown key `schema`",
            ),
            (
                "inputs: [{messagetype: custom, schema: 3}]",
                "schema must be a mapping",
            ),
            (
                "custom: {a: 1}",
                "custom must be a mapping of strings to strings",
            ),
        ];
        for (text, want) in cases {
            let e = MetadataOverride::parse(ENV, text).unwrap_err().to_string();
            assert!(
                e.starts_with("MODEL_METADATA is not valid Seldon model metadata: ")
                    && e.contains(want),
                "{text}: {e}"
            );
            assert!(!e.contains('\n'), "one line: {e}");
        }
        // v1 custom message types and jsonData with a schema are fine
        MetadataOverride::parse(
            ENV,
            "inputs: [{messagetype: jsonData, schema: {type: object}}, {messagetype: mytype}, {messagetype: binData}]",
        )
        .unwrap();
    }
}
