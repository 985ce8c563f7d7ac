//! `seldon-mesh up -f sdep.yaml`: local mode. Starts every node as a local process and a real
//! Envoy with the graph filter, prints how to call it, and runs until SIGINT (Ctrl-C),
//! SIGTERM or SIGHUP (or, with `--request`, sends that one prediction, prints the answer and
//! stops). Whichever way it ends, while starting or running, every process it started is
//! stopped before it exits; if `up` itself is killed, its children get SIGKILL from the kernel
//! (parent-death signal, see seldon-supervise). Exit status after a signal: 128 + its number.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use seldon_local::{LocalOptions, up};
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
    /// Where logs and the Envoy bootstrap go (default: a fresh temporary directory).
    #[arg(long, env = "SELDON_LOCAL_DIR")]
    pub workdir: Option<PathBuf>,
    /// Send this JSON to `/api/v1.0/predictions` (or `/v2/models/<root>/infer` for v2), print
    /// the answer and stop.
    #[arg(long)]
    pub request: Option<String>,
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
    let options = LocalOptions {
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
    };
    if !options.filter_wasm.is_file() {
        bail!(
            "the filter module {} does not exist; build it with `make wasm` or pass --filter",
            options.filter_wasm.display()
        );
    }
    let plan = seldon_local::plan(&parsed.sdep, &options, &mut || {
        Ok(seldon_envoy::free_port()?)
    })?;
    let v2 = plan
        .predictors
        .first()
        .is_some_and(|(_, c, _)| c.protocol == seldon_graph::Protocol::V2);
    let root = plan
        .predictors
        .first()
        .map(|(_, c, _)| c.graph.name.clone())
        .unwrap_or_default();
    let tmp;
    let workdir = match &args.workdir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let nodes: Vec<String> = plan
        .processes
        .iter()
        .map(|p| {
            format!(
                "node {}/{} on 127.0.0.1:{}",
                p.predictor, p.node, p.http_port
            )
        })
        .collect();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let mut stop = StopSignals::new()?;
        // A signal while starting drops the `up` future, which stops what it started.
        let running = tokio::select! {
            running = up(plan, &workdir) => running?,
            signal = stop.recv() => {
                eprintln!("{signal} while starting: stopped everything started so far");
                return Ok(signal.exit_code());
            }
        };
        let path = if v2 { format!("/v2/models/{root}/infer") } else { "/api/v1.0/predictions".to_string() };
        let url = format!("{}{path}", running.base_url);
        match args.request {
            Some(body) => {
                println!("$ curl -s -X POST {url} -H 'content-type: application/json' -d '{body}'");
                let client = reqwest::Client::builder().no_proxy().build()?;
                let send = client.post(&url).header("content-type", "application/json").body(body).send();
                let r = tokio::select! {
                    r = send => r?,
                    signal = stop.recv() => {
                        running.stop();
                        eprintln!("{signal}: stopped");
                        return Ok(signal.exit_code());
                    }
                };
                let status = r.status();
                let puid = r.headers().get("seldon-puid").and_then(|v| v.to_str().ok()).unwrap_or("-").to_string();
                let text = r.text().await?;
                println!("{status} (seldon-puid {puid})\n{text}");
                Ok(if status.is_success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
            }
            None => {
                for node in &nodes {
                    println!("{node}");
                }
                println!("logs and Envoy config: {}", workdir.display());
                println!("ready: {url}");
                println!("try: curl -s -X POST {url} -H 'content-type: application/json' -d '{{\"data\":{{\"ndarray\":[[1,2,3,4]]}}}}'");
                println!("Ctrl-C (or SIGTERM, SIGHUP) stops everything.");
                use std::io::Write as _;
                std::io::stdout().flush()?;
                let signal = stop.recv().await;
                running.stop();
                eprintln!("{signal}: stopped every node and Envoy");
                Ok(signal.exit_code())
            }
        }
    })
}

/// The signals that stop local mode: SIGINT (Ctrl-C), SIGTERM (kill, systemd, timeout, CI,
/// a container stop) and SIGHUP (the terminal went away).
struct StopSignals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

#[derive(Debug, Clone, Copy)]
enum StopSignal {
    Int,
    Term,
    Hup,
}

impl StopSignals {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    async fn recv(&mut self) -> StopSignal {
        tokio::select! {
            _ = self.int.recv() => StopSignal::Int,
            _ = self.term.recv() => StopSignal::Term,
            _ = self.hup.recv() => StopSignal::Hup,
        }
    }
}

impl StopSignal {
    /// 128 + the signal's number, as shells report a process ended by it.
    fn exit_code(self) -> ExitCode {
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
