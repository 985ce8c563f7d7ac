//! The user's walkthrough (`manifests/README.md`) on a real mesh: each sample is applied with
//! `kubectl`, becomes `Available`, and answers predictions sent through the Istio ingress
//! gateway, with the bodies checked. See tests/mesh/README.md for what runs.
//!
//! Run: `make test-mesh` (builds what is needed; needs root for network namespaces).

use std::path::{Path, PathBuf};
use std::time::Duration;

use seldon_mesh_e2e::HarnessError;
use seldon_mesh_e2e::cluster::{self, Cluster, ClusterOptions, repo_root};
use serde_json::{Value, json};

/// Model URIs of the samples → test models of this repository (no internet here). The
/// copies live under the run directory and are given to the initializer as `file://` URIs.
const MODELS: &[(&str, &str)] = &[(
    "gs://seldon-models/v1.18.2/sklearn/iris",
    "model-servers/onnx/testdata/logreg",
)];

fn check(cond: bool, what: impl Into<String>) -> Result<(), HarnessError> {
    if cond {
        Ok(())
    } else {
        Err(HarnessError::Check(what.into()))
    }
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), HarnessError> {
    let io = |source| HarnessError::Io {
        context: format!("copying {} to {}", from.display(), to.display()),
        source,
    };
    std::fs::create_dir_all(to).map_err(io)?;
    for entry in std::fs::read_dir(from).map_err(io)? {
        let entry = entry.map_err(io)?;
        let target = to.join(entry.file_name());
        if entry.file_type().map_err(io)?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(io)?;
        }
    }
    Ok(())
}

/// The sample's text with every known model URI replaced by a `file://` copy under the run
/// directory (world-readable, as a volume would be).
fn localized_sample(cluster: &Cluster, sample: &str) -> Result<String, HarnessError> {
    let path = repo_root().join(sample);
    let mut text = std::fs::read_to_string(&path).map_err(|source| HarnessError::Io {
        context: format!("reading {}", path.display()),
        source,
    })?;
    for (i, (uri, local)) in MODELS.iter().enumerate() {
        if text.contains(uri) {
            let dest: PathBuf = cluster.run_dir().join("models").join(i.to_string());
            copy_dir(&repo_root().join(local), &dest)?;
            text = text.replace(uri, &format!("file://{}", dest.display()));
        }
    }
    Ok(text)
}

async fn create_seldon_namespace(cluster: &Cluster) -> Result<(), HarnessError> {
    // As the walkthrough does it.
    cluster
        .kubectl(&["create", "namespace", "seldon"], None)
        .await?;
    cluster
        .kubectl(
            &["label", "namespace", "seldon", "istio-injection=enabled"],
            None,
        )
        .await?;
    Ok(())
}

/// POSTs `body` to the gateway at `path` until it answers 200 (routes and the sidecar's
/// filter arrive over xDS shortly after `Available`), then returns the JSON body.
async fn predict_through_gateway(
    cluster: &Cluster,
    path: &str,
    body: &Value,
    timeout: Duration,
) -> Result<Value, HarnessError> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()?;
    let url = format!("{}{path}", cluster.gateway_url());
    cluster::wait_for(&format!("200 from POST {url}"), timeout, None, || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let r = http.post(&url).json(body).send().await?;
            let status = r.status();
            let text = r.text().await?;
            if status.is_success() {
                serde_json::from_str(&text)
                    .map(Some)
                    .map_err(|e| HarnessError::Check(format!("{e}: {text}")))
            } else {
                Err(HarnessError::Check(format!("HTTP {status}: {text}")))
            }
        }
    })
    .await
}

async fn assert_no_rejected_config(cluster: &Cluster) -> Result<(), HarnessError> {
    let rejected = cluster.rejected_updates(cluster.gateway_admin()).await?;
    check(
        rejected.len() == 2 && rejected.values().all(|v| *v == 0),
        format!("gateway Envoy rejected config: {rejected:?}"),
    )
}

fn reference_row_and_proba() -> Result<(Value, Vec<f64>), HarnessError> {
    let path = repo_root().join("model-servers/onnx/testdata/reference.json");
    let text = std::fs::read_to_string(&path).map_err(|source| HarnessError::Io {
        context: format!("reading {}", path.display()),
        source,
    })?;
    let v: Value = serde_json::from_str(&text).map_err(|e| HarnessError::Check(e.to_string()))?;
    let row = v["rows"][0].clone();
    let proba = v["models"]["logreg"]["predict_proba"][0]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    Ok((row, proba))
}

#[test]
fn sklearn_iris_predicts_through_the_gateway() -> Result<(), HarnessError> {
    cluster::run(ClusterOptions::new("sklearn-iris"), |cluster| {
        Box::pin(async move {
            create_seldon_namespace(cluster).await?;
            let sample = localized_sample(cluster, "manifests/samples/sklearn-iris.yaml")?;
            cluster
                .kubectl(&["apply", "-f", "-"], Some(&sample))
                .await?;
            let status = cluster
                .wait_sdep_state("seldon", "iris", "Available", Duration::from_secs(300))
                .await?;
            eprintln!(
                "iris Available after {:.1}s: {status}",
                cluster.uptime().as_secs_f64()
            );

            let (row, proba) = reference_row_and_proba()?;
            let body = predict_through_gateway(
                cluster,
                "/seldon/seldon/iris/api/v1.0/predictions",
                &json!({"data": {"ndarray": [row]}}),
                Duration::from_secs(60),
            )
            .await?;
            let got: Vec<f64> = body["data"]["ndarray"][0]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_f64).collect())
                .unwrap_or_default();
            check(
                got.len() == 3 && got.iter().zip(&proba).all(|(g, w)| (g - w).abs() < 1e-4),
                format!("predict_proba {got:?}, want {proba:?}; body {body}"),
            )?;
            check(
                body["meta"]["requestPath"]["classifier"].is_string(),
                format!("meta.requestPath names the classifier: {body}"),
            )?;
            assert_no_rejected_config(cluster).await?;
            Ok(())
        })
    })
}
