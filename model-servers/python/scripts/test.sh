#!/usr/bin/env bash
# Creates/updates a venv with the pinned dependencies, installs this package (editable, with
# test extras) and runs pytest. Extra args go to pytest.
#
# One venv per checkout (~/.cache/seldon-mesh/pyvenv-<hash of this folder>): an editable
# install points into the checkout that ran it last, so two checkouts sharing a venv ran each
# other's code (a CI clone's pytest once ran a half-edited wrapper of another checkout and
# failed). $SELDON_MESH_PYVENV overrides it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
key="$(printf '%s' "$here" | sha256sum | cut -c1-12)"
venv="${SELDON_MESH_PYVENV:-${SELDON_MESH_CACHE:-$HOME/.cache/seldon-mesh}/pyvenv-$key}"
python="${PYTHON311:-python3.11}"

if [ ! -x "$venv/bin/python" ]; then
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
"$venv/bin/pip" install --quiet -e "$here[test]"
cd "$here"
exec "$venv/bin/python" -m pytest "$@"
