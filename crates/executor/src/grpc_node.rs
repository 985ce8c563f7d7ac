//! Calling a node over gRPC (`transport: grpc`, `endpoint.type: GRPC`; issue 12, item 2).
//!
//! The graph runs on REST JSON inside the executor; at a gRPC node the JSON is turned into
//! the node's protobuf message, framed, and POSTed to the method Seldon's executor calls for
//! that step (`executor/api/grpc/seldon/client.go`), over the node's HTTP/2 cluster. The
//! answer's `grpc-status` (trailers, or the headers of a trailers-only answer) decides:
//! 0 and the one framed message is turned back into the JSON the next step expects; any
//! other code is [`Failure::NodeGrpcStatus`] naming the node; a missing status or a
//! malformed frame is a 502 naming it.
//!
//! | node | step | method | message in → out |
//! |---|---|---|---|
//! | seldon | `Predict` | `/seldon.protos.Model/Predict` | SeldonMessage → SeldonMessage |
//! | seldon | `TransformInput` | `/seldon.protos.Transformer/TransformInput` | SeldonMessage → SeldonMessage |
//! | seldon | `TransformOutput` | `/seldon.protos.OutputTransformer/TransformOutput` | SeldonMessage → SeldonMessage |
//! | seldon | `Route` | `/seldon.protos.Router/Route` | SeldonMessage → SeldonMessage |
//! | seldon | `Aggregate` | `/seldon.protos.Combiner/Aggregate` | SeldonMessageList → SeldonMessage |
//! | seldon | `SendFeedback` | `/seldon.protos.Router/SendFeedback` (routers), else `/seldon.protos.Model/SendFeedback` | Feedback → SeldonMessage |
//! | seldon | `Ready` | `/seldon.protos.Model/Metadata` (Empty): any gRPC answer, `UNIMPLEMENTED` included, is ready — the server is up and speaks gRPC (Seldon's own probe of a gRPC node is a TCP check of its port) | |
//! | v2 | `Predict`, `TransformInput`, `TransformOutput` | `/inference.GRPCInferenceService/ModelInfer` | ModelInferRequest → ModelInferResponse |
//! | v2 | `Ready`, `Status` | `/inference.GRPCInferenceService/ModelReady` | ModelReadyRequest → `{"name","ready"}` |
//! | v2 | `Metadata` | `/inference.GRPCInferenceService/ModelMetadata` | ModelMetadataRequest → v2 metadata JSON |
//!
//! Not over gRPC (the call fails naming the node, 500 `DISPATCH_FAILED`): a seldon node's
//! `Metadata` (its `SeldonModelMetadata` has no JSON form here) and `Status` (Seldon's gRPC
//! API has no health status call), so `/api/v1.0/metadata` and `/api/v1.0/status/<node>`
//! need REST nodes.

use seldon_graph::{PlanNode, PredictiveUnitType, Protocol};
use seldon_protocol::ProtocolError;
use seldon_protocol::grpc::{self, method};
use seldon_protocol::grpc_v2;

use crate::failure::Failure;
use crate::host::{CallResponse, find_header};
use crate::service::Service;

/// The gRPC method called on `node` for `service`; `None` when there is none (see the module
/// doc).
pub(crate) fn method_of(node: &PlanNode, service: Service) -> Option<&'static str> {
    match (node.protocol, service) {
        (Protocol::Seldon, Service::Predict) => Some(method::MODEL_PREDICT),
        (Protocol::Seldon, Service::TransformInput) => Some(method::TRANSFORMER_TRANSFORM_INPUT),
        (Protocol::Seldon, Service::TransformOutput) => {
            Some(method::OUTPUT_TRANSFORMER_TRANSFORM_OUTPUT)
        }
        (Protocol::Seldon, Service::Route) => Some(method::ROUTER_ROUTE),
        (Protocol::Seldon, Service::Aggregate) => Some(method::COMBINER_AGGREGATE),
        (Protocol::Seldon, Service::SendFeedback)
            if node.unit_type == Some(PredictiveUnitType::Router) =>
        {
            Some(method::ROUTER_SEND_FEEDBACK)
        }
        (Protocol::Seldon, Service::SendFeedback) => Some(method::MODEL_SEND_FEEDBACK),
        (Protocol::Seldon, Service::Ready) => Some("/seldon.protos.Model/Metadata"),
        (Protocol::V2, Service::Predict | Service::TransformInput | Service::TransformOutput) => {
            Some(method::MODEL_INFER)
        }
        (Protocol::V2, Service::Ready | Service::Status) => Some(method::MODEL_READY),
        (Protocol::V2, Service::Metadata) => Some(method::MODEL_METADATA),
        _ => None,
    }
}

/// The framed request for `service` on `node`: the step's REST JSON (`json`) as the node's
/// protobuf message. Probes (`Ready`, `Status`, `Metadata`) take no JSON.
pub(crate) fn request(
    node: &PlanNode,
    service: Service,
    json: &[u8],
) -> Result<Vec<u8>, ProtocolError> {
    let pb = match (node.protocol, service) {
        (Protocol::V2, Service::Ready | Service::Status | Service::Metadata) => {
            grpc_v2::model_ref_request(&node.name, "")
        }
        (Protocol::V2, _) => grpc_v2::infer_request_from_json(json, &node.name, "")?,
        (_, Service::Ready | Service::Status | Service::Metadata) => Vec::new(),
        (_, Service::Aggregate) => grpc::seldon_message_list_from_json(json)?,
        (_, Service::SendFeedback) => grpc::feedback_from_json(json)?,
        (_, _) => grpc::seldon_message_from_json(json)?,
    };
    Ok(grpc::frame(&pb))
}

/// A gRPC node's answer as the REST answer the rest of the executor checks: `200` with the
/// message's JSON, or Envoy's own 503/504 passed on for `check` to name; a non-zero
/// `grpc-status` is [`Failure::NodeGrpcStatus`] (for a readiness probe [`Failure::NotReady`]),
/// a missing status or a malformed frame [`Failure::BadOutput`], all naming the node.
/// `response.headers` are the answer's headers followed by its trailers.
pub(crate) fn answer(
    node: &PlanNode,
    service: Service,
    response: CallResponse,
) -> Result<CallResponse, Failure> {
    let Some(status) = response.status else {
        return Ok(response);
    };
    let from_upstream = response.header("x-envoy-upstream-service-time").is_some();
    let code = find_header(&response.headers, "grpc-status").map(str::to_string);
    let message = find_header(&response.headers, "grpc-message")
        .map(percent_decode)
        .unwrap_or_default();
    if !from_upstream {
        // Envoy's own answer to a gRPC call it could not make: trailers-only, 200 with
        // UNAVAILABLE (connect failure) or DEADLINE_EXCEEDED (timeout), or a plain 503/504.
        let envoy_status = match code.as_deref() {
            Some("14") => Some(503),
            Some("4") => Some(504),
            _ if matches!(status, 503 | 504) => Some(status),
            _ => None,
        };
        if let Some(s) = envoy_status {
            let body = if message.is_empty() {
                response.body
            } else {
                message.into_bytes()
            };
            return Ok(CallResponse {
                status: Some(s),
                headers: Vec::new(),
                body,
            });
        }
    }
    if status != 200 {
        // Not a gRPC answer (a proxy's or a REST server's): its status, for `check`.
        return Ok(response);
    }
    let name = node.name.clone();
    let bad = |detail: String| Failure::BadOutput {
        node: name.clone(),
        service,
        detail,
    };
    let code: u32 = match code.as_deref().map(str::parse) {
        Some(Ok(c)) => c,
        Some(Err(_)) | None => {
            return Err(bad(format!(
                "its gRPC answer has no valid grpc-status (got {:?})",
                code.unwrap_or_default()
            )));
        }
    };
    let seldon_ready = node.protocol == Protocol::Seldon && service == Service::Ready;
    if code != 0 && !(seldon_ready && code == 12) {
        if service == Service::Ready {
            return Err(Failure::NotReady {
                node: name,
                status: format!("gRPC status {code} {}", code_name(code)),
            });
        }
        return Err(Failure::NodeGrpcStatus {
            node: name,
            service,
            code,
            message,
        });
    }
    let json = if seldon_ready {
        b"{}".to_vec()
    } else {
        let pb = grpc::unframe(&response.body)
            .map_err(|e| bad(format!("its gRPC answer is malformed: {e}")))?;
        let json = match (node.protocol, service) {
            (Protocol::V2, Service::Ready | Service::Status) => {
                let ready = grpc_v2::bool_response(pb)
                    .map_err(|e| bad(format!("its ModelReadyResponse is malformed: {e}")))?;
                if !ready {
                    return Err(Failure::NotReady {
                        node: name,
                        status: "ModelReadyResponse.ready false".into(),
                    });
                }
                Ok(serde_json::json!({"name": node.name, "ready": true})
                    .to_string()
                    .into_bytes())
            }
            (Protocol::V2, Service::Metadata) => grpc_v2::model_metadata_response_to_json(pb),
            (Protocol::V2, _) => grpc_v2::infer_response_to_json(pb),
            (_, _) => grpc::seldon_message_to_json(pb),
        };
        json.map_err(|e| bad(format!("its gRPC answer does not convert to JSON: {e}")))?
    };
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    if from_upstream {
        headers.push(("x-envoy-upstream-service-time".into(), "0".into()));
    }
    Ok(CallResponse {
        status: Some(200),
        headers,
        body: json,
    })
}

/// The HTTP status a node's gRPC status becomes for a REST client (gRPC's mapping, inverse
/// of `failure::grpc_code`).
pub(crate) fn http_status(code: u32) -> u16 {
    match code {
        0 => 200,
        1 => 499,
        3 | 9 | 11 => 400,
        4 => 504,
        5 => 404,
        6 | 10 => 409,
        7 => 403,
        8 => 429,
        12 => 501,
        14 => 503,
        16 => 401,
        _ => 500,
    }
}

/// gRPC's name for a status code.
pub(crate) fn code_name(code: u32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    }
}

/// `grpc-message` is percent-encoded (gRPC over HTTP/2); invalid escapes stay as they are.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let v = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use seldon_graph::{NodeUpstream, RouteStep, Transport};

    fn node(protocol: Protocol, unit_type: PredictiveUnitType) -> PlanNode {
        PlanNode {
            name: "m".into(),
            unit_type: Some(unit_type),
            input: None,
            route: RouteStep::AllChildren,
            aggregate: false,
            transform_output: false,
            send_feedback: false,
            children: Vec::new(),
            parent: None,
            upstream: Some(NodeUpstream {
                cluster: "m".into(),
                authority: "m".into(),
                port: 9500,
                transport: Transport::Grpc,
                protocol: None,
                timeout_ms: 100,
            }),
            protocol,
            transport: Transport::Grpc,
            receives: protocol,
            returns: protocol,
            logger: None,
        }
    }

    fn grpc_answer(code: &str, body: Vec<u8>) -> CallResponse {
        CallResponse {
            status: Some(200),
            headers: vec![
                ("content-type".into(), "application/grpc".into()),
                ("x-envoy-upstream-service-time".into(), "1".into()),
                ("grpc-status".into(), code.into()),
                ("grpc-message".into(), "model%20broke: 100%25".into()),
            ],
            body,
        }
    }

    #[test]
    fn methods_follow_seldons_executor_and_metadata_of_seldon_nodes_has_none() {
        let model = node(Protocol::Seldon, PredictiveUnitType::Model);
        let router = node(Protocol::Seldon, PredictiveUnitType::Router);
        assert_eq!(
            method_of(&model, Service::Predict),
            Some("/seldon.protos.Model/Predict")
        );
        assert_eq!(
            method_of(&router, Service::SendFeedback),
            Some("/seldon.protos.Router/SendFeedback")
        );
        assert_eq!(
            method_of(&model, Service::SendFeedback),
            Some("/seldon.protos.Model/SendFeedback")
        );
        assert_eq!(method_of(&model, Service::Metadata), None);
        assert_eq!(method_of(&model, Service::Status), None);
        let v2 = node(Protocol::V2, PredictiveUnitType::Model);
        assert_eq!(
            method_of(&v2, Service::TransformInput),
            Some("/inference.GRPCInferenceService/ModelInfer")
        );
        assert_eq!(method_of(&v2, Service::Route), None);
    }

    #[test]
    fn a_request_that_has_no_protobuf_form_is_refused() {
        let model = node(Protocol::Seldon, PredictiveUnitType::Model);
        let framed = request(&model, Service::Predict, br#"{"strData":"hi"}"#).unwrap();
        assert_eq!(grpc::unframe(&framed).unwrap(), [0x2a, 2, b'h', b'i']);
        let err = request(&model, Service::Predict, br#"{"customData":{}}"#).unwrap_err();
        assert!(err.to_string().contains("customData"), "{err}");
        let v2 = node(Protocol::V2, PredictiveUnitType::Model);
        assert!(request(&v2, Service::Predict, b"{}").is_err());
        let probe = request(&v2, Service::Ready, b"").unwrap();
        assert_eq!(
            grpc_v2::model_ref(grpc::unframe(&probe).unwrap())
                .unwrap()
                .name,
            "m"
        );
    }

    #[test]
    fn an_ok_answer_becomes_json_and_bad_ones_name_the_node() {
        let model = node(Protocol::Seldon, PredictiveUnitType::Model);
        let pb = grpc::seldon_message_from_json(br#"{"strData":"ok"}"#).unwrap();
        let r = answer(&model, Service::Predict, grpc_answer("0", grpc::frame(&pb))).unwrap();
        assert_eq!(
            (r.status, r.body.as_slice()),
            (Some(200), &br#"{"strData":"ok"}"#[..])
        );

        let f = answer(&model, Service::Predict, grpc_answer("13", Vec::new())).unwrap_err();
        assert_eq!(
            f,
            Failure::NodeGrpcStatus {
                node: "m".into(),
                service: Service::Predict,
                code: 13,
                message: "model broke: 100%".into(),
            }
        );
        let f = answer(
            &model,
            Service::Predict,
            grpc_answer("0", vec![0, 0, 0, 0, 9, 1]),
        );
        let text = f.unwrap_err().to_string();
        assert!(
            text.contains("node `m`") && text.contains("malformed"),
            "{text}"
        );
        let f = answer(&model, Service::Predict, grpc_answer("x", Vec::new()));
        assert!(f.unwrap_err().to_string().contains("grpc-status"));
    }

    #[test]
    fn envoys_own_answers_and_readiness_map_to_rest_statuses() {
        let model = node(Protocol::Seldon, PredictiveUnitType::Model);
        let mut unreachable = grpc_answer("14", Vec::new());
        unreachable
            .headers
            .retain(|(k, _)| k != "x-envoy-upstream-service-time");
        let r = answer(&model, Service::Predict, unreachable).unwrap();
        assert_eq!(r.status, Some(503));
        assert_eq!(r.body, b"model broke: 100%");
        // UNIMPLEMENTED on the probe: the server is up.
        let r = answer(&model, Service::Ready, grpc_answer("12", Vec::new())).unwrap();
        assert_eq!(r.status, Some(200));
        let v2 = node(Protocol::V2, PredictiveUnitType::Model);
        let not_ready = grpc::frame(&grpc_v2::model_ready_response(false));
        let f = answer(&v2, Service::Ready, grpc_answer("0", not_ready)).unwrap_err();
        assert!(matches!(f, Failure::NotReady { .. }), "{f:?}");
        assert_eq!(http_status(14), 503);
        assert_eq!(http_status(3), 400);
        assert_eq!(http_status(99), 500);
        assert_eq!(code_name(99), "UNKNOWN");
    }
}
