#!/usr/bin/env bash
# Installs the host tools the mesh test's pods need (Debian packages), once per machine:
#   iptables: the sidecars' `istio-iptables` runs iptables-save/iptables-restore in each pod's
#             network namespace (a fresh machine had none: every pod failed to start)
#   iproute2: `ip netns`, veth pairs and addresses for the pods
# Idempotent and flock-protected. Needs root for apt-get (the mesh test needs root anyway).
set -euo pipefail

CACHE_DIR="${SELDON_MESH_CACHE:-$HOME/.cache/seldon-mesh}"
log() { printf 'setup-mesh-host: %s\n' "$*" >&2; }

mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/.setup-mesh-host.lock"
flock 9

need=()
for p in iptables iproute2; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if ((${#need[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        log "needs root to apt-get install ${need[*]}"
        exit 1
    fi
    log "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2 \
        || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2; }
fi

for bin in iptables-save iptables-restore ip; do
    command -v "$bin" >/dev/null || { log "$bin missing after install"; exit 1; }
done
