//! Where node calls go, in the real mesh (issue 7). The sklearn sample's graph filter calls
//! its node over 127.0.0.1 through the static cluster the operator adds (the default), or,
//! after `kubectl annotate … mesh.seldon.io/node-calls=service` (no pod restarts), through
//! the node's Service (Istio's outbound cluster). Rounds alternate
//! localhost/service/localhost/service. Each proves its path is the one taken (the graph
//! pod's sidecar's `/clusters` counters), checks every answer's body, and prints the latency
//! of one prediction through the gateway. The numbers are recorded in tests/mesh/README.md;
//! nothing here asserts a speed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use seldon_mesh_e2e::HarnessError;
use seldon_mesh_e2e::cluster::{self, ClusterOptions, repo_root};
use serde_json::{Value, json};

const PATH: &str = "/seldon/seldon/iris/api/v1.0/predictions";
/// The sample's node: container port 9000 of the graph pod.
const LOCAL_CLUSTER: &str = "seldon-local-9000";
const SERVICE_CLUSTER: &str = "outbound|9000||iris-default-classifier.seldon.svc.cluster.local";
/// Sequential predictions timed per round.
const N: usize = 200;

fn check(cond: bool, what: impl Into<String>) -> Result<(), HarnessError> {
    if cond {
        Ok(())
    } else {
        Err(HarnessError::Check(what.into()))
    }
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> HarnessError {
    move |source| HarnessError::Io { context, source }
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), HarnessError> {
    std::fs::create_dir_all(to).map_err(io(format!("creating {}", to.display())))?;
    for entry in std::fs::read_dir(from).map_err(io(format!("reading {}", from.display())))? {
        let entry = entry.map_err(io(format!("reading {}", from.display())))?;
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .map_err(io(format!("copying to {}", target.display())))?;
        }
    }
    Ok(())
}

/// Requests completed by `cluster` in the Envoy of the pod whose IP is `pod_ip`, from its
/// admin `/clusters` (admin listens on the pod's loopback, so it is read from inside the pod's
/// network namespace, found by its address).
fn cluster_rq_total(pod_ip: &str, cluster: &str) -> Result<u64, HarnessError> {
    let list = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map_err(io("ip netns list".into()))?;
    for line in String::from_utf8_lossy(&list.stdout).lines() {
        let Some(ns) = line.split_whitespace().next() else {
            continue;
        };
        let addr = Command::new("ip")
            .args([
                "netns", "exec", ns, "ip", "-4", "-o", "addr", "show", "eth0",
            ])
            .output()
            .map_err(io(format!("ip netns exec {ns}")))?;
        if !String::from_utf8_lossy(&addr.stdout).contains(&format!(" {pod_ip}/")) {
            continue;
        }
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "curl",
                "-s",
                "http://127.0.0.1:15000/clusters",
            ])
            .output()
            .map_err(io(format!("curl /clusters in {ns}")))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let prefix = format!("{cluster}::");
        return Ok(text
            .lines()
            .filter(|l| l.starts_with(&prefix) && l.contains("::rq_total::"))
            .filter_map(|l| l.rsplit("::").next()?.trim().parse::<u64>().ok())
            .sum());
    }
    Err(HarnessError::Check(format!(
        "no pod network namespace has {pod_ip}"
    )))
}

async fn predict(http: &reqwest::Client, url: &str, row: &Value) -> Result<Value, HarnessError> {
    let r = http
        .post(url)
        .json(&json!({"data": {"ndarray": [row]}}))
        .send()
        .await?;
    let status = r.status();
    let text = r.text().await?;
    check(status.is_success(), format!("HTTP {status}: {text}"))?;
    serde_json::from_str(&text).map_err(|e| HarnessError::Check(format!("{e}: {text}")))
}

fn proba(body: &Value) -> Vec<f64> {
    body["data"]["ndarray"][0]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

/// p50 and p99 of `N` sequential predictions, each answer checked against `want`.
async fn latency(
    http: &reqwest::Client,
    url: &str,
    row: &Value,
    want: &[f64],
) -> Result<(Duration, Duration), HarnessError> {
    let mut took = Vec::with_capacity(N);
    for _ in 0..N {
        let started = Instant::now();
        let body = predict(http, url, row).await?;
        took.push(started.elapsed());
        let got = proba(&body);
        check(
            got.len() == want.len() && got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-4),
            format!("predict_proba {got:?}, want {want:?}"),
        )?;
    }
    took.sort();
    Ok((took[N / 2], took[N * 99 / 100]))
}

#[test]
fn node_calls_over_localhost_then_the_service_in_the_same_pods() -> Result<(), HarnessError> {
    cluster::run(ClusterOptions::new("node-calls"), |cluster| {
        Box::pin(async move {
            cluster
                .kubectl(&["create", "namespace", "seldon"], None)
                .await?;
            cluster
                .kubectl(
                    &["label", "namespace", "seldon", "istio-injection=enabled"],
                    None,
                )
                .await?;
            let models: PathBuf = cluster.run_dir().join("models/logreg");
            copy_dir(
                &repo_root().join("model-servers/onnx/testdata/logreg"),
                &models,
            )?;
            let sample =
                std::fs::read_to_string(repo_root().join("manifests/samples/sklearn-iris.yaml"))
                    .map_err(io("reading the sklearn sample".into()))?
                    .replace(
                        "gs://seldon-models/v1.18.2/sklearn/iris",
                        &format!("file://{}", models.display()),
                    );
            cluster
                .kubectl(&["apply", "-f", "-"], Some(&sample))
                .await?;
            cluster
                .wait_sdep_state("seldon", "iris", "Available", Duration::from_secs(300))
                .await?;

            let reference = std::fs::read_to_string(
                repo_root().join("model-servers/onnx/testdata/reference.json"),
            )
            .map_err(io("reading reference.json".into()))?;
            let reference: Value =
                serde_json::from_str(&reference).map_err(|e| HarnessError::Check(e.to_string()))?;
            let row = reference["rows"][0].clone();
            let want: Vec<f64> = reference["models"]["logreg"]["predict_proba"][0]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_f64).collect())
                .unwrap_or_default();

            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .no_proxy()
                .build()?;
            let url = format!("{}{PATH}", cluster.gateway_url());
            // Routes and the filter arrive over xDS shortly after Available.
            cluster::wait_for("a first answer", Duration::from_secs(60), None, || {
                let (http, url, row) = (http.clone(), url.clone(), row.clone());
                async move { Ok(predict(&http, &url, &row).await.ok()) }
            })
            .await?;

            let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
                kube::Api::namespaced(cluster.admin().clone(), "seldon");
            let pod = pods
                .list(&kube::api::ListParams::default().labels("seldon-deployment-id=iris"))
                .await?
                .items
                .into_iter()
                .find(|p| p.metadata.deletion_timestamp.is_none())
                .ok_or_else(|| HarnessError::Check("no iris pod".into()))?;
            let pod_name = pod.metadata.name.clone().unwrap_or_default();
            let ip = pod
                .status
                .and_then(|s| s.pod_ip)
                .ok_or_else(|| HarnessError::Check("the iris pod has no IP".into()))?;

            // The default is the localhost path (round 0 proves it); then alternate, so drift
            // on a shared machine (another build starting) does not favour one path. Each
            // switch is a `kubectl annotate`, applied by the operator and istiod without
            // restarting pods.
            let mut results: Vec<(&str, Duration, Duration)> = Vec::new();
            for (round, mode) in ["localhost", "service", "localhost", "service"]
                .iter()
                .enumerate()
            {
                let (used, unused) = if *mode == "localhost" {
                    (LOCAL_CLUSTER, SERVICE_CLUSTER)
                } else {
                    (SERVICE_CLUSTER, LOCAL_CLUSTER)
                };
                if round > 0 {
                    let annotation = format!("mesh.seldon.io/node-calls={mode}");
                    cluster
                        .kubectl(
                            &[
                                "-n",
                                "seldon",
                                "annotate",
                                "--overwrite",
                                "sdep",
                                "iris",
                                &annotation,
                            ],
                            None,
                        )
                        .await?;
                    let switched = Instant::now();
                    cluster::wait_for(
                        &format!("node calls over {mode}"),
                        Duration::from_secs(60),
                        None,
                        || {
                            let (http, url, row, ip) =
                                (http.clone(), url.clone(), row.clone(), ip.clone());
                            async move {
                                let before = cluster_rq_total(&ip, used)?;
                                if predict(&http, &url, &row).await.is_err() {
                                    return Ok(None);
                                }
                                Ok((cluster_rq_total(&ip, used)? > before).then_some(()))
                            }
                        },
                    )
                    .await?;
                    eprintln!(
                        "node calls switched to {mode} {:.1}s after kubectl annotate",
                        switched.elapsed().as_secs_f64()
                    );
                }
                let used_before = cluster_rq_total(&ip, used)?;
                let unused_before = cluster_rq_total(&ip, unused)?;
                let (p50, p99) = latency(&http, &url, &row, &want).await?;
                let used_after = cluster_rq_total(&ip, used)?;
                check(
                    used_after >= used_before + N as u64,
                    format!(
                        "{mode}: {used}: {used_before} → {used_after} requests for {N} predictions"
                    ),
                )?;
                check(
                    cluster_rq_total(&ip, unused)? == unused_before,
                    format!("{mode}: {unused} still carried node calls"),
                )?;
                results.push((mode, p50, p99));
            }
            let still: Vec<String> = pods
                .list(&kube::api::ListParams::default().labels("seldon-deployment-id=iris"))
                .await?
                .items
                .into_iter()
                .filter_map(|p| p.metadata.name)
                .collect();
            check(
                still == [pod_name.clone()],
                format!("the switch restarted pods: {pod_name} → {still:?}"),
            )?;

            eprintln!(
                "one prediction through the gateway, {N} sequential per round, sklearn iris on seldon-server:"
            );
            for (mode, p50, p99) in &results {
                eprintln!(
                    "  {mode:<9}  p50 {:.2} ms  p99 {:.2} ms",
                    p50.as_secs_f64() * 1e3,
                    p99.as_secs_f64() * 1e3
                );
            }
            Ok(())
        })
    })
}
