#!/usr/bin/env bash
# Builds the peers of the benchmark's peer table (issue 12 item 5) and prints the directory
# that holds both binaries, for `scripts/bench.sh --peers DIR`:
#
#   DIR/kserve-router     KServe v0.17.0 InferenceGraph router (cmd/router)
#   DIR/seldon-executor   Seldon Core v1.18.2 executor (executor/cmd/executor)
#
# Idempotent and pinned: a binary that exists with its stamp is not rebuilt. Never part of CI.
# Needs Go (>= 1.25, the version kserve's go.mod names) and a C compiler (the executor links
# librdkafka through cgo). Go builds take minutes on a small machine; run it in the background:
#
#   nice -n 10 scripts/peers-build.sh          # prints ~/.cache/seldon-mesh/peers
#
# Sources:
# - KServe: the module github.com/kserve/kserve@v0.17.0 from the Go module proxy, built through
#   a small wrapper module that carries the three `replace` lines of kserve's go.mod (replaces
#   of a dependency's go.mod do not apply to its dependents, and kserve does not build without
#   them).
# - Seldon Core: no Go module of the executor is published, so the source comes from a git
#   snapshot of the public SeldonIO/seldon-core repository. Give its git dir in
#   SELDON_CORE_GIT (default: /work/.mirror/SeldonIO+seldon-core/repo, where the agents'
#   `fetch` tool puts it; anyone else: `git clone --bare` of that repository). The tag's
#   commit is checked against the pin below. As Seldon's own executor/Makefile does, operator/
#   is copied to executor/_operator (go.mod replaces the operator module with it), then
#   `CGO_ENABLED=1 go build ./cmd/executor`.
set -euo pipefail

CACHE="${SELDON_MESH_CACHE:-$HOME/.cache/seldon-mesh}"
PEERS="$CACHE/peers"
KSERVE_VERSION="v0.17.0"
SELDON_TAG="v1.18.2"
SELDON_COMMIT="5e8a1698726ecad989df37ba44e4a304f9f32112"
SELDON_CORE_GIT="${SELDON_CORE_GIT:-/work/.mirror/SeldonIO+seldon-core/repo}"

log() { printf 'peers: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v go >/dev/null || die "Go is not installed (the peers are Go programs)"
mkdir -p "$PEERS"

# --- KServe router ---------------------------------------------------------------------
build_kserve() {
    local out="$PEERS/kserve-router" stamp="$PEERS/kserve-router.version"
    if [[ -x "$out" && "$(cat "$stamp" 2>/dev/null)" == "$KSERVE_VERSION" ]]; then
        log "kserve-router $KSERVE_VERSION: cached"
        return
    fi
    local dir="$PEERS/src/kserve-wrapper"
    rm -rf "$dir" && mkdir -p "$dir"
    log "kserve-router $KSERVE_VERSION: building through the wrapper module in $dir"
    # The three replace lines of kserve v0.17.0's go.mod, verbatim.
    cat >"$dir/go.mod" <<EOF
module seldon-mesh.local/peers/kserve

go 1.25.4

require github.com/kserve/kserve $KSERVE_VERSION

replace sigs.k8s.io/controller-runtime => sigs.k8s.io/controller-runtime v0.19.7

replace github.com/expr-lang/expr => github.com/expr-lang/expr v1.17.7

replace github.com/lyft/protoc-gen-validate => github.com/envoyproxy/protoc-gen-validate v1.0.4
EOF
    # A blank import keeps `go mod tidy` from dropping the requirement.
    cat >"$dir/tools.go" <<'EOF'
//go:build tools

package tools

import _ "github.com/kserve/kserve/cmd/router"
EOF
    (cd "$dir" && GOFLAGS=-mod=mod go mod tidy \
        && CGO_ENABLED=0 go build -trimpath -o "$out.tmp" github.com/kserve/kserve/cmd/router)
    mv "$out.tmp" "$out"
    printf '%s' "$KSERVE_VERSION" >"$stamp"
}

# --- Seldon Core executor --------------------------------------------------------------
build_seldon() {
    local out="$PEERS/seldon-executor" stamp="$PEERS/seldon-executor.version"
    if [[ -x "$out" && "$(cat "$stamp" 2>/dev/null)" == "$SELDON_TAG $SELDON_COMMIT" ]]; then
        log "seldon-executor $SELDON_TAG: cached"
        return
    fi
    [[ -d "$SELDON_CORE_GIT" ]] || die "no git snapshot of SeldonIO/seldon-core at $SELDON_CORE_GIT (set SELDON_CORE_GIT)"
    local commit
    commit="$(git --git-dir="$SELDON_CORE_GIT" rev-parse "$SELDON_TAG^{commit}")" \
        || die "tag $SELDON_TAG not in $SELDON_CORE_GIT"
    [[ "$commit" == "$SELDON_COMMIT" ]] || die "$SELDON_TAG is $commit in $SELDON_CORE_GIT, pinned $SELDON_COMMIT"
    local src="$PEERS/src/seldon-core-$SELDON_TAG"
    if [[ ! -d "$src/executor" ]]; then
        log "seldon-executor $SELDON_TAG: extracting operator/ executor/ proto/ at ${commit:0:9}"
        rm -rf "$src" && mkdir -p "$src"
        # A snapshot may lack large blobs elsewhere in the tree (git archive then names one,
        # e.g. a doc/ image, and still exits 0): check that every file we need arrived.
        git --git-dir="$SELDON_CORE_GIT" archive "$commit" operator executor proto | tar -x -C "$src"
        local want got
        want="$(git --git-dir="$SELDON_CORE_GIT" ls-tree -r "$commit" operator executor proto | wc -l)"
        got="$(find "$src" -type f -o -type l | wc -l)"
        [[ "$want" == "$got" ]] || die "extracted $got of $want files of operator/ executor/ proto/"
    fi
    rm -rf "$src/executor/_operator"
    cp -r "$src/operator" "$src/executor/_operator"
    log "seldon-executor $SELDON_TAG: CGO_ENABLED=1 go build ./cmd/executor"
    (cd "$src/executor" && CGO_ENABLED=1 go build -trimpath -o "$out.tmp" ./cmd/executor)
    mv "$out.tmp" "$out"
    printf '%s' "$SELDON_TAG $SELDON_COMMIT" >"$stamp"
}

build_kserve
build_seldon
echo "$PEERS"
