//! Starts the real `seldon-server` binary on free ports and talks HTTP to it.

#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn onnx_testdata(name: &str) -> PathBuf {
    repo().join("model-servers/onnx/testdata").join(name)
}

/// Runs `model-servers/onnx/scripts/setup.sh [args]` (installs the pinned wheels once) and
/// returns its output: the ONNX Runtime library. Panics with the script's stderr: these
/// tests never skip silently.
pub fn setup(args: &[&str]) -> PathBuf {
    let script = repo().join("model-servers/onnx/scripts/setup.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args(args)
        .output()
        .expect("running setup.sh");
    assert!(
        out.status.success(),
        "{} failed (installs onnxruntime==1.31.1 from PyPI):\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

pub fn ort_library() -> PathBuf {
    static LIBRARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    LIBRARY
        .get_or_init(
            || match std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
                Some(p) => PathBuf::from(p),
                None => setup(&[]),
            },
        )
        .clone()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running server; killed on drop.
pub struct Server {
    child: Child,
    pub base: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn command(
    implementation: &str,
    model_uri: &Path,
    envs: &[(&str, String)],
) -> (Command, u16, tempfile::TempDir, PathBuf) {
    let http = free_port();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_seldon-server"));
    cmd.args(["--implementation", implementation, "--model-uri"])
        .arg(model_uri)
        .args(["--bind", "127.0.0.1", "--http-port", &http.to_string()])
        .args([
            "--grpc-port",
            &free_port().to_string(),
            "--metrics-port",
            &free_port().to_string(),
        ])
        .env("ORT_DYLIB_PATH", ort_library())
        .env("SELDON_ONNX_SESSIONS", "1")
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::from(
            std::fs::OpenOptions::new().append(true).open(&log).unwrap(),
        ));
    for (k, v) in envs {
        cmd.env(k, v);
    }
    (cmd, http, dir, log)
}

/// Starts the binary and waits for `/health/ping`; panics with the log if it exits.
pub async fn start(implementation: &str, model_uri: &Path, envs: &[(&str, String)]) -> Server {
    let (mut cmd, http, dir, log) = command(implementation, model_uri, envs);
    let child = cmd.spawn().expect("spawn seldon-server");
    let mut server = Server {
        child,
        base: format!("http://127.0.0.1:{http}"),
        log,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            panic!("seldon-server exited ({status}):\n{}", server.log());
        }
        if let Ok(r) = reqwest::get(format!("{}/health/ping", server.base)).await
            && r.status() == 200
        {
            return server;
        }
        assert!(
            Instant::now() < deadline,
            "seldon-server not ready after 90 s:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the binary expecting it to fail at startup; returns its log.
pub fn start_fails(implementation: &str, model_uri: &Path) -> String {
    let (mut cmd, _, _dir, log) = command(implementation, model_uri, &[]);
    let status = cmd.status().expect("run seldon-server");
    assert!(
        !status.success(),
        "seldon-server should have refused to start"
    );
    let mut s = String::new();
    std::fs::File::open(log)
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    s
}

impl Server {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = reqwest::get(format!("{}{path}", self.base)).await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

/// Flattens nested JSON numbers to f64.
pub fn flat(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(a) => a.iter().flat_map(flat).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap()],
        other => panic!("not numeric: {other}"),
    }
}

/// max |ours − ref| / max(1, |ref|).
pub fn max_error(ours: &[f64], reference: &[f64]) -> f64 {
    assert_eq!(ours.len(), reference.len(), "output sizes differ");
    ours.iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0.0, f64::max)
}

pub fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}
