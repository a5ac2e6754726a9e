#!/usr/bin/env bash
# The nnU-Net v1 reference environment that tests/test_convert_v1.py compares the v1 -> v2 conversion against:
# nnunet 1.7.1 from PyPI on the runtime's torch (2.14.1), in its own venv outside the repo (it would pull an old
# stack into .venv); shared packages follow the repo's constraints.txt. Idempotent: a venv whose stamp matches
# PINS is kept. Prints the venv's python.
# Measured on a 2-core machine: ~4 min from the local pip cache, 6.2 GB (torch's CUDA wheels are most of it).
set -euo pipefail
VENV="${AIMI_V1_VENV:-$HOME/.cache/aimi/nnunet-v1-venv}"
PYTHON="${PYTHON:-python3.11}"
PINS="nnunet==1.7.1 torch==2.14.1"
STAMP="$VENV/.aimi-v1-env"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$PINS" ]; then
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    # shellcheck disable=SC2086  # PINS is a list of requirements
    "$VENV/bin/pip" install -q -c "$(dirname "$0")/../../constraints.txt" $PINS >&2
    "$VENV/bin/python" -c "import nnunet.training.network_training.nnUNetTrainerV2" >&2
    echo "$PINS" > "$STAMP"
fi
echo "$VENV/bin/python"
