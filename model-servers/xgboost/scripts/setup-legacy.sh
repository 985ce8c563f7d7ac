#!/usr/bin/env bash
# Installs xgboost 1.7.6 (the last 1.x: writes the legacy binary model.bst) into
# ${SELDON_MESH_CACHE:-~/.cache/seldon-mesh}/xgblegacyvenv (or $SELDON_XGB_LEGACY_VENV) and
# prints its python. Test-only: tests/legacy.rs makes legacy models with it.
# Idempotent: reinstalls only when requirements-legacy.txt changed. Logs go to stderr.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${SELDON_XGB_LEGACY_VENV:-${SELDON_MESH_CACHE:-$HOME/.cache/seldon-mesh}/xgblegacyvenv}"
req="$here/requirements-legacy.txt"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if [[ ! -x "$venv/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "setup-legacy.sh: installing $req into $venv" >&2
  python3.11 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
  echo "$want" > "$stamp"
fi
echo "$venv/bin/python"
