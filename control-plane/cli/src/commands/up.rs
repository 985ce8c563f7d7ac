//! `seldon-mesh up -f sdep.yaml`: local mode. Starts every node as a local process and a real
//! Envoy with the graph filter, prints how to call it, and runs until SIGINT (Ctrl-C),
//! SIGTERM or SIGHUP (or, with `--request`, sends that one prediction, prints the answer and
//! stops). Whichever way it ends, while starting or running, every process it started is
//! stopped before it exits; if `up` itself is killed, its children get SIGKILL from the kernel
//! (parent-death signal, see seldon-supervise). Exit status after a signal: 128 + its number.
//!
//! While it runs, `up` watches the manifest (its content, every 200 ms: editors that save by
//! renaming a new file over it are seen too). A change is validated like the first manifest;
//! an invalid one is refused with the validator's message and the running graph stays. A
//! valid one is applied over xDS without restarting Envoy (`seldon_local::Running::reload`).

pub mod grpc_hint;
pub mod logs;
pub mod status;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use seldon_local::payload_logs::{LogTarget, PayloadSink};
use seldon_local::{EnvoyState, LocalOptions, Progress, RunState, up};
use tokio::signal::unix::{Signal, SignalKind, signal};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// SeldonDeployment YAML file (the first document is run).
    #[arg(short = 'f', long = "filename", env = "SELDON_FILE")]
    pub file: PathBuf,
    /// Port of the gateway (the ingress role): `/seldon/<ns>/<sdep>/…`.
    #[arg(long, default_value_t = 8000, env = "SELDON_LOCAL_PORT")]
    pub port: u16,
    /// Local command for a custom node, `NODE=COMMAND` (run with `sh -c`; it gets the
    /// `PREDICTIVE_UNIT_*` variables, e.g. `seldon-core-microservice MyModel`). Repeatable.
    #[arg(long = "run", value_name = "NODE=COMMAND")]
    pub run: Vec<String>,
    /// The model server for prepackaged implementations.
    #[arg(long, env = "SELDON_SERVER_BIN")]
    pub server: Option<PathBuf>,
    /// The filter module.
    #[arg(long, env = "SELDON_FILTER_WASM")]
    pub filter: Option<PathBuf>,
    /// Where logs, the Envoy bootstrap and the state for `status`/`logs` go. Default:
    /// `$XDG_STATE_HOME/seldon-mesh/up/<namespace>/<name>` (else `~/.local/state/…`), emptied
    /// at start and kept after `up` stops.
    #[arg(long, env = "SELDON_LOCAL_DIR")]
    pub workdir: Option<PathBuf>,
    /// Send this JSON to `/api/v1.0/predictions` (or `/v2/models/<root>/infer` for v2), print
    /// the answer and stop.
    #[arg(long)]
    pub request: Option<String>,
    /// Export trace spans (one per request, one per node call) as OTLP/HTTP protobuf to this
    /// collector base URL, e.g. `http://127.0.0.1:4318` (Jaeger, an OpenTelemetry Collector);
    /// `/v1/traces` is appended. Every node process gets it as `OTEL_EXPORTER_OTLP_ENDPOINT`,
    /// so seldon-server, SDK and Python-wrapper nodes add their own SERVER spans. Default: off,
    /// no spans are made; the nodes still get the caller's trace headers.
    #[arg(long, value_name = "URL", env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Where the payload logs of nodes with a `logger` go: an http:// URL taking CloudEvents
    /// (binary mode). Default: up's own sink, one JSON line per event in
    /// `<workdir>/payload-logs.jsonl`. The manifest's `logger.url` names a broker in the
    /// cluster and is not used locally; `logger.mode` is.
    #[arg(long, value_name = "URL", env = "SELDON_LOGGER_URL")]
    pub logger_url: Option<String>,
    /// Swagger UI's files (npm `swagger-ui-dist`, installed by `scripts/setup-apidocs.sh`),
    /// served at `/seldon/<ns>/<sdep>/api/v1.0/doc/`. Default:
    /// `${SELDON_MESH_CACHE:-~/.cache/seldon-mesh}/swagger-ui-dist/<version>`.
    #[arg(long, value_name = "DIR", env = "SELDON_SWAGGER_UI_DIR")]
    pub swagger_ui: Option<PathBuf>,
    /// Fetch remote `modelUri`s (s3://, gs://, az://, https://…) again instead of reusing
    /// `${SELDON_MESH_CACHE:-~/.cache/seldon-mesh}/models` (once per run). Credentials and
    /// endpoints come from the environment, as in the cluster's init container (AWS_*,
    /// RCLONE_CONFIG_*, GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_*).
    #[arg(long)]
    pub refresh_models: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let Some(parsed) = seldon_crd::parse_yaml(&text)?.into_iter().next() else {
        bail!("{} holds no SeldonDeployment", args.file.display());
    };
    let commands = args
        .run
        .iter()
        .map(|r| match r.split_once('=') {
            Some((node, command)) => Ok((node.trim().to_string(), command.to_string())),
            None => bail!("--run {r:?}: expected NODE=COMMAND"),
        })
        .collect::<anyhow::Result<BTreeMap<_, _>>>()?;
    let exe_dir = std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    // Bound before the plan, so the gateway's doc route knows its port.
    let docs_listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    // Likewise the payload-log sink, unless --logger-url names another destination.
    let (logs_listener, payload_logs) = match args.logger_url.as_deref() {
        Some(url) => (None, LogTarget::parse(url)?),
        None => {
            let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
            let port = listener.local_addr()?.port();
            (Some(listener), LogTarget::sink(port))
        }
    };
    let options = LocalOptions {
        docs_port: Some(docs_listener.local_addr()?.port()),
        gateway_port: args.port,
        server_bin: args
            .server
            .clone()
            .unwrap_or_else(|| beside(&exe_dir, "seldon-server")),
        filter_wasm: args
            .filter
            .clone()
            .unwrap_or_else(|| exe_dir.join("../wasm32-wasip1/release/seldon_filter.wasm")),
        commands,
        base_dir: args
            .file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        otlp: args
            .otlp_endpoint
            .as_deref()
            .map(seldon_local::otlp::OtlpEndpoint::parse)
            .transpose()?,
        payload_logs: Some(payload_logs),
    };
    if !options.filter_wasm.is_file() {
        bail!(
            "the filter module {} does not exist; build it with `make wasm` or pass --filter",
            options.filter_wasm.display()
        );
    }
    let plan = seldon_local::plan(&parsed.sdep, &options, &mut free_port)?;
    let models = std::sync::Arc::new(seldon_local::ModelCache::from_env(
        args.refresh_models,
        &exe_dir,
    )?);
    let v2 = plan
        .predictors
        .first()
        .is_some_and(|(_, c, _)| c.protocol == seldon_graph::Protocol::V2);
    let logs_payloads = plan
        .predictors
        .iter()
        .any(|(_, c, _)| c.payload_logger.is_some());
    let root = plan
        .predictors
        .first()
        .map(|(_, c, _)| c.graph.name.clone())
        .unwrap_or_default();
    let workdir = prepare_workdir(args.workdir.as_deref(), &parsed.sdep)?;
    let predict_path = if v2 {
        format!("/v2/models/{root}/infer")
    } else {
        "/api/v1.0/predictions".to_string()
    };
    let sample = if v2 {
        r#"{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP64","data":[5.1,3.5,1.4,0.2]}]}"#
            .to_string()
    } else {
        r#"{"data":{"ndarray":[[5.1,3.5,1.4,0.2]]}}"#.to_string()
    };
    let namespace = parsed
        .sdep
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let deployment = parsed.sdep.metadata.name.clone().unwrap_or_default();
    eprintln!(
        "starting {namespace}/{deployment}: {} node(s), logs in {}",
        plan.processes.len(),
        workdir.display()
    );
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let mut stop = StopSignals::new()?;
        let mut report = |p: Progress| eprintln!("{}", progress_line(&p));
        let target = seldon_local::apidocs::target(&plan).context("the plan has no predictor")?;
        let docs = seldon_local::apidocs::DocsServer::serve(
            docs_listener,
            args.swagger_ui.clone().unwrap_or_else(default_swagger_ui),
            &target,
        )?;
        // kept until up ends; also serves loggers a reload adds
        let sink = logs_listener
            .map(|l| PayloadSink::serve(l, &workdir.join(seldon_local::payload_logs::FILE)))
            .transpose()?;
        // A signal while starting drops the `up` future, which stops what it started.
        let running = tokio::select! {
            running = up(plan, &workdir, models, &mut report) => running?,
            signal = stop.recv() => {
                eprintln!("{signal} while starting: stopped everything started so far");
                return Ok(signal.exit_code());
            }
        };
        let url = format!("{}{predict_path}", running.base_url);
        let state = RunState {
            namespace,
            deployment,
            up_pid: std::process::id(),
            base_url: running.base_url.clone(),
            predict_path,
            envoy: EnvoyState {
                pid: running.envoy.pid(),
                admin_url: running.envoy.admin_url(),
                log: running.envoy.log_path().to_path_buf(),
            },
            nodes: running.nodes().to_vec(),
        };
        state.write(&workdir)?;
        match args.request {
            Some(body) => {
                println!("$ curl -s -X POST {url} -H 'content-type: application/json' -d '{body}'");
                let client = reqwest::Client::builder().no_proxy().build()?;
                let send = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send();
                let r = tokio::select! {
                    r = send => r?,
                    signal = stop.recv() => {
                        running.stop();
                        eprintln!("{signal}: stopped");
                        return Ok(signal.exit_code());
                    }
                };
                let status = r.status();
                let puid = r
                    .headers()
                    .get("seldon-puid")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_string();
                let text = r.text().await?;
                println!("{status} (seldon-puid {puid})\n{text}");
                Ok(if status.is_success() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                })
            }
            None => {
                // Best effort: a closed stdout (`up | head`, a test that stopped reading) must
                // not stop local mode.
                let mut out = std::io::stdout().lock();
                use std::io::Write as _;
                let _ = write!(out, "{}", summary(&state, true));
                let _ = writeln!(out, "ready: {url}");
                let _ = writeln!(
                    out,
                    "try: curl -s -X POST {url} -H 'content-type: application/json' -d '{sample}'"
                );
                // The graph also answers gRPC at the gateway port (h2c): Seldon Predict, or
                // v2 ModelInfer.
                if let Some(authority) = grpc_hint::authority_of(&running.base_url) {
                    match grpc_hint::write_protos(&workdir) {
                        Ok(protos) => {
                            let (ns, dep) = (&state.namespace, &state.deployment);
                            let cmd = if v2 {
                                grpc_hint::v2_model_infer(&protos, authority, ns, dep, &root)
                            } else {
                                grpc_hint::seldon_predict(&protos, authority, ns, dep, &sample)
                            };
                            let _ = writeln!(out, "try (gRPC): {cmd}");
                        }
                        Err(e) => eprintln!("no gRPC hint: writing the .proto files failed: {e}"),
                    }
                }
                let _ = writeln!(
                    out,
                    "swagger ui: {}{}{}",
                    running.base_url,
                    seldon_apidocs::DOC_PATH,
                    if docs.assets_installed() {
                        ""
                    } else {
                        "  (not installed: run scripts/setup-apidocs.sh)"
                    }
                );
                if logs_payloads {
                    let to = match (&sink, &args.logger_url) {
                        (Some(s), _) => s.file().display().to_string(),
                        (None, url) => url.clone().unwrap_or_default(),
                    };
                    let _ = writeln!(out, "payload logs: {to}");
                }
                let _ = writeln!(
                    out,
                    "status: seldon-mesh status -f {0}   logs: seldon-mesh logs -f {0} <node>",
                    args.file.display()
                );
                let _ = writeln!(
                    out,
                    "watching {} for changes; Ctrl-C (or SIGTERM, SIGHUP) stops everything.",
                    args.file.display()
                );
                let _ = out.flush();
                drop(out);
                let mut running = running;
                let mut state = state;
                let mut watch = ManifestWatch::new(&args.file, text);
                let signal = loop {
                    tokio::select! {
                        signal = stop.recv() => break signal,
                        () = tokio::time::sleep(WATCH_EVERY) => {}
                    }
                    running.reap_exited(&mut report);
                    // what earlier reloads replaced goes once Envoy's drain is over
                    let retired = tokio::select! {
                        r = running.retire_due(&mut report) => Ok(r),
                        signal = stop.recv() => Err(signal),
                    };
                    match retired {
                        Err(signal) => break signal,
                        Ok(Err(e)) => eprintln!("retiring replaced nodes failed: {e:#}"),
                        Ok(Ok(())) => {}
                    }
                    let Some(changed) = watch.changed() else {
                        continue;
                    };
                    eprintln!("{} changed: reloading", args.file.display());
                    let next = match next_plan(&changed, &options, running.plan()) {
                        Ok(next) => next,
                        Err(e) => {
                            eprintln!("refused: {e:#}\nthe running graph stays; fix the file and save it again");
                            continue;
                        }
                    };
                    let outcome = tokio::select! {
                        r = running.reload(next, &mut report) => Ok(r),
                        signal = stop.recv() => Err(signal),
                    };
                    match outcome {
                        Err(signal) => break signal,
                        Ok(Ok(())) => {
                            if let Some(target) = seldon_local::apidocs::target(running.plan()) {
                                docs.update(&target);
                            }
                        }
                        Ok(Err(e)) => eprintln!(
                            "reload failed: {e:#}\nthe running graph stays; fix the file and save it again"
                        ),
                    }
                    state.nodes = running.nodes().to_vec();
                    state.base_url = running.base_url.clone();
                    state.write(&workdir)?;
                };
                running.stop();
                eprintln!(
                    "{signal}: stopped every node and Envoy; logs kept in {}",
                    workdir.display()
                );
                Ok(signal.exit_code())
            }
        }
    })
}

/// How often `up` reads the manifest to see whether it changed.
const WATCH_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// Where `scripts/setup-apidocs.sh` installs swagger-ui-dist.
pub(crate) fn default_swagger_ui() -> PathBuf {
    let cache = std::env::var_os(seldon_envoy::CACHE_DIR_ENV)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/seldon-mesh")))
        .unwrap_or_default();
    cache
        .join("swagger-ui-dist")
        .join(seldon_apidocs::SWAGGER_UI_VERSION)
}

fn free_port() -> Result<u16, seldon_local::LocalError> {
    Ok(seldon_envoy::free_port()?)
}

/// The manifest's content, re-read every [`WATCH_EVERY`]: robust to saves that write in
/// place and to saves that rename a new file over the old one (no inotify watch to lose).
struct ManifestWatch {
    path: PathBuf,
    last: String,
}

impl ManifestWatch {
    fn new(path: &Path, text: String) -> Self {
        Self {
            path: path.to_path_buf(),
            last: text,
        }
    }

    /// The new content if it differs from the last one seen (an unreadable file, e.g. in the
    /// middle of a save, is no change).
    fn changed(&mut self) -> Option<String> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        if text == self.last {
            return None;
        }
        self.last = text.clone();
        Some(text)
    }
}

/// The plan for a changed manifest, validated like the first one; unchanged nodes keep
/// their processes and ports.
fn next_plan(
    text: &str,
    options: &LocalOptions,
    running: &seldon_local::LocalPlan,
) -> anyhow::Result<seldon_local::LocalPlan> {
    let Some(parsed) = seldon_crd::parse_yaml(text)?.into_iter().next() else {
        bail!("the file holds no SeldonDeployment");
    };
    Ok(seldon_local::plan_next(
        &parsed.sdep,
        options,
        &mut free_port,
        Some(running),
    )?)
}

/// The work directory: `--workdir` as given (created if missing), or the predictable default
/// (see `seldon_local::state`), emptied first so it holds only this run. Refuses to start if
/// the `up` recorded there still runs.
fn prepare_workdir(
    given: Option<&Path>,
    sdep: &seldon_crd::SeldonDeployment,
) -> anyhow::Result<PathBuf> {
    let dir = match given {
        Some(d) => d.to_path_buf(),
        None => default_workdir_of(sdep)?,
    };
    if let Ok(previous) = RunState::read(&dir)
        && previous.up_pid != std::process::id()
        && seldon_local::state::alive(previous.up_pid)
    {
        bail!(
            "{}/{} already runs from {} (seldon-mesh up, pid {}); stop it first, or pass another --workdir",
            previous.namespace,
            previous.deployment,
            dir.display(),
            previous.up_pid
        );
    }
    if given.is_none() && dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("emptying {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// `seldon_local::state::default_workdir` for this deployment and this user's environment.
pub fn default_workdir_of(sdep: &seldon_crd::SeldonDeployment) -> anyhow::Result<PathBuf> {
    let namespace = sdep.metadata.namespace.as_deref().unwrap_or("default");
    let name = sdep.metadata.name.as_deref().unwrap_or_default();
    Ok(seldon_local::state::default_workdir(
        std::env::var_os("XDG_STATE_HOME").map(PathBuf::from),
        std::env::var_os("HOME").map(PathBuf::from),
        namespace,
        name,
    )?)
}

/// One line per start-up step, on stderr.
fn progress_line(p: &Progress) -> String {
    match p {
        Progress::NodeStarted { node, pid } => format!("  started {node} (pid {pid})"),
        Progress::NodeReady { node, after } => {
            format!("  ready   {node} after {:.2} s", after.as_secs_f64())
        }
        Progress::EnvoyReady { pid, after } => {
            format!(
                "  ready   Envoy with the graph filter (pid {pid}) after {:.2} s",
                after.as_secs_f64()
            )
        }
        Progress::Ready { after } => {
            format!(
                "  ready   every predictor after {:.2} s",
                after.as_secs_f64()
            )
        }
        Progress::Reloaded { after } => format!(
            "  reloaded: the new graph answers, {:.2} s after the change was seen (same Envoy)",
            after.as_secs_f64()
        ),
        Progress::NodeStopped { node } => format!("  stopped {node} (removed or replaced)"),
        Progress::NodeExited { node, status, log } => format!(
            "  exited  {node} ({status}); requests through it answer 503 naming it until \
             something listens on its port again; its log: {}",
            log.display()
        ),
        Progress::ModelFetching { node, uri } => format!("  fetching {uri} for {node}"),
        Progress::ModelReady {
            node,
            dir,
            cached,
            after,
        } => format!(
            "  model   {node}: {} {} after {:.2} s",
            if *cached { "cached in" } else { "fetched to" },
            dir.display(),
            after.as_secs_f64()
        ),
    }
}

/// The table of what runs: one row per node and one for Envoy. `fresh`: just started, every
/// row is up; otherwise each row's health is checked (`status`).
pub fn summary(state: &RunState, fresh: bool) -> String {
    let health = |pid: u32| {
        if fresh || seldon_local::state::alive(pid) {
            "running"
        } else {
            "stopped"
        }
    };
    let mut rows = vec![[
        "PREDICTOR".to_string(),
        "NODE".into(),
        "ADDRESS".into(),
        "PID".into(),
        "STATE".into(),
        "LOG".into(),
    ]];
    for n in &state.nodes {
        rows.push([
            n.predictor.clone(),
            n.node.clone(),
            format!("127.0.0.1:{}", n.port),
            n.pid.to_string(),
            health(n.pid).into(),
            n.log.display().to_string(),
        ]);
    }
    rows.push([
        "-".into(),
        "envoy".into(),
        state
            .envoy
            .admin_url
            .trim_start_matches("http://")
            .to_string(),
        state.envoy.pid.to_string(),
        health(state.envoy.pid).into(),
        state.envoy.log.display().to_string(),
    ]);
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The signals that stop local mode: SIGINT (Ctrl-C), SIGTERM (kill, systemd, timeout, CI,
/// a container stop) and SIGHUP (the terminal went away).
pub(crate) struct StopSignals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum StopSignal {
    Int,
    Term,
    Hup,
}

impl StopSignals {
    pub(crate) fn new() -> std::io::Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    pub(crate) async fn recv(&mut self) -> StopSignal {
        tokio::select! {
            _ = self.int.recv() => StopSignal::Int,
            _ = self.term.recv() => StopSignal::Term,
            _ = self.hup.recv() => StopSignal::Hup,
        }
    }
}

impl StopSignal {
    /// 128 + the signal's number, as shells report a process ended by it.
    pub(crate) fn exit_code(self) -> ExitCode {
        ExitCode::from(match self {
            StopSignal::Hup => 129,
            StopSignal::Int => 130,
            StopSignal::Term => 143,
        })
    }
}

impl std::fmt::Display for StopSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopSignal::Int => "SIGINT",
            StopSignal::Term => "SIGTERM",
            StopSignal::Hup => "SIGHUP",
        })
    }
}

/// `dir/name` if it exists there, else `name` (found on PATH).
fn beside(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    if p.is_file() { p } else { PathBuf::from(name) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_watch_sees_saves_in_place_and_by_rename_but_not_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sdep.yaml");
        std::fs::write(&file, "a").unwrap();
        let mut watch = ManifestWatch::new(&file, "a".into());
        assert_eq!(watch.changed(), None, "same content");
        std::fs::write(&file, "b").unwrap();
        assert_eq!(watch.changed().as_deref(), Some("b"));
        assert_eq!(watch.changed(), None, "seen once");
        let tmp = dir.path().join("sdep.yaml.swp");
        std::fs::write(&tmp, "c").unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        assert_eq!(watch.changed().as_deref(), Some("c"), "an editor's rename");
        std::fs::remove_file(&file).unwrap();
        assert_eq!(
            watch.changed(),
            None,
            "a file in the middle of a save is no change"
        );
        std::fs::write(&file, "c").unwrap();
        assert_eq!(watch.changed(), None, "back to what runs");
    }

    #[test]
    fn a_changed_manifest_that_is_not_a_seldon_deployment_is_refused() {
        let options = LocalOptions {
            gateway_port: 8000,
            server_bin: "seldon-server".into(),
            filter_wasm: "/f.wasm".into(),
            commands: BTreeMap::new(),
            base_dir: ".".into(),
            otlp: None,
            payload_logs: None,
            docs_port: None,
        };
        let running = seldon_local::LocalPlan {
            processes: Vec::new(),
            envoy: seldon_envoy::EnvoyConfig::new(9901),
            predictors: Vec::new(),
            prefix: "/".into(),
        };
        let config_map = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n";
        let err = next_plan(config_map, &options, &running).unwrap_err();
        assert!(err.to_string().contains("SeldonDeployment"), "{err}");
        let err = next_plan("", &options, &running).unwrap_err();
        assert!(err.to_string().contains("no YAML document"), "{err}");
    }
}
