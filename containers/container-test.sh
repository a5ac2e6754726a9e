#!/usr/bin/env bash
# CI's container check, on a machine with no Docker engine and no registry (root, for apt and debootstrap):
# podman with the CONTAINERS_CONF fixes, a Debian stand-in for the CUDA base, the base image and every model image
# with tiny test weights (offline, layers shared), then tests/containers with the container runs switched on.
# Usage: containers/container-test.sh [MODEL ...]   (default: every models/<name>/Dockerfile)
set -euo pipefail
# shellcheck source=containers/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$AIMI_ROOT"

start=$SECONDS
# Fewer training steps than `aimi testmodel` (150): the checks need a valid SEG, and each model image trains its own.
export AIMI_TEST_STEPS="${AIMI_TEST_STEPS:-60}"
eval "$(containers/podman-setup.sh)"
standin="$(containers/standin-base.sh)"
echo "== stand-in base $standin ready after $((SECONDS - start)) s" >&2
AIMI_ENGINE=podman containers/build-images.sh --test-weights --offline --base-image "$standin" "$@"
echo "== images built after $((SECONDS - start)) s" >&2
select=()
if (($#)); then expression="$(printf ' or %s' "$@")"; select=(-k "${expression# or }"); fi
AIMI_CONTAINER_TESTS=1 AIMI_ENGINE=podman AIMI_IMAGE_TAG=test .venv/bin/python -m pytest tests/containers -ra "${select[@]}"
echo "== container test done in $((SECONDS - start)) s" >&2
