//! The spec against the code that produces what it documents: every error the filter makes
//! (`seldon_executor::Failure::to_response`) and every canonical payload of
//! `crates/protocol/testdata` must match the spec's schemas.
//!
//! The `match` in `every_failure` lists every `Failure` variant: a new one fails to compile
//! here until it is added to the spec's `FilterError.reason` and to this list.

use seldon_apidocs::{CheckError, check_request, check_response, spec};
use seldon_executor::{Failure, NoEndpoint, Service};
use seldon_graph::Protocol;
use serde_json::Value;

fn every_failure() -> Vec<Failure> {
    let node = || "classifier".to_string();
    let all = vec![
        Failure::NodeStatus {
            node: node(),
            status: 500,
            content_type: Some("application/json".into()),
            body:
                br#"{"status":{"code":500,"info":"boom","reason":"NODE_ERROR","status":"FAILURE"}}"#
                    .to_vec(),
        },
        Failure::NodeGrpcStatus {
            node: node(),
            service: Service::Predict,
            code: 13,
            message: "model raised".into(),
        },
        Failure::Unreachable {
            node: node(),
            service: Service::Predict,
            detail: "connection refused".into(),
        },
        Failure::Timeout {
            node: node(),
            service: Service::Route,
            timeout_ms: 10,
        },
        Failure::DispatchFailed {
            node: node(),
            service: Service::Predict,
            detail: "BadArgument".into(),
        },
        Failure::BadRoute {
            node: node(),
            detail: "9 is not a child".into(),
        },
        Failure::BadOutput {
            node: node(),
            service: Service::Predict,
            detail: "not JSON".into(),
        },
        Failure::OutputTooLarge {
            node: node(),
            service: Service::Predict,
            size: 10,
            limit: 5,
        },
        Failure::BadRequest("not a SeldonMessage".into()),
        Failure::BadFeedback("no response".into()),
        Failure::BadFeedbackRoute {
            node: node(),
            route: 3,
            children: 2,
        },
        Failure::BodyTooLarge { limit: 5 },
        Failure::NotReady {
            node: node(),
            status: "503".into(),
        },
        NoEndpoint::NotFound {
            path: "/x".into(),
            protocol: Protocol::Seldon,
        }
        .into(),
        NoEndpoint::MethodNotAllowed {
            path: "/api/v1.0/predictions".into(),
            allowed: "POST",
        }
        .into(),
        NoEndpoint::UnknownModel("m".into()).into(),
        NoEndpoint::NotCallable("ab".into()).into(),
        NoEndpoint::WrongProtocol {
            path: "/v2/models/m/infer".into(),
            protocol: Protocol::Seldon,
        }
        .into(),
        NoEndpoint::NoFeedbackInV2.into(),
        NoEndpoint::GrpcNotServed {
            path: "/seldon.protos.Seldon/Predict".into(),
            protocol: Protocol::Seldon,
        }
        .into(),
        Failure::GrpcNeedsTail("the graph ends in a COMBINER's fan-in".into()),
    ];
    // Exhaustive on purpose: see the module doc.
    for f in &all {
        match f {
            Failure::NodeStatus { .. }
            | Failure::NodeGrpcStatus { .. }
            | Failure::Unreachable { .. }
            | Failure::Timeout { .. }
            | Failure::DispatchFailed { .. }
            | Failure::BadRoute { .. }
            | Failure::BadOutput { .. }
            | Failure::OutputTooLarge { .. }
            | Failure::BadRequest(_)
            | Failure::BadFeedback(_)
            | Failure::BadFeedbackRoute { .. }
            | Failure::BodyTooLarge { .. }
            | Failure::NotReady { .. }
            | Failure::GrpcNeedsTail(_)
            | Failure::NoEndpoint(_) => {}
        }
    }
    all
}

#[test]
fn every_error_the_filter_makes_matches_the_spec() {
    let spec = spec().unwrap();
    for failure in every_failure() {
        let r = failure.to_response();
        if let Failure::GrpcNeedsTail(_) = failure {
            // Only ever the answer to a gRPC call (the glue sends it as grpc-status 12,
            // UNIMPLEMENTED, with the message); no REST path the spec documents can get it. Its
            // body still uses a reason the spec lists.
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(body["status"]["reason"], "GRPC_NOT_SERVED", "{body}");
            assert_eq!(r.status, 501);
            continue;
        }
        let ct = r.header("content-type");
        for (method, path) in [
            ("POST", "/api/v1.0/predictions"),
            ("POST", "/v2/models/m/infer"),
        ] {
            check_response(&spec, method, path, r.status, ct, &r.body)
                .unwrap_or_else(|e| panic!("{failure:?} → {} on {path}: {e}", r.status));
        }
        assert_eq!(
            r.header("seldon-node"),
            failure.node(),
            "{failure:?}: the header names the node the spec says it does"
        );
    }
}

#[test]
fn an_error_body_of_another_shape_is_refused() {
    let spec = spec().unwrap();
    let err = check_response(
        &spec,
        "POST",
        "/api/v1.0/predictions",
        503,
        Some("application/json"),
        br#"{"error":"node down"}"#,
    )
    .unwrap_err();
    assert!(matches!(err, CheckError::Mismatch { .. }), "{err}");
}

fn testdata(name: &str) -> Vec<u8> {
    let path = format!("{}/../protocol/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn canonical_seldon_messages_match_as_requests_and_answers() {
    let spec = spec().unwrap();
    for name in [
        "bindata",
        "jsondata",
        "ndarray",
        "ndarray_strings",
        "strdata",
        "tensor",
        "tftensor",
        "tftensor_int",
        "status_failure",
    ] {
        let body = testdata(&format!("v1/{name}.json"));
        let json = Some("application/json");
        check_request(&spec, "POST", "/api/v1.0/predictions", json, &body)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        check_response(&spec, "POST", "/api/v1.0/predictions", 200, json, &body)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let json = Some("application/json");
    check_request(
        &spec,
        "POST",
        "/api/v1.0/feedback",
        json,
        &testdata("v1/feedback.json"),
    )
    .unwrap();
    check_response(
        &spec,
        "GET",
        "/api/v1.0/metadata",
        200,
        json,
        &testdata("v1/graph_metadata.json"),
    )
    .unwrap();
    check_response(
        &spec,
        "GET",
        "/api/v1.0/metadata/classifier",
        200,
        json,
        &testdata("v1/model_metadata.json"),
    )
    .unwrap();
}

#[test]
fn canonical_v2_payloads_match() {
    let spec = spec().unwrap();
    let json = Some("application/json");
    for name in ["request_fp32", "request_mixed"] {
        check_request(
            &spec,
            "POST",
            "/v2/models/iris/infer",
            json,
            &testdata(&format!("v2/{name}.json")),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for name in ["response_fp32", "response_mixed"] {
        check_response(
            &spec,
            "POST",
            "/v2/models/iris/infer",
            200,
            json,
            &testdata(&format!("v2/{name}.json")),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    check_response(
        &spec,
        "GET",
        "/v2/models/iris",
        200,
        json,
        &testdata("v2/model_metadata.json"),
    )
    .unwrap();
    check_response(
        &spec,
        "GET",
        "/v2/models/iris/ready",
        200,
        json,
        &testdata("v2/model_ready.json"),
    )
    .unwrap();
}

#[test]
fn every_response_schema_is_documented_json_or_text() {
    // Swagger UI shows what the spec declares: every answer names its media type.
    let spec = spec().unwrap();
    for (template, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, response) in op["responses"].as_object().unwrap() {
                let response = match response.get("$ref").and_then(Value::as_str) {
                    Some(r) => spec.pointer(r.trim_start_matches('#')).unwrap(),
                    None => response,
                };
                let content = response["content"].as_object();
                assert!(
                    content.is_some_and(|c| c
                        .keys()
                        .all(|k| k == "application/json" || k == "text/plain")),
                    "{method} {template} {status}"
                );
            }
        }
    }
}
