# Shared by the containers/ scripts (sourced, not run): repository root, container engine, podman settings.
# shellcheck shell=bash disable=SC2034  # the variables are for the scripts that source this file

AIMI_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
AIMI_BUILD="${AIMI_BUILD:-$AIMI_ROOT/build/containers}"
AIMI_VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$AIMI_ROOT/base/pyproject.toml")"
AIMI_STANDIN_IMAGE="${AIMI_STANDIN_IMAGE:-localhost/aimi-ci/cuda-standin:bookworm}"

# docker where a daemon answers, else podman (CI: no Docker engine). AIMI_ENGINE overrides.
aimi_engine() {
    if [[ -n "${AIMI_ENGINE:-}" ]]; then
        echo "$AIMI_ENGINE"
    elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
        echo docker
    elif command -v podman >/dev/null; then
        echo podman
    else
        echo "containers: neither a Docker daemon nor podman is available" >&2
        return 1
    fi
}

# Podman on these machines needs two fixes: crun fails on the hybrid cgroups (use runc
# and cgroupfs), and the default ulimits exceed the hard limit. Pass both ulimits or none: a CLI --ulimit replaces them.
aimi_podman_conf() {
    local conf="$AIMI_BUILD/containers.conf" nofile
    nofile="$(ulimit -Hn)"
    mkdir -p "$AIMI_BUILD"
    cat > "$conf" <<CONF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
    export CONTAINERS_CONF="$conf"
}
