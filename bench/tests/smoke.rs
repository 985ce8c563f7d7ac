//! Runs `seldon-bench --smoke` end to end (real Envoy, real nodes, tiny durations) to prove
//! the harness works. No timing is asserted: this is not a benchmark.
//!
//! Needs the release filter module, the `testmodel` binary (`cargo build -p seldon-e2e`, or
//! `SELDON_TESTMODEL_BIN`) and Envoy (`scripts/setup.sh`); uses oha when
//! `~/.cache/seldon-mesh/tools/bin/oha` (or `SELDON_BENCH_OHA`) exists.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn smoke_run_writes_a_report_with_every_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dataplane.md");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_seldon-bench"));
    cmd.args(["--smoke", "--out"])
        .arg(&out)
        .env_remove("SELDON_BENCH_OUT")
        // The peer table has its own opt-in test (tests/peers.rs) in a network namespace.
        .env_remove("SELDON_BENCH_PEERS");
    if std::env::var_os("SELDON_TESTMODEL_BIN").is_none() {
        // target/<profile>/deps/smoke-… → target/<profile>/testmodel
        let exe = std::env::current_exe().unwrap();
        cmd.env(
            "SELDON_TESTMODEL_BIN",
            exe.parent().unwrap().parent().unwrap().join("testmodel"),
        );
    }
    let oha = std::env::var_os("SELDON_BENCH_OHA")
        .map(PathBuf::from)
        .or_else(|| {
            let p =
                PathBuf::from(std::env::var_os("HOME")?).join(".cache/seldon-mesh/tools/bin/oha");
            p.is_file().then_some(p)
        });
    if let Some(oha) = &oha {
        cmd.arg("--oha").arg(oha);
    }
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "seldon-bench --smoke failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let md = std::fs::read_to_string(&out).unwrap();
    for needle in [
        "### (a) vs (b): 3-node graph",
        "(a) client calls tin → m → out itself",
        "(b) one request, filter runs the 3-node graph",
        "### (c): 1-node graph vs plain route",
        "answered the payload's `data` unchanged",
        "`http.graph3.rq_direct_response` = 0",
        "`http.graph1.rq_direct_response` = 0",
        "| **added by the filter** |",
        "## Goals (issue 8: tracing overhead)",
        "### (d) tracing: 3-node graph, traced at 100% vs untraced",
        "(d) filter runs the 3-node graph, tracing at 100% to a collector",
        "| **added by tracing** |",
        "`http.graph3-traced.rq_direct_response` = 0",
    ] {
        assert!(md.contains(needle), "report lacks {needle:?}:\n{md}");
    }
    // Without --peers the peer table and its goals say how to get the peers.
    assert!(md.contains("## Peers (issue 12)"), "{md}");
    assert!(
        md.contains("not run: no `--peers DIR`. Build the peers"),
        "{md}"
    );
    assert_eq!(
        oha.is_some(),
        md.contains("## Saturation"),
        "saturation table iff oha ran:\n{md}"
    );
    assert_eq!(
        oha.is_some(),
        md.contains("| **ratio traced / untraced** |"),
        "tracing saturation iff oha ran:\n{md}"
    );
    // Every side completed requests without errors.
    assert!(!md.contains("errors, first:"), "{md}");
    // (d) really traced: the filter exported spans and the sink got them.
    let exported: u64 = md
        .split("`seldon_trace_spans_exported_total` = ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exported-spans count in the checks:\n{md}"));
    assert!(exported > 0, "{md}");
    let posts: u64 = md
        .split("collector sink got ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no sink count in the checks:\n{md}"));
    assert!(posts > 0, "{md}");
    // At the smoke rate (200 rps × 4 spans) the default queue (2048 per flush) never fills.
    assert!(
        md.contains("(d) tracing: no span dropped, no export failed"),
        "{md}"
    );
}

#[test]
fn a_peers_dir_without_the_binaries_fails_naming_the_build_script() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_seldon-bench"))
        .args(["--smoke", "--oha", "/bin/true", "--peers"])
        .arg(dir.path())
        .env("SELDON_TESTMODEL_BIN", "/nonexistent/testmodel")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    // Checked before anything starts: the missing testmodel is not reached.
    assert!(
        err.contains("no kserve-router in") && err.contains("scripts/peers-build.sh"),
        "{err}"
    );
}

#[test]
fn a_missing_testmodel_binary_fails_with_a_clear_error() {
    let o = Command::new(env!("CARGO_BIN_EXE_seldon-bench"))
        .args(["--smoke"])
        .env("SELDON_TESTMODEL_BIN", "/nonexistent/testmodel")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("testmodel binary not found at /nonexistent/testmodel"),
        "{err}"
    );
}
