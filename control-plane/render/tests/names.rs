//! Names and labels (issue 10 item 1): a SeldonDeployment may have any custom-resource name
//! (a DNS-1123 subdomain of up to 253 characters); every name derived from it follows Seldon
//! v1's rule (kept when it fits, else `seldon-<md5hex>`, `seldon_crd::names`).
//!
//! For every sample in `manifests/samples/` (among them `long-name.yaml`, 109 characters and
//! dotted), under both ingresses and both node-call modes, this checks what the API server
//! checks (Kubernetes' validation rules, written out in `seldon_crd::names`):
//! - every object's name: a DNS-1123 label of at most 63 characters (a DNS-1035 label for a
//!   Service), and so is every container, init container and volume name;
//! - every label key and value, wherever labels appear (metadata, pod templates, selectors,
//!   `workloadSelector`, DestinationRule subsets);
//!
//! and that the derived names agree with each other: every Service, WasmPlugin and
//! EnvoyFilter selector, PDB selector and DestinationRule subset selects some pod template; every
//! HPA targets a rendered Deployment; every host in a VirtualService, DestinationRule,
//! Ambassador Mapping and the filter config (`service_host`, Istio outbound clusters) is a
//! rendered Service. Two names that differ only past the 63rd character never share a
//! derived name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use seldon_crd::names;
use seldon_render::{Ingress, Manifest, NodeCalls, RenderOptions, render};
use serde_json::Value;

fn samples() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../manifests/samples");
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn render_text(text: &str, opts: &RenderOptions) -> Vec<Value> {
    let doc = seldon_crd::parse_yaml(text).unwrap().remove(0);
    render(&doc.sdep, opts)
        .unwrap()
        .iter()
        .map(Manifest::to_value)
        .collect()
}

fn option_sets() -> Vec<RenderOptions> {
    let mut out = Vec::new();
    for ingress in [Ingress::Istio, Ingress::Ambassador] {
        for node_calls in [NodeCalls::Localhost, NodeCalls::Service] {
            out.push(RenderOptions {
                ingress,
                node_calls,
                ..RenderOptions::default()
            });
        }
    }
    out
}

/// Kubernetes' label key rule: an optional DNS-1123 subdomain prefix and '/', then a name of
/// at most 63 characters of `[A-Za-z0-9._-]`, alphanumeric at both ends.
fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    prefix.is_none_or(names::is_dns1123_subdomain)
        && !name.is_empty()
        && names::is_label_value(name)
}

/// Every label map in `v` (keys `labels` and `matchLabels` anywhere, a Service's selector),
/// with the JSON path it was found at.
fn label_maps<'a>(
    v: &'a Value,
    path: String,
    out: &mut Vec<(String, &'a serde_json::Map<String, Value>)>,
) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let p = format!("{path}.{k}");
                if matches!(k.as_str(), "labels" | "matchLabels")
                    && let Some(map) = child.as_object()
                {
                    out.push((p.clone(), map));
                }
                label_maps(child, p, out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                label_maps(child, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn pod_templates(objects: &[Value]) -> Vec<BTreeMap<String, String>> {
    objects
        .iter()
        .filter(|o| o["kind"] == "Deployment")
        .map(|o| {
            serde_json::from_value(o["spec"]["template"]["metadata"]["labels"].clone()).unwrap()
        })
        .collect()
}

fn selects_some_pod(selector: &Value, pods: &[BTreeMap<String, String>]) -> bool {
    let sel: BTreeMap<String, String> = serde_json::from_value(selector.clone()).unwrap();
    pods.iter()
        .any(|pod| sel.iter().all(|(k, v)| pod.get(k) == Some(v)))
}

/// Every problem of one rendering (empty when all is well).
fn problems(objects: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    let services: BTreeSet<String> = objects
        .iter()
        .filter(|o| o["kind"] == "Service")
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let deployments: BTreeSet<&str> = objects
        .iter()
        .filter(|o| o["kind"] == "Deployment")
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect();
    let pods = pod_templates(objects);
    let ns = objects[0]["metadata"]["namespace"].as_str().unwrap();
    let is_service_fqdn = |host: &str| {
        host.strip_suffix(&format!(".{ns}.svc.cluster.local"))
            .is_some_and(|svc| services.contains(svc))
    };
    for o in objects {
        let kind = o["kind"].as_str().unwrap();
        let name = o["metadata"]["name"].as_str().unwrap();
        let at = format!("{kind} {name}");
        let name_ok = if kind == "Service" {
            names::is_dns1035_label(name)
        } else {
            names::is_dns1123_label(name)
        };
        if !name_ok {
            out.push(format!("{at}: invalid name"));
        }
        let mut maps = Vec::new();
        label_maps(o, String::new(), &mut maps);
        if kind == "Service" {
            maps.push((
                ".spec.selector".into(),
                o["spec"]["selector"].as_object().unwrap(),
            ));
        }
        for (path, map) in maps {
            for (k, v) in map {
                let v = v.as_str().unwrap_or("<not a string>");
                if !is_label_key(k) || !names::is_label_value(v) {
                    out.push(format!("{at}: {path}: invalid label {k}={v}"));
                }
            }
        }
        if kind == "Deployment" {
            let pod = &o["spec"]["template"]["spec"];
            for list in ["containers", "initContainers", "volumes"] {
                for c in pod[list].as_array().into_iter().flatten() {
                    let n = c["name"].as_str().unwrap();
                    if !names::is_dns1123_label(n) {
                        out.push(format!("{at}: {list} name {n:?} is not a DNS-1123 label"));
                    }
                }
            }
        }
        // The names agree.
        let selector = match kind {
            "Service" => Some(&o["spec"]["selector"]),
            "PodDisruptionBudget" => Some(&o["spec"]["selector"]["matchLabels"]),
            "WasmPlugin" => Some(&o["spec"]["selector"]["matchLabels"]),
            "EnvoyFilter" => Some(&o["spec"]["workloadSelector"]["labels"]),
            _ => None,
        };
        if let Some(sel) = selector
            && !selects_some_pod(sel, &pods)
        {
            out.push(format!("{at}: selector {sel} selects no pod"));
        }
        let mut hosts: Vec<String> = Vec::new();
        match kind {
            "HorizontalPodAutoscaler" => {
                let target = o["spec"]["scaleTargetRef"]["name"].as_str().unwrap();
                if !deployments.contains(target) {
                    out.push(format!("{at}: targets no rendered Deployment ({target})"));
                }
            }
            "DestinationRule" => {
                hosts.push(o["spec"]["host"].as_str().unwrap().into());
                for s in o["spec"]["subsets"].as_array().unwrap() {
                    if !selects_some_pod(&s["labels"], &pods) {
                        out.push(format!("{at}: subset {} selects no pod", s["name"]));
                    }
                }
            }
            "VirtualService" => {
                for route in o["spec"]["http"].as_array().unwrap() {
                    for d in route["route"].as_array().unwrap() {
                        hosts.push(d["destination"]["host"].as_str().unwrap().into());
                    }
                    if let Some(m) = route["mirror"]["host"].as_str() {
                        hosts.push(m.into());
                    }
                }
            }
            "Mapping" => {
                // `<service>.<namespace>:<port>`
                let svc = o["spec"]["service"].as_str().unwrap();
                let host = svc.rsplit_once(':').unwrap().0;
                hosts.push(format!("{host}.svc.cluster.local"));
            }
            "WasmPlugin" => {
                let config = o["spec"]["pluginConfig"].to_string();
                let config: Value = serde_json::from_str(&config).unwrap();
                let mut strings = Vec::new();
                collect_strings(&config, &mut strings);
                for s in strings {
                    if let Some(rest) = s.strip_prefix("outbound|") {
                        hosts.extend(rest.split("||").nth(1).map(String::from));
                    } else if s.ends_with(".svc.cluster.local") {
                        hosts.push(s);
                    }
                }
            }
            _ => {}
        }
        for h in hosts {
            if !is_service_fqdn(&h) {
                out.push(format!("{at}: host {h} is not a rendered Service"));
            }
        }
    }
    out
}

fn collect_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| collect_strings(x, out)),
        Value::Object(m) => m.values().for_each(|x| collect_strings(x, out)),
        _ => {}
    }
}

#[test]
fn every_rendered_name_and_label_is_valid_and_the_names_agree() {
    let mut all = Vec::new();
    let mut checked = 0;
    for (sample, text) in samples() {
        for opts in option_sets() {
            let objects = render_text(&text, &opts);
            checked += objects.len();
            all.extend(
                problems(&objects)
                    .into_iter()
                    .map(|p| format!("{sample} ({:?}, {:?}): {p}", opts.ingress, opts.node_calls)),
            );
        }
    }
    assert!(all.is_empty(), "{}", all.join("\n"));
    assert!(checked > 400, "{checked}");
}

#[test]
fn the_long_sample_gets_seldons_hashed_names() {
    let (_, text) = samples()
        .into_iter()
        .find(|(s, _)| s == "long-name")
        .unwrap();
    let name = "fraud-detection-ensemble.payments-platform.risk-analytics-team.production-release-2026-q4-with-canary-rollout";
    assert!(name.len() > 100 && text.contains(name));
    let objects = render_text(&text, &RenderOptions::default());
    let named = |kind: &str| -> BTreeSet<String> {
        objects
            .iter()
            .filter(|o| o["kind"] == kind)
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let main = "main-predictor-serving-most-of-the-traffic-today";
    let canary = "canary-predictor-with-the-next-model-candidate";
    let transformer = "feature-engineering-transformer-for-card-transactions";
    let model = "gradient-boosted-fraud-classifier-trained-on-2026-q3-data-v123";
    // Seldon: GetSeldonDeploymentName, GetPredictorKey, GetContainerServiceName, GetDeploymentName
    let id = names::hashed(name);
    assert_eq!(named("VirtualService"), BTreeSet::from([id.clone()]));
    assert_eq!(
        named("Service"),
        BTreeSet::from([
            names::hashed(&format!("{name}-{main}")),
            names::hashed(&format!("{name}-{canary}")),
            names::hashed(&format!("{name}-{main}-{transformer}")),
            names::hashed(&format!("{name}-{main}-{model}")),
            names::hashed(&format!("{name}-{canary}-candidate-classifier")),
        ])
    );
    assert_eq!(
        named("Deployment"),
        BTreeSet::from([
            // the prepackaged model's container joins componentSpecs[0], as in Seldon
            names::hashed(&format!("{name}-{main}-0-{transformer}-{model}")),
            names::hashed(&format!(
                "{name}-{canary}-0-candidate-classifier-pod-with-a-rather-long-component-name"
            )),
        ])
    );
    assert_eq!(
        named("DestinationRule"),
        BTreeSet::from([
            names::hashed(&format!("{name}-{main}")),
            names::hashed(&format!("{name}-{canary}")),
        ])
    );
    let dep_main = names::hashed(&format!("{name}-{main}-0-{transformer}-{model}"));
    assert_eq!(
        named("HorizontalPodAutoscaler"),
        BTreeSet::from([dep_main.clone()])
    );
    assert_eq!(named("PodDisruptionBudget"), BTreeSet::from([dep_main]));
    for o in &objects {
        assert_eq!(
            o["metadata"]["labels"]["seldon-deployment-id"],
            id.as_str(),
            "{o}"
        );
    }
    // The route still uses the name itself, as Seldon's does.
    let vs = objects
        .iter()
        .find(|o| o["kind"] == "VirtualService")
        .unwrap();
    assert_eq!(
        vs["spec"]["http"][0]["match"][0]["uri"]["prefix"],
        format!("/seldon/seldon/{name}/")
    );
}

#[test]
fn names_that_differ_only_past_63_characters_never_collide() {
    let (_, text) = samples()
        .into_iter()
        .find(|(s, _)| s == "long-name")
        .unwrap();
    let original = "fraud-detection-ensemble.payments-platform.risk-analytics-team.production-release-2026-q4-with-canary-rollout";
    let derived = |name: &str, opts: &RenderOptions| -> BTreeSet<String> {
        let objects = render_text(&text.replace(original, name), opts);
        let mut out = BTreeSet::new();
        for o in &objects {
            out.insert(format!("{} {}", o["kind"], o["metadata"]["name"]));
            let mut maps = Vec::new();
            label_maps(o, String::new(), &mut maps);
            for (_, m) in maps {
                for (k, v) in m {
                    // values derived from the name (other labels are the user's or constants)
                    if k.starts_with("seldon-app") || k == "app" || k == "seldon-deployment-id" {
                        out.insert(format!("label {k}={v}"));
                    }
                }
            }
        }
        out
    };
    let base = "x".repeat(63);
    let pairs = [
        (format!("{base}a"), format!("{base}b")),
        (format!("{base}-v1"), format!("{base}-v2")),
        ("a.".repeat(126) + "a", "a.".repeat(126) + "b"),
        (original.to_string(), format!("{original}2")),
    ];
    for opts in option_sets() {
        for (a, b) in &pairs {
            let (da, db) = (derived(a, &opts), derived(b, &opts));
            assert!(da.len() >= 10, "{da:?}");
            let shared: Vec<_> = da.intersection(&db).collect();
            assert!(shared.is_empty(), "{a} and {b} share {shared:?}");
        }
    }
}

#[test]
fn the_checks_catch_what_seldon_without_hashing_would_emit() {
    let (_, text) = samples()
        .into_iter()
        .find(|(s, _)| s == "long-name")
        .unwrap();
    let objects = render_text(&text, &RenderOptions::default());
    assert_eq!(problems(&objects), Vec::<String>::new());
    let raw = "fraud-detection-ensemble.payments-platform.risk-analytics-team.production-release-2026-q4-with-canary-rollout";
    // the unhashed id as a label value, an unhashed Service name, a 78-character label key
    let mut bad = objects.clone();
    bad[0]["metadata"]["labels"]["seldon-deployment-id"] = raw.into();
    let svc = bad.iter().position(|o| o["kind"] == "Service").unwrap();
    bad[svc]["metadata"]["name"] = format!("{raw}-p").into();
    bad[svc]["spec"]["selector"][format!("seldon-app-svc-{}", "c".repeat(63))] = "x".into();
    let found = problems(&bad);
    assert!(
        found
            .iter()
            .any(|p| p.contains("invalid label seldon-deployment-id=")),
        "{found:?}"
    );
    assert!(
        found.iter().any(|p| p.contains("invalid name")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.contains("invalid label seldon-app-svc-ccc")),
        "{found:?}"
    );
    // and a selector that no longer matches is a disagreement
    assert!(
        found.iter().any(|p| p.contains("selects no pod")),
        "{found:?}"
    );
}
