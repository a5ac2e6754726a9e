#!/usr/bin/env bash
# GPU benchmark for one H100-class GPU, under 8 minutes: a real-size nnU-Net 3d_fullres network (random weights,
# BAMF-sized plans) on a 512x512x300 CT; 1 fold without TTA, 5 folds with TTA, and the speed levers.
# Usage: bash bench/gpu.sh [--json FILE] [--budget-s 420]   (--smoke: the same code on the CPU, small sizes)
# Exit 2 with "no CUDA device visible" where there is no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
exec timeout 480 "$PY" -m bench.gpu "$@"
