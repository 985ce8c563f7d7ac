#!/usr/bin/env bash
# Build a real Istio control plane from the Go module proxy, once per machine, into
# ~/.cache/seldon-mesh/istio/, and print the paths (one per line: pilot-discovery,
# pilot-agent, istioctl, envoy_bootstrap.json). Used by the mesh test (tests/mesh) and by the
# `istioctl analyze` check of rendered samples. Idempotent: a warm cache only prints paths.
#
# Why a pseudo-version: the Go module proxy refuses Istio's tags (they are not semver and
# are not served); it serves a few master snapshots. This one is 1.31-dev (its VERSION file)
# and its go.mod has no replace lines, so `go install pkg@version` works directly.
# Cold: ~26 min on 2 cores (pilot-discovery dominates; pilot-agent and istioctl reuse it).
set -euo pipefail

ISTIO_VERSION="v0.0.0-20260827124520-eed52ebb66ad"   # istio.io/istio, 1.31-dev
CACHE_DIR="${SELDON_MESH_CACHE:-$HOME/.cache/seldon-mesh}"
OUT="$CACHE_DIR/istio"
BIN="$OUT/bin-$ISTIO_VERSION"
BOOTSTRAP="$OUT/envoy_bootstrap-$ISTIO_VERSION.json"

log() { printf 'istio-test-env: %s\n' "$*" >&2; }

export CGO_ENABLED=0 GOTOOLCHAIN=local
export GOPATH="${GOPATH:-$HOME/go}"

mkdir -p "$OUT"
exec 9>"$OUT/.lock"
flock 9

commands=(pilot/cmd/pilot-discovery pilot/cmd/pilot-agent istioctl/cmd/istioctl)
missing=0
for c in "${commands[@]}"; do
    [[ -x "$BIN/$(basename "$c")" ]] || missing=1
done

if [[ $missing == 1 ]]; then
    log "building pilot-discovery, pilot-agent, istioctl @ $ISTIO_VERSION (cold: ~25-30 minutes on 2 cores)"
    start=$(date +%s)
    mkdir -p "$BIN.tmp"
    v="istio.io/istio/pkg/version"
    for c in "${commands[@]}"; do
        GOBIN="$BIN.tmp" go install -trimpath \
            -ldflags="-s -w -X $v.buildVersion=1.31-dev -X $v.buildStatus=Clean" \
            "istio.io/istio/$c@$ISTIO_VERSION" >&2
    done
    rm -rf "$BIN" && mv "$BIN.tmp" "$BIN"
    log "istio built in $(( $(date +%s) - start ))s, $(du -sh "$BIN" | cut -f1)"
fi

if [[ ! -f "$BOOTSTRAP" ]]; then
    # pilot-agent renders Envoy's bootstrap from this template (shipped in istio-proxy images
    # at /var/lib/istio/envoy/envoy_bootstrap_tmpl.json); take it from the same module.
    dir="$(go mod download -json "istio.io/istio@$ISTIO_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
    [[ -f "$dir/tools/packaging/common/envoy_bootstrap.json" ]] || { log "bootstrap template not found in $dir"; exit 1; }
    cp "$dir/tools/packaging/common/envoy_bootstrap.json" "$BOOTSTRAP.tmp"
    mv "$BOOTSTRAP.tmp" "$BOOTSTRAP"
fi

for c in "${commands[@]}"; do
    echo "$BIN/$(basename "$c")"
done
echo "$BOOTSTRAP"
