//! The peer table end to end (issue 12): `seldon-bench --smoke --peers DIR` in a network
//! namespace of its own, against the real KServe router and Seldon executor, real Envoy and
//! real nodes. No timing is asserted: every row must answer, without errors, and the report
//! must carry the table and the goals.
//!
//! Opt-in, never in CI (the peers are Go builds outside the workspace): runs only when
//! `SELDON_BENCH_PEERS` names the directory `scripts/peers-build.sh` printed, oha is installed
//! (`SELDON_BENCH_OHA` or `~/.cache/seldon-mesh/tools/bin/oha`) and `unshare --net` works
//! (root). Otherwise it says why and passes.
//!
//! ```sh
//! SELDON_BENCH_PEERS=$(scripts/peers-build.sh) cargo test -p seldon-bench --test peers
//! ```

use std::path::PathBuf;
use std::process::Command;

use seldon_bench::peers::{KSERVE_ROUTER, ROWS, SELDON_EXECUTOR};

fn oha() -> Option<PathBuf> {
    std::env::var_os("SELDON_BENCH_OHA")
        .map(PathBuf::from)
        .or_else(|| {
            let p =
                PathBuf::from(std::env::var_os("HOME")?).join(".cache/seldon-mesh/tools/bin/oha");
            p.is_file().then_some(p)
        })
}

#[test]
fn the_peer_table_runs_every_row_in_a_namespace_of_its_own() {
    let Some(peers) = std::env::var_os("SELDON_BENCH_PEERS").map(PathBuf::from) else {
        eprintln!("skipped: SELDON_BENCH_PEERS is not set (opt-in; see the module docs)");
        return;
    };
    let Some(oha) = oha() else {
        eprintln!("skipped: no oha (scripts/bench.sh installs it)");
        return;
    };
    let netns_ok = Command::new("unshare")
        .args(["--net", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !netns_ok {
        eprintln!("skipped: `unshare --net` is not allowed here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dataplane.md");
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--net",
        "--",
        "sh",
        "-c",
        "ip link set lo up && exec \"$@\"",
        "sh",
    ])
    .arg(env!("CARGO_BIN_EXE_seldon-bench"))
    .args(["--smoke", "--oha"])
    .arg(&oha)
    .arg("--peers")
    .arg(&peers)
    .arg("--out")
    .arg(&out)
    .env_remove("SELDON_BENCH_OUT");
    if std::env::var_os("SELDON_TESTMODEL_BIN").is_none() {
        let exe = std::env::current_exe().unwrap();
        cmd.env(
            "SELDON_TESTMODEL_BIN",
            exe.parent().unwrap().parent().unwrap().join("testmodel"),
        );
    }
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "seldon-bench --smoke --peers failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let md = std::fs::read_to_string(&out).unwrap();
    assert!(
        md.contains("## Goals (issue 12: faster than every peer)"),
        "{md}"
    );
    assert!(
        md.contains("| 3-node chain: saturation throughput ≥ 2× the best peer's | "),
        "{md}"
    );
    assert!(!md.contains("| no candidate or peer row |"), "{md}");
    assert!(
        md.contains("each of its 7 rows answered the payload's `data` unchanged"),
        "{md}"
    );
    for row in ROWS {
        let label = row.label();
        let line = md
            .lines()
            .find(|l| {
                l.starts_with(&format!("| {label} |")) || l.starts_with(&format!("| **{label}** |"))
            })
            .unwrap_or_else(|| panic!("no table row {label:?}:\n{md}"));
        let errors = line.trim_end_matches(" |").rsplit("| ").next().unwrap();
        assert_eq!(errors, "0", "errors in {label:?}: {line}");
    }
    for name in [KSERVE_ROUTER, SELDON_EXECUTOR] {
        assert!(
            md.contains(&format!("peer table: {name} (pid ")),
            "{name} not in the checks:\n{md}"
        );
    }
}
