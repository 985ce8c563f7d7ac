#!/usr/bin/env bash
# Installs Debian's prometheus package (the Prometheus server and promtool), once per machine,
# for control-plane/cli/tests/up_metrics.rs: a real Prometheus scraping local mode's Envoy with
# the shipped recording rules (manifests/prometheus/seldon-rules.yaml).
# Idempotent and flock-protected (tests call it concurrently). Needs root for apt-get (this
# project's machines run as root). Prints KEY=VALUE lines: PROMETHEUS, PROMTOOL.
set -euo pipefail

CACHE_DIR="${SELDON_MESH_CACHE:-$HOME/.cache/seldon-mesh}"
log() { printf 'setup-prometheus: %s\n' "$*" >&2; }

mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/.setup-prometheus.lock"
flock 9

if ! dpkg-query -W -f='${Status}' prometheus 2>/dev/null | grep -q 'install ok installed'; then
    if [[ $(id -u) -ne 0 ]]; then
        log "needs root to apt-get install prometheus"
        exit 1
    fi
    log "installing prometheus"
    # (No service is started: tests run their own Prometheus on free ports.)
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >&2 \
        || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >&2; }
fi

for bin in prometheus promtool; do
    [[ -x "/usr/bin/$bin" ]] || { log "/usr/bin/$bin missing after install"; exit 1; }
done
echo "PROMETHEUS=/usr/bin/prometheus"
echo "PROMTOOL=/usr/bin/promtool"
