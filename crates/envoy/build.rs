//! Feature `xds`: compiles the vendored Envoy protos (`proto/`, the part of Envoy's API the
//! rendered listeners and clusters use) into a `FileDescriptorSet` that `xds` loads into a
//! `prost_reflect::DescriptorPool`, so the same JSON the bootstrap holds becomes protobuf.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "xds")]
    descriptors();
}

#[cfg(feature = "xds")]
fn descriptors() {
    println!("cargo:rerun-if-changed=proto");
    let files = [
        "envoy/config/listener/v3/listener.proto",
        "envoy/config/cluster/v3/cluster.proto",
        "envoy/config/route/v3/route.proto",
        "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
        "envoy/extensions/filters/http/wasm/v3/wasm.proto",
        "envoy/extensions/filters/http/buffer/v3/buffer.proto",
        "envoy/extensions/filters/http/router/v3/router.proto",
        "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
    ];
    let set = protox::Compiler::new(["proto"])
        .and_then(|mut c| {
            c.include_source_info(false).include_imports(true);
            c.open_files(files)?;
            Ok(c.encode_file_descriptor_set())
        })
        .expect("compiling the vendored Envoy protos");
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(out.join("envoy_descriptors.bin"), set).expect("writing envoy_descriptors.bin");
}
