//! Schema pieces that derive cannot express structurally.
//!
//! The graph is recursive (`children: [PredictiveUnit]`), and Kubernetes structural schemas
//! forbid `$ref` and recursion. [`graph_schema`] takes the schema *derived* from
//! `seldon_graph::PredictiveUnit` (so it never drifts from the type) and unrolls it
//! [`TYPED_GRAPH_LEVELS`] levels deep; below that, nodes are objects with
//! `x-kubernetes-preserve-unknown-fields`, kept unpruned and checked by `compile` in the webhook.

use schemars::generate::SchemaSettings;
use schemars::{Schema, SchemaGenerator};
use seldon_graph::PredictiveUnit;
use serde_json::{Map, Value, json};

/// Graph levels with a typed schema: the root plus four levels of children. Every Seldon
/// example and every sample here is at most three levels deep.
pub const TYPED_GRAPH_LEVELS: usize = 5;

/// `schema_with` for `PredictorSpec.graph`.
pub fn graph_schema(_: &mut SchemaGenerator) -> Schema {
    let mut generator = SchemaSettings::openapi3()
        .with(|s| s.inline_subschemas = false)
        .into_generator();
    let root = generator.subschema_for::<PredictiveUnit>();
    let definitions = generator.take_definitions(true);
    let unrolled = unroll(root.to_value(), &definitions, TYPED_GRAPH_LEVELS);
    Schema::try_from(unrolled).unwrap_or_else(|_| preserve_unknown())
}

/// `schema_with` for free-form objects (KEDA `advanced`).
pub fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    preserve_unknown()
}

fn preserve_unknown() -> Schema {
    schemars::json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

/// Replaces every `$ref` by its definition; a `$ref` to `PredictiveUnit` spends one level, and
/// when none are left it becomes a free-form object.
fn unroll(value: Value, definitions: &Map<String, Value>, levels: usize) -> Value {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                let name = reference.rsplit('/').next().unwrap_or_default();
                let is_unit = name == "PredictiveUnit";
                if is_unit && levels == 0 {
                    return json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
                }
                let Some(def) = definitions.get(name) else {
                    return Value::Object(map);
                };
                let next = if is_unit { levels - 1 } else { levels };
                return unroll(def.clone(), definitions, next);
            }
            Value::Object(
                map.into_iter()
                    .map(|(k, v)| (k, unroll(v, definitions, levels)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|v| unroll(v, definitions, levels))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_of_typed_children(schema: &Value) -> usize {
        let mut depth = 1;
        let mut node = schema;
        while let Some(items) = node.pointer("/properties/children/items") {
            if items.get("x-kubernetes-preserve-unknown-fields").is_some() {
                return depth;
            }
            depth += 1;
            node = items;
        }
        depth
    }

    #[test]
    fn graph_is_typed_to_a_fixed_depth_then_free_form() {
        let schema = graph_schema(&mut SchemaGenerator::default()).to_value();
        assert_eq!(depth_of_typed_children(&schema), TYPED_GRAPH_LEVELS);
        let text = schema.to_string();
        assert!(!text.contains("$ref"), "{text}");
        assert!(text.contains("modelUri") && text.contains("service_host"));
    }

    #[test]
    fn unknown_reference_is_left_alone() {
        let v = unroll(json!({"$ref": "#/definitions/Nope"}), &Map::new(), 1);
        assert_eq!(v, json!({"$ref": "#/definitions/Nope"}));
    }
}
