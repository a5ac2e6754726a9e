#!/usr/bin/env bash
# A local stand-in for the CUDA base image, for machines that cannot pull it (CI: no registry).
# Debian 12 minbase from debootstrap, imported into podman. It has no CUDA libraries: the torch wheels bring their own
# and CI runs on CPU. Dockerfile.base installs Python 3.11 itself, so the stand-in needs nothing more.
# Usage: containers/standin-base.sh [--force]   -> prints the image name (pass it as BASE_IMAGE)
set -euo pipefail
# shellcheck source=containers/lib.sh
source "$(dirname "$0")/lib.sh"
[[ -n "${CONTAINERS_CONF:-}" ]] || aimi_podman_conf

if [[ "${1:-}" != "--force" ]] && podman image exists "$AIMI_STANDIN_IMAGE"; then
    echo "$AIMI_STANDIN_IMAGE"
    exit 0
fi
[[ $EUID -eq 0 ]] || { echo "$0: debootstrap needs root" >&2; exit 1; }

rootfs="$AIMI_BUILD/standin-rootfs"
rm -rf "$rootfs"
mkdir -p "$rootfs"
debootstrap --variant=minbase bookworm "$rootfs" "${AIMI_DEBIAN_MIRROR:-http://deb.debian.org/debian}" >&2
# Registries are reached through a TLS proxy here: trust the host's CAs. As a local CA file they survive the
# ca-certificates package's own bundle rebuild when Dockerfile.base installs it.
mkdir -p "$rootfs/usr/local/share/ca-certificates" "$rootfs/etc/ssl/certs"
cp /etc/ssl/certs/ca-certificates.crt "$rootfs/usr/local/share/ca-certificates/aimi-host-bundle.crt"
cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | podman import \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["/bin/bash"]' - "$AIMI_STANDIN_IMAGE" >&2
rm -rf "$rootfs"
echo "$AIMI_STANDIN_IMAGE"
