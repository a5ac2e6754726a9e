#!/usr/bin/env bash
# GPU benchmark for one H100-class GPU, under 11 minutes: a real-size nnU-Net 3d_fullres network (random weights,
# BAMF-sized plans) on a 512x512x300 CT (1 fold without TTA, 5 folds with TTA, the speed levers: bench.gpu), then
# batch throughput on the same network: series/hour of nnU-Net's folder mode and of aimi run with overlap on and
# off, GPU utilisation sampled with nvidia-smi (bench.gpu_throughput).
# Usage: bash bench/gpu.sh [--json FILE] [--budget-s 300]   (--smoke: the same code on the CPU, small sizes)
# Exit 2 with "no CUDA device visible" where there is no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
timeout 420 "$PY" -m bench.gpu --budget-s 300 "$@"
smoke=""
for arg in "$@"; do [[ "$arg" == "--smoke" ]] && smoke="--smoke"; done
exec timeout 240 "$PY" -m bench.gpu_throughput --series 6 --slices 120 $smoke
