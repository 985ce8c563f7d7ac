//! Reading SeldonDeployment YAML the way a user needs it explained: parse errors with line,
//! column and field path, and every field the types do not know (which the API server would
//! silently prune) reported with its path.

use serde::Deserialize;
use thiserror::Error;

use crate::spec::SeldonDeployment;

/// API versions Seldon Core v1 serves (all the same schema).
pub const API_VERSIONS: &[&str] = &[
    "machinelearning.seldon.io/v1",
    "machinelearning.seldon.io/v1alpha2",
    "machinelearning.seldon.io/v1alpha3",
];
pub const KIND: &str = "SeldonDeployment";

/// One parsed document.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub sdep: SeldonDeployment,
    /// Paths of fields that are not part of the SeldonDeployment schema, e.g.
    /// `spec.predictors[0].graph.modelURI`.
    pub unknown_fields: Vec<String>,
}

/// Why a document could not be read.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ParseError {
    #[error("document {document}{}: {path}: {message}", location(*.line, *.column))]
    Invalid {
        document: usize,
        path: String,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    #[error("document {document}: apiVersion {found:?} is not a SeldonDeployment version; expected one of {}", API_VERSIONS.join(", "))]
    WrongApiVersion { document: usize, found: String },
    #[error("document {document}: kind {found:?} is not {KIND}")]
    WrongKind { document: usize, found: String },
    #[error("no YAML document found")]
    Empty,
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
        (Some(l), None) => format!(" (line {l})"),
        _ => String::new(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeMeta {
    api_version: Option<String>,
    kind: Option<String>,
}

/// Parses every YAML document in `text` as a SeldonDeployment (documents are numbered from 1).
/// Empty documents (`---` alone) are skipped.
pub fn parse_yaml(text: &str) -> Result<Vec<Parsed>, ParseError> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let document = i + 1;
        let value = serde_yaml::Value::deserialize(doc)
            .map_err(|e| yaml_error(document, String::new(), &e))?;
        if value.is_null() {
            continue;
        }
        let meta: TypeMeta =
            serde_yaml::from_value(value).map_err(|e| yaml_error(document, String::new(), &e))?;
        match meta.api_version.as_deref() {
            Some(v) if API_VERSIONS.contains(&v) => {}
            other => {
                return Err(ParseError::WrongApiVersion {
                    document,
                    found: other.unwrap_or("").to_string(),
                });
            }
        }
        if meta.kind.as_deref() != Some(KIND) {
            return Err(ParseError::WrongKind {
                document,
                found: meta.kind.unwrap_or_default(),
            });
        }
        out.push((document, None::<Parsed>));
    }
    if out.is_empty() {
        return Err(ParseError::Empty);
    }
    // Second pass with location-preserving deserializers (the first pass only checked types).
    let mut parsed = Vec::new();
    let mut wanted = out.iter().map(|(d, _)| *d).peekable();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let document = i + 1;
        if wanted.peek() != Some(&document) {
            continue;
        }
        wanted.next();
        let mut unknown = Vec::new();
        let mut record = |path: serde_ignored::Path<'_>| {
            let p = format_path(&path);
            if p != "apiVersion" && p != "kind" {
                unknown.push(p);
            }
        };
        let ignored = serde_ignored::Deserializer::new(doc, &mut record);
        let sdep: SeldonDeployment = serde_path_to_error::deserialize(ignored).map_err(|e| {
            let path = e.path().to_string();
            yaml_error(document, path, e.inner())
        })?;
        parsed.push(Parsed {
            sdep,
            unknown_fields: unknown,
        });
    }
    Ok(parsed)
}

/// `spec.predictors[0].graph.modelURI`: the same form as validation paths.
fn format_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", format_path(parent)),
        Path::Map { parent, key } => {
            let p = format_path(parent);
            if p.is_empty() {
                key.clone()
            } else {
                format!("{p}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => format_path(parent),
    }
}

fn yaml_error(document: usize, path: String, e: &serde_yaml::Error) -> ParseError {
    let loc = e.location();
    let mut message = e.to_string();
    // serde_yaml appends " at line L column C"; the location is reported separately.
    if let Some(idx) = message.find(" at line ") {
        message.truncate(idx);
    }
    // serde_yaml also prefixes the path; it is reported separately.
    if let Some(rest) = message.strip_prefix(&format!("{path}: ")) {
        message = rest.to_string();
    }
    ParseError::Invalid {
        document,
        path: if path.is_empty() || path == "." {
            "(document)".to_string()
        } else {
            path
        },
        line: loc.as_ref().map(|l| l.line()),
        column: loc.as_ref().map(|l| l.column()),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: iris}
spec:
  predictors:
  - name: default
    graph: {name: clf, implementation: SKLEARN_SERVER, modelUri: gs://x}
";

    #[test]
    fn reads_a_v1_manifest() {
        let docs = parse_yaml(GOOD).unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].sdep.spec.predictors[0].graph.name, "clf");
        assert!(
            docs[0].unknown_fields.is_empty(),
            "{:?}",
            docs[0].unknown_fields
        );
    }

    #[test]
    fn unknown_fields_are_reported_with_their_path() {
        let text = GOOD.replace("modelUri: gs://x", "modelUri: gs://x, modelURI: gs://y").replace(
            "  - name: default\n",
            "  - name: default\n    componentSpecs:\n    - spec:\n        containers: [{name: clf, imagePolicy: x}]\n",
        );
        let docs = parse_yaml(&text).unwrap();
        assert_eq!(
            docs[0].unknown_fields,
            [
                "spec.predictors[0].componentSpecs[0].spec.containers[0].imagePolicy",
                "spec.predictors[0].graph.modelURI"
            ]
        );
    }

    #[test]
    fn type_errors_name_path_line_and_column() {
        let text = GOOD.replace(
            "  - name: default\n",
            "  - name: default\n    replicas: many\n",
        );
        let err = parse_yaml(&text).unwrap_err();
        match &err {
            ParseError::Invalid {
                path, line, column, ..
            } => {
                assert_eq!(path, "spec.predictors[0].replicas");
                assert_eq!(*line, Some(7));
                assert!(column.is_some());
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("line 7"), "{err}");
    }

    #[test]
    fn bad_yaml_has_a_location() {
        let err = parse_yaml("apiVersion: machinelearning.seldon.io/v1\nkind: [\n").unwrap_err();
        assert!(
            matches!(err, ParseError::Invalid { line: Some(_), .. }),
            "{err:?}"
        );
    }

    #[test]
    fn wrong_kind_and_version_are_named() {
        let err =
            parse_yaml(&GOOD.replace("kind: SeldonDeployment", "kind: Deployment")).unwrap_err();
        assert_eq!(
            err,
            ParseError::WrongKind {
                document: 1,
                found: "Deployment".into()
            }
        );
        let err = parse_yaml(&GOOD.replace("io/v1\n", "io/v2\n")).unwrap_err();
        assert!(
            err.to_string().contains("machinelearning.seldon.io/v2"),
            "{err}"
        );
        assert_eq!(parse_yaml("").unwrap_err(), ParseError::Empty);
    }

    #[test]
    fn v1alpha2_is_accepted() {
        let docs = parse_yaml(&GOOD.replace("io/v1\n", "io/v1alpha2\n")).unwrap();
        assert_eq!(docs.len(), 1);
    }
}
