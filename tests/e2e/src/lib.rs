//! End-to-end harness: spawns `testmodel` nodes on free ports, waits until they answer, and kills them on drop.

pub mod graph;
pub mod payload;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use seldon_supervise::Supervised;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Env var naming the `testmodel` binary, for callers outside this package's tests.
pub const TESTMODEL_BIN_ENV: &str = "SELDON_TESTMODEL_BIN";

/// What a `testmodel` node does with `/predict`, `/transform-input` and `/transform-output`.
/// `/route`, `/aggregate`, `/send-feedback` and v2 infer answer the same in every mode
/// except `fail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Return the input message.
    Echo,
    /// Add `--add` to every number of `data.ndarray`.
    Add,
    /// Echo; meant for ROUTER nodes (`/route` answers `--route`).
    Route,
    /// Echo; meant for COMBINER nodes (`/aggregate` sums).
    Aggregate,
    /// Every POST answers `--fail-status` with `--fail-body`.
    Fail,
    /// Echo after `--delay-ms` (default 1000).
    Slow,
    /// Like add; meant for v2 nodes (`/v2/models/{m}/infer` adds `--add` to FP32/FP64).
    V2Add,
}

impl Mode {
    /// The flag value, e.g. `v2-add`.
    pub fn as_arg(self) -> &'static str {
        match self {
            Mode::Echo => "echo",
            Mode::Add => "add",
            Mode::Route => "route",
            Mode::Aggregate => "aggregate",
            Mode::Fail => "fail",
            Mode::Slow => "slow",
            Mode::V2Add => "v2-add",
        }
    }
}

/// One request a node received (from `GET /_calls`, newest last).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Header names are lowercase; a repeated header keeps one entry per value.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Call {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(&self.body)
    }
}

/// How to run one node: the `testmodel` flags.
#[derive(Debug, Clone, PartialEq)]
pub struct TestModelSpec {
    pub name: String,
    pub mode: Mode,
    pub add: f64,
    pub route: i32,
    pub fail_status: u16,
    pub fail_body: Option<String>,
    /// Mode fail: a JSON object of exactly this many bytes instead of `fail_body`.
    pub fail_body_bytes: Option<usize>,
    pub delay_ms: Option<u64>,
    /// Mode fail: only requests whose body contains this text fail; others are echoed.
    pub fail_when: Option<String>,
}

impl TestModelSpec {
    /// A node called `name` in `mode`, other flags at their defaults.
    pub fn new(name: impl Into<String>, mode: Mode) -> Self {
        Self {
            name: name.into(),
            mode,
            add: 0.0,
            route: 0,
            fail_status: 500,
            fail_body: None,
            fail_body_bytes: None,
            delay_ms: None,
            fail_when: None,
        }
    }

    pub fn adding(mut self, n: f64) -> Self {
        self.add = n;
        self
    }

    pub fn routing_to(mut self, n: i32) -> Self {
        self.route = n;
        self
    }

    pub fn fail(mut self, status: u16, body: Option<&str>) -> Self {
        self.mode = Mode::Fail;
        self.fail_status = status;
        self.fail_body = body.map(str::to_owned);
        self
    }

    /// Mode fail with `status` and a JSON object body of exactly `bytes` bytes.
    pub fn fail_with_bytes(mut self, status: u16, bytes: usize) -> Self {
        self.mode = Mode::Fail;
        self.fail_status = status;
        self.fail_body_bytes = Some(bytes);
        self
    }

    /// In mode fail, fail only requests whose body contains `marker`.
    pub fn fail_when(mut self, marker: &str) -> Self {
        self.fail_when = Some(marker.to_string());
        self
    }

    pub fn delay_ms(mut self, ms: u64) -> Self {
        self.delay_ms = Some(ms);
        self
    }

    fn args(&self) -> Vec<String> {
        let mut a = vec![
            "--port".into(),
            "0".into(),
            "--name".into(),
            self.name.clone(),
            "--mode".into(),
            self.mode.as_arg().into(),
            "--add".into(),
            self.add.to_string(),
            format!("--route={}", self.route),
            "--fail-status".into(),
            self.fail_status.to_string(),
        ];
        if let Some(b) = &self.fail_body {
            a.push(format!("--fail-body={b}"));
        }
        if let Some(n) = self.fail_body_bytes {
            a.extend(["--fail-body-bytes".into(), n.to_string()]);
        }
        if let Some(ms) = self.delay_ms {
            a.extend(["--delay-ms".into(), ms.to_string()]);
        }
        if let Some(m) = &self.fail_when {
            a.push(format!("--fail-when={m}"));
        }
        a
    }
}

/// What went wrong running a node.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error(
        "testmodel binary not found at {0}; build it (cargo build -p seldon-e2e) or set SELDON_TESTMODEL_BIN"
    )]
    BinaryNotFound(PathBuf),
    #[error("spawning {path}")]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("testmodel {name} exited before saying `listening on`: {output}")]
    NoAddress { name: String, output: String },
    #[error("testmodel {name} at {url} did not answer /health/ping within {secs} s")]
    NotReady {
        name: String,
        url: String,
        secs: u64,
    },
    #[error("the filter module is not built at {0}; run `make wasm` or set SELDON_FILTER_WASM")]
    FilterNotBuilt(PathBuf),
    #[error("bad graph spec: {0}")]
    Spec(String),
    #[error(transparent)]
    Envoy(#[from] seldon_envoy::EnvoyError),
    #[error("request to {url} failed")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
}

/// The `testmodel` binary: `$SELDON_TESTMODEL_BIN`, else next to the running test
/// (`target/<profile>/testmodel`, which cargo builds before this package's tests).
pub fn testmodel_binary() -> Result<PathBuf, HarnessError> {
    let path = match std::env::var_os(TESTMODEL_BIN_ENV) {
        Some(p) => PathBuf::from(p),
        None => {
            let exe = std::env::current_exe().unwrap_or_default();
            // A binary (target/debug/demo) has it beside itself; a test
            // (target/debug/deps/<test>) one level up.
            let beside = exe.parent().unwrap_or(Path::new("."));
            let sibling = beside.join("testmodel");
            if sibling.is_file() {
                sibling
            } else {
                beside.parent().unwrap_or(Path::new(".")).join("testmodel")
            }
        }
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(HarnessError::BinaryNotFound(path))
    }
}

/// A running `testmodel` process, supervised: stopped (and reaped) on drop, killed by the
/// kernel if the test process dies first.
#[derive(Debug)]
pub struct TestModel {
    /// Stopped (SIGTERM, then SIGKILL to its group) on drop.
    child: Supervised,
    /// Its stdout/stderr files; removed after the process is stopped (fields drop in order).
    _logs: tempfile::TempDir,
    name: String,
    port: u16,
    http: reqwest::Client,
}

impl TestModel {
    /// Spawns [`testmodel_binary`] with `spec` on a port it picks, and waits for `/health/ping`.
    pub async fn spawn(spec: &TestModelSpec) -> Result<Self, HarnessError> {
        Self::spawn_with(&testmodel_binary()?, spec).await
    }

    /// [`TestModel::spawn`] with an explicit binary (e.g. `env!("CARGO_BIN_EXE_testmodel")`).
    ///
    /// The process runs through `seldon-supervise`: its own process group, SIGKILL when the
    /// spawning thread dies (even if the test is killed), the group stopped on drop. Its
    /// stdout and stderr go to files in a temporary directory, read for the `listening on`
    /// line (a pipe would need the `Child`, which the supervisor owns).
    pub async fn spawn_with(bin: &Path, spec: &TestModelSpec) -> Result<Self, HarnessError> {
        let spawn_err = |source| HarnessError::Spawn {
            path: bin.to_owned(),
            source,
        };
        // setpriv would start and then fail to exec: say it here, as a spawn error.
        if !bin.is_file() {
            return Err(spawn_err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such file",
            )));
        }
        let logs = tempfile::tempdir().map_err(spawn_err)?;
        let (out_path, err_path) = (logs.path().join("stdout"), logs.path().join("stderr"));
        let out = std::fs::File::create(&out_path).map_err(spawn_err)?;
        let err = std::fs::File::create(&err_path).map_err(spawn_err)?;
        let mut cmd = seldon_supervise::command(bin);
        cmd.args(spec.args())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let mut child = Supervised::spawn(spec.name.clone(), cmd)
            .map_err(|e| spawn_err(std::io::Error::other(e.to_string())))?
            .with_grace(Duration::from_secs(2));
        let no_address = |child: &mut Supervised| {
            let _ = child.stop();
            HarnessError::NoAddress {
                name: spec.name.clone(),
                output: std::fs::read_to_string(&err_path).unwrap_or_default(),
            }
        };
        // Wait until the server bound its port (first stdout line) or exited.
        let deadline = Instant::now() + Duration::from_secs(10);
        let port = loop {
            let text = std::fs::read_to_string(&out_path).unwrap_or_default();
            if let Some(line) = text.lines().next().filter(|_| text.contains('\n')) {
                break line
                    .trim()
                    .strip_prefix("listening on ")
                    .and_then(|addr| addr.rsplit(':').next())
                    .and_then(|p| p.parse::<u16>().ok());
            }
            if !matches!(child.try_wait(), Ok(None)) || Instant::now() >= deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let Some(port) = port else {
            return Err(no_address(&mut child));
        };
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|source| HarnessError::Http {
                url: "(client)".into(),
                source,
            })?;
        let model = Self {
            child,
            _logs: logs,
            name: spec.name.clone(),
            port,
            http,
        };
        model.wait_ping(Duration::from_secs(10)).await?;
        model.clear_calls().await?;
        Ok(model)
    }

    async fn wait_ping(&self, timeout: Duration) -> Result<(), HarnessError> {
        let url = format!("{}/health/ping", self.url());
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(r) = self.http.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(HarnessError::NotReady {
                    name: self.name.clone(),
                    url,
                    secs: timeout.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An Envoy cluster named after the node, pointing at it.
    pub fn cluster(&self) -> seldon_envoy::Cluster {
        seldon_envoy::Cluster::http1(self.name.clone(), "127.0.0.1", self.port)
    }

    /// Every request the node received, oldest first (inspection endpoints excluded).
    pub async fn calls(&self) -> Result<Vec<Call>, HarnessError> {
        self.get_json("/_calls").await
    }

    /// Forgets the calls so far (`DELETE /_calls`); [`TestModel::spawn`] does it once the
    /// node answers, so readiness pings never show up in [`TestModel::calls`].
    pub async fn clear_calls(&self) -> Result<(), HarnessError> {
        let url = format!("{}/_calls", self.url());
        let err = |source| HarnessError::Http {
            url: url.clone(),
            source,
        };
        let resp = self.http.delete(&url).send().await.map_err(err)?;
        resp.error_for_status().map_err(err)?;
        Ok(())
    }

    /// Every `/send-feedback` body the node received.
    pub async fn feedback(&self) -> Result<Vec<Value>, HarnessError> {
        self.get_json("/_feedback").await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<T, HarnessError> {
        let url = format!("{}{path}", self.url());
        let err = |source| HarnessError::Http {
            url: url.clone(),
            source,
        };
        let resp = self.http.get(&url).send().await.map_err(err)?;
        resp.error_for_status()
            .map_err(err)?
            .json()
            .await
            .map_err(err)
    }
}

impl TestModel {
    /// The node's process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }
}
