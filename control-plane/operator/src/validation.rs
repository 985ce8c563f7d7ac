//! What the webhook calls: the same parse + `seldon_render::check` (CRD rules and the
//! graph's `compile` through the rendered filter configs) that `seldon-mesh validate` runs.

use std::sync::Arc;

use seldon_render::RenderOptions;

use crate::webhook::Validator;

/// Every problem with one SeldonDeployment given as JSON, each `path: message`.
pub fn problems(value: &serde_json::Value, options: &RenderOptions) -> Vec<String> {
    // JSON is YAML: the CLI's parser gives the same paths and unknown-field report.
    let text = value.to_string();
    let parsed = match seldon_crd::parse_yaml(&text) {
        Ok(mut docs) if docs.len() == 1 => docs.remove(0),
        Ok(docs) => {
            return vec![format!(
                "expected one SeldonDeployment, found {}",
                docs.len()
            )];
        }
        Err(e) => return vec![strip_document(&e.to_string())],
    };
    let mut out: Vec<String> = parsed
        .unknown_fields
        .iter()
        .map(|p| {
            format!(
                "{p}: unknown field (not part of SeldonDeployment; the API server would drop it)"
            )
        })
        .collect();
    out.extend(
        seldon_render::check(&parsed.sdep, options)
            .iter()
            .map(ToString::to_string),
    );
    out
}

/// "document 1: x" → "x": a review carries one object, numbering it only confuses.
fn strip_document(msg: &str) -> String {
    msg.strip_prefix("document 1: ")
        .or_else(|| msg.strip_prefix("document 1"))
        .unwrap_or(msg)
        .trim_start()
        .to_string()
}

/// The webhook's validator over `options`.
pub fn validator(options: RenderOptions) -> Validator {
    Arc::new(move |value| {
        let p = problems(value, &options);
        if p.is_empty() { Ok(()) } else { Err(p) }
    })
}
