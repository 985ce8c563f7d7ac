# The one task runner. `make ci` is exactly what .ci/run and the README's test command run.
# Every target installs what it needs (scripts/setup.sh is idempotent and fast when warm).

SHELL := /bin/bash
CARGO ?= cargo
FUZZ_SECONDS ?= 300
WASM := target/wasm32-wasip1/release/seldon_filter.wasm

.PHONY: help setup wasm images demo demo-filter test test-rust test-python test-mesh lint fmt ci bench fuzz soak

help:
	@echo "make demo   - local mode: seldon-mesh up on a sample graph, one prediction through it"
	@echo "make ci     - everything CI checks: setup, lints, wasm build, all tests"
	@echo "make wasm   - build the release filter module ($(WASM))"
	@echo "make test-mesh - the walkthrough on a real apiserver, istiod, gateway and sidecars (root)"
	@echo "make images - build every container image with podman (images/README.md)"
	@echo "make bench  - the data-plane benchmark, peers included (writes docs/benchmarks/dataplane.md)"
	@echo "make fuzz   - libFuzzer on every fuzz target, FUZZ_SECONDS each (default 300; fuzz/README.md)"
	@echo "make soak   - 30 min at 500 rps through seldon-mesh up with node kills (SOAK_MINUTES; writes docs/soak.md)"

setup:
	@scripts/setup.sh >/dev/null
	@scripts/setup-apidocs.sh >/dev/null

# The release module; size and build time are in the README.
wasm: setup
	$(CARGO) build --locked -p seldon-filter --target wasm32-wasip1 --release
	@ls -l $(WASM) | awk '{print "filter module: " $$5 " bytes"}'

# The container images (images/README.md): ghcr.io/seldon-mesh/{seldon-mesh,server,server-python,
# initializer,initializer-tf,python-wrapper,graph-filter}:<version>, built offline with podman.
images: wasm
	SELDON_IMAGE_WASM=$(WASM) images/build.sh

# Local mode on a sample graph: an A/B test between two scikit-learn models, each served by
# seldon-server (ONNX Runtime from the pinned wheel), behind the filter in a real Envoy.
demo: wasm
	$(CARGO) build --locked -q -p seldon-mesh -p seldon-server
	ORT_DYLIB_PATH="$$(model-servers/onnx/scripts/setup.sh)" target/debug/seldon-mesh up \
	  -f manifests/samples/local/iris-abtest.yaml \
	  --request '{"data":{"names":["sepal_length","sepal_width","petal_length","petal_width"],"ndarray":[[5.1,3.5,1.4,0.2]]}}'

# The filter alone: transformer → router → two test models (no model servers needed).
demo-filter: wasm
	$(CARGO) build --locked -q -p seldon-e2e --bins
	$(CARGO) run --locked -q -p seldon-e2e --bin demo

# The mesh tests need root and the cluster binaries; `make test-mesh` runs them.
test-rust: wasm
	$(CARGO) test --locked --workspace --exclude seldon-mesh-e2e

test-python:
	model-servers/python/scripts/test.sh -q

lint: setup
	$(CARGO) fmt --all --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	$(CARGO) clippy --locked -p seldon-graph -p seldon-protocol -p seldon-executor -p seldon-filter --target wasm32-wasip1 -- -D warnings

fmt:
	$(CARGO) fmt --all

# The walkthrough on a real mesh (tests/mesh/README.md): etcd, kube-apiserver,
# kube-controller-manager, istiod, our operator and webhook, an ingress gateway and sidecars,
# pods run by the test's node agent in network namespaces. Needs root. The Go binaries are
# built once from the module proxy and cached in ~/.cache/seldon-mesh (cold: ~30 min).
test-mesh: wasm
	scripts/setup-mesh-host.sh
	scripts/kube-test-env.sh >/dev/null
	scripts/jaeger-test-env.sh >/dev/null
	scripts/istio-test-env.sh >/dev/null
	model-servers/onnx/scripts/setup.sh >/dev/null
	$(CARGO) build --locked -p seldon-mesh -p seldon-server -p seldon-mesh-initializer -p seldon-e2e --bins
	$(CARGO) test --locked -p seldon-mesh-e2e -- --test-threads=1

test: test-rust test-python test-mesh

# lint + test, with the cached Go builds started in the background first (scripts/ci.sh).
ci:
	scripts/ci.sh

# The peers (KServe's router, Seldon's executor; Go, cached) are built first; without Go or a
# Seldon Core snapshot the bench runs without them and its peer table says how to get them.
bench: setup
	@peers="$$(scripts/peers-build.sh)" || { echo "make bench: peers not built (above); running without the peer table" >&2; peers=; }; \
	scripts/bench.sh $${peers:+--peers "$$peers"}

# Not in CI (CI replays fuzz/corpus in `cargo test -p seldon-fuzz`). Nightly + cargo-fuzz,
# installed once by fuzz/scripts/setup-cargo-fuzz.sh.
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/scripts/fuzz.sh

# Not in CI (CI runs a 20 s soak in `cargo test -p seldon-soak`): `seldon-mesh up` on a 3-node
# graph, 500 rps, random node kills; writes docs/soak.md, exit 1 if an assertion failed
# (tests/soak/README.md). SOAK_MINUTES (default 30) and the other SOAK_* variables pass through.
# Release builds: the test nodes and the load generator must not be what saturates 2 cores.
soak: wasm
	$(CARGO) build --locked -q --release -p seldon-mesh -p seldon-soak
	$(CARGO) build --locked -q --release -p seldon-e2e --bin testmodel
	SOAK_OUT=$${SOAK_OUT:-docs/soak.md} target/release/seldon-soak
