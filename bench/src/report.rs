//! The results of a run and their markdown form (pure). Everything after
//! [`HAND_WRITTEN_MARKER`] in an existing results file is kept when the file is rewritten,
//! so the written-up findings survive a re-run.

use std::fmt::Write;

use serde::Serialize;

use crate::oha::OhaResult;
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
        }
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
