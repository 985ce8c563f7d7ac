#!/usr/bin/env bash
# The local-mode benchmark (issue 9): `seldon-mesh up` from the command to the first
# successful prediction, cold (files evicted from the page cache) and warm, and a hot reload
# from the manifest's save to the new graph answering, on 2- and 4-node graphs of `testmodel`
# nodes, the iris A/B sample (two seldon-server models) and the income sample (a Python
# TRANSFORMER + seldon-server). Builds first (a warm build); then runs
# control-plane/cli/examples/bench_local.rs, which writes docs/benchmarks/local-mode.md
# (median, min, p90, max per figure; machine, versions, load average). A command, not a
# test; about 2–4 minutes with the defaults (3 cold + 10 warm runs per graph).
#
#   scripts/bench-local.sh
#   nice -n 10 scripts/bench-local.sh --runs 5 --cold 2 --out /tmp/local-mode.md
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CARGO="${CARGO:-cargo}"
scripts/setup.sh >/dev/null
"$CARGO" build --locked -q -p seldon-filter --target wasm32-wasip1 --release
"$CARGO" build --locked -q -p seldon-mesh -p seldon-server -p seldon-e2e --bins
"$CARGO" build --locked -q -p seldon-mesh --example bench_local
ORT_DYLIB_PATH="$(model-servers/onnx/scripts/setup.sh --with-wrapper)"
# The venv setup.sh installed into (the income sample runs its seldon-core-microservice).
SELDON_BENCH_VENV="${SELDON_ONNX_VENV:-${SELDON_MESH_CACHE:-$HOME/.cache/seldon-mesh}/onnxvenv}"
export ORT_DYLIB_PATH SELDON_BENCH_VENV
exec "${CARGO_TARGET_DIR:-$ROOT/target}/debug/examples/bench_local" "$@"
