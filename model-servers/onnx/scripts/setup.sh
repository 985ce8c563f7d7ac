#!/usr/bin/env bash
# Installs the pinned onnxruntime wheel (+ the sklearn conversion tools) into
# ${SELDON_MESH_CACHE:-~/.cache/seldon-mesh}/onnxvenv (or $SELDON_ONNX_VENV) and prints the ONNX
# Runtime library path:
#
#   export ORT_DYLIB_PATH=$(model-servers/onnx/scripts/setup.sh)
#
# `--with-wrapper` also installs the project's Python wrapper (model-servers/python,
# `seldon-core-microservice`) with its `mlflow` extra: it serves the estimators skl2onnx cannot
# convert, and MLFLOW_SERVER's models only mlflow.pyfunc can run.
#
# Idempotent: reinstalls only when python/requirements.txt changed. Everything but the
# final path goes to stderr, so the output can be captured.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SELDON_ONNX_VENV:-${SELDON_MESH_CACHE:-$HOME/.cache/seldon-mesh}/onnxvenv}"
req="$here/python/requirements.txt"
stamp="$venv/.requirements.sha256"
# Tests call this concurrently: one installer at a time.
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "setup.sh: installing $req into $venv" >&2
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
  echo "$want" > "$stamp"
fi
if [[ "${1:-}" == "--with-wrapper" ]]; then
  # A copy, not an editable install: an editable one points into the checkout that ran this
  # first, and broke every other checkout once that one was deleted (a cold CI run found it:
  # "No module named 'seldon_mesh_wrapper'"). The stamp covers every file of the package, so
  # a changed wrapper is reinstalled.
  wrapper="$(cd "$here/../python" && pwd)"
  wstamp="$venv/.wrapper.sha256"
  wwant="$(cd "$wrapper" && git ls-files -co --exclude-standard -- pyproject.toml src 2>/dev/null \
    | LC_ALL=C sort | xargs -d '\n' sha256sum | sha256sum | cut -d' ' -f1)"
  if [[ ! -x "$venv/bin/seldon-core-microservice" || "$(cat "$wstamp" 2>/dev/null)" != "$wwant" ]]; then
    echo "setup.sh: installing the Python wrapper $wrapper into $venv" >&2
    "$venv/bin/pip" uninstall --quiet --yes seldon-mesh-wrapper >/dev/null 2>&1 || true
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$wrapper[mlflow]" >&2
    echo "$wwant" > "$wstamp"
  fi
fi
lib="$("$venv/bin/python" -c 'import onnxruntime, os, glob; d = os.path.join(os.path.dirname(onnxruntime.__file__), "capi"); print(sorted(glob.glob(os.path.join(d, "libonnxruntime.so.*")))[-1])')"
if [[ ! -f "$lib" ]]; then
  echo "setup.sh: libonnxruntime.so not found in the onnxruntime wheel under $venv" >&2
  exit 1
fi
echo "$lib"
