//! The spec, and its form for one deployment.

use seldon_graph::Protocol;
use serde_json::{Value, json};
use thiserror::Error;

/// The OpenAPI 3.1 document of the external API, as committed (`crates/apidocs/openapi.yaml`).
pub const SPEC_YAML: &str = include_str!("../openapi.yaml");

/// The committed document does not parse.
#[derive(Debug, Error)]
pub enum SpecError {
    #[error("crates/apidocs/openapi.yaml is not valid YAML")]
    Yaml(#[from] serde_yaml::Error),
    #[error("crates/apidocs/openapi.yaml is not an OpenAPI document: {0}")]
    Shape(&'static str),
}

/// [`SPEC_YAML`] as JSON.
pub fn spec() -> Result<Value, SpecError> {
    parse(SPEC_YAML)
}

fn parse(yaml: &str) -> Result<Value, SpecError> {
    let value: Value = serde_yaml::from_str(yaml)?;
    if !value.get("paths").is_some_and(Value::is_object) {
        return Err(SpecError::Shape("no `paths` object"));
    }
    if !value.get("components").is_some_and(Value::is_object) {
        return Err(SpecError::Shape("no `components` object"));
    }
    Ok(value)
}

/// The deployment a served spec describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub namespace: String,
    pub deployment: String,
    /// The graph's protocol: which half of the API it serves.
    pub protocol: Protocol,
    /// The graph's root node (a valid `{model}` of `/v2/models/{model}/...`).
    pub root: String,
    /// The nodes the filter calls (valid `{node}`s of `/api/v1.0/metadata/{node}`).
    pub nodes: Vec<String>,
}

/// The spec for one deployment, as Seldon's executor rewrote its `seldon.json` with the
/// namespace and name: one server, `/seldon/<ns>/<sdep>` (relative, so Swagger UI's "Try it
/// out" calls the gateway that served the page), only the paths of the graph's protocol
/// (and the health paths), and the model and node names as the path parameters' choices.
pub fn for_deployment(spec: &Value, target: &Target) -> Value {
    let mut out = spec.clone();
    let other = match target.protocol {
        Protocol::V2 => "seldon",
        Protocol::Seldon | Protocol::Tensorflow => "v2",
    };
    out["info"]["title"] = json!(format!(
        "{}/{} (seldon-mesh)",
        target.namespace, target.deployment
    ));
    out["servers"] = json!([{
        "url": format!("/seldon/{}/{}", target.namespace, target.deployment),
        "description": "the gateway that serves this page",
    }]);
    if let Some(paths) = out["paths"].as_object_mut() {
        paths.retain(|_, item| !has_tag(item, other));
    }
    if let Some(tags) = out["tags"].as_array_mut() {
        tags.retain(|t| t["name"] != other);
    }
    let params = &mut out["components"]["parameters"];
    let mut models = vec![target.deployment.clone()];
    if target.root != target.deployment {
        models.push(target.root.clone());
    }
    params["Model"]["schema"] =
        json!({"type": "string", "enum": models, "default": target.deployment});
    if let Some(first) = target.nodes.first() {
        params["Node"]["schema"] =
            json!({"type": "string", "enum": target.nodes, "default": first});
    }
    out
}

/// Any operation of this path item carries `tag`.
fn has_tag(item: &Value, tag: &str) -> bool {
    item.as_object().is_some_and(|ops| {
        ops.values().any(|op| {
            op["tags"]
                .as_array()
                .is_some_and(|tags| tags.iter().any(|t| t == tag))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(protocol: Protocol) -> Target {
        Target {
            namespace: "team".into(),
            deployment: "iris".into(),
            protocol,
            root: "classifier".into(),
            nodes: vec!["classifier".into(), "tin".into()],
        }
    }

    #[test]
    fn the_committed_spec_parses() {
        let s = spec().unwrap();
        assert_eq!(s["openapi"], "3.1.0");
        assert!(s["paths"]["/api/v1.0/predictions"]["post"].is_object());
        assert!(s["paths"]["/v2/models/{model}/infer"]["post"].is_object());
    }

    #[test]
    fn a_document_without_paths_or_components_is_refused() {
        assert!(matches!(
            parse("openapi: 3.1.0\ncomponents: {}\n"),
            Err(SpecError::Shape(_))
        ));
        assert!(matches!(
            parse("openapi: 3.1.0\npaths: {}\n"),
            Err(SpecError::Shape(_))
        ));
        assert!(matches!(parse("paths: [\n"), Err(SpecError::Yaml(_))));
    }

    #[test]
    fn a_seldon_graph_gets_the_v1_paths_its_server_and_its_names() {
        let s = for_deployment(&spec().unwrap(), &target(Protocol::Seldon));
        assert_eq!(
            s["servers"],
            json!([{"url": "/seldon/team/iris", "description": "the gateway that serves this page"}])
        );
        let paths = s["paths"].as_object().unwrap();
        assert!(paths.contains_key("/api/v1.0/predictions"));
        assert!(paths.contains_key("/health/ping"));
        assert!(
            paths.contains_key("/v2/health/ready"),
            "health paths answer for every graph"
        );
        assert!(!paths.contains_key("/v2/models/{model}/infer"));
        assert!(
            s["tags"]
                .as_array()
                .unwrap()
                .iter()
                .all(|t| t["name"] != "v2")
        );
        assert_eq!(
            s["components"]["parameters"]["Node"]["schema"]["enum"],
            json!(["classifier", "tin"])
        );
        assert_eq!(s["info"]["title"], "team/iris (seldon-mesh)");
    }

    #[test]
    fn a_v2_graph_gets_the_v2_paths_and_its_model_names() {
        let s = for_deployment(&spec().unwrap(), &target(Protocol::V2));
        let paths = s["paths"].as_object().unwrap();
        assert!(paths.contains_key("/v2/models/{model}/infer"));
        assert!(!paths.contains_key("/api/v1.0/predictions"));
        assert!(!paths.contains_key("/api/v1.0/feedback"));
        assert_eq!(
            s["components"]["parameters"]["Model"]["schema"],
            json!({"type": "string", "enum": ["iris", "classifier"], "default": "iris"})
        );
    }
}
