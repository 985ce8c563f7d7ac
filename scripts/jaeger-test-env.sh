#!/usr/bin/env bash
# Build a real Jaeger v2 all-in-one (OTLP on 4317/4318, query API and UI on 16686) from the Go
# module proxy, once per machine, into ~/.cache/seldon-mesh/jaeger/, and print its path. Used
# by the tracing tests. Idempotent: a warm cache only prints the path.
#
# Why a wrapper module (scripts/go-tools/jaeger): Jaeger's go.mod has replace lines, so
# `go install pkg@version` refuses it. The wrapper's tool line names cmd/jaeger and its go.sum
# locks every module. v1.75.0 is the module version of the v2 binary (v2.x tags are not valid
# module versions); it is the newest version approved here. Cold: see the README's timings.
set -euo pipefail

JAEGER_VERSION="v1.75.0"
HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE_DIR="${SELDON_MESH_CACHE:-$HOME/.cache/seldon-mesh}"
OUT="$CACHE_DIR/jaeger"
BIN="$OUT/jaeger-$JAEGER_VERSION"

log() { printf 'jaeger-test-env: %s\n' "$*" >&2; }

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly
export GOPATH="${GOPATH:-$HOME/go}"

mkdir -p "$OUT"
exec 9>"$OUT/.lock"
flock 9

if [[ ! -x "$BIN" ]]; then
    grep -q "github.com/jaegertracing/jaeger $JAEGER_VERSION" "$HERE/go-tools/jaeger/go.mod" \
        || { log "scripts/go-tools/jaeger/go.mod does not pin jaeger $JAEGER_VERSION"; exit 1; }
    log "building jaeger @ $JAEGER_VERSION"
    start=$(date +%s)
    (cd "$HERE/go-tools/jaeger" && go build -trimpath -ldflags="-s -w" -o "$BIN.tmp" \
        github.com/jaegertracing/jaeger/cmd/jaeger) >&2
    mv "$BIN.tmp" "$BIN"
    log "jaeger built in $(( $(date +%s) - start ))s, $(du -sh "$BIN" | cut -f1)"
fi

echo "$BIN"
