"""What every module of a run may know besides its own settings: the model, where weights are, run options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aimi.manifest import Manifest


@dataclass(frozen=True)
class RunOptions:
    """Run-wide options from the CLI; each module reads the ones it serves."""

    device: str = "auto"
    folds: str = "all"
    tta: bool = True
    step_size: float = 0.5
    keep_empty_frames: bool = False
    fail_fast: bool = False


@dataclass(frozen=True)
class RunContext:
    model_name: str
    model_dir: Path
    manifest: Manifest
    weights_dir: Path
    output_dir: Path
    options: RunOptions
