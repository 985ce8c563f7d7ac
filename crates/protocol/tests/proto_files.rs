//! Proves every `.proto` under `proto/` parses and resolves, and pins the
//! field numbers that are easy to get wrong.

use protox::prost_reflect::{DescriptorPool, Kind, MessageDescriptor};
use std::path::PathBuf;

const FILES: &[&str] = &[
    "seldon/prediction.proto",
    "inference/open_inference_grpc.proto",
    "tensorflow/core/framework/tensor.proto",
    "tensorflow/core/framework/tensor_shape.proto",
    "tensorflow/core/framework/types.proto",
    "tensorflow/core/framework/resource_handle.proto",
];

fn proto_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("proto")
}

fn pool() -> DescriptorPool {
    let fds = protox::compile(FILES, [proto_dir()]).expect("protos compile");
    DescriptorPool::from_file_descriptor_set(fds).expect("descriptor pool")
}

fn message(pool: &DescriptorPool, name: &str) -> MessageDescriptor {
    pool.get_message_by_name(name)
        .unwrap_or_else(|| panic!("message {name} missing"))
}

/// Asserts `(field name, number)` pairs of a message.
fn assert_fields(pool: &DescriptorPool, msg: &str, expected: &[(&str, u32)]) {
    let m = message(pool, msg);
    for (name, number) in expected {
        let f = m
            .get_field_by_name(name)
            .unwrap_or_else(|| panic!("{msg}.{name} missing"));
        assert_eq!(f.number(), *number, "{msg}.{name}");
    }
    assert_eq!(m.fields().len(), expected.len(), "{msg} field count");
}

#[test]
fn every_proto_file_in_the_tree_is_compiled() {
    let mut on_disk = Vec::new();
    let mut stack = vec![proto_dir()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "proto") {
                let rel = path.strip_prefix(proto_dir()).unwrap();
                on_disk.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    on_disk.sort();
    let mut listed: Vec<String> = FILES.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

#[test]
fn seldon_messages_have_the_wire_numbers() {
    let p = pool();
    assert_fields(
        &p,
        "seldon.protos.SeldonMessage",
        &[
            ("status", 1),
            ("meta", 2),
            ("data", 3),
            ("binData", 4),
            ("strData", 5),
            ("jsonData", 6),
            ("customData", 7),
        ],
    );
    assert_fields(
        &p,
        "seldon.protos.DefaultData",
        &[("names", 1), ("tensor", 2), ("ndarray", 3), ("tftensor", 4)],
    );
    assert_fields(&p, "seldon.protos.Tensor", &[("shape", 1), ("values", 2)]);
    assert_fields(
        &p,
        "seldon.protos.Meta",
        &[
            ("puid", 1),
            ("tags", 2),
            ("routing", 3),
            ("requestPath", 4),
            ("metrics", 5),
        ],
    );
    assert_fields(
        &p,
        "seldon.protos.Metric",
        &[("key", 1), ("type", 2), ("value", 3), ("tags", 4)],
    );
    assert_fields(
        &p,
        "seldon.protos.SeldonMessageList",
        &[("seldonMessages", 1)],
    );
    assert_fields(
        &p,
        "seldon.protos.Status",
        &[("code", 1), ("info", 2), ("reason", 3), ("status", 4)],
    );
    assert_fields(
        &p,
        "seldon.protos.Feedback",
        &[("request", 1), ("response", 2), ("reward", 3), ("truth", 4)],
    );
    assert_fields(
        &p,
        "seldon.protos.RequestResponse",
        &[("request", 1), ("response", 2)],
    );
    assert_fields(
        &p,
        "seldon.protos.SeldonModelMetadataRequest",
        &[("name", 1)],
    );
    assert_fields(
        &p,
        "seldon.protos.SeldonMessageMetadata",
        &[
            ("messagetype", 1),
            ("schema", 2),
            ("name", 3),
            ("datatype", 4),
            ("shape", 5),
        ],
    );
    assert_fields(
        &p,
        "seldon.protos.SeldonModelMetadata",
        &[
            ("name", 1),
            ("versions", 2),
            ("platform", 3),
            ("inputs", 4),
            ("outputs", 5),
            ("custom", 6),
        ],
    );
    assert_fields(
        &p,
        "seldon.protos.SeldonGraphMetadata",
        &[("name", 1), ("models", 2), ("inputs", 3), ("outputs", 4)],
    );

    let routing = message(&p, "seldon.protos.Meta")
        .get_field_by_name("routing")
        .unwrap();
    assert!(routing.is_map());
    let Kind::Message(entry) = routing.kind() else {
        panic!("map entry")
    };
    assert_eq!(entry.map_entry_value_field().kind(), Kind::Int32);

    let status = p
        .get_enum_by_name("seldon.protos.Status.StatusFlag")
        .unwrap();
    assert_eq!(status.get_value_by_name("FAILURE").unwrap().number(), 1);
    let metric = p
        .get_enum_by_name("seldon.protos.Metric.MetricType")
        .unwrap();
    assert_eq!(metric.get_value_by_name("TIMER").unwrap().number(), 2);
}

#[test]
fn seldon_services_have_the_documented_methods() {
    let p = pool();
    let expected: &[(&str, &[&str])] = &[
        (
            "Generic",
            &[
                "TransformInput",
                "TransformOutput",
                "Route",
                "Aggregate",
                "SendFeedback",
            ],
        ),
        ("Model", &["Predict", "SendFeedback", "Metadata"]),
        ("Router", &["Route", "SendFeedback"]),
        ("Transformer", &["TransformInput"]),
        ("OutputTransformer", &["TransformOutput"]),
        ("Combiner", &["Aggregate"]),
        (
            "Seldon",
            &["Predict", "SendFeedback", "ModelMetadata", "GraphMetadata"],
        ),
    ];
    for (service, methods) in expected {
        let s = p
            .get_service_by_name(&format!("seldon.protos.{service}"))
            .unwrap_or_else(|| panic!("service {service} missing"));
        let got: Vec<String> = s.methods().map(|m| m.name().to_owned()).collect();
        assert_eq!(&got, methods, "{service}");
    }
    let aggregate = p
        .get_service_by_name("seldon.protos.Combiner")
        .unwrap()
        .methods()
        .next()
        .unwrap();
    assert_eq!(
        aggregate.input().full_name(),
        "seldon.protos.SeldonMessageList"
    );
}

#[test]
fn tensorflow_tensor_proto_has_the_wire_numbers() {
    let p = pool();
    assert_fields(
        &p,
        "tensorflow.TensorProto",
        &[
            ("dtype", 1),
            ("tensor_shape", 2),
            ("version_number", 3),
            ("tensor_content", 4),
            ("float_val", 5),
            ("double_val", 6),
            ("int_val", 7),
            ("string_val", 8),
            ("scomplex_val", 9),
            ("int64_val", 10),
            ("bool_val", 11),
            ("dcomplex_val", 12),
            ("half_val", 13),
            ("resource_handle_val", 14),
            ("variant_val", 15),
            ("uint32_val", 16),
            ("uint64_val", 17),
        ],
    );
    assert_fields(
        &p,
        "tensorflow.TensorShapeProto",
        &[("dim", 2), ("unknown_rank", 3)],
    );
    assert_fields(
        &p,
        "tensorflow.TensorShapeProto.Dim",
        &[("size", 1), ("name", 2)],
    );
    let dt = p.get_enum_by_name("tensorflow.DataType").unwrap();
    assert_eq!(dt.get_value_by_name("DT_FLOAT").unwrap().number(), 1);
    assert_eq!(dt.get_value_by_name("DT_STRING").unwrap().number(), 7);
    assert_eq!(dt.get_value_by_name("DT_HALF").unwrap().number(), 19);
    assert_eq!(dt.get_value_by_name("DT_UINT64").unwrap().number(), 23);
    // JSON names used by Seldon's REST `tftensor` form.
    let tp = message(&p, "tensorflow.TensorProto");
    assert_eq!(
        tp.get_field_by_name("int_val").unwrap().json_name(),
        "intVal"
    );
    assert_eq!(
        tp.get_field_by_name("tensor_shape").unwrap().json_name(),
        "tensorShape"
    );
}

#[test]
fn open_inference_protocol_uses_current_numbering() {
    let p = pool();
    assert_fields(
        &p,
        "inference.ModelInferRequest",
        &[
            ("model_name", 1),
            ("model_version", 2),
            ("id", 3),
            ("parameters", 4),
            ("inputs", 5),
            ("outputs", 6),
            ("raw_input_contents", 7),
        ],
    );
    assert_fields(
        &p,
        "inference.ModelInferResponse",
        &[
            ("model_name", 1),
            ("model_version", 2),
            ("id", 3),
            ("parameters", 4),
            ("outputs", 5),
            ("raw_output_contents", 6),
        ],
    );
    for tensor in [
        "inference.ModelInferRequest.InferInputTensor",
        "inference.ModelInferResponse.InferOutputTensor",
    ] {
        assert_fields(
            &p,
            tensor,
            &[
                ("name", 1),
                ("datatype", 2),
                ("shape", 3),
                ("parameters", 4),
                ("contents", 5),
            ],
        );
    }
    assert_fields(
        &p,
        "inference.ModelInferRequest.InferRequestedOutputTensor",
        &[("name", 1), ("parameters", 2)],
    );
    // The trap: the old draft had `raw_contents = 1` here and shifted everything.
    assert_fields(
        &p,
        "inference.InferTensorContents",
        &[
            ("bool_contents", 1),
            ("int_contents", 2),
            ("int64_contents", 3),
            ("uint_contents", 4),
            ("uint64_contents", 5),
            ("fp32_contents", 6),
            ("fp64_contents", 7),
            ("bytes_contents", 8),
        ],
    );
    assert_fields(
        &p,
        "inference.InferParameter",
        &[
            ("bool_param", 1),
            ("int64_param", 2),
            ("string_param", 3),
            ("double_param", 4),
            ("uint64_param", 5),
        ],
    );
    assert_fields(&p, "inference.ServerLiveResponse", &[("live", 1)]);
    assert_fields(&p, "inference.ServerReadyResponse", &[("ready", 1)]);
    assert_fields(
        &p,
        "inference.ModelReadyRequest",
        &[("name", 1), ("version", 2)],
    );
    assert_fields(&p, "inference.ModelReadyResponse", &[("ready", 1)]);
    assert_fields(
        &p,
        "inference.ServerMetadataResponse",
        &[("name", 1), ("version", 2), ("extensions", 3)],
    );
    assert_fields(
        &p,
        "inference.ModelMetadataRequest",
        &[("name", 1), ("version", 2)],
    );
    assert_fields(
        &p,
        "inference.ModelMetadataResponse",
        &[
            ("name", 1),
            ("versions", 2),
            ("platform", 3),
            ("inputs", 4),
            ("outputs", 5),
        ],
    );
    assert_fields(
        &p,
        "inference.ModelMetadataResponse.TensorMetadata",
        &[("name", 1), ("datatype", 2), ("shape", 3)],
    );

    let svc = p
        .get_service_by_name("inference.GRPCInferenceService")
        .unwrap();
    let methods: Vec<String> = svc.methods().map(|m| m.name().to_owned()).collect();
    assert_eq!(
        methods,
        [
            "ServerLive",
            "ServerReady",
            "ModelReady",
            "ServerMetadata",
            "ModelMetadata",
            "ModelInfer"
        ]
    );
}

#[test]
fn a_proto_with_a_wrong_import_is_rejected() {
    // Failure case: the check above would be worthless if protox accepted anything.
    let dir = std::env::temp_dir().join(format!("seldon-protocol-proto-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("bad.proto"),
        "syntax = \"proto3\";\nimport \"missing/nothing.proto\";\nmessage A { Nope x = 1; }\n",
    )
    .unwrap();
    let err = protox::compile(["bad.proto"], [&dir]).unwrap_err();
    assert!(err.to_string().contains("missing/nothing.proto"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
