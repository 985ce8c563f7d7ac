#!/usr/bin/env bash
# The local base image of the Python images (initializer, python-wrapper):
#   localhost/seldon-mesh/debian-python:bookworm
# No registry is reachable from the build machines, so instead of `FROM debian:bookworm` we
# make the rootfs ourselves from Debian's mirror with mmdebstrap (variant minbase: dpkg, apt,
# bash, coreutils) plus Python 3.11, its venv module and CA certificates, and import it.
# The rootfs tar and the list of installed package versions are cached under
# ~/.cache/seldon-mesh/images/; delete them (or change PACKAGES below) to rebuild.
# Prints the image name. Needs root (mmdebstrap's root mode) and images/setup.sh's tools.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
cache="${SELDON_MESH_CACHE:-$HOME/.cache/seldon-mesh}/images"
image=localhost/seldon-mesh/debian-python:bookworm
SUITE=bookworm
PACKAGES=python3.11,python3.11-venv,ca-certificates
MIRRORS=(
  "deb http://deb.debian.org/debian bookworm main"
  "deb http://deb.debian.org/debian bookworm-updates main"
  "deb http://deb.debian.org/debian-security bookworm-security main"
)
# The recipe's identity: a different recipe means a different rootfs.
key="$(printf '%s\n' "$SUITE" "$PACKAGES" "${MIRRORS[@]}" v1 | sha256sum | cut -c1-16)"
tar="$cache/debian-python-$SUITE-$key.tar"
mkdir -p "$cache"
exec 9>"$cache/debian-python.lock"
flock 9
if [[ ! -s "$tar" ]]; then
  echo "debian-python.sh: mmdebstrap $SUITE ($PACKAGES) -> $tar" >&2
  mmdebstrap --variant=minbase --format=tar --include="$PACKAGES" \
    --aptopt='Acquire::Languages "none"' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='chroot "$1" dpkg-query -W -f "\${Package}=\${Version}\n" > "$1/etc/seldon-mesh-packages.txt"' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/log/*' \
    "$SUITE" "$tar.part" "${MIRRORS[@]}" >&2
  tar -xOf "$tar.part" ./etc/seldon-mesh-packages.txt > "$cache/debian-python-$SUITE-$key.packages.txt"
  mv "$tar.part" "$tar"
fi
if [[ "$(podman image inspect --format '{{index .Labels "io.seldon-mesh.base-key"}}' "$image" 2>/dev/null)" != "$key" ]]; then
  # podman import takes a Dockerfile-style --change per instruction
  podman import --change "LABEL io.seldon-mesh.base-key=$key" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' \
    "$tar" "$image" >&2
fi
echo "$image"
