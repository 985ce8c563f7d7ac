//! The operator and webhook against a real kube-apiserver + etcd (built from the Go module
//! proxy by `scripts/kube-test-env.sh`, cached in ~/.cache/seldon-mesh/kube/), started the
//! way envtest starts them: etcd on loopback, generated CA, serving and client
//! certificates, a service-account key pair, `--authorization-mode=RBAC`. No kubelet and no
//! controller-manager: pods never run, so the test plays the Deployment controller by
//! writing a Deployment's status itself.
//!
//! The operator runs as the `seldon-mesh-operator` ServiceAccount with exactly the RBAC of
//! `manifests/operator/rbac.yaml` (a token from the TokenRequest API), and the API server
//! calls the webhook over HTTPS through a ValidatingWebhookConfiguration.
//!
//! First run builds the binaries (10-20 min on 2 cores); later runs take seconds.

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, ResourceExt};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use seldon_crd::SeldonDeployment;
use seldon_operator::leader::LeaderElector;
use seldon_operator::{certs, names, owned, run, validation, webhook};
use serde_json::{Value, json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct Pki {
    ca_pem: String,
    serving_cert: String,
    serving_key: String,
    admin_cert: String,
    admin_key: String,
    sa_key: String,
    sa_pub: String,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, "envtest-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let serving_key = KeyPair::generate().unwrap();
    let serving = CertificateParams::new(vec![
        "localhost".into(),
        "127.0.0.1".into(),
        "kubernetes".into(),
    ])
    .unwrap()
    .signed_by(&serving_key, &issuer)
    .unwrap();
    let admin_key = KeyPair::generate().unwrap();
    let mut admin = CertificateParams::new(Vec::<String>::new()).unwrap();
    admin
        .distinguished_name
        .push(DnType::CommonName, "envtest-admin");
    admin
        .distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    let admin_cert = admin.signed_by(&admin_key, &issuer).unwrap();
    let sa = KeyPair::generate().unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        serving_cert: serving.pem(),
        serving_key: serving_key.serialize_pem(),
        admin_cert: admin_cert.pem(),
        admin_key: admin_key.serialize_pem(),
        sa_key: sa.serialize_pem(),
        sa_pub: sa.public_key_pem(),
    }
}

fn binaries() -> (PathBuf, PathBuf) {
    let out = Command::new("bash")
        .arg(repo().join("scripts/kube-test-env.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("running scripts/kube-test-env.sh");
    assert!(out.status.success(), "scripts/kube-test-env.sh failed");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    (
        PathBuf::from(lines.next().unwrap()),
        PathBuf::from(lines.next().unwrap()),
    )
}

fn kubeconfig(server: &str, ca: &str, auth: Value) -> Kubeconfig {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let doc = json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "envtest",
        "clusters": [{"name": "envtest", "cluster": {"server": server, "certificate-authority-data": b64(ca)}}],
        "users": [{"name": "u", "user": auth}],
        "contexts": [{"name": "envtest", "context": {"cluster": "envtest", "user": "u"}}]
    });
    serde_json::from_value(doc).unwrap()
}

async fn client_from(kc: Kubeconfig) -> Client {
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Applies every document of a YAML file with server-side apply as `client`.
async fn apply_yaml(client: &Client, text: &str) {
    let discovery = kube::discovery::Discovery::new(client.clone())
        .run()
        .await
        .unwrap();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let v: Value = serde::Deserialize::deserialize(doc).unwrap();
        if v.is_null() {
            continue;
        }
        let obj: DynamicObject = serde_json::from_value(v.clone()).unwrap();
        let tm = obj.types.clone().unwrap();
        let (group, version) = tm
            .api_version
            .rsplit_once('/')
            .unwrap_or(("", &tm.api_version));
        let gvk = kube::api::GroupVersionKind::gvk(group, version, &tm.kind);
        let (ar, caps) = discovery
            .resolve_gvk(&gvk)
            .unwrap_or_else(|| panic!("unknown kind {gvk:?}"));
        let api: Api<DynamicObject> = match (caps.scope, obj.metadata.namespace.as_deref()) {
            (kube::discovery::Scope::Namespaced, Some(ns)) => {
                Api::namespaced_with(client.clone(), ns, &ar)
            }
            _ => Api::all_with(client.clone(), &ar),
        };
        // Strict: an unknown or misspelt field is an error, not silently pruned.
        api.patch(
            &obj.name_any(),
            &PatchParams::apply("envtest").force().validation_strict(),
            &Patch::Apply(&obj),
        )
        .await
        .unwrap_or_else(|e| panic!("{} {}: {e}", tm.kind, obj.name_any()));
    }
}

async fn install_crds(admin: &Client, text: &str) {
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    let mut names = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let v: Value = serde::Deserialize::deserialize(doc).unwrap();
        if v.is_null() || v["kind"] != "CustomResourceDefinition" {
            continue;
        }
        let crd: CustomResourceDefinition = serde_json::from_value(v).unwrap();
        crds.patch(
            &crd.name_any(),
            &PatchParams::apply("envtest").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap();
        names.push(crd.name_any());
    }
    for n in names {
        eventually(
            &format!("CRD {n} established"),
            Duration::from_secs(30),
            || {
                let crds = crds.clone();
                let n = n.clone();
                async move {
                    let c = crds.get(&n).await.ok()?;
                    c.status?
                        .conditions?
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                        .then_some(())
                }
            },
        )
        .await;
    }
}

fn token_request() -> TokenRequest {
    TokenRequest {
        spec: k8s_openapi::api::authentication::v1::TokenRequestSpec {
            audiences: vec!["https://kubernetes.default.svc.cluster.local".into()],
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_and_webhook_against_a_real_apiserver() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("seldon_operator=debug")
        .with_test_writer()
        .try_init();
    let (etcd, apiserver) = binaries();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pki = pki();
    for (f, c) in [
        ("ca.crt", &pki.ca_pem),
        ("apiserver.crt", &pki.serving_cert),
        ("apiserver.key", &pki.serving_key),
        ("sa.key", &pki.sa_key),
        ("sa.pub", &pki.sa_pub),
    ] {
        std::fs::write(d.join(f), c).unwrap();
    }
    let (etcd_port, peer_port, api_port) = (free_port(), free_port(), free_port());
    let etcd_url = format!("http://127.0.0.1:{etcd_port}");
    let log = |name: &str| std::fs::File::create(d.join(name)).unwrap();
    let mut procs = Procs(Vec::new());
    procs.0.push(
        Command::new(&etcd)
            .args(["--data-dir", d.join("etcd").to_str().unwrap()])
            .args([
                "--listen-client-urls",
                &etcd_url,
                "--advertise-client-urls",
                &etcd_url,
            ])
            .args([
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{peer_port}"),
            ])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer_port}"),
            ])
            .args([
                "--initial-cluster",
                &format!("default=http://127.0.0.1:{peer_port}"),
            ])
            .arg("--unsafe-no-fsync")
            .stdout(log("etcd.log"))
            .stderr(log("etcd.err"))
            .spawn()
            .unwrap(),
    );
    let p = |f: &str| d.join(f).to_str().unwrap().to_string();
    procs.0.push(
        Command::new(&apiserver)
            .arg(format!("--etcd-servers={etcd_url}"))
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            .arg(format!("--secure-port={api_port}"))
            .arg(format!("--tls-cert-file={}", p("apiserver.crt")))
            .arg(format!("--tls-private-key-file={}", p("apiserver.key")))
            .arg(format!("--client-ca-file={}", p("ca.crt")))
            .arg(format!("--service-account-key-file={}", p("sa.pub")))
            .arg(format!(
                "--service-account-signing-key-file={}",
                p("sa.key")
            ))
            .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
            .arg("--api-audiences=https://kubernetes.default.svc.cluster.local")
            .arg("--authorization-mode=RBAC")
            .arg("--service-cluster-ip-range=10.0.0.0/24")
            .arg("--allow-privileged=true")
            .arg(format!("--cert-dir={}", p("certs")))
            .stdout(log("apiserver.log"))
            .stderr(log("apiserver.err"))
            .spawn()
            .unwrap(),
    );
    let server = format!("https://127.0.0.1:{api_port}");
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let admin = client_from(kubeconfig(
        &server,
        &pki.ca_pem,
        json!({"client-certificate-data": b64(&pki.admin_cert), "client-key-data": b64(&pki.admin_key)}),
    ))
    .await;
    eventually("kube-apiserver ready", Duration::from_secs(90), || {
        let admin = admin.clone();
        async move {
            let req = http::Request::get("/readyz").body(Vec::new()).unwrap();
            (admin.request_text(req).await.ok()? == "ok").then_some(())
        }
    })
    .await;
    // RBAC bootstrap roles are created by the apiserver's post-start hook; wait for them.
    eventually("namespaces listable", Duration::from_secs(60), || {
        let ns: Api<Namespace> = Api::all(admin.clone());
        async move { ns.list(&ListParams::default()).await.ok().map(|_| ()) }
    })
    .await;

    // CRDs: ours, and Istio's (the operator applies WasmPlugins, EnvoyFilters, VirtualServices...).
    install_crds(
        &admin,
        &std::fs::read_to_string(repo().join("manifests/crd/seldondeployments.yaml")).unwrap(),
    )
    .await;
    install_crds(
        &admin,
        &std::fs::read_to_string(
            repo().join("control-plane/render/tests/schemas/istio-crds.gen.yaml"),
        )
        .unwrap(),
    )
    .await;

    // Install namespace + RBAC exactly as shipped, and make the operator's token.
    apply_yaml(
        &admin,
        &std::fs::read_to_string(repo().join("manifests/operator/namespace.yaml")).unwrap(),
    )
    .await;
    apply_yaml(
        &admin,
        &std::fs::read_to_string(repo().join("manifests/operator/rbac.yaml")).unwrap(),
    )
    .await;
    apply_yaml(
        &admin,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: seldon\n",
    )
    .await;
    // The rest of the install (Deployments, Services, ConfigMap, the webhook configuration)
    // and istio/'s Gateway and Telemetry are accepted by the real API server with strict
    // field validation (pods never start: there is no kubelet).
    apply_yaml(
        &admin,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: istio-system\n",
    )
    .await;
    for f in [
        "manifests/operator/config.yaml",
        "manifests/operator/operator.yaml",
        "istio/gateway.yaml",
        "istio/telemetry.yaml",
    ] {
        apply_yaml(&admin, &std::fs::read_to_string(repo().join(f)).unwrap()).await;
    }

    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), names::SYSTEM_NAMESPACE);
    let token: TokenRequest = sas
        .create_token_request(
            "seldon-mesh-operator",
            &PostParams::default(),
            &token_request(),
        )
        .await
        .unwrap();
    let operator_client = client_from(kubeconfig(
        &server,
        &pki.ca_pem,
        json!({"token": token.status.unwrap().token}),
    ))
    .await;

    // Webhook, as its own ServiceAccount: certificate Secret bootstrap and caBundle
    // injection with exactly the shipped RBAC, then a real HTTPS server on loopback that
    // the API server calls by URL.
    let webhook_token: TokenRequest = sas
        .create_token_request(
            "seldon-mesh-webhook",
            &PostParams::default(),
            &token_request(),
        )
        .await
        .unwrap();
    let webhook_client = client_from(kubeconfig(
        &server,
        &pki.ca_pem,
        json!({"token": webhook_token.status.unwrap().token}),
    ))
    .await;
    let mut dns = certs::service_dns_names(names::WEBHOOK_SERVICE, names::SYSTEM_NAMESPACE);
    dns.push("localhost".into());
    let bundle = certs::ensure_secret(
        webhook_client.clone(),
        names::SYSTEM_NAMESPACE,
        names::WEBHOOK_CERT_SECRET,
        &dns,
    )
    .await
    .unwrap();
    let again = certs::ensure_secret(
        webhook_client.clone(),
        names::SYSTEM_NAMESPACE,
        names::WEBHOOK_CERT_SECRET,
        &dns,
    )
    .await
    .unwrap();
    assert_eq!(
        bundle, again,
        "a restart (or a second replica) serves the stored certificate"
    );
    let wh_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let wh_port = wh_listener.local_addr().unwrap().port();
    let options = seldon_render::RenderOptions::default();
    tokio::spawn(webhook::serve_tls(
        wh_listener,
        certs::server_config(&bundle).unwrap(),
        webhook::router(validation::validator(options.clone())),
        std::future::pending(),
    ));
    let webhook_yaml =
        std::fs::read_to_string(repo().join("manifests/operator/webhook.yaml")).unwrap();
    let mut vwc: Value = serde_yaml::Deserializer::from_str(&webhook_yaml)
        .map(|d| <Value as serde::Deserialize>::deserialize(d).unwrap())
        .find(|v| v["kind"] == "ValidatingWebhookConfiguration")
        .unwrap();
    // No cluster DNS here: the API server reaches the webhook by URL instead of Service.
    vwc["webhooks"][0]["clientConfig"] =
        json!({"url": format!("https://localhost:{wh_port}{}", names::WEBHOOK_PATH)});
    apply_yaml(&admin, &serde_yaml::to_string(&vwc).unwrap()).await;
    certs::patch_ca_bundle(
        webhook_client.clone(),
        names::WEBHOOK_CONFIG_NAME,
        &bundle.ca_pem,
    )
    .await
    .unwrap();
    let stored =
        Api::<k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration>::all(
            admin.clone(),
        )
        .get(names::WEBHOOK_CONFIG_NAME)
        .await
        .unwrap();
    assert_eq!(
        stored.webhooks.unwrap()[0]
            .client_config
            .ca_bundle
            .as_ref()
            .unwrap()
            .0,
        bundle.ca_pem.as_bytes()
    );

    // Operator: leader election through the Lease, then the controller, both as the SA.
    let elector = LeaderElector::new(
        operator_client.clone(),
        names::SYSTEM_NAMESPACE,
        names::LEASE_NAME,
        "replica-a",
        Duration::from_secs(15),
    );
    tokio::time::timeout(Duration::from_secs(20), elector.acquire())
        .await
        .unwrap()
        .unwrap();
    let lease = Api::<Lease>::namespaced(admin.clone(), names::SYSTEM_NAMESPACE)
        .get(names::LEASE_NAME)
        .await
        .unwrap();
    assert_eq!(
        lease.spec.unwrap().holder_identity.as_deref(),
        Some("replica-a")
    );
    let other = LeaderElector::new(
        operator_client.clone(),
        names::SYSTEM_NAMESPACE,
        names::LEASE_NAME,
        "replica-b",
        Duration::from_secs(15),
    );
    assert!(
        !other.try_acquire_or_renew().await.unwrap(),
        "a second replica must not lead"
    );

    // The operator as `seldon-mesh operator` runs it: metrics server, leader election
    // (replica-a already holds the lease, so it renews), controller; stopped by a signal.
    let metrics_port = free_port();
    let args = <seldon_operator::OperatorArgs as clap::FromArgMatches>::from_arg_matches(
        &<seldon_operator::OperatorArgs as clap::Args>::augment_args(clap::Command::new(
            "operator",
        ))
        .get_matches_from([
            "operator".to_string(),
            format!("--metrics-addr=127.0.0.1:{metrics_port}"),
            "--pod-name=replica-a".to_string(),
            "--lease-duration-seconds=6".to_string(),
        ]),
    )
    .unwrap();
    drop(options);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(run::run_operator_with(
        operator_client.clone(),
        args,
        async move {
            let _ = stop_rx.await;
        },
    ));
    let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let scrape = move || {
        let url = metrics_url.clone();
        async move { reqwest::get(url).await.ok()?.text().await.ok() }
    };

    // An invalid SeldonDeployment is refused by the API server through our webhook.
    let sdeps: Api<SeldonDeployment> = Api::namespaced(admin.clone(), "seldon");
    let mut bad: SeldonDeployment = seldon_crd::parse_yaml(
        &std::fs::read_to_string(repo().join("manifests/samples/ab-test.yaml")).unwrap(),
    )
    .unwrap()
    .remove(0)
    .sdep;
    bad.spec.predictors[0].traffic = Some(10);
    let err = sdeps
        .create(&PostParams::default(), &bad)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("denied the request: SeldonDeployment abtest is invalid: spec.predictors"),
        "{msg}"
    );

    // A valid one is admitted, reconciled, and its status written.
    let sample =
        std::fs::read_to_string(repo().join("manifests/samples/sklearn-iris.yaml")).unwrap();
    let sdep = seldon_crd::parse_yaml(&sample).unwrap().remove(0).sdep;
    let created = sdeps.create(&PostParams::default(), &sdep).await.unwrap();
    let uid = created.metadata.uid.clone().unwrap();

    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), "seldon");
    let dep = eventually("model Deployment", Duration::from_secs(30), || {
        let deployments = deployments.clone();
        async move {
            deployments
                .list(&ListParams::default().labels("seldon-deployment-id=iris"))
                .await
                .ok()?
                .items
                .into_iter()
                .next()
        }
    })
    .await;
    let owner = &dep.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("SeldonDeployment", uid.as_str(), Some(true))
    );
    assert!(
        dep.metadata
            .managed_fields
            .as_ref()
            .unwrap()
            .iter()
            .any(|m| m.manager.as_deref() == Some(names::FIELD_MANAGER))
    );

    let status = eventually("status Creating", Duration::from_secs(30), || {
        let sdeps = sdeps.clone();
        async move {
            let s = sdeps.get("iris").await.ok()?.status?;
            (s.state == Some(seldon_crd::State::Creating)).then_some(s)
        }
    })
    .await;
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(
        status.address.unwrap().url.as_deref(),
        Some("http://iris-default.seldon.svc.cluster.local:8000/api/v1.0/predictions")
    );
    assert!(status.service_status.contains_key("iris-default"));

    // Istio objects were accepted by the real Istio CRD schemas; routing is held back.
    let kind = |k: &str| *owned::OWNED_KINDS.iter().find(|o| o.kind == k).unwrap();
    let list = |k: &str| {
        let api: Api<DynamicObject> =
            Api::namespaced_with(admin.clone(), "seldon", &kind(k).api_resource());
        async move {
            api.list(&ListParams::default().labels("seldon-deployment-id=iris"))
                .await
                .unwrap()
                .items
        }
    };
    assert_eq!(list("WasmPlugin").await.len(), 1);
    assert!(list("VirtualService").await.is_empty());

    // Play the Deployment controller: the Deployment becomes available.
    let dep_name = dep.name_any();
    deployments
        .patch_status(
            &dep_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"observedGeneration": dep.metadata.generation, "replicas": 1, "updatedReplicas": 1,
                "readyReplicas": 1, "availableReplicas": 1,
                "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "ok"}]}})),
        )
        .await
        .unwrap();
    let status = eventually("status Available", Duration::from_secs(30), || {
        let sdeps = sdeps.clone();
        async move {
            let s = sdeps.get("iris").await.ok()?.status?;
            (s.state == Some(seldon_crd::State::Available)).then_some(s)
        }
    })
    .await;
    assert_eq!(
        status.deployment_status[&dep_name].available_replicas,
        Some(1)
    );
    assert_eq!(status.replicas, Some(1));
    assert_eq!(list("VirtualService").await.len(), 1);
    assert_eq!(list("DestinationRule").await.len(), 1);

    // Scale: spec.replicas (the predictor-level replicas removed, since they take precedence).
    sdeps
        .patch(
            "iris",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3, "predictors": [{
        "name": "default", "graph": sdep.spec.predictors[0].graph.clone()}]}})),
        )
        .await
        .unwrap();
    eventually("Deployment scaled to 3", Duration::from_secs(30), || {
        let deployments = deployments.clone();
        let n = dep_name.clone();
        async move { (deployments.get(&n).await.ok()?.spec?.replicas == Some(3)).then_some(()) }
    })
    .await;

    // An API error: a quota that allows no Deployments. The operator (as its ServiceAccount)
    // marks the SeldonDeployment Failed and publishes a Warning event.
    apply_yaml(
        &admin,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: seldon-full\n",
    )
    .await;
    apply_yaml(
        &admin,
        "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: no-deployments\n  namespace: seldon-full\nspec:\n  hard:\n    count/deployments.apps: \"0\"\n",
    )
    .await;
    let quota_api: Api<k8s_openapi::api::core::v1::ResourceQuota> =
        Api::namespaced(admin.clone(), "seldon-full");
    quota_api
        .patch_status(
            "no-deployments",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
            "hard": {"count/deployments.apps": "0"}, "used": {"count/deployments.apps": "0"}}})),
        )
        .await
        .unwrap();
    let full: Api<SeldonDeployment> = Api::namespaced(admin.clone(), "seldon-full");
    let mut blocked = sdep.clone();
    blocked.metadata.namespace = Some("seldon-full".into());
    full.create(&PostParams::default(), &blocked).await.unwrap();
    let failed = eventually("status Failed", Duration::from_secs(30), || {
        let full = full.clone();
        async move {
            let s = full.get("iris").await.ok()?.status?;
            (s.state == Some(seldon_crd::State::Failed)).then_some(s)
        }
    })
    .await;
    let description = failed.description.unwrap_or_default();
    assert!(
        description.starts_with("applying Deployment iris-default-0-classifier failed"),
        "{description}"
    );
    assert!(description.contains("exceeded quota"), "{description}");
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(admin.clone(), "seldon-full");
    let ev = eventually("Warning event", Duration::from_secs(30), || {
        let events = events.clone();
        async move {
            events
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("ApplyFailed"))
        }
    })
    .await;
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    assert_eq!(
        ev.reporting_controller.as_deref(),
        Some(names::CONTROLLER_NAME)
    );
    assert_eq!(ev.regarding.unwrap().name.as_deref(), Some("iris"));
    let body = eventually("metrics served", Duration::from_secs(10), scrape.clone()).await;
    assert!(
        body.contains("seldon_operator_reconcile_errors_total{reason=\"apply\"}"),
        "{body}"
    );
    let reconciles: u64 = body
        .lines()
        .find_map(|l| l.strip_prefix("seldon_operator_reconciles_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(reconciles >= 3, "{body}");

    // A 109-character, dotted name (any custom-resource name is valid): the webhook admits
    // it, and every object render derives from it (Seldon's `seldon-<md5>` names and id
    // label) is accepted by the API server and labelled with the id.
    let long_text =
        std::fs::read_to_string(repo().join("manifests/samples/long-name.yaml")).unwrap();
    let long = seldon_crd::parse_yaml(&long_text).unwrap().remove(0).sdep;
    let long_name = long.name_any();
    assert!(long_name.len() > 100, "{long_name}");
    sdeps.create(&PostParams::default(), &long).await.unwrap();
    let id = seldon_crd::names::sdep_id(&long_name);
    assert!(id.starts_with("seldon-") && id.len() == 39, "{id}");
    let rendered = seldon_render::render(&long, &seldon_render::RenderOptions::default()).unwrap();
    // Routing (VirtualService, DestinationRules) is held back until the Deployments are
    // available: check the rest, play the Deployment controller, then check routing.
    let check_kinds = |kinds: &'static [&'static str]| {
        let (admin, rendered, id) = (admin.clone(), &rendered, id.clone());
        async move {
            for k in kinds {
                let mut want: Vec<String> = rendered
                    .iter()
                    .filter(|m| m.kind() == *k)
                    .map(|m| m.name().to_string())
                    .collect();
                want.sort();
                assert!(!want.is_empty(), "{k}");
                let api: Api<DynamicObject> =
                    Api::namespaced_with(admin.clone(), "seldon", &kind(k).api_resource());
                let selector = format!("seldon-deployment-id={id}");
                let got = eventually(
                    &format!("{k}s of the long-named SeldonDeployment"),
                    Duration::from_secs(30),
                    || {
                        let (api, selector, want) = (api.clone(), selector.clone(), want.clone());
                        async move {
                            let mut got: Vec<String> = api
                                .list(&ListParams::default().labels(&selector))
                                .await
                                .ok()?
                                .items
                                .iter()
                                .map(|o| o.name_any())
                                .collect();
                            got.sort();
                            (got == want).then_some(got)
                        }
                    },
                )
                .await;
                assert!(
                    got.iter()
                        .all(|n| n.starts_with("seldon-") && n.len() <= 63),
                    "{got:?}"
                );
            }
        }
    };
    check_kinds(&[
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "WasmPlugin",
    ])
    .await;
    let long_deps = deployments
        .list(&ListParams::default().labels(&format!("seldon-deployment-id={id}")))
        .await
        .unwrap();
    for dep in long_deps.items {
        deployments
            .patch_status(
                &dep.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"observedGeneration": dep.metadata.generation, "replicas": 1, "updatedReplicas": 1,
                    "readyReplicas": 1, "availableReplicas": 1,
                    "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "ok"}]}})),
            )
            .await
            .unwrap();
    }
    check_kinds(&["VirtualService", "DestinationRule"]).await;
    let status = eventually(
        "long-named status Available",
        Duration::from_secs(30),
        || {
            let (sdeps, n) = (sdeps.clone(), long_name.clone());
            async move {
                let s = sdeps.get(&n).await.ok()?.status?;
                (s.state == Some(seldon_crd::State::Available)).then_some(s)
            }
        },
    )
    .await;
    assert!(
        status
            .service_status
            .keys()
            .all(|k| k.starts_with("seldon-")),
        "{:?}",
        status.service_status
    );

    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(20), controller)
        .await
        .expect("graceful shutdown")
        .unwrap()
        .unwrap();
    assert!(
        scrape().await.is_none(),
        "metrics server stopped with the operator"
    );
}
