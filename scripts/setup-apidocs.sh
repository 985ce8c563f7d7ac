#!/usr/bin/env bash
# Installs what the API documentation needs (crates/apidocs/README.md), once per machine:
#   - swagger-ui-dist 5.35.0 from npm, checked against its pinned integrity hash, unpacked into
#     ${SELDON_MESH_CACHE:-~/.cache/seldon-mesh}/swagger-ui-dist/5.35.0 (what `seldon-mesh up`
#     serves at /seldon/<ns>/<sdep>/api/v1.0/doc/; no CDN);
#   - openapi-spec-validator 0.9.0 from PyPI into the project's venv (scripts/setup.sh's);
#   - with --browser: Debian's chromium and chromium-driver (the Swagger UI browser test).
# Idempotent: a warm machine only checks. Prints KEY=VALUE lines: SWAGGER_UI_DIR, PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."

SWAGGER_UI_VERSION="5.35.0"   # = seldon_apidocs::SWAGGER_UI_VERSION
SWAGGER_UI_INTEGRITY="sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ=="
SPEC_VALIDATOR_VERSION="0.9.0"
CACHE_DIR="${SELDON_MESH_CACHE:-$HOME/.cache/seldon-mesh}"
VENV="$CACHE_DIR/venv"
UI_DIR="$CACHE_DIR/swagger-ui-dist/$SWAGGER_UI_VERSION"

browser=0
for arg in "$@"; do
    case "$arg" in
        --browser) browser=1 ;;
        *) echo "setup-apidocs: unknown argument $arg (known: --browser)" >&2; exit 2 ;;
    esac
done

log() { printf 'setup-apidocs: %s\n' "$*" >&2; }

# The venv (and Envoy) first: setup.sh takes its own lock.
scripts/setup.sh >/dev/null
PYTHON="$VENV/bin/python"

mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/.setup-apidocs.lock"
flock 9

# 1. openapi-spec-validator into the venv.
installed="$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("openapi-spec-validator"))' 2>/dev/null || true)"
if [[ "$installed" != "$SPEC_VALIDATOR_VERSION" ]]; then
    log "installing openapi-spec-validator==$SPEC_VALIDATOR_VERSION (found: ${installed:-none})"
    "$PYTHON" -m pip install --quiet --disable-pip-version-check "openapi-spec-validator==$SPEC_VALIDATOR_VERSION" >&2
fi

# 2. swagger-ui-dist: `npm pack` fetches the tarball only (not its @scarf/scarf dependency,
#    an install-time analytics hook the static files do not need); the hash is ours.
if [[ ! -f "$UI_DIR/swagger-ui-bundle.js" ]]; then
    command -v npm >/dev/null || { log "npm not found: install Node.js (Debian: apt-get install npm)"; exit 1; }
    log "installing swagger-ui-dist@$SWAGGER_UI_VERSION into $UI_DIR"
    tmp="$(mktemp -d "$CACHE_DIR/.swagger-ui.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && npm pack --silent "swagger-ui-dist@$SWAGGER_UI_VERSION" >/dev/null)
    tarball="$tmp/swagger-ui-dist-$SWAGGER_UI_VERSION.tgz"
    got="$("$PYTHON" -c 'import base64, hashlib, sys; print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$tarball")"
    if [[ "$got" != "$SWAGGER_UI_INTEGRITY" ]]; then
        log "swagger-ui-dist-$SWAGGER_UI_VERSION.tgz: integrity $got, expected $SWAGGER_UI_INTEGRITY"
        exit 1
    fi
    mkdir -p "$tmp/out"
    tar -xzf "$tarball" -C "$tmp/out" --strip-components=1
    mkdir -p "$(dirname "$UI_DIR")"
    rm -rf "$UI_DIR"
    mv "$tmp/out" "$UI_DIR"
fi

# 3. The browser, for the Swagger UI test (needs root for apt-get; this project's machines run
#    as root).
if ((browser)); then
    need=()
    for p in chromium chromium-driver; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
    done
    if ((${#need[@]})); then
        if [[ $(id -u) -ne 0 ]]; then
            log "needs root to apt-get install ${need[*]}"
            exit 1
        fi
        log "installing ${need[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2 \
            || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2; }
    fi
fi

echo "SWAGGER_UI_DIR=$UI_DIR"
echo "PYTHON=$PYTHON"
