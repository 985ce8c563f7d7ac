//! A tiny in-process OCI registry serving the filter module as an Istio compat Wasm image (work in progress).
