#!/usr/bin/env bash
# Build grpcurl (the gRPC curl `seldon-mesh up` prints a command for) from the Go module proxy,
# once per machine, into ~/.cache/seldon-mesh/tools/, and print its path. Used by the CLI
# test that runs `up`'s printed gRPC command as a user would. Idempotent: a warm cache only
# prints the path. grpcurl's go.mod has no replace lines, so `go install pkg@version` works
# and its go.sum pins every module.
set -euo pipefail

GRPCURL_VERSION="v1.9.3"
CACHE_DIR="${SELDON_MESH_CACHE:-$HOME/.cache/seldon-mesh}"
OUT="$CACHE_DIR/tools/grpcurl-$GRPCURL_VERSION"
BIN="$OUT/grpcurl"

log() { printf 'grpcurl-env: %s\n' "$*" >&2; }

export CGO_ENABLED=0 GOTOOLCHAIN=local
export GOPATH="${GOPATH:-$HOME/go}"

mkdir -p "$OUT"
exec 9>"$OUT/.lock"
flock 9

if [[ ! -x "$BIN" ]]; then
    log "building grpcurl @ $GRPCURL_VERSION"
    start=$(date +%s)
    GOBIN="$OUT/.tmp" go install -trimpath -ldflags="-s -w" \
        "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION" >&2
    mv "$OUT/.tmp/grpcurl" "$BIN"
    rmdir "$OUT/.tmp"
    log "grpcurl built in $(( $(date +%s) - start ))s"
fi

echo "$BIN"
