#!/usr/bin/env bash
# Creates/updates the venv at ~/.cache/seldon-mesh/pyvenv with the pinned dependencies,
# installs this package (editable, with test extras) and runs pytest. Extra args go to pytest.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SELDON_MESH_PYVENV:-${SELDON_MESH_CACHE:-$HOME/.cache/seldon-mesh}/pyvenv}"
python="${PYTHON311:-python3.11}"

if [ ! -x "$venv/bin/python" ]; then
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
"$venv/bin/pip" install --quiet -e "$here[test]"
cd "$here"
exec "$venv/bin/python" -m pytest "$@"
