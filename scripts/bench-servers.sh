#!/usr/bin/env bash
# The model-server benchmark (issue 3, item 7): the same iris models (sklearn
# LogisticRegression, xgboost multi:softprob, trained now with pinned libraries) served by
# seldon-mesh's release `seldon-server`, by MLServer 1.7.1 and by seldon-core 1.14.1's Python
# wrapper, each on CPU 1 (`taskset -c 1`), the load generator (oha; ghz for gRPC) on CPU 0.
# Writes docs/benchmarks/model-servers.md. A command, not a test; ~8 minutes.
#
#   scripts/bench-servers.sh                 # 10 s per measurement
#   BENCH_SECS=5 scripts/bench-servers.sh    # quicker, noisier
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${SELDON_MESH_CACHE:-$HOME/.cache/seldon-mesh}"
TOOLS="$CACHE/tools"
OHA_VERSION="1.16.0"   # same pin as scripts/bench.sh
GHZ_VERSION="v0.120.0"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target/init}"
HERE="$ROOT/bench/servers"
WORK="${BENCH_WORK:-$CACHE/bench-servers}"
log() { printf 'bench-servers: %s\n' "$*" >&2; }

# Pinned venvs (reinstalled when a requirements file changes).
venv() { # name requirements [constraint]
  local dir="$CACHE/$1" stamp want
  want="$(sha256sum "$2" | cut -d' ' -f1)"; stamp="$dir/.requirements.sha256"
  if [[ ! -x "$dir/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    log "installing $2 into $dir"
    python3 -m venv "$dir"
    PIP_CONSTRAINT="${3:-}" "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$2"
    echo "$want" > "$stamp"
  fi
}
venv benchvenv-mlserver "$HERE/python/requirements-mlserver.txt"
constraint="$(mktemp)"; echo 'cython<3' > "$constraint"   # PyYAML 5.4.1 (seldon-core 1.14.1) builds from source
venv benchvenv-seldon "$HERE/python/requirements-seldon.txt" "$constraint"
export ORT_DYLIB_PATH="$("$ROOT/model-servers/onnx/scripts/setup.sh")"

if [[ "$("$TOOLS/bin/oha" --version 2>/dev/null || true)" != "oha $OHA_VERSION" ]]; then
  log "installing oha $OHA_VERSION into $TOOLS"
  cargo install oha --version "$OHA_VERSION" --locked --no-default-features --root "$TOOLS"
fi
GHZ="$TOOLS/bin/ghz"
if [[ ! -x "$GHZ" ]]; then
  log "installing ghz $GHZ_VERSION into $TOOLS/bin (Go module proxy)"
  GOBIN="$TOOLS/bin" go install "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION" || log "no ghz: gRPC rows skipped"
fi

log "release builds"
(cd "$ROOT" && cargo build --release -p seldon-server -p seldon-mesh-initializer -p seldon-bench-servers)
REL="$CARGO_TARGET_DIR/release"

log "training the models into $WORK"
rm -rf "$WORK"; mkdir -p "$WORK"
"$CACHE/benchvenv-mlserver/bin/python" "$HERE/python/train.py" "$WORK" > "$WORK/reference.out"
# Our SKLEARN_SERVER directory is made the way a pod gets it: the init container copies
# the bucket and converts model.joblib to ONNX.
"$REL/seldon-mesh-initializer" "file://$WORK/src/sklearn" "$WORK/ours-sklearn" --implementation SKLEARN_SERVER \
  --python "$CACHE/onnxvenv/bin/python" --sklearn-converter "$ROOT/model-servers/onnx/python/convert_sklearn.py"

PY="$CACHE/benchvenv-mlserver/bin/python"
vers() { "$1" -c "import importlib.metadata as m; print(', '.join(f'{p} {m.version(p)}' for p in '$2'.split()))"; }
header="$WORK/header.md"
cat > "$header" <<MD
# Model-server benchmark: seldon-mesh vs MLServer vs seldon-core's Python wrapper

Command: \`scripts/bench-servers.sh\` (driver \`bench/servers\`), run $(date -u +%Y-%m-%dT%H:%MZ) at
\`$(git -C "$ROOT" rev-parse --short HEAD)\`.
Machine: $(nproc) × $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r); shared with
other builds while it ran (numbers are noisy, side by side in one run so comparable).

Setup: every server pinned to **CPU 1** (\`taskset -c 1\`), the load generator to CPU 0.
Saturation: ${BENCH_SECS:-10} s closed loop, ${BENCH_CONNECTIONS:-16} connections, after a warm-up run of the same length.
Moderate load: open loop with latency correction at (a) half the slowest server's saturation
for that model and transport — the same rate for every server — and (b) half the server's own saturation.
Payload: one iris row \`[5.1,3.5,1.4,0.2]\`: Seldon v1 \`{"data":{"ndarray":[[…]]}}\`, OIP v2
\`{"inputs":[{"name":"predict","shape":[1,4],"datatype":"FP32","data":[…]}]}\` plus \`"outputs":[{"name":"predict_proba"}]\` for sklearn (MLServer defaults to \`predict\`); same bytes to each server.
× MLServer compares with MLServer on the same transport (REST or gRPC).

| server | how it runs |
|---|---|
| seldon-mesh | release \`seldon-server\` (one process per model); SKLEARN_SERVER = \`model.joblib\` converted to ONNX by \`seldon-mesh-initializer\`, served by ONNX Runtime; XGBOOST_SERVER = native Rust trees on \`model.json\` |
| MLServer | \`mlserver start\`, \`parallel_workers: 0\` (inference in the main process), both models in one server, \`mlserver_sklearn.SKLearnModel\` / \`mlserver_xgboost.XGBoostModel\` |
| seldon-core 1.14.1 | \`seldon-core-microservice <Class> --service-type MODEL\`, gunicorn 1 worker 1 thread; classes \`bench/servers/python/SKLearnServer.py\` / \`XGBoostServer.py\` (Seldon's prepackaged servers' behaviour; \`predict_proba\` / \`Booster.predict\`) |

Versions: $("$TOOLS/bin/oha" --version); ghz $( [[ -x "$GHZ" ]] && echo "$GHZ_VERSION" || echo absent); $(vers "$PY" "mlserver mlserver-sklearn mlserver-xgboost scikit-learn xgboost numpy");
$(vers "$CACHE/benchvenv-seldon/bin/python" "seldon-core gunicorn flask numpy xgboost-cpu"); onnxruntime $(basename "$ORT_DYLIB_PATH" | sed 's/libonnxruntime.so.//'); $(rustc --version).
MD

cd "$ROOT"
exec taskset -c 0 "$REL/seldon-bench-servers" --models "$WORK" --seldon-server "$REL/seldon-server" \
  --mlserver-venv "$CACHE/benchvenv-mlserver" --seldon-venv "$CACHE/benchvenv-seldon" --python-dir "$HERE/python" \
  --oha "$TOOLS/bin/oha" --ghz "$GHZ" --proto-dir "$ROOT/crates/protocol/proto" \
  --secs "${BENCH_SECS:-10}" --connections "${BENCH_CONNECTIONS:-16}" --header "$header" \
  --out docs/benchmarks/model-servers.md "$@"
