//! The impure edge: find the binary, validate a bootstrap, run Envoy as a child process.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use seldon_supervise::{SuperviseError, Supervised};

use crate::EnvoyError;
use crate::config::EnvoyConfig;
use crate::render::render;

/// Env var naming the Envoy binary; overrides the venv of `scripts/setup.sh`.
pub const ENVOY_BIN_ENV: &str = "SELDON_ENVOY_BIN";
/// Env var naming the cache directory (default `~/.cache/seldon-mesh`), as in `scripts/setup.sh`.
pub const CACHE_DIR_ENV: &str = "SELDON_MESH_CACHE";

/// How many bytes of Envoy's log an error quotes.
const LOG_TAIL_BYTES: u64 = 4096;

/// The Envoy binary: `$SELDON_ENVOY_BIN`, else the one `scripts/setup.sh` installs in
/// `~/.cache/seldon-mesh/venv` (`lib/python3.*/site-packages/envoy/_bin/envoy`).
pub fn envoy_binary() -> Result<PathBuf, EnvoyError> {
    locate(
        std::env::var_os(ENVOY_BIN_ENV).map(PathBuf::from),
        std::env::var_os(CACHE_DIR_ENV).map(PathBuf::from),
        std::env::var_os("HOME").map(PathBuf::from),
    )
}

/// [`envoy_binary`] over explicit values of its env vars, so tests need not mutate the env.
fn locate(
    bin: Option<PathBuf>,
    cache: Option<PathBuf>,
    home: Option<PathBuf>,
) -> Result<PathBuf, EnvoyError> {
    if let Some(path) = bin {
        return check_executable(path, &format!("from ${ENVOY_BIN_ENV}"));
    }
    let cache = match (cache, home) {
        (Some(dir), _) => dir,
        (None, Some(home)) => home.join(".cache/seldon-mesh"),
        (None, None) => {
            return Err(EnvoyError::BinaryNotFound {
                path: PathBuf::from("~/.cache/seldon-mesh"),
                reason: "HOME is not set".into(),
            });
        }
    };
    let lib = cache.join("venv/lib");
    // The python3.X folder depends on the interpreter setup.sh found; take whichever exists.
    let found = std::fs::read_dir(&lib).ok().and_then(|entries| {
        let mut candidates: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("python"))
            .map(|e| e.path().join("site-packages/envoy/_bin/envoy"))
            .filter(|p| p.is_file())
            .collect();
        candidates.sort();
        candidates.pop()
    });
    match found {
        Some(path) => check_executable(path, "from the venv"),
        None => Err(EnvoyError::BinaryNotFound {
            path: lib.join("python3.*/site-packages/envoy/_bin/envoy"),
            reason: "no such file".into(),
        }),
    }
}

fn check_executable(path: PathBuf, origin: &str) -> Result<PathBuf, EnvoyError> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(path),
        Ok(_) => Err(EnvoyError::BinaryNotFound {
            path,
            reason: format!("{origin}: not an executable file"),
        }),
        Err(e) => Err(EnvoyError::BinaryNotFound {
            path,
            reason: format!("{origin}: {e}"),
        }),
    }
}

/// Runs `envoy --mode validate -c <bootstrap>`; the error quotes Envoy's output.
pub fn validate(bootstrap: &Path) -> Result<(), EnvoyError> {
    let bin = envoy_binary()?;
    let out = Command::new(&bin)
        .args([
            "--mode",
            "validate",
            "-l",
            "warning",
            "--disable-hot-restart",
            "-c",
        ])
        .arg(bootstrap)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| EnvoyError::Io {
            action: "running",
            path: bin,
            source,
        })?;
    if out.status.success() {
        return Ok(());
    }
    let mut stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    stderr.push_str(&String::from_utf8_lossy(&out.stdout));
    Err(EnvoyError::Invalid {
        path: bootstrap.to_owned(),
        stderr,
    })
}

/// A port on 127.0.0.1 that was free a moment ago, for a listener another process binds
/// later.
///
/// It comes from below the kernel's ephemeral range (`ip_local_port_range`, 32768–60999 by
/// default), not from `bind(0)`: a port `bind(0)` hands out is in that range, where every
/// outgoing connection also takes its local port, so under load one of them could take it
/// before Envoy binds it (a CI run failed so: "cannot bind '127.0.0.1:33063': Address already
/// in use"). Candidates walk a sequence seeded by pid and time, so parallel tests and processes
/// start at different places; each is checked by binding it. Falls back to `bind(0)` when no
/// candidate is free.
pub fn free_port() -> Result<u16, EnvoyError> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let io = |source| EnvoyError::Io {
        action: "binding",
        path: "127.0.0.1:0".into(),
        source,
    };
    let (low, high) = listen_range();
    if high > low {
        let span = u32::from(high - low);
        let seed = std::process::id().wrapping_mul(2_654_435_761)
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
        let _ = NEXT.compare_exchange(0, seed | 1, Ordering::Relaxed, Ordering::Relaxed);
        for _ in 0..64 {
            // an odd step walks every port of the span before repeating one
            let n = NEXT.fetch_add(7919, Ordering::Relaxed);
            let port = low + u16::try_from(n % span).unwrap_or(0);
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io)?;
    Ok(listener.local_addr().map_err(io)?.port())
}

/// Ports [`free_port`] picks from: 20000 up to the start of the ephemeral range.
fn listen_range() -> (u16, u16) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    (20000, ephemeral_low.max(20000))
}

/// How to run Envoy.
#[derive(Debug, Clone)]
pub struct EnvoyOptions {
    /// `--concurrency`: worker threads, hence wasm VMs per plugin. Default 2.
    pub concurrency: u32,
    /// How long to wait for admin `/ready` to say `LIVE`. Default 60 s (V8 compiles an
    /// unoptimised module for seconds).
    pub ready_timeout: Duration,
    /// `-l`. Default `warning`.
    pub log_level: String,
}

impl Default for EnvoyOptions {
    fn default() -> Self {
        Self {
            concurrency: 2,
            ready_timeout: Duration::from_secs(60),
            log_level: "warning".into(),
        }
    }
}

/// A running Envoy; stopped (SIGTERM, then SIGKILL after a grace period) and reaped on drop.
#[derive(Debug)]
pub struct Envoy {
    child: Supervised,
    config: EnvoyConfig,
    config_path: PathBuf,
    log_path: PathBuf,
    http: reqwest::Client,
}

impl Envoy {
    /// [`Envoy::start_with`] default [`EnvoyOptions`].
    pub async fn start(config: EnvoyConfig, workdir: &Path) -> Result<Self, EnvoyError> {
        Self::start_with(config, workdir, &EnvoyOptions::default()).await
    }

    /// Writes `<workdir>/envoy.yaml`, spawns Envoy logging to `<workdir>/envoy.log`, and
    /// returns once admin `/ready` says `LIVE`. `--base-id` is the admin port and hot
    /// restart is disabled, so parallel instances share no state.
    pub async fn start_with(
        config: EnvoyConfig,
        workdir: &Path,
        options: &EnvoyOptions,
    ) -> Result<Self, EnvoyError> {
        let yaml = render(&config)?;
        Self::spawn(config, yaml, workdir, options, &[]).await
    }

    /// Like [`Envoy::start_with`], but Envoy gets its listeners and clusters from the ADS
    /// server on 127.0.0.1:`xds_port` (see [`crate::xds`]), which must already serve
    /// `config`; the bootstrap holds only admin and the `xds` cluster. Returns once admin
    /// `/ready` says `LIVE`, i.e. once Envoy took the first clusters and listeners.
    ///
    /// `drain_time`: how long a listener replaced by an update keeps its connections; they
    /// are told to close (HTTP/1 `connection: close`, HTTP/2 GOAWAY) right away
    /// (`--drain-strategy immediate`), and requests still running after it are cut.
    #[cfg(feature = "xds")]
    pub async fn start_xds(
        config: EnvoyConfig,
        xds_port: u16,
        drain_time: Duration,
        workdir: &Path,
        options: &EnvoyOptions,
    ) -> Result<Self, EnvoyError> {
        config.check()?;
        let yaml =
            serde_yaml::to_string(&crate::render::xds_bootstrap(config.admin_port, xds_port))?;
        let drain = drain_time.as_secs().max(1).to_string();
        let args = [
            "--drain-time-s",
            drain.as_str(),
            "--drain-strategy",
            "immediate",
        ];
        Self::spawn(config, yaml, workdir, options, &args).await
    }

    async fn spawn(
        config: EnvoyConfig,
        yaml: String,
        workdir: &Path,
        options: &EnvoyOptions,
        extra_args: &[&str],
    ) -> Result<Self, EnvoyError> {
        let bin = envoy_binary()?;
        let io = |action, path: &Path| {
            let path = path.to_owned();
            move |source| EnvoyError::Io {
                action,
                path,
                source,
            }
        };
        std::fs::create_dir_all(workdir).map_err(io("creating", workdir))?;
        let config_path = workdir.join("envoy.yaml");
        std::fs::write(&config_path, yaml).map_err(io("writing", &config_path))?;
        let log_path = workdir.join("envoy.log");
        let log = File::create(&log_path).map_err(io("creating", &log_path))?;
        let log_err = log
            .try_clone()
            .map_err(io("cloning handle of", &log_path))?;

        // Own process group + parent-death signal: Envoy never outlives its owner.
        let mut cmd = seldon_supervise::command(&bin);
        cmd.arg("-c")
            .arg(&config_path)
            .args(["--concurrency", &options.concurrency.to_string()])
            .args(["--base-id", &config.admin_port.to_string()])
            // No hot restart: otherwise every killed Envoy leaves
            // /dev/shm/envoy_shared_memory_<base-id>0 behind.
            .arg("--disable-hot-restart")
            .args(["-l", &options.log_level])
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let child = Supervised::spawn("envoy", cmd).map_err(|e| match e {
            SuperviseError::Spawn { source, .. } => io("spawning", &bin)(source),
        })?;

        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .map_err(|source| EnvoyError::Admin {
                url: "(client)".into(),
                source,
            })?;
        let mut envoy = Self {
            child,
            config,
            config_path,
            log_path,
            http,
        };
        envoy.wait_ready(options.ready_timeout).await?;
        Ok(envoy)
    }

    async fn wait_ready(&mut self, timeout: Duration) -> Result<(), EnvoyError> {
        let url = format!("{}/ready", self.admin_url());
        let deadline = Instant::now() + timeout;
        let mut last: String;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(EnvoyError::Exited {
                    status: status.to_string(),
                    log: self.log_path.clone(),
                    tail: log_tail(&self.log_path),
                });
            }
            match self.http.get(&url).send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let body = resp.text().await.unwrap_or_default();
                    if status.is_success() && body.trim() == "LIVE" {
                        return Ok(());
                    }
                    last = format!("{status} {}", body.trim());
                }
                Err(e) => last = e.to_string(),
            }
            if Instant::now() >= deadline {
                return Err(EnvoyError::NotReady {
                    secs: timeout.as_secs(),
                    last,
                    log: self.log_path.clone(),
                    tail: log_tail(&self.log_path),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Envoy's process id (tests check that a config change did not restart it).
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// `http://127.0.0.1:<admin_port>`.
    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.config.admin_port)
    }

    /// `http://127.0.0.1:<port>` of the listener called `name`.
    pub fn listener_url(&self, name: &str) -> Result<String, EnvoyError> {
        self.config
            .listener(name)
            .map(|l| format!("http://127.0.0.1:{}", l.port))
            .ok_or_else(|| EnvoyError::UnknownListener(name.to_owned()))
    }

    /// The config this Envoy runs.
    pub fn config(&self) -> &EnvoyConfig {
        &self.config
    }

    /// Records the config Envoy runs after an xDS update (its listener URLs come from it).
    pub fn set_config(&mut self, config: EnvoyConfig) {
        self.config = config;
    }

    /// The rendered bootstrap it was started with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Envoy's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last few KiB of Envoy's log, for assertion messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path)
    }

    /// Admin `/stats` in text form, one `name: value` per line.
    pub async fn stats(&self) -> Result<String, EnvoyError> {
        self.admin_get("/stats").await
    }

    /// The value of one counter or gauge, e.g. `http.graph.rq_direct_response`;
    /// `None` if Envoy has no such stat.
    pub async fn stat(&self, name: &str) -> Result<Option<u64>, EnvoyError> {
        let stats = self.stats().await?;
        Ok(stats.lines().find_map(|line| {
            let (k, v) = line.split_once(": ")?;
            (k == name).then(|| v.trim().parse().ok()).flatten()
        }))
    }

    /// How many requests reached the router of graph listener `listener`, i.e. got past the
    /// graph filter (its fallback `direct_response`). Must stay 0.
    pub async fn graph_fallback_hits(&self, listener: &str) -> Result<u64, EnvoyError> {
        Ok(self
            .stat(&format!("http.{listener}.rq_direct_response"))
            .await?
            .unwrap_or(0))
    }

    /// GET a path of the admin interface; a non-2xx answer is an error.
    pub async fn admin_get(&self, path: &str) -> Result<String, EnvoyError> {
        let url = format!("{}{path}", self.admin_url());
        let err = |source| EnvoyError::Admin {
            url: url.clone(),
            source,
        };
        let resp = self.http.get(&url).send().await.map_err(err)?;
        let resp = resp.error_for_status().map_err(err)?;
        resp.text().await.map_err(err)
    }
}

fn log_tail(path: &Path) -> String {
    let Ok(mut f) = File::open(path) else {
        return format!("(cannot open {})", path.display());
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_prefers_the_env_var_and_names_setup_sh_when_missing() {
        let err = locate(Some("/nonexistent/envoy".into()), None, None).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("/nonexistent/envoy") && msg.contains("SELDON_ENVOY_BIN"),
            "{msg}"
        );
        assert!(msg.contains("scripts/setup.sh"), "{msg}");

        let dir = tempfile::tempdir().unwrap();
        let err = locate(None, Some(dir.path().into()), None).unwrap_err();
        assert!(
            err.to_string()
                .contains("venv/lib/python3.*/site-packages/envoy/_bin/envoy"),
            "{err}"
        );

        let err = locate(None, None, None).unwrap_err();
        assert!(err.to_string().contains("HOME is not set"), "{err}");
    }

    #[test]
    fn locate_finds_the_venv_binary_and_rejects_a_non_executable_one() {
        use std::os::unix::fs::PermissionsExt;
        let home = tempfile::tempdir().unwrap();
        let bin_dir = home
            .path()
            .join(".cache/seldon-mesh/venv/lib/python3.12/site-packages/envoy/_bin");
        std::fs::create_dir_all(&bin_dir).unwrap();
        let bin = bin_dir.join("envoy");
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = locate(None, None, Some(home.path().into())).unwrap_err();
        assert!(err.to_string().contains("not an executable file"), "{err}");

        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(locate(None, None, Some(home.path().into())).unwrap(), bin);
    }

    #[test]
    fn free_port_is_bindable_below_the_ephemeral_range_and_varies() {
        let (low, high) = listen_range();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..20 {
            let port = free_port().unwrap();
            assert!((low..high).contains(&port), "{port} not in {low}..{high}");
            TcpListener::bind(("127.0.0.1", port)).unwrap();
            seen.insert(port);
        }
        assert_eq!(seen.len(), 20, "{seen:?}");
    }

    #[test]
    fn a_taken_port_is_skipped() {
        // hold the next candidates: free_port must still answer a port nobody holds
        let held: Vec<TcpListener> = (0..8)
            .filter_map(|_| TcpListener::bind(("127.0.0.1", free_port().ok()?)).ok())
            .collect();
        let port = free_port().unwrap();
        assert!(held.iter().all(|l| l.local_addr().unwrap().port() != port));
        TcpListener::bind(("127.0.0.1", port)).unwrap();
    }
}
