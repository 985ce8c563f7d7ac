//! One benchmark run: start the topology, check every path answers the right body, warm
//! up, then measure the sides of each comparison in alternating order for several rounds.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::envoy::Runtime;
use crate::load::{self, Call, LoadSpec};
use crate::oha::{self, OhaResult, OhaSpec};
use crate::report::{Comparison, OhaRow, PeerSection, Report, Side};
use crate::stats::{self, Summary};
use crate::topology::{self, SetupError, Topology};

/// How to run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub rate: u32,
    pub duration: Duration,
    pub warmup: Duration,
    pub rounds: usize,
    pub connections: usize,
    pub saturation: Duration,
    pub saturation_connections: usize,
    pub envoy_concurrency: u32,
    pub envoy_cpu: Option<u32>,
    pub runtime: Runtime,
    /// Floats in the payload's one ndarray row.
    pub payload_floats: usize,
    /// `maxQueueSpans` of the traced listener (d), per Envoy worker.
    pub trace_queue_spans: u32,
    /// `None`: skip the oha runs (fixed rate and saturation).
    pub oha: Option<PathBuf>,
}

/// What failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Load(#[from] load::LoadError),
    #[error("peer table: {0}")]
    Peers(#[from] crate::peers::PeerError),
    #[error("{path}: {source}")]
    Call {
        path: &'static str,
        #[source]
        source: load::CallError,
    },
    #[error("{0}: wrong answer: {1}")]
    WrongAnswer(&'static str, String),
    #[error("{label}: {source}")]
    Stats {
        label: String,
        #[source]
        source: stats::StatsError,
    },
    /// The tracing scenario exported no span: (d) would not measure tracing.
    #[error("tracing scenario (d) is not measuring tracing: {0}")]
    NotTracing(String),
    #[error("{label}: {source}")]
    Oha {
        label: String,
        #[source]
        source: oha::OhaError,
    },
}

/// A Seldon message with one row of `n` floats (≈ 8 bytes each).
pub fn payload(n: usize) -> String {
    let row: Vec<f64> = (0..n).map(|i| (i as f64) * 0.125 + 0.5).collect();
    json!({ "data": { "names": (0..n).map(|i| format!("f{i}")).collect::<Vec<_>>(), "ndarray": [row] } }).to_string()
}

/// The answer's `data` must be the payload's (every node echoes).
pub fn check_answer(label: &'static str, sent: &str, got: &[u8]) -> Result<(), RunError> {
    let sent: Value =
        serde_json::from_str(sent).map_err(|e| RunError::WrongAnswer(label, e.to_string()))?;
    let got: Value = serde_json::from_slice(got).map_err(|e| {
        RunError::WrongAnswer(label, format!("{e}: {}", String::from_utf8_lossy(got)))
    })?;
    if got.get("data") != sent.get("data") {
        return Err(RunError::WrongAnswer(
            label,
            format!("data differs: {}", got.get("data").unwrap_or(&Value::Null)),
        ));
    }
    Ok(())
}

/// Envoy's CPU time so far (user + system, all threads), µs, from `/proc/<pid>/stat`.
pub(crate) fn cpu_us(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `(comm)`; utime and stime are fields 14 and 15 of the whole line.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks * 10_000) // CLK_TCK is 100 on Linux
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Direct3,
    Filter3,
    Filter3Traced,
    Filter1,
    Direct1,
}

/// Every path, in the order of the answer check and the warm-up.
const ALL: [Path; 5] = [
    Path::Direct3,
    Path::Filter3,
    Path::Filter3Traced,
    Path::Filter1,
    Path::Direct1,
];

impl Path {
    fn label(self) -> &'static str {
        match self {
            Path::Direct3 => "(a) client calls tin → m → out itself (3 plain Envoy routes)",
            Path::Filter3 => "(b) one request, filter runs the 3-node graph",
            Path::Filter3Traced => {
                "(d) filter runs the 3-node graph, tracing at 100% to a collector"
            }
            Path::Filter1 => "(c) filter, 1-node graph",
            Path::Direct1 => "(c) plain Envoy route, same server",
        }
    }
    fn chain(self, t: &Topology) -> Vec<Call> {
        match self {
            Path::Direct3 => t.direct3(),
            Path::Filter3 => t.filter3(),
            Path::Filter3Traced => t.filter3_traced(),
            Path::Filter1 => t.filter1(),
            Path::Direct1 => t.direct1(),
        }
    }
}

struct Samples {
    all: Vec<u64>,
    errors: u64,
    elapsed: f64,
    rounds: Vec<(f64, f64)>,
    first_error: Option<String>,
    envoy_cpu_us: u64,
}

impl Samples {
    fn new() -> Self {
        Self {
            all: Vec::new(),
            errors: 0,
            elapsed: 0.0,
            rounds: Vec::new(),
            first_error: None,
            envoy_cpu_us: 0,
        }
    }
}

fn url(call: &Call) -> String {
    format!("http://{}{}", call.addr, call.path)
}

pub(crate) async fn oha_run(
    bin: &std::path::Path,
    spec: OhaSpec,
    label: &str,
) -> Result<OhaResult, RunError> {
    let bin = bin.to_owned();
    tokio::task::spawn_blocking(move || oha::run(&bin, &spec))
        .await
        .map_err(|e| RunError::Oha {
            label: label.into(),
            source: oha::OhaError::Parse(e.to_string()),
        })?
        .map_err(|source| RunError::Oha {
            label: label.into(),
            source,
        })
}

/// Runs the whole benchmark; `log` gets progress lines.
pub async fn run(spec: &RunSpec, log: &mut dyn FnMut(&str)) -> Result<Report, RunError> {
    let t = Topology::start(
        spec.runtime,
        spec.envoy_concurrency,
        spec.envoy_cpu,
        spec.trace_queue_spans,
    )
    .await?;
    let pid = t.envoy.pid();
    log(&format!("envoy pid {pid} admin {}", t.envoy.admin_url));
    let body = payload(spec.payload_floats);
    let bytes = Bytes::from(body.clone());
    let mut checks = vec![format!(
        "payload: a Seldon message with one row of {} floats, {} bytes",
        spec.payload_floats,
        body.len()
    )];

    // Every path answers the payload's data.
    for p in ALL {
        let chain = p.chain(&t);
        let mut conns = load::connect(&chain).await?;
        let got = load::run_chain(&chain, &mut conns, bytes.clone())
            .await
            .map_err(|source| RunError::Call {
                path: p.label(),
                source,
            })?;
        check_answer(p.label(), &body, &got)?;
    }
    checks.push("before measuring, each of (a), (b), (c) filter, (c) direct and (d) answered the payload's `data` unchanged".into());

    let load_spec = |d: Duration| LoadSpec {
        rate: spec.rate,
        duration: d,
        connections: spec.connections,
        body: bytes.clone(),
    };
    // Warm-up: V8 tiers up, connection pools fill.
    for p in ALL {
        log(&format!("warm-up {}", p.label()));
        load::run(&p.chain(&t), &load_spec(spec.warmup)).await?;
        if let Some(bin) = &spec.oha {
            let chain = p.chain(&t);
            if chain.len() == 1 {
                let s = OhaSpec {
                    url: url(&chain[0]),
                    body: body.clone(),
                    duration: spec.warmup,
                    connections: spec.connections,
                    rate: Some(spec.rate),
                };
                oha_run(bin, s, p.label()).await?;
            }
        }
        t.clear_calls().await?;
    }

    let mut samples: Vec<(Path, Samples)> = ALL.into_iter().map(|p| (p, Samples::new())).collect();
    let mut oha_fixed: Vec<(Path, Vec<OhaResult>)> = [
        Path::Filter3,
        Path::Filter3Traced,
        Path::Filter1,
        Path::Direct1,
    ]
    .into_iter()
    .map(|p| (p, Vec::new()))
    .collect();
    // Saturation pairs (candidate, baseline): (c) filter vs direct, (d) traced vs untraced.
    const SAT_PAIRS: [(Path, Path); 2] = [
        (Path::Filter1, Path::Direct1),
        (Path::Filter3Traced, Path::Filter3),
    ];
    let mut sat: Vec<(Path, Vec<OhaResult>)> = SAT_PAIRS
        .iter()
        .flat_map(|(a, b)| [*a, *b])
        .map(|p| (p, Vec::new()))
        .collect();

    for round in 0..spec.rounds {
        // Alternate which side goes first, so drift hits both.
        let flip = round % 2 == 1;
        let order: Vec<Path> = if flip {
            vec![
                Path::Filter3Traced,
                Path::Filter3,
                Path::Direct3,
                Path::Direct1,
                Path::Filter1,
            ]
        } else {
            vec![
                Path::Direct3,
                Path::Filter3,
                Path::Filter3Traced,
                Path::Filter1,
                Path::Direct1,
            ]
        };
        for p in order {
            log(&format!("round {} generator {}", round + 1, p.label()));
            let cpu0 = cpu_us(pid);
            let r = load::run(&p.chain(&t), &load_spec(spec.duration)).await?;
            let cpu1 = cpu_us(pid);
            t.clear_calls().await?;
            let s = &mut samples
                .iter_mut()
                .find(|(q, _)| *q == p)
                .map(|(_, s)| s)
                .ok_or(RunError::WrongAnswer("internal", "path".into()))?;
            let mut round_samples = r.latencies_us.clone();
            if let Ok(sum) = stats::summarize(&mut round_samples, r.errors, r.elapsed.as_secs_f64())
            {
                s.rounds.push((sum.p50_us, sum.p99_us));
            }
            s.all.extend(r.latencies_us);
            s.errors += r.errors;
            s.elapsed += r.elapsed.as_secs_f64();
            s.envoy_cpu_us += cpu1.zip(cpu0).map(|(a, b)| a - b).unwrap_or(0);
            if s.first_error.is_none() {
                s.first_error = r.first_error;
            }
        }
        if let Some(bin) = &spec.oha {
            let mut order = vec![
                Path::Filter3,
                Path::Filter3Traced,
                Path::Filter1,
                Path::Direct1,
            ];
            if flip {
                order.reverse();
            }
            for p in order {
                log(&format!(
                    "round {} oha -q {} {}",
                    round + 1,
                    spec.rate,
                    p.label()
                ));
                let chain = p.chain(&t);
                let s = OhaSpec {
                    url: url(&chain[0]),
                    body: body.clone(),
                    duration: spec.duration,
                    connections: spec.connections,
                    rate: Some(spec.rate),
                };
                let r = oha_run(bin, s, p.label()).await?;
                t.clear_calls().await?;
                if let Some((_, v)) = oha_fixed.iter_mut().find(|(q, _)| *q == p) {
                    v.push(r);
                }
            }
            let order = SAT_PAIRS
                .iter()
                .flat_map(|&(a, b)| if flip { [b, a] } else { [a, b] });
            for p in order {
                log(&format!("round {} oha saturation {}", round + 1, p.label()));
                let chain = p.chain(&t);
                let s = OhaSpec {
                    url: url(&chain[0]),
                    body: body.clone(),
                    duration: spec.saturation,
                    connections: spec.saturation_connections,
                    rate: None,
                };
                let cpu0 = cpu_us(pid);
                let r = oha_run(bin, s, p.label()).await?;
                let cpu1 = cpu_us(pid);
                t.clear_calls().await?;
                let per_req = cpu1.zip(cpu0).map(|(a, b)| (a - b) as f64).unwrap_or(0.0)
                    / (r.ok.max(1) as f64);
                log(&format!(
                    "  {:.0} rps, envoy cpu {per_req:.1} µs/req",
                    r.rps
                ));
                checks.push(format!(
                    "saturation round {} {p:?}: {:.0} rps, Envoy CPU {per_req:.1} µs per request",
                    round + 1,
                    r.rps
                ));
                if let Some((_, v)) = sat.iter_mut().find(|(q, _)| *q == p) {
                    v.push(r);
                }
            }
        }
    }

    let mut side = |p: Path| -> Result<Side, RunError> {
        let (_, s) = samples
            .iter_mut()
            .find(|(q, _)| *q == p)
            .ok_or(RunError::WrongAnswer("internal", "path".into()))?;
        let summary: Summary =
            stats::summarize(&mut s.all, s.errors, s.elapsed).map_err(|source| {
                RunError::Stats {
                    label: p.label().into(),
                    source,
                }
            })?;
        let per_req = s.envoy_cpu_us as f64 / summary.count.max(1) as f64;
        let mut note = format!(
            "{p:?}: Envoy CPU {per_req:.0} µs per request at {} rps (from /proc/{pid}/stat, 10 ms ticks)",
            spec.rate
        );
        if s.errors > 0 {
            note.push_str(&format!(
                "; {} errors, first: {}",
                s.errors,
                s.first_error.clone().unwrap_or_default()
            ));
        }
        checks.push(note);
        Ok(Side {
            label: p.label().into(),
            summary,
            rounds: s.rounds.clone(),
        })
    };
    let filter3 = side(Path::Filter3)?;
    let three_node = Comparison {
        title: "(a) vs (b): 3-node graph".into(),
        direct: side(Path::Direct3)?,
        filter: filter3.clone(),
    };
    let one_node = Comparison {
        title: "(c): 1-node graph vs plain route".into(),
        direct: side(Path::Direct1)?,
        filter: side(Path::Filter1)?,
    };
    let tracing = Comparison {
        title: "(d) tracing: 3-node graph, traced at 100% vs untraced".into(),
        direct: filter3,
        filter: side(Path::Filter3Traced)?,
    };
    let row = |p: Path, v: Vec<OhaResult>| OhaRow {
        label: p.label().into(),
        rounds: v,
    };
    let oha_rows: Vec<OhaRow> = oha_fixed
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(p, v)| row(p, v))
        .collect();
    let mut pair = |a: Path, b: Path| -> Option<(OhaRow, OhaRow)> {
        let mut take = |p: Path| {
            sat.iter_mut()
                .find(|(q, _)| *q == p)
                .map(|(_, v)| std::mem::take(v))
                .filter(|v| !v.is_empty())
        };
        Some((row(a, take(a)?), row(b, take(b)?)))
    };
    let saturation = pair(Path::Filter1, Path::Direct1);
    let tracing_saturation = pair(Path::Filter3Traced, Path::Filter3);
    let tracing_warning = tracing_checks(&t, &mut checks).await?;
    for listener in ["graph3", "graph3-traced", "graph1"] {
        let hits = t
            .envoy
            .counter(&format!("http.{listener}.rq_direct_response"))
            .await;
        checks.push(format!("`http.{listener}.rq_direct_response` = {hits} (0: the router of the graph listener never saw a request)"));
    }
    // One keep-alive connection per worker should serve many requests; rq ≫ cx rules out
    // per-call connections on either path (the filter's node calls and the plain routes share
    // these clusters).
    for node in t.nodes.keys() {
        let rq = t
            .envoy
            .counter(&format!("cluster.{node}.upstream_rq_total"))
            .await;
        let cx = t
            .envoy
            .counter(&format!("cluster.{node}.upstream_cx_total"))
            .await;
        checks.push(format!(
            "`cluster.{node}`: upstream_rq_total {rq}, upstream_cx_total {cx}"
        ));
    }
    Ok(Report {
        command: String::new(),
        facts: Vec::new(),
        settings: Vec::new(),
        three_node,
        one_node,
        oha_fixed: oha_rows,
        saturation,
        tracing,
        tracing_saturation,
        tracing_warning,
        checks,
        peers: PeerSection::NotRun(PeerSection::HOW_TO.into()),
    })
}

/// What tracing did in (d): the sink's and Envoy's view of the export, read after one more
/// flush interval so the last queued spans are out. No exported span is a [`RunError`]; drops
/// or failed exports are a loud check line, also returned for the goals section.
async fn tracing_checks(
    t: &Topology,
    checks: &mut Vec<String>,
) -> Result<Option<String>, RunError> {
    let flush = t.tracing.flush_interval_ms;
    tokio::time::sleep(Duration::from_millis(flush + 500)).await;
    let exported = t
        .envoy
        .prometheus_sum("seldon_trace_spans_exported_total")
        .await;
    let dropped = t
        .envoy
        .prometheus_sum("seldon_trace_spans_dropped_total")
        .await;
    let failures = t
        .envoy
        .prometheus_sum("seldon_trace_export_failures_total")
        .await;
    let requests = t
        .envoy
        .counter("http.graph3-traced.downstream_rq_total")
        .await;
    let cluster_rq = t
        .envoy
        .counter(&format!(
            "cluster.{}.upstream_rq_total",
            topology::SINK_CLUSTER
        ))
        .await;
    checks.extend(tracing_line(TracingCounts {
        sink_requests: t.sink.requests(),
        sink_bytes: t.sink.bytes(),
        cluster_rq,
        traced_requests: requests,
        exported,
        dropped,
        failures,
    })?);
    Ok(checks.last().filter(|l| l.contains("WARNING")).cloned())
}

/// The counters behind [`tracing_line`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TracingCounts {
    sink_requests: u64,
    sink_bytes: u64,
    cluster_rq: u64,
    traced_requests: u64,
    exported: u64,
    dropped: u64,
    failures: u64,
}

/// The check lines of (d), or the error when nothing was exported.
fn tracing_line(c: TracingCounts) -> Result<Vec<String>, RunError> {
    let expected = c.traced_requests * topology::SPANS_PER_TRACED_REQUEST;
    let mut lines = vec![format!(
        "(d) tracing: collector sink got {} export POSTs, {} bytes (`cluster.{}.upstream_rq_total` {}); \
         `http.graph3-traced.downstream_rq_total` {} requests × {} spans = {expected} spans made; \
         filter counters: `seldon_trace_spans_exported_total` = {}, `seldon_trace_spans_dropped_total` = {}, \
         `seldon_trace_export_failures_total` = {}",
        c.sink_requests,
        c.sink_bytes,
        topology::SINK_CLUSTER,
        c.cluster_rq,
        c.traced_requests,
        topology::SPANS_PER_TRACED_REQUEST,
        c.exported,
        c.dropped,
        c.failures
    )];
    if c.exported == 0 || c.sink_requests == 0 {
        return Err(RunError::NotTracing(format!(
            "{} spans exported, {} POSTs reached the sink ({} dropped, {} failed exports)",
            c.exported, c.sink_requests, c.dropped, c.failures
        )));
    }
    if c.dropped > 0 || c.failures > 0 {
        lines.push(format!(
            "**WARNING: (d) did not export every span: {} spans dropped (queue full), {} export POSTs failed. \
             Dropped spans are never encoded or sent, so (d) understates the cost of tracing every request.**",
            c.dropped, c.failures
        ));
    } else {
        lines.push("(d) tracing: no span dropped, no export failed".into());
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts() -> TracingCounts {
        TracingCounts {
            sink_requests: 3,
            sink_bytes: 9000,
            cluster_rq: 3,
            traced_requests: 100,
            exported: 400,
            dropped: 0,
            failures: 0,
        }
    }

    #[test]
    fn every_span_exported_is_a_quiet_pass() {
        let lines = tracing_line(counts()).unwrap();
        assert!(
            lines[0].contains("`seldon_trace_spans_exported_total` = 400"),
            "{lines:?}"
        );
        assert!(
            lines[0].contains("100 requests × 4 spans = 400 spans made"),
            "{lines:?}"
        );
        assert!(
            lines[0].contains("sink got 3 export POSTs, 9000 bytes"),
            "{lines:?}"
        );
        assert_eq!(lines[1], "(d) tracing: no span dropped, no export failed");
    }

    #[test]
    fn drops_or_failed_exports_are_a_loud_warning() {
        let lines = tracing_line(TracingCounts {
            dropped: 7,
            failures: 1,
            ..counts()
        })
        .unwrap();
        assert!(
            lines[1].starts_with("**WARNING: (d) did not export every span: 7 spans dropped (queue full), 1 export POSTs failed"),
            "{lines:?}"
        );
    }

    #[test]
    fn no_exported_span_is_an_error() {
        let e = tracing_line(TracingCounts {
            exported: 0,
            dropped: 400,
            ..counts()
        })
        .unwrap_err();
        assert!(matches!(e, RunError::NotTracing(_)));
        assert!(e.to_string().contains("0 spans exported"), "{e}");
        let e = tracing_line(TracingCounts {
            sink_requests: 0,
            ..counts()
        })
        .unwrap_err();
        assert!(e.to_string().contains("0 POSTs reached the sink"), "{e}");
    }

    #[test]
    fn payload_is_a_seldon_message_of_n_floats() {
        let p: Value = serde_json::from_str(&payload(4)).unwrap();
        assert_eq!(p["data"]["ndarray"][0].as_array().unwrap().len(), 4);
        assert_eq!(p["data"]["names"][3], "f3");
    }

    #[test]
    fn the_echoed_data_passes_and_meta_is_ignored() {
        let sent = payload(2);
        let mut got: Value = serde_json::from_str(&sent).unwrap();
        got["meta"] = json!({"puid": "x"});
        assert!(check_answer("t", &sent, got.to_string().as_bytes()).is_ok());
    }

    #[test]
    fn different_data_or_garbage_fails() {
        let sent = payload(2);
        assert!(matches!(
            check_answer("t", &sent, payload(3).as_bytes()),
            Err(RunError::WrongAnswer(..))
        ));
        assert!(matches!(
            check_answer("t", &sent, b"oops"),
            Err(RunError::WrongAnswer(..))
        ));
    }
}
