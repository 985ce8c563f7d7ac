//! Generates the gRPC servers and clients from `crates/protocol/proto` with `protox`
//! (pure-Rust protobuf parser): no `protoc` binary needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = "../../crates/protocol/proto";
    println!("cargo:rerun-if-changed={proto_dir}");
    let fds = protox::compile(
        [
            "seldon/prediction.proto",
            "inference/open_inference_grpc.proto",
        ],
        [proto_dir],
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
