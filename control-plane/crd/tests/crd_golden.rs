//! The committed CRD YAML is exactly what the types generate (`UPDATE_GOLDENS=1` rewrites it).

use std::path::PathBuf;

fn golden() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../manifests/crd/seldondeployments.yaml")
}

#[test]
fn crd_yaml_matches_golden() {
    let generated = seldon_crd::crd_yaml();
    if std::env::var_os("UPDATE_GOLDENS").is_some() {
        std::fs::write(golden(), &generated).unwrap();
    }
    let committed = std::fs::read_to_string(golden())
        .expect("manifests/crd/seldondeployments.yaml missing; run with UPDATE_GOLDENS=1");
    assert!(
        committed == generated,
        "CRD drifted from the types; run `UPDATE_GOLDENS=1 cargo test -p seldon-crd` and review the diff"
    );
}

#[test]
fn crd_has_seldon_names_subresources_and_versions() {
    let crd = seldon_crd::crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("seldondeployments.machinelearning.seldon.io")
    );
    assert_eq!(
        crd.spec.names.short_names.as_deref(),
        Some(&["sdep".to_string()][..])
    );
    let versions: Vec<_> = crd
        .spec
        .versions
        .iter()
        .map(|v| (v.name.as_str(), v.storage))
        .collect();
    assert_eq!(
        versions,
        [("v1", true), ("v1alpha2", false), ("v1alpha3", false)]
    );
    let v1 = &crd.spec.versions[0];
    let sub = v1.subresources.as_ref().unwrap();
    assert!(sub.status.is_some());
    let scale = sub.scale.as_ref().unwrap();
    assert_eq!(scale.spec_replicas_path, ".spec.replicas");
    assert_eq!(scale.status_replicas_path, ".status.replicas");
    let columns: Vec<_> = v1
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["State", "Replicas", "URL", "Age"]);
}

#[test]
fn schema_is_structural_no_refs_and_types_pod_spec() {
    let yaml = seldon_crd::crd_yaml();
    assert!(
        !yaml.contains("$ref"),
        "structural schemas cannot hold $ref"
    );
    let crd = seldon_crd::crd();
    let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
    let pred = schema
        .pointer("/openAPIV3Schema/properties/spec/properties/predictors/items/properties")
        .unwrap();
    for field in [
        "graph",
        "componentSpecs",
        "traffic",
        "shadow",
        "explainer",
        "svcOrchSpec",
        "ssl",
        "labels",
        "annotations",
        "replicas",
        "progressDeadlineSeconds",
        "engineResources",
    ] {
        assert!(pred.get(field).is_some(), "predictor schema lacks {field}");
    }
    let containers = pred.pointer(
        "/componentSpecs/items/properties/spec/properties/containers/items/properties/resources",
    );
    assert!(
        containers.is_some(),
        "componentSpecs[].spec is a full PodSpec"
    );
    let hpa = pred
        .pointer("/componentSpecs/items/properties/hpaSpec/properties")
        .unwrap();
    assert!(hpa.get("metrics").is_some() && hpa.get("metricsv2").is_some());
}
