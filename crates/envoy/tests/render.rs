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
                    plugin_config_json: r#"{"graph":{"name":"classifier","type":"MODEL"}}"#.into(),
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
