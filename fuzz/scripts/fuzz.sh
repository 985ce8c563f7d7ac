#!/usr/bin/env bash
# `make fuzz`: every target under libFuzzer (cargo +nightly fuzz run) for FUZZ_SECONDS each
# (default 300), starting from the committed corpus fuzz/corpus/<target>/ (read-only; new
# inputs go to target/libfuzzer/work/corpus/<target>/). Prints inputs run and crashes per
# target and exits non-zero if any target crashed. FUZZ_TARGETS picks targets (default all).
# FUZZ_RUNS (e.g. 10000000) also stops each target after that many inputs, whichever comes
# first; FUZZ_SUMMARY names the summary file (default target/libfuzzer/work/summary.tsv).
# libFuzzer stops a target at its first crash; the input is in
# target/libfuzzer/work/artifacts/<target>/ (replay: add it to fuzz/corpus/<target>/ and run
# `cargo test -p seldon-fuzz`).
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds="${FUZZ_SECONDS:-300}"
runs_limit=()
[[ -z "${FUZZ_RUNS:-}" ]] || runs_limit=(-runs="$FUZZ_RUNS")
targets="${FUZZ_TARGETS:-protocol_ops v2_binary executor graph_compile crd_parse}"
eval "$(fuzz/scripts/setup-cargo-fuzz.sh)"
export PATH="$(dirname "$CARGO_FUZZ"):$PATH"

# No sanitizer: the code under test is safe Rust (unsafe_code = "forbid"); coverage-guided
# speed matters more. Debug assertions and overflow checks stay on.
common=(--fuzz-dir fuzz/libfuzzer --sanitizer none --debug-assertions --target-dir target/libfuzzer)
cargo +nightly fuzz build "${common[@]}" >&2
# The binaries are run directly: `cargo fuzz run` would rebuild before each target whenever a
# source file changed in between (a shared working tree), and fuzz another build.
bins="target/libfuzzer/$(rustc +nightly -vV | sed -n 's/^host: //p')/release"

work=target/libfuzzer/work
summary="${FUZZ_SUMMARY:-$work/summary.tsv}"
logs="${FUZZ_LOG_SUFFIX:-}"
mkdir -p "$work"
printf 'target\tseconds\tinputs\tcrashes\tcorpus\n' >"$summary"
failed=0
for t in $targets; do
    # Artifacts of an earlier run are cleared: the count is this run's.
    rm -rf "$work/artifacts/$t"
    mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
    log="$work/$t$logs.log"
    # Inputs are capped at 16 KiB, except where the cost of an input grows with its size and
    # nothing real is that large: a FilterConfig or SeldonDeployment of the samples is under
    # 2 KiB, and 4 KiB of generator bytes already make graphs of 100+ nodes (fuzz/README.md).
    case "$t" in
        graph_compile | crd_parse) max_len=4096 ;;
        *) max_len=16384 ;;
    esac
    rc=0
    "$bins/$t" "$work/corpus/$t" "fuzz/corpus/$t" \
        -max_total_time="$seconds" "${runs_limit[@]}" -timeout=10 -rss_limit_mb=2048 -max_len="$max_len" \
        -artifact_prefix="$work/artifacts/$t/" -print_final_stats=1 >"$log" 2>&1 || rc=$?
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1 || true)
    # After a crash libFuzzer prints no final stats: the last progress line has the count.
    [[ -n "$runs" ]] || runs=$(grep -oE '^#[0-9]+' "$log" | tr -d '#' | tail -1 || true)
    crashes=$(find "$work/artifacts/$t" -type f | wc -l)
    corpus=$(ls "$work/corpus/$t" | wc -l)
    if [[ $rc -ne 0 ]]; then
        failed=1
        [[ $crashes -gt 0 ]] || crashes="exit $rc"
        echo "fuzz: $t crashed; see $log and $work/artifacts/$t/" >&2
    fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$seconds" "${runs:-0}" "$crashes" "$corpus" >>"$summary"
done
column -t -s $'\t' "$summary"
exit $failed
