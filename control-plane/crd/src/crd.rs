//! The `CustomResourceDefinition`, generated from the Rust types.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceValidation, JSONSchemaProps,
};
use kube::CustomResourceExt;

use crate::spec::SeldonDeployment;

/// Header of the committed CRD file.
pub const GENERATED_HEADER: &str = "# Generated from control-plane/crd (seldon-crd). Do not edit: run `UPDATE_GOLDENS=1 cargo test -p seldon-crd`.\n";

/// Subtrees whose schema comes from k8s-openapi (PodSpec, ObjectMeta, Container, ...): their
/// Kubernetes descriptions are dropped, as Seldon's `controller-gen crd:maxDescLen=0` did, to
/// keep the CRD well under etcd's object size limit.
const KUBERNETES_SUBTREES: &[&str] = &[
    "/properties/spec/properties/predictors/items/properties/componentSpecs/items/properties/metadata",
    "/properties/spec/properties/predictors/items/properties/componentSpecs/items/properties/spec",
    "/properties/spec/properties/predictors/items/properties/componentSpecs/items/properties/hpaSpec",
    "/properties/spec/properties/predictors/items/properties/componentSpecs/items/properties/pdbSpec",
    "/properties/spec/properties/predictors/items/properties/explainer/properties/containerSpec",
    "/properties/spec/properties/predictors/items/properties/svcOrchSpec",
    "/properties/spec/properties/predictors/items/properties/engineResources",
];

/// The SeldonDeployment CRD. `v1` is served and stored with the full typed schema.
/// `v1alpha2` and `v1alpha3` are served too, as in Seldon Core v1, so older manifests still
/// apply; they keep `spec`/`status` unpruned (the schema would otherwise be three times the
/// size) and rely on the validating webhook, which checks every version with the same rules.
pub fn crd() -> CustomResourceDefinition {
    let mut crd = SeldonDeployment::crd();
    if let Some(v1) = crd.spec.versions.first_mut()
        && let Some(validation) = v1.schema.as_mut()
        && let Some(schema) = validation.open_api_v3_schema.take()
    {
        let mut value = serde_json::to_value(schema).unwrap_or_default();
        for pointer in KUBERNETES_SUBTREES {
            if let Some(sub) = value.pointer_mut(pointer) {
                strip_descriptions(sub);
            }
        }
        validation.open_api_v3_schema = serde_json::from_value(value).ok();
    }
    if let Some(v1) = crd.spec.versions.first().cloned() {
        for name in ["v1alpha2", "v1alpha3"] {
            let mut version = v1.clone();
            version.name = name.to_string();
            version.storage = false;
            version.schema = Some(CustomResourceValidation {
                open_api_v3_schema: Some(open_schema()),
            });
            crd.spec.versions.push(version);
        }
    }
    crd
}

fn open_schema() -> JSONSchemaProps {
    let open = JSONSchemaProps {
        type_: Some("object".to_string()),
        x_kubernetes_preserve_unknown_fields: Some(true),
        ..Default::default()
    };
    JSONSchemaProps {
        type_: Some("object".to_string()),
        properties: Some(
            [
                ("spec".to_string(), open.clone()),
                ("status".to_string(), open),
            ]
            .into(),
        ),
        ..Default::default()
    }
}

fn strip_descriptions(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.remove("description");
            // `properties` maps field names to schemas: a field called "description" is kept.
            for (key, v) in map.iter_mut() {
                if key == "properties" {
                    if let serde_json::Value::Object(props) = v {
                        props.values_mut().for_each(strip_descriptions);
                    }
                } else {
                    strip_descriptions(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_descriptions),
        _ => {}
    }
}

/// The CRD as YAML, with the generated-file header.
pub fn crd_yaml() -> String {
    // A CRD is plain data; serializing it cannot fail.
    let body = serde_yaml::to_string(&crd()).unwrap_or_default();
    format!("{GENERATED_HEADER}{body}")
}
