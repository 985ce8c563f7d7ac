#!/usr/bin/env bash
# Builds the project's container images with podman (see images/README.md):
#
#   images/build.sh [seldon-mesh|server|server-python|initializer|initializer-tf|python-wrapper|graph-filter ...]
#                                                                     (default: all seven)
#
# Each image gets a staging context under $CARGO_TARGET_DIR/images/<name>/ (binaries, the shared
# libraries `ldd` names, wheels) and is built from images/<name>.Containerfile, offline
# (`--network none`, `--pull=never`): no registry is needed or reachable.
#
# Environment:
#   SELDON_IMAGE_REGISTRY  default ghcr.io/seldon-mesh      → $SELDON_IMAGE_REGISTRY/<name>:$SELDON_IMAGE_TAG
#   SELDON_IMAGE_TAG       default the workspace version (Cargo.toml), e.g. 0.1.0
#   SELDON_IMAGE_BIN_DIR   take seldon-mesh / seldon-server / seldon-mesh-initializer from this
#                          directory instead of `cargo build --profile image` (tests pass their
#                          own binaries)
#   SELDON_IMAGE_WASM      the filter module (default target/wasm32-wasip1/release/seldon_filter.wasm,
#                          built by `make wasm` when missing)
# Prints one line per image: `<name> <tag> <size in bytes>`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
cargo="${CARGO:-cargo}"
target="${CARGO_TARGET_DIR:-$repo/target}"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/Cargo.toml" | head -1)"
registry="${SELDON_IMAGE_REGISTRY:-ghcr.io/seldon-mesh}"
tag="${SELDON_IMAGE_TAG:-$version}"
cache="${SELDON_MESH_CACHE:-$HOME/.cache/seldon-mesh}/images"
all=(seldon-mesh server server-python initializer initializer-tf python-wrapper graph-filter)
names=("$@")
((${#names[@]})) || names=("${all[@]}")
for n in "${names[@]}"; do
  [[ " ${all[*]} " == *" $n "* ]] || { echo "build.sh: unknown image '$n' (${all[*]})" >&2; exit 2; }
done

"$here/setup.sh"
mkdir -p "$cache"
revision="$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)"

# The three binaries are always built together, in one cargo call: building a subset would
# unify dependency features differently and recompile shared crates.
built_binaries=
build_binaries() {
  [[ -n "$built_binaries" ]] && return
  (cd "$repo" && nice -n 10 "$cargo" build --locked --profile image \
    -p seldon-mesh -p seldon-server -p seldon-mesh-initializer >&2)
  built_binaries=1
}

# binary <bin>: path of a release binary (built with the `image` profile).
binary() {
  if [[ -n "${SELDON_IMAGE_BIN_DIR:-}" ]]; then
    [[ -x "$SELDON_IMAGE_BIN_DIR/$1" ]] || { echo "build.sh: no $1 in $SELDON_IMAGE_BIN_DIR" >&2; exit 1; }
    echo "$SELDON_IMAGE_BIN_DIR/$1"
    return
  fi
  echo "$target/image/$1"
}

# fresh_context <name>: an empty staging directory (one per image and tag; the caller holds
# its lock).
fresh_context() {
  local ctx="$target/images/$1-$tag"
  rm -rf "$ctx"
  mkdir -p "$ctx/rootfs"
  echo "$ctx"
}

# add_binary <rootfs> <src> <dest>: a stripped copy of an executable or library.
add_binary() {
  mkdir -p "$1$(dirname "$3")"
  strip --strip-debug -o "$1$3" "$2"
}

# add_libs <rootfs> <elf>...: the shared libraries `ldd` resolves for each file, at the same
# paths, plus a list of the Debian packages (and versions) they come from. They are the build
# host's: the binaries were linked against its glibc, so these are the ones that match.
add_libs() {
  local root="$1" lib pkg
  shift
  mkdir -p "$root/usr/share/seldon-mesh"
  for lib in $(ldd "$@" | grep -o '/[^ ]*' | grep -v ':$' | sort -u); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
    pkg="$({ dpkg -S "$lib" || dpkg -S "$(readlink -f "$lib")"; } 2>/dev/null | head -1 | cut -d: -f1 || true)"
    [[ -n "$pkg" ]] && dpkg-query -W -f='${Package}=${Version}\n' "$pkg" >> "$root/usr/share/seldon-mesh/libraries.txt"
    echo "$lib" >> "$root/usr/share/seldon-mesh/libraries.txt"
  done
}

# add_nonroot <rootfs>: /etc/passwd and /etc/group with root and user 8888 (Seldon's
# DEFAULT_USER_ID, which the rendered pods run as), and a sticky /tmp.
add_nonroot() {
  mkdir -p "$1/etc" "$1/tmp"
  chmod 1777 "$1/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nseldon:x:8888:8888:seldon:/tmp:/sbin/nologin\n' > "$1/etc/passwd"
  printf 'root:x:0:\nseldon:x:8888:\n' > "$1/etc/group"
}

# wheels <dir> <pip args...>: downloads binary wheels once into a cache keyed by the args'
# content, then hard-links them into <dir>.
wheels() {
  local dest="$1" key py
  shift
  key="$(printf '%s\n' "$@" | sha256sum | cut -c1-16)"
  for f in "$@"; do [[ -f "$f" ]] && key="$key-$(sha256sum "$f" | cut -c1-8)"; done
  mkdir -p "$cache/wheels"
  exec 8>"$cache/wheels/$key.lock"
  flock 8
  if [[ ! -f "$cache/wheels/$key/.done" ]]; then
    py="$(command -v python3.11 || command -v python3)"
    rm -rf "$cache/wheels/$key"
    mkdir -p "$cache/wheels/$key"
    echo "build.sh: pip download $* → $cache/wheels/$key" >&2
    "$py" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
      -d "$cache/wheels/$key" "$@" >&2
    touch "$cache/wheels/$key/.done"
  fi
  mkdir -p "$dest"
  cp -lf "$cache/wheels/$key"/*.whl "$dest/" 2>/dev/null || cp -f "$cache/wheels/$key"/*.whl "$dest/"
  exec 8>&-
}

# wrapper_wheel <dir>: the Python wrapper (model-servers/python) as a wheel, built once per
# content of its sources (cached), copied into <dir>; sets wrapper_whl to the cached wheel (its
# path names the content hash, so `wheels` keys its downloads on it).
wrapper_wheel() {
  local wkey wdir py wsrc
  wkey="$(cd "$repo/model-servers/python" && find pyproject.toml README.md src -type f ! -name '*.pyc' ! -path '*.egg-info/*' | sort | xargs sha256sum | sha256sum | cut -c1-16)"
  wdir="$cache/wrapper-wheel/$wkey"
  mkdir -p "$cache/wrapper-wheel" "$1"
  exec 8>"$cache/wrapper-wheel/$wkey.lock"
  flock 8
  if [[ ! -f "$wdir/.done" ]]; then
    rm -rf "$wdir" && mkdir -p "$wdir"
    py="$(command -v python3.11 || command -v python3)"
    # from a copy: an in-tree build would leave build/ and *.egg-info in the source (and
    # could pack stale files from an old build/)
    wsrc="$(mktemp -d)"
    cp -r "$repo/model-servers/python/pyproject.toml" "$repo/model-servers/python/README.md" \
      "$repo/model-servers/python/src" "$wsrc/"
    find "$wsrc" \( -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} +
    "$py" -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$wdir" "$wsrc" >&2
    rm -rf "$wsrc"
    touch "$wdir/.done"
  fi
  exec 8>&-
  cp "$wdir"/*.whl "$1/"
  wrapper_whl="$(ls "$wdir"/*.whl)"
}

# podman_build <name> <ctx>
podman_build() {
  local ref="$registry/$1:$tag" old new
  old="$(podman image inspect --format '{{.Id}}' "$ref" 2>/dev/null || true)"
  podman build --quiet --network none --pull=never --layers \
    --label "org.opencontainers.image.title=$1" \
    --label "org.opencontainers.image.version=$tag" \
    --label "org.opencontainers.image.revision=$revision" \
    --label "org.opencontainers.image.source=https://github.com/seldon-mesh/seldon-mesh" \
    --label "org.opencontainers.image.licenses=Apache-2.0" \
    -f "$here/$1.Containerfile" -t "$ref" "$2" > /dev/null
  new="$(podman image inspect --format '{{.Id}}' "$ref")"
  # the previous build of this tag, now untagged: remove it (kept if a container uses it)
  if [[ -n "$old" && "$old" != "$new" ]]; then
    podman rmi "$old" > /dev/null 2>&1 || true
  fi
  echo "$1 $ref $(podman image inspect --format '{{.Size}}' "$ref")"
}

mkdir -p "$target/images"
if [[ -z "${SELDON_IMAGE_BIN_DIR:-}" && " ${names[*]} " =~ \ (seldon-mesh|server|server-python|initializer|initializer-tf)\  ]]; then
  build_binaries
fi
for name in "${names[@]}"; do
  start=$SECONDS
  exec 7>"$target/images/$name-$tag.lock"
  flock 7
  case "$name" in
  seldon-mesh)
    bin="$(binary seldon-mesh)"
    ctx="$(fresh_context "$name")"
    add_binary "$ctx/rootfs" "$bin" /usr/local/bin/seldon-mesh
    add_libs "$ctx/rootfs" "$bin"
    add_nonroot "$ctx/rootfs"
    ;;
  server)
    bin="$(binary seldon-server)"
    ort="$("$repo/model-servers/onnx/scripts/setup.sh")"   # the pinned onnxruntime wheel's library
    ctx="$(fresh_context "$name")"
    add_binary "$ctx/rootfs" "$bin" /usr/local/bin/seldon-server
    add_binary "$ctx/rootfs" "$ort" "/usr/local/lib/$(basename "$ort")"
    add_libs "$ctx/rootfs" "$bin" "$ort"
    add_nonroot "$ctx/rootfs"
    # /bin/sh and /bin/sleep for the preStop hook every rendered container gets
    # (`/bin/sh -c /bin/sleep 10`, as Seldon's operator renders it): static busybox.
    mkdir -p "$ctx/rootfs/bin"
    cp /bin/busybox "$ctx/rootfs/bin/busybox"
    ln -s busybox "$ctx/rootfs/bin/sh"
    ln -s busybox "$ctx/rootfs/bin/sleep"
    dpkg-query -W -f='${Package}=${Version}\n/bin/busybox\n' busybox-static >> "$ctx/rootfs/usr/share/seldon-mesh/libraries.txt"
    [[ "$(basename "$ort")" == libonnxruntime.so.1.31.1 ]] \
      || { echo "build.sh: server.Containerfile names libonnxruntime.so.1.31.1, setup.sh gave $ort" >&2; exit 1; }
    ;;
  initializer)
    bin="$(binary seldon-mesh-initializer)"
    base="$("$here/debian-python.sh")"
    ctx="$(fresh_context "$name")"
    add_binary "$ctx/rootfs" "$bin" /usr/local/bin/seldon-mesh-initializer
    mkdir -p "$ctx/rootfs/opt/seldon-mesh"
    # the fetch-time converters (the initializer looks for the others beside convert_sklearn.py)
    cp "$repo/model-servers/onnx/python/"convert_{sklearn,xgboost,tensorflow}.py "$ctx/rootfs/opt/seldon-mesh/"
    cp "$repo/model-servers/onnx/python/requirements.txt" "$ctx/requirements.txt"
    wheels "$ctx/wheels" -r "$repo/model-servers/onnx/python/requirements.txt"
    # The binary needs only glibc, which the Debian base has (same release as the build host).
    ;;
  server-python)
    bin="$(binary seldon-server)"
    base="$("$here/debian-python.sh")"
    ctx="$(fresh_context "$name")"
    add_binary "$ctx/rootfs" "$bin" /usr/local/bin/seldon-server
    mkdir -p "$ctx/rootfs/opt/seldon-mesh/sklearn-fallback"
    cp "$repo/model-servers/onnx/python/fallback/SKLearnServer.py" "$ctx/rootfs/opt/seldon-mesh/sklearn-fallback/"
    # what the local fallback's venv holds (model-servers/onnx/scripts/setup.sh --with-wrapper)
    cp "$repo/model-servers/onnx/python/requirements.txt" "$ctx/requirements.txt"
    wrapper_wheel "$ctx/wheels"
    # the wheel's hash in the copied file: a changed wrapper invalidates the venv layer
    printf '# %s %s\nseldon-mesh-wrapper[mlflow]\n' "$(basename "$wrapper_whl")" \
      "$(sha256sum "$wrapper_whl" | cut -c1-16)" > "$ctx/wrapper.txt"
    wheels "$ctx/wheels" -r "$repo/model-servers/onnx/python/requirements.txt" "$wrapper_whl[mlflow]"
    ;;
  initializer-tf)
    bin="$(binary seldon-mesh-initializer)"
    base="$("$here/debian-python.sh")"
    ctx="$(fresh_context "$name")"
    add_binary "$ctx/rootfs" "$bin" /usr/local/bin/seldon-mesh-initializer
    mkdir -p "$ctx/rootfs/opt/seldon-mesh"
    cp "$repo/model-servers/onnx/python/convert_tensorflow.py" "$ctx/rootfs/opt/seldon-mesh/"
    cp "$repo/model-servers/initializer/scripts/requirements-tensorflow.txt" "$ctx/"
    wheels "$ctx/wheels" -r "$repo/model-servers/initializer/scripts/requirements-tensorflow.txt"
    ;;
  python-wrapper)
    base="$("$here/debian-python.sh")"
    ctx="$(fresh_context "$name")"
    wrapper_wheel "$ctx/wheels"
    wheels "$ctx/wheels" "$wrapper_whl"
    ;;
  graph-filter)
    wasm="${SELDON_IMAGE_WASM:-$target/wasm32-wasip1/release/seldon_filter.wasm}"
    if [[ -z "${SELDON_IMAGE_WASM:-}" ]]; then
      (cd "$repo" && make -s wasm >&2)
    fi
    ctx="$(fresh_context "$name")"
    cp "$wasm" "$ctx/plugin.wasm"
    ;;
  esac
  podman_build "$name" "$ctx"
  echo "build.sh: $name built in $((SECONDS - start)) s" >&2
  exec 7>&-
done
