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
