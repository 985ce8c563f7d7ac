#!/usr/bin/env bash
# Installs the host tools `make images` needs (Debian bookworm packages), once:
#   podman, buildah, skopeo, runc: build and run the images
#   mmdebstrap: the Debian base rootfs of the Python images (images/debian-python.sh)
#   busybox-static: /bin/sh + /bin/sleep in the scratch server image (Seldon's preStop hook)
#   docker-registry: a real OCI registry on loopback for the graph-filter test
#   binutils: strip
# Needs root for apt-get (the machines this project is built on run as root).
set -euo pipefail
need=()
for p in podman buildah skopeo runc mmdebstrap busybox-static docker-registry binutils; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if ((${#need[@]})); then
  echo "images/setup.sh: installing ${need[*]}" >&2
  if [[ $(id -u) -ne 0 ]]; then
    echo "images/setup.sh: needs root to apt-get install ${need[*]}" >&2
    exit 1
  fi
  mkdir -p "${SELDON_MESH_CACHE:-$HOME/.cache/seldon-mesh}/images"
  exec 9>"${SELDON_MESH_CACHE:-$HOME/.cache/seldon-mesh}/images/apt.lock"
  flock 9
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2 \
    || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2; }
fi
