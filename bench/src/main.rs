//! `seldon-bench`: runs the data-plane benchmark and writes `docs/benchmarks/dataplane.md`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use seldon_bench::envoy::Runtime;
use seldon_bench::run::{self, RunSpec};
use seldon_bench::{peers, report};

#[derive(Debug, Parser)]
#[command(about = "Client-orchestrated calls vs the graph filter, side by side in one Envoy")]
struct Args {
    /// Fixed rate of the latency runs (requests, or 3-call chains, per second).
    #[arg(long, env = "SELDON_BENCH_RATE", default_value_t = 1000)]
    rate: u32,
    /// Seconds per side per round at the fixed rate.
    #[arg(long, env = "SELDON_BENCH_DURATION", default_value_t = 10.0)]
    duration: f64,
    /// Seconds of warm-up per path before measuring.
    #[arg(long, env = "SELDON_BENCH_WARMUP", default_value_t = 5.0)]
    warmup: f64,
    /// Rounds; sides alternate order each round.
    #[arg(long, env = "SELDON_BENCH_ROUNDS", default_value_t = 3)]
    rounds: usize,
    /// Client connections (workers) at the fixed rate, for the generator and oha alike.
    #[arg(long, env = "SELDON_BENCH_CONNECTIONS", default_value_t = 16)]
    connections: usize,
    /// Seconds per side per round at saturation.
    #[arg(long, env = "SELDON_BENCH_SATURATION", default_value_t = 10.0)]
    saturation: f64,
    /// oha connections at saturation (same for both sides).
    #[arg(
        long,
        env = "SELDON_BENCH_SATURATION_CONNECTIONS",
        default_value_t = 32
    )]
    saturation_connections: usize,
    /// Envoy worker threads.
    #[arg(long, env = "SELDON_BENCH_ENVOY_CONCURRENCY", default_value_t = 1)]
    envoy_concurrency: u32,
    /// Pin Envoy to this CPU (taskset); run the bench itself pinned elsewhere.
    #[arg(long, env = "SELDON_BENCH_ENVOY_CPU")]
    envoy_cpu: Option<u32>,
    /// Wasm runtime of the filter.
    #[arg(long, env = "SELDON_BENCH_RUNTIME", value_enum, default_value_t = Runtime::V8)]
    runtime: Runtime,
    /// Floats in the payload row.
    #[arg(long, env = "SELDON_BENCH_PAYLOAD_FLOATS", default_value_t = 64)]
    payload_floats: usize,
    /// `maxQueueSpans` (per Envoy worker) of the traced listener of scenario (d); the
    /// filter's default is 2048. At 1000 rps the 3-node graph makes 4000 spans/s, more than
    /// one flush per second ships from a 2048-span queue: raise this to measure tracing
    /// without drops.
    #[arg(long, env = "SELDON_BENCH_TRACE_QUEUE_SPANS", default_value_t = seldon_bench::topology::default_trace_queue_spans())]
    trace_queue_spans: u32,
    /// The directory with the peers' binaries (`scripts/peers-build.sh` prints it): runs the
    /// peer table (issue 12) after the other scenarios. Needs oha.
    #[arg(long, env = "SELDON_BENCH_PEERS")]
    peers: Option<PathBuf>,
    /// Fixed rate of the peer table.
    #[arg(long, env = "SELDON_BENCH_PEER_RATE", default_value_t = 500)]
    peer_rate: u32,
    /// The oha binary; without it the oha runs are skipped.
    #[arg(long, env = "SELDON_BENCH_OHA")]
    oha: Option<PathBuf>,
    /// Write the markdown report here (its hand-written part is kept); else print it.
    #[arg(long, env = "SELDON_BENCH_OUT")]
    out: Option<PathBuf>,
    /// The command line to put in the report.
    #[arg(long, env = "SELDON_BENCH_COMMAND", default_value = "scripts/bench.sh")]
    command: String,
    /// Tiny durations: proves the harness works, measures nothing.
    #[arg(long)]
    smoke: bool,
}

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|e| format!("({cmd}: {e})"))
}

fn facts(args: &Args) -> Vec<(String, String)> {
    let lscpu = sh("lscpu", &[]);
    let model = lscpu
        .lines()
        .find_map(|l| l.strip_prefix("Model name:"))
        .unwrap_or("?")
        .trim()
        .to_owned();
    let hyper = lscpu
        .lines()
        .find_map(|l| l.strip_prefix("Hypervisor vendor:"))
        .unwrap_or("none")
        .trim()
        .to_owned();
    let envoy = seldon_envoy::envoy_binary()
        .map(|b| sh(&b.display().to_string(), &["--version"]))
        .unwrap_or_else(|e| e.to_string());
    let wasm = seldon_e2e::graph::filter_wasm()
        .map(|p| {
            format!(
                "{} ({} bytes)",
                p.display(),
                std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0)
            )
        })
        .unwrap_or_else(|e| e.to_string());
    let mut f = vec![
        ("date (UTC)".into(), sh("date", &["-u", "+%Y-%m-%d %H:%M"])),
        ("nproc --all".into(), sh("nproc", &["--all"])),
        (
            "nice of the bench".into(),
            std::fs::read_to_string("/proc/self/stat")
                .ok()
                .and_then(|st| {
                    st.rsplit_once(')')
                        .and_then(|(_, r)| r.split_whitespace().nth(16).map(str::to_owned))
                })
                .unwrap_or_default(),
        ),
        ("CPU".into(), format!("{model}, hypervisor {hyper}")),
        ("kernel".into(), sh("uname", &["-r"])),
        (
            "load average at start".into(),
            std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .trim()
                .to_owned(),
        ),
        (
            "envoy".into(),
            envoy.lines().last().unwrap_or("?").trim().to_owned(),
        ),
        ("rustc".into(), sh("rustc", &["-V"])),
        ("filter module".into(), wasm),
        (
            "repository revision".into(),
            std::env::var("SELDON_BENCH_REV")
                .unwrap_or_else(|_| sh("git", &["rev-parse", "--short", "HEAD"])),
        ),
    ];
    if let Some(dir) = &args.peers {
        for name in [peers::KSERVE_ROUTER, peers::SELDON_EXECUTOR] {
            let stamp = std::fs::read_to_string(dir.join(format!("{name}.version")))
                .unwrap_or_else(|_| "? (no version stamp)".into());
            f.push((
                name.into(),
                format!("{} ({stamp})", dir.join(name).display()),
            ));
        }
    }
    if let Some(oha) = &args.oha {
        f.push((
            "oha".into(),
            seldon_bench::oha::version(oha).unwrap_or_else(|| "?".into()),
        ));
    }
    f
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let secs = Duration::from_secs_f64;
    let spec = if args.smoke {
        RunSpec {
            rate: 200,
            duration: secs(0.5),
            warmup: secs(0.2),
            rounds: 2,
            connections: 4,
            saturation: secs(0.5),
            saturation_connections: 4,
            envoy_concurrency: args.envoy_concurrency,
            envoy_cpu: args.envoy_cpu,
            runtime: args.runtime,
            payload_floats: args.payload_floats,
            trace_queue_spans: args.trace_queue_spans,
            oha: args.oha.clone(),
        }
    } else {
        RunSpec {
            rate: args.rate,
            duration: secs(args.duration),
            warmup: secs(args.warmup),
            rounds: args.rounds,
            connections: args.connections,
            saturation: secs(args.saturation),
            saturation_connections: args.saturation_connections,
            envoy_concurrency: args.envoy_concurrency,
            envoy_cpu: args.envoy_cpu,
            runtime: args.runtime,
            payload_floats: args.payload_floats,
            trace_queue_spans: args.trace_queue_spans,
            oha: args.oha.clone(),
        }
    };
    // Checked before anything starts: a missing peer fails the run at once.
    let peer_bins = args
        .peers
        .as_deref()
        .map(peers::PeerBins::find)
        .transpose()
        .context("--peers")?;
    let facts = facts(&args);
    let tracing = seldon_bench::topology::traced(0, spec.trace_queue_spans);
    let mut r = run::run(&spec, &mut |line| eprintln!("bench: {line}"))
        .await
        .context("benchmark run")?;
    if let Some(bins) = peer_bins {
        r.peers = match &spec.oha {
            None => report::PeerSection::NotRun(
                "not run: the peer table is measured with oha; give `--oha`".into(),
            ),
            Some(oha) => {
                let p = peers::PeerSpec {
                    bins,
                    oha: oha.clone(),
                    rate: if args.smoke { 200 } else { args.peer_rate },
                    duration: spec.duration,
                    warmup: spec.warmup,
                    rounds: spec.rounds,
                    connections: spec.connections,
                    saturation: spec.saturation,
                    saturation_connections: spec.saturation_connections,
                    orchestrator_cpu: spec.envoy_cpu,
                    runtime: spec.runtime,
                    body: run::payload(spec.payload_floats),
                };
                let t = peers::run(&p, &mut |line| eprintln!("bench: {line}"))
                    .await
                    .context("peer table")?;
                report::PeerSection::Measured(t)
            }
        };
    }
    r.command = args.command.clone();
    r.facts = facts;
    let pin = match spec.envoy_cpu {
        Some(c) => format!(
            "Envoy pinned to CPU {c} with taskset; generator, oha and nodes on the CPUs the bench runs on"
        ),
        None => "no pinning".into(),
    };
    r.settings = vec![
        ("fixed rate".into(), format!("{} rps, {} connections, {:?} per side per round, {} rounds, {:?} warm-up per path", spec.rate, spec.connections, spec.duration, spec.rounds, spec.warmup)),
        ("saturation".into(), format!("oha closed loop, {} connections, {:?} per side per round", spec.saturation_connections, spec.saturation)),
        ("Envoy".into(), format!("--concurrency {}, wasm runtime {}", spec.envoy_concurrency, spec.runtime.extension())),
        ("pinning".into(), pin),
        ("nodes".into(), "3 × `testmodel --mode echo` (release build), each behind an Envoy cluster; the 1-node graph and the (c) route use the same `m` server".into()),
        ("tracing (d)".into(), format!("`graph3-traced`: sampleRatio 1.0, flushIntervalMs {}, batchSpans {}, maxQueueSpans {} per worker, OTLP/HTTP protobuf to the bench's counting sink (cluster `otlp-sink`); its own Wasm VM", tracing.flush_interval_ms, tracing.batch_spans, tracing.max_queue_spans)),
        ("peers".into(), match &args.peers {
            Some(d) => format!("{} (`kserve-router`, `seldon-executor`); peer table at {} rps; Envoy and both peers on the orchestrator CPU ({})", d.display(), if args.smoke { 200 } else { args.peer_rate }, spec.envoy_cpu.map(|c| c.to_string()).unwrap_or_else(|| "not pinned".into())),
            None => "not run".into(),
        }),
        ("smoke".into(), args.smoke.to_string()),
    ];
    let previous = args
        .out
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok());
    let md = report::markdown(&r, previous.as_deref());
    match &args.out {
        Some(p) => {
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            std::fs::write(p, &md).with_context(|| format!("writing {}", p.display()))?;
            eprintln!("bench: wrote {}", p.display());
        }
        None => println!("{md}"),
    }
    Ok(())
}
