#!/usr/bin/env bash
# Reproduces the gRPC-entry experiment of wasm-filter/README.md ("Answering gRPC"): builds the
# probe module, runs it in a real Envoy in front of two testmodel nodes, and prints what a
# gRPC client receives (curl over h2c shows headers, the DATA bytes and the trailers).
# Needs: `scripts/setup.sh` (Envoy), `cargo build -p seldon-e2e --bin testmodel`, curl with HTTP/2.
# Every process it starts is in its own process group and is killed on exit.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
envoy="${ENVOY:-$HOME/.cache/seldon-mesh/venv/bin/envoy}"
testmodel="${TESTMODEL:-$root/target/debug/testmodel}"
[ -x "$testmodel" ] || { echo "no testmodel at $testmodel: cargo build -p seldon-e2e --bin testmodel" >&2; exit 1; }
[ -x "$envoy" ] || { echo "no Envoy at $envoy: scripts/setup.sh" >&2; exit 1; }
port="${PORT:-19900}" admin="$((port + 1))" node="$((port + 2))" node2="$((port + 3))" node3="$((port + 4))" node4="$((port + 5))" mesh="$((port + 10))"
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill -- "-$p" 2>/dev/null || true; done; [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"; }
trap cleanup EXIT

(cd "$here" && CARGO_TARGET_DIR="$target" cargo build -q --offline --release --target wasm32-wasip1)
wasm="$target/wasm32-wasip1/release/grpc_entry_probe.wasm"
sed -e "s|@WASM@|$wasm|g" -e "s|@ADMIN@|$admin|" -e "s|@PORT@|$port|" -e "s|@MESH_PORT@|$mesh|" \
    -e "s|@NODE@|$node|" -e "s|@NODE2@|$node2|" -e "s|@NODE3@|$node3|" -e "s|@NODE4@|$node4|" \
    "$here/envoy.yaml.in" > "$work/envoy.yaml"

setsid "$testmodel" --port "$node" --name m > "$work/m.log" 2>&1 & pids+=($!)
setsid "$testmodel" --port "$node2" --name m2 --mode add --add 10 > "$work/m2.log" 2>&1 & pids+=($!)
setsid "$testmodel" --port "$node3" --name m3 --mode fail > "$work/m3.log" 2>&1 & pids+=($!)
# nothing listens on $node4
setsid "$envoy" -c "$work/envoy.yaml" --concurrency 1 -l info > "$work/envoy.log" 2>&1 & pids+=($!)
ready() {
  curl -s "127.0.0.1:$admin/ready" 2>/dev/null | grep -q LIVE \
    && curl -sf "127.0.0.1:$node/health/ping" > /dev/null 2>&1 \
    && curl -sf "127.0.0.1:$node2/health/ping" > /dev/null 2>&1 \
    && curl -sf "127.0.0.1:$node3/health/ping" > /dev/null 2>&1
}
for _ in $(seq 1 120); do ready && break; sleep 0.5; done
ready || { echo "Envoy or the nodes did not come up; logs in $work" >&2; KEEP=1; exit 1; }
"$envoy" --version | grep -o 'version: [^ ]*' | head -1

printf '\x00\x00\x00\x00\x03abc' > "$work/req.bin"
probe() { # listener-port mode
  echo "=== x-probe: $2"
  timeout 20 curl -sS -v --http2-prior-knowledge -X POST "http://127.0.0.1:$1/seldon.protos.Seldon/Predict" \
    -H 'content-type: application/grpc' -H 'te: trailers' -H "x-probe: $2" \
    --data-binary @"$work/req.bin" -o "$work/body" 2>&1 | grep -E '^< ' | grep -v -E '^< (date|server):' || true
  echo "DATA bytes: $(wc -c < "$work/body")"
  od -c "$work/body" | head -6
}
for mode in local grpc-error router tail tail-err tail-down; do probe "$port" "$mode"; done
probe "$mesh" tail-mesh
echo "=== Envoy log (the probe's own lines and VM failures)"
grep -E "wasm log probe|panicked at|failed: Uncaught" "$work/envoy.log" | sed -E 's/^\[[^]]*\]\[[0-9]+\]//' || true
