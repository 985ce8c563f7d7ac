#!/usr/bin/env bash
# The data-plane benchmark (issue 2, item 6): builds the release filter and the release
# `testmodel`, installs the pinned load generator (oha) if missing, and runs `seldon-bench`,
# which writes docs/benchmarks/dataplane.md. A command, not a test; takes ~5 minutes.
#
#   scripts/bench.sh                      # working tree
#   SELDON_BENCH_REV=HEAD scripts/bench.sh  # a committed revision (git archive snapshot)
#   scripts/bench.sh --runtime wasmtime --out /tmp/wasmtime.md   # extra flags go to seldon-bench
#   scripts/bench.sh --peers "$(scripts/peers-build.sh)"          # + the peer table (issue 12)
#
# With --peers the bench runs in a network namespace of its own (`unshare --net`, loopback
# only): the KServe router listens on :8080 and the Seldon executor on :<port>, every
# interface, and 8080 is often taken on a shared machine.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${SELDON_MESH_CACHE:-$HOME/.cache/seldon-mesh}"
OHA_VERSION="1.16.0"
TOOLS="$CACHE/tools"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target/bench}"

log() { printf 'bench: %s\n' "$*" >&2; }

# Envoy 1.40 and the wasm target.
"$ROOT/scripts/setup.sh" >/dev/null

# What to measure: the working tree, or a snapshot of a committed revision.
SRC="$ROOT"
if [[ -n "${SELDON_BENCH_REV:-}" ]]; then
    rev="$(git -C "$ROOT" rev-parse --short "$SELDON_BENCH_REV")"
    SRC="$CACHE/bench-src/$rev"
    if [[ ! -d "$SRC" ]]; then
        log "snapshot of $rev in $SRC"
        mkdir -p "$SRC"
        git -C "$ROOT" archive "$rev" | tar -x -C "$SRC"
    fi
    export SELDON_BENCH_REV="$rev"
fi
log "building the release filter and testmodel from $SRC"
(cd "$SRC" && cargo build -p seldon-filter --target wasm32-wasip1 --release \
    && cargo build -p seldon-e2e --release --bin testmodel)
export SELDON_FILTER_WASM="$CARGO_TARGET_DIR/wasm32-wasip1/release/seldon_filter.wasm"
export SELDON_TESTMODEL_BIN="$CARGO_TARGET_DIR/release/testmodel"

# oha from crates.io, pinned. native-tls (system OpenSSL) instead of the default rustls:
# rustls pulls aws-lc-sys (a long C build), and 1.16.0 does not compile with no TLS at all.
if [[ "$("$TOOLS/bin/oha" --version 2>/dev/null || true)" != "oha $OHA_VERSION" ]]; then
    log "installing oha $OHA_VERSION into $TOOLS"
    cargo install oha --version "$OHA_VERSION" --locked --no-default-features --features native-tls --root "$TOOLS"
fi

(cd "$SRC" && cargo build -p seldon-bench --release)
BENCH="$CARGO_TARGET_DIR/release/seldon-bench"

# 2 cores: Envoy (the thing measured, --concurrency 1) gets CPU 1 to itself; the load
# generator, oha and the node servers share CPU 0.
PIN=()
if command -v taskset >/dev/null 2>&1 && [[ "$(nproc)" -ge 2 ]]; then
    PIN=(taskset -c 0)
    set -- --envoy-cpu 1 "$@"
fi
# A shared machine: raise the bench tree's priority over builds when allowed (root).
if nice -n -10 true 2>/dev/null; then
    PIN=(nice -n -10 "${PIN[@]}")
fi
# The peer table: its own network namespace (see the top).
NETNS=()
if [[ " $* " == *" --peers"* || -n "${SELDON_BENCH_PEERS:-}" ]]; then
    if unshare --net true 2>/dev/null; then
        NETNS=(unshare --net -- sh -c 'ip link set lo up && exec "$@"' sh)
    elif unshare --net --map-root-user true 2>/dev/null; then
        NETNS=(unshare --net --map-root-user -- sh -c 'ip link set lo up && exec "$@"' sh)
    else
        log "no network namespace (unshare): the peers share this host's ports"
    fi
fi
cd "$ROOT"
exec "${NETNS[@]}" "${PIN[@]}" "$BENCH" --oha "$TOOLS/bin/oha" --out docs/benchmarks/dataplane.md \
    --command "scripts/bench.sh${SELDON_BENCH_REV:+  # SELDON_BENCH_REV=$SELDON_BENCH_REV}" "$@"
