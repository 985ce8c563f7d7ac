//! gRPC at the entry on the cluster (issue 12, item 1): a real gRPC client (tonic over h2c)
//! calls the Istio ingress gateway with Seldon v1's routing metadata (`seldon: <sdep>`,
//! `namespace: <ns>`); the VirtualService's gRPC route sends it to the predictor Service's
//! `grpc` port 5001, where the sidecar runs the graph filter from the `<svc>-grpc-entry`
//! EnvoyFilter (held request headers, tail calls). Bodies are asserted; failing nodes give
//! gRPC statuses naming the node. See tests/mesh/README.md.
//!
//! The client's messages are prost structs written here from `prediction.proto`'s and
//! `inference.proto`'s field numbers, not the filter's codec.
//!
//! Run: `make test-mesh` (root), or `cargo test -p seldon-mesh-e2e --test grpc -- --nocapture`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use prost_types::{ListValue, Value as PbValue, value::Kind};
use seldon_mesh_e2e::HarnessError;
use seldon_mesh_e2e::cluster::{self, Cluster, ClusterOptions, repo_root};
use serde_json::json;
use tonic::codegen::http::uri::PathAndQuery;

#[derive(Clone, PartialEq, prost::Message)]
struct SeldonMessage {
    #[prost(message, optional, tag = "2")]
    meta: Option<Meta>,
    #[prost(message, optional, tag = "3")]
    data: Option<DefaultData>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Meta {
    #[prost(map = "string, message", tag = "2")]
    tags: HashMap<String, PbValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct DefaultData {
    #[prost(string, repeated, tag = "1")]
    names: Vec<String>,
    #[prost(message, optional, tag = "3")]
    ndarray: Option<ListValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct InferTensorContents {
    #[prost(float, repeated, tag = "6")]
    fp32_contents: Vec<f32>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct InferTensor {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    datatype: String,
    #[prost(int64, repeated, tag = "3")]
    shape: Vec<i64>,
    #[prost(message, optional, tag = "5")]
    contents: Option<InferTensorContents>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ModelInferRequest {
    #[prost(string, tag = "1")]
    model_name: String,
    #[prost(string, tag = "3")]
    id: String,
    #[prost(message, repeated, tag = "5")]
    inputs: Vec<InferTensor>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ModelInferResponse {
    #[prost(string, tag = "1")]
    model_name: String,
    #[prost(string, tag = "3")]
    id: String,
    #[prost(message, repeated, tag = "5")]
    outputs: Vec<InferTensor>,
}

const PREDICT: &str = "/seldon.protos.Seldon/Predict";
const MODEL_INFER: &str = "/inference.GRPCInferenceService/ModelInfer";

fn check(cond: bool, what: impl Into<String>) -> Result<(), HarnessError> {
    if cond {
        Ok(())
    } else {
        Err(HarnessError::Check(what.into()))
    }
}

fn number(n: f64) -> PbValue {
    PbValue {
        kind: Some(Kind::NumberValue(n)),
    }
}

/// `{"data":{"names":["a","b"],"ndarray":[[x, y]]}}` as a SeldonMessage.
fn row(x: f64, y: f64) -> SeldonMessage {
    SeldonMessage {
        data: Some(DefaultData {
            names: vec!["a".into(), "b".into()],
            ndarray: Some(ListValue {
                values: vec![PbValue {
                    kind: Some(Kind::ListValue(ListValue {
                        values: vec![number(x), number(y)],
                    })),
                }],
            }),
        }),
        ..Default::default()
    }
}

/// The numbers of `ndarray[0]`, or why there are none.
fn first_row(m: &SeldonMessage) -> Result<Vec<f64>, HarnessError> {
    let row = m
        .data
        .as_ref()
        .and_then(|d| d.ndarray.as_ref())
        .and_then(|l| l.values.first())
        .and_then(|v| v.kind.clone());
    let Some(Kind::ListValue(row)) = row else {
        return Err(HarnessError::Check(format!("no ndarray row in {m:?}")));
    };
    Ok(row
        .values
        .iter()
        .filter_map(|v| match v.kind {
            Some(Kind::NumberValue(n)) => Some(n),
            _ => None,
        })
        .collect())
}

/// `meta.tags.path`: the nodes the request went through.
fn tags_path(m: &SeldonMessage) -> Vec<String> {
    let path = m.meta.as_ref().and_then(|meta| meta.tags.get("path"));
    let Some(PbValue {
        kind: Some(Kind::ListValue(l)),
    }) = path
    else {
        return Vec::new();
    };
    l.values
        .iter()
        .filter_map(|v| match &v.kind {
            Some(Kind::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

/// One unary call through the gateway with Seldon v1's routing metadata.
async fn call<Req, Res>(
    cluster: &Cluster,
    sdep: &str,
    method: &'static str,
    message: Req,
) -> Result<Result<tonic::Response<Res>, tonic::Status>, HarnessError>
where
    Req: prost::Message + Send + Sync + 'static,
    Res: prost::Message + Default + Send + Sync + 'static,
{
    let channel = tonic::transport::Endpoint::from_shared(cluster.gateway_url())
        .map_err(|e| HarnessError::Check(e.to_string()))?
        .timeout(Duration::from_secs(20))
        .connect()
        .await
        .map_err(|e| HarnessError::Check(format!("gRPC connect to the gateway: {e}")))?;
    let mut client = tonic::client::Grpc::new(channel);
    client
        .ready()
        .await
        .map_err(|e| HarnessError::Check(e.to_string()))?;
    let mut request = tonic::Request::new(message);
    let meta = request.metadata_mut();
    for (k, v) in [("seldon", sdep), ("namespace", "seldon")] {
        meta.insert(
            k,
            v.parse()
                .map_err(|_| HarnessError::Check(format!("metadata {v}")))?,
        );
    }
    Ok(client
        .unary(
            request,
            PathAndQuery::from_static(method),
            tonic_prost::ProstCodec::default(),
        )
        .await)
}

/// Calls until the answer is not UNIMPLEMENTED/UNAVAILABLE (routes, the EnvoyFilter and the
/// module arrive over xDS shortly after `Available`), then returns it.
async fn call_when_routed<Req, Res>(
    cluster: &Cluster,
    sdep: &str,
    method: &'static str,
    message: Req,
) -> Result<Result<tonic::Response<Res>, tonic::Status>, HarnessError>
where
    Req: prost::Message + Clone + Send + Sync + 'static,
    Res: prost::Message + Default + Send + Sync + 'static,
{
    let start = Instant::now();
    loop {
        let answer = call(cluster, sdep, method, message.clone()).await?;
        let not_yet = matches!(&answer, Err(s) if matches!(s.code(), tonic::Code::Unimplemented | tonic::Code::Unavailable)
            && !s.metadata().contains_key("seldon-node"));
        if !not_yet {
            eprintln!(
                "{sdep} {method} answered after {:.1}s",
                start.elapsed().as_secs_f64()
            );
            return Ok(answer);
        }
        if start.elapsed() > Duration::from_secs(90) {
            return Err(HarnessError::Check(format!(
                "{sdep} {method} still not routed after 90 s: {:?}",
                answer.err()
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

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

/// A v2 graph of one testmodel node adding 1 (`mode v2-add`), and a seldon graph whose
/// transformer fails requests holding 666 and whose model always answers 500.
const EXTRA_SDEPS: &str = r#"
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: adder
  namespace: seldon
spec:
  protocol: v2
  predictors:
  - name: default
    graph:
      name: adder
      type: MODEL
    componentSpecs:
    - spec:
        containers:
        - name: adder
          image: seldonio/mock_v2_adder:1.0
---
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: broken
  namespace: seldon
spec:
  predictors:
  - name: default
    graph:
      name: picky
      type: TRANSFORMER
      children:
      - name: failing
        type: MODEL
    componentSpecs:
    - spec:
        containers:
        - name: picky
          image: seldonio/mock_picky:1.0
        - name: failing
          image: seldonio/mock_failing:1.0
"#;

#[test]
fn grpc_predict_and_model_infer_through_the_gateway_and_errors_name_the_node()
-> Result<(), HarnessError> {
    let mut opts = ClusterOptions::new("grpc-entry");
    opts.grpc_entry = true;
    for (image, args) in [
        ("seldonio/mock_transformer", "--mode add --add 1"),
        ("seldonio/mock_classifier", "--mode add --add 10"),
        ("seldonio/mock_v2_adder", "--mode v2-add --add 1"),
        ("seldonio/mock_picky", "--mode fail --fail-when 666"),
        ("seldonio/mock_failing", "--mode fail --fail-status 500"),
    ] {
        opts.images
            .insert(image.to_string(), testmodel_image(args)?);
    }
    cluster::run(opts, |cluster| {
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
            let sample = std::fs::read_to_string(
                repo_root().join("manifests/samples/transformer-model.yaml"),
            )
            .map_err(|source| HarnessError::Io {
                context: "reading transformer-model.yaml".into(),
                source,
            })?;
            cluster
                .kubectl(&["apply", "-f", "-"], Some(&sample))
                .await?;
            cluster
                .kubectl(&["apply", "-f", "-"], Some(EXTRA_SDEPS))
                .await?;
            for name in ["income", "adder", "broken"] {
                cluster
                    .wait_sdep_state("seldon", name, "Available", Duration::from_secs(300))
                    .await?;
            }
            eprintln!(
                "income, adder, broken Available after {:.1}s",
                cluster.uptime().as_secs_f64()
            );

            // The predictor Service advertises the gRPC port (the operator's status says so).
            let status = cluster
                .kubectl_output(
                    &["-n", "seldon", "get", "sdep", "income", "-o", "json"],
                    None,
                )
                .await?;
            let sdep: serde_json::Value = serde_json::from_slice(&status.stdout)
                .map_err(|e| HarnessError::Check(e.to_string()))?;
            let grpc_endpoint = &sdep["status"]["serviceStatus"]["income-default"]["grpcEndpoint"];
            check(
                grpc_endpoint == "income-default.seldon:5001",
                format!("status.serviceStatus: {}", sdep["status"]["serviceStatus"]),
            )?;

            // Seldon gRPC Predict through a transformer → model chain.
            let answer: Result<tonic::Response<SeldonMessage>, _> =
                call_when_routed(cluster, "income", PREDICT, row(1.0, 2.0)).await?;
            let answer = answer.map_err(|s| HarnessError::Check(format!("Predict: {s:?}")))?;
            let puid = answer
                .metadata()
                .get("seldon-puid")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            check(
                puid.as_ref().is_some_and(|p| !p.is_empty()),
                format!("no seldon-puid metadata: {:?}", answer.metadata()),
            )?;
            let m = answer.into_inner();
            check(
                first_row(&m)? == vec![12.0, 13.0],
                format!("Predict answer {m:?}"),
            )?;
            check(
                m.data.as_ref().map(|d| d.names.clone()) == Some(vec!["a".into(), "b".into()]),
                format!("names in {m:?}"),
            )?;
            check(
                tags_path(&m) == ["preprocess", "model"],
                format!("meta.tags.path of {m:?}"),
            )?;
            // Other metadata routes nowhere: the gateway's 404, UNIMPLEMENTED for a gRPC client.
            let other: Result<tonic::Response<SeldonMessage>, _> =
                call(cluster, "nosuch", PREDICT, row(1.0, 2.0)).await?;
            check(
                matches!(&other, Err(s) if s.code() == tonic::Code::Unimplemented),
                format!("unrouted metadata: {other:?}"),
            )?;
            // REST on port 8000 still answers next to it.
            let rest = reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()?
                .post(format!(
                    "{}/seldon/seldon/income/api/v1.0/predictions",
                    cluster.gateway_url()
                ))
                .json(&json!({"data": {"ndarray": [[1.0, 2.0]]}}))
                .send()
                .await?;
            let rest_status = rest.status();
            let rest_body: serde_json::Value = rest.json().await?;
            check(
                rest_status.is_success() && rest_body["data"]["ndarray"] == json!([[12.0, 13.0]]),
                format!("REST {rest_status}: {rest_body}"),
            )?;

            // OIP v2 gRPC ModelInfer on a v2 graph.
            let request = ModelInferRequest {
                model_name: "adder".into(),
                id: "grpc-r1".into(),
                inputs: vec![InferTensor {
                    name: "x".into(),
                    datatype: "FP32".into(),
                    shape: vec![1, 2],
                    contents: Some(InferTensorContents {
                        fp32_contents: vec![1.0, 2.0],
                    }),
                }],
            };
            let answer: Result<tonic::Response<ModelInferResponse>, _> =
                call_when_routed(cluster, "adder", MODEL_INFER, request).await?;
            let r = answer
                .map_err(|s| HarnessError::Check(format!("ModelInfer: {s:?}")))?
                .into_inner();
            let out = r.outputs.first();
            check(
                r.model_name == "adder"
                    && r.id == "grpc-r1"
                    && r.outputs.len() == 1
                    && out.is_some_and(|x| {
                        x.name == "x"
                            && x.datatype == "FP32"
                            && x.shape == [1, 2]
                            && x.contents.as_ref().map(|c| c.fp32_contents.clone())
                                == Some(vec![2.0, 3.0])
                    }),
                format!("ModelInfer answer {r:?}"),
            )?;

            // The tail node answers 500: INTERNAL naming it, in the message and `seldon-node`.
            let failed: Result<tonic::Response<SeldonMessage>, _> =
                call_when_routed(cluster, "broken", PREDICT, row(1.0, 2.0)).await?;
            let status = match failed {
                Err(s) => s,
                Ok(r) => return Err(HarnessError::Check(format!("broken answered {r:?}"))),
            };
            check(
                status.code() == tonic::Code::Internal
                    && status.message() == "node `failing` answered 500"
                    && status
                        .metadata()
                        .get("seldon-node")
                        .is_some_and(|v| v == "failing"),
                format!("tail node failure: {status:?}"),
            )?;
            // The transformer (a callout) fails: the filter's local reply, naming it.
            let failed: Result<tonic::Response<SeldonMessage>, _> =
                call(cluster, "broken", PREDICT, row(666.0, 2.0)).await?;
            let status = match failed {
                Err(s) => s,
                Ok(r) => return Err(HarnessError::Check(format!("broken answered {r:?}"))),
            };
            check(
                status.code() == tonic::Code::Internal
                    && status.message().starts_with("node `picky` answered 500")
                    && status
                        .metadata()
                        .get("seldon-node")
                        .is_some_and(|v| v == "picky"),
                format!("callout node failure: {status:?}"),
            )?;

            assert_no_rejected_config(cluster).await
        })
    })
}

/// `update_rejected` of LDS, CDS and ECDS is 0 on every sidecar in namespace `seldon` (their
/// Prometheus port 15090): an Envoy that rejects a push keeps its old config.
async fn assert_no_rejected_config(cluster: &Cluster) -> Result<(), HarnessError> {
    use kube::api::{Api, ListParams};
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
        let rejected: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("update_rejected") && !l.starts_with('#'))
            .filter(|l| l.rsplit_once(' ').is_some_and(|(_, v)| v != "0"))
            .collect();
        check(
            rejected.is_empty(),
            format!("sidecar of {name} rejected config: {rejected:?}"),
        )?;
        checked += 1;
    }
    check(checked >= 3, format!("only {checked} running pods checked"))
}
