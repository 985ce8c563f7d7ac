//! Rendered KEDA `ScaledObject`s against a real kube-apiserver (issue 10): KEDA's own CRD
//! (`tests/schemas/keda/keda.sh_scaledobjects.yaml`, from the `kedacore/keda` snapshot named
//! in `tests/schemas/keda/NOTICE`) is installed into a kube-apiserver + etcd built by
//! `scripts/kube-test-env.sh` (the operator's real-apiserver test uses the same binaries), and
//! every ScaledObject render emits — each sample's, and one with every `kedaSpec` field — is
//! created there with `kubectl create --validate=strict`: the API server must accept it,
//! prune nothing, and store the fields as rendered. Negative controls: an HPA field name
//! (`minReplicas`) and a trigger without `metadata` are refused by the same API server.
//!
//! Needs `kubectl` and `openssl` (the service-account key pair) on PATH; first run builds the
//! binaries (10-20 min on 2 cores, then cached). Processes die with the test (`setpriv
//! --pdeathsig KILL`, and killed on drop).

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Guard, TempDir, repo, run};
use seldon_render::{RenderOptions, render};
use serde_json::Value;

const TOKEN: &str = "keda-test-admin-token";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// etcd and kube-apiserver from the cached build.
fn binaries() -> (PathBuf, PathBuf) {
    let out = Command::new("bash")
        .arg(repo().join("scripts/kube-test-env.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("running scripts/kube-test-env.sh");
    assert!(out.status.success(), "scripts/kube-test-env.sh failed");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines().map(PathBuf::from);
    (lines.next().unwrap(), lines.next().unwrap())
}

/// A child that dies with this test's thread (`setpriv --pdeathsig KILL`) or on drop.
fn spawn(program: &Path, args: &[String], log: &Path) -> Guard {
    let file = std::fs::File::create(log).unwrap();
    Guard(
        Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--"])
            .arg(program)
            .args(args)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", program.display())),
    )
}

struct Cluster {
    server: String,
    ca: PathBuf,
    _procs: Vec<Guard>,
    dir: PathBuf,
}

impl Cluster {
    fn start(dir: &Path) -> Self {
        let (etcd, apiserver) = binaries();
        let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
        common::ok(Command::new("openssl").args(["genrsa", "-out", &p("sa.key"), "2048"]));
        common::ok(Command::new("openssl").args([
            "rsa",
            "-in",
            &p("sa.key"),
            "-pubout",
            "-out",
            &p("sa.pub"),
        ]));
        // static token of a system:masters user: the test needs no RBAC of its own
        std::fs::write(
            dir.join("tokens.csv"),
            format!("{TOKEN},keda-test,keda-test,system:masters\n"),
        )
        .unwrap();
        let (etcd_port, peer_port, api_port) = (free_port(), free_port(), free_port());
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let etcd = spawn(
            &etcd,
            &[
                format!("--data-dir={}", p("etcd")),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=default={peer_url}"),
                "--unsafe-no-fsync".to_string(),
            ],
            &dir.join("etcd.log"),
        );
        // no --tls-cert-file: the API server writes a self-signed pair into --cert-dir
        let apiserver = spawn(
            &apiserver,
            &[
                format!("--etcd-servers={etcd_url}"),
                "--bind-address=127.0.0.1".to_string(),
                "--advertise-address=127.0.0.1".to_string(),
                format!("--secure-port={api_port}"),
                format!("--cert-dir={}", p("certs")),
                format!("--token-auth-file={}", p("tokens.csv")),
                format!("--service-account-key-file={}", p("sa.pub")),
                format!("--service-account-signing-key-file={}", p("sa.key")),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_string(),
                "--authorization-mode=RBAC".to_string(),
                "--service-cluster-ip-range=10.0.0.0/24".to_string(),
            ],
            &dir.join("apiserver.log"),
        );
        let cluster = Self {
            server: format!("https://127.0.0.1:{api_port}"),
            ca: dir.join("certs/apiserver.crt"),
            _procs: vec![apiserver, etcd],
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if cluster.ca.exists() {
                let out = run(&mut cluster.kubectl(&["get", "--raw", "/readyz"]));
                if out.status.success() && out.stdout.starts_with(b"ok") {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "kube-apiserver not ready in 120 s; log: {}",
                std::fs::read_to_string(dir.join("apiserver.log"))
                    .unwrap_or_default()
                    .lines()
                    .rev()
                    .take(20)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        cluster
    }

    fn kubectl(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kubectl");
        c.arg(format!("--server={}", self.server))
            .arg(format!("--token={TOKEN}"))
            .arg(format!("--certificate-authority={}", self.ca.display()))
            .arg("--kubeconfig=/dev/null")
            .args(args);
        c
    }

    /// `kubectl create --validate=strict -f <object> -o json`: the stored object, or stderr.
    fn create(&self, object: &Value) -> Result<Value, String> {
        let name = object["metadata"]["name"].as_str().unwrap_or("object");
        let file = self.dir.join(format!("{name}.json"));
        std::fs::write(&file, object.to_string()).unwrap();
        let out = run(&mut self.kubectl(&[
            "create",
            "--validate=strict",
            "-o",
            "json",
            "-f",
            file.to_str().unwrap(),
        ]));
        if out.status.success() {
            Ok(serde_json::from_slice(&out.stdout).unwrap())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).to_string())
        }
    }
}

/// Every field of `want` is in `got` with the same value (the API server may add defaults,
/// such as KEDA's `fallback.behavior`, but must drop or change nothing).
fn contains(got: &Value, want: &Value, path: &str) -> Result<(), String> {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => w.iter().try_for_each(|(k, v)| {
            let at = format!("{path}.{k}");
            g.get(k)
                .ok_or_else(|| format!("{at}: missing (pruned?)"))
                .and_then(|gv| contains(gv, v, &at))
        }),
        (Value::Array(g), Value::Array(w)) if g.len() == w.len() => g
            .iter()
            .zip(w)
            .enumerate()
            .try_for_each(|(i, (g, w))| contains(g, w, &format!("{path}[{i}]"))),
        (g, w) if g == w => Ok(()),
        (g, w) => Err(format!("{path}: stored {g}, rendered {w}")),
    }
}

/// Every ScaledObject `render` emits for the samples, plus one SeldonDeployment setting every
/// `kedaSpec` field Seldon v1 has.
fn rendered_scaled_objects() -> Vec<Value> {
    let dir = repo().join("manifests/samples");
    let mut texts: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    texts.push(
        r#"
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: keda-all-fields, namespace: seldon}
spec:
  predictors:
  - name: default
    componentSpecs:
    - spec:
        containers: [{name: clf, image: example/clf:1}]
      kedaSpec:
        pollingInterval: 15
        cooldownPeriod: 120
        idleReplicaCount: 0
        minReplicaCount: 1
        maxReplicaCount: 9
        advanced:
          restoreToOriginalReplicaCount: true
          horizontalPodAutoscalerConfig:
            behavior:
              scaleDown:
                stabilizationWindowSeconds: 60
                policies: [{type: Percent, value: 50, periodSeconds: 30}]
        fallback: {failureThreshold: 3, replicas: 2}
        triggers:
        - type: cpu
          metricType: Utilization
          metadata: {value: "60"}
        - type: prometheus
          name: requests
          metadata:
            serverAddress: http://prometheus.monitoring:9090
            query: sum(rate(http_requests_total[1m]))
            threshold: "100"
          authenticationRef: {name: prometheus-auth, kind: TriggerAuthentication}
    graph: {name: clf, type: MODEL}
"#
        .to_string(),
    );
    let mut out = Vec::new();
    for text in texts {
        let docs = seldon_crd::parse_yaml(&text).unwrap();
        let manifests = render(&docs[0].sdep, &RenderOptions::default()).unwrap();
        out.extend(
            manifests
                .iter()
                .filter(|m| m.kind() == "ScaledObject")
                .map(|m| m.to_value()),
        );
    }
    out
}

#[test]
fn rendered_scaled_objects_are_accepted_by_keda_s_crd_in_a_real_apiserver() {
    let dir = std::env::temp_dir().join(format!("seldon-render-keda-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = TempDir(dir.clone());
    let cluster = Cluster::start(&dir);

    let crd = repo().join("control-plane/render/tests/schemas/keda/keda.sh_scaledobjects.yaml");
    common::ok(&mut cluster.kubectl(&["apply", "--server-side", "-f", crd.to_str().unwrap()]));
    common::ok(&mut cluster.kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/scaledobjects.keda.sh",
    ]));
    common::ok(&mut cluster.kubectl(&["create", "namespace", "seldon"]));

    let objects = rendered_scaled_objects();
    assert!(
        objects.len() >= 2,
        "a sample and the all-fields manifest render ScaledObjects: {objects:?}"
    );
    for so in &objects {
        let name = so["metadata"]["name"].as_str().unwrap();
        let stored = cluster
            .create(so)
            .unwrap_or_else(|e| panic!("ScaledObject {name} refused: {e}\n{so}"));
        contains(&stored["spec"], &so["spec"], "spec")
            .unwrap_or_else(|e| panic!("ScaledObject {name}: {e}\nstored: {stored}"));
        assert_eq!(stored["metadata"]["labels"], so["metadata"]["labels"]);
    }
    // the all-fields object reached the server whole (the advanced block is preserved)
    let all = objects
        .iter()
        .find(|o| o["metadata"]["name"] == "keda-all-fields-default-0-clf")
        .unwrap();
    assert_eq!(
        all["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
        60
    );

    // negative controls: the same API server refuses what KEDA's schema does not have
    let mut wrong = objects[0].clone();
    wrong["metadata"]["name"] = "wrong-field".into();
    wrong["spec"]["minReplicas"] = 1.into();
    let err = cluster.create(&wrong).unwrap_err();
    assert!(
        err.contains("unknown field \"spec.minReplicas\""),
        "strict validation names the field: {err}"
    );
    let mut no_metadata = objects[0].clone();
    no_metadata["metadata"]["name"] = "no-trigger-metadata".into();
    no_metadata["spec"]["triggers"][0]
        .as_object_mut()
        .unwrap()
        .remove("metadata");
    let err = cluster.create(&no_metadata).unwrap_err();
    assert!(
        err.contains("spec.triggers[0].metadata: Required value"),
        "{err}"
    );
}
