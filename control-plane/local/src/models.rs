//! Remote `modelUri`s (`s3://`, `gs://`, `az://`, `https://…`, rclone's `remote:bucket/…`) in
//! local mode: fetched with the initializer's library — the code the cluster's init
//! container runs, SKLEARN_SERVER conversion included — into a cache, and served from there.
//!
//! ```text
//! ${SELDON_MODEL_CACHE:-${SELDON_MESH_CACHE:-~/.cache/seldon-mesh}/models}/<key>/   one per model
//!   key = <readable part of the URI>-<16 hex of sha256(URI + endpoint)>
//! ```
//!
//! The key includes where the bytes come from (a custom S3 endpoint, an emulator, the
//! region: `seldon_mesh_initializer::origin`), so the same `s3://models/iris` on MinIO and
//! on AWS are two entries. **Re-fetch policy**: an entry is reused as it is; with
//! `--refresh-models` (`ModelCache::refresh`) every remote model is fetched again once per
//! `up` run (a reload does not fetch it a second time). A fetch goes to a temporary folder
//! beside the entry and is renamed into place when complete, so an interrupted fetch (a
//! signal, a failure) never leaves a half model under the real name; a failed fetch leaves
//! the previous entry as it was. Credentials and endpoints come from `up`'s environment,
//! read as the init container reads its `envSecretRefName` secret (rclone's
//! `RCLONE_CONFIG_<REMOTE>_*`, `AWS_*`, `GOOGLE_APPLICATION_CREDENTIALS`,
//! `STORAGE_EMULATOR_HOST`, `AZURE_STORAGE_*`; see the initializer's README).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use seldon_mesh_initializer::sklearn::Converter;
use sha2::{Digest as _, Sha256};

use crate::{LocalError, Progress};

/// A node's model that is not on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteModel {
    /// The manifest's `modelUri`.
    pub uri: String,
    /// The prepackaged server (`SKLEARN_SERVER` converts `model.joblib` to ONNX).
    pub implementation: String,
}

/// Whether `up` serves `uri` from a local path (`file://…`, a plain path) or must fetch it.
pub fn is_remote(uri: &str) -> bool {
    if uri.starts_with("file://") || uri.starts_with('/') {
        return false;
    }
    if uri.contains("://") {
        return true;
    }
    // rclone's `remote:bucket/path`: a name of letters, digits, `_`, `-` before the colon
    uri.split_once(':').is_some_and(|(remote, _)| {
        !remote.is_empty()
            && remote
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    })
}

/// Where fetched models are kept, and whether to fetch them again.
#[derive(Debug)]
pub struct ModelCache {
    /// `<cache>/models`.
    pub dir: PathBuf,
    /// Fetch every remote model again (once per run) instead of reusing the cache.
    pub refresh: bool,
    /// The SKLEARN_SERVER conversion (`convert_sklearn.py` and a Python that runs it).
    pub converter: Converter,
    /// Entries fetched by this run (a refresh happens once per run).
    fetched: Mutex<BTreeSet<PathBuf>>,
}

impl ModelCache {
    pub fn new(dir: PathBuf, refresh: bool, converter: Converter) -> Self {
        Self {
            dir,
            refresh,
            converter,
            fetched: Mutex::default(),
        }
    }

    /// The cache folder, `$SELDON_MODEL_CACHE`, else
    /// `${SELDON_MESH_CACHE:-~/.cache/seldon-mesh}/models`, and the
    /// converter: `$SELDON_SKLEARN_CONVERTER`, else the checkout's
    /// `model-servers/onnx/python/convert_sklearn.py` (found from `exe_dir`, e.g.
    /// `target/debug`), else the image's `/opt/seldon-mesh/convert_sklearn.py`; run by
    /// `$SELDON_PYTHON`, else the onnx venv's Python (`model-servers/onnx/scripts/setup.sh`)
    /// when it exists, else `python3`.
    pub fn from_env(refresh: bool, exe_dir: &Path) -> Result<Self, LocalError> {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let cache = var("SELDON_MESH_CACHE")
            .map(PathBuf::from)
            .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache/seldon-mesh")))
            .ok_or(LocalError::NoCacheHome)?;
        let script = var("SELDON_SKLEARN_CONVERTER")
            .map(PathBuf::from)
            .or_else(|| {
                exe_dir
                    .ancestors()
                    .map(|d| d.join("model-servers/onnx/python/convert_sklearn.py"))
                    .find(|p| p.is_file())
            })
            .unwrap_or_else(|| "/opt/seldon-mesh/convert_sklearn.py".into());
        let venv = var("SELDON_ONNX_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| cache.join("onnxvenv"))
            .join("bin/python");
        let python = var("SELDON_PYTHON").map(PathBuf::from).unwrap_or_else(|| {
            if venv.is_file() {
                venv
            } else {
                "python3".into()
            }
        });
        Ok(Self::new(
            var("SELDON_MODEL_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| cache.join("models")),
            refresh,
            Converter { python, script },
        ))
    }

    /// The folder of the model whose bytes come from `origin` (the URI, plus its endpoint;
    /// see `seldon_mesh_initializer::origin`).
    pub fn entry(&self, uri: &str, origin: &str) -> PathBuf {
        self.dir.join(key(uri, origin))
    }

    /// The local folder of `model`, fetched into the cache unless it is there already (or
    /// `refresh` and not yet fetched by this run). `env` reads credentials and endpoints.
    pub async fn ensure(
        &self,
        node: &str,
        model: &RemoteModel,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
        progress: &mut dyn FnMut(Progress),
    ) -> Result<PathBuf, LocalError> {
        let uri = model.uri.as_str();
        let failed = |reason: String| LocalError::ModelFetch {
            node: node.to_owned(),
            uri: uri.to_owned(),
            reason: one_line(uri, &reason),
        };
        let origin =
            seldon_mesh_initializer::origin(uri, env).map_err(|e| failed(e.to_string()))?;
        let entry = self.entry(uri, &origin);
        let began = Instant::now();
        let fetched_now = self.fetched.lock().is_ok_and(|f| f.contains(&entry));
        if entry.is_dir() && (!self.refresh || fetched_now) {
            self.convert_in_place(model, &entry)
                .await
                .map_err(|e| failed(e.to_string()))?;
            progress(Progress::ModelReady {
                node: node.to_owned(),
                dir: entry.clone(),
                cached: true,
                after: began.elapsed(),
            });
            return Ok(entry);
        }
        progress(Progress::ModelFetching {
            node: node.to_owned(),
            uri: uri.to_owned(),
        });
        let io = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| LocalError::Io {
                action,
                path,
                source,
            }
        };
        std::fs::create_dir_all(&self.dir).map_err(io("creating", &self.dir))?;
        let name = entry
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = Scratch(
            self.dir
                .join(format!(".{name}.{}.part", std::process::id())),
        );
        if tmp.0.exists() {
            std::fs::remove_dir_all(&tmp.0).map_err(io("removing", &tmp.0))?;
        }
        let opts = seldon_mesh_initializer::Options {
            uri: uri.to_owned(),
            dest: tmp.0.clone(),
            implementation: Some(model.implementation.clone()),
            converter: self.converter.clone(),
        };
        seldon_mesh_initializer::run(&opts, env)
            .await
            .map_err(|e| failed(e.to_string()))?;
        // Swap the complete fetch in; a previous entry goes only once the new one is there.
        let old = Scratch(self.dir.join(format!(".{name}.{}.old", std::process::id())));
        if entry.exists() {
            std::fs::rename(&entry, &old.0).map_err(io("moving aside", &entry))?;
        }
        if let Err(e) = std::fs::rename(&tmp.0, &entry) {
            // another `up` fetched the same model meanwhile: use theirs
            if !entry.is_dir() {
                return Err(io("renaming into", &entry)(e));
            }
        }
        drop(old);
        if let Ok(mut f) = self.fetched.lock() {
            f.insert(entry.clone());
        }
        progress(Progress::ModelReady {
            node: node.to_owned(),
            dir: entry.clone(),
            cached: false,
            after: began.elapsed(),
        });
        Ok(entry)
    }

    /// A cached entry fetched for another server may still need the SKLEARN_SERVER
    /// conversion.
    async fn convert_in_place(
        &self,
        model: &RemoteModel,
        dir: &Path,
    ) -> Result<(), seldon_mesh_initializer::InitError> {
        use seldon_mesh_initializer::sklearn;
        if !sklearn::needs_conversion(Some(&model.implementation), dir) {
            return Ok(());
        }
        let (conv, d) = (self.converter.clone(), dir.to_path_buf());
        tokio::task::spawn_blocking(move || sklearn::convert(&conv, &d))
            .await
            .map_err(|e| seldon_mesh_initializer::InitError::Convert {
                dir: dir.to_path_buf(),
                reason: e.to_string(),
            })?
    }
}

/// A folder removed when dropped (a fetch that did not complete, a replaced entry).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `<readable>-<16 hex>`: the URI's letters and digits (at most 48), then a hash of the URI
/// and where it is fetched from.
pub fn key(uri: &str, origin: &str) -> String {
    let mut readable = String::new();
    for c in uri.split_once("://").map_or(uri, |(_, rest)| rest).chars() {
        let c = if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
            c
        } else {
            '-'
        };
        if !(c == '-' && readable.ends_with('-')) {
            readable.push(c);
        }
    }
    let readable: String = readable
        .trim_matches(|c| c == '-' || c == '.')
        .chars()
        .take(48)
        .collect();
    let digest = Sha256::digest(format!("{uri}\n{origin}").as_bytes());
    let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    if readable.is_empty() {
        hash
    } else {
        format!("{readable}-{hash}")
    }
}

/// The initializer's message without the URI it starts with (the error names it), on one
/// line.
fn one_line(uri: &str, reason: &str) -> String {
    let r = reason.strip_prefix(&format!("{uri}: ")).unwrap_or(reason);
    r.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_or_local() {
        for uri in [
            "s3://b/iris",
            "gs://seldon-models/v1.19/sklearn/iris",
            "az://models/iris",
            "https://acct.blob.core.windows.net/models/iris",
            "https://example.com/m/iris.tar.gz",
            "minio:models/iris",
        ] {
            assert!(is_remote(uri), "{uri}");
        }
        for uri in ["file:///abs/m", "/abs/m", "models/xgb", "./m", "../m:x/y"] {
            assert!(!is_remote(uri), "{uri}");
        }
    }

    #[test]
    fn keys_are_readable_stable_and_endpoint_specific() {
        let a = key("s3://models/v1.19/sklearn/iris", "aws_region=us-east-1");
        assert!(a.starts_with("models-v1.19-sklearn-iris-"), "{a}");
        assert_eq!(a.len(), "models-v1.19-sklearn-iris-".len() + 16);
        assert_eq!(
            a,
            key("s3://models/v1.19/sklearn/iris", "aws_region=us-east-1")
        );
        assert_ne!(
            a,
            key(
                "s3://models/v1.19/sklearn/iris",
                "aws_endpoint=http://127.0.0.1:9000"
            )
        );
        let long = key(&format!("s3://b/{}", "x".repeat(200)), "");
        assert!(long.len() <= 48 + 17, "{long}");
        assert_eq!(key("s3://", "").len(), 16);
    }

    #[test]
    fn reasons_drop_the_uri_and_fit_one_line() {
        assert_eq!(
            one_line("s3://b/i", "s3://b/i: HTTP 404: NoSuchBucket:\n  gone"),
            "HTTP 404: NoSuchBucket: gone"
        );
        assert_eq!(
            one_line("s3://b/i", "s3://b/i/model.bst: HTTP 403: x"),
            "s3://b/i/model.bst: HTTP 403: x"
        );
    }

    #[tokio::test]
    async fn a_failed_fetch_names_the_node_and_uri_and_leaves_no_scratch() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModelCache::new(
            dir.path().join("models"),
            false,
            Converter {
                python: "python3".into(),
                script: "/none.py".into(),
            },
        );
        let model = RemoteModel {
            uri: "s3://models/iris".into(),
            implementation: "XGBOOST_SERVER".into(),
        };
        // a closed port: connection refused (retried a few times, then reported)
        let env = |k: &str| match k {
            "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:1".to_owned()),
            _ => None,
        };
        let mut seen = Vec::new();
        let err = cache
            .ensure("clf", &model, &env, &mut |p| seen.push(p))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("node `clf`: cannot fetch s3://models/iris: "),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
        assert!(matches!(&seen[..], [Progress::ModelFetching { node, .. }] if node == "clf"));
        let left: Vec<_> = std::fs::read_dir(dir.path().join("models"))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "scratch folders removed: {left:?}");
        // an unsupported URI fails before any fetch
        let bad = RemoteModel {
            uri: "ftp://host/m".into(),
            implementation: "XGBOOST_SERVER".into(),
        };
        let err = cache
            .ensure("clf", &bad, &|_| None, &mut |_| {})
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("unsupported scheme ftp://"), "{err}");
        // nor does a URI with `..` (issue 11)
        let climbing = RemoteModel {
            uri: "s3://models/iris/../../secrets".into(),
            implementation: "XGBOOST_SERVER".into(),
        };
        let err = cache
            .ensure("clf", &climbing, &|_| None, &mut |_| {})
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("node `clf`: cannot fetch s3://models/iris/../../secrets: not a model URI we can copy from: `..` in the path"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn cached_entries_are_reused_and_refresh_fetches_once_per_run() {
        // model.json: XGBoost's JSON needs no fetch-time conversion (a legacy model.bst would
        // run convert_xgboost.py; the converters have their own tests in the initializer)
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("model.json"), b"v1").unwrap();
        // an http(s) model: served by a one-file HTTP server on loopback
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let body = std::sync::Arc::new(Mutex::new(b"v1".to_vec()));
        let served = body.clone();
        std::thread::spawn(move || {
            use std::io::{Read as _, Write as _};
            for s in listener.incoming() {
                let mut s = s.unwrap();
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let b = served.lock().unwrap().clone();
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    b.len()
                );
                let _ = s.write_all(&b);
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let conv = Converter {
            python: "python3".into(),
            script: "/none.py".into(),
        };
        let model = RemoteModel {
            uri: format!("http://127.0.0.1:{port}/m/model.json"),
            implementation: "XGBOOST_SERVER".into(),
        };
        let cache = ModelCache::new(dir.path().join("models"), false, conv.clone());
        let mut seen = Vec::new();
        let first = cache
            .ensure("clf", &model, &|_| None, &mut |p| seen.push(p))
            .await
            .unwrap();
        assert_eq!(std::fs::read(first.join("model.json")).unwrap(), b"v1");
        *body.lock().unwrap() = b"v2".to_vec();
        let again = cache
            .ensure("clf", &model, &|_| None, &mut |p| seen.push(p))
            .await
            .unwrap();
        assert_eq!(again, first);
        assert_eq!(
            std::fs::read(again.join("model.json")).unwrap(),
            b"v1",
            "reused"
        );
        assert!(matches!(
            &seen[..],
            [
                Progress::ModelFetching { .. },
                Progress::ModelReady { cached: false, .. },
                Progress::ModelReady { cached: true, .. }
            ]
        ));
        // --refresh-models: fetched again, once
        let refresh = ModelCache::new(dir.path().join("models"), true, conv);
        let r = refresh
            .ensure("clf", &model, &|_| None, &mut |_| {})
            .await
            .unwrap();
        assert_eq!(std::fs::read(r.join("model.json")).unwrap(), b"v2");
        *body.lock().unwrap() = b"v3".to_vec();
        let r = refresh
            .ensure("clf", &model, &|_| None, &mut |_| {})
            .await
            .unwrap();
        assert_eq!(std::fs::read(r.join("model.json")).unwrap(), b"v2");
        let names: Vec<String> = std::fs::read_dir(dir.path().join("models"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 1, "no scratch left: {names:?}");
    }
}
