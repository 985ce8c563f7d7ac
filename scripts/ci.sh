#!/usr/bin/env bash
# What `make ci` (and so .ci/run) runs: lints, then every test.
#
# The slow, cached Go builds (etcd, kube-apiserver, kube-controller-manager, istiod, grpcurl,
# pilot-agent, istioctl, jaeger: ~30 min cold on 2 cores, beside the Rust build) start first,
# in the background, while the Rust workspace builds and the fast tests run. Tests that need a binary call the same script,
# which waits on the build's lock (flock) and then only prints the cached path. The background
# builds run in their own process groups and are killed when this script exits, however it
# exits: nothing outlives `make ci`.
set -euo pipefail
cd "$(dirname "$0")/.."

# CI builds once from clean: incremental caches would only cost disk (~15 GB), never time.
export CARGO_INCREMENTAL=0

logs=target/ci-logs
mkdir -p "$logs"
pids=()
cleanup() {
    for p in "${pids[@]}"; do
        kill -- "-$p" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for s in kube-test-env istio-test-env jaeger-test-env grpcurl-env; do
    setsid bash "scripts/$s.sh" >"$logs/$s.log" 2>&1 </dev/null &
    pids+=("$!")
done

start=$(date +%s)
make --no-print-directory lint
make --no-print-directory test
echo "ci: lints and tests passed in $(( $(date +%s) - start )) s"
