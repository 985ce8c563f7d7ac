#!/usr/bin/env bash
# Installs TENSORFLOW_SERVER's fetch-time converter (tensorflow-cpu + tf2onnx, pinned in
# requirements-tensorflow.txt) into ${SELDON_MESH_CACHE:-~/.cache/seldon-mesh}/tfvenv (or
# $SELDON_TF_VENV) and prints its python, the interpreter the initializer runs
# convert_tensorflow.py with:
#
#   export SELDON_TF_PYTHON=$(model-servers/initializer/scripts/setup-tensorflow.sh)
#
# ~1.4 GB; the cold install (empty pip cache, fresh venv) took 101 s on this
# 2-core machine, 313 s with it at load average 16 (other builds).
# Idempotent: reinstalls only when requirements-tensorflow.txt changed. Logs go to stderr.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${SELDON_TF_VENV:-${SELDON_MESH_CACHE:-$HOME/.cache/seldon-mesh}/tfvenv}"
req="$here/requirements-tensorflow.txt"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
# Tests call this concurrently: one installer at a time, the others wait and reuse it.
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if [[ ! -x "$venv/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "setup-tensorflow.sh: installing $req into $venv" >&2
  start=$(date +%s)
  python3.11 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
  echo "$want" > "$stamp"
  echo "setup-tensorflow.sh: installed in $(( $(date +%s) - start )) s" >&2
fi
echo "$venv/bin/python"
