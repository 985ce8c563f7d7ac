//! The gRPC line of `up`'s "try:" hint: a `grpcurl` command for Seldon's `Predict` (Seldon
//! graphs) or OIP v2 `ModelInfer` (v2 graphs) at the gateway port (h2c), routed by the
//! `seldon` and `namespace` metadata as Seldon v1's ingress routes it. The gateway serves no
//! reflection, so `up` writes the `.proto` files (Seldon's with the TensorFlow ones it
//! imports, and the Open Inference Protocol's) into `<workdir>/proto` and the command points
//! `grpcurl` there.

use std::path::{Path, PathBuf};

/// `prediction.proto` and its imports, as `(path under the import root, text)`.
const PROTO_FILES: &[(&str, &str)] = &[
    (
        "seldon/prediction.proto",
        include_str!("../../../../../crates/protocol/proto/seldon/prediction.proto"),
    ),
    (
        "tensorflow/core/framework/tensor.proto",
        include_str!("../../../../../crates/protocol/proto/tensorflow/core/framework/tensor.proto"),
    ),
    (
        "tensorflow/core/framework/tensor_shape.proto",
        include_str!(
            "../../../../../crates/protocol/proto/tensorflow/core/framework/tensor_shape.proto"
        ),
    ),
    (
        "tensorflow/core/framework/types.proto",
        include_str!("../../../../../crates/protocol/proto/tensorflow/core/framework/types.proto"),
    ),
    (
        "inference/open_inference_grpc.proto",
        include_str!("../../../../../crates/protocol/proto/inference/open_inference_grpc.proto"),
    ),
    (
        "tensorflow/core/framework/resource_handle.proto",
        include_str!(
            "../../../../../crates/protocol/proto/tensorflow/core/framework/resource_handle.proto"
        ),
    ),
];

/// Writes the `.proto` files under `<workdir>/proto` and returns that folder.
pub fn write_protos(workdir: &Path) -> std::io::Result<PathBuf> {
    let root = workdir.join("proto");
    for (path, text) in PROTO_FILES {
        let file = root.join(path);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(file, text)?;
    }
    Ok(root)
}

/// The `grpcurl` command calling `seldon.protos.Seldon/Predict` on `authority`
/// (`host:port` of the gateway) for `namespace/deployment`, with `body` (Seldon JSON, which is
/// also the protobuf JSON mapping of a `SeldonMessage`).
pub fn seldon_predict(
    proto_root: &Path,
    authority: &str,
    namespace: &str,
    deployment: &str,
    body: &str,
) -> String {
    format!(
        "grpcurl -plaintext -import-path {} -proto seldon/prediction.proto \
         -H 'seldon: {deployment}' -H 'namespace: {namespace}' -d '{body}' \
         {authority} seldon.protos.Seldon/Predict",
        proto_root.display()
    )
}

/// The `grpcurl` command calling `inference.GRPCInferenceService/ModelInfer` for `model` with
/// the same row as the v2 curl sample, in the protobuf JSON mapping of `ModelInferRequest`.
pub fn v2_model_infer(
    proto_root: &Path,
    authority: &str,
    namespace: &str,
    deployment: &str,
    model: &str,
) -> String {
    format!(
        "grpcurl -plaintext -import-path {} -proto inference/open_inference_grpc.proto \
         -H 'seldon: {deployment}' -H 'namespace: {namespace}' \
         -d '{{\"model_name\":\"{model}\",\"inputs\":[{{\"name\":\"input-0\",\"datatype\":\"FP64\",\
         \"shape\":[1,4],\"contents\":{{\"fp64_contents\":[5.1,3.5,1.4,0.2]}}}}]}}' \
         {authority} inference.GRPCInferenceService/ModelInfer",
        proto_root.display()
    )
}

/// `host:port` of an `http://host:port/...` URL; `None` for anything else.
pub fn authority_of(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split('/').next()?;
    (!authority.is_empty()).then_some(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_every_proto_the_seldon_one_imports() {
        let dir = tempfile::tempdir().unwrap();
        let root = write_protos(dir.path()).unwrap();
        let seldon = std::fs::read_to_string(root.join("seldon/prediction.proto")).unwrap();
        for line in seldon
            .lines()
            .filter(|l| l.starts_with("import \"tensorflow"))
        {
            let path = line.trim_start_matches("import \"").trim_end_matches("\";");
            assert!(
                root.join(path).is_file(),
                "{path} is imported but not written"
            );
        }
        assert!(seldon.contains("service Seldon"));
    }

    #[test]
    fn write_protos_fails_on_a_file_where_the_folder_goes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("proto"), "").unwrap();
        assert!(write_protos(dir.path()).is_err());
    }

    #[test]
    fn the_command_names_the_deployment_and_the_method() {
        let cmd = seldon_predict(
            Path::new("/w/proto"),
            "127.0.0.1:8000",
            "seldon",
            "iris",
            r#"{"data":{"ndarray":[[1]]}}"#,
        );
        assert_eq!(
            cmd,
            "grpcurl -plaintext -import-path /w/proto -proto seldon/prediction.proto \
             -H 'seldon: iris' -H 'namespace: seldon' -d '{\"data\":{\"ndarray\":[[1]]}}' \
             127.0.0.1:8000 seldon.protos.Seldon/Predict"
        );
    }

    #[test]
    fn the_v2_command_sends_the_curl_samples_row_to_the_model() {
        let cmd = v2_model_infer(Path::new("/w/proto"), "127.0.0.1:8000", "ns", "chain", "m");
        assert_eq!(
            cmd,
            "grpcurl -plaintext -import-path /w/proto -proto inference/open_inference_grpc.proto \
             -H 'seldon: chain' -H 'namespace: ns' -d '{\"model_name\":\"m\",\"inputs\":\
             [{\"name\":\"input-0\",\"datatype\":\"FP64\",\"shape\":[1,4],\"contents\":\
             {\"fp64_contents\":[5.1,3.5,1.4,0.2]}}]}' 127.0.0.1:8000 \
             inference.GRPCInferenceService/ModelInfer"
        );
    }

    #[test]
    fn authority_of_takes_host_and_port_and_refuses_other_urls() {
        assert_eq!(
            authority_of("http://127.0.0.1:8000/seldon/ns/x"),
            Some("127.0.0.1:8000")
        );
        assert_eq!(authority_of("https://h/x"), None);
        assert_eq!(authority_of("http:///x"), None);
    }
}
