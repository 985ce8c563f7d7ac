#!/usr/bin/env bash
# Regenerates the Python protobuf/gRPC stubs from the workspace's single copy of the
# .proto files (crates/protocol/proto). Usage: gen_protos.sh [OUT_DIR]
# OUT_DIR defaults to the package's proto folder; tests pass a temp dir to detect drift.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pkg_root="$(cd "$here/.." && pwd)"
proto_root="$(cd "$pkg_root/../../crates/protocol/proto" && pwd)"
out="${1:-$pkg_root/src/seldon_mesh_wrapper/proto}"
python="${PYTHON:-python}"

mkdir -p "$out"
files=(
  seldon/prediction.proto
  tensorflow/core/framework/tensor.proto
  tensorflow/core/framework/tensor_shape.proto
  tensorflow/core/framework/types.proto
  tensorflow/core/framework/resource_handle.proto
  inference/open_inference_grpc.proto
)
"$python" -m grpc_tools.protoc -I "$proto_root" \
  --python_out="$out" --grpc_python_out="$out" "${files[@]}"

# protoc emits absolute imports ("from seldon import ..."); make them package-relative
# to seldon_mesh_wrapper.proto so the stubs never shadow a user's own `tensorflow`.
find "$out" -name '*_pb2*.py' -print0 | xargs -0 sed -i -E \
  -e 's/^from (seldon|tensorflow\.core\.framework|inference) import /from seldon_mesh_wrapper.proto.\1 import /'
for d in "$out" "$out/seldon" "$out/inference" "$out/tensorflow" "$out/tensorflow/core" "$out/tensorflow/core/framework"; do
  touch "$d/__init__.py"
done
