//! Checks a real request or answer against the spec: the path and method must be documented,
//! the status too (or a `default`), the content type too, and the body must match its schema
//! (JSON Schema 2020-12, the dialect of OpenAPI 3.1).

use serde_json::{Map, Value, json};
use thiserror::Error;

/// How an exchange disagrees with the spec.
#[derive(Debug, Error, PartialEq)]
pub enum CheckError {
    #[error("no path of the spec matches {0}")]
    NoPath(String),
    #[error("{template} has no {method} operation in the spec")]
    NoOperation { method: String, template: String },
    #[error("{method} {template} documents no {status} answer and no default")]
    UndocumentedStatus {
        method: String,
        template: String,
        status: u16,
    },
    #[error("{what} of {method} {template}: the spec documents no body of type {content_type}")]
    UndocumentedContent {
        what: &'static str,
        method: String,
        template: String,
        content_type: String,
    },
    #[error("{what} of {method} {template} is not JSON: {detail}")]
    NotJson {
        what: &'static str,
        method: String,
        template: String,
        detail: String,
    },
    #[error("the spec is broken at {at}: {detail}")]
    BadSpec { at: String, detail: String },
    #[error("{what} of {method} {template} does not match the spec's schema:\n{}", errors.join("\n"))]
    Mismatch {
        what: &'static str,
        method: String,
        template: String,
        errors: Vec<String>,
    },
}

/// Checks an answer: `path` is what follows the gateway prefix (e.g.
/// `/api/v1.0/predictions`), `content_type` the answer's header. A 404 or 405 for a path or
/// method the spec does not document is checked against the spec's `NotFound` and
/// `MethodNotAllowed` responses (what the filter answers for anything else).
pub fn check_response(
    spec: &Value,
    method: &str,
    path: &str,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(), CheckError> {
    let (template, op) = match operation(spec, method, path) {
        Ok(found) => found,
        Err(e @ (CheckError::NoPath(_) | CheckError::NoOperation { .. })) => {
            let fallback = match status {
                404 => "NotFound",
                405 => "MethodNotAllowed",
                _ => return Err(e),
            };
            let pointer = format!("/components/responses/{fallback}");
            let response = spec.pointer(&pointer).ok_or_else(|| CheckError::BadSpec {
                at: pointer.clone(),
                detail: "missing".into(),
            })?;
            let template = format!(
                "{} (undocumented, {fallback})",
                path.split('?').next().unwrap_or_default()
            );
            return check_body(
                spec,
                "the answer",
                method,
                &template,
                response,
                content_type,
                body,
            );
        }
        Err(e) => return Err(e),
    };
    let responses = &op["responses"];
    let response = responses
        .get(status.to_string())
        .or_else(|| responses.get(format!("{}XX", status / 100)))
        .or_else(|| responses.get("default"))
        .ok_or_else(|| CheckError::UndocumentedStatus {
            method: method.to_uppercase(),
            template: template.clone(),
            status,
        })?;
    let response = deref(spec, response)?;
    check_body(
        spec,
        "the answer",
        method,
        &template,
        response,
        content_type,
        body,
    )
}

/// Checks a request body sent to `method path`.
pub fn check_request(
    spec: &Value,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(), CheckError> {
    let (template, op) = operation(spec, method, path)?;
    let Some(request) = op.get("requestBody") else {
        return if body.is_empty() {
            Ok(())
        } else {
            Err(CheckError::UndocumentedContent {
                what: "the request",
                method: method.to_uppercase(),
                template,
                content_type: content_type.unwrap_or("(none)").to_string(),
            })
        };
    };
    let request = deref(spec, request)?;
    check_body(
        spec,
        "the request",
        method,
        &template,
        request,
        content_type,
        body,
    )
}

/// The path template matching `path` and its operation for `method`. Literal segments win
/// over parameters (`/v2/models/infer` is not `/v2/models/{model}`).
fn operation<'s>(
    spec: &'s Value,
    method: &str,
    path: &str,
) -> Result<(String, &'s Value), CheckError> {
    let path = path.split('?').next().unwrap_or_default();
    let segments: Vec<&str> = path.split('/').collect();
    let paths = spec["paths"]
        .as_object()
        .ok_or_else(|| CheckError::BadSpec {
            at: "/paths".into(),
            detail: "not an object".into(),
        })?;
    let template = paths
        .keys()
        .filter_map(|t| {
            let parts: Vec<&str> = t.split('/').collect();
            if parts.len() != segments.len() {
                return None;
            }
            let mut params = 0;
            for (p, s) in parts.iter().zip(&segments) {
                if p.starts_with('{') && p.ends_with('}') {
                    if s.is_empty() {
                        return None;
                    }
                    params += 1;
                } else if p != s {
                    return None;
                }
            }
            Some((params, t))
        })
        .min()
        .map(|(_, t)| t.clone())
        .ok_or_else(|| CheckError::NoPath(path.to_string()))?;
    let op =
        paths[&template]
            .get(method.to_lowercase())
            .ok_or_else(|| CheckError::NoOperation {
                method: method.to_uppercase(),
                template: template.clone(),
            })?;
    Ok((template, op))
}

/// Follows `$ref`s within the document.
fn deref<'s>(spec: &'s Value, mut v: &'s Value) -> Result<&'s Value, CheckError> {
    for _ in 0..16 {
        let Some(r) = v.get("$ref").and_then(Value::as_str) else {
            return Ok(v);
        };
        v = r
            .strip_prefix('#')
            .and_then(|pointer| spec.pointer(pointer))
            .ok_or_else(|| CheckError::BadSpec {
                at: r.to_string(),
                detail: "the reference points nowhere in the document".into(),
            })?;
    }
    Err(CheckError::BadSpec {
        at: "$ref".into(),
        detail: "more than 16 references in a row".into(),
    })
}

fn check_body(
    spec: &Value,
    what: &'static str,
    method: &str,
    template: &str,
    documented: &Value,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(), CheckError> {
    let method = method.to_uppercase();
    let content = documented.get("content").and_then(Value::as_object);
    let media = content_type
        .and_then(|ct| ct.split(';').next())
        .map(|ct| ct.trim().to_ascii_lowercase());
    let undocumented = |ct: &str| CheckError::UndocumentedContent {
        what,
        method: method.clone(),
        template: template.to_string(),
        content_type: ct.to_string(),
    };
    let Some(content) = content else {
        return if body.is_empty() {
            Ok(())
        } else {
            Err(undocumented(media.as_deref().unwrap_or("(none)")))
        };
    };
    let media = media.ok_or_else(|| undocumented("(none)"))?;
    let entry = content.get(&media).ok_or_else(|| undocumented(&media))?;
    let instance = if media == "application/json" || media.ends_with("+json") {
        serde_json::from_slice(body).map_err(|e| CheckError::NotJson {
            what,
            method: method.clone(),
            template: template.to_string(),
            detail: e.to_string(),
        })?
    } else {
        Value::String(String::from_utf8_lossy(body).into_owned())
    };
    let schema = entry.get("schema").cloned().unwrap_or(json!({}));
    let errors = validate(spec, schema, &instance)?;
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CheckError::Mismatch {
            what,
            method,
            template: template.to_string(),
            errors,
        })
    }
}

/// Validates `instance` against `schema`, whose `#/components/...` references resolve in the
/// spec.
fn validate(spec: &Value, schema: Value, instance: &Value) -> Result<Vec<String>, CheckError> {
    let mut root = match schema {
        Value::Object(map) => map,
        Value::Bool(true) => Map::new(),
        other => {
            return Err(CheckError::BadSpec {
                at: "schema".into(),
                detail: format!("not a schema object: {other}"),
            });
        }
    };
    root.insert(
        "$schema".into(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    root.insert("components".into(), spec["components"].clone());
    let root = Value::Object(root);
    let validator = jsonschema::validator_for(&root).map_err(|e| CheckError::BadSpec {
        at: "schema".into(),
        detail: e.to_string(),
    })?;
    Ok(validator
        .iter_errors(instance)
        .map(|e| format!("at {:?}: {e}", e.instance_path().to_string()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec;

    fn s() -> Value {
        spec().unwrap()
    }

    #[test]
    fn literal_segments_win_over_parameters() {
        let s = s();
        assert_eq!(
            operation(&s, "POST", "/v2/models/infer").unwrap().0,
            "/v2/models/infer"
        );
        assert_eq!(
            operation(&s, "POST", "/v2/models/iris/infer?x=1")
                .unwrap()
                .0,
            "/v2/models/{model}/infer"
        );
        assert_eq!(
            operation(&s, "get", "/api/v1.0/metadata/clf").unwrap().0,
            "/api/v1.0/metadata/{node}"
        );
    }

    #[test]
    fn unknown_paths_methods_and_statuses_are_named() {
        let s = s();
        assert_eq!(
            check_response(&s, "POST", "/api/v9/predictions", 200, None, b""),
            Err(CheckError::NoPath("/api/v9/predictions".into()))
        );
        assert!(matches!(
            check_response(&s, "GET", "/api/v1.0/predictions", 200, None, b""),
            Err(CheckError::NoOperation { .. })
        ));
        assert!(matches!(
            check_response(&s, "GET", "/live", 418, None, b""),
            Err(CheckError::UndocumentedStatus { status: 418, .. })
        ));
        assert!(matches!(
            check_response(&s, "GET", "/live", 200, Some("text/html"), b"<p>"),
            Err(CheckError::UndocumentedContent { .. })
        ));
        assert!(matches!(
            check_response(&s, "GET", "/live", 200, Some("application/json"), b"{"),
            Err(CheckError::NotJson { .. })
        ));
    }

    #[test]
    fn answers_are_checked_against_their_schemas() {
        let s = s();
        let ok = br#"{"data":{"names":["a"],"ndarray":[[1.5]]},"meta":{"routing":{"r":0}}}"#;
        check_response(
            &s,
            "POST",
            "/api/v1.0/predictions",
            200,
            Some("application/json"),
            ok,
        )
        .unwrap();
        let two_payloads = br#"{"data":{"ndarray":[[1]]},"strData":"x"}"#;
        let err = check_response(
            &s,
            "POST",
            "/api/v1.0/predictions",
            200,
            Some("application/json"),
            two_payloads,
        )
        .unwrap_err();
        assert!(matches!(err, CheckError::Mismatch { .. }), "{err}");
        let err = check_response(
            &s,
            "POST",
            "/api/v1.0/predictions",
            503,
            Some("application/json"),
            br#"{"status":{"code":503,"info":"x","reason":"SOMETHING_ELSE","status":"FAILURE"}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("SOMETHING_ELSE"), "{err}");
        check_response(
            &s,
            "GET",
            "/health/ping",
            200,
            Some("text/plain; charset=utf-8"),
            b"pong",
        )
        .unwrap();
        assert!(
            check_response(&s, "GET", "/health/ping", 200, Some("text/plain"), b"ping").is_err()
        );
    }

    #[test]
    fn undocumented_paths_answer_the_documented_404_and_405() {
        let s = s();
        let not_found = br#"{"status":{"code":404,"info":"no endpoint /x","reason":"NOT_FOUND","status":"FAILURE"}}"#;
        check_response(&s, "GET", "/x", 404, Some("application/json"), not_found).unwrap();
        let not_allowed = br#"{"status":{"code":405,"info":"POST only","reason":"METHOD_NOT_ALLOWED","status":"FAILURE"}}"#;
        check_response(
            &s,
            "GET",
            "/api/v1.0/predictions",
            405,
            Some("application/json"),
            not_allowed,
        )
        .unwrap();
        assert!(matches!(
            check_response(&s, "GET", "/x", 404, Some("application/json"), b"{}"),
            Err(CheckError::Mismatch { .. })
        ));
        assert!(matches!(
            check_response(&s, "GET", "/x", 500, Some("application/json"), not_found),
            Err(CheckError::NoPath(_))
        ));
    }

    #[test]
    fn requests_are_checked_too() {
        let s = s();
        let req = br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}"#;
        check_request(
            &s,
            "POST",
            "/v2/models/m/infer",
            Some("application/json"),
            req,
        )
        .unwrap();
        let bad = br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FLOAT","data":[1]}]}"#;
        assert!(matches!(
            check_request(
                &s,
                "POST",
                "/v2/models/m/infer",
                Some("application/json"),
                bad
            ),
            Err(CheckError::Mismatch { .. })
        ));
        assert!(matches!(
            check_request(&s, "GET", "/ready", Some("application/json"), b"{}"),
            Err(CheckError::UndocumentedContent { .. })
        ));
    }

    #[test]
    fn a_dangling_reference_is_a_broken_spec() {
        let mut s = s();
        s["paths"]["/live"]["get"]["responses"]["200"] =
            json!({"$ref": "#/components/responses/Nope"});
        assert!(matches!(
            check_response(&s, "GET", "/live", 200, Some("application/json"), b"{}"),
            Err(CheckError::BadSpec { .. })
        ));
    }
}
