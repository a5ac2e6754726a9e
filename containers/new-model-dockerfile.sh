#!/usr/bin/env bash
# Write models/<name>/Dockerfile from the one template, so every model image is built the same way.
# Usage: containers/new-model-dockerfile.sh MODEL [MODEL...]   (a new model also needs a docker-compose.yml service)
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -ge 1 ]] || { echo "usage: $0 MODEL [MODEL...]" >&2; exit 2; }
for model in "$@"; do
    [[ -f "models/$model/manifest.toml" ]] || { echo "$0: models/$model/manifest.toml does not exist" >&2; exit 2; }
    sed "s/@MODEL@/$model/g" containers/model.Dockerfile.in > "models/$model/Dockerfile"
    echo "models/$model/Dockerfile"
done
