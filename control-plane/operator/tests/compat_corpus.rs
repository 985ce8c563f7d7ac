//! The drop-in corpus (`manifests/compat/`, issue 10 item 6): SeldonDeployments in the shapes
//! Seldon v1 users write, each taken through a real kube-apiserver + etcd (built by
//! `scripts/kube-test-env.sh`, started as `real_apiserver.rs` starts them) that has our CRD,
//! Istio's CRDs and Emissary's (`control-plane/render/tests/schemas/`) installed and our
//! validating webhook registered (the real HTTPS server, called by the API server by URL):
//!
//! 1. the manifest as written — `v1`, `v1alpha2` or `v1alpha3` — is created through the API
//!    server (strict field validation; the webhook admits it) and read back as `v1`, and
//!    renders the same objects as the file does;
//! 2. every object `seldon_render::render` gives for it (Deployments, Services, HPAs, PDBs,
//!    Istio objects, KEDA ScaledObjects, Emissary `Mapping`s for files named `ambassador-*`) is applied with
//!    server-side apply, dry-run, strict field validation: the API server checks each against
//!    its built-in type or the CRD's schema, and a misspelt field fails instead of being pruned;
//! 3. every manifest under `manifests/compat/refused/` is denied by the webhook through the
//!    API server with the message its `# expect:` lines give, and `render` refuses it with the
//!    same text.
//!
//! Negative controls: an Emissary `Mapping` with a field Emissary does not have (`timeout`
//! for `timeout_ms`) is refused by the API server, and so is an invalid SeldonDeployment.
//! `control-plane/cli/tests/compat_corpus.rs` runs `seldon-mesh validate` on the same files.
//!
//! First run builds the binaries (10-20 min on 2 cores); warm, this test takes ~15 s.

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{Discovery, Scope};
use kube::{Client, Config, ResourceExt};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use seldon_operator::{certs, names, validation, webhook};
use seldon_render::{Ingress, RenderOptions};
use serde_json::{Value, json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The CRDs installed besides ours: Istio's, Emissary's (Mapping, Host, Listener) and KEDA's
/// ScaledObject.
const CRD_FILES: &[&str] = &[
    "control-plane/render/tests/schemas/istio-crds.gen.yaml",
    "control-plane/render/tests/schemas/emissary/emissary-crds.gen.yaml",
    "control-plane/render/tests/schemas/keda/keda.sh_scaledobjects.yaml",
];

/// `manifests/compat/*.yaml` (or `refused/*.yaml`), sorted.
fn corpus(dir: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    out.sort();
    out
}

/// Files named `ambassador-*` are rendered and validated as with `ingress: ambassador`.
fn options_for(path: &Path) -> RenderOptions {
    let mut opts = RenderOptions::default();
    if file_name(path).starts_with("ambassador") {
        opts.ingress = Ingress::Ambassador;
    }
    opts
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// A refused manifest's `# expect: <text>` lines: each must be in the refusal.
fn expected_refusals(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(|s| s.trim().to_string())
        .collect()
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// etcd and kube-apiserver, killed and reaped on drop (also when the test panics).
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// CA, the API server's serving certificate and an admin client certificate.
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
    ca.distinguished_name.push(DnType::CommonName, "compat-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let serving_key = KeyPair::generate().unwrap();
    let serving = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap()
        .signed_by(&serving_key, &issuer)
        .unwrap();
    let admin_key = KeyPair::generate().unwrap();
    let mut admin = CertificateParams::new(Vec::<String>::new()).unwrap();
    admin
        .distinguished_name
        .push(DnType::CommonName, "compat-admin");
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

/// (etcd, kube-apiserver) from the script's cache (built there on first use).
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

/// Starts etcd and the API server on loopback; returns the processes and an admin client.
async fn start_apiserver(d: &Path) -> (Procs, Client) {
    let (etcd, apiserver) = binaries();
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
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let log = |name: &str| std::fs::File::create(d.join(name)).unwrap();
    let p = |f: &str| d.join(f).to_str().unwrap().to_string();
    let mut procs = Procs(Vec::new());
    procs.0.push(
        Command::new(&etcd)
            .args(["--data-dir", &p("etcd")])
            .args(["--listen-client-urls", &etcd_url])
            .args(["--advertise-client-urls", &etcd_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("default={peer_url}")])
            .arg("--unsafe-no-fsync")
            .stdout(log("etcd.log"))
            .stderr(log("etcd.err"))
            .spawn()
            .unwrap(),
    );
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
            .arg("--authorization-mode=RBAC")
            .arg("--service-cluster-ip-range=10.0.0.0/24")
            .arg("--allow-privileged=true")
            .arg(format!("--cert-dir={}", p("certs")))
            .stdout(log("apiserver.log"))
            .stderr(log("apiserver.err"))
            .spawn()
            .unwrap(),
    );
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let kubeconfig: Kubeconfig = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "compat",
        "clusters": [{"name": "compat", "cluster": {
            "server": format!("https://127.0.0.1:{api_port}"),
            "certificate-authority-data": b64(&pki.ca_pem)}}],
        "users": [{"name": "admin", "user": {
            "client-certificate-data": b64(&pki.admin_cert),
            "client-key-data": b64(&pki.admin_key)}}],
        "contexts": [{"name": "compat", "context": {"cluster": "compat", "user": "admin"}}]
    }))
    .unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    let admin = Client::try_from(config).unwrap();
    eventually("kube-apiserver ready", Duration::from_secs(90), || {
        let admin = admin.clone();
        async move {
            let req = http::Request::get("/readyz").body(Vec::new()).unwrap();
            (admin.request_text(req).await.ok()? == "ok").then_some(())
        }
    })
    .await;
    (procs, admin)
}

async fn install_crds(admin: &Client, text: &str) {
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    let mut installed = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let v: Value = serde::Deserialize::deserialize(doc).unwrap();
        if v.is_null() || v["kind"] != "CustomResourceDefinition" {
            continue;
        }
        let mut crd: CustomResourceDefinition = serde_json::from_value(v).unwrap();
        // Emissary 3.10's Mapping and Host convert between versions through its
        // emissary-apiext webhook, which does not run here: with `None` the API server still
        // validates each object against the schema of the version it is written in
        // (v3alpha1, what render emits) and stores it with only apiVersion changed.
        if let Some(conversion) = crd.spec.conversion.as_mut()
            && conversion.strategy == "Webhook"
        {
            conversion.strategy = "None".to_string();
            conversion.webhook = None;
        }
        crds.patch(
            &crd.name_any(),
            &PatchParams::apply("compat").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("CRD {}: {e}", crd.name_any()));
        installed.push(crd.name_any());
    }
    for n in installed {
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

/// The API server's view of one object: its resource and whether it is namespaced.
struct Kube {
    client: Client,
    discovery: Discovery,
}

impl Kube {
    fn api(&self, v: &Value) -> (Api<DynamicObject>, ApiResource) {
        let api_version = v["apiVersion"].as_str().unwrap();
        let kind = v["kind"].as_str().unwrap();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (ar, caps) = self
            .discovery
            .resolve_gvk(&gvk)
            .unwrap_or_else(|| panic!("the API server does not serve {gvk:?}"));
        let api = match caps.scope {
            Scope::Namespaced => Api::namespaced_with(
                self.client.clone(),
                v["metadata"]["namespace"].as_str().unwrap_or("default"),
                &ar,
            ),
            Scope::Cluster => Api::all_with(self.client.clone(), &ar),
        };
        (api, ar)
    }

    /// Server-side apply with strict field validation (an unknown field is an error, not
    /// silently pruned); `dry_run` runs admission and validation but stores nothing.
    async fn apply(&self, v: &Value, dry_run: bool) -> Result<DynamicObject, kube::Error> {
        let obj: DynamicObject = serde_json::from_value(v.clone()).unwrap();
        let (api, _) = self.api(v);
        let mut pp = PatchParams::apply("compat").force().validation_strict();
        pp.dry_run = dry_run;
        api.patch(&obj.name_any(), &pp, &Patch::Apply(&obj)).await
    }
}

/// The webhook as the operator serves it: `validation::validator` behind `webhook::router` on
/// HTTPS, registered from `manifests/operator/webhook.yaml` with a loopback URL.
async fn register_webhook(kube: &Kube) {
    let bundle = certs::generate(&["localhost".to_string()]).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(webhook::serve_tls(
        listener,
        certs::server_config(&bundle).unwrap(),
        webhook::router(validation::validator(RenderOptions::default())),
        std::future::pending(),
    ));
    let yaml = std::fs::read_to_string(repo().join("manifests/operator/webhook.yaml")).unwrap();
    let mut vwc: Value = serde_yaml::Deserializer::from_str(&yaml)
        .map(|d| <Value as serde::Deserialize>::deserialize(d).unwrap())
        .find(|v| v["kind"] == "ValidatingWebhookConfiguration")
        .unwrap();
    vwc["webhooks"][0]["clientConfig"] = json!({
        "url": format!("https://localhost:{port}{}", names::WEBHOOK_PATH),
        "caBundle": certs::ca_bundle_b64(&bundle.ca_pem),
    });
    kube.apply(&vwc, false).await.unwrap();
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn read_yaml(path: &Path) -> (String, Value) {
    let text = std::fs::read_to_string(path).unwrap();
    let v: Value = serde_yaml::from_str(&text).unwrap();
    (text, v)
}

/// Renders the SeldonDeployment in `text` (YAML or JSON) as the operator would.
fn render(text: &str, opts: &RenderOptions) -> Result<Vec<Value>, String> {
    let sdep = seldon_crd::parse_yaml(text)
        .map_err(|e| e.to_string())?
        .remove(0)
        .sdep;
    seldon_render::render(&sdep, opts)
        .map(|ms| ms.iter().map(|m| m.to_value()).collect())
        .map_err(|e| e.to_string())
}

/// What a SeldonDeployment read back from the API server carries of the user's manifest.
fn as_written(stored: &Value) -> Value {
    let m = &stored["metadata"];
    let mut meta = json!({"name": m["name"], "namespace": m["namespace"]});
    for k in ["labels", "annotations"] {
        if !m[k].is_null() {
            meta[k] = m[k].clone();
        }
    }
    json!({"apiVersion": stored["apiVersion"], "kind": stored["kind"], "metadata": meta, "spec": stored["spec"]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corpus_manifest_is_served_or_refused_by_a_real_apiserver() {
    let files = corpus("manifests/compat");
    let refused = corpus("manifests/compat/refused");
    assert!(files.len() >= 30, "only {} corpus manifests", files.len());
    assert!(!refused.is_empty());

    let dir = tempfile::tempdir().unwrap();
    let (_procs, admin) = start_apiserver(dir.path()).await;
    install_crds(
        &admin,
        &std::fs::read_to_string(repo().join("manifests/crd/seldondeployments.yaml")).unwrap(),
    )
    .await;
    for f in CRD_FILES {
        install_crds(&admin, &std::fs::read_to_string(repo().join(f)).unwrap()).await;
    }
    let discovery = Discovery::new(admin.clone()).run().await.unwrap();
    let kube = Kube {
        client: admin.clone(),
        discovery,
    };
    register_webhook(&kube).await;

    for ns in ["seldon", "emissary"] {
        kube.apply(&namespace(ns), false).await.unwrap();
    }
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    let mut versions = std::collections::BTreeSet::new();
    for path in &files {
        let name = file_name(path);
        let (text, sdep) = read_yaml(path);
        let file_ns = sdep["metadata"]["namespace"].as_str();
        let ns = file_ns.unwrap_or("default");
        versions.insert(sdep["apiVersion"].as_str().unwrap().to_string());

        // 1. the manifest as written, through the CRD's served version and the webhook
        let created = kube
            .apply(&sdep, false)
            .await
            .unwrap_or_else(|e| panic!("{name}: the API server refused it: {e}"));
        assert_eq!(
            created.types.as_ref().unwrap().api_version,
            sdep["apiVersion"].as_str().unwrap(),
            "{name}"
        );
        let v1 = ApiResource::from_gvk(&GroupVersionKind::gvk(
            "machinelearning.seldon.io",
            "v1",
            "SeldonDeployment",
        ));
        let stored = Api::<DynamicObject>::namespaced_with(admin.clone(), ns, &v1)
            .get(&created.name_any())
            .await
            .unwrap_or_else(|e| panic!("{name}: reading it back as v1: {e}"));
        let mut stored = as_written(&serde_json::to_value(&stored).unwrap());
        if file_ns.is_none() {
            // the file leaves the namespace to `kubectl -n`; so does its rendering
            stored["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("namespace");
        }
        assert_eq!(stored["apiVersion"], "machinelearning.seldon.io/v1");

        // 2. every rendered object, from the file and from what the API server stored
        let opts = options_for(path);
        let objects = render(&text, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            render(&stored.to_string(), &opts).unwrap_or_else(|e| panic!("{name} (stored): {e}")),
            objects,
            "{name}: the object read back as v1 renders differently from the file"
        );
        for obj in &objects {
            let what = format!("{name}: {} {}", obj["kind"], obj["metadata"]["name"]);
            kube.apply(obj, true)
                .await
                .unwrap_or_else(|e| panic!("{what}: the API server refused it: {e}\n{obj:#}"));
            *kinds
                .entry(obj["kind"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    println!(
        "{} manifests, rendered objects by kind: {kinds:?}",
        files.len()
    );
    for v in ["v1", "v1alpha2", "v1alpha3"] {
        assert!(
            versions.contains(&format!("machinelearning.seldon.io/{v}")),
            "no corpus manifest in {v}"
        );
    }
    for kind in [
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "VirtualService",
        "DestinationRule",
        "WasmPlugin",
        "EnvoyFilter",
        "Mapping",
        "ScaledObject",
    ] {
        assert!(kinds.contains_key(kind), "the corpus renders no {kind}");
    }

    // 3. refused manifests: denied by the webhook through the API server, and by render
    for path in &refused {
        let name = file_name(path);
        let (text, sdep) = read_yaml(path);
        let expect = expected_refusals(&text);
        assert!(!expect.is_empty(), "{name}: no `# expect:` line");
        let err = kube
            .apply(&sdep, true)
            .await
            .map(|_| ())
            .expect_err(&format!("{name}: admitted"))
            .to_string();
        let rendered = render(&text, &options_for(path)).expect_err(&format!("{name}: rendered"));
        for e in &expect {
            assert!(
                err.contains("denied the request") && err.contains(e.as_str()),
                "{name}: the API server's answer lacks {e:?}: {err}"
            );
            assert!(
                rendered.contains(e.as_str()),
                "{name}: render lacks {e:?}: {rendered}"
            );
        }
    }

    // Emissary's Listener and Host from ambassador/ are accepted by Emissary's CRDs.
    let text = std::fs::read_to_string(repo().join("ambassador/listener-host.yaml")).unwrap();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v: Value = serde::Deserialize::deserialize(doc).unwrap();
        kube.apply(&v, true)
            .await
            .unwrap_or_else(|e| panic!("ambassador/listener-host.yaml {}: {e}", v["kind"]));
    }

    // The gRPC Mapping (rendered only with `grpc_entry`, once the entry serves gRPC) is valid
    // for Emissary too, so turning the switch on cannot break an Ambassador install.
    let mut grpc_mappings = 0;
    for path in files
        .iter()
        .filter(|p| file_name(p).starts_with("ambassador"))
    {
        let mut opts = options_for(path);
        opts.grpc_entry = true;
        let text = std::fs::read_to_string(path).unwrap();
        for m in render(&text, &opts).unwrap() {
            if m["kind"] == "Mapping" && m["spec"]["grpc"] == true {
                kube.apply(&m, true)
                    .await
                    .unwrap_or_else(|e| panic!("gRPC Mapping {}: {e}", m["metadata"]["name"]));
                grpc_mappings += 1;
            }
        }
    }
    assert!(grpc_mappings > 0);

    // Negative control: the CRD schema is really in force for Mappings.
    let (text, _) = read_yaml(&repo().join("manifests/compat/ambassador-canary.yaml"));
    let mut mapping = render(&text, &options_for(Path::new("ambassador")))
        .unwrap()
        .into_iter()
        .find(|o| o["kind"] == "Mapping")
        .unwrap();
    mapping["spec"]["timeout"] = json!(3000);
    let err = kube.apply(&mapping, true).await.unwrap_err().to_string();
    assert!(
        err.contains(".spec.timeout: field not declared in schema"),
        "{err}"
    );
}
