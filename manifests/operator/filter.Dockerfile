# The graph filter as an OCI image Istio's WasmPlugin can pull (`url: oci://…`): Istio takes
# the single-layer "compat" image whose filesystem holds plugin.wasm.
# Build the module first (make wasm), then from the repository root:
#   docker build -f manifests/operator/filter.Dockerfile -t $REGISTRY/graph-filter:0.1.0 .
FROM scratch
COPY target/wasm32-wasip1/release/seldon_filter.wasm ./plugin.wasm
