#!/usr/bin/env bash
# Install podman and the tools the container checks use, and write the CONTAINERS_CONF fixes (needs root for apt).
# Prints the export line: eval "$(containers/podman-setup.sh)"
set -euo pipefail
# shellcheck source=containers/lib.sh
source "$(dirname "$0")/lib.sh"

missing=()
for tool in podman runc debootstrap docker-compose; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
    apt-get update -qq >&2
    apt-get install -y -qq podman runc debootstrap docker-compose >&2
fi
aimi_podman_conf
podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}}' >&2
echo "export CONTAINERS_CONF=$CONTAINERS_CONF"
