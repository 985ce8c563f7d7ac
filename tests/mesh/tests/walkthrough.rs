//! The user's walkthrough (`manifests/README.md`) on a real mesh: each sample is applied with
//! `kubectl`, becomes `Available`, and answers predictions sent through the Istio ingress
//! gateway, with the bodies checked. See tests/mesh/README.md for what runs.
//!
//! Run: `make test-mesh` (builds what is needed; needs root for network namespaces).

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::api::{Api, DynamicObject, ListParams};

use seldon_mesh_e2e::HarnessError;
use seldon_mesh_e2e::cluster::{self, Cluster, ClusterOptions, repo_root};
use serde_json::{Value, json};

/// Model URIs of the samples → test models of this repository (no internet here). The
/// copies live under the run directory and are given to the initializer as `file://` URIs.
/// Longer URIs first: one may be a prefix of another.
const MODELS: &[(&str, &str)] = &[
    (
        "gs://seldon-models/v1.18.2/sklearn/iris-v2",
        "model-servers/onnx/testdata/rf",
    ),
    (
        "gs://seldon-models/v1.18.2/sklearn/iris",
        "model-servers/onnx/testdata/logreg",
    ),
];

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

/// `update_rejected` of LDS and CDS is 0 on the gateway (admin API) and on every sidecar in
/// namespace `seldon` (their Prometheus port 15090, which iptables does not intercept): an
/// Envoy that rejects a push keeps its old config, so a 200 alone proves nothing.
async fn assert_no_rejected_config(cluster: &Cluster) -> Result<(), HarnessError> {
    let rejected = cluster.rejected_updates(cluster.gateway_admin()).await?;
    check(
        rejected.len() == 2 && rejected.values().all(|v| *v == 0),
        format!("gateway Envoy rejected config: {rejected:?}"),
    )?;
    let pods: Api<k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(cluster.admin().clone(), "seldon");
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut checked = 0;
    for pod in pods.list(&ListParams::default()).await?.items {
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.clone()) else {
            continue;
        };
        if !running || pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = pod.metadata.name.unwrap_or_default();
        let text = http
            .get(format!("http://{ip}:15090/stats/prometheus"))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        let counters: Vec<(&str, f64)> = text
            .lines()
            .filter(|l| {
                l.starts_with("envoy_listener_manager_lds_update_rejected")
                    || l.starts_with("envoy_cluster_manager_cds_update_rejected")
            })
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k, v.parse().ok()?))
            })
            .collect();
        check(
            counters.len() == 2 && counters.iter().all(|(_, v)| *v == 0.0),
            format!("sidecar of {name} rejected config: {counters:?}"),
        )?;
        checked += 1;
    }
    check(checked > 0, "no running pod with a sidecar to check")
}

/// `kind/name` of every object labelled `seldon-deployment-id=<id>` in `namespace`: each kind
/// the operator owns (`seldon_operator::owned::OWNED_KINDS`) and the ReplicaSets and Pods the
/// controller-manager makes from its Deployments. Kinds whose CRD is not installed (KEDA)
/// are skipped.
async fn objects_of(
    cluster: &Cluster,
    namespace: &str,
    id: &str,
) -> Result<Vec<String>, HarnessError> {
    let mut resources: Vec<kube::api::ApiResource> = seldon_operator::owned::OWNED_KINDS
        .iter()
        .map(|k| k.api_resource())
        .collect();
    for (group, version, kind, plural) in [
        ("apps", "v1", "ReplicaSet", "replicasets"),
        ("", "v1", "Pod", "pods"),
    ] {
        resources.push(kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk(group, version, kind),
            plural,
        ));
    }
    let mut found = Vec::new();
    for ar in resources {
        let api: Api<DynamicObject> = Api::namespaced_with(cluster.admin().clone(), namespace, &ar);
        match api
            .list(&ListParams::default().labels(&format!("seldon-deployment-id={id}")))
            .await
        {
            Ok(list) => found.extend(
                list.items
                    .into_iter()
                    .map(|o| format!("{}/{}", ar.kind, o.metadata.name.unwrap_or_default())),
            ),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(found)
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
fn sklearn_iris_walkthrough_refuse_apply_predict_delete() -> Result<(), HarnessError> {
    cluster::run(ClusterOptions::new("sklearn-iris"), |cluster| {
        Box::pin(async move {
            create_seldon_namespace(cluster).await?;

            // An invalid SeldonDeployment (traffic 10 + 25 != 100) is refused by our webhook,
            // called by the real apiserver, and nothing is stored.
            let invalid = localized_sample(cluster, "manifests/samples/ab-test.yaml")?
                .replace("traffic: 75", "traffic: 10");
            let out = cluster
                .kubectl_output(&["apply", "-f", "-"], Some(&invalid))
                .await?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            check(
                !out.status.success()
                    && stderr.contains("admission webhook \"validate.seldondeployment.machinelearning.seldon.io\" denied the request")
                    && stderr.contains("SeldonDeployment abtest is invalid: spec.predictors"),
                format!("kubectl apply of an invalid graph: {} {stderr}", out.status),
            )?;
            let gone = cluster
                .kubectl_output(&["-n", "seldon", "get", "sdep", "abtest"], None)
                .await?;
            check(
                !gone.status.success(),
                "the refused SeldonDeployment was stored",
            )?;

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

            // Deleting the SeldonDeployment removes every owned object (garbage collection by
            // the controller-manager through ownerReferences), down to the pods.
            let owned = objects_of(cluster, "seldon", "iris").await?;
            for kind in [
                "Deployment/",
                "Service/",
                "VirtualService/",
                "DestinationRule/",
                "WasmPlugin/",
                "EnvoyFilter/",
                "ReplicaSet/",
                "Pod/",
            ] {
                check(
                    owned.iter().any(|o| o.starts_with(kind)),
                    format!("no {kind} owned by iris before the delete: {owned:?}"),
                )?;
            }
            cluster
                .kubectl(&["-n", "seldon", "delete", "sdep", "iris"], None)
                .await?;
            cluster::wait_for(
                "every object of iris deleted",
                Duration::from_secs(120),
                None,
                || async {
                    let left = objects_of(cluster, "seldon", "iris").await?;
                    if left.is_empty() {
                        Ok(Some(()))
                    } else {
                        Err(HarnessError::Check(format!("left: {left:?}")))
                    }
                },
            )
            .await?;
            Ok(())
        })
    })
}

/// `testmodel` (tests/e2e) as a Seldon image: listens where the operator tells the container
/// (`PREDICTIVE_UNIT_HTTP_SERVICE_PORT`), names itself after its node (`PREDICTIVE_UNIT_ID`)
/// so `meta.tags.path` shows the route a request took.
fn testmodel_image(
    mode_args: &str,
) -> Result<seldon_mesh_e2e::node_agent::ImageCommand, HarnessError> {
    let testmodel = cluster::target_dir().join("debug/testmodel");
    check(
        testmodel.is_file(),
        format!("{} missing: run `make test-mesh`", testmodel.display()),
    )?;
    Ok(seldon_mesh_e2e::node_agent::ImageCommand {
        program: PathBuf::from("/bin/sh"),
        args: vec![
            "-c".into(),
            format!(
                "exec {} --host 0.0.0.0 --port \"$PREDICTIVE_UNIT_HTTP_SERVICE_PORT\" --name \"$PREDICTIVE_UNIT_ID\" {mode_args}",
                testmodel.display()
            ),
        ],
        env: Default::default(),
    })
}

/// The images of the walkthrough's custom-container samples, played by testmodel.
fn sample_images() -> Result<ClusterOptions, HarnessError> {
    let mut opts = ClusterOptions::new("testmodel-graphs");
    for (image, args) in [
        ("seldonio/mock_transformer", "--mode add --add 1"),
        ("seldonio/mock_classifier", "--mode add --add 10"),
        ("seldonio/mab_epsilon_greedy", "--mode route --route 1"),
        ("seldonio/metadata-generic-node", "--mode aggregate"),
    ] {
        opts.images
            .insert(image.to_string(), testmodel_image(args)?);
    }
    Ok(opts)
}

fn tags_path(body: &Value) -> Vec<String> {
    body["meta"]["tags"]["path"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn ndarray(body: &Value) -> Value {
    body["data"]["ndarray"].clone()
}

/// The caller's trace context of the traced prediction (W3C ids this test chose).
const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN: &str = "b7ad6b7169203331";
/// `service.name` of the spans of each producer: the gateway's and sidecars' Envoys (Istio's
/// node cluster `<app>.<namespace>`) and the graph filter (`<predictor Service>.<namespace>`).
const GATEWAY_SERVICE: &str = "istio-ingressgateway.istio-system";
const FILTER_SERVICE: &str = "bandit-default.seldon";

/// One prediction with a known `traceparent` through the gateway into `bandit` (router
/// eg-router → model-a | model-b | model-c, model-b taken), then the trace in Jaeger: the
/// gateway's spans, the graph pod's sidecar span, the filter's request span and one CLIENT
/// span per node that ran (eg-router, model-b; none for model-a, model-c), and model-b's
/// sidecar span under the filter's call — one tree, parents checked. Returns the spans.
async fn traced_prediction_through_the_mesh(
    cluster: &Cluster,
) -> Result<Vec<seldon_mesh_e2e::jaeger::Span>, HarnessError> {
    use seldon_mesh_e2e::jaeger::{Span, tree};
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()?;
    let r = http
        .post(format!(
            "{}/seldon/seldon/bandit/api/v1.0/predictions",
            cluster.gateway_url()
        ))
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .json(&json!({"data": {"ndarray": [[5.0]]}}))
        .send()
        .await?;
    let sent = std::time::Instant::now();
    let status = r.status();
    let body: Value = r.json().await?;
    check(
        status.is_success() && ndarray(&body) == json!([[15.0]]),
        format!("traced prediction: {status} {body}"),
    )?;

    // Envoy's OpenTelemetry tracer flushes every 5 s, the filter every second.
    let by_service =
        |spans: &[Span], service: &str| spans.iter().filter(|s| s.service == service).count();
    cluster::wait_for(
        &format!("trace {TRACE_ID} in Jaeger with the gateway's, sidecars' and filter's spans"),
        Duration::from_secs(30),
        None,
        || async {
            let spans = cluster.jaeger_trace(TRACE_ID).await?;
            let sidecars = spans
                .iter()
                .filter(|s| s.service != GATEWAY_SERVICE && s.service != FILTER_SERVICE)
                .count();
            if by_service(&spans, GATEWAY_SERVICE) >= 2
                && by_service(&spans, FILTER_SERVICE) >= 3
                && sidecars >= 2
            {
                Ok(Some(spans))
            } else {
                Err(HarnessError::Check(format!("so far:\n{}", tree(&spans))))
            }
        },
    )
    .await?;
    let arrived = sent.elapsed();
    // One more Envoy flush period: a span that should not exist would show up now.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let spans = cluster.jaeger_trace(TRACE_ID).await?;
    let shown = tree(&spans);
    eprintln!(
        "trace {TRACE_ID}: {} spans in Jaeger {:.1}s after the answer:\n{shown}",
        spans.len(),
        arrived.as_secs_f64()
    );
    let fail = |what: &str| HarnessError::Check(format!("{what}; trace {TRACE_ID}:\n{shown}"));
    let one = |pred: &dyn Fn(&Span) -> bool, what: &str| -> Result<Span, HarnessError> {
        let found: Vec<&Span> = spans.iter().filter(|s| pred(s)).collect();
        match found.as_slice() {
            [s] => Ok((*s).clone()),
            _ => Err(fail(&format!("{} spans {what}, want 1", found.len()))),
        }
    };
    for s in &spans {
        check(
            s.trace_id == TRACE_ID,
            format!("span of another trace: {s:?}"),
        )?;
    }

    // The gateway continues the caller's trace and spawns an upstream span for the call.
    let gateway = one(
        &|s| s.parent.as_deref() == Some(CALLER_SPAN),
        "child of the caller's span",
    )?;
    check(
        gateway.service == GATEWAY_SERVICE,
        format!("the caller's child is not the gateway's: {gateway:?}"),
    )?;
    let upstream = one(
        &|s| s.service == GATEWAY_SERVICE && s.parent.as_deref() == Some(&gateway.span_id),
        "of the gateway under its own request span",
    )?;
    check(
        upstream.kind.as_deref() == Some("client"),
        format!("the gateway's upstream span: {upstream:?}"),
    )?;

    // The filter's request span: a child of the context the sidecar forwards to it.
    let request = one(
        &|s| s.service == FILTER_SERVICE && s.kind.as_deref() == Some("server"),
        "SERVER of the filter",
    )?;
    check(
        request.parent.as_deref() == Some(&upstream.span_id),
        format!(
            "the filter's request span's parent is not the gateway's upstream span: {request:?}"
        ),
    )?;
    check(
        request.tag_str("seldon.deployment") == Some("bandit")
            && request.tag_str("seldon.namespace") == Some("seldon")
            && request.tag_str("seldon.predictor") == Some("default")
            && request.tags.get("http.response.status_code") == Some(&json!(200)),
        format!("the filter's request span's attributes: {request:?}"),
    )?;

    // The graph pod's sidecar: its inbound span, also under the gateway's upstream span.
    let graph_pod = one(
        &|s| {
            s.service != GATEWAY_SERVICE
                && s.service != FILTER_SERVICE
                && s.parent.as_deref() == Some(&upstream.span_id)
        },
        "of a sidecar under the gateway's upstream span",
    )?;
    check(
        graph_pod.kind.as_deref() == Some("server"),
        format!("the graph pod's sidecar span: {graph_pod:?}"),
    )?;

    // One CLIENT span per node that ran, children of the request span; none for model-a or
    // model-c, the branches the router did not take.
    let clients: Vec<&Span> = spans
        .iter()
        .filter(|s| s.service == FILTER_SERVICE && s.kind.as_deref() == Some("client"))
        .collect();
    let mut names: Vec<&str> = clients
        .iter()
        .filter_map(|s| s.tag_str("seldon.node.name"))
        .collect();
    names.sort();
    if names != ["eg-router", "model-b"] {
        return Err(fail(&format!(
            "filter CLIENT spans for nodes {names:?}, want eg-router and model-b only"
        )));
    }
    let mut model_b_call = None;
    for (node, node_type, method) in [
        ("eg-router", "ROUTER", "route"),
        ("model-b", "MODEL", "predict"),
    ] {
        let Some(s) = clients
            .iter()
            .find(|s| s.tag_str("seldon.node.name") == Some(node))
        else {
            return Err(fail(&format!("no span for {node}")));
        };
        check(
            s.parent.as_deref() == Some(&request.span_id)
                && s.tag_str("seldon.node.type") == Some(node_type)
                && s.tag_str("seldon.node.method") == Some(method)
                && s.tags.get("http.response.status_code") == Some(&json!(200))
                && s.start_us >= request.start_us
                && s.duration_us > 0,
            format!("{node}'s span: {s:?}"),
        )?;
        if node == "model-b" {
            model_b_call = Some(s.span_id.clone());
        }
    }

    // model-b runs in its own pod: its sidecar's inbound span continues the filter's call.
    let model_b_call = model_b_call.unwrap_or_default();
    let model_b_pod = one(
        &|s| s.parent.as_deref() == Some(model_b_call.as_str()),
        "under the filter's model-b call",
    )?;
    check(
        model_b_pod.service != FILTER_SERVICE
            && model_b_pod.service != GATEWAY_SERVICE
            && model_b_pod.kind.as_deref() == Some("server"),
        format!("model-b's sidecar span: {model_b_pod:?}"),
    )?;

    // Nothing else: 2 gateway + 1 graph pod sidecar + 3 filter + 1 model-b sidecar.
    if spans.len() != 7 {
        return Err(fail(&format!("{} spans, want 7", spans.len())));
    }
    Ok(spans)
}

#[test]
fn transformer_router_feedback_and_combiner_through_the_gateway() -> Result<(), HarnessError> {
    // Tracing on, as a user sets it up: a real Jaeger, the shipped mesh config and Telemetry.
    let mut opts = sample_images()?;
    opts.tracing = true;
    cluster::run(opts, |cluster| {
        Box::pin(async move {
            create_seldon_namespace(cluster).await?;
            for sample in [
                "manifests/samples/transformer-model.yaml",
                "manifests/samples/router-three-models.yaml",
            ] {
                let text = localized_sample(cluster, sample)?;
                cluster.kubectl(&["apply", "-f", "-"], Some(&text)).await?;
            }
            // The combiner sample's second model is an XGBoost iris model from S3 with
            // credentials from a Secret. The Secret is made as a user would; the repository
            // has no 4-feature XGBoost model, so that child serves the random-forest test model
            // with SKLEARN_SERVER from a file:// copy.
            cluster
                .kubectl(
                    &[
                        "-n",
                        "seldon",
                        "create",
                        "secret",
                        "generic",
                        "s3-credentials",
                        "--from-literal=AWS_ACCESS_KEY_ID=minio",
                        "--from-literal=AWS_SECRET_ACCESS_KEY=minio123",
                    ],
                    None,
                )
                .await?;
            let combiner = localized_sample(cluster, "manifests/samples/combiner-ensemble.yaml")?
                .replace(
                    "implementation: XGBOOST_SERVER",
                    "implementation: SKLEARN_SERVER",
                )
                .replace(
                    "s3://models/xgboost/iris",
                    &format!(
                        "file://{}",
                        repo_root().join("model-servers/onnx/testdata/rf").display()
                    ),
                );
            cluster
                .kubectl(&["apply", "-f", "-"], Some(&combiner))
                .await?;
            for name in ["income", "bandit", "ensemble"] {
                cluster
                    .wait_sdep_state("seldon", name, "Available", Duration::from_secs(300))
                    .await?;
            }
            eprintln!(
                "income, bandit and ensemble Available after {:.1}s",
                cluster.uptime().as_secs_f64()
            );

            // transformer → model: preprocess adds 1, the model adds 10.
            let body = predict_through_gateway(
                cluster,
                "/seldon/seldon/income/api/v1.0/predictions",
                &json!({"data": {"ndarray": [[1.0, 2.0]]}}),
                Duration::from_secs(60),
            )
            .await?;
            check(
                ndarray(&body) == json!([[12.0, 13.0]])
                    && tags_path(&body) == ["preprocess", "model"],
                format!("transformer → model: {body}"),
            )?;

            // router: eg-router picks branch 1 (model-b) for every request. As in Seldon Core,
            // a router's own answer is a decision, not a message: only meta.routing shows it.
            let request = json!({"data": {"ndarray": [[5.0]]}});
            let body = predict_through_gateway(
                cluster,
                "/seldon/seldon/bandit/api/v1.0/predictions",
                &request,
                Duration::from_secs(60),
            )
            .await?;
            check(
                ndarray(&body) == json!([[15.0]]) && tags_path(&body) == ["model-b"],
                format!("router → model-b: {body}"),
            )?;
            check(
                body["meta"]["routing"]["eg-router"] == json!(1),
                format!("meta.routing names the branch: {body}"),
            )?;

            // The same graph traced: gateway, sidecars and filter in one tree in Jaeger.
            let started = std::time::Instant::now();
            traced_prediction_through_the_mesh(cluster).await?;
            eprintln!(
                "traced prediction checked in Jaeger in {:.1}s",
                started.elapsed().as_secs_f64()
            );

            // Feedback through the gateway reaches the router, with the reward.
            let http = reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()?;
            let feedback = json!({"request": request, "response": body, "reward": 1.0});
            let r = http
                .post(format!(
                    "{}/seldon/seldon/bandit/api/v1.0/feedback",
                    cluster.gateway_url()
                ))
                .json(&feedback)
                .send()
                .await?;
            let status = r.status();
            let text = r.text().await?;
            check(
                status.is_success(),
                format!("feedback: HTTP {status}: {text}"),
            )?;
            let router_feedback = pod_get(cluster, "seldon", "eg-router", "/_feedback").await?;
            check(
                router_feedback
                    .as_array()
                    .is_some_and(|a| a.len() == 1 && a[0]["reward"] == json!(1.0)),
                format!("the router's feedback log: {router_feedback}"),
            )?;

            // combiner: both models answer, the combiner (testmodel, mode aggregate) sums
            // their probabilities element-wise.
            let (row, logreg) = reference_row_and_proba()?;
            let rf = reference_proba("rf")?;
            let body = predict_through_gateway(
                cluster,
                "/seldon/seldon/ensemble/api/v1.0/predictions",
                &json!({"data": {"ndarray": [row]}}),
                Duration::from_secs(60),
            )
            .await?;
            let sum: Vec<f64> = logreg.iter().zip(&rf).map(|(a, b)| a + b).collect();
            check(
                close(&body["data"]["ndarray"][0], &sum)
                    && tags_path(&body).last().map(String::as_str) == Some("combiner"),
                format!("combiner of logreg {logreg:?} + rf {rf:?}: {body}"),
            )?;
            assert_no_rejected_config(cluster).await?;
            Ok(())
        })
    })
}

/// `GET http://<pod IP>:<port><path>` on the pod that runs container `container` (through
/// its sidecar's inbound listener, as any in-mesh client), parsed as JSON.
async fn pod_get(
    cluster: &Cluster,
    namespace: &str,
    container: &str,
    path: &str,
) -> Result<Value, HarnessError> {
    let pods: Api<k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(cluster.admin().clone(), namespace);
    let list = pods.list(&ListParams::default()).await?;
    for pod in list.items {
        let Some(spec) = &pod.spec else { continue };
        let Some(c) = spec.containers.iter().find(|c| c.name == container) else {
            continue;
        };
        let port = c
            .env
            .iter()
            .flatten()
            .find(|e| e.name == "PREDICTIVE_UNIT_HTTP_SERVICE_PORT")
            .and_then(|e| e.value.clone())
            .ok_or_else(|| {
                HarnessError::Check(format!("{container}: no PREDICTIVE_UNIT_HTTP_SERVICE_PORT"))
            })?;
        let ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .ok_or_else(|| HarnessError::Check(format!("{container}: pod has no IP")))?;
        let text = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()?
            .get(format!("http://{ip}:{port}{path}"))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        return serde_json::from_str(&text)
            .map_err(|e| HarnessError::Check(format!("{e}: {text}")));
    }
    Err(HarnessError::Check(format!(
        "no pod runs container {container}"
    )))
}

/// The rf test model's `predict_proba` for the reference row.
fn reference_proba(model: &str) -> Result<Vec<f64>, HarnessError> {
    let path = repo_root().join("model-servers/onnx/testdata/reference.json");
    let text = std::fs::read_to_string(&path).map_err(|source| HarnessError::Io {
        context: format!("reading {}", path.display()),
        source,
    })?;
    let v: Value = serde_json::from_str(&text).map_err(|e| HarnessError::Check(e.to_string()))?;
    Ok(v["models"][model]["predict_proba"][0]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default())
}

fn close(got: &Value, want: &[f64]) -> bool {
    got.as_array().is_some_and(|a| {
        a.len() == want.len()
            && a.iter()
                .zip(want)
                .all(|(g, w)| g.as_f64().is_some_and(|g| (g - w).abs() < 1e-4))
    })
}

/// The gateway's count of 2xx answers from the `subset` of `host` port 8000: what it routed
/// or mirrored there and got answered (mirrored answers are received, then dropped). Envoy
/// creates the counter with the cluster's first answer, so a missing counter is 0: a fresh
/// mirror target (its first copy still in flight) has none yet. A destination that never
/// answers stays at 0, which the callers' share checks reject.
async fn gateway_answers(cluster: &Cluster, subset: &str, host: &str) -> Result<f64, HarnessError> {
    // Istio names the stats of a cluster `<cluster name>;` (its alt_stat_name).
    let key = format!("cluster.outbound|8000|{subset}|{host};.upstream_rq_2xx");
    let stats = cluster.gateway_stats("upstream_rq").await?;
    Ok(stats.get(&key).map_or(0.0, |n| *n as f64))
}

#[test]
fn ab_test_splits_75_25_and_shadow_gets_mirrored_copies() -> Result<(), HarnessError> {
    cluster::run(ClusterOptions::new("ab-shadow"), |cluster| {
        Box::pin(async move {
            create_seldon_namespace(cluster).await?;
            // The A/B sample's canary is an XGBoost iris model; the repository has no 4-feature
            // XGBoost model, so the canary serves the random-forest test model with
            // SKLEARN_SERVER. The split (75/25, VirtualService weights) is what is measured.
            let ab = localized_sample(cluster, "manifests/samples/ab-test.yaml")?.replace(
                "implementation: XGBOOST_SERVER\n      modelUri: gs://seldon-models/xgboost/iris",
                &format!(
                    "implementation: SKLEARN_SERVER\n      modelUri: file://{}",
                    repo_root().join("model-servers/onnx/testdata/rf").display()
                ),
            );
            check(!ab.contains("XGBOOST"), "the canary was not replaced")?;
            let shadow = localized_sample(cluster, "manifests/samples/shadow.yaml")?;
            for text in [&ab, &shadow] {
                cluster.kubectl(&["apply", "-f", "-"], Some(text)).await?;
            }
            for name in ["abtest", "shadow"] {
                cluster
                    .wait_sdep_state("seldon", name, "Available", Duration::from_secs(300))
                    .await?;
            }
            eprintln!(
                "abtest and shadow Available after {:.1}s",
                cluster.uptime().as_secs_f64()
            );

            let (row, logreg) = reference_row_and_proba()?;
            let rf = reference_proba("rf")?;
            check(logreg != rf, "the two models must answer differently")?;
            let request = json!({"data": {"ndarray": [row]}});
            // Warm up until both routes answer (the VirtualService arrives after Available).
            predict_through_gateway(
                cluster,
                "/seldon/seldon/abtest/api/v1.0/predictions",
                &request,
                Duration::from_secs(60),
            )
            .await?;

            // A/B: 2000 requests, 8 at a time. Binomial(2000, 0.75) has sd 19.4 (0.97%); the
            // bound 0.70..0.80 is 5 sd, so a correct split fails it with probability < 1e-6.
            let http = reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()?;
            let url = format!(
                "{}/seldon/seldon/abtest/api/v1.0/predictions",
                cluster.gateway_url()
            );
            let (mut main, mut canary, mut other) = (0u32, 0u32, Vec::new());
            let started = std::time::Instant::now();
            for _ in 0..250 {
                let batch = (0..8).map(|_| {
                    let (http, url, request) = (http.clone(), url.clone(), request.clone());
                    async move {
                        let r = http.post(&url).json(&request).send().await?;
                        let status = r.status();
                        let body: Value = r.json().await?;
                        Ok::<_, HarnessError>((status, body))
                    }
                });
                for result in futures::future::join_all(batch).await {
                    let (status, body) = result?;
                    let proba = &body["data"]["ndarray"][0];
                    if status.is_success() && close(proba, &logreg) {
                        main += 1;
                    } else if status.is_success() && close(proba, &rf) {
                        canary += 1;
                    } else if other.len() < 5 {
                        other.push(format!("{status} {body}"));
                    }
                }
            }
            let share = f64::from(main) / 2000.0;
            eprintln!(
                "A/B: main {main}, canary {canary}, other {} in {:.1}s; main share {share:.3}",
                2000 - main - canary,
                started.elapsed().as_secs_f64()
            );
            check(
                main + canary == 2000,
                format!("failed or unrecognised answers: {other:?}"),
            )?;
            check(
                (0.70..=0.80).contains(&share),
                format!("main share {share} outside 0.70..0.80"),
            )?;

            // Shadow: every request is answered by the default predictor; 50% are mirrored to
            // the shadow predictor, whose answers are dropped. The gateway counts the 2xx
            // answers of each destination, the mirror's included.
            let url = format!(
                "{}/seldon/seldon/shadow/api/v1.0/predictions",
                cluster.gateway_url()
            );
            predict_through_gateway(
                cluster,
                "/seldon/seldon/shadow/api/v1.0/predictions",
                &request,
                Duration::from_secs(60),
            )
            .await?;
            let default_host = "shadow-default.seldon.svc.cluster.local";
            let shadow_host = "shadow-shadow.seldon.svc.cluster.local";
            let before_default = gateway_answers(cluster, "default", default_host).await?;
            let before_shadow = gateway_answers(cluster, "shadow", shadow_host).await?;
            const N: u32 = 400;
            for _ in 0..N {
                let r = http.post(&url).json(&request).send().await?;
                let status = r.status();
                let body: Value = r.json().await?;
                check(
                    status.is_success() && close(&body["data"]["ndarray"][0], &logreg),
                    format!("shadow sample answered by the default predictor: {status} {body}"),
                )?;
            }
            // Mirrored requests are fire-and-forget; give the last ones a moment.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let served_default =
                gateway_answers(cluster, "default", default_host).await? - before_default;
            let served_shadow =
                gateway_answers(cluster, "shadow", shadow_host).await? - before_shadow;
            let mirrored = served_shadow / f64::from(N);
            eprintln!(
                "shadow: default served {served_default}, shadow served {served_shadow} of {N} (mirror 50%)"
            );
            check(
                (served_default - f64::from(N)).abs() < 0.5,
                format!("default predictor served {served_default} of {N}"),
            )?;
            // Binomial(400, 0.5): sd 2.5%; 0.40..0.60 is 4 sd.
            check(
                (0.40..=0.60).contains(&mirrored),
                format!("mirrored share {mirrored} outside 0.40..0.60"),
            )?;
            assert_no_rejected_config(cluster).await?;
            Ok(())
        })
    })
}

/// One request of the load during a graph change: HTTP status and `meta.tags.path`.
type Outcome = Result<(u16, Vec<String>), String>;

/// Sends a prediction every 10 ms (100 rps) until `stop` is set; each request is its own task
/// so a slow answer does not lower the rate.
async fn load_100_rps(
    url: String,
    request: Value,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<Outcome> {
    let http = match reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(h) => h,
        Err(e) => return vec![Err(e.to_string())],
    };
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        tick.tick().await;
        let (http, url, request) = (http.clone(), url.clone(), request.clone());
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(&url)
                .json(&request)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = r.status().as_u16();
            let body: Value = r.json().await.map_err(|e| e.to_string())?;
            Ok((status, tags_path(&body)))
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap_or_else(|e| Err(e.to_string())));
    }
    out
}

#[test]
fn graph_change_with_kubectl_apply_under_100_rps_fails_nothing_and_restarts_no_envoy()
-> Result<(), HarnessError> {
    let mut opts = sample_images()?;
    opts.name = "graph-change".into();
    cluster::run(opts, |cluster| {
        Box::pin(async move {
            create_seldon_namespace(cluster).await?;
            let before = localized_sample(cluster, "manifests/samples/transformer-model.yaml")?;
            cluster
                .kubectl(&["apply", "-f", "-"], Some(&before))
                .await?;
            cluster
                .wait_sdep_state("seldon", "income", "Available", Duration::from_secs(300))
                .await?;
            let path = "/seldon/seldon/income/api/v1.0/predictions";
            let request = json!({"data": {"ndarray": [[1.0]]}});
            let body =
                predict_through_gateway(cluster, path, &request, Duration::from_secs(60)).await?;
            check(
                tags_path(&body) == ["preprocess", "model"],
                format!("before: {body}"),
            )?;

            let pods: Api<k8s_openapi::api::core::v1::Pod> =
                Api::namespaced(cluster.admin().clone(), "seldon");
            let pod_names = |list: kube::api::ObjectList<k8s_openapi::api::core::v1::Pod>| {
                let mut v: Vec<String> = list
                    .items
                    .into_iter()
                    .filter_map(|p| p.metadata.name)
                    .collect();
                v.sort();
                v
            };
            let pods_before = pod_names(
                pods.list(&ListParams::default().labels("seldon-deployment-id=income"))
                    .await?,
            );
            let (uptime_before, epoch_before) = cluster.gateway_envoy_identity().await?;
            let gateway_pid = cluster.pid("gateway");

            // The change: the transformer becomes an output transformer, so the model runs
            // first. Same containers, new graph.
            let after = before.replace("type: TRANSFORMER", "type: OUTPUT_TRANSFORMER");
            check(after != before, "the sample has no TRANSFORMER to change")?;
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let load = tokio::spawn(load_100_rps(
                format!("{}{path}", cluster.gateway_url()),
                request.clone(),
                stop.clone(),
            ));
            tokio::time::sleep(Duration::from_secs(2)).await;
            let changed_at = std::time::Instant::now();
            cluster.kubectl(&["apply", "-f", "-"], Some(&after)).await?;
            let shared: &Cluster = cluster;
            let took = cluster::wait_for(
                "the new graph answering through the gateway",
                Duration::from_secs(180),
                None,
                || {
                    let request = request.clone();
                    async move {
                        let body = predict_through_gateway(
                            shared,
                            path,
                            &request,
                            Duration::from_secs(10),
                        )
                        .await?;
                        Ok((tags_path(&body) == ["model", "preprocess"])
                            .then(|| changed_at.elapsed()))
                    }
                },
            )
            .await?;
            tokio::time::sleep(Duration::from_secs(3)).await;
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let outcomes = load.await.map_err(|e| HarnessError::Check(e.to_string()))?;

            let total = outcomes.len();
            let failed: Vec<&Outcome> = outcomes
                .iter()
                .filter(|o| !matches!(o, Ok((200, _))))
                .collect();
            let old = outcomes
                .iter()
                .filter(|o| matches!(o, Ok((200, p)) if p == &["preprocess", "model"]))
                .count();
            let new = outcomes
                .iter()
                .filter(|o| matches!(o, Ok((200, p)) if p == &["model", "preprocess"]))
                .count();
            eprintln!(
                "graph change: new graph answered {:.2}s after kubectl apply; {total} requests at 100 rps: {old} old graph, {new} new graph, {} failed",
                took.as_secs_f64(),
                failed.len()
            );
            check(
                failed.is_empty(),
                format!(
                    "{} of {total} requests failed during the change, e.g. {:?}",
                    failed.len(),
                    failed.iter().take(5).collect::<Vec<_>>()
                ),
            )?;
            check(
                old > 0 && new > 0 && old + new == total,
                format!("old {old} + new {new} != {total}"),
            )?;
            check(total >= 300, format!("only {total} requests were sent"))?;

            // No Envoy restarted: the gateway's process and uptime continue.
            let (uptime_after, epoch_after) = cluster.gateway_envoy_identity().await?;
            check(
                epoch_after == epoch_before && uptime_after >= uptime_before + took.as_secs(),
                format!(
                    "gateway Envoy restarted: uptime {uptime_before} → {uptime_after}, epoch {epoch_before} → {epoch_after}"
                ),
            )?;
            check(
                cluster.pid("gateway") == gateway_pid,
                "the gateway's pilot-agent changed",
            )?;
            let pods_after = pod_names(
                pods.list(&ListParams::default().labels("seldon-deployment-id=income"))
                    .await?,
            );
            eprintln!("pods before {pods_before:?}, after {pods_after:?}");
            // A node type change also changes the pod template (the `seldon.io/transformer`
            // label becomes `seldon.io/output-transformer`, as in Seldon Core), so the
            // Deployment rolls: the old pod's filter takes the new graph over ECDS first, then
            // the rollout replaces it. Neither may fail a request (checked above).
            check(!pods_after.is_empty(), "no pods of income after the change")?;
            assert_no_rejected_config(cluster).await?;
            Ok(())
        })
    })
}
