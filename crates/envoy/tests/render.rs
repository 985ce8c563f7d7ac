//! Golden file and `envoy --mode validate` checks of the rendered bootstrap.

use std::path::PathBuf;
use std::time::Duration;

use seldon_envoy::{
    Cluster, ConfigError, EnvoyConfig, EnvoyError, GatewayRoute, Listener, ListenerKind, Mirror,
    WeightedCluster, render, validate,
};

/// One listener of each kind, clusters of each flavour: the shape local mode emits.
fn sample() -> EnvoyConfig {
    EnvoyConfig {
        admin_port: 9901,
        buffer_limit_bytes: 4 * 1024 * 1024,
        allow_on_headers_stop_iteration: true,
        listeners: vec![
            Listener {
                name: "gateway".into(),
                port: 8000,
                kind: ListenerKind::Gateway {
                    routes: vec![GatewayRoute {
                        prefix: "/seldon/default/iris/".into(),
                        rewrite: Some("/".into()),
                        clusters: vec![
                            WeightedCluster {
                                cluster: "iris-main".into(),
                                weight: 75,
                            },
                            WeightedCluster {
                                cluster: "iris-canary".into(),
                                weight: 25,
                            },
                        ],
                        mirror: Some(Mirror {
                            cluster: "iris-shadow".into(),
                            percent: 12.5,
                        }),
                        timeout: Some(Duration::from_secs(30)),
                    }],
                },
            },
            Listener {
                name: "iris-main".into(),
                port: 8001,
                kind: ListenerKind::Graph {
                    wasm_path: PathBuf::from("/opt/seldon/seldon_filter.wasm"),
                    plugin_config_json:
                        r#"{"graph":{"name":"classifier","type":"MODEL"},"bodyLimitBytes":1048576}"#
                            .into(),
                    vm_id: "seldon-graph".into(),
                },
            },
            Listener {
                name: "baseline".into(),
                port: 8002,
                kind: ListenerKind::Route {
                    cluster: "classifier".into(),
                    prefix_rewrite: Some("/predict".into()),
                    timeout: Some(Duration::from_millis(1500)),
                },
            },
        ],
        clusters: vec![
            Cluster::http1("iris-main", "127.0.0.1", 8001),
            Cluster::http1("iris-canary", "127.0.0.1", 8003),
            Cluster::http1("iris-shadow", "localhost", 8004),
            Cluster::http1("classifier", "127.0.0.1", 9000),
            Cluster {
                name: "classifier-grpc".into(),
                host: "127.0.0.1".into(),
                port: 9500,
                connect_timeout: Duration::from_millis(250),
                http2: true,
            },
        ],
    }
}

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/bootstrap.golden.yaml")
}

#[test]
fn rendered_bootstrap_matches_golden() {
    let yaml = render(&sample()).expect("sample renders");
    let path = golden_path();
    if std::env::var_os("UPDATE_GOLDENS").is_some() {
        std::fs::write(&path, &yaml).expect("write golden");
    }
    let golden = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with UPDATE_GOLDENS=1", path.display()));
    assert_eq!(
        yaml,
        golden,
        "bootstrap drifted from {}; review, then UPDATE_GOLDENS=1",
        path.display()
    );
}

#[test]
fn render_rejects_a_route_to_an_undeclared_cluster() {
    let mut config = sample();
    config.clusters.retain(|c| c.name != "classifier");
    let err = render(&config).unwrap_err();
    assert!(
        matches!(
            &err,
            EnvoyError::Config(ConfigError::UnknownCluster { listener, cluster })
                if listener == "baseline" && cluster == "classifier"
        ),
        "{err}"
    );
}

#[test]
fn check_rejects_each_kind_of_bad_config() {
    let mut c = sample();
    c.listeners[1].port = 8000;
    assert_eq!(c.check(), Err(ConfigError::DuplicatePort(8000)));

    let mut c = sample();
    c.clusters
        .push(Cluster::http1("classifier", "127.0.0.1", 1));
    assert_eq!(
        c.check(),
        Err(ConfigError::DuplicateCluster("classifier".into()))
    );

    let mut c = sample();
    c.listeners[2].name = "gateway".into();
    assert_eq!(
        c.check(),
        Err(ConfigError::DuplicateListener("gateway".into()))
    );

    let mut c = sample();
    c.admin_port = 0;
    assert!(matches!(c.check(), Err(ConfigError::ZeroPort { .. })));

    let mut c = sample();
    c.buffer_limit_bytes = 0;
    assert_eq!(c.check(), Err(ConfigError::ZeroBufferLimit));

    let mut c = sample();
    let ListenerKind::Gateway { routes } = &mut c.listeners[0].kind else {
        unreachable!()
    };
    routes[0].clusters.iter_mut().for_each(|wc| wc.weight = 0);
    assert!(matches!(c.check(), Err(ConfigError::NoWeight { .. })));

    let mut c = sample();
    let ListenerKind::Gateway { routes } = &mut c.listeners[0].kind else {
        unreachable!()
    };
    routes[0].mirror.as_mut().unwrap().percent = 100.5;
    assert!(matches!(c.check(), Err(ConfigError::MirrorPercent { .. })));

    let mut c = sample();
    c.listeners[0].kind = ListenerKind::Gateway { routes: vec![] };
    assert_eq!(c.check(), Err(ConfigError::NoRoutes("gateway".into())));
}

/// Every listener but the graph one (validate mode would load the wasm module).
fn without_graph() -> EnvoyConfig {
    let mut config = sample();
    config
        .listeners
        .retain(|l| !matches!(l.kind, ListenerKind::Graph { .. }));
    config
}

#[test]
fn envoy_validates_the_rendered_route_and_gateway_listeners() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("envoy.yaml");
    std::fs::write(&path, render(&without_graph()).unwrap()).unwrap();
    validate(&path).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn envoy_validate_names_the_problem_in_a_broken_bootstrap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("envoy.yaml");
    // A route to a cluster Envoy does not know: our check() would catch it, so break the YAML.
    let yaml = render(&without_graph())
        .unwrap()
        .replace("cluster: classifier\n", "cluster: nowhere\n");
    assert!(yaml.contains("nowhere"), "the replacement must hit");
    std::fs::write(&path, yaml).unwrap();
    let err = validate(&path).unwrap_err();
    let EnvoyError::Invalid { stderr, .. } = &err else {
        panic!("expected Invalid, got {err}")
    };
    assert!(
        stderr.contains("nowhere"),
        "error should name the unknown cluster: {stderr}"
    );
}

#[test]
fn validate_fails_on_a_missing_file() {
    let err = validate(std::path::Path::new("/nonexistent/envoy.yaml")).unwrap_err();
    assert!(matches!(err, EnvoyError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/envoy.yaml"), "{err}");
}

// ---------- issue 11: Envoy's local replies as Seldon status JSON ----------

#[test]
fn graph_and_gateway_listeners_map_local_replies_and_the_baseline_does_not() {
    let boot = seldon_envoy::bootstrap(&sample()).unwrap();
    let hcm = |name: &str| -> serde_json::Value {
        boot["static_resources"]["listeners"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == name)
            .map(|l| l["filter_chains"][0]["filters"][0]["typed_config"].clone())
            .unwrap()
    };
    for name in ["gateway", "iris-main"] {
        let mappers = hcm(name)["local_reply_config"]["mappers"].clone();
        assert_eq!(mappers.as_array().unwrap().len(), 10, "{name}");
        assert_eq!(hcm(name)["normalize_path"], true);
        assert_eq!(hcm(name)["merge_slashes"], true);
    }
    assert!(hcm("baseline").get("local_reply_config").is_none());
    // on the graph listener only Envoy's replies (flagged, or before a request existed) are
    // rewritten: never the filter's
    for m in hcm("iris-main")["local_reply_config"]["mappers"]
        .as_array()
        .unwrap()
    {
        let text = m["filter"].to_string();
        let envoys =
            text.contains("response_flag_filter") && text.contains(r#""invert_match":true"#);
        // except 413, by status: the filter's own has the same body (`local_reply`)
        let is_413 = text.contains(r#""default_value":413"#);
        assert!(envoys != is_413, "{text}");
    }
    // the 413 names the listener's limit on the gateway, the filter's on a graph listener
    let gw = hcm("gateway")["local_reply_config"]["mappers"].to_string();
    assert!(
        gw.contains("larger than the limit of 4194304 bytes"),
        "{gw}"
    );
    let graph = hcm("iris-main")["local_reply_config"]["mappers"].to_string();
    assert!(
        graph.contains("larger than the limit of 1048576 bytes"),
        "{graph}"
    );
    // a config without the field (or not JSON) falls back to the listener's limit
    let mut config = sample();
    for l in &mut config.listeners {
        if let ListenerKind::Graph {
            plugin_config_json, ..
        } = &mut l.kind
        {
            *plugin_config_json = "not json".into();
        }
    }
    let boot = seldon_envoy::bootstrap(&config).unwrap();
    let graph = boot["static_resources"]["listeners"].to_string();
    assert!(!graph.contains("limit of 1048576 bytes"), "{graph}");
}

fn istio_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../istio/local-replies.yaml")
}

const ISTIO_FILE_HEADER: &str = "\
# kubectl apply -f istio/local-replies.yaml (with the gateway, once per cluster)
# Envoy's own answers on the ingress gateway for /seldon/... paths (413, 426, 431, 404 for an
# unknown deployment, 503, 504) as Seldon status JSON, like local mode's gateway (issue 11).
# Generated by seldon_envoy::local_reply::istio_gateway_envoy_filter; rewrite with
# UPDATE_GOLDENS=1 cargo test -p seldon-envoy --test render
";

#[test]
fn istio_local_replies_file_is_the_rendered_envoy_filter() {
    let yaml = format!(
        "{ISTIO_FILE_HEADER}{}",
        serde_yaml::to_string(&seldon_envoy::local_reply::istio_gateway_envoy_filter()).unwrap()
    );
    let path = istio_file();
    if std::env::var_os("UPDATE_GOLDENS").is_some() {
        std::fs::write(&path, &yaml).unwrap();
    }
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with UPDATE_GOLDENS=1", path.display()));
    assert_eq!(
        yaml, committed,
        "istio/local-replies.yaml drifted; UPDATE_GOLDENS=1"
    );
}

/// The Istio patch's `local_reply_config`, merged into our gateway listener, is a config
/// Envoy accepts (the same check istiod's output gets from the gateway's Envoy).
#[test]
fn envoy_validates_the_istio_gateway_local_replies() {
    let filter = seldon_envoy::local_reply::istio_gateway_envoy_filter();
    let patch = &filter["spec"]["configPatches"][0]["patch"]["value"]["typed_config"];
    let mut boot = seldon_envoy::bootstrap(&without_graph()).unwrap();
    for l in boot["static_resources"]["listeners"]
        .as_array_mut()
        .unwrap()
    {
        let hcm = &mut l["filter_chains"][0]["filters"][0]["typed_config"];
        assert_eq!(hcm["@type"], patch["@type"]);
        hcm["local_reply_config"] = patch["local_reply_config"].clone();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("envoy.yaml");
    std::fs::write(&path, serde_yaml::to_string(&boot).unwrap()).unwrap();
    validate(&path).unwrap_or_else(|e| panic!("{e}"));
    // a broken mapper is refused: the check can fail
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replacen("op: EQ", "op: ALMOST", 1);
    std::fs::write(&path, text).unwrap();
    assert!(validate(&path).is_err());
}
