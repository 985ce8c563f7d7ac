//! Swagger UI in local mode, at `/seldon/<ns>/<sdep>/api/v1.0/doc/` as Seldon served it.
//!
//! ```text
//!  browser ─► gateway listener: /seldon/<ns>/<sdep>/api/v1.0/doc ─► `apidocs` cluster
//!             (rewritten to /doc)                                    └─► DocsServer (in `up`, 127.0.0.1)
//!                                                                        index.html, swagger-initializer.js,
//!                                                                        openapi.json (this deployment),
//!                                                                        swagger-ui-dist's files (pinned)
//!  "Try it out" ─► /seldon/<ns>/<sdep>/api/v1.0/predictions (same gateway, same graph)
//! ```
//!
//! The spec is `seldon_apidocs::for_deployment` of the running plan: its server is the
//! relative `/seldon/<ns>/<sdep>`, so requests from the page go to the gateway that served
//! it. The Swagger UI files come from the npm package `swagger-ui-dist` at
//! `seldon_apidocs::SWAGGER_UI_VERSION`, which `scripts/setup-apidocs.sh` installs into the
//! cache; without them the page answers 503 saying so (the API itself is unaffected).
//!
//! [`doc_route`] is pure; [`DocsServer`] is a tokio task of the `up` process (no child process).

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use seldon_apidocs::{INITIALIZER_JS, Target, asset_content_type, index_html};
use seldon_envoy::{Cluster, EnvoyConfig, GatewayRoute, ListenerKind, WeightedCluster};
use serde_json::{Value, json};

use crate::{LocalError, LocalPlan};
use seldon_crd::SeldonDeployment;
use seldon_render::{Context, Predictor, RenderOptions};

/// The Envoy cluster of the docs server.
pub const CLUSTER: &str = "apidocs";

/// What the docs server sees after the gateway's rewrite.
const SERVED_PREFIX: &str = "/doc";

/// Adds the route `<prefix>api/v1.0/doc` → the docs server on `port` (rewritten to `/doc`)
/// before the deployment's own route, and its cluster. `prefix` is `/seldon/<ns>/<sdep>/`.
pub fn doc_route(envoy: &mut EnvoyConfig, prefix: &str, port: u16) {
    let route = GatewayRoute {
        prefix: format!("{}/api/v1.0/doc", prefix.trim_end_matches('/')),
        rewrite: Some(SERVED_PREFIX.into()),
        clusters: vec![WeightedCluster {
            cluster: CLUSTER.into(),
            weight: 1,
        }],
        mirror: None,
        timeout: None,
    };
    for listener in &mut envoy.listeners {
        if let ListenerKind::Gateway { routes } = &mut listener.kind {
            routes.insert(0, route.clone());
        }
    }
    envoy
        .clusters
        .push(Cluster::http1(CLUSTER, "127.0.0.1", port));
}

/// The deployment a plan runs, for [`seldon_apidocs::for_deployment`]: names and protocol
/// from its first predictor, the nodes the filter calls in any predictor.
pub fn target(plan: &LocalPlan) -> Option<Target> {
    let (_, first, _) = plan.predictors.first()?;
    let mut nodes: Vec<String> = plan
        .predictors
        .iter()
        .flat_map(|(_, c, _)| c.nodes.keys().cloned())
        .collect();
    nodes.sort();
    nodes.dedup();
    Some(Target {
        namespace: first.namespace.clone(),
        deployment: first.deployment.clone(),
        protocol: first.protocol,
        root: first.graph.name.clone(),
        nodes,
    })
}

/// The deployment a manifest describes, for `seldon-mesh docs` (the cluster, where no plan
/// runs here): the same [`Target`] the plan of `up` gives.
pub fn target_of(sdep: &SeldonDeployment) -> Result<Target, LocalError> {
    let problems = seldon_render::check(sdep, &RenderOptions::default());
    if !problems.is_empty() {
        let text: Vec<String> = problems
            .iter()
            .map(|v| format!("{}: {}", v.path, v.message))
            .collect();
        return Err(LocalError::Invalid(text.join("\n")));
    }
    let cx = Context::new(sdep);
    let mut configs = Vec::new();
    for (index, spec) in cx.sdep.spec.predictors.iter().enumerate() {
        let predictor = Predictor::new(&cx, index, spec);
        configs.push(seldon_render::filter_config(
            &cx,
            &predictor,
            &RenderOptions::default(),
        ));
    }
    let first = configs
        .first()
        .ok_or_else(|| LocalError::Invalid("no predictor".into()))?;
    let mut nodes = Vec::new();
    for config in &configs {
        let plan = seldon_graph::compile(config)
            .map_err(|e| LocalError::Invalid(format!("predictor {}: {e}", config.predictor)))?;
        nodes.extend(
            plan.nodes
                .iter()
                .filter(|n| n.is_remote())
                .map(|n| n.name.clone()),
        );
    }
    nodes.sort();
    nodes.dedup();
    Ok(Target {
        namespace: first.namespace.clone(),
        deployment: first.deployment.clone(),
        protocol: first.protocol,
        root: first.graph.name.clone(),
        nodes,
    })
}

/// The Envoy of `seldon-mesh docs`: one listener on 127.0.0.1:`port` that serves Swagger UI
/// from the docs server on `docs_port` and sends everything else under `prefix` unchanged to
/// the cluster's ingress gateway (`gateway`, e.g. a `kubectl port-forward`), so the page
/// and its "Try it out" requests share one origin (no CORS).
pub fn docs_proxy(
    prefix: &str,
    port: u16,
    admin_port: u16,
    docs_port: u16,
    gateway: (&str, u16),
) -> EnvoyConfig {
    const INGRESS: &str = "ingress-gateway";
    let mut envoy = EnvoyConfig::new(admin_port);
    envoy
        .clusters
        .push(Cluster::http1(INGRESS, gateway.0, gateway.1));
    envoy.listeners.push(seldon_envoy::Listener {
        name: "gateway".into(),
        port,
        kind: ListenerKind::Gateway {
            routes: vec![GatewayRoute {
                prefix: prefix.to_string(),
                rewrite: None,
                clusters: vec![WeightedCluster {
                    cluster: INGRESS.into(),
                    weight: 1,
                }],
                mirror: None,
                // As the gateway it stands for: no deadline of its own.
                timeout: Some(std::time::Duration::ZERO),
            }],
        },
    });
    doc_route(&mut envoy, prefix, docs_port);
    envoy
}

/// What a request to the docs server asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// `/doc`: redirect to `doc/` so relative URLs resolve below it.
    AddSlash,
    Index,
    Initializer,
    Spec,
    /// A file of swagger-ui-dist.
    Asset(&'static str),
    NotFound,
    MethodNotAllowed,
}

/// Classifies a request (pure).
pub fn page(method: &str, path: &str) -> Page {
    if method != "GET" && method != "HEAD" {
        return Page::MethodNotAllowed;
    }
    let path = path.split('?').next().unwrap_or_default();
    let Some(rest) = path.strip_prefix(SERVED_PREFIX) else {
        return Page::NotFound;
    };
    match rest {
        "" => Page::AddSlash,
        "/" | "/index.html" => Page::Index,
        "/swagger-initializer.js" => Page::Initializer,
        "/openapi.json" => Page::Spec,
        other => match other.strip_prefix('/').and_then(|name| {
            seldon_apidocs::SWAGGER_UI_ASSETS
                .iter()
                .find(|a| **a == name)
                .copied()
        }) {
            Some(asset) => Page::Asset(asset),
            None => Page::NotFound,
        },
    }
}

/// What the docs server serves; the spec changes when `up` reloads a changed manifest.
#[derive(Debug)]
struct Docs {
    assets: PathBuf,
    title: String,
    spec: Vec<u8>,
}

/// The docs server: a task on `up`'s runtime, stopped on drop.
#[derive(Debug)]
pub struct DocsServer {
    port: u16,
    docs: Arc<RwLock<Docs>>,
    task: tokio::task::JoinHandle<()>,
}

impl DocsServer {
    /// Serves on `listener` (bound by the caller before the plan, so the plan knows the port;
    /// must be called inside a tokio runtime). `assets` is swagger-ui-dist's folder.
    pub fn serve(
        listener: std::net::TcpListener,
        assets: PathBuf,
        target: &Target,
    ) -> Result<Self, LocalError> {
        let io = |source| LocalError::Io {
            action: "serving Swagger UI on",
            path: PathBuf::from("127.0.0.1"),
            source,
        };
        let port = listener.local_addr().map_err(io)?.port();
        listener.set_nonblocking(true).map_err(io)?;
        let listener = tokio::net::TcpListener::from_std(listener).map_err(io)?;
        let docs = Arc::new(RwLock::new(Docs {
            assets,
            title: String::new(),
            spec: Vec::new(),
        }));
        let server = Self {
            port,
            docs: docs.clone(),
            task: tokio::spawn(accept(listener, docs)),
        };
        server.update(target);
        Ok(server)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves the spec of `target` from now on (after a reload).
    pub fn update(&self, target: &Target) {
        let title = format!("{}/{} (seldon-mesh)", target.namespace, target.deployment);
        let spec = match seldon_apidocs::spec() {
            Ok(spec) => serde_json::to_vec(&seldon_apidocs::for_deployment(&spec, target))
                .unwrap_or_default(),
            Err(e) => error_body(500, &e.to_string()).2,
        };
        if let Ok(mut docs) = self.docs.write() {
            docs.title = title;
            docs.spec = spec;
        }
    }

    /// Whether swagger-ui-dist's files are where the page loads them from.
    pub fn assets_installed(&self) -> bool {
        self.docs.read().is_ok_and(|d| assets_installed(&d.assets))
    }
}

impl Drop for DocsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn assets_installed(dir: &Path) -> bool {
    seldon_apidocs::SWAGGER_UI_ASSETS
        .iter()
        .all(|a| dir.join(a).is_file())
}

async fn accept(listener: tokio::net::TcpListener, docs: Arc<RwLock<Docs>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let docs = docs.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let docs = docs.clone();
                async move { Ok::<_, Infallible>(answer(&docs, &req)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(docs: &RwLock<Docs>, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let Ok(docs) = docs.read() else {
        return respond(error_body(500, "the docs server's state is poisoned"));
    };
    let missing = || {
        error_body(
            503,
            &format!(
                "Swagger UI's files (swagger-ui-dist {}) are not installed in {}: run scripts/setup-apidocs.sh, or pass --swagger-ui DIR",
                seldon_apidocs::SWAGGER_UI_VERSION,
                docs.assets.display()
            ),
        )
    };
    let (status, content_type, body) = match page(req.method().as_str(), req.uri().path()) {
        Page::AddSlash => {
            return Response::builder()
                .status(308)
                .header("location", "doc/")
                .body(Full::new(Bytes::new()))
                .unwrap_or_default();
        }
        Page::Index if !assets_installed(&docs.assets) => missing(),
        Page::Index => (
            200,
            "text/html; charset=utf-8",
            index_html(&docs.title).into_bytes(),
        ),
        Page::Initializer => (
            200,
            "text/javascript; charset=utf-8",
            INITIALIZER_JS.as_bytes().to_vec(),
        ),
        Page::Spec => (200, "application/json", docs.spec.clone()),
        Page::Asset(name) => match std::fs::read(docs.assets.join(name)) {
            Ok(bytes) => (
                200,
                asset_content_type(name).unwrap_or("application/octet-stream"),
                bytes,
            ),
            Err(_) => missing(),
        },
        Page::NotFound => error_body(
            404,
            &format!(
                "no page {}; Swagger UI is at api/v1.0/doc/",
                req.uri().path()
            ),
        ),
        Page::MethodNotAllowed => error_body(405, "the docs only answer GET"),
    };
    respond((status, content_type, body))
}

fn respond((status, content_type, body): (u16, &'static str, Vec<u8>)) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

/// A Seldon status JSON, as the filter answers its own errors.
fn error_body(code: u16, info: &str) -> (u16, &'static str, Vec<u8>) {
    let reason = match code {
        404 => "NOT_FOUND",
        405 => "METHOD_NOT_ALLOWED",
        503 => "NOT_INSTALLED",
        _ => "INTERNAL",
    };
    let body: Value =
        json!({"status": {"code": code, "info": info, "reason": reason, "status": "FAILURE"}});
    (code, "application/json", body.to_string().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use seldon_envoy::Listener;

    #[test]
    fn the_doc_route_comes_first_and_is_rewritten_to_doc() {
        let mut envoy = EnvoyConfig::new(9901);
        envoy.listeners.push(Listener {
            name: "gateway".into(),
            port: 8000,
            kind: ListenerKind::Gateway {
                routes: vec![GatewayRoute {
                    prefix: "/seldon/ns/iris/".into(),
                    rewrite: Some("/".into()),
                    clusters: vec![],
                    mirror: None,
                    timeout: None,
                }],
            },
        });
        doc_route(&mut envoy, "/seldon/ns/iris/", 4321);
        let ListenerKind::Gateway { routes } = &envoy.listener("gateway").unwrap().kind else {
            panic!("not a gateway")
        };
        assert_eq!(routes[0].prefix, "/seldon/ns/iris/api/v1.0/doc");
        assert_eq!(routes[0].rewrite.as_deref(), Some("/doc"));
        assert_eq!(routes[0].clusters[0].cluster, CLUSTER);
        assert_eq!(routes[1].prefix, "/seldon/ns/iris/");
        let cluster = envoy.clusters.iter().find(|c| c.name == CLUSTER).unwrap();
        assert_eq!((cluster.host.as_str(), cluster.port), ("127.0.0.1", 4321));
    }

    #[test]
    fn pages_are_the_index_the_spec_and_listed_assets_only() {
        assert_eq!(page("GET", "/doc"), Page::AddSlash);
        assert_eq!(page("GET", "/doc/"), Page::Index);
        assert_eq!(page("GET", "/doc/?url=x"), Page::Index);
        assert_eq!(page("HEAD", "/doc/index.html"), Page::Index);
        assert_eq!(page("GET", "/doc/openapi.json"), Page::Spec);
        assert_eq!(
            page("GET", "/doc/swagger-initializer.js"),
            Page::Initializer
        );
        assert_eq!(
            page("GET", "/doc/swagger-ui-bundle.js"),
            Page::Asset("swagger-ui-bundle.js")
        );
        for path in [
            "/doc/package.json",
            "/doc/../etc/passwd",
            "/docs",
            "/x",
            "/doc/a/b",
        ] {
            assert_eq!(page("GET", path), Page::NotFound, "{path}");
        }
        assert_eq!(page("POST", "/doc/"), Page::MethodNotAllowed);
    }

    #[test]
    fn errors_are_seldon_status_json() {
        let (code, ct, body) = error_body(404, "no page /x");
        assert_eq!((code, ct), (404, "application/json"));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            json!({"status": {"code": 404, "info": "no page /x", "reason": "NOT_FOUND", "status": "FAILURE"}})
        );
    }

    #[test]
    fn the_plan_routes_the_docs_and_names_its_deployment() {
        let yaml = r#"
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: iris, namespace: team}
spec:
  protocol: v2
  predictors:
  - name: main
    graph: {name: clf, implementation: XGBOOST_SERVER, modelUri: "file:///m"}
"#;
        let sdep = seldon_crd::parse_yaml(yaml).unwrap().remove(0).sdep;
        let opts = crate::LocalOptions {
            gateway_port: 8000,
            server_bin: "/bin/seldon-server".into(),
            filter_wasm: "/f.wasm".into(),
            commands: Default::default(),
            base_dir: "/".into(),
            otlp: None,
            payload_logs: None,
            docs_port: Some(4321),
        };
        let mut next = 20000;
        let plan = crate::plan(&sdep, &opts, &mut || {
            next += 1;
            Ok(next)
        })
        .unwrap();
        let ListenerKind::Gateway { routes } = &plan.envoy.listener("gateway").unwrap().kind else {
            panic!("not a gateway")
        };
        assert_eq!(routes[0].prefix, "/seldon/team/iris/api/v1.0/doc");
        plan.envoy.check().unwrap();
        assert_eq!(
            target(&plan).unwrap(),
            Target {
                namespace: "team".into(),
                deployment: "iris".into(),
                protocol: seldon_graph::Protocol::V2,
                root: "clf".into(),
                nodes: vec!["clf".into()],
            }
        );
        let without = crate::LocalOptions {
            docs_port: None,
            ..opts
        };
        let plan = crate::plan(&sdep, &without, &mut || {
            next += 1;
            Ok(next)
        })
        .unwrap();
        assert!(plan.envoy.clusters.iter().all(|c| c.name != CLUSTER));
    }

    #[test]
    fn a_manifest_gives_the_same_target_as_the_plan() {
        let yaml = r#"
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: iris, namespace: team}
spec:
  predictors:
  - name: main
    graph:
      name: ab
      implementation: RANDOM_ABTEST
      children:
      - {name: a, implementation: XGBOOST_SERVER, modelUri: "gs://b/a"}
      - {name: b, implementation: XGBOOST_SERVER, modelUri: "gs://b/b"}
"#;
        let sdep = seldon_crd::parse_yaml(yaml).unwrap().remove(0).sdep;
        let t = target_of(&sdep).unwrap();
        assert_eq!(
            (t.namespace.as_str(), t.deployment.as_str()),
            ("team", "iris")
        );
        assert_eq!(t.protocol, seldon_graph::Protocol::Seldon);
        assert_eq!(t.root, "ab");
        assert_eq!(
            t.nodes,
            ["a", "b"],
            "the router is run by the filter: no node to ask"
        );
        let invalid = yaml.replace("RANDOM_ABTEST", "NO_SUCH_SERVER");
        let sdep = seldon_crd::parse_yaml(&invalid).unwrap().remove(0).sdep;
        assert!(matches!(target_of(&sdep), Err(LocalError::Invalid(_))));
    }

    #[test]
    fn the_docs_proxy_serves_the_page_and_forwards_the_rest_unchanged() {
        let envoy = docs_proxy("/seldon/team/iris/", 8001, 9901, 4321, ("127.0.0.1", 8080));
        envoy.check().unwrap();
        let ListenerKind::Gateway { routes } = &envoy.listener("gateway").unwrap().kind else {
            panic!("not a gateway")
        };
        assert_eq!(routes[0].prefix, "/seldon/team/iris/api/v1.0/doc");
        assert_eq!(routes[1].prefix, "/seldon/team/iris/");
        assert_eq!(
            routes[1].rewrite, None,
            "the cluster's gateway sees the full path"
        );
        let ingress = envoy
            .clusters
            .iter()
            .find(|c| c.name == routes[1].clusters[0].cluster)
            .unwrap();
        assert_eq!((ingress.host.as_str(), ingress.port), ("127.0.0.1", 8080));
    }

    #[test]
    fn a_plan_without_predictors_has_no_target() {
        let plan = LocalPlan {
            processes: Vec::new(),
            envoy: EnvoyConfig::new(9901),
            predictors: Vec::new(),
            prefix: "/".into(),
        };
        assert_eq!(target(&plan), None);
    }

    fn sample_target() -> Target {
        Target {
            namespace: "ns".into(),
            deployment: "iris".into(),
            protocol: seldon_graph::Protocol::Seldon,
            root: "clf".into(),
            nodes: vec!["clf".into()],
        }
    }

    #[tokio::test]
    async fn the_server_says_what_to_install_when_the_files_are_missing() {
        let empty = tempfile::tempdir().unwrap();
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let server =
            DocsServer::serve(listener, empty.path().to_path_buf(), &sample_target()).unwrap();
        assert!(!server.assets_installed());
        let base = format!("http://127.0.0.1:{}", server.port());
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let page = http.get(format!("{base}/doc/")).send().await.unwrap();
        assert_eq!(page.status(), 503);
        let body: Value = page.json().await.unwrap();
        assert_eq!(body["status"]["reason"], "NOT_INSTALLED");
        assert!(
            body["status"]["info"]
                .as_str()
                .unwrap()
                .contains("scripts/setup-apidocs.sh"),
            "{body}"
        );
        // The spec needs no files; a reload's target is served from then on.
        let spec: Value = http
            .get(format!("{base}/doc/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(spec["servers"][0]["url"], "/seldon/ns/iris");
        server.update(&Target {
            protocol: seldon_graph::Protocol::V2,
            ..sample_target()
        });
        let spec: Value = http
            .get(format!("{base}/doc/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(spec["paths"]["/v2/models/{model}/infer"].is_object());
        let post = http.post(format!("{base}/doc/")).send().await.unwrap();
        assert_eq!(post.status(), 405);
    }

    #[test]
    fn missing_assets_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!assets_installed(dir.path()));
        for a in seldon_apidocs::SWAGGER_UI_ASSETS {
            std::fs::write(dir.path().join(a), "x").unwrap();
        }
        assert!(assets_installed(dir.path()));
    }
}
