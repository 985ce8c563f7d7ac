#!/usr/bin/env bash
# Installs Azurite (Microsoft's Azure Storage emulator, npm `azurite`, pinned with every
# dependency by azurite/package-lock.json) into
# ${SELDON_MESH_CACHE:-~/.cache/seldon-mesh}/azurite/<lock hash> and prints the path of its
# blob service, azurite-blob:
#
#   AZURITE_BLOB=$(model-servers/initializer/scripts/setup-azurite.sh)
#   "$AZURITE_BLOB" --blobHost 127.0.0.1 --blobPort 10000 --inMemoryPersistence --disableTelemetry
#
# 3.35.0 is the newest Azurite that runs on Node.js 20 (3.36 wants 21, 3.37 wants 22).
# Idempotent (`npm ci` only when the lock changed); tests call it concurrently, so one
# installs under a lock and the others wait. Logs go to stderr.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${SELDON_MESH_CACHE:-$HOME/.cache/seldon-mesh}/azurite"
want="$(cat "$here/azurite/package.json" "$here/azurite/package-lock.json" | sha256sum | cut -c1-16)"
dir="$cache/$want"
bin="$dir/node_modules/.bin/azurite-blob"
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [[ ! -x "$bin" ]]; then
  command -v npm >/dev/null || { echo "setup-azurite.sh: npm not found: install Node.js (Debian: apt-get install npm)" >&2; exit 1; }
  echo "setup-azurite.sh: installing azurite (azurite/package-lock.json) into $dir" >&2
  tmp="$(mktemp -d "$cache/.install.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  cp "$here/azurite/package.json" "$here/azurite/package-lock.json" "$tmp/"
  # no install scripts: Azurite is JavaScript; its optional database drivers stay unused
  (cd "$tmp" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) >&2
  rm -rf "$dir"
  mv "$tmp" "$dir"
fi
echo "$bin"
