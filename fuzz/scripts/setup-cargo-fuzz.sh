#!/usr/bin/env bash
# Installs cargo-fuzz (pinned) into ~/.cache/seldon-mesh/cargo-fuzz, once per machine, for
# `make fuzz` (fuzz/README.md). cargo-fuzz drives libFuzzer through the nightly toolchain
# (`cargo +nightly fuzz run`); the workspace itself stays on rust-toolchain.toml's stable.
# Idempotent and flock-protected. Prints KEY=VALUE lines: CARGO_FUZZ.
set -euo pipefail

CARGO_FUZZ_VERSION=0.13.1
CACHE_DIR="${SELDON_MESH_CACHE:-$HOME/.cache/seldon-mesh}"
ROOT="$CACHE_DIR/cargo-fuzz"
BIN="$ROOT/bin/cargo-fuzz"
log() { printf 'setup-cargo-fuzz: %s\n' "$*" >&2; }

mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/.setup-cargo-fuzz.lock"
flock 9

if ! rustup toolchain list | grep -q '^nightly'; then
    log "installing the nightly toolchain (libFuzzer needs -Zsanitizer)"
    rustup toolchain install nightly --profile minimal >&2
fi

if ! { [[ -x "$BIN" ]] && "$BIN" --version 2>/dev/null | grep -q " $CARGO_FUZZ_VERSION\$"; }; then
    log "installing cargo-fuzz $CARGO_FUZZ_VERSION into $ROOT"
    # Built with the workspace's stable toolchain; run from / so rust-toolchain.toml is not read.
    (cd / && cargo install --locked "cargo-fuzz@$CARGO_FUZZ_VERSION" --root "$ROOT" >&2)
fi
"$BIN" --version >/dev/null
echo "CARGO_FUZZ=$BIN"
