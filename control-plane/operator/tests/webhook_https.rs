//! The validating webhook over real HTTPS: AdmissionReview v1 JSON in, the decision out,
//! with the same problems `seldon-mesh validate` reports (`seldon_render::check`).

use std::net::SocketAddr;

use seldon_operator::{certs, names, validation, webhook};
use serde_json::{Value, json};
use tokio::net::TcpListener;

struct Server {
    addr: SocketAddr,
    ca_pem: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start() -> Server {
    let bundle = certs::generate(&["localhost".to_string()]).unwrap();
    let tls = certs::server_config(&bundle).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let router = webhook::router(validation::validator(
        seldon_render::RenderOptions::default(),
    ));
    let task = tokio::spawn(webhook::serve_tls(listener, tls, router, async move {
        let _ = rx.await;
    }));
    Server {
        addr,
        ca_pem: bundle.ca_pem,
        stop: Some(tx),
        task,
    }
}

fn client(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .resolve("localhost", "127.0.0.1:0".parse().unwrap())
        .build()
        .unwrap()
}

fn sample_json(file: &str) -> Value {
    let path = format!(
        "{}/../../manifests/samples/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    serde_json::to_value(yaml).unwrap()
}

fn review(uid: &str, operation: &str, object: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "machinelearning.seldon.io", "version": "v1", "kind": "SeldonDeployment"},
            "resource": {"group": "machinelearning.seldon.io", "version": "v1", "resource": "seldondeployments"},
            "requestKind": {"group": "machinelearning.seldon.io", "version": "v1", "kind": "SeldonDeployment"},
            "requestResource": {"group": "machinelearning.seldon.io", "version": "v1", "resource": "seldondeployments"},
            "name": object["metadata"]["name"],
            "namespace": "seldon",
            "operation": operation,
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
            "object": object,
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

async fn post(server: &Server, body: &Value) -> (u16, Value) {
    let url = format!(
        "https://localhost:{}{}",
        server.addr.port(),
        names::WEBHOOK_PATH
    );
    let resp = client(&server.ca_pem)
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn valid_seldon_deployment_is_allowed() {
    let server = start().await;
    let (code, body) = post(
        &server,
        &review("uid-1", "CREATE", sample_json("sklearn-iris.yaml")),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(body["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(body["kind"], "AdmissionReview");
    assert_eq!(body["response"]["uid"], "uid-1");
    assert_eq!(body["response"]["allowed"], true, "{body:#}");
}

#[tokio::test]
async fn every_sample_is_allowed() {
    let server = start().await;
    let dir = format!("{}/../../manifests/samples", env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(dir).unwrap() {
        let file = entry.unwrap().file_name().into_string().unwrap();
        if !file.ends_with(".yaml") {
            continue;
        }
        let (_, body) = post(&server, &review("u", "UPDATE", sample_json(&file))).await;
        assert_eq!(body["response"]["allowed"], true, "{file}: {body:#}");
    }
}

#[tokio::test]
async fn broken_traffic_split_is_denied_with_the_validate_message() {
    let server = start().await;
    let mut obj = sample_json("ab-test.yaml");
    obj["spec"]["predictors"][0]["traffic"] = json!(10);
    let expected = validation::problems(&obj, &seldon_render::RenderOptions::default());
    assert!(!expected.is_empty());
    // The same words `seldon-mesh validate` prints: seldon_render::check's violations.
    let sdep: seldon_crd::SeldonDeployment = serde_json::from_value(obj.clone()).unwrap();
    let direct: Vec<String> = seldon_render::check(&sdep, &seldon_render::RenderOptions::default())
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(expected, direct);

    let (code, body) = post(&server, &review("uid-2", "CREATE", obj)).await;
    assert_eq!(code, 200);
    assert_eq!(body["response"]["uid"], "uid-2");
    assert_eq!(body["response"]["allowed"], false);
    let message = body["response"]["status"]["message"].as_str().unwrap();
    assert_eq!(message, webhook::denial_message("abtest", &expected));
    assert!(
        message.starts_with("SeldonDeployment abtest is invalid: spec.predictors"),
        "{message}"
    );
    assert!(message.contains("traffic"), "{message}");
}

#[tokio::test]
async fn invalid_graph_is_denied_by_compile() {
    let server = start().await;
    let mut obj = sample_json("router-three-models.yaml");
    // A ROUTER with no children can never route anywhere: compile rejects it.
    obj["spec"]["predictors"][0]["graph"]["children"] = json!([]);
    let (_, body) = post(&server, &review("uid-3", "CREATE", obj.clone())).await;
    assert_eq!(body["response"]["allowed"], false, "{body:#}");
    let message = body["response"]["status"]["message"].as_str().unwrap();
    let expected = validation::problems(&obj, &seldon_render::RenderOptions::default());
    assert_eq!(
        message,
        webhook::denial_message(obj["metadata"]["name"].as_str().unwrap(), &expected)
    );
    assert!(message.contains("spec.predictors[0].graph"), "{message}");
}

#[tokio::test]
async fn unknown_field_is_denied_with_its_path() {
    let server = start().await;
    let mut obj = sample_json("sklearn-iris.yaml");
    obj["spec"]["predictors"][0]["graph"]["modelURI"] = json!("gs://typo");
    let (_, body) = post(&server, &review("uid-4", "CREATE", obj)).await;
    assert_eq!(body["response"]["allowed"], false);
    let message = body["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("spec.predictors[0].graph.modelURI: unknown field"),
        "{message}"
    );
}

#[tokio::test]
async fn delete_is_allowed_without_validation() {
    let server = start().await;
    let mut r = review("uid-5", "DELETE", json!(null));
    r["request"]["name"] = json!("gone");
    let (_, body) = post(&server, &r).await;
    assert_eq!(body["response"]["allowed"], true);
}

#[tokio::test]
async fn garbage_body_is_a_400_with_an_invalid_review() {
    let server = start().await;
    let (code, body) = post(&server, &json!({"hello": "world"})).await;
    assert_eq!(code, 400);
    assert_eq!(body["response"]["allowed"], false);
    assert!(
        body["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("AdmissionReview")
    );
}

#[tokio::test]
async fn untrusted_clients_fail_the_handshake_and_shutdown_is_graceful() {
    let mut server = start().await;
    let other_ca = certs::generate(&["localhost".to_string()]).unwrap().ca_pem;
    let url = format!(
        "https://localhost:{}{}",
        server.addr.port(),
        names::WEBHOOK_PATH
    );
    let err = client(&other_ca)
        .post(url)
        .json(&json!({}))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect() || err.is_request(), "{err}");
    server.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), &mut server.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
