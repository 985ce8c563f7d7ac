//! A tiny read-only OCI registry, in process, serving the graph filter as an Istio "compat"
//! Wasm image: one `tar+gzip` layer holding `plugin.wasm`, the layout `pilot-agent`'s image
//! fetcher (`pkg/wasm`) accepts. The mesh pulls the module the way a cluster does:
//! `WasmPlugin.url = oci://10.77.0.1:<port>/seldon-mesh/graph-filter:<tag>` with the
//! registry listed in `WASM_INSECURE_REGISTRIES` (plain HTTP).
//!
//! Endpoints (OCI distribution spec, pull side only): `GET /v2/`,
//! `GET|HEAD /v2/<name>/manifests/<tag|digest>`, `GET|HEAD /v2/<name>/blobs/<digest>`.
//! Every request is recorded, so a test can prove the pull happened here.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use crate::HarnessError;

/// The manifest media type served (OCI image manifest).
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The config media type (an OCI image config).
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// The single layer's media type: Istio's "compat" variant is a gzipped tar with plugin.wasm.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The file name inside the layer that pilot-agent extracts.
pub const PLUGIN_FILE: &str = "plugin.wasm";

/// A compat Wasm image: manifest, config and layer, each addressed by its sha256 digest.
#[derive(Debug, Clone)]
pub struct WasmImage {
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub config_digest: String,
    pub layer_digest: String,
    blobs: BTreeMap<String, Vec<u8>>,
}

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Packs `wasm` as a compat image. Deterministic: the same module gives the same digests
/// (tar and gzip headers carry no timestamps), so pilot-agent's cache key is stable.
pub fn compat_image(wasm: &[u8]) -> Result<WasmImage, HarnessError> {
    let io = |source| HarnessError::Io {
        context: "packing the wasm layer".into(),
        source,
    };
    let mut builder = tar::Builder::new(Vec::new());
    let mut head = tar::Header::new_gnu();
    head.set_size(wasm.len() as u64);
    head.set_mode(0o644);
    head.set_mtime(0);
    head.set_cksum();
    builder
        .append_data(&mut head, PLUGIN_FILE, wasm)
        .map_err(io)?;
    let tar = builder.into_inner().map_err(io)?;
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).map_err(io)?;
    let layer = gz.finish().map_err(io)?;

    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [digest(&tar)]},
    }))
    .map_err(|e| HarnessError::Check(format!("image config: {e}")))?;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": digest(&config), "size": config.len()},
        "layers": [{"mediaType": LAYER_MEDIA_TYPE, "digest": digest(&layer), "size": layer.len()}],
    }))
    .map_err(|e| HarnessError::Check(format!("image manifest: {e}")))?;
    let (config_digest, layer_digest, manifest_digest) =
        (digest(&config), digest(&layer), digest(&manifest));
    let blobs = BTreeMap::from([
        (config_digest.clone(), config),
        (layer_digest.clone(), layer),
    ]);
    Ok(WasmImage {
        manifest,
        manifest_digest,
        config_digest,
        layer_digest,
        blobs,
    })
}

impl WasmImage {
    /// A blob (config or layer) by digest.
    pub fn blob(&self, digest: &str) -> Option<&[u8]> {
        self.blobs.get(digest).map(Vec::as_slice)
    }
}

#[derive(Debug)]
struct Served {
    repository: String,
    tag: String,
    image: WasmImage,
    log: Mutex<Vec<String>>,
}

/// The running registry; stops when dropped.
#[derive(Debug)]
pub struct Registry {
    addr: SocketAddr,
    served: Arc<Served>,
    task: tokio::task::JoinHandle<()>,
}

impl Registry {
    /// Binds `bind` (port 0 picks one) and serves `wasm` as `<repository>:<tag>`. Must be
    /// called inside a tokio runtime (the server is a task of it).
    pub async fn start(
        bind: SocketAddr,
        repository: &str,
        tag: &str,
        wasm: &[u8],
    ) -> Result<Registry, HarnessError> {
        let served = Arc::new(Served {
            repository: repository.to_string(),
            tag: tag.to_string(),
            image: compat_image(wasm)?,
            log: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .map_err(|source| HarnessError::Io {
                context: format!("registry: binding {bind}"),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| HarnessError::Io {
            context: "registry: local address".into(),
            source,
        })?;
        let app = Router::new()
            .route(
                "/v2/",
                get(|| async { ([(header::CONTENT_TYPE, "application/json")], "{}") }),
            )
            .route("/v2/{*rest}", get(serve))
            .with_state(served.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "registry stopped");
            }
        });
        tracing::info!(%addr, repository, tag, digest = %served.image.manifest_digest, "OCI registry serving the filter");
        Ok(Registry { addr, served, task })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `oci://<addr>/<repository>:<tag>`, the WasmPlugin URL.
    pub fn url(&self) -> String {
        format!(
            "oci://{}/{}:{}",
            self.addr, self.served.repository, self.served.tag
        )
    }

    /// The image served.
    pub fn image(&self) -> &WasmImage {
        &self.served.image
    }

    /// Every request so far, as `METHOD path -> status`.
    pub fn requests(&self) -> Vec<String> {
        self.served
            .log
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    State(served): State<Arc<Served>>,
    method: axum::http::Method,
    Path(rest): Path<String>,
) -> Response {
    let response = route(&served, &rest);
    if let Ok(mut log) = served.log.lock() {
        log.push(format!(
            "{method} /v2/{rest} -> {}",
            response.status().as_u16()
        ));
    }
    response
}

fn route(served: &Served, rest: &str) -> Response {
    let image = &served.image;
    if let Some((name, reference)) = rest.rsplit_once("/manifests/")
        && name == served.repository
        && (reference == served.tag || reference == image.manifest_digest)
    {
        return content(
            MANIFEST_MEDIA_TYPE,
            &image.manifest_digest,
            image.manifest.clone(),
        );
    }
    if let Some((name, d)) = rest.rsplit_once("/blobs/")
        && name == served.repository
        && let Some(blob) = image.blob(d)
    {
        return content("application/octet-stream", d, blob.to_vec());
    }
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"errors":[{"code":"NOT_FOUND","message":"no such manifest or blob"}]}"#,
    )
        .into_response()
}

fn content(media_type: &'static str, digest: &str, body: Vec<u8>) -> Response {
    let mut response = (StatusCode::OK, [(header::CONTENT_TYPE, media_type)], body).into_response();
    if let Ok(v) = HeaderValue::from_str(digest) {
        response.headers_mut().insert("docker-content-digest", v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    const WASM: &[u8] = b"\0asm\x01\0\0\0 not really a module";

    #[test]
    fn image_is_deterministic_and_holds_the_module() {
        let a = compat_image(WASM).unwrap();
        let b = compat_image(WASM).unwrap();
        assert_eq!(a.manifest_digest, b.manifest_digest);
        assert_eq!(a.manifest_digest, digest(&a.manifest));
        let layer = a.blob(&a.layer_digest).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(layer));
        let mut entries = archive.entries().unwrap();
        let mut entry = entries.next().unwrap().unwrap();
        assert_eq!(entry.path().unwrap().to_str(), Some(PLUGIN_FILE));
        let mut body = Vec::new();
        entry.read_to_end(&mut body).unwrap();
        assert_eq!(body, WASM);
        assert!(entries.next().is_none());
        let manifest: serde_json::Value = serde_json::from_slice(&a.manifest).unwrap();
        assert_eq!(manifest["layers"][0]["mediaType"], LAYER_MEDIA_TYPE);
        assert_eq!(manifest["layers"][0]["digest"], a.layer_digest);
        assert_eq!(manifest["config"]["digest"], a.config_digest);
        assert!(a.blob("sha256:00").is_none());
        assert_ne!(
            compat_image(b"other").unwrap().manifest_digest,
            a.manifest_digest
        );
    }

    #[tokio::test]
    async fn serves_the_pull_endpoints_and_refuses_the_rest() {
        let reg = Registry::start(
            "127.0.0.1:0".parse().unwrap(),
            "seldon-mesh/graph-filter",
            "0.1.0",
            WASM,
        )
        .await
        .unwrap();
        let base = format!("http://{}", reg.addr());
        assert_eq!(
            reg.url(),
            format!("oci://{}/seldon-mesh/graph-filter:0.1.0", reg.addr())
        );
        let http = reqwest::Client::new();
        let v2 = http.get(format!("{base}/v2/")).send().await.unwrap();
        assert_eq!(v2.status(), 200);
        assert_eq!(v2.text().await.unwrap(), "{}");

        let m = http
            .get(format!(
                "{base}/v2/seldon-mesh/graph-filter/manifests/0.1.0"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(m.status(), 200);
        assert_eq!(m.headers()["content-type"], MANIFEST_MEDIA_TYPE);
        assert_eq!(
            m.headers()["docker-content-digest"],
            reg.image().manifest_digest.as_str()
        );
        assert_eq!(m.bytes().await.unwrap(), reg.image().manifest);
        let by_digest = http
            .head(format!(
                "{base}/v2/seldon-mesh/graph-filter/manifests/{}",
                reg.image().manifest_digest
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(by_digest.status(), 200);

        let layer = http
            .get(format!(
                "{base}/v2/seldon-mesh/graph-filter/blobs/{}",
                reg.image().layer_digest
            ))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(digest(&layer), reg.image().layer_digest);

        for missing in [
            "/v2/seldon-mesh/graph-filter/manifests/9.9.9",
            "/v2/other/graph-filter/manifests/0.1.0",
            "/v2/seldon-mesh/graph-filter/blobs/sha256:0000",
            "/v2/nothing",
        ] {
            let r = http.get(format!("{base}{missing}")).send().await.unwrap();
            assert_eq!(r.status(), 404, "{missing}");
            assert!(r.text().await.unwrap().contains("NOT_FOUND"));
        }
        let log = reg.requests();
        assert!(
            log.contains(&"GET /v2/seldon-mesh/graph-filter/manifests/0.1.0 -> 200".to_string()),
            "{log:?}"
        );
        assert!(
            log.contains(&"GET /v2/seldon-mesh/graph-filter/manifests/9.9.9 -> 404".to_string()),
            "{log:?}"
        );
    }

    #[tokio::test]
    async fn start_fails_when_the_port_is_taken() {
        let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let err = Registry::start(taken.local_addr().unwrap(), "r", "t", WASM)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("registry: binding"), "{err}");
    }
}
