//! `seldon-soak` (`make soak`): runs `seldon-mesh up` on the soak graph (src/lib.rs), sends
//! `SOAK_RPS` unique requests per second for the run's length, SIGKILLs a random node every
//! so often and restarts it on its port, samples VmRSS, and writes the report. Exit 1 if an
//! assertion failed, 2 if the soak could not run. Every process it starts is supervised: its
//! own `up` (which stops Envoy and the nodes it started) and the nodes it restarts die with it.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rand::Rng as _;
use seldon_local::RunState;
use seldon_soak::{
    Config, ErrorEvent, Kill, NODES, NodeSpec, Results, RssTrack, Verdict, judge, request_body,
    tail, testmodel_args, vm_rss_kib,
};
use seldon_supervise::Supervised;
use tokio::sync::Semaphore;

/// Requests in flight at most; beyond, a tick is counted as not sent.
const MAX_IN_FLIGHT: usize = 2000;
/// A request without an answer after this is a transport failure.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

fn main() -> ExitCode {
    let config = match Config::from_env(|k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("seldon-soak: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&config) {
        Ok(results) => {
            let span = config.rss_min_span.as_secs_f64();
            let report = results.markdown(span);
            println!("{report}");
            for (path, text) in [
                (&config.out, report.clone()),
                (&config.samples, results.samples_csv()),
            ] {
                if let Some(path) = path
                    && let Err(e) = std::fs::write(path, text)
                {
                    eprintln!("seldon-soak: cannot write {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            }
            let failures = results.failures(span);
            if failures.is_empty() {
                eprintln!("seldon-soak: passed");
                ExitCode::SUCCESS
            } else {
                eprintln!("seldon-soak: FAILED: {}", failures.join("; "));
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("seldon-soak: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Where the binaries are: `SOAK_BIN_DIR`, else this binary's folder (cargo puts
/// `seldon-mesh` and `testmodel` there); the filter: `SOAK_FILTER`, else the release module.
struct Bins {
    mesh: PathBuf,
    testmodel: PathBuf,
    filter: PathBuf,
}

fn bins() -> Result<Bins> {
    let dir = match std::env::var_os("SOAK_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => std::env::current_exe()?
            .parent()
            .context("this binary has no folder")?
            .to_path_buf(),
    };
    let filter = match std::env::var_os("SOAK_FILTER") {
        Some(f) => PathBuf::from(f),
        None => dir
            .parent()
            .map(|t| t.join("wasm32-wasip1/release/seldon_filter.wasm"))
            .unwrap_or_default(),
    };
    let b = Bins {
        mesh: dir.join("seldon-mesh"),
        testmodel: dir.join("testmodel"),
        filter,
    };
    for (p, how) in [
        (&b.mesh, "cargo build -p seldon-mesh"),
        (&b.testmodel, "cargo build -p seldon-e2e --bin testmodel"),
        (&b.filter, "make wasm"),
    ] {
        if !p.is_file() {
            bail!(
                "{} is missing: run `{how}` (or set SOAK_BIN_DIR / SOAK_FILTER)",
                p.display()
            );
        }
    }
    Ok(b)
}

/// The process that serves a node now.
enum Serving {
    /// The one `up` started (up owns it).
    ByUp(u32),
    /// A restart by the soak.
    Restarted(Supervised),
}

struct Node {
    spec: NodeSpec,
    port: u16,
    serving: Serving,
    pid: u32,
    /// 0 for `up`'s process, n for the n-th restart.
    incarnation: u32,
    /// Serving process gone (killed, not yet restarted).
    down: bool,
}

impl Node {
    fn label(&self) -> String {
        format!("{}#{}", self.spec.name, self.incarnation)
    }
}

struct Shared {
    t0: Instant,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    /// Envoy's admin address (for its memory stats).
    admin_url: String,
    results: Mutex<Results>,
    nodes: Mutex<Vec<Node>>,
}

impl Shared {
    fn now(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }
}

fn run(config: &Config) -> Result<Results> {
    let bins = bins()?;
    let dir = tempfile::Builder::new().prefix("seldon-soak-").tempdir()?;
    let started = start_up(&bins, dir.path())?;
    let state = RunState::read(&dir.path().join("run")).context("reading up.json")?;
    eprintln!(
        "soak: up is ready at {} (envoy pid {}); {} rps for {:.0} s, warm-up {:.0} s, a kill every ~{:.0} s",
        started.url,
        state.envoy.pid,
        config.rps,
        config.duration.as_secs_f64(),
        config.warmup.as_secs_f64(),
        config.kill_every.as_secs_f64()
    );
    let mut nodes = Vec::new();
    let mut tracks = vec![
        track("envoy", state.envoy.pid, 0.0, true),
        track("up", started.up.pid(), 0.0, false),
    ];
    for spec in NODES {
        let s = state
            .nodes
            .iter()
            .find(|n| n.node == spec.name)
            .with_context(|| format!("up.json has no node {}", spec.name))?;
        let node = Node {
            spec,
            port: s.port,
            serving: Serving::ByUp(s.pid),
            pid: s.pid,
            incarnation: 0,
            down: false,
        };
        tracks.push(track(&node.label(), s.pid, 0.0, true));
        nodes.push(node);
    }
    let shared = Arc::new(Shared {
        t0: Instant::now(),
        in_flight: AtomicU64::new(0),
        max_in_flight: AtomicU64::new(0),
        admin_url: state.envoy.admin_url.clone(),
        results: Mutex::new(Results {
            target_rps: config.rps,
            warmup: config.warmup.as_secs_f64(),
            rss: tracks,
            context: context(&bins, "start"),
            ..Results::default()
        }),
        nodes: Mutex::new(nodes),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(soak(config, &bins, dir.path(), &started.url, &shared));
    // Stop what the soak restarted, then `up` (Envoy and the nodes it started).
    let restarted: Vec<Node> = std::mem::take(&mut *lock(&shared.nodes));
    drop(restarted);
    let mut up = started.up;
    let _ = up.stop();
    let mut results = std::mem::take(&mut *lock(&shared.results));
    results.context.extend(context(&bins, "end"));
    outcome?;
    Ok(results)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn track(label: &str, pid: u32, started: f64, asserted: bool) -> RssTrack {
    RssTrack {
        label: label.to_string(),
        pid,
        started,
        samples: Vec::new(),
        asserted,
    }
}

struct Started {
    up: Supervised,
    url: String,
}

/// `seldon-mesh up` on the soak manifest, each node `exec testmodel …` on the port `up` gives
/// it; returns once `up` printed `watching …` (everything answers).
fn start_up(bins: &Bins, dir: &Path) -> Result<Started> {
    let file = dir.join("sdep.yaml");
    std::fs::write(&file, seldon_soak::MANIFEST)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let stderr = dir.join("up.stderr");
    let mut cmd = seldon_supervise::command(&bins.mesh);
    cmd.args(["up", "-f"])
        .arg(&file)
        .args(["--port", &port.to_string()])
        .arg("--filter")
        .arg(&bins.filter)
        .arg("--workdir")
        .arg(dir.join("run"));
    for spec in NODES {
        cmd.arg("--run").arg(format!(
            "{}=exec {} --port $PREDICTIVE_UNIT_HTTP_SERVICE_PORT {}",
            spec.name,
            bins.testmodel.display(),
            testmodel_args(&spec).join(" ")
        ));
    }
    let (reader, writer) = std::io::pipe()?;
    cmd.stdout(writer)
        .stderr(std::fs::File::create(&stderr)?)
        .stdin(Stdio::null());
    let up = Supervised::spawn("seldon-mesh up", cmd)?;
    let (tx, rx) = std::sync::mpsc::channel();
    // Reads up's stdout to the end (so it never blocks on a full pipe); sends the URL once
    // the start is over.
    std::thread::spawn(move || {
        let mut url = None;
        for line in std::io::BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if let Some(u) = line.strip_prefix("ready: ") {
                url = Some(u.to_string());
            }
            if line.starts_with("watching ")
                && let Some(u) = url.take()
            {
                let _ = tx.send(u);
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(180)) {
        Ok(url) => Ok(Started { up, url }),
        Err(_) => bail!(
            "seldon-mesh up was not ready within 180 s; its stderr ends with:\n{}",
            tail(&stderr, 20)
        ),
    }
}

async fn soak(
    config: &Config,
    bins: &Bins,
    dir: &Path,
    url: &str,
    shared: &Arc<Shared>,
) -> Result<()> {
    let end = shared.t0 + config.duration;
    let stop = tokio::sync::watch::channel(false);
    let sampler = tokio::spawn(sample_rss(shared.clone(), config.rss_every, stop.1.clone()));
    let cleaner = tokio::spawn(clear_call_logs(shared.clone(), stop.1.clone()));
    let killer = tokio::spawn(kill_and_restart(
        shared.clone(),
        config.clone(),
        bins.testmodel.clone(),
        dir.to_path_buf(),
        stop.1.clone(),
    ));
    let interrupted = tokio::select! {
        r = load(shared.clone(), url.to_string(), config.rps, end) => { r?; false }
        _ = tokio::signal::ctrl_c() => true,
    };
    let _ = stop.0.send(true);
    killer.await??;
    sampler.await?;
    cleaner.await?;
    let mut results = lock(&shared.results);
    results.seconds = shared.now().min(config.duration.as_secs_f64());
    results.max_in_flight = shared.max_in_flight.load(Ordering::Relaxed);
    if interrupted {
        results
            .context
            .push("interrupted (Ctrl-C) before the end".into());
    }
    Ok(())
}

/// An open-loop load: one request every 1/rps s until `end`, each on its own task, whatever
/// the answers take (up to MAX_IN_FLIGHT); then waits for the answers still due.
async fn load(shared: Arc<Shared>, url: String, rps: u32, end: Instant) -> Result<()> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(CLIENT_TIMEOUT)
        .build()?;
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rps)));
    let mut id: u64 = 0;
    loop {
        tick.tick().await;
        if Instant::now() >= end {
            break;
        }
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            lock(&shared.results).skipped += 1;
            continue;
        };
        id += 1;
        lock(&shared.results).sent += 1;
        let (client, url, shared) = (client.clone(), url.clone(), shared.clone());
        tokio::spawn(async move {
            let _permit = permit;
            one_request(&client, &url, id, &shared).await;
        });
    }
    // every permit back: every answer judged
    let _all = tokio::time::timeout(
        CLIENT_TIMEOUT + Duration::from_secs(5),
        in_flight.acquire_many(MAX_IN_FLIGHT as u32),
    )
    .await
    .context("answers still due after the client timeout")??;
    Ok(())
}

async fn one_request(client: &reqwest::Client, url: &str, id: u64, shared: &Shared) {
    let sent = shared.now();
    let started = Instant::now();
    let now_in_flight = shared.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
    shared
        .max_in_flight
        .fetch_max(now_in_flight, Ordering::Relaxed);
    let answer = async {
        let r = client
            .post(url)
            .header("content-type", "application/json")
            .body(request_body(id))
            .send()
            .await?;
        let status = r.status().as_u16();
        let node = r
            .headers()
            .get("seldon-node")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = r.bytes().await?;
        Ok::<_, reqwest::Error>((status, node, body))
    }
    .await;
    let done = shared.now();
    shared.in_flight.fetch_sub(1, Ordering::Relaxed);
    let mut res = lock(&shared.results);
    match answer {
        Err(e) => {
            res.transport += 1;
            if res.transport_examples.len() < 10 {
                res.transport_examples
                    .push(format!("request {id} at {sent:.2} s: no answer: {e}"));
            }
        }
        Ok((status, node, body)) => match judge(id, status, node.as_deref(), &body) {
            Verdict::Correct => {
                res.correct += 1;
                res.latencies_us
                    .push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
                for k in res.kills.iter_mut() {
                    if k.first_correct.is_none() && sent >= k.killed {
                        k.first_correct = Some(done);
                    }
                }
            }
            Verdict::Mismatch(why) => {
                res.mismatch_count += 1;
                if res.mismatches.len() < 10 {
                    res.mismatches.push(why);
                }
            }
            Verdict::Error { status, node } => {
                let key = (node.clone().unwrap_or_else(|| "-".into()), status);
                *res.errors.entry(key).or_default() += 1;
                if node.is_none() && res.transport_examples.len() < 10 {
                    let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
                    res.transport_examples
                        .push(format!("request {id}: {status} naming no node: {text}"));
                }
                res.error_events.push(ErrorEvent {
                    node,
                    status,
                    sent,
                    done,
                });
            }
        },
    }
}

/// After the warm-up, every [0.5, 1.5] × kill_every: SIGKILL a random node's process, leave
/// it down for [0, max_down], restart it on its port, wait for `/health/ping`. No kill is
/// started so late that the node would not be back 10 s before the end.
async fn kill_and_restart(
    shared: Arc<Shared>,
    config: Config,
    testmodel: PathBuf,
    dir: PathBuf,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let total = config.duration.as_secs_f64();
    let every = config.kill_every.as_secs_f64();
    let max_down = config.max_down.as_secs_f64();
    let mut next = config.warmup.as_secs_f64();
    loop {
        next += every * rand::rng().random_range(0.5..1.5);
        if next + max_down + 10.0 > total {
            return Ok(());
        }
        let wait = next - shared.now();
        if wait > 0.0 {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs_f64(wait)) => {}
                _ = stop.changed() => return Ok(()),
            }
        }
        let which = rand::rng().random_range(0..NODES.len());
        // the kill
        let (old, pid, port, spec, incarnation) = {
            let mut nodes = lock(&shared.nodes);
            let n = &mut nodes[which];
            match &n.serving {
                Serving::ByUp(pid) => {
                    kill(Pid::from_raw(*pid as i32), Signal::SIGKILL)
                        .with_context(|| format!("SIGKILL {} (pid {pid})", n.label()))?;
                }
                Serving::Restarted(s) => s
                    .signal_group(Signal::SIGKILL)
                    .with_context(|| format!("SIGKILL {} (pid {})", n.label(), n.pid))?,
            }
            n.down = true;
            let old = std::mem::replace(&mut n.serving, Serving::ByUp(0));
            (old, n.pid, n.port, n.spec, n.incarnation + 1)
        };
        let killed = shared.now();
        lock(&shared.results).kills.push(Kill {
            node: spec.name.to_string(),
            pid,
            killed,
            restarted: None,
            ready: None,
            first_correct: None,
        });
        eprintln!("soak: {killed:.1} s: killed {} (pid {pid})", spec.name);
        drop(old); // a restarted one is reaped here (it is dead: no grace period)
        let down = rand::rng().random_range(0.0..=max_down);
        tokio::time::sleep(Duration::from_secs_f64(down)).await;
        // the restart, on the runtime's worker thread (see seldon-supervise: the
        // parent-death signal follows the spawning thread)
        let log = dir.join(format!("{}.{incarnation}.log", spec.name));
        let child = restart(&testmodel, &spec, port, &log)?;
        let new_pid = child.pid();
        let restarted = shared.now();
        {
            let mut nodes = lock(&shared.nodes);
            let n = &mut nodes[which];
            n.serving = Serving::Restarted(child);
            n.pid = new_pid;
            n.incarnation = incarnation;
            n.down = false;
            let mut res = lock(&shared.results);
            res.rss.push(track(&n.label(), new_pid, restarted, true));
        }
        let ready = wait_ping(port, Duration::from_secs(30))
            .await
            .then(|| shared.now());
        if ready.is_none() {
            bail!(
                "{} did not answer /health/ping within 30 s of its restart; its log:\n{}",
                spec.name,
                tail(&log, 15)
            );
        }
        if let Some(k) = lock(&shared.results).kills.last_mut() {
            k.restarted = Some(restarted);
            k.ready = ready;
        }
        eprintln!(
            "soak: {restarted:.1} s: restarted {} on port {port} (pid {new_pid})",
            spec.name
        );
    }
}

fn restart(testmodel: &Path, spec: &NodeSpec, port: u16, log: &Path) -> Result<Supervised> {
    let out = std::fs::File::create(log)?;
    let mut cmd = seldon_supervise::command(testmodel);
    cmd.args(testmodel_args(spec))
        .args(["--port", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    Ok(Supervised::spawn(spec.name, cmd)?)
}

async fn wait_ping(port: u16, within: Duration) -> bool {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(1))
        .build();
    let Ok(client) = client else { return false };
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let r = client
            .get(format!("http://127.0.0.1:{port}/health/ping"))
            .send()
            .await;
        if r.is_ok_and(|r| r.status().is_success()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// VmRSS of Envoy, `up` and every node process serving now, every `every`.
async fn sample_rss(
    shared: Arc<Shared>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .ok();
    let stats_url = format!("{}/stats?filter=^server%5C.memory_", shared.admin_url);
    loop {
        let stats = match &client {
            Some(c) => match c.get(&stats_url).send().await {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            },
            None => String::new(),
        };
        let (envoy_allocated, envoy_heap) = seldon_soak::envoy_memory(&stats);
        let live: Vec<(String, u32)> = lock(&shared.nodes)
            .iter()
            .filter(|n| !n.down)
            .map(|n| (n.label(), n.pid))
            .collect();
        let t = shared.now();
        {
            let mut res = lock(&shared.results);
            res.timeline.push(seldon_soak::Sample {
                t,
                in_flight: shared.in_flight.load(Ordering::Relaxed),
                envoy_allocated,
                envoy_heap,
                load1: std::fs::read_to_string("/proc/loadavg")
                    .ok()
                    .and_then(|l| seldon_soak::load1(&l)),
            });
            for tr in res.rss.iter_mut() {
                let current = tr.label == "envoy"
                    || tr.label == "up"
                    || live.iter().any(|(l, p)| *l == tr.label && *p == tr.pid);
                if let Some(kib) = current.then(|| vm_rss_kib(tr.pid)).flatten() {
                    tr.samples.push((t, kib));
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}

/// `testmodel` keeps every call it answered for `/_calls`; forgetting them each second keeps
/// its memory about the load, not the run's length.
async fn clear_call_logs(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let Ok(client) = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(1))
        .build()
    else {
        return;
    };
    loop {
        let ports: Vec<u16> = lock(&shared.nodes).iter().map(|n| n.port).collect();
        for port in ports {
            let _ = client
                .delete(format!("http://127.0.0.1:{port}/_calls"))
                .send()
                .await;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Date, machine and load, at the start or the end.
fn context(bins: &Bins, when: &str) -> Vec<String> {
    let sh = |c: &str| {
        std::process::Command::new("sh")
            .args(["-c", c])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    if when == "start" {
        vec![
            format!(
                "{} UTC, commit {}, {} vCPUs (shared with other sessions' work), Linux {}",
                sh("date -u '+%Y-%m-%d %H:%M'"),
                sh("git rev-parse --short HEAD 2>/dev/null || echo '?'"),
                sh("nproc"),
                sh("uname -r"),
            ),
            format!(
                "binaries: {} (`seldon-mesh`, `testmodel`), filter {}",
                bins.mesh
                    .parent()
                    .map(Path::display)
                    .map(|d| d.to_string())
                    .unwrap_or_default(),
                bins.filter.display()
            ),
            format!("load average at the start: {}", load.join(" ")),
        ]
    } else {
        vec![format!("load average at the end: {}", load.join(" "))]
    }
}
