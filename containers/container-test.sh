#!/usr/bin/env bash
# CI's container check, on a machine with no Docker engine and no registry (root, for apt and debootstrap):
# podman with the CONTAINERS_CONF fixes, a Debian stand-in for the CUDA base, the base image and every model image
# with tiny test weights (offline, layers shared), then tests/containers with the container runs switched on (one of
# them builds the lung image again on the real-weights path, from a Zenodo stand-in on loopback).
# Usage: containers/container-test.sh [MODEL ...]   (default: every models/<name>/Dockerfile)
set -euo pipefail
# shellcheck source=containers/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$AIMI_ROOT"

start=$SECONDS
# A lower quality target than `aimi testmodel`'s 0.9: the checks need a valid SEG in which every label is found, not
# a good one, and each model image fits its own.
export AIMI_TEST_MIN_DICE="${AIMI_TEST_MIN_DICE:-0.5}"
eval "$(containers/podman-setup.sh)"
standin="$(containers/standin-base.sh)"
echo "== stand-in base $standin ready after $((SECONDS - start)) s" >&2
AIMI_ENGINE=podman containers/build-images.sh --test-weights --offline --base-image "$standin" "$@"
echo "== images built after $((SECONDS - start)) s" >&2
select=()
if (($#)); then expression="$(printf ' or %s' "$@")"; select=(-k "${expression# or }"); fi
AIMI_CONTAINER_TESTS=1 AIMI_ENGINE=podman AIMI_IMAGE_TAG=test AIMI_STANDIN_BASE="$standin" .venv/bin/python -m pytest tests/containers -ra "${select[@]}"
echo "== container test done in $((SECONDS - start)) s" >&2
