//! The results of a run and their markdown form (pure). Everything after
//! [`HAND_WRITTEN_MARKER`] in an existing results file is kept when the file is rewritten,
//! so the written-up findings survive a re-run.

use std::fmt::Write;

use serde::Serialize;

use crate::oha::OhaResult;
use crate::peers::RowKind;
use crate::stats::Summary;

/// Lines after this one in `dataplane.md` are written by people and preserved.
pub const HAND_WRITTEN_MARKER: &str =
    "<!-- hand-written below: kept when the benchmark rewrites this file -->";

/// The issue's goals.
pub const GOAL_ADDED_P50_US: f64 = 150.0;
pub const GOAL_ADDED_P99_US: f64 = 1000.0;
pub const GOAL_MIN_THROUGHPUT_RATIO: f64 = 0.85;
/// Issue 8: tracing at 100% sampling adds at most this share of (b)'s p50…
pub const GOAL_TRACING_MAX_ADDED_P50_PCT: f64 = 10.0;
/// …and keeps at least this share of (b)'s saturation throughput.
pub const GOAL_TRACING_MIN_THROUGHPUT_RATIO: f64 = 0.90;

/// Issue 12: seldon-mesh's saturation throughput on the 3-node chain ≥ this × the best peer's…
pub const GOAL_PEER_THROUGHPUT_FACTOR: f64 = 2.0;
/// …its p50 at the fixed rate ≤ the best peer's, its p99 ≤ this share of the best peer's.
pub const GOAL_PEER_P99_SHARE: f64 = 0.5;

/// One row of the peer table: oha at the fixed rate and at saturation, per round.
#[derive(Debug, Clone, Serialize)]
pub struct PeerResult {
    pub label: String,
    pub kind: RowKind,
    pub fixed: Vec<OhaResult>,
    pub saturation: Vec<OhaResult>,
    /// CPU of the orchestrator processes (Envoy and/or the peer) per request, saturation rounds.
    pub cpu_us_per_request: Vec<f64>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

impl PeerResult {
    pub fn p50_us(&self) -> f64 {
        median(self.fixed.iter().map(|r| r.p50_us).collect())
    }
    pub fn p99_us(&self) -> f64 {
        median(self.fixed.iter().map(|r| r.p99_us).collect())
    }
    pub fn saturation_rps(&self) -> f64 {
        median(self.saturation.iter().map(|r| r.rps).collect())
    }
    pub fn cpu_us(&self) -> f64 {
        median(self.cpu_us_per_request.clone())
    }
    fn failed(&self) -> u64 {
        self.fixed
            .iter()
            .chain(&self.saturation)
            .map(|r| r.failed)
            .sum()
    }
}

/// The measured peer table.
#[derive(Debug, Clone, Serialize)]
pub struct PeerTable {
    pub rate: u32,
    pub connections: usize,
    pub saturation_connections: usize,
    pub rows: Vec<PeerResult>,
    pub checks: Vec<String>,
}

/// The best peer row by one measure: (its label, the value).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Best {
    pub label: String,
    pub value: f64,
}

impl PeerTable {
    pub fn candidate(&self) -> Option<&PeerResult> {
        self.rows.iter().find(|r| r.kind == RowKind::Candidate)
    }
    fn best(&self, f: impl Fn(&PeerResult) -> f64, higher_is_better: bool) -> Option<Best> {
        self.rows
            .iter()
            .filter(|r| r.kind == RowKind::Peer)
            .map(|r| Best {
                label: r.label.clone(),
                value: f(r),
            })
            .filter(|b| b.value.is_finite())
            .reduce(|a, b| {
                let b_wins = if higher_is_better {
                    b.value > a.value
                } else {
                    b.value < a.value
                };
                if b_wins { b } else { a }
            })
    }
    /// The highest saturation throughput among the peers (bare or behind Envoy).
    pub fn best_throughput(&self) -> Option<Best> {
        self.best(PeerResult::saturation_rps, true)
    }
    /// The lowest p50 at the fixed rate among the peers.
    pub fn best_p50(&self) -> Option<Best> {
        self.best(PeerResult::p50_us, false)
    }
    /// The lowest p99 at the fixed rate among the peers.
    pub fn best_p99(&self) -> Option<Best> {
        self.best(PeerResult::p99_us, false)
    }
}

/// The peer table, or why it did not run.
#[derive(Debug, Clone, Serialize)]
pub enum PeerSection {
    NotRun(String),
    Measured(PeerTable),
}

impl PeerSection {
    /// What the report says when no `--peers` was given.
    pub const HOW_TO: &str = "not run: no `--peers DIR`. Build the peers (Go; minutes) with `scripts/peers-build.sh`, which prints DIR (`~/.cache/seldon-mesh/peers`), then `scripts/bench.sh --peers DIR` (`make bench` does both)";
}

/// One side of a comparison, measured by the bench's own generator.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub label: String,
    pub summary: Summary,
    /// (p50, p99) of each round, µs, to show drift.
    pub rounds: Vec<(f64, f64)>,
}

/// Baseline (no filter) vs the filter.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub title: String,
    pub direct: Side,
    pub filter: Side,
}

impl Comparison {
    pub fn added_p50_us(&self) -> f64 {
        self.filter.summary.p50_us - self.direct.summary.p50_us
    }
    pub fn added_p99_us(&self) -> f64 {
        self.filter.summary.p99_us - self.direct.summary.p99_us
    }
    /// Added p50 in % of the baseline's p50.
    pub fn added_p50_pct(&self) -> f64 {
        100.0 * self.added_p50_us() / self.direct.summary.p50_us
    }
    /// Added p99 in % of the baseline's p99.
    pub fn added_p99_pct(&self) -> f64 {
        100.0 * self.added_p99_us() / self.direct.summary.p99_us
    }
}

/// One labelled oha run (best across rounds is *not* taken: rounds are listed).
#[derive(Debug, Clone, Serialize)]
pub struct OhaRow {
    pub label: String,
    pub rounds: Vec<OhaResult>,
}

impl OhaRow {
    fn median(&self, f: impl Fn(&OhaResult) -> f64) -> f64 {
        let mut v: Vec<f64> = self.rounds.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    }
    pub fn median_rps(&self) -> f64 {
        self.median(|r| r.rps)
    }
    pub fn median_p50(&self) -> f64 {
        self.median(|r| r.p50_us)
    }
    pub fn median_p99(&self) -> f64 {
        self.median(|r| r.p99_us)
    }
}

/// Everything a run found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub command: String,
    /// `(name, value)` lines: machine, versions, date, pinning.
    pub facts: Vec<(String, String)>,
    pub settings: Vec<(String, String)>,
    /// (a) vs (b).
    pub three_node: Comparison,
    /// (c) at a fixed rate.
    pub one_node: Comparison,
    /// oha at a fixed rate: (b), (c) filter, (c) direct. Empty when oha was not run.
    pub oha_fixed: Vec<OhaRow>,
    /// oha at saturation: (c) filter, (c) direct.
    pub saturation: Option<(OhaRow, OhaRow)>,
    /// (d): `direct` = (b) untraced, `filter` = the same graph traced at 100%.
    pub tracing: Comparison,
    /// oha at saturation: (d) traced, (b) untraced.
    pub tracing_saturation: Option<(OhaRow, OhaRow)>,
    /// Set when (d) dropped spans or failed exports; shown under the issue-8 goals too.
    pub tracing_warning: Option<String>,
    /// Sanity checks (bodies verified, router untouched, errors).
    pub checks: Vec<String>,
    /// Issue 12: the 3-node chain behind seldon-mesh and behind each peer.
    pub peers: PeerSection,
}

/// `filter rps / direct rps` from the medians of the saturation rounds.
pub fn throughput_ratio(sat: &(OhaRow, OhaRow)) -> f64 {
    sat.0.median_rps() / sat.1.median_rps()
}

fn us(v: f64) -> String {
    format!("{:.0} µs", v)
}

fn signed(v: f64) -> String {
    format!("{:+.0} µs", v)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "**met**" } else { "**missed**" }
}

fn side_row(out: &mut String, s: &Side) {
    let rounds = s
        .rounds
        .iter()
        .map(|(a, b)| format!("{a:.0}/{b:.0}"))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} | {} | {:.0} | {} | {} |",
        s.label,
        us(s.summary.p50_us),
        us(s.summary.p90_us),
        us(s.summary.p99_us),
        us(s.summary.mean_us),
        s.summary.rps,
        s.summary.errors,
        rounds
    );
}

fn comparison(out: &mut String, c: &Comparison) {
    comparison_added(out, c, "added by the filter");
}

fn comparison_added(out: &mut String, c: &Comparison, added: &str) {
    let _ = writeln!(out, "### {}\n", c.title);
    let _ = writeln!(
        out,
        "| side | p50 | p90 | p99 | mean | achieved rps | errors | per round p50/p99 µs |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    side_row(out, &c.direct);
    side_row(out, &c.filter);
    let _ = writeln!(
        out,
        "| **{added}** | **{}** | {} | **{}** | {} | | | |\n",
        signed(c.added_p50_us()),
        signed(c.filter.summary.p90_us - c.direct.summary.p90_us),
        signed(c.added_p99_us()),
        signed(c.filter.summary.mean_us - c.direct.summary.mean_us),
    );
}

/// Renders the report; `previous` is the old file, whose hand-written part is kept.
pub fn markdown(r: &Report, previous: Option<&str>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Data-plane benchmark: the graph filter vs direct calls\n"
    );
    let _ = writeln!(
        out,
        "Generated by `seldon-bench` (`bench/`); do not edit above the marker at the end. Latencies are scheduled-to-done (open loop, corrected for coordinated omission).\n"
    );
    let _ = writeln!(out, "Command:\n\n```sh\n{}\n```\n", r.command);

    let _ = writeln!(out, "## Goals (issue 2)\n");
    let _ = writeln!(out, "| goal | measured | |");
    let _ = writeln!(out, "|---|---|---|");
    let t = &r.three_node;
    let _ = writeln!(
        out,
        "| 3-node graph adds ≤ {GOAL_ADDED_P50_US:.0} µs p50 over direct calls at the fixed rate | {} | {} |",
        signed(t.added_p50_us()),
        verdict(t.added_p50_us() <= GOAL_ADDED_P50_US)
    );
    let _ = writeln!(
        out,
        "| 3-node graph adds ≤ {GOAL_ADDED_P99_US:.0} µs p99 | {} | {} |",
        signed(t.added_p99_us()),
        verdict(t.added_p99_us() <= GOAL_ADDED_P99_US)
    );
    match &r.saturation {
        Some(sat) => {
            let ratio = throughput_ratio(sat);
            let _ = writeln!(
                out,
                "| 1-node graph keeps ≥ {:.0}% of direct throughput (filter costs ≤ 15%) | {:.1}% ({:.0} vs {:.0} rps) | {} |",
                GOAL_MIN_THROUGHPUT_RATIO * 100.0,
                ratio * 100.0,
                sat.0.median_rps(),
                sat.1.median_rps(),
                verdict(ratio >= GOAL_MIN_THROUGHPUT_RATIO)
            );
        }
        None => {
            let _ = writeln!(
                out,
                "| 1-node graph keeps ≥ 85% of direct throughput | not run (no oha) | |"
            );
        }
    }
    let _ = writeln!(out);
    tracing_goals(&mut out, r);
    peer_goals(&mut out, r);

    let _ = writeln!(
        out,
        "## Fixed rate, bench generator (same generator for both sides)\n"
    );
    comparison(&mut out, &r.three_node);
    comparison(&mut out, &r.one_node);

    if !r.oha_fixed.is_empty() {
        let _ = writeln!(
            out,
            "## Fixed rate, oha `-q` with `--latency-correction` (median of rounds)\n"
        );
        let _ = writeln!(
            out,
            "| target | p50 | p99 | rps | per round p50/p99 µs | non-2xx or errors |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        for row in &r.oha_fixed {
            let rounds = row
                .rounds
                .iter()
                .map(|x| format!("{:.0}/{:.0}", x.p50_us, x.p99_us))
                .collect::<Vec<_>>()
                .join(", ");
            let failed: u64 = row.rounds.iter().map(|x| x.failed).sum();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.0} | {} | {} |",
                row.label,
                us(row.median_p50()),
                us(row.median_p99()),
                row.median_rps(),
                rounds,
                failed
            );
        }
        let _ = writeln!(out);
    }
    if let Some(sat) = &r.saturation {
        let _ = writeln!(
            out,
            "## Saturation, oha closed loop, same concurrency (1-node graph)\n"
        );
        let _ = writeln!(
            out,
            "| target | rps (median) | per round rps | p50 | p99 | non-2xx or errors |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        for row in [&sat.0, &sat.1] {
            let rounds = row
                .rounds
                .iter()
                .map(|x| format!("{:.0}", x.rps))
                .collect::<Vec<_>>()
                .join(", ");
            let failed: u64 = row.rounds.iter().map(|x| x.failed).sum();
            let _ = writeln!(
                out,
                "| {} | {:.0} | {} | {} | {} | {} |",
                row.label,
                row.median_rps(),
                rounds,
                us(row.median_p50()),
                us(row.median_p99()),
                failed
            );
        }
        let _ = writeln!(
            out,
            "| **ratio filter / direct** | **{:.3}** | | | | |\n",
            throughput_ratio(sat)
        );
    }

    tracing_section(&mut out, r);
    peer_section(&mut out, r);

    let _ = writeln!(out, "## Settings\n");
    for (k, v) in &r.settings {
        let _ = writeln!(out, "- {k}: {v}");
    }
    let _ = writeln!(out, "\n## Machine and versions\n");
    for (k, v) in &r.facts {
        let _ = writeln!(out, "- {k}: {v}");
    }
    let _ = writeln!(out, "\n## Checks\n");
    for c in &r.checks {
        let _ = writeln!(out, "- {c}");
    }
    let _ = writeln!(out, "\n{HAND_WRITTEN_MARKER}");
    if let Some(tail) = previous
        .and_then(|p| p.split_once(HAND_WRITTEN_MARKER))
        .map(|(_, t)| t)
    {
        out.push_str(tail.strip_prefix('\n').unwrap_or(tail));
    }
    out
}

fn ms(us: f64) -> String {
    format!("{:.2}", us / 1000.0)
}

/// "Goals (issue 12)": the candidate row against the best peer row of each measure.
fn peer_goals(out: &mut String, r: &Report) {
    let _ = writeln!(out, "## Goals (issue 12: faster than every peer)\n");
    let _ = writeln!(out, "| goal | measured | |");
    let _ = writeln!(out, "|---|---|---|");
    let goals = [
        format!(
            "3-node chain: saturation throughput ≥ {GOAL_PEER_THROUGHPUT_FACTOR:.0}× the best peer's"
        ),
        "3-node chain: p50 ≤ the best peer's at the fixed rate".to_owned(),
        format!(
            "3-node chain: p99 ≤ {:.0}% of the best peer's at the fixed rate",
            GOAL_PEER_P99_SHARE * 100.0
        ),
    ];
    match &r.peers {
        PeerSection::NotRun(why) => {
            for g in &goals {
                let _ = writeln!(out, "| {g} | {why} | |");
            }
        }
        PeerSection::Measured(t) => {
            let rows = t.candidate().map(|c| {
                let tp = t.best_throughput().map(|b| {
                    let x = c.saturation_rps() / b.value;
                    (
                        format!(
                            "{:.2}× ({:.0} vs {:.0} rps, {})",
                            x,
                            c.saturation_rps(),
                            b.value,
                            b.label
                        ),
                        x >= GOAL_PEER_THROUGHPUT_FACTOR,
                    )
                });
                let p50 = t.best_p50().map(|b| {
                    (
                        format!("{} vs {} ms ({})", ms(c.p50_us()), ms(b.value), b.label),
                        c.p50_us() <= b.value,
                    )
                });
                let p99 = t.best_p99().map(|b| {
                    let limit = b.value * GOAL_PEER_P99_SHARE;
                    (
                        format!(
                            "{} ms vs a limit of {} ms ({}'s {} ms)",
                            ms(c.p99_us()),
                            ms(limit),
                            b.label,
                            ms(b.value)
                        ),
                        c.p99_us() <= limit,
                    )
                });
                [tp, p50, p99]
            });
            for (i, g) in goals.iter().enumerate() {
                match rows.as_ref().and_then(|r| r[i].clone()) {
                    Some((text, ok)) => {
                        let _ = writeln!(out, "| {g} | {text} | {} |", verdict(ok));
                    }
                    None => {
                        let _ = writeln!(out, "| {g} | no candidate or peer row | |");
                    }
                }
            }
        }
    }
    match &r.saturation {
        Some(sat) => {
            let ratio = throughput_ratio(sat);
            let _ = writeln!(
                out,
                "| 1-node graph ≥ {:.0}% of a plain route's throughput ((c) above) | {:.1}% | {} |",
                GOAL_MIN_THROUGHPUT_RATIO * 100.0,
                ratio * 100.0,
                verdict(ratio >= GOAL_MIN_THROUGHPUT_RATIO)
            );
        }
        None => {
            let _ = writeln!(
                out,
                "| 1-node graph ≥ {:.0}% of a plain route's throughput | not run (no oha) | |",
                GOAL_MIN_THROUGHPUT_RATIO * 100.0
            );
        }
    }
    let _ = writeln!(out);
}

/// The peer table itself.
fn peer_section(out: &mut String, r: &Report) {
    let _ = writeln!(
        out,
        "## Peers (issue 12): the 3-node chain behind each orchestrator\n"
    );
    let t = match &r.peers {
        PeerSection::NotRun(why) => {
            let _ = writeln!(out, "{why}.\n");
            return;
        }
        PeerSection::Measured(t) => t,
    };
    let _ = writeln!(
        out,
        "TRANSFORMER `t1` → TRANSFORMER `t2` → MODEL `m`, three `testmodel --mode echo` nodes, the payload below. \
         oha `-q {}` with `--latency-correction` ({} connections) gives p50/p99, then a closed loop with {} connections \
         the saturation rps; medians of the rounds. Orchestrator CPU: user + system time of Envoy and/or the peer \
         process per answered request at saturation.\n",
        t.rate, t.connections, t.saturation_connections
    );
    let _ = writeln!(
        out,
        "| orchestrator | p50 ms | p99 ms | saturation rps | orchestrator CPU µs/request | per round p50/p99 ms; rps | non-2xx or errors |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---|---:|");
    for row in &t.rows {
        let rounds = row
            .fixed
            .iter()
            .map(|x| format!("{}/{}", ms(x.p50_us), ms(x.p99_us)))
            .collect::<Vec<_>>()
            .join(", ");
        let rps = row
            .saturation
            .iter()
            .map(|x| format!("{:.0}", x.rps))
            .collect::<Vec<_>>()
            .join(", ");
        let cpu = if row.cpu_us_per_request.iter().all(|c| *c == 0.0) {
            "–".to_owned()
        } else {
            format!("{:.0}", row.cpu_us())
        };
        let label = if row.kind == RowKind::Candidate {
            format!("**{}**", row.label)
        } else {
            row.label.clone()
        };
        let _ = writeln!(
            out,
            "| {label} | {} | {} | {:.0} | {cpu} | {rounds}; {rps} | {} |",
            ms(row.p50_us()),
            ms(row.p99_us()),
            row.saturation_rps(),
            row.failed()
        );
    }
    let _ = writeln!(out);
    for c in &t.checks {
        let _ = writeln!(out, "- {c}");
    }
    let _ = writeln!(out);
}

fn pct(v: f64) -> String {
    format!("{v:+.1}%")
}

fn tracing_goals(out: &mut String, r: &Report) {
    let t = &r.tracing;
    let _ = writeln!(out, "## Goals (issue 8: tracing overhead)\n");
    let _ = writeln!(out, "| goal | measured | |");
    let _ = writeln!(out, "|---|---|---|");
    let _ = writeln!(
        out,
        "| tracing at 100% adds ≤ {GOAL_TRACING_MAX_ADDED_P50_PCT:.0}% p50 to the 3-node graph at the fixed rate | {} ({}) | {} |",
        pct(t.added_p50_pct()),
        signed(t.added_p50_us()),
        verdict(t.added_p50_pct() <= GOAL_TRACING_MAX_ADDED_P50_PCT)
    );
    match &r.tracing_saturation {
        Some(sat) => {
            let ratio = throughput_ratio(sat);
            let _ = writeln!(
                out,
                "| tracing at 100% lowers saturation throughput by ≤ {:.0}% (keeps ≥ {:.0}%) | {:.1}% ({:.0} vs {:.0} rps) | {} |",
                (1.0 - GOAL_TRACING_MIN_THROUGHPUT_RATIO) * 100.0,
                GOAL_TRACING_MIN_THROUGHPUT_RATIO * 100.0,
                ratio * 100.0,
                sat.0.median_rps(),
                sat.1.median_rps(),
                verdict(ratio >= GOAL_TRACING_MIN_THROUGHPUT_RATIO)
            );
        }
        None => {
            let _ = writeln!(
                out,
                "| tracing at 100% lowers saturation throughput by ≤ 10% | not run (no oha) | |"
            );
        }
    }
    let _ = writeln!(out);
    if let Some(w) = &r.tracing_warning {
        let _ = writeln!(out, "{w}\n");
    }
}

fn tracing_section(out: &mut String, r: &Report) {
    let t = &r.tracing;
    let _ = writeln!(
        out,
        "## Tracing overhead (scenario (d), same run, same generator)\n"
    );
    comparison_added(out, t, "added by tracing");
    let _ = writeln!(
        out,
        "Added by tracing, in % of (b) untraced: p50 **{}**, p99 **{}** ({} / {}).\n",
        pct(t.added_p50_pct()),
        pct(t.added_p99_pct()),
        signed(t.added_p50_us()),
        signed(t.added_p99_us()),
    );
    if let Some(sat) = &r.tracing_saturation {
        let _ = writeln!(
            out,
            "Saturation, oha closed loop, same concurrency (3-node graph):\n"
        );
        let _ = writeln!(
            out,
            "| target | rps (median) | per round rps | p50 | p99 | non-2xx or errors |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        for row in [&sat.0, &sat.1] {
            let rounds = row
                .rounds
                .iter()
                .map(|x| format!("{:.0}", x.rps))
                .collect::<Vec<_>>()
                .join(", ");
            let failed: u64 = row.rounds.iter().map(|x| x.failed).sum();
            let _ = writeln!(
                out,
                "| {} | {:.0} | {} | {} | {} | {} |",
                row.label,
                row.median_rps(),
                rounds,
                us(row.median_p50()),
                us(row.median_p99()),
                failed
            );
        }
        let _ = writeln!(
            out,
            "| **ratio traced / untraced** | **{:.3}** | | | | |\n",
            throughput_ratio(sat)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(p50: f64, p99: f64) -> Summary {
        Summary {
            count: 10,
            errors: 0,
            p50_us: p50,
            p90_us: p50,
            p99_us: p99,
            max_us: p99,
            mean_us: p50,
            rps: 1000.0,
        }
    }

    fn side(label: &str, p50: f64, p99: f64) -> Side {
        Side {
            label: label.into(),
            summary: summary(p50, p99),
            rounds: vec![(p50, p99)],
        }
    }

    fn oha(rps: f64) -> OhaResult {
        OhaResult {
            rps,
            p50_us: 100.0,
            p99_us: 200.0,
            success_rate: 1.0,
            ok: 10,
            failed: 0,
        }
    }

    fn report() -> Report {
        Report {
            command: "scripts/bench.sh".into(),
            facts: vec![("nproc".into(), "2".into())],
            settings: vec![],
            three_node: Comparison {
                title: "3".into(),
                direct: side("(a)", 1000.0, 2000.0),
                filter: side("(b)", 1100.0, 2500.0),
            },
            one_node: Comparison {
                title: "1".into(),
                direct: side("direct", 300.0, 600.0),
                filter: side("filter", 500.0, 900.0),
            },
            oha_fixed: vec![],
            saturation: Some((
                OhaRow {
                    label: "filter".into(),
                    rounds: vec![oha(800.0)],
                },
                OhaRow {
                    label: "direct".into(),
                    rounds: vec![oha(1000.0)],
                },
            )),
            tracing: Comparison {
                title: "(d) tracing".into(),
                direct: side("(b) untraced", 1100.0, 2500.0),
                filter: side("(d) traced", 1199.0, 3000.0),
            },
            tracing_saturation: Some((
                OhaRow {
                    label: "(d) traced".into(),
                    rounds: vec![oha(910.0)],
                },
                OhaRow {
                    label: "(b) untraced".into(),
                    rounds: vec![oha(1000.0)],
                },
            )),
            tracing_warning: None,
            checks: vec!["ok".into()],
            peers: PeerSection::NotRun(PeerSection::HOW_TO.into()),
        }
    }

    fn peer(label: &str, kind: RowKind, p50: f64, p99: f64, rps: f64) -> PeerResult {
        let r = OhaResult {
            rps,
            p50_us: p50,
            p99_us: p99,
            success_rate: 1.0,
            ok: 10,
            failed: 0,
        };
        PeerResult {
            label: label.into(),
            kind,
            fixed: vec![r],
            saturation: vec![r],
            cpu_us_per_request: vec![100.0],
        }
    }

    fn table(mesh: (f64, f64, f64)) -> PeerTable {
        PeerTable {
            rate: 500,
            connections: 16,
            saturation_connections: 32,
            rows: vec![
                peer("mesh up", RowKind::Candidate, mesh.0, mesh.1, mesh.2),
                peer("mesh graph", RowKind::Mesh, 10.0, 10.0, 1e6),
                peer("seldon", RowKind::Peer, 1040.0, 3000.0, 1342.0),
                peer("kserve", RowKind::Peer, 730.0, 1160.0, 2766.0),
                peer("kserve+envoy", RowKind::Peer, 990.0, 1980.0, 1767.0),
                peer("floor", RowKind::Floor, 110.0, 200.0, 16878.0),
            ],
            checks: vec!["peer check".into()],
        }
    }

    #[test]
    fn peer_goals_compare_with_the_best_peer_of_each_measure() {
        let mut r = report();
        r.peers = PeerSection::Measured(table((1050.0, 1590.0, 1448.0)));
        let md = markdown(&r, None);
        assert!(
            md.contains("| 3-node chain: saturation throughput ≥ 2× the best peer's | 0.52× (1448 vs 2766 rps, kserve) | **missed** |"),
            "{md}"
        );
        assert!(
            md.contains("| 3-node chain: p50 ≤ the best peer's at the fixed rate | 1.05 vs 0.73 ms (kserve) | **missed** |"),
            "{md}"
        );
        assert!(
            md.contains("| 3-node chain: p99 ≤ 50% of the best peer's at the fixed rate | 1.59 ms vs a limit of 0.58 ms (kserve's 1.16 ms) | **missed** |"),
            "{md}"
        );
        assert!(md.contains("| 1-node graph ≥ 85% of a plain route's throughput ((c) above) | 80.0% | **missed** |"), "{md}");
        // The table: the candidate in bold, the floor without being a peer.
        assert!(
            md.contains("| **mesh up** | 1.05 | 1.59 | 1448 | 100 | 1.05/1.59; 1448 | 0 |"),
            "{md}"
        );
        assert!(md.contains("| floor | 0.11 | 0.20 | 16878 |"), "{md}");
        assert!(md.contains("- peer check"), "{md}");
    }

    #[test]
    fn peer_goals_are_met_when_the_candidate_wins_by_the_margins() {
        let mut r = report();
        r.peers = PeerSection::Measured(table((700.0, 580.0, 5600.0)));
        let md = markdown(&r, None);
        assert!(md.matches("**met**").count() >= 3, "{md}");
        assert!(
            md.contains("2.02× (5600 vs 2766 rps, kserve) | **met** |"),
            "{md}"
        );
        assert!(md.contains("0.70 vs 0.73 ms (kserve) | **met** |"), "{md}");
        assert!(
            md.contains("0.58 ms vs a limit of 0.58 ms (kserve's 1.16 ms) | **met** |"),
            "{md}"
        );
    }

    #[test]
    fn without_peers_the_report_says_how_to_get_them() {
        let md = markdown(&report(), None);
        assert!(md.contains("## Peers (issue 12)"), "{md}");
        assert!(md.contains("scripts/peers-build.sh"), "{md}");
        assert!(
            md.contains("| 3-node chain: p50 ≤ the best peer's at the fixed rate | not run: no `--peers DIR`"),
            "{md}"
        );
    }

    #[test]
    fn a_table_without_peer_rows_judges_nothing() {
        let mut t = table((1.0, 1.0, 1.0));
        t.rows.retain(|r| r.kind != RowKind::Peer);
        assert_eq!(t.best_throughput(), None);
        let mut r = report();
        r.peers = PeerSection::Measured(t);
        assert!(markdown(&r, None).contains("| no candidate or peer row | |"));
    }

    #[test]
    fn a_tracing_warning_is_shown_under_the_issue_8_goals() {
        let mut r = report();
        assert!(!markdown(&r, None).contains("WARNING"));
        r.tracing_warning = Some("**WARNING: dropped**".into());
        let md = markdown(&r, None);
        let goals = md.find("## Goals (issue 8").unwrap();
        let next = md.find("## Fixed rate, bench generator").unwrap();
        let w = md.find("**WARNING: dropped**").unwrap();
        assert!(goals < w && w < next, "{md}");
    }

    #[test]
    fn tracing_goals_are_judged_in_percent_of_the_untraced_graph() {
        let md = markdown(&report(), None);
        assert!(md.contains("## Goals (issue 8: tracing overhead)"), "{md}");
        // 99 µs on 1100 µs = 9.0%: met; 910 of 1000 rps = 91.0%: met.
        assert!(md.contains("| +9.0% (+99 µs) | **met** |"), "{md}");
        assert!(md.contains("| 91.0% (910 vs 1000 rps) | **met** |"), "{md}");
        assert!(
            md.contains("p50 **+9.0%**, p99 **+20.0%** (+99 µs / +500 µs)"),
            "{md}"
        );
        assert!(md.contains("| **added by tracing** | **+99 µs** |"), "{md}");
        assert!(
            md.contains("| **ratio traced / untraced** | **0.910** |"),
            "{md}"
        );
    }

    #[test]
    fn tracing_goals_miss_above_ten_percent() {
        let mut r = report();
        r.tracing.filter = side("(d) traced", 1221.0, 3000.0);
        r.tracing_saturation.as_mut().unwrap().0.rounds = vec![oha(899.0)];
        let md = markdown(&r, None);
        assert!(md.contains("| +11.0% (+121 µs) | **missed** |"), "{md}");
        assert!(
            md.contains("| 89.9% (899 vs 1000 rps) | **missed** |"),
            "{md}"
        );
    }

    #[test]
    fn without_oha_the_tracing_throughput_goal_is_not_run() {
        let mut r = report();
        r.tracing_saturation = None;
        let md = markdown(&r, None);
        assert!(
            md.contains(
                "| tracing at 100% lowers saturation throughput by ≤ 10% | not run (no oha) | |"
            ),
            "{md}"
        );
        assert!(!md.contains("ratio traced / untraced"), "{md}");
        // The issue-2 sections are still there, unchanged.
        assert!(
            md.contains("| **added by the filter** | **+100 µs** |"),
            "{md}"
        );
        assert!(md.contains("## Saturation, oha closed loop, same concurrency (1-node graph)"));
    }

    #[test]
    fn goals_are_judged_from_the_differences() {
        let md = markdown(&report(), None);
        assert!(md.contains("| +100 µs | **met** |"), "{md}");
        assert!(md.contains("| +500 µs | **met** |"), "{md}");
        assert!(
            md.contains("80.0% (800 vs 1000 rps) | **missed** |"),
            "{md}"
        );
    }

    #[test]
    fn hand_written_findings_survive_a_rewrite() {
        let old = format!("old numbers\n{HAND_WRITTEN_MARKER}\n## Finding\nV8 dominates.\n");
        let md = markdown(&report(), Some(&old));
        assert!(
            md.ends_with(&format!(
                "{HAND_WRITTEN_MARKER}\n## Finding\nV8 dominates.\n"
            )),
            "{md}"
        );
        assert!(!md.contains("old numbers"));
    }

    #[test]
    fn a_file_without_the_marker_keeps_nothing() {
        let md = markdown(&report(), Some("just old text"));
        assert!(!md.contains("just old text"));
        assert!(md.ends_with(&format!("{HAND_WRITTEN_MARKER}\n")));
    }

    #[test]
    fn ratio_uses_medians() {
        let sat = (
            OhaRow {
                label: "f".into(),
                rounds: vec![oha(10.0), oha(900.0), oha(950.0)],
            },
            OhaRow {
                label: "d".into(),
                rounds: vec![oha(1000.0)],
            },
        );
        assert_eq!(throughput_ratio(&sat), 0.9);
    }
}
