//! Reconcile against an in-process fake API server (tower-test `mock::pair`, in the style of
//! controller-rs's fixtures): the fake answers the exact requests kube-rs sends — server-side
//! apply, label-selected lists, deletes, the status patch, events — from a small object
//! store, and records every request so each scenario asserts what was sent.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::Client;
use kube::client::Body;
use kube::runtime::events::Reporter;
use seldon_crd::SeldonDeployment;
use seldon_operator::metrics::Metrics;
use seldon_operator::reconcile::{Context, reconcile};
use serde_json::{Value, json};

const NS: &str = "seldon";

/// One request as the fake saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    body: Value,
}

impl Seen {
    fn is(&self, method: &Method, path_suffix: &str) -> bool {
        self.method == *method && self.path.ends_with(path_suffix)
    }
}

#[derive(Debug, Default)]
struct Store {
    /// path (…/namespaces/ns/<plural>/<name>) → object
    objects: BTreeMap<String, Value>,
    seen: Vec<Seen>,
    /// Scenario knobs.
    deployments_available: bool,
    fail_apply_plural: Option<&'static str>,
}

#[derive(Clone)]
struct Fake(Arc<Mutex<Store>>);

impl Fake {
    fn new() -> Self {
        Self(Arc::new(Mutex::new(Store::default())))
    }

    fn with<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        f(&mut self.0.lock().unwrap())
    }

    fn seen(&self) -> Vec<Seen> {
        self.with(|s| s.seen.clone())
    }

    fn clear_seen(&self) {
        self.with(|s| s.seen.clear());
    }

    fn object_names(&self, plural: &str) -> Vec<String> {
        self.with(|s| {
            s.objects
                .iter()
                .filter(|(p, _)| p.contains(&format!("/{plural}/")))
                .map(|(_, o)| o["metadata"]["name"].as_str().unwrap().to_string())
                .collect()
        })
    }

    fn object(&self, plural: &str, name: &str) -> Option<Value> {
        self.with(|s| {
            s.objects
                .iter()
                .find(|(p, _)| p.ends_with(&format!("/{plural}/{name}")))
                .map(|(_, o)| o.clone())
        })
    }

    /// The status the operator wrote last.
    fn last_status(&self) -> Value {
        self.seen()
            .iter()
            .rev()
            .find(|r| r.method == Method::PATCH && r.path.ends_with("/status"))
            .map(|r| r.body["status"].clone())
            .expect("no status patch was sent")
    }

    fn answer(&self, method: &Method, path: &str, query: &str, body: Value) -> (StatusCode, Value) {
        self.with(|s| {
            s.seen.push(Seen { method: method.clone(), path: path.into(), body: body.clone() });
            let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            // /api/v1/namespaces/ns/plural[/name[/sub]] or /apis/g/v/namespaces/ns/plural[/name[/sub]]
            let base = if segs[0] == "api" { 2 } else { 3 };
            let plural = segs.get(base + 2).copied().unwrap_or("");
            let name = segs.get(base + 3).copied();
            let sub = segs.get(base + 4).copied();
            match (method.clone(), name, sub) {
                (Method::PATCH, Some(_), Some("status")) => {
                    let key = path.trim_end_matches("/status").to_string();
                    let mut obj = s.objects.get(&key).cloned().unwrap_or_else(|| json!({}));
                    merge_patch(&mut obj, &body);
                    s.objects.insert(key, obj.clone());
                    (StatusCode::OK, obj)
                }
                (Method::PATCH, Some(name), None) => {
                    assert!(query.contains("fieldManager=seldon-mesh-operator"), "apply without our field manager: {query}");
                    assert!(query.contains("force=true"), "apply must force: {query}");
                    if s.fail_apply_plural == Some(plural) {
                        return (
                            StatusCode::UNPROCESSABLE_ENTITY,
                            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                                   "message": format!("{plural} \"{name}\" is invalid: spec.template: forbidden by policy"),
                                   "reason":"Invalid","code":422}),
                        );
                    }
                    let mut obj = body.clone();
                    obj["metadata"]["uid"] = json!(format!("uid-{name}"));
                    obj["metadata"]["resourceVersion"] = json!("1");
                    obj["metadata"]["generation"] = json!(1);
                    if plural == "deployments" && s.deployments_available {
                        let r = obj["spec"]["replicas"].as_i64().unwrap_or(1);
                        obj["status"] = json!({"observedGeneration":1,"replicas":r,"availableReplicas":r,"updatedReplicas":r,"readyReplicas":r,
                            "conditions":[{"type":"Available","status":"True"},{"type":"Progressing","status":"True"}]});
                    }
                    s.objects.insert(path.to_string(), obj.clone());
                    (StatusCode::OK, obj)
                }
                (Method::GET, None, None) => {
                    let selector = query
                        .split('&')
                        .find_map(|kv| kv.strip_prefix("labelSelector="))
                        .map(|v| v.replace("%3D", "="))
                        .unwrap_or_default();
                    let (k, v) = selector.split_once('=').unwrap_or(("", ""));
                    let items: Vec<Value> = s
                        .objects
                        .iter()
                        .filter(|(p, o)| p.starts_with(&format!("{path}/")) && o["metadata"]["labels"][k] == json!(v))
                        .map(|(_, o)| o.clone())
                        .collect();
                    (StatusCode::OK, json!({"apiVersion":"v1","kind":"List","metadata":{"resourceVersion":"1"},"items":items}))
                }
                (Method::DELETE, Some(_), None) => match s.objects.remove(path) {
                    Some(_) => (StatusCode::OK, json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success"})),
                    None => (StatusCode::NOT_FOUND, json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","reason":"NotFound","code":404})),
                },
                (Method::POST, None, None) if plural == "events" => (StatusCode::CREATED, body),
                _ => (StatusCode::NOT_FOUND, json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","code":404})),
            }
        })
    }

    /// A kube Client whose every request is answered by this fake.
    fn client(&self) -> Client {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let fake = self.clone();
        tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                let (parts, body) = req.into_parts();
                let bytes = body.collect().await.unwrap().to_bytes();
                let value: Value = if bytes.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&bytes).unwrap()
                };
                let (status, out) = fake.answer(
                    &parts.method,
                    parts.uri.path(),
                    parts.uri.query().unwrap_or(""),
                    value,
                );
                let resp = Response::builder()
                    .status(status)
                    .body(Body::from(serde_json::to_vec(&out).unwrap()))
                    .unwrap();
                send.send_response(resp);
            }
        });
        Client::new(service, NS)
    }
}

/// RFC 7386 JSON merge patch, as the API server applies `Patch::Merge`.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let t = target.as_object_mut().unwrap();
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

fn sample(file: &str) -> SeldonDeployment {
    let path = format!(
        "{}/../../manifests/samples/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let mut sdep = seldon_crd::parse_yaml(&text).unwrap().remove(0).sdep;
    sdep.metadata.namespace = Some(NS.into());
    sdep.metadata.uid = Some("sdep-uid-1".into());
    sdep.metadata.generation = Some(1);
    sdep
}

fn context(client: Client) -> Arc<Context> {
    Arc::new(Context {
        client,
        options: seldon_render::RenderOptions::default(),
        metrics: Arc::new(Metrics::default()),
        reporter: Reporter {
            controller: "seldon-mesh-operator".into(),
            instance: Some("test".into()),
        },
        resync: Duration::from_secs(300),
    })
}

/// The SeldonDeployment as the fake store holds it, so the operator sees its last status.
fn seed(fake: &Fake, sdep: &SeldonDeployment) {
    let name = sdep.metadata.name.clone().unwrap();
    let path =
        format!("/apis/machinelearning.seldon.io/v1/namespaces/{NS}/seldondeployments/{name}");
    fake.with(|s| s.objects.insert(path, serde_json::to_value(sdep).unwrap()));
}

fn with_stored_status(fake: &Fake, mut sdep: SeldonDeployment) -> SeldonDeployment {
    let name = sdep.metadata.name.clone().unwrap();
    if let Some(obj) = fake.object("seldondeployments", &name) {
        sdep.status = Some(serde_json::from_value(obj["status"].clone()).unwrap());
    }
    sdep
}

#[tokio::test]
async fn create_applies_owned_objects_holds_routing_and_reports_creating() {
    let fake = Fake::new();
    let sdep = sample("sklearn-iris.yaml");
    seed(&fake, &sdep);
    let ctx = context(fake.client());
    reconcile(Arc::new(sdep), ctx.clone()).await.unwrap();

    let applied: Vec<Seen> = fake
        .seen()
        .into_iter()
        .filter(|r| r.method == Method::PATCH && !r.path.ends_with("/status"))
        .collect();
    assert!(!applied.is_empty());
    for r in &applied {
        let owner = &r.body["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "SeldonDeployment", "{}", r.path);
        assert_eq!(owner["uid"], "sdep-uid-1");
        assert_eq!(owner["controller"], true);
        assert_eq!(r.body["metadata"]["labels"]["seldon-deployment-id"], "iris");
        assert_eq!(r.body["metadata"]["namespace"], NS);
    }
    assert_eq!(fake.object_names("deployments").len(), 1);
    assert!(
        fake.object_names("services")
            .contains(&"iris-default".to_string())
    );
    // Seldon #1461: no routing to Deployments that are not available yet.
    assert!(fake.object_names("virtualservices").is_empty());
    assert!(fake.object_names("destinationrules").is_empty());

    let status = fake.last_status();
    assert_eq!(status["state"], "Creating");
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(
        status["address"]["url"],
        "http://iris-default.seldon.svc.cluster.local:8000/api/v1.0/predictions"
    );
    assert_eq!(
        status["serviceStatus"]["iris-default"]["httpEndpoint"],
        "iris-default.seldon:8000"
    );
    let ready = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "False");
    assert_eq!(ctx.metrics.reconciles.get(), 1);
}

#[tokio::test]
async fn available_deployments_get_routing_and_state_available() {
    let fake = Fake::new();
    fake.with(|s| s.deployments_available = true);
    let sdep = sample("sklearn-iris.yaml");
    seed(&fake, &sdep);
    reconcile(Arc::new(sdep), context(fake.client()))
        .await
        .unwrap();
    assert_eq!(
        fake.object_names("virtualservices"),
        vec!["iris".to_string()]
    );
    assert_eq!(
        fake.object_names("destinationrules"),
        vec!["iris-default".to_string()]
    );
    let status = fake.last_status();
    assert_eq!(status["state"], "Available", "{status:#}");
    let dep = fake.object_names("deployments").remove(0);
    assert_eq!(status["deploymentStatus"][&dep]["availableReplicas"], 1);
    assert_eq!(status["replicas"], 1);
}

#[tokio::test]
async fn reconcile_is_idempotent_and_skips_an_unchanged_status() {
    let fake = Fake::new();
    fake.with(|s| s.deployments_available = true);
    let sdep = sample("sklearn-iris.yaml");
    seed(&fake, &sdep);
    let ctx = context(fake.client());
    reconcile(Arc::new(sdep.clone()), ctx.clone())
        .await
        .unwrap();
    let before = fake.with(|s| s.objects.clone());
    fake.clear_seen();
    reconcile(Arc::new(with_stored_status(&fake, sdep)), ctx)
        .await
        .unwrap();
    let after = fake.with(|s| s.objects.clone());
    assert_eq!(before, after);
    let seen = fake.seen();
    assert!(
        !seen.iter().any(|r| r.method == Method::DELETE),
        "nothing to prune"
    );
    let st: Vec<&Seen> = seen
        .iter()
        .filter(|r| r.path.ends_with("/status"))
        .collect();
    assert!(
        st.is_empty(),
        "status unchanged: no write, got {:#}",
        st[0].body
    );
}

#[tokio::test]
async fn update_graph_applies_new_nodes_and_prunes_old_ones() {
    let fake = Fake::new();
    fake.with(|s| s.deployments_available = true);
    let sdep = sample("sklearn-iris.yaml");
    seed(&fake, &sdep);
    let ctx = context(fake.client());
    reconcile(Arc::new(sdep.clone()), ctx.clone())
        .await
        .unwrap();
    let old_deps = fake.object_names("deployments");

    // New graph: the model node renamed (a new container, Deployment and node Service).
    let mut updated = with_stored_status(&fake, sdep);
    updated.spec.predictors[0].graph.name = "classifier-v2".into();
    updated.metadata.generation = Some(2);
    fake.clear_seen();
    reconcile(Arc::new(updated), ctx).await.unwrap();

    let new_deps = fake.object_names("deployments");
    assert_eq!(new_deps.len(), 1);
    assert_ne!(new_deps, old_deps);
    let deleted: Vec<String> = fake
        .seen()
        .iter()
        .filter(|r| r.method == Method::DELETE)
        .map(|r| r.path.clone())
        .collect();
    assert!(
        deleted
            .iter()
            .any(|p| p.ends_with(&format!("/deployments/{}", old_deps[0]))),
        "{deleted:?}"
    );
    assert_eq!(fake.last_status()["observedGeneration"], 2);
}

#[tokio::test]
async fn scale_changes_the_applied_replicas() {
    let fake = Fake::new();
    let sdep = sample("sklearn-iris.yaml");
    seed(&fake, &sdep);
    let ctx = context(fake.client());
    reconcile(Arc::new(sdep.clone()), ctx.clone())
        .await
        .unwrap();
    let mut scaled = with_stored_status(&fake, sdep);
    scaled.spec.predictors[0].replicas = Some(3);
    scaled.metadata.generation = Some(2);
    reconcile(Arc::new(scaled), ctx).await.unwrap();
    let dep = fake.object_names("deployments").remove(0);
    assert_eq!(
        fake.object("deployments", &dep).unwrap()["spec"]["replicas"],
        3
    );
}

#[tokio::test]
async fn deleting_a_predictor_prunes_its_objects_only() {
    let fake = Fake::new();
    fake.with(|s| s.deployments_available = true);
    let sdep = sample("ab-test.yaml");
    seed(&fake, &sdep);
    let ctx = context(fake.client());
    reconcile(Arc::new(sdep.clone()), ctx.clone())
        .await
        .unwrap();
    assert_eq!(fake.object_names("deployments").len(), 2);
    assert_eq!(fake.object_names("destinationrules").len(), 2);

    let mut one = with_stored_status(&fake, sdep);
    one.spec.predictors.retain(|p| p.name == "main");
    one.spec.predictors[0].traffic = Some(100);
    one.metadata.generation = Some(2);
    fake.clear_seen();
    reconcile(Arc::new(one), ctx).await.unwrap();

    assert_eq!(fake.object_names("deployments").len(), 1);
    assert!(fake.object_names("deployments")[0].starts_with("abtest-main"));
    assert_eq!(
        fake.object_names("destinationrules"),
        vec!["abtest-main".to_string()]
    );
    assert!(
        !fake
            .object_names("services")
            .iter()
            .any(|s| s.contains("canary"))
    );
    let status = fake.last_status();
    // Stale keys are removed from the status maps (merge patch with nulls).
    for (k, v) in status["serviceStatus"].as_object().unwrap() {
        if k.contains("canary") {
            assert!(v.is_null(), "{k} should be removed");
        }
    }
}

#[tokio::test]
async fn objects_with_our_label_but_another_owner_are_not_pruned() {
    let fake = Fake::new();
    let sdep = sample("sklearn-iris.yaml");
    seed(&fake, &sdep);
    let foreign = json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"hand-made","namespace":NS,
        "labels":{"seldon-deployment-id":"iris"},"ownerReferences":[{"apiVersion":"v1","kind":"ConfigMap","name":"x","uid":"other","controller":true}]}});
    fake.with(|s| {
        s.objects.insert(
            format!("/api/v1/namespaces/{NS}/services/hand-made"),
            foreign,
        )
    });
    reconcile(Arc::new(sdep), context(fake.client()))
        .await
        .unwrap();
    assert!(
        fake.object_names("services")
            .contains(&"hand-made".to_string())
    );
    assert!(!fake.seen().iter().any(|r| r.method == Method::DELETE));
}

#[tokio::test]
async fn apply_error_sets_status_failed_and_publishes_a_warning_event() {
    let fake = Fake::new();
    fake.with(|s| s.fail_apply_plural = Some("deployments"));
    let sdep = sample("sklearn-iris.yaml");
    seed(&fake, &sdep);
    let ctx = context(fake.client());
    let err = reconcile(Arc::new(sdep), ctx.clone()).await.unwrap_err();
    assert_eq!(err.reason(), "apply");
    assert!(err.to_string().contains("forbidden by policy"), "{err}");

    let status = fake.last_status();
    assert_eq!(status["state"], "Failed");
    assert!(
        status["description"]
            .as_str()
            .unwrap()
            .starts_with("applying Deployment iris-default-0-classifier failed"),
        "{status:#}"
    );
    let ready = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["reason"], "ReconcileFailed");

    let event = fake
        .seen()
        .into_iter()
        .find(|r| r.is(&Method::POST, "/events"))
        .expect("an event was published");
    assert_eq!(
        event.path,
        format!("/apis/events.k8s.io/v1/namespaces/{NS}/events")
    );
    assert_eq!(event.body["type"], "Warning");
    assert_eq!(event.body["reason"], "ApplyFailed");
    assert_eq!(event.body["regarding"]["name"], "iris");
    assert!(
        event.body["note"]
            .as_str()
            .unwrap()
            .contains("forbidden by policy")
    );
    assert!(
        ctx.metrics
            .encode()
            .contains("seldon_operator_reconcile_errors_total{reason=\"apply\"} 1")
    );
}

#[tokio::test]
async fn invalid_spec_is_failed_without_applying_anything() {
    let fake = Fake::new();
    let mut sdep = sample("ab-test.yaml");
    sdep.spec.predictors[0].traffic = Some(10); // 10 + 25 != 100
    seed(&fake, &sdep);
    let action = reconcile(Arc::new(sdep), context(fake.client()))
        .await
        .unwrap();
    assert_eq!(action, kube::runtime::controller::Action::await_change());
    assert!(
        !fake
            .seen()
            .iter()
            .any(|r| r.method == Method::PATCH && !r.path.ends_with("/status"))
    );
    let status = fake.last_status();
    assert_eq!(status["state"], "Failed");
    assert!(
        status["description"].as_str().unwrap().contains("traffic"),
        "{status:#}"
    );
    let event = fake
        .seen()
        .into_iter()
        .find(|r| r.is(&Method::POST, "/events"))
        .unwrap();
    assert_eq!(event.body["reason"], "InvalidSeldonDeployment");
}
