//! The install YAML (manifests/, istio/, ambassador/, the Helm chart) checked without a
//! cluster: Kubernetes objects round-trip through their k8s-openapi types (no unknown or
//! misspelt fields), Istio objects validate against Istio's own CRD schemas, the RBAC is
//! exactly what the operator uses, names agree with the code, and the chart agrees with the
//! plain manifests (rendered with a real `helm template` when `scripts/kube-test-env.sh
//! --helm` has built it).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use seldon_operator::config::OperatorConfig;
use seldon_operator::{names, owned};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn docs(rel: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    docs_of(&text)
}

fn docs_of(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| <serde_yaml::Value as serde::Deserialize>::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .map(|v| serde_json::to_value(v).unwrap())
        .collect()
}

/// Deserializes into `T` and back; any field `T` does not know is lost and fails the test.
fn round_trip<T: DeserializeOwned + Serialize>(v: &Value) -> T {
    let typed: T = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v:#}"));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        strip_nulls(v.clone()),
        strip_nulls(back),
        "fields lost in round trip"
    );
    typed
}

fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_nulls).collect()),
        // YAML ints and k8s-openapi ints serialize the same; quantities stay strings.
        other => other,
    }
}

fn check_k8s(v: &Value) {
    match v["kind"].as_str().unwrap() {
        "Namespace" => drop(round_trip::<Namespace>(v)),
        "ServiceAccount" => drop(round_trip::<ServiceAccount>(v)),
        "ClusterRole" => drop(round_trip::<ClusterRole>(v)),
        "ClusterRoleBinding" => drop(round_trip::<ClusterRoleBinding>(v)),
        "Role" => drop(round_trip::<Role>(v)),
        "RoleBinding" => drop(round_trip::<RoleBinding>(v)),
        "ConfigMap" => drop(round_trip::<ConfigMap>(v)),
        "Deployment" => drop(round_trip::<Deployment>(v)),
        "Service" => drop(round_trip::<Service>(v)),
        "ValidatingWebhookConfiguration" => drop(round_trip::<ValidatingWebhookConfiguration>(v)),
        other => panic!("unexpected kind {other} in the install manifests"),
    }
}

const OPERATOR_FILES: &[&str] = &[
    "manifests/operator/namespace.yaml",
    "manifests/operator/rbac.yaml",
    "manifests/operator/config.yaml",
    "manifests/operator/operator.yaml",
    "manifests/operator/webhook.yaml",
];

#[test]
fn kubernetes_objects_match_their_openapi_types() {
    let mut n = 0;
    for f in OPERATOR_FILES {
        for d in docs(f) {
            check_k8s(&d);
            n += 1;
        }
    }
    assert!(n >= 15, "{n}");
}

#[test]
fn kustomization_lists_every_operator_file_and_the_crd() {
    let k = &docs("manifests/kustomization.yaml")[0];
    let listed: BTreeSet<String> = k["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    for f in OPERATOR_FILES {
        assert!(
            listed.contains(f.trim_start_matches("manifests/")),
            "{f} missing from kustomization.yaml"
        );
    }
    assert!(listed.contains("crd/seldondeployments.yaml"));
    for r in &listed {
        assert!(
            repo().join("manifests").join(r).exists(),
            "{r} listed but missing"
        );
    }
    assert_eq!(k["configMapGenerator"][0]["name"], "seldon-mesh-catalogue");
}

#[test]
fn cluster_role_grants_exactly_what_the_operator_uses() {
    let rbac = docs("manifests/operator/rbac.yaml");
    let role = rbac
        .iter()
        .find(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == "seldon-mesh-operator")
        .unwrap();
    let role: ClusterRole = round_trip(role);
    let mut granted = Vec::new();
    for r in role.rules.unwrap() {
        for g in r.api_groups.clone().unwrap() {
            for res in r.resources.clone().unwrap() {
                let mut verbs = r.verbs.clone();
                verbs.sort();
                granted.push((g.clone(), res, verbs));
            }
        }
        assert!(!r.verbs.iter().any(|v| v == "*"), "no wildcards");
    }
    granted.sort();
    assert_eq!(granted, owned::required_rules());
}

#[test]
fn webhook_objects_agree_with_the_code() {
    let wh = docs("manifests/operator/webhook.yaml");
    let vwc: ValidatingWebhookConfiguration = round_trip(
        wh.iter()
            .find(|d| d["kind"] == "ValidatingWebhookConfiguration")
            .unwrap(),
    );
    assert_eq!(
        vwc.metadata.name.as_deref(),
        Some(names::WEBHOOK_CONFIG_NAME)
    );
    let hook = &vwc.webhooks.unwrap()[0];
    let svc = hook.client_config.service.as_ref().unwrap();
    assert_eq!(svc.name, names::WEBHOOK_SERVICE);
    assert_eq!(svc.namespace, names::SYSTEM_NAMESPACE);
    assert_eq!(svc.path.as_deref(), Some(names::WEBHOOK_PATH));
    assert_eq!(hook.failure_policy.as_deref(), Some("Fail"));
    assert_eq!(hook.admission_review_versions, vec!["v1".to_string()]);
    let rule = &hook.rules.as_ref().unwrap()[0];
    assert_eq!(
        rule.operations.as_ref().unwrap(),
        &vec!["CREATE".to_string(), "UPDATE".to_string()]
    );

    let rbac = docs("manifests/operator/rbac.yaml");
    let cr = rbac
        .iter()
        .find(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == "seldon-mesh-webhook")
        .unwrap();
    assert_eq!(
        cr["rules"][0]["resourceNames"][0],
        names::WEBHOOK_CONFIG_NAME
    );
    let role = rbac
        .iter()
        .find(|d| d["kind"] == "Role" && d["metadata"]["name"] == "seldon-mesh-webhook-cert")
        .unwrap();
    assert_eq!(
        role["rules"][0]["resourceNames"][0],
        names::WEBHOOK_CERT_SECRET
    );
    let lease = rbac
        .iter()
        .find(|d| {
            d["kind"] == "Role" && d["metadata"]["name"] == "seldon-mesh-operator-leader-election"
        })
        .unwrap();
    assert_eq!(lease["metadata"]["namespace"], names::SYSTEM_NAMESPACE);

    let dep = wh.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let env = dep["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap();
    let get = |n: &str| {
        env.iter()
            .find(|e| e["name"] == n)
            .map(|e| e["value"].clone())
    };
    assert_eq!(
        get("SELDON_WEBHOOK_SERVICE").unwrap(),
        names::WEBHOOK_SERVICE
    );
    assert_eq!(
        get("SELDON_WEBHOOK_CERT_SECRET").unwrap(),
        names::WEBHOOK_CERT_SECRET
    );
    assert_eq!(
        get("SELDON_WEBHOOK_CONFIG_NAME").unwrap(),
        names::WEBHOOK_CONFIG_NAME
    );
}

#[test]
fn operator_config_map_parses_into_render_options() {
    let cm: ConfigMap = round_trip(&docs("manifests/operator/config.yaml")[0]);
    let text = &cm.data.unwrap()["config.yaml"];
    let cfg = OperatorConfig::from_yaml(Path::new("config.yaml"), text).unwrap();
    assert_eq!(
        cfg.catalogue.as_deref(),
        Some(Path::new("/etc/seldon-mesh-catalogue/catalogue.yaml"))
    );
    // Point the catalogue at the repo copy, as the mounted ConfigMap would.
    let cfg = OperatorConfig {
        catalogue: Some(repo().join("manifests/catalogue.yaml")),
        ..cfg
    };
    let opts = cfg.render_options().unwrap();
    assert_eq!(opts.ingress, seldon_render::Ingress::Istio);
    assert_eq!(opts.istio_gateway, "istio-system/seldon-gateway");
    assert_eq!(opts.gpu_pool.runtime_class_name.as_deref(), Some("nvidia"));
    assert_eq!(
        opts.gpu_pool.node_selector["nvidia.com/gpu.present"],
        "true"
    );
    assert!(opts.catalogue.get("SKLEARN_SERVER").is_some());
    // written out so users see where to change them; equal to the built-in defaults
    assert_eq!(opts.filter_url, seldon_render::DEFAULT_FILTER_URL);
    assert_eq!(
        opts.initializer_user_id,
        Some(seldon_render::ISTIO_PROXY_UID)
    );
    assert_eq!(opts.node_calls, seldon_render::NodeCalls::Localhost);
    assert_eq!(
        opts.node_calls,
        seldon_render::RenderOptions::default().node_calls
    );
}

#[test]
fn operator_config_rejects_unknown_fields_with_the_location() {
    let e = OperatorConfig::from_yaml(Path::new("c.yaml"), "ingress: istio\ngpuPool: {}\n")
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("c.yaml: unknown field `gpuPool`"), "{msg}");
    assert!(msg.contains("line 2"), "{msg}");
    let e = OperatorConfig::from_yaml(Path::new("c.yaml"), "ingress: nginx\n").unwrap_err();
    assert!(e.to_string().contains("unknown variant `nginx`"), "{e}");
}

// ---------- Istio ----------

fn istio_schema(kind: &str, version: &str) -> Value {
    let crds = docs("control-plane/render/tests/schemas/istio-crds.gen.yaml");
    let crd = crds
        .iter()
        .find(|c| c["spec"]["names"]["kind"] == kind)
        .unwrap_or_else(|| panic!("no Istio CRD for {kind}"));
    let v = crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == version)
        .unwrap_or_else(|| panic!("{kind} has no {version}"));
    v["schema"]["openAPIV3Schema"].clone()
}

/// Validates `obj` (minus apiVersion/kind/metadata, which the API server checks itself)
/// against the CRD's openAPIV3Schema.
fn validate_istio(obj: &Value) {
    let (group_version, kind) = (
        obj["apiVersion"].as_str().unwrap(),
        obj["kind"].as_str().unwrap(),
    );
    let version = group_version.rsplit('/').next().unwrap();
    let mut schema = istio_schema(kind, version);
    // Structural-schema extensions are not JSON Schema keywords; leave them (validators ignore unknown keywords).
    let mut body = obj.clone();
    body.as_object_mut().unwrap().remove("metadata");
    schema["additionalProperties"] = Value::Bool(false);
    if let Some(props) = schema["properties"].as_object_mut() {
        props.insert("apiVersion".into(), serde_json::json!({"type": "string"}));
        props.insert("kind".into(), serde_json::json!({"type": "string"}));
    }
    close_schema(&mut schema);
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{kind} {}: {errors:#?}",
        obj["metadata"]["name"]
    );
}

/// The API server silently prunes fields a structural schema does not declare; to catch a
/// misspelt field, every declared object is closed (unless it preserves unknown fields).
fn close_schema(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if m.contains_key("properties")
                && !m.contains_key("additionalProperties")
                && m.get("x-kubernetes-preserve-unknown-fields") != Some(&Value::Bool(true))
            {
                m.insert("additionalProperties".into(), Value::Bool(false));
            }
            m.values_mut().for_each(close_schema);
        }
        Value::Array(a) => a.iter_mut().for_each(close_schema),
        _ => {}
    }
}

#[test]
fn istio_objects_validate_against_istio_crd_schemas() {
    let mut kinds = BTreeSet::new();
    for f in ["istio/gateway.yaml", "istio/telemetry.yaml"] {
        for d in docs(f) {
            validate_istio(&d);
            kinds.insert(d["kind"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(
        kinds,
        BTreeSet::from(["Gateway".to_string(), "Telemetry".to_string()])
    );
    let gw = &docs("istio/gateway.yaml")[0];
    assert_eq!(gw["metadata"]["name"], "seldon-gateway");
    assert_eq!(gw["metadata"]["namespace"], "istio-system");
    // The default gateway the operator config and render point VirtualServices at.
    assert_eq!(
        seldon_render::RenderOptions::default().istio_gateway,
        "istio-system/seldon-gateway"
    );
}

#[test]
fn schema_check_catches_a_misspelt_istio_field() {
    let mut gw = docs("istio/gateway.yaml").remove(0);
    gw["spec"]["servers"][0]["port"]["numbr"] = serde_json::json!(80);
    let r = std::panic::catch_unwind(|| validate_istio(&gw));
    assert!(r.is_err(), "an unknown field must fail validation");
}

#[test]
fn mesh_config_enables_tracing_and_exports_the_filter_metrics() {
    let mc = &docs("istio/mesh-config.yaml")[0];
    assert_eq!(mc["kind"], "IstioOperator");
    let mesh = &mc["spec"]["meshConfig"];
    let provider = &mesh["extensionProviders"][0];
    let telemetry = &docs("istio/telemetry.yaml")[0];
    assert_eq!(
        telemetry["spec"]["tracing"][0]["providers"][0]["name"],
        provider["name"]
    );
    assert_eq!(provider["opentelemetry"]["port"], 4317);
    let incl: Vec<&str> = mesh["defaultConfig"]["proxyStatsMatcher"]["inclusionRegexps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    // The filter names its stats `…;.;seldon_api_executor_<metric>` (wasm-filter/src/metrics.rs).
    let stat = "deployment_name=.=iris;.;predictor_name=.=default;.;service=.=predictions;.;method=.=post;.;code=.=200;.;seldon_api_executor_server_requests_ms";
    assert!(
        incl.iter().any(|re| re.starts_with(".*")
            && re.ends_with(".*")
            && stat.contains(re.trim_matches(|c| c == '.' || c == '*'))),
        "{incl:?}"
    );
    let tags: Vec<&str> = mesh["defaultConfig"]["extraStatTags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        tags,
        seldon_envoy::FILTER_METRIC_TAGS,
        "every label the filter encodes"
    );
}

// ---------- Ambassador ----------

#[test]
fn ambassador_objects_are_emissary_v3alpha1() {
    let d = docs("ambassador/listener-host.yaml");
    let kinds: Vec<&str> = d.iter().map(|o| o["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["Listener", "Host"]);
    for o in &d {
        assert_eq!(o["apiVersion"], "getambassador.io/v3alpha1");
    }
    assert_eq!(d[0]["spec"]["hostBinding"]["namespace"]["from"], "ALL");
}

// ---------- Helm ----------

#[test]
fn helm_chart_files_are_copies_of_the_plain_manifests() {
    let chart = repo().join("manifests/helm/seldon-mesh");
    for (copy, orig) in [
        ("files/catalogue.yaml", "manifests/catalogue.yaml"),
        ("files/gateway.yaml", "istio/gateway.yaml"),
        (
            "crds/seldondeployments.yaml",
            "manifests/crd/seldondeployments.yaml",
        ),
        ("templates/rbac.yaml", "manifests/operator/rbac.yaml"),
    ] {
        let a = std::fs::read_to_string(chart.join(copy)).unwrap();
        let b = std::fs::read_to_string(repo().join(orig)).unwrap();
        let b = if copy.starts_with("templates/") {
            b.replace(
                "namespace: seldon-system",
                "namespace: {{ .Release.Namespace }}",
            )
        } else {
            b
        };
        assert_eq!(a, b, "{copy} differs from {orig}: copy it again");
    }
}

/// `helm`, if `scripts/kube-test-env.sh --helm` built it (or SELDON_HELM points at one).
fn helm() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("SELDON_HELM") {
        return Some(PathBuf::from(p));
    }
    let out = std::process::Command::new("bash")
        .arg(repo().join("scripts/kube-test-env.sh"))
        .arg("--helm")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

#[test]
fn helm_template_renders_the_same_objects_as_the_plain_manifests() {
    let helm = helm().expect("helm: scripts/kube-test-env.sh --helm failed");
    let out = std::process::Command::new(helm)
        .args(["template", "seldon-mesh", "--namespace", "seldon-system"])
        .arg(repo().join("manifests/helm/seldon-mesh"))
        .args(["--include-crds"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = docs_of(&String::from_utf8(out.stdout).unwrap());
    let key = |v: &Value| {
        format!(
            "{}/{}/{}",
            v["kind"].as_str().unwrap(),
            v["metadata"]["namespace"].as_str().unwrap_or(""),
            v["metadata"]["name"].as_str().unwrap()
        )
    };
    let mut plain: Vec<Value> = OPERATOR_FILES
        .iter()
        .flat_map(|f| docs(f))
        .filter(|d| d["kind"] != "Namespace")
        .collect();
    plain.extend(docs("manifests/crd/seldondeployments.yaml"));
    plain.extend(docs("istio/gateway.yaml"));
    let mut rendered_keys: Vec<String> = rendered.iter().map(key).collect();
    let mut plain_keys: Vec<String> = plain.iter().map(key).collect();
    plain_keys.push("ConfigMap/seldon-system/seldon-mesh-catalogue".into());
    rendered_keys.sort();
    plain_keys.sort();
    assert_eq!(rendered_keys, plain_keys);
    for p in &plain {
        let r = rendered.iter().find(|r| key(r) == key(p)).unwrap();
        if p["kind"] == "ConfigMap" {
            // Same settings; the chart writes them from values.
            let parse = |v: &Value| {
                serde_yaml::from_str::<serde_yaml::Value>(
                    v["data"]["config.yaml"].as_str().unwrap(),
                )
                .unwrap()
            };
            let (pc, rc) = (parse(p), parse(r));
            for field in [
                "ingress",
                "istioGateway",
                "catalogue",
                "filterUrl",
                "initializerUserId",
                "nodeCalls",
            ] {
                assert_eq!(pc[field], rc[field], "{field}");
            }
            continue;
        }
        check_k8s_or_crd(r);
        assert_eq!(
            strip_nulls(p.clone()),
            strip_nulls(r.clone()),
            "{} differs between chart and manifests",
            key(p)
        );
    }
    let cat = rendered
        .iter()
        .find(|r| key(r) == "ConfigMap/seldon-system/seldon-mesh-catalogue")
        .unwrap();
    assert_eq!(
        cat["data"]["catalogue.yaml"].as_str().unwrap(),
        std::fs::read_to_string(repo().join("manifests/catalogue.yaml")).unwrap()
    );
}

fn check_k8s_or_crd(v: &Value) {
    if v["kind"] == "CustomResourceDefinition" || v["kind"] == "Gateway" {
        return;
    }
    check_k8s(v);
}

#[test]
fn helm_ambassador_values_switch_the_ingress_and_drop_the_gateway() {
    let helm = helm().expect("helm: scripts/kube-test-env.sh --helm failed");
    let out = std::process::Command::new(helm)
        .args([
            "template",
            "seldon-mesh",
            "--namespace",
            "seldon-system",
            "--set",
            "ingress=ambassador",
            "--set",
            "image.tag=9.9.9",
        ])
        .arg(repo().join("manifests/helm/seldon-mesh"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = docs_of(&String::from_utf8(out.stdout).unwrap());
    assert!(!rendered.iter().any(|r| r["kind"] == "Gateway"));
    let cm = rendered
        .iter()
        .find(|r| r["metadata"]["name"] == "seldon-mesh-operator-config")
        .unwrap();
    let cfg = OperatorConfig::from_yaml(
        Path::new("values"),
        cm["data"]["config.yaml"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(cfg.ingress, Some(seldon_render::Ingress::Ambassador));
    let dep = rendered
        .iter()
        .find(|r| r["metadata"]["name"] == "seldon-mesh-operator" && r["kind"] == "Deployment")
        .unwrap();
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/seldon-mesh/seldon-mesh:9.9.9"
    );
}

/// The operator config a `helm template` with `args` writes, parsed as the operator does.
fn helm_operator_config(args: &[&str]) -> seldon_render::RenderOptions {
    let helm = helm().expect("helm: scripts/kube-test-env.sh --helm failed");
    let out = std::process::Command::new(helm)
        .args(["template", "seldon-mesh", "--namespace", "seldon-system"])
        .args(args)
        .arg(repo().join("manifests/helm/seldon-mesh"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = docs_of(&String::from_utf8(out.stdout).unwrap());
    let cm = rendered
        .iter()
        .find(|r| r["metadata"]["name"] == "seldon-mesh-operator-config")
        .unwrap();
    let cfg = OperatorConfig::from_yaml(
        Path::new("values"),
        cm["data"]["config.yaml"].as_str().unwrap(),
    )
    .unwrap();
    OperatorConfig {
        catalogue: None,
        ..cfg
    }
    .render_options()
    .unwrap()
}

#[test]
fn helm_filter_url_and_initializer_uid_reach_the_render_options() {
    let o = helm_operator_config(&[]);
    assert_eq!(o.filter_url, seldon_render::DEFAULT_FILTER_URL);
    assert_eq!(o.filter_sha256, None);
    assert_eq!(o.initializer_user_id, Some(1337));
    let o = helm_operator_config(&[
        "--set",
        "filter.url=oci://127.0.0.1:5000/seldon-mesh/graph-filter:0.1.0",
        "--set",
        "filter.sha256=7f83b165",
    ]);
    assert_eq!(
        o.filter_url,
        "oci://127.0.0.1:5000/seldon-mesh/graph-filter:0.1.0"
    );
    assert_eq!(o.filter_sha256.as_deref(), Some("7f83b165"));
    // a large UID from a values file stays an integer (Helm reads YAML numbers as floats,
    // which print as 1.000680001e+09 without the template's `int64`)
    let values = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(values.path(), "initializer:\n  userId: 1000680001\n").unwrap();
    let o = helm_operator_config(&["-f", values.path().to_str().unwrap()]);
    assert_eq!(o.initializer_user_id, Some(1_000_680_001));
    let o = helm_operator_config(&["--set", "initializer.userId=null"]);
    assert_eq!(o.initializer_user_id, None);
    // and the URL a user sets reaches every WasmPlugin
    let text = std::fs::read_to_string(repo().join("manifests/samples/sklearn-iris.yaml")).unwrap();
    let sdep = seldon_crd::parse_yaml(&text).unwrap().remove(0).sdep;
    let o = helm_operator_config(&["--set", "filter.url=file:///var/lib/graph-filter.wasm"]);
    let plugin = seldon_render::render(&sdep, &o)
        .unwrap()
        .into_iter()
        .find(|m| m.kind() == "WasmPlugin")
        .unwrap();
    assert_eq!(
        plugin.to_value()["spec"]["url"],
        "file:///var/lib/graph-filter.wasm"
    );
}

#[test]
fn helm_node_calls_reach_the_render_options_and_a_typo_is_refused() {
    assert_eq!(
        helm_operator_config(&[]).node_calls,
        seldon_render::NodeCalls::Localhost
    );
    let text =
        std::fs::read_to_string(repo().join("manifests/samples/transformer-model.yaml")).unwrap();
    let sdep = seldon_crd::parse_yaml(&text).unwrap().remove(0).sdep;
    let render = |o: &seldon_render::RenderOptions| -> Vec<Value> {
        seldon_render::render(&sdep, o)
            .unwrap()
            .iter()
            .map(seldon_render::Manifest::to_value)
            .collect()
    };
    // the chart's default: the localhost render adds the clusters the filter config names
    let objs = render(&helm_operator_config(&[]));
    let filter = objs
        .iter()
        .find(|v| v["metadata"]["name"] == "income-default-node-calls")
        .unwrap();
    assert_eq!(filter["spec"]["configPatches"].as_array().unwrap().len(), 2);
    let plugin = objs.iter().find(|v| v["kind"] == "WasmPlugin").unwrap();
    assert_eq!(
        plugin["spec"]["pluginConfig"]["nodes"]["model"]["cluster"],
        "seldon-local-9001"
    );
    // --set nodeCalls=service: Istio's outbound clusters, no EnvoyFilter adding clusters
    let o = helm_operator_config(&["--set", "nodeCalls=service"]);
    assert_eq!(o.node_calls, seldon_render::NodeCalls::Service);
    let objs = render(&o);
    assert!(
        !objs
            .iter()
            .any(|v| v["metadata"]["name"] == "income-default-node-calls")
    );
    let plugin = objs.iter().find(|v| v["kind"] == "WasmPlugin").unwrap();
    assert_eq!(
        plugin["spec"]["pluginConfig"]["nodes"]["model"]["cluster"],
        "outbound|9001||income-default-model.seldon.svc.cluster.local"
    );
    // a value the operator does not know stops it at start, with the field named
    let helm = helm().expect("helm: scripts/kube-test-env.sh --helm failed");
    let out = std::process::Command::new(helm)
        .args(["template", "seldon-mesh", "--namespace", "seldon-system"])
        .args(["--set", "nodeCalls=pod"])
        .arg(repo().join("manifests/helm/seldon-mesh"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let rendered = docs_of(&String::from_utf8(out.stdout).unwrap());
    let cm = rendered
        .iter()
        .find(|r| r["metadata"]["name"] == "seldon-mesh-operator-config")
        .unwrap();
    let e = OperatorConfig::from_yaml(
        Path::new("config.yaml"),
        cm["data"]["config.yaml"].as_str().unwrap(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("nodeCalls"), "{e}");
    assert!(e.to_string().contains("unknown variant `pod`"), "{e}");
}

// ---------- what render emits ----------

#[test]
fn every_kind_render_emits_is_owned_and_granted() {
    let samples = repo().join("manifests/samples");
    let mut seen = BTreeSet::new();
    for e in std::fs::read_dir(samples).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        for parsed in seldon_crd::parse_yaml(&text).unwrap() {
            for ingress in [
                seldon_render::Ingress::Istio,
                seldon_render::Ingress::Ambassador,
            ] {
                let opts = seldon_render::RenderOptions {
                    ingress,
                    ..Default::default()
                };
                for m in seldon_render::render(&parsed.sdep, &opts).unwrap() {
                    assert!(
                        owned::owned_kind(m.api_version(), m.kind()).is_some(),
                        "{} {} is not owned",
                        m.api_version(),
                        m.kind()
                    );
                    seen.insert(m.kind().to_string());
                }
            }
        }
    }
    for k in [
        "Deployment",
        "Service",
        "VirtualService",
        "DestinationRule",
        "WasmPlugin",
        "EnvoyFilter",
        "Mapping",
    ] {
        assert!(seen.contains(k), "no sample renders a {k}: {seen:?}");
    }
}

#[test]
fn helm_tracing_reaches_the_render_options_only_when_set() {
    let o = helm_operator_config(&[]);
    assert_eq!(o.tracing_endpoint, None);
    let o = helm_operator_config(&[
        "--set",
        "tracing.endpoint=http://jaeger-collector.observability:4318",
        "--set",
        "tracing.sampleRatio=0.25",
    ]);
    assert_eq!(
        o.tracing_endpoint.as_deref(),
        Some("http://jaeger-collector.observability:4318")
    );
    assert_eq!(o.trace_sample_ratio, 0.25);
}
