"""The torch device a run uses: CUDA when present (or asked for), else the CPU; shared by every module that runs a
network (nnU-Net, deepbet)."""

from __future__ import annotations

from typing import Any

from aimi.errors import ConfigError


def resolve_device(requested: str) -> Any:
    """auto: CUDA when torch sees a device, else the CPU; cuda without a device is a setup error, not a slow run."""
    import torch

    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda: no CUDA device is visible (run the container with --gpus all)")
    if requested not in ("cpu", "cuda"):
        raise ConfigError(f"device {requested!r}: valid choices are auto, cpu, cuda")
    return torch.device(requested)
