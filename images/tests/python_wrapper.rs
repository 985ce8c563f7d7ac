//! The python-wrapper base image serves a user's Seldon v1 `Model.py` the way a
//! user's image built `FROM` it does: the class in /microservice, MODEL_NAME and SERVICE_TYPE
//! in the environment, the image's own CMD. The container shares the host network but binds
//! 127.0.0.1 only (PREDICTIVE_UNIT_SERVICE_HOST).

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use seldon_images::{Container, build, free_port, wait_until};
use serde_json::{Value, json};

#[tokio::test]
async fn python_wrapper_serves_a_model_class() {
    let built = build(
        "python-wrapper",
        &[("SELDON_IMAGE_TAG", std::ffi::OsStr::new("test"))],
    )
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Scaler.py"),
        concat!(
            "import numpy as np\n\n\n",
            "class Scaler:\n",
            "    def __init__(self, factor=1.0):\n",
            "        self.factor = factor\n\n",
            "    def predict(self, X, feature_names):\n",
            "        return np.asarray(X) * self.factor\n",
        ),
    )
    .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        dir.path().join("Scaler.py"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();

    let (http, grpc, metrics) = (free_port(), free_port(), free_port());
    let container = Container::run(&[
        "--network".to_string(),
        "host".into(),
        "-v".into(),
        format!("{}:/microservice:ro", dir.path().display()),
        "-e".into(),
        "MODEL_NAME=Scaler".into(),
        "-e".into(),
        "PREDICTIVE_UNIT_SERVICE_HOST=127.0.0.1".into(),
        "-e".into(),
        format!("PREDICTIVE_UNIT_HTTP_SERVICE_PORT={http}"),
        "-e".into(),
        format!("PREDICTIVE_UNIT_GRPC_SERVICE_PORT={grpc}"),
        "-e".into(),
        format!("PREDICTIVE_UNIT_METRICS_SERVICE_PORT={metrics}"),
        "-e".into(),
        r#"PREDICTIVE_UNIT_PARAMETERS=[{"name":"factor","value":"2.5","type":"FLOAT"}]"#.into(),
        built.reference.clone(),
    ])
    .unwrap();

    let ping = format!("http://127.0.0.1:{http}/health/ping");
    wait_until(
        "seldon-core-microservice in the python-wrapper image",
        Duration::from_secs(60),
        || {
            assert!(
                container.running(),
                "container exited:\n{}",
                container.logs()
            );
            std::net::TcpStream::connect(("127.0.0.1", http)).is_ok()
        },
        || container.logs(),
    )
    .unwrap();
    assert_eq!(
        reqwest::get(&ping).await.unwrap().text().await.unwrap(),
        "pong"
    );

    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{http}/api/v1.0/predictions"))
        .json(&json!({"data": {"names": ["a", "b"], "ndarray": [[1.0, 2.0], [4.0, -2.0]]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"data": {"names": ["t:0", "t:1"], "ndarray": [[2.5, 5.0], [10.0, -5.0]]}, "meta": {}}),
    );

    // it runs as Seldon's DEFAULT_USER_ID, with the wrapper on PATH
    let id = container.exec(&["id", "-u"]).unwrap();
    assert_eq!(String::from_utf8_lossy(&id.stdout).trim(), "8888");
}
