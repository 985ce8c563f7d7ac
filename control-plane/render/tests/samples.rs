//! Every sample in `manifests/samples/` renders to its committed golden file
//! (`UPDATE_GOLDENS=1` rewrites them), every rendered filter config compiles, and every
//! rendered object passes schema checks:
//!
//! - Kubernetes objects deserialize into their k8s-openapi types with no unknown field
//!   (`serde_path_to_error` names the field) and re-serialize to the same JSON;
//! - Istio objects validate against Istio's own CRD schemas (`tests/schemas/istio-crds.gen.yaml`,
//!   the `openAPIV3Schema` of the version we emit) with the `jsonschema` crate, and KEDA
//!   ScaledObjects against KEDA's own CRD (`tests/schemas/keda/`) the same way;
//! - Ambassador Mappings validate against Emissary's own Mapping CRD
//!   (`tests/schemas/emissary/emissary-crds.gen.yaml`, v3alpha1 of Emissary 3.10.0, with its licence) the same way;
//!   the operator's `compat_corpus` test also creates them in a real API server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use seldon_graph::FilterConfig;
use seldon_render::{Ingress, Manifest, RenderOptions, render, to_yaml};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn samples() -> Vec<(String, PathBuf)> {
    let dir = root().join("../../manifests/samples");
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().to_string(), p))
        .collect();
    out.sort();
    out
}

/// Samples whose name says "ambassador" are rendered with the Ambassador ingress.
fn options_for(sample: &str) -> RenderOptions {
    let mut opts = RenderOptions::default();
    if sample.contains("ambassador") {
        opts.ingress = Ingress::Ambassador;
    }
    opts
}

fn render_sample(path: &Path, sample: &str) -> Vec<Manifest> {
    let text = std::fs::read_to_string(path).unwrap();
    let docs = seldon_crd::parse_yaml(&text).unwrap_or_else(|e| panic!("{sample}: {e}"));
    assert_eq!(docs.len(), 1, "{sample}");
    assert!(
        docs[0].unknown_fields.is_empty(),
        "{sample}: unknown fields {:?}",
        docs[0].unknown_fields
    );
    render(&docs[0].sdep, &options_for(sample)).unwrap_or_else(|e| panic!("{sample}: {e}"))
}

#[test]
fn every_sample_matches_its_golden_file() {
    let update = std::env::var_os("UPDATE_GOLDENS").is_some();
    let mut drifted = Vec::new();
    for (sample, path) in samples() {
        let yaml = format!(
            "# Rendered from manifests/samples/{sample}.yaml by seldon-render. Do not edit: `UPDATE_GOLDENS=1 cargo test -p seldon-render`.\n{}",
            to_yaml(&render_sample(&path, &sample))
        );
        let golden = root().join("tests/golden").join(format!("{sample}.yaml"));
        if update {
            std::fs::write(&golden, &yaml).unwrap();
        }
        if std::fs::read_to_string(&golden).ok().as_deref() != Some(yaml.as_str()) {
            drifted.push(sample);
        }
    }
    assert!(
        drifted.is_empty(),
        "golden files drifted: {drifted:?}; run `UPDATE_GOLDENS=1 cargo test -p seldon-render` and review the diff"
    );
    assert!(
        samples().len() >= 9,
        "the issue asks for at least nine samples"
    );
}

#[test]
fn golden_files_are_plain_multi_document_yaml() {
    for (sample, _) in samples() {
        let text =
            std::fs::read_to_string(root().join("tests/golden").join(format!("{sample}.yaml")))
                .unwrap();
        let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect();
        assert!(docs.len() >= 5, "{sample}");
        for d in docs {
            assert!(
                d["apiVersion"].is_string()
                    && d["kind"].is_string()
                    && d["metadata"]["name"].is_string(),
                "{sample}: {d}"
            );
            assert_eq!(d["metadata"]["namespace"], "seldon", "{sample}");
        }
    }
}

#[test]
fn every_wasm_plugin_config_parses_back_and_compiles() {
    for (sample, path) in samples() {
        let manifests = render_sample(&path, &sample);
        let plugins: Vec<&Manifest> = manifests
            .iter()
            .filter(|m| m.kind() == "WasmPlugin")
            .collect();
        assert!(!plugins.is_empty(), "{sample}");
        for m in plugins {
            let value = m.to_value();
            let json = serde_json::to_vec(&value["spec"]["pluginConfig"]).unwrap();
            let config = FilterConfig::from_json(&json).unwrap_or_else(|e| panic!("{sample}: {e}"));
            let plan = seldon_graph::compile(&config).unwrap_or_else(|e| panic!("{sample}: {e}"));
            for node in &plan.nodes {
                if let Some(up) = &node.upstream {
                    // a node of the graph pod: the localhost cluster the EnvoyFilter adds
                    // (tests/node_calls.rs checks it is added); any other: Istio's Service
                    if up.cluster.starts_with("seldon-local-") {
                        assert_eq!(up.cluster, format!("seldon-local-{}", up.port));
                        assert_eq!(up.authority, format!("localhost:{}", up.port));
                        continue;
                    }
                    assert!(
                        up.cluster.starts_with(&format!("outbound|{}||", up.port)),
                        "{}",
                        up.cluster
                    );
                    assert!(
                        up.cluster.ends_with(".seldon.svc.cluster.local"),
                        "{}",
                        up.cluster
                    );
                    assert_eq!(
                        up.authority,
                        format!("{}:{}", up.cluster.rsplit("||").next().unwrap(), up.port)
                    );
                }
            }
        }
    }
}

/// k8s-openapi type check: no unknown field, and a lossless round trip.
fn check_typed<T: serde::de::DeserializeOwned + serde::Serialize>(value: &Value, what: &str) {
    let mut unknown = Vec::new();
    let mut record = |p: serde_ignored::Path<'_>| unknown.push(p.to_string());
    let de = serde_ignored::Deserializer::new(value.clone(), &mut record);
    let typed: T = serde_path_to_error::deserialize(de)
        .unwrap_or_else(|e| panic!("{what}: {} at {}", e.inner(), e.path()));
    assert!(
        unknown.is_empty(),
        "{what}: fields unknown to k8s-openapi: {unknown:?}"
    );
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        &back, value,
        "{what}: does not round-trip through its k8s-openapi type"
    );
}

/// Istio's and Emissary's CRD schemas by (apiVersion, kind).
struct Schemas {
    crds: BTreeMap<(String, String), jsonschema::Validator>,
}

fn schemas() -> Schemas {
    let mut text =
        std::fs::read_to_string(root().join("tests/schemas/istio-crds.gen.yaml")).unwrap();
    text += "\n---\n";
    text += &std::fs::read_to_string(root().join("tests/schemas/emissary/emissary-crds.gen.yaml"))
        .unwrap();
    let mut crds = BTreeMap::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let crd: Value = serde::Deserialize::deserialize(doc).unwrap();
        if crd["kind"] != "CustomResourceDefinition" {
            continue;
        }
        let group = crd["spec"]["group"].as_str().unwrap().to_string();
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_string();
        for version in crd["spec"]["versions"].as_array().unwrap() {
            let api_version = format!("{group}/{}", version["name"].as_str().unwrap());
            let mut schema = to_json_schema(version["schema"]["openAPIV3Schema"].clone());
            // apiVersion, kind and metadata are checked by the API server itself
            schema
                .as_object_mut()
                .unwrap()
                .remove("additionalProperties");
            let validator =
                jsonschema::draft4::new(&schema).unwrap_or_else(|e| panic!("{kind}: {e}"));
            crds.insert((api_version, kind.clone()), validator);
        }
    }
    Schemas { crds }
}

/// OpenAPI v3 → JSON Schema: `nullable` is folded into `type`, and every object schema with
/// `properties` that does not preserve unknown fields gets `additionalProperties: false` —
/// the API server would silently *prune* such a field, so here it is an error (a typo in a
/// rendered Istio object must fail the test, not vanish in the cluster).
fn to_json_schema(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let nullable = map.get("nullable") == Some(&Value::Bool(true));
            let closed = map.contains_key("properties")
                && !map.contains_key("additionalProperties")
                && map.get("x-kubernetes-preserve-unknown-fields") != Some(&Value::Bool(true));
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                if k == "nullable" || k.starts_with("x-kubernetes-") {
                    continue;
                }
                if k == "properties" || k == "patternProperties" || k == "definitions" {
                    let props = v.as_object().cloned().unwrap_or_default();
                    out.insert(
                        k,
                        Value::Object(
                            props
                                .into_iter()
                                .map(|(n, s)| (n, to_json_schema(s)))
                                .collect(),
                        ),
                    );
                } else {
                    out.insert(k, to_json_schema(v));
                }
            }
            if closed {
                out.insert("additionalProperties".into(), Value::Bool(false));
            }
            if nullable && let Some(Value::String(t)) = out.get("type").cloned() {
                out.insert("type".into(), serde_json::json!([t, "null"]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.into_iter().map(to_json_schema).collect()),
        other => other,
    }
}

/// KEDA's own ScaledObject CRD (`tests/schemas/keda/`, see its NOTICE), `v1alpha1`, closed
/// like the Istio schemas.
fn keda_schema() -> jsonschema::Validator {
    let text =
        std::fs::read_to_string(root().join("tests/schemas/keda/keda.sh_scaledobjects.yaml"))
            .unwrap();
    let crd: Value = serde_yaml::from_str(&text).unwrap();
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    let mut schema = to_json_schema(version["schema"]["openAPIV3Schema"].clone());
    schema
        .as_object_mut()
        .unwrap()
        .remove("additionalProperties");
    jsonschema::draft4::new(&schema).unwrap()
}

#[test]
fn keda_schema_catches_a_wrong_field() {
    let keda = keda_schema();
    let mut so = serde_json::json!({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": "x"},
        "spec": {"scaleTargetRef": {"name": "d"}, "triggers": [{"type": "cpu", "metadata": {"value": "50"}}]}});
    assert!(keda.is_valid(&so), "{so}");
    so["spec"]["minReplicas"] = serde_json::json!(1); // HPA's name, not KEDA's minReplicaCount
    assert!(!keda.is_valid(&so));
    so["spec"].as_object_mut().unwrap().remove("minReplicas");
    so["spec"]["triggers"][0]
        .as_object_mut()
        .unwrap()
        .remove("metadata");
    assert!(!keda.is_valid(&so), "triggers[].metadata is required");
}

#[test]
fn every_rendered_object_passes_its_schema() {
    let schemas = schemas();
    let keda = keda_schema();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (sample, path) in samples() {
        for m in render_sample(&path, &sample) {
            let value = m.to_value();
            let what = format!("{sample}: {} {}", m.kind(), m.name());
            match m.kind() {
                "Deployment" => check_typed::<Deployment>(&value, &what),
                "Service" => check_typed::<Service>(&value, &what),
                "HorizontalPodAutoscaler" => check_typed::<HorizontalPodAutoscaler>(&value, &what),
                "PodDisruptionBudget" => check_typed::<PodDisruptionBudget>(&value, &what),
                "ScaledObject" => {
                    let errors: Vec<String> = keda
                        .iter_errors(&value)
                        .map(|e| format!("{e} at {}", e.instance_path()))
                        .collect();
                    assert!(errors.is_empty(), "{what}: {errors:?}");
                }
                kind => {
                    let key = (m.api_version().to_string(), kind.to_string());
                    let validator = schemas
                        .crds
                        .get(&key)
                        .unwrap_or_else(|| panic!("{what}: no CRD schema for {key:?}"));
                    let errors: Vec<String> = validator
                        .iter_errors(&value)
                        .map(|e| format!("{e} at {}", e.instance_path()))
                        .collect();
                    assert!(errors.is_empty(), "{what}: {errors:?}");
                }
            }
            *counts.entry(m.kind().to_string()).or_default() += 1;
        }
    }
    for kind in [
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ScaledObject",
        "VirtualService",
        "DestinationRule",
        "WasmPlugin",
        "EnvoyFilter",
        "Mapping",
    ] {
        assert!(
            counts.get(kind).copied().unwrap_or(0) > 0,
            "no sample renders a {kind}: {counts:?}"
        );
    }
}

#[test]
fn istio_schemas_catch_a_wrong_field() {
    // the check is real: an invented field fails Istio's own schema
    let schemas = schemas();
    let (_, path) = samples()
        .into_iter()
        .find(|(s, _)| s == "sklearn-iris")
        .unwrap();
    let vs = render_sample(&path, "sklearn-iris")
        .into_iter()
        .find(|m| m.kind() == "VirtualService")
        .unwrap();
    let mut value = vs.to_value();
    value["spec"]["http"][0]["mirrorPercentagee"] = serde_json::json!(5);
    let validator = &schemas.crds[&(
        "networking.istio.io/v1".to_string(),
        "VirtualService".to_string(),
    )];
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.iter().any(|e| e.contains("mirrorPercentagee")),
        "{errors:?} {value}"
    );
    let mut mapping = serde_json::json!({"apiVersion": "getambassador.io/v3alpha1", "kind": "Mapping", "metadata": {"name": "x"}, "spec": {"prefix": "/", "service": "a:80", "timeout": 3}});
    // and in Emissary's Mapping (its field is `timeout_ms`)
    let ambassador = &schemas.crds[&(
        "getambassador.io/v3alpha1".to_string(),
        "Mapping".to_string(),
    )];
    assert!(!ambassador.is_valid(&mapping));
    mapping["spec"].as_object_mut().unwrap().remove("timeout");
    assert!(ambassador.is_valid(&mapping));
}

#[test]
fn k8s_type_check_catches_an_unknown_field() {
    let result = std::panic::catch_unwind(|| {
        check_typed::<Service>(
            &serde_json::json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"portz": []}}),
            "bad",
        );
    });
    assert!(result.is_err());
}
