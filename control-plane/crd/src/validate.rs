//! The CRD-level rules of Seldon's validating webhook (reference §1.4), as one pure function
//! the CLI and the webhook both call. Graph rules are `seldon_graph::compile`'s job.

use std::collections::BTreeMap;

use seldon_graph::{EndpointType, Implementation, Protocol, Transport};

use crate::defaults::is_prepackaged;
use crate::names;
use crate::spec::{SeldonDeployment, ServerType};

/// One broken rule, with the path of the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct Violation {
    /// e.g. `spec.predictors[1].traffic`
    pub path: String,
    pub message: String,
}

fn v(path: impl Into<String>, message: impl Into<String>) -> Violation {
    Violation {
        path: path.into(),
        message: message.into(),
    }
}

/// Prepackaged servers that cannot serve the tensorflow protocol.
const NOT_TENSORFLOW: &[&str] = &[
    "SKLEARN_SERVER",
    "XGBOOST_SERVER",
    "MLFLOW_SERVER",
    "HUGGINGFACE_SERVER",
];
const KAFKA_ENVS: &[&str] = &["KAFKA_BROKER", "KAFKA_INPUT_TOPIC", "KAFKA_OUTPUT_TOPIC"];

/// Every CRD-level problem of `sdep` (empty when valid), in field order.
pub fn validate(sdep: &SeldonDeployment) -> Vec<Violation> {
    let mut out = Vec::new();
    let spec = &sdep.spec;
    match sdep.metadata.name.as_deref() {
        None | Some("") => out.push(v("metadata.name", "is required")),
        // Any custom-resource name: longer or dotted names are hashed where they are derived
        // (names::k8s_name, names::sdep_id), as Seldon does.
        Some(n) if !names::is_dns1123_subdomain(n) => out.push(v("metadata.name", format!("{n:?} must be a DNS-1123 subdomain (lower-case letters, digits, '-' and '.', at most 253 characters)"))),
        _ => {}
    }
    if spec.predictors.is_empty() {
        out.push(v("spec.predictors", "at least one predictor is required"));
    }
    if spec.replicas.is_some_and(|r| r < 0) {
        out.push(v("spec.replicas", "must not be negative"));
    }
    if spec.server_type == Some(ServerType::Kafka) {
        for (i, p) in spec.predictors.iter().enumerate() {
            let envs: Vec<&str> = p
                .svc_orch_spec
                .iter()
                .flat_map(|s| s.env.iter())
                .map(|e| e.name.as_str())
                .collect();
            for need in KAFKA_ENVS {
                if !envs.contains(need) {
                    out.push(v(
                        format!("spec.predictors[{i}].svcOrchSpec.env"),
                        format!("serverType kafka needs env {need}"),
                    ));
                }
            }
        }
        out.push(v("spec.serverType", "kafka is not supported by seldon-mesh: the graph runs in the sidecar and serves rpc (REST) only"));
    }

    let mut names_seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut svc_names: BTreeMap<&str, usize> = BTreeMap::new();
    let shadows: Vec<usize> = spec
        .predictors
        .iter()
        .enumerate()
        .filter(|(_, p)| p.is_shadow())
        .map(|(i, _)| i)
        .collect();
    for (i, p) in spec.predictors.iter().enumerate() {
        let path = format!("spec.predictors[{i}]");
        if p.name.is_empty() {
            out.push(v(format!("{path}.name"), "is required"));
        } else if !names::is_dns1123_label(&p.name) {
            out.push(v(
                format!("{path}.name"),
                format!("{:?} must be a DNS-1123 label", p.name),
            ));
        }
        if let Some(first) = names_seen.insert(&p.name, i) {
            out.push(v(
                format!("{path}.name"),
                format!(
                    "duplicate predictor name {:?}; also used by spec.predictors[{first}]",
                    p.name
                ),
            ));
        }
        if let Some(svc) = p.annotations.get(names::ANNOTATION_SVC_NAME)
            && !names::is_dns1035_label(svc)
        {
            // it names a Service and is a label value: used as given, as Seldon does
            out.push(v(
                format!("{path}.annotations.{}", names::ANNOTATION_SVC_NAME),
                format!("{svc:?} must be a DNS-1035 label (a Service name: lower-case letters, digits and '-', starting with a letter, at most 63 characters)"),
            ));
        }
        if let Some(svc) = p.annotations.get(names::ANNOTATION_SVC_NAME)
            && let Some(first) = svc_names.insert(svc, i)
        {
            out.push(v(
                format!("{path}.annotations.{}", names::ANNOTATION_SVC_NAME),
                format!("duplicate service name {svc:?}; also used by spec.predictors[{first}]"),
            ));
        }
        if p.annotations
            .get(names::ANNOTATION_NO_ENGINE)
            .is_some_and(|x| x == "true")
            && !p.graph.children.is_empty()
        {
            out.push(v(
                format!("{path}.annotations.{}", names::ANNOTATION_NO_ENGINE),
                "no-engine is only allowed for single-node graphs",
            ));
        }
        if p.replicas.is_some_and(|r| r < 0) {
            out.push(v(format!("{path}.replicas"), "must not be negative"));
        }
        if let Some(t) = p.traffic
            && !(0..=100).contains(&t)
        {
            out.push(v(
                format!("{path}.traffic"),
                format!("{t} is not a percentage (0-100)"),
            ));
        }
        for (j, c) in p.component_specs.iter().enumerate() {
            if c.replicas.is_some_and(|r| r < 0) {
                out.push(v(
                    format!("{path}.componentSpecs[{j}].replicas"),
                    "must not be negative",
                ));
            }
            if let Some(h) = &c.hpa_spec
                && h.min_replicas.is_some_and(|m| m > h.max_replicas)
            {
                out.push(v(
                    format!("{path}.componentSpecs[{j}].hpaSpec"),
                    "minReplicas is greater than maxReplicas",
                ));
            }
        }

        // Nodes: containers, prepackaged servers vs protocol, endpoint type vs transport.
        let mut node_paths = Vec::new();
        collect_paths(&p.graph, format!("{path}.graph"), &mut node_paths);
        for (unit, upath) in node_paths {
            let has_container = p
                .component_specs
                .iter()
                .any(|c| c.spec.containers.iter().any(|k| k.name == unit.name));
            let builtin = matches!(unit.implementation, Some(Implementation::RandomAbtest));
            if !has_container && !is_prepackaged(unit) && !builtin {
                out.push(v(upath.clone(), format!("node {:?} has no container of the same name in componentSpecs and is not a prepackaged server", unit.name)));
            }
            if spec.protocol() == Protocol::Tensorflow
                && let Some(Implementation::Prepackaged(key)) = &unit.implementation
                && NOT_TENSORFLOW.contains(&key.as_str())
            {
                out.push(v(
                    format!("{upath}.implementation"),
                    format!("{key} does not serve the tensorflow protocol"),
                ));
            }
            if let (Some(t), Some(transport)) = (
                unit.endpoint.as_ref().and_then(|e| e.endpoint_type.clone()),
                spec.transport,
            ) {
                let expected = match transport {
                    Transport::Rest => EndpointType::Rest,
                    Transport::Grpc => EndpointType::Grpc,
                };
                if t != expected {
                    out.push(v(
                        format!("{upath}.endpoint.type"),
                        format!(
                            "{t} conflicts with spec.transport {}",
                            expected.as_str().to_lowercase()
                        ),
                    ));
                }
            }
        }
    }

    // v1 fields and annotations that are not rendered: refused, never dropped in silence.
    out.extend(crate::v1_compat::refusals(sdep));

    // Traffic and shadows.
    if shadows.len() > 1 {
        for i in &shadows[1..] {
            out.push(v(
                format!("spec.predictors[{i}].shadow"),
                format!(
                    "at most one shadow predictor is allowed; spec.predictors[{}] is already one",
                    shadows[0]
                ),
            ));
        }
    }
    let live: Vec<usize> = (0..spec.predictors.len())
        .filter(|i| !spec.predictors[*i].is_shadow())
        .collect();
    if live.is_empty() && !spec.predictors.is_empty() {
        out.push(v(
            "spec.predictors",
            "a shadow predictor cannot be the only predictor",
        ));
    }
    let total: i32 = live
        .iter()
        .map(|i| spec.predictors[*i].traffic.unwrap_or(0))
        .sum();
    if live.len() > 1 && total != 100 {
        out.push(v(
            "spec.predictors",
            format!("traffic of the non-shadow predictors must sum to 100, got {total}"),
        ));
    }
    if live.len() == 1 && total != 0 && total != 100 {
        out.push(v(
            format!("spec.predictors[{}].traffic", live[0]),
            format!("a single predictor takes 0 or 100 percent, got {total}"),
        ));
    }
    out
}

fn collect_paths<'a>(
    unit: &'a seldon_graph::PredictiveUnit,
    path: String,
    out: &mut Vec<(&'a seldon_graph::PredictiveUnit, String)>,
) {
    for (i, child) in unit.children.iter().enumerate() {
        collect_paths(child, format!("{path}.children[{i}]"), out);
    }
    out.insert(0, (unit, path));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml: &str) -> Vec<String> {
        let s: SeldonDeployment = serde_yaml::from_str(yaml).unwrap();
        validate(&s).into_iter().map(|v| v.to_string()).collect()
    }

    const AB: &str = "metadata: {name: ab}
spec:
  predictors:
  - name: a
    traffic: 75
    graph: {name: m, implementation: SKLEARN_SERVER, modelUri: gs://a}
  - name: b
    traffic: 25
    graph: {name: m, implementation: SKLEARN_SERVER, modelUri: gs://b}
";

    #[test]
    fn a_valid_ab_test_passes() {
        assert!(check(AB).is_empty(), "{:?}", check(AB));
    }

    #[test]
    fn traffic_must_sum_to_100() {
        let out = check(&AB.replace("traffic: 25", "traffic: 20"));
        assert_eq!(
            out,
            ["spec.predictors: traffic of the non-shadow predictors must sum to 100, got 95"]
        );
    }

    #[test]
    fn duplicate_predictors_and_shadows() {
        let yaml = AB.replace("name: b", "name: a")
            + "  - name: s1\n    shadow: true\n    graph: {name: m, implementation: SKLEARN_SERVER, modelUri: gs://c}\n  - name: s2\n    shadow: true\n    graph: {name: m, implementation: SKLEARN_SERVER, modelUri: gs://d}\n";
        let out = check(&yaml);
        assert!(out.contains(&"spec.predictors[1].name: duplicate predictor name \"a\"; also used by spec.predictors[0]".to_string()), "{out:?}");
        assert!(
            out.iter()
                .any(|o| o.starts_with("spec.predictors[3].shadow: at most one shadow")),
            "{out:?}"
        );
    }

    #[test]
    fn shadow_alone_and_single_predictor_traffic() {
        let out = check(
            "metadata: {name: x}\nspec:\n  predictors:\n  - name: s\n    shadow: true\n    graph: {name: m, implementation: SKLEARN_SERVER, modelUri: gs://a}\n",
        );
        assert_eq!(
            out,
            ["spec.predictors: a shadow predictor cannot be the only predictor"]
        );
        let out = check(
            "metadata: {name: x}\nspec:\n  predictors:\n  - name: p\n    traffic: 50\n    graph: {name: m, implementation: SKLEARN_SERVER, modelUri: gs://a}\n",
        );
        assert_eq!(
            out,
            ["spec.predictors[0].traffic: a single predictor takes 0 or 100 percent, got 50"]
        );
    }

    #[test]
    fn nodes_need_containers_and_compatible_protocols() {
        let out = check(
            "metadata: {name: x}\nspec:\n  protocol: tensorflow\n  predictors:\n  - name: p\n    graph:\n      name: t\n      type: TRANSFORMER\n      children: [{name: m, implementation: SKLEARN_SERVER, modelUri: gs://a}]\n",
        );
        assert_eq!(
            out,
            [
                "spec.predictors[0].graph: node \"t\" has no container of the same name in componentSpecs and is not a prepackaged server",
                "spec.predictors[0].graph.children[0].implementation: SKLEARN_SERVER does not serve the tensorflow protocol",
            ]
        );
    }

    #[test]
    fn missing_name_no_predictors_svc_name_and_kafka() {
        let out = check("metadata: {}\nspec:\n  serverType: kafka\n  predictors: []\n");
        assert_eq!(out[0], "metadata.name: is required");
        assert!(
            out.contains(&"spec.predictors: at least one predictor is required".to_string()),
            "{out:?}"
        );
        assert!(
            out.iter()
                .any(|o| o.starts_with("spec.serverType: kafka is not supported")),
            "{out:?}"
        );
        let dup = AB
            .replace(
                "    traffic: 75\n",
                "    traffic: 75\n    annotations: {seldon.io/svc-name: same}\n",
            )
            .replace(
                "    traffic: 25\n",
                "    traffic: 25\n    annotations: {seldon.io/svc-name: same}\n",
            );
        assert_eq!(
            check(&dup),
            [
                "spec.predictors[1].annotations.seldon.io/svc-name: duplicate service name \"same\"; also used by spec.predictors[0]"
            ]
        );
    }

    #[test]
    fn endpoint_type_must_match_transport() {
        let out = check(
            "metadata: {name: x}\nspec:\n  transport: rest\n  predictors:\n  - name: p\n    graph: {name: m, implementation: SKLEARN_SERVER, modelUri: gs://a, endpoint: {type: GRPC}}\n",
        );
        assert_eq!(
            out,
            ["spec.predictors[0].graph.endpoint.type: GRPC conflicts with spec.transport rest"]
        );
    }

    #[test]
    fn long_and_dotted_names_are_accepted_bad_ones_refused() {
        let doc = |name: &str| {
            format!(
                "metadata: {{name: {name}}}\nspec:\n  predictors:\n  - name: p\n    graph: {{name: m, implementation: SKLEARN_SERVER, modelUri: gs://a}}\n"
            )
        };
        assert_eq!(check(&doc(&"a".repeat(253))), Vec::<String>::new());
        assert_eq!(check(&doc("my.model.v1")), Vec::<String>::new());
        let long = "a".repeat(254);
        assert_eq!(
            check(&doc(&long)),
            vec![format!(
                "metadata.name: \"{long}\" must be a DNS-1123 subdomain (lower-case letters, digits, '-' and '.', at most 253 characters)"
            )]
        );
        assert_eq!(check(&doc("a..b")).len(), 1);
        assert_eq!(check(&doc("Ab")).len(), 1);
        let bad_svc = doc("x").replace(
            "  - name: p\n",
            "  - name: p\n    annotations: {seldon.io/svc-name: 9svc}\n",
        );
        assert_eq!(
            check(&bad_svc),
            vec!["spec.predictors[0].annotations.seldon.io/svc-name: \"9svc\" must be a DNS-1035 label (a Service name: lower-case letters, digits and '-', starting with a letter, at most 63 characters)".to_string()]
        );
    }
}
