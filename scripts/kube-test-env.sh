#!/usr/bin/env bash
# Build a real kube-apiserver and etcd from the Go module proxy, once per machine, into
# ~/.cache/seldon-mesh/kube/, and print their paths (one per line: etcd, kube-apiserver,
# kube-controller-manager).
# `--helm`: build (once) and print only helm, for rendering the chart in tests.
# Used by control-plane/operator's real-apiserver test (envtest-style: no kubelet, no
# controller-manager) and by the mesh test (tests/mesh), which also runs the
# controller-manager so Deployments become Pods. Idempotent: a warm cache only prints the paths.
#
# Why wrapper modules: k8s.io/kubernetes can't be `go install`ed (its go.mod replaces the
# staging modules k8s.io/api, k8s.io/apiserver, ... with ./staging paths), and etcd's
# server module has replace lines too. A tiny module that requires them and pins the
# replacements builds the same commands. See control-plane/operator/README.md for timings.
set -euo pipefail

KUBE_VERSION="v1.34.4"     # k8s.io/kubernetes
STAGING_VERSION="v0.34.4"  # the published staging modules of the same release
ETCD_VERSION="v3.6.4"      # go.etcd.io/etcd/server/v3
HELM_VERSION="v3.19.0"     # helm.sh/helm/v3 (go install works: no replace lines)

CACHE_DIR="${SELDON_MESH_CACHE:-$HOME/.cache/seldon-mesh}"
OUT="$CACHE_DIR/kube"
BIN="$OUT/bin"
APISERVER="$BIN/kube-apiserver-$KUBE_VERSION"
ETCD="$BIN/etcd-$ETCD_VERSION"
CONTROLLER_MANAGER="$BIN/kube-controller-manager-$KUBE_VERSION"
HELM="$BIN/helm-$HELM_VERSION"

log() { printf 'kube-test-env: %s\n' "$*" >&2; }

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod
export GOPATH="${GOPATH:-$HOME/go}"

mkdir -p "$BIN"
# Tests call this script concurrently; one build at a time, the others wait and reuse it.
exec 9>"$OUT/.lock"
flock 9

build_etcd() {
    local dir="$OUT/etcd-wrapper"
    rm -rf "$dir" && mkdir -p "$dir" && cd "$dir"
    go mod init seldon-mesh.local/etcd-wrapper >&2 2>&1
    # `go install ...@v3.6.4` refuses because server/v3's go.mod has replace lines;
    # a tool dependency of a wrapper module builds the same package.
    go get -tool "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
    go build -trimpath -ldflags='-s -w' -o "$ETCD.tmp" go.etcd.io/etcd/server/v3 >&2
    mv "$ETCD.tmp" "$ETCD"
}

build_apiserver() {
    local dir="$OUT/apiserver-wrapper"
    rm -rf "$dir" && mkdir -p "$dir" && cd "$dir"
    go mod init seldon-mesh.local/apiserver-wrapper >&2 2>&1
    # Read k8s.io/kubernetes' own go.mod and replace every staging module it requires at
    # v0.0.0 with the published release of the same minor (generated, not hand-written).
    local gomod
    gomod="$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
    [[ -f "$gomod" ]] || { log "could not download k8s.io/kubernetes@$KUBE_VERSION"; exit 1; }
    local staging
    staging="$(awk '/^require \(/{r=1;next} r&&/^\)/{r=0} r&&$2=="v0.0.0"{print $1}' "$gomod" | sort -u)"
    [[ -n "$staging" ]] || { log "no v0.0.0 staging requirements found in $gomod"; exit 1; }
    go mod edit -require="k8s.io/kubernetes@$KUBE_VERSION"
    local m n=0
    for m in $staging; do
        go mod edit -replace="$m=$m@$STAGING_VERSION"
        n=$((n + 1))
    done
    log "replaced $n staging modules with $STAGING_VERSION"
    printf 'package tools\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver"\n\t_ "k8s.io/kubernetes/cmd/kube-controller-manager"\n)\n' > tools.go
    go mod tidy >&2
    local v="k8s.io/component-base/version"
    go build -trimpath -ldflags="-s -w -X $v.gitVersion=$KUBE_VERSION -X $v.gitMajor=1 -X $v.gitMinor=34" \
        -o "$APISERVER.tmp" k8s.io/kubernetes/cmd/kube-apiserver >&2
    mv "$APISERVER.tmp" "$APISERVER"
    # Shares most packages with the apiserver, so it costs a few minutes more.
    go build -trimpath -ldflags="-s -w -X $v.gitVersion=$KUBE_VERSION -X $v.gitMajor=1 -X $v.gitMinor=34" \
        -o "$CONTROLLER_MANAGER.tmp" k8s.io/kubernetes/cmd/kube-controller-manager >&2
    mv "$CONTROLLER_MANAGER.tmp" "$CONTROLLER_MANAGER"
}

if [[ "${1:-}" == "--helm" ]]; then
    if [[ ! -x "$HELM" ]]; then
        log "building helm $HELM_VERSION (cold: 2-5 minutes)"
        start=$(date +%s)
        GOBIN="$OUT/helm-gobin" go install -trimpath -ldflags='-s -w' "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
        mv "$OUT/helm-gobin/helm" "$HELM"
        log "helm built in $(( $(date +%s) - start ))s, $(du -h "$HELM" | cut -f1)"
    fi
    echo "$HELM"
    exit 0
fi

if [[ ! -x "$ETCD" ]]; then
    log "building etcd $ETCD_VERSION (cold: a few minutes)"
    start=$(date +%s)
    (build_etcd)
    log "etcd built in $(( $(date +%s) - start ))s, $(du -h "$ETCD" | cut -f1)"
fi
if [[ ! -x "$APISERVER" || ! -x "$CONTROLLER_MANAGER" ]]; then
    log "building kube-apiserver + kube-controller-manager $KUBE_VERSION (cold: 10-25 minutes on 2 cores)"
    start=$(date +%s)
    (build_apiserver)
    log "kube-apiserver built in $(( $(date +%s) - start ))s, $(du -h "$APISERVER" | cut -f1)"
fi

echo "$ETCD"
echo "$APISERVER"
echo "$CONTROLLER_MANAGER"
