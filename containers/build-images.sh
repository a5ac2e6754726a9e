#!/usr/bin/env bash
# Build the base image and model images (docker where a daemon answers, else podman; AIMI_ENGINE overrides).
# Usage: containers/build-images.sh [--test-weights] [--base-image IMAGE] [--offline] [--tag TAG] [base | MODEL ...]
#   no names: the base and every models/<name>/Dockerfile. A model always builds on a (cached) rebuild of the base.
#   --test-weights  bake `aimi testmodel` tiny models (tag :test) instead of the Zenodo weights (tag :VERSION, :latest)
#   --base-image    what Dockerfile.base builds FROM (default: its CUDA image; CI: containers/standin-base.sh)
#   --offline       never pull (--pull=never): every FROM must be local
#   --tag TAG       tag the model images :TAG (instead of :test, or :VERSION and :latest)
#   AIMI_ZENODO_URL a Zenodo mirror (a loopback one is reached with the host's network); AIMI_TEST_MIN_DICE quality
#                   target of the test models (default: aimi testmodel's)
set -euo pipefail
# shellcheck source=containers/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$AIMI_ROOT"

test_weights=0 base_image="" pull=() names=() tag=""
while (($#)); do
    case "$1" in
        --test-weights) test_weights=1 ;;
        --base-image) base_image="$2"; shift ;;
        --offline) pull=(--pull=never) ;;
        --tag) tag="$2"; shift ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        -*) echo "$0: unknown option $1" >&2; exit 2 ;;
        *) names+=("$1") ;;
    esac
    shift
done
if ((${#names[@]} == 0)); then
    names=(base)
    for dockerfile in models/*/Dockerfile; do names+=("$(basename "$(dirname "$dockerfile")")"); done
fi
for name in "${names[@]}"; do  # before the (long) base build
    [[ "$name" == base || -f "models/$name/Dockerfile" ]] || { echo "$0: models/$name/Dockerfile does not exist" >&2; exit 2; }
done

engine="$(aimi_engine)"
python="$AIMI_ROOT/.venv/bin/python"
[[ -x "$python" ]] || python=python3  # weights_digests.py needs 3.11 (tomllib)
extra=()
if [[ "$engine" == podman ]]; then
    [[ -n "${CONTAINERS_CONF:-}" ]] || aimi_podman_conf
    # Local wheel mirrors the host's pip uses (file:// indexes, find-links) are mounted into the build, so the
    # multi-GB torch/CUDA wheels are read from disk instead of downloaded. Build-time only: not in any layer.
    if [[ "${AIMI_PIP_MIRRORS:-auto}" == auto ]] && [[ -x "$AIMI_ROOT/.venv/bin/python" ]]; then
        mkdir -p "$AIMI_BUILD"
        while read -r kind dir; do
            case "$kind" in
                conf) extra+=(--volume "$dir:/etc/pip.conf:ro") ;;
                dir) extra+=(--volume "$dir:$dir:ro") ;;
            esac
        done < <("$AIMI_ROOT/.venv/bin/python" "$AIMI_ROOT/containers/pip_mirrors.py" "$AIMI_BUILD/pip.conf")
    fi
fi

source_url="$(git config --get remote.origin.url || echo unknown)"
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
if [[ -n "$tag" ]]; then tags=("$tag"); elif ((test_weights)); then tags=(test); else tags=("$AIMI_VERSION" latest); fi
# The weights download runs inside the build: a mirror on this machine's loopback is only reachable from there with
# the host's network (a Zenodo stand-in in the tests, a cache on the build machine).
network=()
case "${AIMI_ZENODO_URL:-}" in
    http://127.*|http://localhost[:/]*|http://localhost|http://\[::1\]*) network=(--network host) ;;
esac

build() {  # build NAME DOCKERFILE TAGS... -- ARGS...
    local name="$1" dockerfile="$2" start tag_args=()
    shift 2
    while [[ "$1" != -- ]]; do tag_args+=(-t "aimi/$name:$1"); shift; done
    shift
    start=$SECONDS
    echo "== building aimi/$name ($engine, $dockerfile)" >&2
    "$engine" build "${pull[@]}" "${extra[@]}" -f "$dockerfile" "${tag_args[@]}" "$@" .
    echo "== aimi/$name built in $((SECONDS - start)) s" >&2
}

base_args=(--build-arg "AIMI_VERSION=$AIMI_VERSION" --build-arg "AIMI_SOURCE=$source_url"
           --build-arg "AIMI_REVISION=$revision")
[[ -z "$base_image" ]] || base_args+=(--build-arg "BASE_IMAGE=$base_image")
build base Dockerfile.base "$AIMI_VERSION" latest -- "${base_args[@]}"

for name in "${names[@]}"; do
    [[ "$name" == base ]] && continue
    digests=""
    ((test_weights)) || digests="$("$python" containers/weights_digests.py "models/$name/manifest.toml")"
    build "$name" "models/$name/Dockerfile" "${tags[@]}" -- "${network[@]}" \
        --build-arg "AIMI_BASE=aimi/base:$AIMI_VERSION" --build-arg "AIMI_TEST_WEIGHTS=$test_weights" \
        --build-arg "WEIGHTS_DIGESTS=$digests" --build-arg "AIMI_TEST_MIN_DICE=${AIMI_TEST_MIN_DICE:-}" \
        --build-arg "AIMI_ZENODO_URL=${AIMI_ZENODO_URL:-}"
done
"$engine" images --filter reference='aimi/*' --format '{{.Repository}}:{{.Tag}} {{.Size}}' >&2
