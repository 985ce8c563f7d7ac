//! The graph-filter image is what Istio's pilot-agent pulls for a WasmPlugin `oci://` URL:
//! built by images/build.sh, pushed to a real registry (docker-registry on loopback) in OCI
//! format, then read back over the registry API the way pilot-agent's fetcher reads it
//! (istio pkg/wasm/imagefetcher.go, "compat" variant): an OCI manifest whose last (and only)
//! layer is `application/vnd.oci.image.layer.v1.tar+gzip` and holds `plugin.wasm` — byte for
//! byte the module `make wasm` built.

use std::ffi::OsStr;
use std::io::Read;

use seldon_images::{Registry, build, repo};
use serde_json::Value;

#[tokio::test]
async fn graph_filter_is_a_compat_wasm_image_in_a_real_registry() {
    let wasm = repo().join("target/wasm32-wasip1/release/seldon_filter.wasm");
    assert!(
        wasm.is_file(),
        "{} is missing: `make wasm` builds it (make ci does before the tests)",
        wasm.display()
    );
    let module = std::fs::read(&wasm).unwrap();
    let built = build(
        "graph-filter",
        &[
            ("SELDON_IMAGE_WASM", wasm.as_os_str()),
            ("SELDON_IMAGE_TAG", OsStr::new("test")),
        ],
    )
    .unwrap();
    assert_eq!(built.reference, "ghcr.io/seldon-mesh/graph-filter:test");

    let registry = Registry::start(None).unwrap();
    registry
        .push(&built.reference, "seldon-mesh/graph-filter:0.1.0")
        .unwrap();

    let http = reqwest::Client::new();
    let base = format!("http://{}/v2/seldon-mesh/graph-filter", registry.host);
    let r = http
        .get(format!("{base}/manifests/0.1.0"))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let manifest: Value = r.json().await.unwrap();
    assert_eq!(
        manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json",
        "{manifest}"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "one layer: {manifest}");
    assert_eq!(
        layers[0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip",
        "{manifest}"
    );

    let digest = layers[0]["digest"].as_str().unwrap();
    let blob = http
        .get(format!("{base}/blobs/{digest}"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&blob[..]));
    let mut entries = vec![];
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        let mut bytes = vec![];
        entry.read_to_end(&mut bytes).unwrap();
        entries.push((name, bytes));
    }
    assert_eq!(
        entries.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["plugin.wasm"]
    );
    assert!(
        entries[0].1 == module,
        "plugin.wasm differs from {}",
        wasm.display()
    );
}
