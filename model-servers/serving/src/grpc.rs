//! gRPC edge: `inference.GRPCInferenceService` and Seldon's `seldon.protos` services, each a
//! thin conversion between prost messages and `seldon-protocol` wire types around
//! [`Service`].

use std::collections::{BTreeMap, HashMap};

use prost::Message as _;
use prost_types::value::Kind;
use seldon_protocol::v1 as w1;
use seldon_protocol::v2::{self as w2, Datatype, TensorData};
use serde_json::Value;
use tonic::{Request, Response, Status};

use crate::offload::on_pool;
use crate::service::{Hook, Service};

/// Code generated from `crates/protocol/proto` by `build.rs`.
#[allow(clippy::all, missing_docs, missing_debug_implementations)]
pub mod pb {
    pub mod seldon {
        pub mod protos {
            tonic::include_proto!("seldon.protos");
        }
    }
    pub mod tensorflow {
        tonic::include_proto!("tensorflow");
    }
    pub mod inference {
        tonic::include_proto!("inference");
    }
}

use pb::inference as inf;
use pb::seldon::protos as sp;

// ------------------------------------------------------------------ JSON ⇄ protobuf Value

fn value_to_pb(v: Value) -> prost_types::Value {
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => Kind::StringValue(s),
        Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.into_iter().map(value_to_pb).collect(),
        }),
        Value::Object(o) => Kind::StructValue(prost_types::Struct {
            fields: o.into_iter().map(|(k, v)| (k, value_to_pb(v))).collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

fn value_from_pb(v: prost_types::Value) -> Value {
    match v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(b),
        Some(Kind::NumberValue(n)) => {
            serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
        }
        Some(Kind::StringValue(s)) => Value::String(s),
        Some(Kind::ListValue(l)) => Value::Array(l.values.into_iter().map(value_from_pb).collect()),
        Some(Kind::StructValue(s)) => Value::Object(
            s.fields
                .into_iter()
                .map(|(k, v)| (k, value_from_pb(v)))
                .collect(),
        ),
    }
}

// ------------------------------------------------------------------ Seldon v1 messages

fn meta_from_pb(m: sp::Meta) -> w1::Meta {
    w1::Meta {
        puid: m.puid,
        tags: m
            .tags
            .into_iter()
            .map(|(k, v)| (k, value_from_pb(v)))
            .collect(),
        routing: m.routing.into_iter().collect(),
        request_path: m.request_path.into_iter().collect(),
        metrics: m
            .metrics
            .into_iter()
            .map(|x| w1::Metric {
                key: x.key,
                metric_type: w1::MetricType::from_number(i64::from(x.r#type)).unwrap_or_default(),
                value: x.value,
                tags: x.tags.into_iter().collect(),
            })
            .collect(),
    }
}

fn meta_to_pb(m: w1::Meta) -> sp::Meta {
    sp::Meta {
        puid: m.puid,
        tags: m
            .tags
            .into_iter()
            .map(|(k, v)| (k, value_to_pb(v)))
            .collect(),
        routing: m.routing.into_iter().collect(),
        request_path: m.request_path.into_iter().collect(),
        metrics: m
            .metrics
            .into_iter()
            .map(|x| sp::Metric {
                key: x.key,
                r#type: x.metric_type.number(),
                value: x.value,
                tags: x.tags.into_iter().collect(),
            })
            .collect(),
    }
}

fn tf_from_pb(t: pb::tensorflow::TensorProto) -> w1::TfTensor {
    w1::TfTensor {
        dtype: w1::TfDataType::from_number(i64::from(t.dtype)).unwrap_or_default(),
        tensor_shape: t.tensor_shape.map(|s| w1::TfTensorShape {
            dim: s
                .dim
                .into_iter()
                .map(|d| w1::TfDim {
                    size: d.size,
                    name: d.name,
                })
                .collect(),
            unknown_rank: s.unknown_rank,
        }),
        tensor_content: t.tensor_content,
        half_val: t.half_val,
        float_val: t.float_val,
        double_val: t.double_val,
        int_val: t.int_val,
        string_val: t.string_val,
        int64_val: t.int64_val,
        bool_val: t.bool_val,
        uint32_val: t.uint32_val,
        uint64_val: t.uint64_val,
        ..w1::TfTensor::default()
    }
}

fn tf_to_pb(t: w1::TfTensor) -> pb::tensorflow::TensorProto {
    pb::tensorflow::TensorProto {
        dtype: t.dtype.number(),
        tensor_shape: t.tensor_shape.map(|s| pb::tensorflow::TensorShapeProto {
            dim: s
                .dim
                .into_iter()
                .map(|d| pb::tensorflow::tensor_shape_proto::Dim {
                    size: d.size,
                    name: d.name,
                })
                .collect(),
            unknown_rank: s.unknown_rank,
        }),
        tensor_content: t.tensor_content,
        half_val: t.half_val,
        float_val: t.float_val,
        double_val: t.double_val,
        int_val: t.int_val,
        string_val: t.string_val,
        int64_val: t.int64_val,
        bool_val: t.bool_val,
        uint32_val: t.uint32_val,
        uint64_val: t.uint64_val,
        ..Default::default()
    }
}

/// Seldon protobuf message → wire type.
pub fn msg_from_pb(m: sp::SeldonMessage) -> w1::SeldonMessage {
    use sp::default_data::DataOneof as D;
    use sp::seldon_message::DataOneof as M;
    let mut out = w1::SeldonMessage {
        status: m.status.map(|s| w1::Status {
            code: s.code,
            info: s.info,
            reason: s.reason,
            status: w1::StatusFlag::from_number(i64::from(s.status)).unwrap_or_default(),
        }),
        meta: m.meta.map(meta_from_pb),
        ..w1::SeldonMessage::default()
    };
    match m.data_oneof {
        Some(M::Data(d)) => {
            let mut data = w1::DefaultData {
                names: d.names,
                ..w1::DefaultData::default()
            };
            match d.data_oneof {
                Some(D::Tensor(t)) => {
                    data.tensor = Some(w1::Tensor {
                        shape: t.shape,
                        values: t.values,
                    })
                }
                Some(D::Ndarray(l)) => {
                    data.ndarray = Some(l.values.into_iter().map(value_from_pb).collect())
                }
                Some(D::Tftensor(t)) => data.tftensor = Some(tf_from_pb(t)),
                None => {}
            }
            out.data = Some(data);
        }
        Some(M::BinData(b)) => out.bin_data = Some(b),
        Some(M::StrData(s)) => out.str_data = Some(s),
        Some(M::JsonData(j)) => out.json_data = Some(value_from_pb(j)),
        Some(M::CustomData(a)) => out.custom_data = Some(serde_json::json!({"@type": a.type_url})),
        None => {}
    }
    out
}

/// Wire type → Seldon protobuf message.
pub fn msg_to_pb(m: w1::SeldonMessage) -> sp::SeldonMessage {
    use sp::default_data::DataOneof as D;
    use sp::seldon_message::DataOneof as M;
    let data_oneof = if let Some(d) = m.data {
        let inner = if let Some(t) = d.tensor {
            Some(D::Tensor(sp::Tensor {
                shape: t.shape,
                values: t.values,
            }))
        } else if let Some(nd) = d.ndarray {
            Some(D::Ndarray(prost_types::ListValue {
                values: nd.into_iter().map(value_to_pb).collect(),
            }))
        } else {
            d.tftensor.map(|t| D::Tftensor(tf_to_pb(t)))
        };
        Some(M::Data(sp::DefaultData {
            names: d.names,
            data_oneof: inner,
        }))
    } else if let Some(b) = m.bin_data {
        Some(M::BinData(b))
    } else if let Some(s) = m.str_data {
        Some(M::StrData(s))
    } else {
        m.json_data.map(|j| M::JsonData(value_to_pb(j)))
    };
    sp::SeldonMessage {
        status: m.status.map(|s| sp::Status {
            code: s.code,
            info: s.info,
            reason: s.reason,
            status: s.status.number(),
        }),
        meta: m.meta.map(meta_to_pb),
        data_oneof,
    }
}

fn feedback_from_pb(f: sp::Feedback) -> w1::Feedback {
    w1::Feedback {
        request: f.request.map(msg_from_pb),
        response: f.response.map(msg_from_pb),
        reward: f.reward,
        truth: f.truth.map(msg_from_pb),
    }
}

fn metadata_to_pb(md: w1::ModelMetadata) -> sp::SeldonModelMetadata {
    let conv = |list: Vec<w1::MessageMetadata>| {
        list.into_iter()
            .map(|m| sp::SeldonMessageMetadata {
                messagetype: m.messagetype.unwrap_or_default(),
                schema: m.schema.map(value_to_pb),
                name: m.name.unwrap_or_default(),
                datatype: m.datatype.unwrap_or_default(),
                shape: m.shape.unwrap_or_default(),
            })
            .collect()
    };
    sp::SeldonModelMetadata {
        name: md.name,
        versions: md.versions,
        platform: md.platform,
        inputs: conv(md.inputs),
        outputs: conv(md.outputs),
        custom: md.custom.into_iter().collect(),
    }
}

/// The Seldon services, all backed by one [`Service`].
#[derive(Debug, Clone)]
pub struct SeldonGrpc(pub Service);

impl SeldonGrpc {
    async fn call(
        &self,
        hook: Hook,
        r: Request<sp::SeldonMessage>,
    ) -> Result<Response<sp::SeldonMessage>, Status> {
        let msg = r.into_inner();
        let service = self.0.clone();
        let out = on_pool(msg.encoded_len(), async move {
            Ok::<_, Status>(msg_to_pb(service.call_v1(hook, msg_from_pb(msg)).await?))
        })
        .await?;
        Ok(Response::new(out))
    }
    async fn aggregate(
        &self,
        r: Request<sp::SeldonMessageList>,
    ) -> Result<Response<sp::SeldonMessage>, Status> {
        let list = r.into_inner();
        let service = self.0.clone();
        let out = on_pool(list.encoded_len(), async move {
            let list = w1::SeldonMessageList {
                seldon_messages: list.seldon_messages.into_iter().map(msg_from_pb).collect(),
            };
            Ok::<_, Status>(msg_to_pb(service.aggregate_v1(list).await?))
        })
        .await?;
        Ok(Response::new(out))
    }
    async fn feedback(
        &self,
        r: Request<sp::Feedback>,
    ) -> Result<Response<sp::SeldonMessage>, Status> {
        Ok(Response::new(msg_to_pb(
            self.0.feedback_v1(feedback_from_pb(r.into_inner())).await?,
        )))
    }
}

type R<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl sp::model_server::Model for SeldonGrpc {
    async fn predict(&self, r: Request<sp::SeldonMessage>) -> R<sp::SeldonMessage> {
        self.call(Hook::Predict, r).await
    }
    async fn send_feedback(&self, r: Request<sp::Feedback>) -> R<sp::SeldonMessage> {
        self.feedback(r).await
    }
    async fn metadata(&self, _: Request<()>) -> R<sp::SeldonModelMetadata> {
        Ok(Response::new(metadata_to_pb(self.0.metadata_v1())))
    }
}

#[tonic::async_trait]
impl sp::generic_server::Generic for SeldonGrpc {
    async fn transform_input(&self, r: Request<sp::SeldonMessage>) -> R<sp::SeldonMessage> {
        self.call(Hook::TransformInput, r).await
    }
    async fn transform_output(&self, r: Request<sp::SeldonMessage>) -> R<sp::SeldonMessage> {
        self.call(Hook::TransformOutput, r).await
    }
    async fn route(&self, r: Request<sp::SeldonMessage>) -> R<sp::SeldonMessage> {
        self.call(Hook::Route, r).await
    }
    async fn aggregate(&self, r: Request<sp::SeldonMessageList>) -> R<sp::SeldonMessage> {
        SeldonGrpc::aggregate(self, r).await
    }
    async fn send_feedback(&self, r: Request<sp::Feedback>) -> R<sp::SeldonMessage> {
        self.feedback(r).await
    }
}

#[tonic::async_trait]
impl sp::router_server::Router for SeldonGrpc {
    async fn route(&self, r: Request<sp::SeldonMessage>) -> R<sp::SeldonMessage> {
        self.call(Hook::Route, r).await
    }
    async fn send_feedback(&self, r: Request<sp::Feedback>) -> R<sp::SeldonMessage> {
        self.feedback(r).await
    }
}

#[tonic::async_trait]
impl sp::transformer_server::Transformer for SeldonGrpc {
    async fn transform_input(&self, r: Request<sp::SeldonMessage>) -> R<sp::SeldonMessage> {
        self.call(Hook::TransformInput, r).await
    }
}

#[tonic::async_trait]
impl sp::output_transformer_server::OutputTransformer for SeldonGrpc {
    async fn transform_output(&self, r: Request<sp::SeldonMessage>) -> R<sp::SeldonMessage> {
        self.call(Hook::TransformOutput, r).await
    }
}

#[tonic::async_trait]
impl sp::combiner_server::Combiner for SeldonGrpc {
    async fn aggregate(&self, r: Request<sp::SeldonMessageList>) -> R<sp::SeldonMessage> {
        SeldonGrpc::aggregate(self, r).await
    }
}

#[tonic::async_trait]
impl sp::seldon_server::Seldon for SeldonGrpc {
    async fn predict(&self, r: Request<sp::SeldonMessage>) -> R<sp::SeldonMessage> {
        self.call(Hook::Predict, r).await
    }
    async fn send_feedback(&self, r: Request<sp::Feedback>) -> R<sp::SeldonMessage> {
        self.feedback(r).await
    }
    async fn model_metadata(
        &self,
        _: Request<sp::SeldonModelMetadataRequest>,
    ) -> R<sp::SeldonModelMetadata> {
        Ok(Response::new(metadata_to_pb(self.0.metadata_v1())))
    }
    async fn graph_metadata(&self, _: Request<()>) -> R<sp::SeldonGraphMetadata> {
        let md = metadata_to_pb(self.0.metadata_v1());
        Ok(Response::new(sp::SeldonGraphMetadata {
            name: self.0.model_name.clone(),
            inputs: md.inputs.clone(),
            outputs: md.outputs.clone(),
            models: HashMap::from([(self.0.model_name.clone(), md)]),
        }))
    }
}

// ------------------------------------------------------------------ Open Inference Protocol

fn param_from_pb(p: inf::InferParameter) -> Value {
    use inf::infer_parameter::ParameterChoice as P;
    match p.parameter_choice {
        Some(P::BoolParam(b)) => Value::Bool(b),
        Some(P::Int64Param(i)) => Value::from(i),
        Some(P::StringParam(s)) => Value::String(s),
        Some(P::DoubleParam(d)) => Value::from(d),
        Some(P::Uint64Param(u)) => Value::from(u),
        None => Value::Null,
    }
}

fn param_to_pb(v: Value) -> inf::InferParameter {
    use inf::infer_parameter::ParameterChoice as P;
    let choice = match v {
        Value::Bool(b) => P::BoolParam(b),
        Value::Number(n) if n.is_i64() => P::Int64Param(n.as_i64().unwrap_or_default()),
        Value::Number(n) if n.is_u64() => P::Uint64Param(n.as_u64().unwrap_or_default()),
        Value::Number(n) => P::DoubleParam(n.as_f64().unwrap_or_default()),
        Value::String(s) => P::StringParam(s),
        other => P::StringParam(other.to_string()),
    };
    inf::InferParameter {
        parameter_choice: Some(choice),
    }
}

fn params_from_pb(p: HashMap<String, inf::InferParameter>) -> Option<BTreeMap<String, Value>> {
    (!p.is_empty()).then(|| p.into_iter().map(|(k, v)| (k, param_from_pb(v))).collect())
}

fn bad(msg: impl Into<String>) -> Status {
    Status::invalid_argument(msg.into())
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn contents_to_data(dt: Datatype, c: inf::InferTensorContents) -> TensorData {
    match dt {
        Datatype::Bool => TensorData::Bool(c.bool_contents),
        Datatype::Uint8 => TensorData::Uint8(c.uint_contents.iter().map(|v| *v as u8).collect()),
        Datatype::Uint16 => TensorData::Uint16(c.uint_contents.iter().map(|v| *v as u16).collect()),
        Datatype::Uint32 => TensorData::Uint32(c.uint_contents),
        Datatype::Uint64 => TensorData::Uint64(c.uint64_contents),
        Datatype::Int8 => TensorData::Int8(c.int_contents.iter().map(|v| *v as i8).collect()),
        Datatype::Int16 => TensorData::Int16(c.int_contents.iter().map(|v| *v as i16).collect()),
        Datatype::Int32 => TensorData::Int32(c.int_contents),
        Datatype::Int64 => TensorData::Int64(c.int64_contents),
        Datatype::Fp16 => TensorData::Fp16(Vec::new()),
        Datatype::Fp32 => TensorData::Fp32(c.fp32_contents),
        Datatype::Fp64 => TensorData::Fp64(c.fp64_contents),
        Datatype::Bytes => TensorData::Bytes(c.bytes_contents),
    }
}

fn data_to_contents(d: TensorData) -> inf::InferTensorContents {
    let mut c = inf::InferTensorContents::default();
    match d {
        TensorData::Bool(v) => c.bool_contents = v,
        TensorData::Uint8(v) => c.uint_contents = v.into_iter().map(u32::from).collect(),
        TensorData::Uint16(v) | TensorData::Fp16(v) => {
            c.uint_contents = v.into_iter().map(u32::from).collect()
        }
        TensorData::Uint32(v) => c.uint_contents = v,
        TensorData::Uint64(v) => c.uint64_contents = v,
        TensorData::Int8(v) => c.int_contents = v.into_iter().map(i32::from).collect(),
        TensorData::Int16(v) => c.int_contents = v.into_iter().map(i32::from).collect(),
        TensorData::Int32(v) => c.int_contents = v,
        TensorData::Int64(v) => c.int64_contents = v,
        TensorData::Fp32(v) => c.fp32_contents = v,
        TensorData::Fp64(v) => c.fp64_contents = v,
        TensorData::Bytes(v) => c.bytes_contents = v,
    }
    c
}

/// gRPC infer request → wire request (typed `contents` or `raw_input_contents`).
pub fn infer_request_from_pb(r: inf::ModelInferRequest) -> Result<w2::InferenceRequest, Status> {
    let raw = r.raw_input_contents;
    if !raw.is_empty() && raw.len() != r.inputs.len() {
        return Err(bad(format!(
            "{} raw_input_contents for {} inputs",
            raw.len(),
            r.inputs.len()
        )));
    }
    let mut inputs = Vec::with_capacity(r.inputs.len());
    for (i, t) in r.inputs.into_iter().enumerate() {
        let dt = crate::v2::datatype(&t.datatype).ok_or_else(|| {
            bad(format!(
                "input `{}`: unknown datatype `{}`",
                t.name, t.datatype
            ))
        })?;
        let data = if let Some(bytes) = raw.get(i) {
            TensorData::from_le_bytes(dt, bytes)
                .map_err(|e| bad(format!("input `{}`: {e}", t.name)))?
        } else if dt == Datatype::Fp16 {
            return Err(bad(format!(
                "input `{}`: FP16 needs raw_input_contents",
                t.name
            )));
        } else {
            contents_to_data(dt, t.contents.unwrap_or_default())
        };
        let shape = t
            .shape
            .iter()
            .map(|d| {
                u64::try_from(*d)
                    .map_err(|_| bad(format!("input `{}`: negative dimension", t.name)))
            })
            .collect::<Result<_, _>>()?;
        let mut tensor =
            w2::InferTensor::new(t.name, shape, data).map_err(|e| bad(e.to_string()))?;
        tensor.parameters = params_from_pb(t.parameters);
        inputs.push(tensor);
    }
    Ok(w2::InferenceRequest {
        id: (!r.id.is_empty()).then_some(r.id),
        parameters: params_from_pb(r.parameters),
        inputs,
        outputs: None,
    })
}

/// Wire response → gRPC infer response (typed `contents`).
pub fn infer_response_to_pb(r: w2::InferenceResponse) -> inf::ModelInferResponse {
    inf::ModelInferResponse {
        model_name: r.model_name,
        model_version: r.model_version.unwrap_or_default(),
        id: r.id.unwrap_or_default(),
        parameters: r
            .parameters
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, param_to_pb(v)))
            .collect(),
        outputs: r
            .outputs
            .into_iter()
            .map(|o| inf::model_infer_response::InferOutputTensor {
                name: o.name,
                datatype: o.datatype.as_str().into(),
                shape: o
                    .shape
                    .iter()
                    .map(|d| i64::try_from(*d).unwrap_or(i64::MAX))
                    .collect(),
                parameters: HashMap::new(),
                contents: o.data.map(data_to_contents),
            })
            .collect(),
        raw_output_contents: Vec::new(),
    }
}

/// `inference.GRPCInferenceService` over one [`Service`].
#[derive(Debug, Clone)]
pub struct InferenceGrpc(pub Service);

fn version(v: &str) -> Option<&str> {
    (!v.is_empty()).then_some(v)
}

#[tonic::async_trait]
impl inf::grpc_inference_service_server::GrpcInferenceService for InferenceGrpc {
    async fn server_live(&self, _: Request<inf::ServerLiveRequest>) -> R<inf::ServerLiveResponse> {
        Ok(Response::new(inf::ServerLiveResponse { live: true }))
    }
    async fn server_ready(
        &self,
        _: Request<inf::ServerReadyRequest>,
    ) -> R<inf::ServerReadyResponse> {
        Ok(Response::new(inf::ServerReadyResponse {
            ready: self.0.model.ready(),
        }))
    }
    async fn model_ready(&self, r: Request<inf::ModelReadyRequest>) -> R<inf::ModelReadyResponse> {
        let r = r.into_inner();
        let ready = self.0.ready_v2(&r.name, version(&r.version))?;
        Ok(Response::new(inf::ModelReadyResponse { ready }))
    }
    async fn server_metadata(
        &self,
        _: Request<inf::ServerMetadataRequest>,
    ) -> R<inf::ServerMetadataResponse> {
        Ok(Response::new(inf::ServerMetadataResponse {
            name: "seldon-serving".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: vec![w2::binary::EXTENSION.into()],
        }))
    }
    async fn model_metadata(
        &self,
        r: Request<inf::ModelMetadataRequest>,
    ) -> R<inf::ModelMetadataResponse> {
        let r = r.into_inner();
        let md = self.0.metadata_v2(&r.name, version(&r.version))?;
        let conv = |l: Vec<w2::MetadataTensor>| {
            l.into_iter()
                .map(|t| inf::model_metadata_response::TensorMetadata {
                    name: t.name,
                    datatype: t.datatype.as_str().into(),
                    shape: t.shape,
                })
                .collect()
        };
        Ok(Response::new(inf::ModelMetadataResponse {
            name: md.name,
            versions: md.versions.unwrap_or_default(),
            platform: md.platform,
            inputs: conv(md.inputs),
            outputs: conv(md.outputs),
        }))
    }
    async fn model_infer(&self, r: Request<inf::ModelInferRequest>) -> R<inf::ModelInferResponse> {
        let r = r.into_inner();
        let (name, ver) = (r.model_name.clone(), r.model_version.clone());
        self.0.check_model(&name, version(&ver))?;
        let service = self.0.clone();
        let out = on_pool(r.encoded_len(), async move {
            let request = infer_request_from_pb(r)?;
            let response = service.infer_v2(&name, version(&ver), request).await?;
            Ok::<_, Status>(infer_response_to_pb(response))
        })
        .await?;
        Ok(Response::new(out))
    }
}

/// All gRPC services on one router.
pub fn routes(service: Service, max_message_bytes: usize) -> tonic::service::Routes {
    let seldon = SeldonGrpc(service.clone());
    tonic::service::Routes::new(
        inf::grpc_inference_service_server::GrpcInferenceServiceServer::new(InferenceGrpc(service))
            .max_decoding_message_size(max_message_bytes),
    )
    .add_service(
        sp::model_server::ModelServer::new(seldon.clone())
            .max_decoding_message_size(max_message_bytes),
    )
    .add_service(
        sp::generic_server::GenericServer::new(seldon.clone())
            .max_decoding_message_size(max_message_bytes),
    )
    .add_service(
        sp::router_server::RouterServer::new(seldon.clone())
            .max_decoding_message_size(max_message_bytes),
    )
    .add_service(
        sp::transformer_server::TransformerServer::new(seldon.clone())
            .max_decoding_message_size(max_message_bytes),
    )
    .add_service(
        sp::output_transformer_server::OutputTransformerServer::new(seldon.clone())
            .max_decoding_message_size(max_message_bytes),
    )
    .add_service(
        sp::combiner_server::CombinerServer::new(seldon.clone())
            .max_decoding_message_size(max_message_bytes),
    )
    .add_service(
        sp::seldon_server::SeldonServer::new(seldon).max_decoding_message_size(max_message_bytes),
    )
}
