//! Starts the real server on free ports and talks REST, gRPC (tonic clients) and metrics.

use std::sync::Arc;

use seldon_serving::builtin::SumModel;
use seldon_serving::config::Config;
use seldon_serving::grpc::pb::inference::{
    self as inf, grpc_inference_service_client::GrpcInferenceServiceClient,
};
use seldon_serving::grpc::pb::seldon::protos::{self as sp, model_client::ModelClient};
use seldon_serving::server::bind_all;
use serde_json::{Value, json};

#[tokio::test]
async fn real_server_speaks_rest_grpc_and_metrics_then_shuts_down() {
    let mut config = Config::for_tests();
    config.unit_id = "sum".into();
    let bound = bind_all(config, Arc::new(SumModel::default()))
        .await
        .unwrap();
    let (http, grpc, metrics) = (bound.http_addr, bound.grpc_addr, bound.metrics_addr);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(bound.serve(async move {
        let _ = stopped.await;
    }));

    // REST v1
    let client = reqwest::Client::new();
    let v: Value = client
        .post(format!("http://{http}/predict"))
        .json(&json!({"data":{"ndarray":[[1,2,3]]}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"]["ndarray"], json!([[6.0]]));

    // gRPC Seldon Model.Predict
    let mut seldon = ModelClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    let msg = sp::SeldonMessage {
        data_oneof: Some(sp::seldon_message::DataOneof::Data(sp::DefaultData {
            names: vec![],
            data_oneof: Some(sp::default_data::DataOneof::Tensor(sp::Tensor {
                shape: vec![2, 2],
                values: vec![1.0, 2.0, 3.0, 4.0],
            })),
        })),
        ..Default::default()
    };
    let out = seldon.predict(msg).await.unwrap().into_inner();
    let Some(sp::seldon_message::DataOneof::Data(d)) = out.data_oneof else {
        panic!("no data: {out:?}")
    };
    let Some(sp::default_data::DataOneof::Tensor(t)) = d.data_oneof else {
        panic!("not a tensor")
    };
    assert_eq!((t.shape, t.values), (vec![2, 1], vec![3.0, 7.0]));
    let bad = seldon
        .predict(sp::SeldonMessage {
            data_oneof: Some(sp::seldon_message::DataOneof::StrData("x".into())),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);

    // gRPC Open Inference Protocol
    let mut oip = GrpcInferenceServiceClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    let req = inf::ModelInferRequest {
        model_name: "sum".into(),
        id: "g1".into(),
        inputs: vec![inf::model_infer_request::InferInputTensor {
            name: "x".into(),
            datatype: "FP32".into(),
            shape: vec![1, 2],
            contents: Some(inf::InferTensorContents {
                fp32_contents: vec![0.5, 0.25],
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let resp = oip.model_infer(req.clone()).await.unwrap().into_inner();
    assert_eq!(resp.id, "g1");
    assert_eq!(resp.outputs[0].datatype, "FP64");
    assert_eq!(
        resp.outputs[0].contents.as_ref().unwrap().fp64_contents,
        vec![0.75]
    );
    // raw_input_contents form
    let mut raw = req.clone();
    raw.inputs[0].contents = None;
    raw.raw_input_contents = vec![[1.0f32.to_le_bytes(), 2.0f32.to_le_bytes()].concat()];
    let resp = oip.model_infer(raw).await.unwrap().into_inner();
    assert_eq!(
        resp.outputs[0].contents.as_ref().unwrap().fp64_contents,
        vec![3.0]
    );
    let unknown = oip
        .model_infer(inf::ModelInferRequest {
            model_name: "nope".into(),
            ..req
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    assert!(
        oip.server_live(inf::ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );

    // metrics: custom metric from the model, with Seldon labels
    let text = client
        .get(format!("http://{metrics}/prometheus"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("sum_rows_total{") && l.contains("method=\"predict\""))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("model_name=\"sum\""), "{line}");

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    assert!(
        client
            .get(format!("http://{http}/health/ping"))
            .send()
            .await
            .is_err()
    );
}

/// Returns its input and, like a Seldon user model, custom metrics of every type: a COUNTER
/// (with a tag trying to override a Seldon label), a GAUGE set to the first input value (with
/// its own tag) and a TIMER of 20.2 ms.
#[derive(Debug)]
struct Metered;

#[seldon_serving::async_trait]
impl seldon_serving::Model for Metered {
    async fn predict(
        &self,
        r: seldon_serving::Request,
    ) -> Result<seldon_serving::Output<seldon_serving::Payload>, seldon_serving::ModelError> {
        use seldon_serving::{MetricType, metric};
        #[allow(clippy::cast_possible_truncation)]
        let first = r
            .payload
            .tensor()?
            .as_f64()?
            .first()
            .copied()
            .unwrap_or(0.0) as f32;
        let mut counter = metric("mycounter", MetricType::Counter, 1.0);
        counter.tags.insert("model_name".into(), "evil".into());
        let mut gauge = metric("mygauge", MetricType::Gauge, first);
        gauge.tags.insert("mytag".into(), "a".into());
        Ok(seldon_serving::Output::new(r.payload)
            .metric(counter)
            .metric(gauge)
            .metric(metric("mytimer", MetricType::Timer, 20.2)))
    }
}

/// Seldon v1's custom-metric semantics on the real `/prometheus` (v1 and v2 calls alike):
/// COUNTER adds (`<key>_total`), GAUGE keeps the last value, TIMER observes milliseconds as
/// seconds into Seldon's buckets (`le` 0.001 … 29.999999999999996, +Inf); Seldon's labels win
/// over a tag of the same name; the metric's own tags become labels.
#[tokio::test]
async fn custom_metrics_reach_prometheus_with_seldon_semantics() {
    let mut config = Config::for_tests();
    config.unit_id = "metered".into();
    config.unit_image = "repo/metered:0.3".into();
    config.deployment_id = "dep".into();
    config.predictor_id = "main".into();
    let bound = bind_all(config, Arc::new(Metered)).await.unwrap();
    let (http, metrics) = (bound.http_addr, bound.metrics_addr);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(bound.serve(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    for value in [5.0, 7.0] {
        let v: Value = client
            .post(format!("http://{http}/api/v1.0/predictions"))
            .json(&json!({"data": {"ndarray": [[value]]}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["data"]["ndarray"], json!([[value]]), "{v}");
    }
    let v: Value = client
        .post(format!("http://{http}/v2/models/metered/infer"))
        .json(&json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [3.0]}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["outputs"][0]["data"], json!([3.0]), "{v}");

    let r = client
        .get(format!("http://{metrics}/prometheus"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let series = |prefix: &str| -> Vec<&str> {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .collect::<Vec<_>>()
    };
    let labels = "deployment_name=\"dep\",model_name=\"metered\",model_image=\"repo/metered\",\
        model_version=\"0.3\",predictor_name=\"main\",predictor_version=\"\",worker_id=\"";
    // COUNTER: 3 calls, one series (the `model_name` tag did not override Seldon's label)
    let counter = series("mycounter_total{");
    assert_eq!(counter.len(), 1, "{text}");
    assert!(
        counter[0].starts_with(&format!("mycounter_total{{{labels}")),
        "{text}"
    );
    assert!(counter[0].contains("method=\"predict\""), "{text}");
    assert!(!counter[0].contains("evil"), "{text}");
    assert!(counter[0].ends_with(" 3.0"), "{text}");
    // GAUGE: the last value, with its own tag
    let gauge = series("mygauge{");
    assert_eq!(gauge.len(), 1, "{text}");
    assert!(gauge[0].contains("mytag=\"a\""), "{text}");
    assert!(gauge[0].ends_with(" 3.0"), "{text}");
    // TIMER: ms → seconds, Seldon's buckets
    let sum = series("mytimer_sum{");
    let count = series("mytimer_count{");
    assert!(count.len() == 1 && count[0].ends_with(" 3"), "{text}");
    let total: f64 = sum[0].rsplit(' ').next().unwrap().parse().unwrap();
    assert!((total - 0.0606).abs() < 1e-6, "{text}");
    let buckets = series("mytimer_bucket{");
    let le: Vec<&str> = buckets
        .iter()
        .map(|l| l.split("le=\"").nth(1).unwrap().split('"').next().unwrap())
        .collect();
    assert_eq!(le.len(), 51, "{text}");
    assert_eq!(
        (le[0], le[1], le[49], le[50]),
        (
            "0.001",
            "0.0012341553253454693",
            "29.999999999999996",
            "+Inf"
        ),
        "the bounds of seldon-core's np.logspace(-3, log10(30), 50)"
    );
    let count_at = |bound: &str| -> u64 {
        let line = buckets
            .iter()
            .find(|l| l.contains(&format!("le=\"{bound}\"")))
            .unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    // 20.2 ms lies between the bounds 0.0196… and 0.0242…
    let below = le
        .iter()
        .rev()
        .find(|b| b.parse::<f64>().is_ok_and(|v| v < 0.0202))
        .unwrap();
    let above = le
        .iter()
        .find(|b| b.parse::<f64>().is_ok_and(|v| v >= 0.0202))
        .unwrap();
    assert_eq!(
        (count_at(below), count_at(above), count_at("+Inf")),
        (0, 3, 3),
        "{text}"
    );

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
