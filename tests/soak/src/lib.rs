//! The pure parts of the soak (issue 11 item 8): the graph it runs, the unique request and the
//! answer it must get back, how an answer is judged, memory samples and the report. The
//! process work (running `seldon-mesh up`, the load, the kills) is in `main.rs`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

/// One node of the soak graph: a `testmodel` (tests/e2e) in the given mode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeSpec {
    pub name: &'static str,
    /// `testmodel --mode`.
    pub mode: &'static str,
    /// `testmodel --add` (0 for the combiner).
    pub add: f64,
}

/// COMBINER `sum` over the MODELs `left` (+1) and `right` (+1000): the answer to `[[a, b]]`
/// is `[[2a + 1001, 2b + 1001]]`, and `meta.tags.path` lists the nodes it passed.
pub const NODES: [NodeSpec; 3] = [
    NodeSpec {
        name: "sum",
        mode: "aggregate",
        add: 0.0,
    },
    NodeSpec {
        name: "left",
        mode: "add",
        add: 1.0,
    },
    NodeSpec {
        name: "right",
        mode: "add",
        add: 1000.0,
    },
];

/// The SeldonDeployment `up` runs; every node is a custom container whose command the soak
/// passes with `--run`.
pub const MANIFEST: &str = r#"apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: soak
  namespace: soak
spec:
  predictors:
  - name: main
    graph:
      name: sum
      type: COMBINER
      children:
      - {name: left, type: MODEL}
      - {name: right, type: MODEL}
    componentSpecs:
    - spec:
        containers:
        - {name: sum, image: soak/sum:1}
        - {name: left, image: soak/left:1}
        - {name: right, image: soak/right:1}
"#;

/// `testmodel`'s arguments for `node`, without the port.
pub fn testmodel_args(node: &NodeSpec) -> Vec<String> {
    let mut args = vec![
        "--name".to_string(),
        node.name.to_string(),
        "--mode".to_string(),
        node.mode.to_string(),
    ];
    if node.add != 0.0 {
        args.push("--add".into());
        args.push(node.add.to_string());
    }
    args
}

/// The two numbers of request `id`: unique per request and exact in a double.
pub fn inputs(id: u64) -> [f64; 2] {
    let id = id as f64;
    [id, id * 1000.0 + 0.5]
}

/// The request body of request `id`.
pub fn request_body(id: u64) -> String {
    json!({"data": {"ndarray": [inputs(id)]}}).to_string()
}

/// What the graph must answer to request `id`.
pub fn expected_ndarray(id: u64) -> Value {
    let [a, b] = inputs(id);
    json!([[2.0 * a + 1001.0, 2.0 * b + 1001.0]])
}

/// The nodes an answer passed, in `meta.tags.path`: both children, then the combiner.
pub const EXPECTED_PATH: [&str; 3] = ["left", "right", "sum"];

/// How one request ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A 2xx with the answer of this request.
    Correct,
    /// A 2xx that is not the answer of this request (what it was instead).
    Mismatch(String),
    /// An error status; `node` is the node it names (`seldon-node`, else the JSON body).
    Error { status: u16, node: Option<String> },
}

/// Judges the answer to request `id`: `status`, the `seldon-node` header, the body.
pub fn judge(id: u64, status: u16, seldon_node: Option<&str>, body: &[u8]) -> Verdict {
    if (200..300).contains(&status) {
        return match check_answer(id, body) {
            Ok(()) => Verdict::Correct,
            Err(why) => Verdict::Mismatch(why),
        };
    }
    let node = seldon_node
        .map(str::to_string)
        .filter(|n| NODES.iter().any(|s| s.name == n))
        .or_else(|| node_in_body(body));
    Verdict::Error { status, node }
}

fn check_answer(id: u64, body: &[u8]) -> Result<(), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "request {id}: not JSON ({e}): {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )
    })?;
    let want = expected_ndarray(id);
    let got = v.pointer("/data/ndarray");
    if got != Some(&want) {
        return Err(format!("request {id}: data.ndarray {got:?}, want {want}"));
    }
    let path: Option<Vec<&str>> = v
        .pointer("/meta/tags/path")
        .and_then(Value::as_array)
        .map(|p| p.iter().filter_map(Value::as_str).collect());
    if path.as_deref() != Some(&EXPECTED_PATH[..]) {
        return Err(format!(
            "request {id}: meta.tags.path {path:?}, want {EXPECTED_PATH:?}"
        ));
    }
    Ok(())
}

/// A node named in a Seldon status body's `info`/`reason` as `` `name` `` or `"name"`.
fn node_in_body(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let status = v.get("status")?;
    let text = ["info", "reason"]
        .iter()
        .filter_map(|k| status.get(k).and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    NODES
        .iter()
        .find(|n| {
            text.contains(&format!("`{}`", n.name)) || text.contains(&format!("\"{}\"", n.name))
        })
        .map(|n| n.name.to_string())
}

/// VmRSS of `pid` in KiB (`/proc/<pid>/status`), None once it is gone.
pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

/// The `VmRSS:` line of a `/proc/<pid>/status` text, in KiB.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// The memory of one process (one incarnation of a node, Envoy, `up`) over the run.
#[derive(Debug, Clone, PartialEq)]
pub struct RssTrack {
    /// `envoy`, `up`, `left#0` (the node `up` started), `left#1` (its first restart), …
    pub label: String,
    pub pid: u32,
    /// Seconds since the run started when the process started (0 for those `up` started).
    pub started: f64,
    /// (seconds since the run started, KiB).
    pub samples: Vec<(f64, u64)>,
    /// Whether its growth is asserted (Envoy and the nodes; `up` is reported only).
    pub asserted: bool,
}

impl RssTrack {
    /// The first sample after the warm-up (`warmup` seconds after both the run's and the
    /// process's start) and the last one, if the two are `min_span` seconds apart or more.
    pub fn baseline_end(&self, warmup: f64, min_span: f64) -> Option<((f64, u64), (f64, u64))> {
        let from = warmup.max(self.started + warmup);
        let base = *self.samples.iter().find(|(t, _)| *t >= from)?;
        let end = *self.samples.last()?;
        (end.0 - base.0 >= min_span && base.1 > 0).then_some((base, end))
    }

    /// Growth from the baseline to the end, in percent.
    pub fn growth_percent(&self, warmup: f64, min_span: f64) -> Option<f64> {
        self.baseline_end(warmup, min_span)
            .map(|((_, a), (_, b))| (b as f64 - a as f64) * 100.0 / a as f64)
    }
}

/// What else is sampled with the RSS: the load's requests in flight and Envoy's tcmalloc
/// figures (`server.memory_allocated`: bytes in use; `server.memory_heap_size`: bytes the
/// heap holds from the OS, freed or not).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub t: f64,
    pub in_flight: u64,
    pub envoy_allocated: Option<u64>,
    pub envoy_heap: Option<u64>,
    /// The machine's 1-minute load average (`/proc/loadavg`).
    pub load1: Option<f64>,
}

/// The 1-minute load average from a `/proc/loadavg` text.
pub fn load1(loadavg: &str) -> Option<f64> {
    loadavg.split_whitespace().next()?.parse().ok()
}

/// `server.memory_allocated` and `server.memory_heap_size` from Envoy's `/stats` text.
pub fn envoy_memory(stats: &str) -> (Option<u64>, Option<u64>) {
    let get = |name: &str| {
        stats.lines().find_map(|l| {
            l.strip_prefix(name)
                .and_then(|r| r.strip_prefix(':'))
                .and_then(|v| v.trim().parse().ok())
        })
    };
    (
        get("server.memory_allocated"),
        get("server.memory_heap_size"),
    )
}

/// One kill of a node and its restart, in seconds since the run started.
#[derive(Debug, Clone, PartialEq)]
pub struct Kill {
    pub node: String,
    pub pid: u32,
    pub killed: f64,
    /// When the new process was started.
    pub restarted: Option<f64>,
    /// When it answered `/health/ping`.
    pub ready: Option<f64>,
    /// When the graph next answered correctly after the kill.
    pub first_correct: Option<f64>,
}

/// An error answer, kept to see whether the node it names was down at the time.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorEvent {
    pub node: Option<String>,
    pub status: u16,
    pub sent: f64,
    pub done: f64,
}

/// Whether `e` names a node that was being killed or restarted while the request ran (from
/// its kill to `grace` seconds after the new process answered).
pub fn blamed_node_was_down(e: &ErrorEvent, kills: &[Kill], grace: f64) -> bool {
    let Some(node) = &e.node else { return false };
    kills.iter().any(|k| {
        &k.node == node && e.done >= k.killed && e.sent <= k.ready.unwrap_or(f64::INFINITY) + grace
    })
}

/// Everything the soak measured.
#[derive(Debug, Clone, Default)]
pub struct Results {
    pub target_rps: u32,
    /// Seconds the load ran (after the warm-up too).
    pub seconds: f64,
    pub warmup: f64,
    pub sent: u64,
    /// Requests not sent because too many were in flight.
    pub skipped: u64,
    pub correct: u64,
    pub mismatches: Vec<String>,
    pub mismatch_count: u64,
    /// (node or "-", status) → count.
    pub errors: BTreeMap<(String, u16), u64>,
    pub error_events: Vec<ErrorEvent>,
    /// Requests that got no HTTP answer (connection refused/reset by Envoy, client timeout).
    pub transport: u64,
    pub transport_examples: Vec<String>,
    /// Latency of the correct answers, microseconds.
    pub latencies_us: Vec<u32>,
    pub kills: Vec<Kill>,
    pub rss: Vec<RssTrack>,
    /// Requests in flight and Envoy's own memory figures, at every RSS sample.
    pub timeline: Vec<Sample>,
    pub max_in_flight: u64,
    /// What ran it: date, machine, load.
    pub context: Vec<String>,
}

/// RSS growth allowed between the baseline and the end (issue 11: < 10%).
pub const MAX_RSS_GROWTH_PERCENT: f64 = 10.0;
/// An error may name a node this long after its restart answered `/health/ping`
/// (Envoy's connections to the dead process are being replaced).
pub const BLAME_GRACE_SECS: f64 = 2.0;

impl Results {
    pub fn answered(&self) -> u64 {
        self.correct + self.mismatch_count + self.errors.values().sum::<u64>()
    }

    /// Answers per second over the load's duration.
    pub fn achieved_rps(&self) -> f64 {
        if self.seconds > 0.0 {
            (self.answered() + self.transport) as f64 / self.seconds
        } else {
            0.0
        }
    }

    pub fn unnamed_errors(&self) -> u64 {
        self.error_events
            .iter()
            .filter(|e| e.node.is_none())
            .count() as u64
    }

    /// Errors naming a node that was up at the time (a blamed bystander).
    pub fn bystander_errors(&self) -> Vec<&ErrorEvent> {
        self.error_events
            .iter()
            .filter(|e| e.node.is_some() && !blamed_node_was_down(e, &self.kills, BLAME_GRACE_SECS))
            .collect()
    }

    /// The assertions that failed; empty when the soak passed.
    pub fn failures(&self, rss_min_span: f64) -> Vec<String> {
        let mut out = Vec::new();
        if self.mismatch_count > 0 {
            out.push(format!(
                "{} answers were not their request's",
                self.mismatch_count
            ));
        }
        let unnamed = self.unnamed_errors();
        if unnamed > 0 {
            out.push(format!("{unnamed} errors named no node"));
        }
        let bystanders = self.bystander_errors().len();
        if bystanders > 0 {
            out.push(format!("{bystanders} errors named a node that was up"));
        }
        if self.transport > 0 {
            out.push(format!("{} requests got no HTTP answer", self.transport));
        }
        let rps = self.achieved_rps();
        if rps < 0.95 * f64::from(self.target_rps) {
            out.push(format!(
                "{rps:.1} rps achieved, below 95% of {}",
                self.target_rps
            ));
        }
        for t in self.rss.iter().filter(|t| t.asserted) {
            if let Some(g) = t.growth_percent(self.warmup, rss_min_span)
                && g >= MAX_RSS_GROWTH_PERCENT
            {
                out.push(format!("{} (pid {}) RSS grew {g:.1}%", t.label, t.pid));
            }
        }
        if self
            .rss
            .iter()
            .any(|t| t.label == "envoy" && t.baseline_end(self.warmup, 0.0).is_none())
        {
            out.push("Envoy's RSS has no sample after the warm-up".into());
        }
        out
    }

    /// The report (docs/soak.md).
    pub fn markdown(&self, rss_min_span: f64) -> String {
        let mut s = String::new();
        let failures = self.failures(rss_min_span);
        let _ = writeln!(s, "# Soak: measured\n");
        let _ = writeln!(
            s,
            "`make soak` (tests/soak/README.md): `seldon-mesh up` on a COMBINER `sum` over the \
             MODELs `left` (+1) and `right` (+1000), all `testmodel` nodes, behind the real \
             Envoy and the release graph filter. Every request carries unique numbers; a 2xx \
             must hold exactly its own `2x + 1001` and the path `left, right, sum`. Random \
             nodes are SIGKILLed and restarted on their port by the soak (`up` does not \
             restart a node).\n"
        );
        for c in &self.context {
            let _ = writeln!(s, "- {c}");
        }
        let _ = writeln!(
            s,
            "\n**Verdict: {}**\n",
            if failures.is_empty() {
                "passed".to_string()
            } else {
                format!("FAILED — {}", failures.join("; "))
            }
        );
        let mut lat = self.latencies_us.clone();
        lat.sort_unstable();
        let pct = |p: f64| -> String {
            if lat.is_empty() {
                "-".into()
            } else {
                let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
                format!("{:.1} ms", f64::from(lat[i]) / 1000.0)
            }
        };
        let errors: u64 = self.errors.values().sum();
        let _ = writeln!(s, "## Requests\n");
        let _ = writeln!(s, "| figure | value |\n|---|---:|");
        for (k, v) in [
            ("target rate", format!("{} rps", self.target_rps)),
            (
                "load time (after a warm-up of)",
                format!("{:.0} s ({:.0} s)", self.seconds, self.warmup),
            ),
            ("requests sent", self.sent.to_string()),
            ("achieved", format!("{:.1} rps", self.achieved_rps())),
            ("not sent (too many in flight)", self.skipped.to_string()),
            (
                "2xx, correct for their own request",
                self.correct.to_string(),
            ),
            ("2xx, mismatched", self.mismatch_count.to_string()),
            ("errors (status ≥ 300)", errors.to_string()),
            ("errors naming no node", self.unnamed_errors().to_string()),
            (
                "errors naming a node that was up",
                self.bystander_errors().len().to_string(),
            ),
            ("no HTTP answer", self.transport.to_string()),
            (
                "latency of correct answers p50 / p99 / max",
                format!("{} / {} / {}", pct(0.5), pct(0.99), pct(1.0)),
            ),
        ] {
            let _ = writeln!(s, "| {k} | {v} |");
        }
        let _ = writeln!(s, "\n## Errors by node and status\n");
        if self.errors.is_empty() {
            let _ = writeln!(s, "None.");
        } else {
            let _ = writeln!(s, "| node | status | count |\n|---|---:|---:|");
            for ((node, status), n) in &self.errors {
                let _ = writeln!(s, "| {node} | {status} | {n} |");
            }
        }
        let _ = writeln!(s, "\n## Kills\n");
        if self.kills.is_empty() {
            let _ = writeln!(s, "None.");
        } else {
            let _ = writeln!(
                s,
                "Seconds since the load started (the warm-up included). *Recovered*: the first \
                 correct answer after the kill.\n"
            );
            let _ = writeln!(
                s,
                "| # | node | pid | killed at | restarted after | answering /health/ping after | recovered after | errors naming it |\n|---:|---|---:|---:|---:|---:|---:|---:|"
            );
            let opt = |o: Option<f64>, from: f64| {
                o.map_or("-".to_string(), |t| format!("{:.2} s", t - from))
            };
            for (i, k) in self.kills.iter().enumerate() {
                let named = self
                    .error_events
                    .iter()
                    .filter(|e| {
                        e.node.as_deref() == Some(k.node.as_str())
                            && blamed_node_was_down(e, std::slice::from_ref(k), BLAME_GRACE_SECS)
                    })
                    .count();
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.1} s | {} | {} | {} | {named} |",
                    i + 1,
                    k.node,
                    k.pid,
                    k.killed,
                    opt(k.restarted, k.killed),
                    opt(k.ready, k.killed),
                    opt(k.first_correct, k.killed),
                );
            }
        }
        let _ = writeln!(s, "\n## Memory (VmRSS)\n");
        let _ = writeln!(
            s,
            "Baseline: the first sample {:.0} s after both the load's and the process's start; \
             end: its last sample (at the end, or before it was killed). Growth is asserted \
             (< {MAX_RSS_GROWTH_PERCENT}%) for Envoy and for every node process whose baseline \
             and end are {rss_min_span:.0} s apart or more; `up` is reported only.\n",
            self.warmup
        );
        let _ = writeln!(
            s,
            "| process | pid | started at | baseline | end | growth | asserted |\n|---|---:|---:|---:|---:|---:|---|"
        );
        for t in &self.rss {
            let kib = |(at, k): (f64, u64)| format!("{:.1} MiB at {at:.0} s", k as f64 / 1024.0);
            let (base, end, growth) = match t.baseline_end(self.warmup, 0.0) {
                Some((b, e)) => (
                    kib(b),
                    kib(e),
                    format!("{:+.1}%", (e.1 as f64 - b.1 as f64) * 100.0 / b.1 as f64),
                ),
                None => ("-".into(), "-".into(), "-".into()),
            };
            let asserted = t.asserted && t.baseline_end(self.warmup, rss_min_span).is_some();
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} s | {base} | {end} | {growth} | {} |",
                t.label,
                t.pid,
                t.started,
                if !t.asserted {
                    "no (reported)"
                } else if asserted {
                    "yes"
                } else {
                    "no (too short)"
                }
            );
        }
        let _ = writeln!(s, "\n## Over time\n");
        let _ = writeln!(
            s,
            "At most {} requests were in flight at once. Envoy's RSS beside what its allocator \
             says is in use (`server.memory_allocated`) and what its heap holds \
             (`server.memory_heap_size`); every sample is in the samples CSV.\n",
            self.max_in_flight
        );
        let _ = writeln!(
            s,
            "| at | in flight | Envoy RSS | allocated | heap | load (1 min) |\n|---:|---:|---:|---:|---:|---:|"
        );
        let mib = |b: Option<u64>| {
            b.map_or("-".to_string(), |b| {
                format!("{:.1} MiB", b as f64 / 1048576.0)
            })
        };
        let envoy = self.rss.iter().find(|t| t.label == "envoy");
        let step = (self.timeline.len() / 12).max(1);
        for (i, x) in self.timeline.iter().enumerate() {
            if i % step != 0 && i + 1 != self.timeline.len() {
                continue;
            }
            let rss = envoy
                .and_then(|e| {
                    e.samples
                        .iter()
                        .min_by(|a, b| (a.0 - x.t).abs().total_cmp(&(b.0 - x.t).abs()))
                })
                .map(|(_, k)| k * 1024);
            let _ = writeln!(
                s,
                "| {:.0} s | {} | {} | {} | {} | {} |",
                x.t,
                x.in_flight,
                mib(rss),
                mib(x.envoy_allocated),
                mib(x.envoy_heap),
                x.load1.map_or("-".into(), |l| format!("{l:.1}"))
            );
        }
        if !self.mismatches.is_empty() || !self.transport_examples.is_empty() {
            let _ = writeln!(s, "\n## Examples\n");
            for m in self.mismatches.iter().chain(&self.transport_examples) {
                let _ = writeln!(s, "- {m}");
            }
        }
        s
    }
}

impl Results {
    /// Every sample, one per line: `seconds,series,value` (series `rss_kib:<process>#<pid>`,
    /// `in_flight`, `envoy_allocated`, `envoy_heap`).
    pub fn samples_csv(&self) -> String {
        let mut s = String::from("seconds,series,value\n");
        for t in &self.rss {
            for (at, kib) in &t.samples {
                let _ = writeln!(s, "{at:.1},rss_kib:{}#{},{kib}", t.label, t.pid);
            }
        }
        for x in &self.timeline {
            let _ = writeln!(s, "{:.1},in_flight,{}", x.t, x.in_flight);
            if let Some(a) = x.envoy_allocated {
                let _ = writeln!(s, "{:.1},envoy_allocated,{a}", x.t);
            }
            if let Some(h) = x.envoy_heap {
                let _ = writeln!(s, "{:.1},envoy_heap,{h}", x.t);
            }
            if let Some(l) = x.load1 {
                let _ = writeln!(s, "{:.1},load1,{l}", x.t);
            }
        }
        s
    }
}

/// Settings from the environment (see the README).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub duration: Duration,
    pub warmup: Duration,
    pub rps: u32,
    /// Mean time between kills (each gap is uniform in [0.5, 1.5] × this).
    pub kill_every: Duration,
    /// How long a killed node stays down before its restart (uniform in [0, this]).
    pub max_down: Duration,
    pub rss_every: Duration,
    /// Minimum baseline-to-end span for a node's RSS growth to be asserted.
    pub rss_min_span: Duration,
    /// Where the report goes, besides stdout.
    pub out: Option<std::path::PathBuf>,
    /// Where every sample goes (CSV), `SOAK_SAMPLES`, else beside `out` as `<out>-samples.csv`.
    pub samples: Option<std::path::PathBuf>,
}

impl Config {
    /// `SOAK_SECONDS` (else `SOAK_MINUTES` × 60, default 30 min), `SOAK_RPS` (500),
    /// `SOAK_WARMUP_SECONDS` (60, or a tenth of a shorter run), `SOAK_KILL_EVERY_SECONDS`
    /// (90, or a fifth of a shorter run), `SOAK_MAX_DOWN_SECONDS` (3),
    /// `SOAK_RSS_MIN_SPAN_SECONDS` (300, or half the run), `SOAK_OUT`.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let num = |k: &str| -> Result<Option<f64>, String> {
            get(k)
                .filter(|v| !v.trim().is_empty())
                .map(|v| {
                    v.trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|n| n.is_finite() && *n >= 0.0)
                        .ok_or_else(|| format!("{k}={v:?} is not a non-negative number"))
                })
                .transpose()
        };
        let secs = match (num("SOAK_SECONDS")?, num("SOAK_MINUTES")?) {
            (Some(s), _) => s,
            (None, Some(m)) => m * 60.0,
            (None, None) => 1800.0,
        };
        if secs < 5.0 {
            return Err(format!("a soak of {secs} s is too short (5 s at least)"));
        }
        let rps = num("SOAK_RPS")?.unwrap_or(500.0);
        if !(1.0..=20_000.0).contains(&rps) {
            return Err(format!("SOAK_RPS={rps} is outside 1..=20000"));
        }
        let d = Duration::from_secs_f64;
        Ok(Config {
            duration: d(secs),
            warmup: d(num("SOAK_WARMUP_SECONDS")?.unwrap_or((secs / 10.0).min(60.0))),
            rps: rps as u32,
            kill_every: d(num("SOAK_KILL_EVERY_SECONDS")?.unwrap_or((secs / 5.0).min(90.0))),
            max_down: d(num("SOAK_MAX_DOWN_SECONDS")?.unwrap_or(3.0)),
            rss_every: d(num("SOAK_RSS_EVERY_SECONDS")?.unwrap_or(if secs < 300.0 {
                1.0
            } else {
                5.0
            })),
            rss_min_span: d(num("SOAK_RSS_MIN_SPAN_SECONDS")?.unwrap_or((secs / 2.0).min(300.0))),
            out: get("SOAK_OUT").filter(|v| !v.is_empty()).map(Into::into),
            samples: get("SOAK_SAMPLES")
                .filter(|v| !v.is_empty())
                .map(Into::into)
                .or_else(|| {
                    get("SOAK_OUT")
                        .filter(|v| !v.is_empty())
                        .map(|o| o.trim_end_matches(".md").to_string() + "-samples.csv")
                        .map(Into::into)
                }),
        })
    }
}

/// The last `n` lines of a file, for an error message.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(id: u64) -> String {
        json!({"data": {"ndarray": expected_ndarray(id)},
               "meta": {"tags": {"path": EXPECTED_PATH, "sum": true}}})
        .to_string()
    }

    #[test]
    fn the_answer_of_its_own_request_is_correct() {
        assert_eq!(judge(7, 200, None, answer(7).as_bytes()), Verdict::Correct);
        assert_eq!(expected_ndarray(7), json!([[1015.0, 15002.0]]));
        assert!(
            request_body(7).contains("[7.0,7000.5]"),
            "{}",
            request_body(7)
        );
    }

    #[test]
    fn another_requests_answer_or_a_wrong_path_is_a_mismatch() {
        let Verdict::Mismatch(why) = judge(8, 200, None, answer(7).as_bytes()) else {
            panic!("another request's answer passed");
        };
        assert!(why.contains("request 8: data.ndarray"), "{why}");
        let short = json!({"data": {"ndarray": expected_ndarray(3)}, "meta": {"tags": {"path": ["left", "sum"]}}});
        let Verdict::Mismatch(why) = judge(3, 200, None, short.to_string().as_bytes()) else {
            panic!("a wrong path passed");
        };
        assert!(why.contains("meta.tags.path"), "{why}");
        assert!(
            matches!(judge(3, 200, None, b"garbage"), Verdict::Mismatch(w) if w.contains("not JSON"))
        );
    }

    #[test]
    fn an_error_names_its_node_by_header_or_body_or_none() {
        let body = br#"{"status":{"code":503,"info":"node `left` is unavailable","reason":"x","status":"FAILURE"}}"#;
        assert_eq!(
            judge(1, 503, Some("right"), body),
            Verdict::Error {
                status: 503,
                node: Some("right".into())
            }
        );
        assert_eq!(
            judge(1, 503, None, body),
            Verdict::Error {
                status: 503,
                node: Some("left".into())
            }
        );
        // a header naming no node of the graph, and a plain-text body: no node
        assert_eq!(
            judge(1, 503, Some("envoy"), b"no healthy upstream"),
            Verdict::Error {
                status: 503,
                node: None
            }
        );
    }

    #[test]
    fn vm_rss_is_read_from_proc_status() {
        assert_eq!(parse_vm_rss("Name:\tx\nVmRSS:\t  12345 kB\n"), Some(12345));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert!(vm_rss_kib(std::process::id()).is_some_and(|k| k > 0));
        assert_eq!(vm_rss_kib(u32::MAX), None);
    }

    #[test]
    fn rss_growth_runs_from_the_first_sample_after_the_warm_up() {
        let t = RssTrack {
            label: "x#1".into(),
            pid: 1,
            started: 100.0,
            samples: vec![(100.0, 50), (150.0, 100), (170.0, 105), (400.0, 109)],
            asserted: true,
        };
        // warm-up 60 s after the process's start: the baseline is the sample at 170 s
        assert_eq!(
            t.baseline_end(60.0, 0.0),
            Some(((170.0, 105), (400.0, 109)))
        );
        let g = t.growth_percent(60.0, 200.0).unwrap();
        assert!((g - 400.0 / 105.0).abs() < 1e-9, "{g}");
        // too short a span, or nothing after the warm-up: no figure
        assert_eq!(t.growth_percent(60.0, 300.0), None);
        assert_eq!(t.baseline_end(400.0, 0.0), None);
    }

    #[test]
    fn an_error_blames_a_bystander_unless_its_node_was_down() {
        let kills = vec![Kill {
            node: "left".into(),
            pid: 9,
            killed: 10.0,
            restarted: Some(11.0),
            ready: Some(11.5),
            first_correct: Some(11.6),
        }];
        let e = |node: &str, sent: f64, done: f64| ErrorEvent {
            node: Some(node.into()),
            status: 503,
            sent,
            done,
        };
        assert!(blamed_node_was_down(&e("left", 9.9, 10.1), &kills, 2.0));
        assert!(blamed_node_was_down(&e("left", 13.4, 13.5), &kills, 2.0));
        assert!(!blamed_node_was_down(&e("left", 14.0, 14.1), &kills, 2.0));
        assert!(!blamed_node_was_down(&e("left", 9.0, 9.5), &kills, 2.0));
        assert!(!blamed_node_was_down(&e("right", 10.5, 10.6), &kills, 2.0));
        let none = ErrorEvent {
            node: None,
            status: 503,
            sent: 10.5,
            done: 10.6,
        };
        assert!(!blamed_node_was_down(&none, &kills, 2.0));
    }

    #[test]
    fn results_fail_on_any_broken_assertion() {
        let envoy = RssTrack {
            label: "envoy".into(),
            pid: 1,
            started: 0.0,
            samples: vec![(10.0, 100), (100.0, 105)],
            asserted: true,
        };
        let good = Results {
            target_rps: 10,
            seconds: 100.0,
            warmup: 5.0,
            sent: 1000,
            correct: 1000,
            rss: vec![envoy.clone()],
            ..Results::default()
        };
        assert_eq!(good.failures(50.0), Vec::<String>::new());
        assert!(good.markdown(50.0).contains("**Verdict: passed**"));

        let mut bad = good.clone();
        bad.mismatch_count = 1;
        bad.transport = 1;
        bad.error_events.push(ErrorEvent {
            node: None,
            status: 503,
            sent: 1.0,
            done: 1.0,
        });
        bad.errors.insert(("-".into(), 503), 1);
        bad.rss[0].samples.push((120.0, 111));
        bad.correct = 100; // 10.3 rps of 10 is fine; make it too slow
        bad.seconds = 1000.0;
        let f = bad.failures(50.0).join("; ");
        for needle in [
            "1 answers were not",
            "1 errors named no node",
            "no HTTP answer",
            "rps achieved",
            "envoy (pid 1) RSS grew 11.0%",
        ] {
            assert!(f.contains(needle), "{needle} not in {f}");
        }
        assert!(bad.markdown(50.0).contains("**Verdict: FAILED"));
    }

    #[test]
    fn config_reads_the_environment_and_refuses_nonsense() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let c = Config::from_env(env(&[])).unwrap();
        assert_eq!(
            (c.duration, c.rps, c.warmup),
            (Duration::from_secs(1800), 500, Duration::from_secs(60))
        );
        let c = Config::from_env(env(&[("SOAK_MINUTES", "2"), ("SOAK_RPS", "100")])).unwrap();
        assert_eq!(
            (c.duration, c.rps, c.warmup),
            (Duration::from_secs(120), 100, Duration::from_secs(12))
        );
        let c = Config::from_env(env(&[("SOAK_MINUTES", "2"), ("SOAK_SECONDS", "20")])).unwrap();
        assert_eq!(c.duration, Duration::from_secs(20));
        for bad in [
            &[("SOAK_MINUTES", "half")][..],
            &[("SOAK_SECONDS", "-3")][..],
            &[("SOAK_SECONDS", "1")][..],
            &[("SOAK_RPS", "0")][..],
        ] {
            let pairs: &'static [(&'static str, &'static str)] = bad;
            assert!(Config::from_env(env(pairs)).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn envoy_memory_reads_the_two_stats_or_none() {
        let stats = "server.memory_allocated: 1234\nserver.memory_heap_size: 5678\nserver.memory_physical_size: 9\n";
        assert_eq!(envoy_memory(stats), (Some(1234), Some(5678)));
        assert_eq!(envoy_memory("server.live: 1\n"), (None, None));
        let r = Results {
            timeline: vec![Sample {
                t: 1.0,
                in_flight: 3,
                envoy_allocated: Some(7),
                envoy_heap: None,
                load1: None,
            }],
            ..Results::default()
        };
        assert!(
            r.samples_csv()
                .contains("1.0,in_flight,3\n1.0,envoy_allocated,7\n"),
            "{}",
            r.samples_csv()
        );
    }

    #[test]
    fn load1_is_the_first_field_of_loadavg() {
        assert_eq!(load1("16.85 15.01 14.96 3/900 123\n"), Some(16.85));
        assert_eq!(load1(""), None);
    }

    #[test]
    fn tail_gives_the_last_lines_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("log");
        std::fs::write(&f, "a\nb\nc\n").unwrap();
        assert_eq!(tail(&f, 2), "b\nc");
        assert_eq!(tail(&dir.path().join("missing"), 2), "");
    }
}
