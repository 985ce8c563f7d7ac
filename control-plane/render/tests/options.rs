//! What the mesh showed (issue 7), one test per decision, each through the public `render` /
//! `check` with the options that change it:
//!
//! - the filter URL (default fully qualified; a custom one lands in every WasmPlugin, golden
//!   `tests/golden/options/sklearn-iris-filter-url.yaml`);
//! - gRPC at the entry: not rendered (no 5001 port, route or Mapping) and `transport: grpc`
//!   refused, unless `grpc_entry` is on;
//! - the model initializer runs as Istio's proxy UID (Seldon #4450);
//! - the EnvoyFilter has a priority (IST0151);
//! - tracing: a collector endpoint lands in every WasmPlugin's FilterConfig and in every node
//!   container's `OTEL_EXPORTER_OTLP_ENDPOINT` (golden
//!   `tests/golden/options/router-three-models-tracing.yaml`).

use std::path::PathBuf;

use seldon_crd::SeldonDeployment;
use seldon_render::{
    DEFAULT_FILTER_URL, ISTIO_PROXY_UID, Ingress, Manifest, RenderOptions, check, render, to_yaml,
};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sample(name: &str) -> SeldonDeployment {
    let text = std::fs::read_to_string(root().join(format!("../../manifests/samples/{name}.yaml")))
        .unwrap();
    seldon_crd::parse_yaml(&text).unwrap().remove(0).sdep
}

fn objects(sdep: &SeldonDeployment, opts: &RenderOptions) -> Vec<Value> {
    render(sdep, opts)
        .unwrap()
        .iter()
        .map(Manifest::to_value)
        .collect()
}

fn of_kind<'a>(objs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objs.iter().filter(|o| o["kind"] == kind).collect()
}

// ---------- filter URL ----------

#[test]
fn default_filter_url_is_fully_qualified() {
    // an unqualified `seldon-mesh/graph-filter` would be pulled from Docker Hub
    assert_eq!(
        DEFAULT_FILTER_URL,
        format!(
            "oci://ghcr.io/seldon-mesh/graph-filter:{}",
            env!("CARGO_PKG_VERSION")
        )
    );
    let host = DEFAULT_FILTER_URL
        .strip_prefix("oci://")
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    assert!(host.contains('.'), "{host} is not a registry host");
    let objs = objects(&sample("sklearn-iris"), &RenderOptions::default());
    assert_eq!(
        of_kind(&objs, "WasmPlugin")[0]["spec"]["url"],
        DEFAULT_FILTER_URL
    );
    assert!(
        of_kind(&objs, "WasmPlugin")[0]["spec"]
            .get("sha256")
            .is_none()
    );
}

/// The options `tests/golden/options/sklearn-iris-filter-url.yaml` is rendered with (the CLI
/// test renders the same with `--filter-url`/`--filter-sha256`).
pub const CUSTOM_URL: &str = "oci://registry.example.com:5000/ml/graph-filter:0.1.0-rc1";
pub const CUSTOM_SHA: &str = "7f83b1657ff1fc53b92dc18148a1d65dfc2d4b1fa3d677284addd200126d9069";

#[test]
fn custom_filter_url_matches_its_golden_file() {
    let opts = RenderOptions {
        filter_url: CUSTOM_URL.to_string(),
        filter_sha256: Some(CUSTOM_SHA.to_string()),
        ..RenderOptions::default()
    };
    let manifests = render(&sample("sklearn-iris"), &opts).unwrap();
    let yaml = format!(
        "# manifests/samples/sklearn-iris.yaml rendered with filter_url {CUSTOM_URL} and its sha256 (tests/options.rs). Do not edit: `UPDATE_GOLDENS=1 cargo test -p seldon-render`.\n{}",
        to_yaml(&manifests)
    );
    let golden = root().join("tests/golden/options/sklearn-iris-filter-url.yaml");
    if std::env::var_os("UPDATE_GOLDENS").is_some() {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(&golden, &yaml).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(&golden).unwrap(),
        yaml,
        "golden drifted; run `UPDATE_GOLDENS=1 cargo test -p seldon-render` and review the diff"
    );
    let plugin = manifests.iter().find(|m| m.kind() == "WasmPlugin").unwrap();
    assert_eq!(plugin.to_value()["spec"]["url"], CUSTOM_URL);
    assert_eq!(plugin.to_value()["spec"]["sha256"], CUSTOM_SHA);
    // nothing else differs from the default render
    let default = to_yaml(&render(&sample("sklearn-iris"), &RenderOptions::default()).unwrap());
    let custom = to_yaml(&manifests).replace(&format!("  sha256: {CUSTOM_SHA}\n"), "");
    assert_eq!(custom, default.replace(DEFAULT_FILTER_URL, CUSTOM_URL));
}

// ---------- gRPC at the entry ----------

fn with_grpc_entry() -> RenderOptions {
    RenderOptions {
        grpc_entry: true,
        ..RenderOptions::default()
    }
}

fn ambassador(opts: RenderOptions) -> RenderOptions {
    RenderOptions {
        ingress: Ingress::Ambassador,
        ..opts
    }
}

/// Every predictor Service's `(name, port)`s.
fn predictor_ports(objs: &[Value]) -> Vec<Vec<(String, i64)>> {
    of_kind(objs, "Service")
        .into_iter()
        .filter(|s| s["metadata"]["labels"].get("seldon-app").is_some())
        .map(|s| {
            s["spec"]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p["name"].as_str().unwrap().to_string(),
                        p["port"].as_i64().unwrap(),
                    )
                })
                .collect()
        })
        .collect()
}

#[test]
fn no_grpc_is_advertised_at_the_entry_by_default() {
    for name in ["sklearn-iris", "ab-test", "shadow"] {
        let objs = objects(&sample(name), &RenderOptions::default());
        let ports = predictor_ports(&objs);
        assert!(!ports.is_empty(), "{name}");
        for p in ports {
            assert_eq!(p, [("http".to_string(), 8000)], "{name}");
        }
        let vs = of_kind(&objs, "VirtualService");
        let routes: Vec<&str> = vs[0]["spec"]["http"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(routes, ["rest"], "{name}");
        assert!(
            !serde_json::to_string(&objs).unwrap().contains("5001"),
            "{name}"
        );
    }
    let objs = objects(&sample("ambassador"), &ambassador(RenderOptions::default()));
    let mappings = of_kind(&objs, "Mapping");
    assert!(!mappings.is_empty());
    for m in mappings {
        assert!(
            m["metadata"]["name"].as_str().unwrap().ends_with("-rest"),
            "{m}"
        );
        assert!(m["spec"].get("grpc").is_none(), "{m}");
        assert!(
            m["spec"]["service"].as_str().unwrap().ends_with(":8000"),
            "{m}"
        );
    }
}

#[test]
fn grpc_entry_turns_port_route_and_mapping_back_on() {
    let objs = objects(&sample("shadow"), &with_grpc_entry());
    for p in predictor_ports(&objs) {
        assert_eq!(p, [("http".to_string(), 8000), ("grpc".to_string(), 5001)]);
    }
    let vs = of_kind(&objs, "VirtualService")[0];
    let grpc = &vs["spec"]["http"][1];
    assert_eq!(grpc["name"], "grpc");
    assert_eq!(
        grpc["match"][0]["headers"]["seldon"]["exact"],
        vs["metadata"]["name"]
    );
    assert_eq!(grpc["route"][0]["destination"]["port"]["number"], 5001);
    assert_eq!(
        grpc["mirror"]["port"]["number"], 5001,
        "the shadow gets gRPC too"
    );
    assert_eq!(vs["spec"]["http"][0]["mirror"]["port"]["number"], 8000);

    let objs = objects(&sample("ambassador"), &ambassador(with_grpc_entry()));
    let grpc: Vec<&Value> = of_kind(&objs, "Mapping")
        .into_iter()
        .filter(|m| m["spec"]["grpc"] == true)
        .collect();
    assert!(!grpc.is_empty());
    for m in grpc {
        assert!(
            m["spec"]["service"].as_str().unwrap().ends_with(":5001"),
            "{m}"
        );
    }
}

/// The gRPC entry's EnvoyFilter: the whole Wasm config (same module and FilterConfig as the
/// WasmPlugin, plus what the tail call needs), the filter on the inbound 5001 chain, the
/// tail-call route first in its route configuration; golden
/// `tests/golden/options/transformer-model-grpc-entry.yaml`.
#[test]
fn grpc_entry_runs_the_filter_with_tail_calls_on_port_5001() {
    let sdep = sample("transformer-model");
    let off = objects(&sdep, &RenderOptions::default());
    assert!(
        of_kind(&off, "EnvoyFilter")
            .iter()
            .all(|e| !e["metadata"]["name"]
                .as_str()
                .unwrap()
                .ends_with("-grpc-entry")),
        "no gRPC entry by default"
    );
    let opts = with_grpc_entry();
    let objs = objects(&sdep, &opts);
    let plugin = of_kind(&objs, "WasmPlugin")[0];
    let entry: Vec<&Value> = of_kind(&objs, "EnvoyFilter")
        .into_iter()
        .filter(|e| e["metadata"]["name"] == "income-default-grpc-entry")
        .collect();
    assert_eq!(entry.len(), 1, "{objs:?}");
    let spec = &entry[0]["spec"];
    assert_eq!(
        spec["workloadSelector"]["labels"],
        plugin["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(spec["priority"], 10);
    let patches = spec["configPatches"].as_array().unwrap();
    let kinds: Vec<&str> = patches
        .iter()
        .map(|p| p["applyTo"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["EXTENSION_CONFIG", "HTTP_FILTER", "HTTP_ROUTE"]);
    let ext = &patches[0]["patch"]["value"];
    assert_eq!(ext["name"], "seldon-mesh.seldon.income-default.grpc");
    let config = &ext["typed_config"]["config"];
    assert_eq!(config["allow_on_headers_stop_iteration"], true);
    assert_eq!(config["failure_policy"], "FAIL_CLOSED");
    assert_eq!(
        config["vm_config"]["environment_variables"]["key_values"]["SELDON_TAIL_CALLS"],
        "enabled"
    );
    assert_eq!(config["vm_config"]["vm_id"], "seldon-mesh-tail-calls");
    assert_eq!(
        config["vm_config"]["code"]["remote"]["http_uri"]["uri"],
        plugin["spec"]["url"]
    );
    // the same FilterConfig as the WasmPlugin's pluginConfig
    let filter_config: Value =
        serde_json::from_str(config["configuration"]["value"].as_str().unwrap()).unwrap();
    assert_eq!(filter_config, plugin["spec"]["pluginConfig"]);
    // the filter on the inbound gRPC port, named as the extension config
    let filter = &patches[1];
    assert_eq!(filter["match"]["context"], "SIDECAR_INBOUND");
    assert_eq!(filter["match"]["listener"]["portNumber"], 5001);
    assert_eq!(filter["patch"]["operation"], "INSERT_BEFORE");
    assert_eq!(filter["patch"]["value"]["name"], ext["name"]);
    // the tail-call route, first on port 5001
    let route = &patches[2];
    assert_eq!(route["match"]["routeConfiguration"]["portNumber"], 5001);
    assert_eq!(route["patch"]["operation"], "INSERT_FIRST");
    assert_eq!(
        route["patch"]["value"]["route"]["cluster_header"],
        "x-seldon-upstream"
    );

    let yaml = to_yaml(&render(&sdep, &opts).unwrap());
    let golden = root().join("tests/golden/options/transformer-model-grpc-entry.yaml");
    if std::env::var_os("UPDATE_GOLDENS").is_some() {
        std::fs::write(&golden, &yaml).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(&golden).unwrap(),
        yaml,
        "golden drifted; run `UPDATE_GOLDENS=1 cargo test -p seldon-render` and review the diff"
    );
}

fn grpc_transport() -> SeldonDeployment {
    let mut sdep = sample("sklearn-iris");
    sdep.spec.transport = Some(seldon_graph::Transport::Grpc);
    sdep
}

#[test]
fn grpc_transport_is_refused_once_with_the_reason() {
    let problems = check(&grpc_transport(), &RenderOptions::default());
    assert_eq!(
        problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [format!(
            "spec.transport: {}",
            seldon_render::check::GRPC_NOT_SERVED
        )]
    );
    assert!(
        seldon_render::check::GRPC_NOT_SERVED.contains("Use transport: rest"),
        "the message says what to do"
    );
    let err = render(&grpc_transport(), &RenderOptions::default()).unwrap_err();
    assert!(err.to_string().contains("grpc is not served yet"), "{err}");
    // REST (the default) is fine
    assert!(check(&sample("sklearn-iris"), &RenderOptions::default()).is_empty());
}

#[test]
fn with_grpc_entry_grpc_transport_is_accepted() {
    // the filter calls gRPC nodes since 0b69105 (seldon_graph::Capabilities::FILTER), so with
    // the entry on nothing refuses `transport: grpc`
    let problems = check(&grpc_transport(), &with_grpc_entry());
    assert!(problems.is_empty(), "{problems:?}");
}

// ---------- model initializer egress (Seldon #4450) ----------

fn initializers(objs: &[Value]) -> Vec<&Value> {
    of_kind(objs, "Deployment")
        .into_iter()
        .flat_map(|d| {
            d["spec"]["template"]["spec"]["initContainers"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .filter(|c| c["name"].as_str().unwrap().ends_with("-model-initializer"))
        .collect()
}

#[test]
fn model_initializer_runs_as_the_istio_proxy_uid() {
    assert_eq!(ISTIO_PROXY_UID, 1337);
    let objs = objects(&sample("sklearn-iris"), &RenderOptions::default());
    let init = initializers(&objs);
    assert_eq!(init.len(), 1);
    assert_eq!(
        init[0]["securityContext"],
        serde_json::json!({"runAsUser": 1337})
    );
    // only the initializer: the model container keeps the pod's user (8888), which Istio
    // redirects through the sidecar as usual
    let pod = &of_kind(&objs, "Deployment")[0]["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsUser"], 8888);
    for c in pod["containers"].as_array().unwrap() {
        assert!(c.get("securityContext").is_none(), "{c}");
    }
}

#[test]
fn initializer_uid_can_be_changed_or_left_to_the_pod() {
    let openshift = RenderOptions {
        initializer_user_id: Some(1_000_680_001),
        ..RenderOptions::default()
    };
    let objs = objects(&sample("sklearn-iris"), &openshift);
    assert_eq!(
        initializers(&objs)[0]["securityContext"]["runAsUser"],
        1_000_680_001_i64
    );
    let none = RenderOptions {
        initializer_user_id: None,
        ..RenderOptions::default()
    };
    let objs = objects(&sample("sklearn-iris"), &none);
    assert!(initializers(&objs)[0].get("securityContext").is_none());
}

#[test]
fn every_sample_initializer_runs_as_the_proxy_uid_and_pvc_models_have_none() {
    let mut seen = 0;
    for entry in std::fs::read_dir(root().join("../../manifests/samples")).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let opts = if name.contains("ambassador") {
            ambassador(RenderOptions::default())
        } else {
            RenderOptions::default()
        };
        for c in initializers(&objects(&sample(&name), &opts)) {
            assert_eq!(c["securityContext"]["runAsUser"], 1337, "{name}: {c}");
            seen += 1;
        }
    }
    assert!(seen >= 5, "{seen}");
    // pvc:// is mounted: no init container, nothing to download
    let mut sdep = sample("sklearn-iris");
    sdep.spec.predictors[0].graph.model_uri = Some("pvc://models/iris".to_string());
    assert!(initializers(&objects(&sdep, &RenderOptions::default())).is_empty());
}

#[test]
fn tensorflow_nodes_get_the_tensorflow_initializer_and_mlflow_the_python_server() {
    let image = |c: &Value| c["image"].as_str().unwrap().to_string();
    // TENSORFLOW_SERVER: the catalogue's initializer-tf converts the SavedModel at fetch time
    let objs = objects(&sample("tensorflow-mnist"), &RenderOptions::default());
    let init = initializers(&objs);
    assert_eq!(init.len(), 1);
    assert_eq!(image(init[0]), "ghcr.io/seldon-mesh/initializer-tf:0.1.0");
    assert_eq!(init[0]["env"][0]["value"], "TENSORFLOW_SERVER");
    // every other key keeps the operator's initializer (its image option is honoured)
    let opts = RenderOptions {
        initializer_image: "registry.example/init:7".to_string(),
        ..RenderOptions::default()
    };
    for name in ["sklearn-iris", "xgboost-iris", "mlflow-wine"] {
        let objs = objects(&sample(name), &opts);
        let init = initializers(&objs);
        assert!(!init.is_empty(), "{name}");
        for c in init {
            assert_eq!(image(c), "registry.example/init:7", "{name}");
        }
    }
    // MLFLOW_SERVER's model container is server-python (seldon-server + mlflow.pyfunc)
    let objs = objects(&sample("mlflow-wine"), &RenderOptions::default());
    let pod = &of_kind(&objs, "Deployment")[0]["spec"]["template"]["spec"];
    assert_eq!(
        image(&pod["containers"][0]),
        "ghcr.io/seldon-mesh/server-python:0.1.0"
    );
    // a node's own storageInitializerImage still wins over the catalogue
    let mut sdep = sample("tensorflow-mnist");
    sdep.spec.predictors[0].graph.storage_initializer_image = Some("me/tf-init:1".to_string());
    let objs = objects(&sdep, &RenderOptions::default());
    assert_eq!(image(initializers(&objs)[0]), "me/tf-init:1");
}

#[test]
fn triton_reading_its_bucket_gets_seldons_model_control_flags() {
    // Seldon 1.18.2's addTritonServer with seldon.io/no-storage-initializer: the bucket is the
    // repository, --strict-model-config=false is left out, and the node's model_control_mode /
    // load_model / strict_model_config parameters become Triton flags
    let text = r#"
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: triton, namespace: seldon}
spec:
  protocol: v2
  annotations: {seldon.io/no-storage-initializer: "true"}
  predictors:
  - name: default
    graph:
      name: simple
      implementation: TRITON_SERVER
      modelUri: gs://seldon-models/triton/simple
      parameters:
      - {name: model_control_mode, value: explicit, type: STRING}
      - {name: load_model, value: simple, type: STRING}
      - {name: load_model, value: simple_string, type: STRING}
"#;
    let sdep = seldon_crd::parse_yaml(text).unwrap().remove(0).sdep;
    let objs = objects(&sdep, &RenderOptions::default());
    let pod = &of_kind(&objs, "Deployment")[0]["spec"]["template"]["spec"];
    let triton = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "simple")
        .unwrap();
    assert_eq!(
        triton["args"],
        serde_json::json!([
            "/opt/tritonserver/bin/tritonserver",
            "--grpc-port=9500",
            "--http-port=9000",
            "--model-repository=gs://seldon-models/triton/simple",
            "--model-control-mode=explicit",
            "--load-model=simple",
            "--load-model=simple_string"
        ])
    );
    assert!(initializers(&objs).is_empty());
    // with the initializer the parameters are not flags, and the repository is /mnt/models
    let mut sdep = sdep;
    sdep.spec.annotations.clear();
    let objs = objects(&sdep, &RenderOptions::default());
    let pod = &of_kind(&objs, "Deployment")[0]["spec"]["template"]["spec"];
    let args = &pod["containers"][0]["args"];
    assert_eq!(args[3], "--model-repository=/mnt/models", "{args}");
    assert_eq!(args[4], "--strict-model-config=false", "{args}");
    assert_eq!(args.as_array().unwrap().len(), 5, "{args}");
}

// ---------- EnvoyFilter priority (IST0151) ----------

#[test]
fn envoy_filter_has_a_positive_priority() {
    let objs = objects(&sample("ab-test"), &RenderOptions::default());
    let (adds, filters): (Vec<&Value>, Vec<&Value>) = of_kind(&objs, "EnvoyFilter")
        .into_iter()
        .partition(|f| f["spec"]["configPatches"][0]["applyTo"] == "CLUSTER");
    // the node-calls EnvoyFilters only ADD clusters, not a relative patch: no priority
    assert_eq!(adds.len(), 2);
    for f in adds {
        assert!(f["spec"]["priority"].is_null(), "{f}");
    }
    assert_eq!(filters.len(), 2);
    for f in filters {
        assert_eq!(f["spec"]["priority"], seldon_render::envoy_filter::PRIORITY);
        const { assert!(seldon_render::envoy_filter::PRIORITY > 0) };
        assert_eq!(
            f["spec"]["configPatches"][0]["patch"]["operation"],
            "INSERT_BEFORE"
        );
    }
}

// ---------- metrics port for Istio's metrics merge ----------

fn pod_annotations(objs: &[Value]) -> Vec<&Value> {
    of_kind(objs, "Deployment")
        .into_iter()
        .map(|d| &d["spec"]["template"]["metadata"]["annotations"])
        .collect()
}

#[test]
fn pods_name_their_metrics_port_for_istio_metrics_merge() {
    // without prometheus.io/port, the merged scrape goes to the app's port 80
    let objs = objects(&sample("combiner-ensemble"), &RenderOptions::default());
    let anns = pod_annotations(&objs);
    assert_eq!(anns.len(), 1);
    assert_eq!(anns[0]["prometheus.io/port"], "6000");
    assert_eq!(anns[0]["prometheus.io/path"], "/prometheus");
    let pod = &of_kind(&objs, "Deployment")[0]["spec"]["template"]["spec"];
    let first_metrics = pod["containers"][0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "metrics")
        .unwrap();
    assert_eq!(first_metrics["containerPort"], 6000);
    // the user's annotation wins
    let mut sdep = sample("sklearn-iris");
    sdep.spec
        .annotations
        .insert("prometheus.io/port".to_string(), "9102".to_string());
    let objs = objects(&sdep, &RenderOptions::default());
    assert_eq!(pod_annotations(&objs)[0]["prometheus.io/port"], "9102");
}

// ---------- the gateway route timeout derives from the graph (issue 11) ----------

/// The `timeout` of every route of the VirtualService in `objs`.
fn route_timeouts(objs: &[Value]) -> Vec<String> {
    let vs = of_kind(objs, "VirtualService");
    assert_eq!(vs.len(), 1);
    vs[0]["spec"]["http"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["timeout"]
                .as_str()
                .unwrap_or_else(|| panic!("no timeout: {r}"))
                .to_string()
        })
        .collect()
}

#[test]
fn route_timeout_is_the_sum_of_node_timeouts_along_the_graph() {
    // two nodes in a chain with rest-timeout 10000 each: two 8 s nodes must not be cut at 10
    // s (nor at Envoy's 15 s): 20 s of node calls + 1 s for the filter's own 504 to come first
    let mut sdep = sample("transformer-model");
    sdep.spec
        .annotations
        .insert("seldon.io/rest-timeout".to_string(), "10000".to_string());
    for opts in [RenderOptions::default(), with_grpc_entry()] {
        let objs = objects(&sdep, &opts);
        let timeouts = route_timeouts(&objs);
        assert_eq!(timeouts.len(), if opts.grpc_entry { 2 } else { 1 });
        assert!(timeouts.iter().all(|t| t == "21s"), "{timeouts:?}");
        // the annotation still times each node call in the filter
        let config = &of_kind(&objs, "WasmPlugin")[0]["spec"]["pluginConfig"];
        let nodes = config["nodes"].as_object().unwrap();
        assert_eq!(nodes.len(), 2);
        for n in nodes.values() {
            assert_eq!(n["timeoutMs"], 10000, "{n}");
        }
    }
    // without the annotation the nodes' default (10 s each) decides, never Envoy's 15 s
    sdep.spec.annotations.remove("seldon.io/rest-timeout");
    assert_eq!(
        route_timeouts(&objects(&sdep, &RenderOptions::default())),
        ["21s"]
    );
    // retries (Seldon's istio-retries) are still rendered, with their per-try timeout
    sdep.spec
        .annotations
        .insert("seldon.io/istio-retries".to_string(), "2".to_string());
    let objs = objects(&sdep, &RenderOptions::default());
    let route = &of_kind(&objs, "VirtualService")[0]["spec"]["http"][0];
    assert_eq!(route["retries"]["attempts"], 2);
    assert_eq!(route["retries"]["perTryTimeout"], "1s");
    assert_eq!(route["timeout"], "21s");
}

#[test]
fn route_timeout_honours_rest_timeout_for_the_whole_request() {
    // one model with rest-timeout 30000: 31 s, not Envoy's 15 s
    let mut sdep = sample("sklearn-iris");
    sdep.spec
        .annotations
        .insert("seldon.io/rest-timeout".to_string(), "30000".to_string());
    assert_eq!(
        route_timeouts(&objects(&sdep, &RenderOptions::default())),
        ["31s"]
    );
    // milliseconds are kept, in the protobuf JSON duration form Istio takes
    sdep.spec
        .annotations
        .insert("seldon.io/rest-timeout".to_string(), "2500".to_string());
    assert_eq!(
        route_timeouts(&objects(&sdep, &RenderOptions::default())),
        ["3.500s"]
    );
    // a value that is not a number is the default (10 s per node call), as for the filter
    sdep.spec
        .annotations
        .insert("seldon.io/rest-timeout".to_string(), "soon".to_string());
    assert_eq!(
        route_timeouts(&objects(&sdep, &RenderOptions::default())),
        ["11s"]
    );
}

#[test]
fn route_timeout_covers_the_slowest_predictor_of_a_split() {
    // ab-test: two single-model predictors; a predictor-level rest-timeout on one of them
    let mut sdep = sample("ab-test");
    assert!(sdep.spec.predictors.len() >= 2);
    sdep.spec.predictors[1]
        .annotations
        .insert("seldon.io/rest-timeout".to_string(), "2500".to_string());
    sdep.spec.predictors[0]
        .annotations
        .insert("seldon.io/rest-timeout".to_string(), "40000".to_string());
    assert_eq!(
        route_timeouts(&objects(&sdep, &RenderOptions::default())),
        ["41s"]
    );
}

#[test]
fn every_golden_virtual_service_sets_a_route_timeout() {
    let mut seen = 0;
    for entry in std::fs::read_dir(root().join("tests/golden")).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v: Value = serde::Deserialize::deserialize(doc).unwrap();
            if v["kind"] == "VirtualService" {
                for r in v["spec"]["http"].as_array().unwrap() {
                    let t = r["timeout"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{}: {r}", path.display()));
                    assert!(t.ends_with('s') && t != "0s", "{}: {t}", path.display());
                    seen += 1;
                }
            }
        }
    }
    assert!(seen > 5, "only {seen} VirtualService routes in the goldens");
}

// ---------- tracing ----------

#[test]
fn a_tracing_endpoint_reaches_every_filter_config_and_matches_its_golden() {
    let opts = RenderOptions {
        tracing_endpoint: Some("http://jaeger-collector.observability:4318".to_string()),
        trace_sample_ratio: 0.5,
        ..RenderOptions::default()
    };
    let objs = objects(&sample("ab-test"), &opts);
    let plugins: Vec<&Value> = objs.iter().filter(|o| o["kind"] == "WasmPlugin").collect();
    assert_eq!(plugins.len(), 2);
    for p in plugins {
        let t = &p["spec"]["pluginConfig"]["tracing"];
        assert_eq!(
            t["cluster"],
            "outbound|4318||jaeger-collector.observability.svc.cluster.local"
        );
        assert_eq!(t["path"], "/v1/traces");
        assert_eq!(t["sampleRatio"], 0.5);
        // the predictor Service and namespace, as Istio names a workload's spans
        assert_eq!(
            t["serviceName"],
            format!("{}.seldon", p["metadata"]["name"].as_str().unwrap())
        );
        let json = serde_json::to_vec(&p["spec"]["pluginConfig"]).unwrap();
        let config = seldon_graph::FilterConfig::from_json(&json).unwrap();
        seldon_graph::compile(&config).unwrap();
    }
    // every node container exports its own spans to the same collector; a user's value wins
    let otel = |objs: &[Value]| -> Vec<Option<String>> {
        of_kind(objs, "Deployment")
            .iter()
            .flat_map(|d| {
                d["spec"]["template"]["spec"]["containers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|c| c["name"] != "istio-proxy")
                    .map(|c| {
                        c["env"].as_array().and_then(|env| {
                            env.iter()
                                .find(|e| e["name"] == "OTEL_EXPORTER_OTLP_ENDPOINT")
                                .map(|e| e["value"].as_str().unwrap().to_string())
                        })
                    })
            })
            .collect()
    };
    let on = otel(&objs);
    assert!(!on.is_empty());
    assert!(
        on.iter()
            .all(|v| v.as_deref() == Some("http://jaeger-collector.observability:4318")),
        "{on:?}"
    );
    let mut own = sample("router-three-models");
    own.spec.predictors[0].component_specs[0].spec.containers[0].env =
        Some(vec![k8s_openapi::api::core::v1::EnvVar {
            name: "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
            value: Some("http://my-collector:4318".into()),
            ..Default::default()
        }]);
    assert!(otel(&objects(&own, &opts)).contains(&Some("http://my-collector:4318".to_string())));
    assert!(
        otel(&objects(&sample("ab-test"), &RenderOptions::default()))
            .iter()
            .all(Option::is_none)
    );

    // off by default: no tracing key at all
    let objs = objects(&sample("ab-test"), &RenderOptions::default());
    assert!(
        objs.iter()
            .filter(|o| o["kind"] == "WasmPlugin")
            .all(|p| p["spec"]["pluginConfig"].get("tracing").is_none())
    );

    let manifests = render(&sample("router-three-models"), &opts).unwrap();
    let yaml = format!(
        "# manifests/samples/router-three-models.yaml rendered with tracing_endpoint http://jaeger-collector.observability:4318, ratio 0.5 (tests/options.rs). Do not edit: `UPDATE_GOLDENS=1 cargo test -p seldon-render`.\n{}",
        to_yaml(&manifests)
    );
    let golden = root().join("tests/golden/options/router-three-models-tracing.yaml");
    if std::env::var_os("UPDATE_GOLDENS").is_some() {
        std::fs::write(&golden, &yaml).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(&golden).unwrap(),
        yaml,
        "golden drifted; run `UPDATE_GOLDENS=1 cargo test -p seldon-render` and review the diff"
    );
}
