"""What every module of a run may know besides its own settings: the model, where weights are, run options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aimi.manifest import Manifest

#: Command-line options that are module settings: each given one overrides the same-named setting of every step
#: of the chain that has it (NNUnetRunner: device, folds, tta, step_size; BrainExtractor: device; DsegConverter:
#: keep_empty_frames), over the workflow's value and under `--set`.
OPTION_SETTINGS = ("device", "folds", "tta", "step_size", "keep_empty_frames")


@dataclass(frozen=True)
class RunOptions:
    """Run-wide options from the CLI. None: not given, the workflow's setting holds. fail_fast, workers and
    memory_budget_gb are the runner's own (None: from the machine's cores and memory)."""

    device: str | None = None
    folds: str | None = None
    tta: bool | None = None
    step_size: float | None = None
    keep_empty_frames: bool | None = None
    fail_fast: bool = False
    workers: int | None = None
    memory_budget_gb: float | None = None

    def settings(self) -> dict[str, Any]:
        """The given options that override module settings."""
        return {name: getattr(self, name) for name in OPTION_SETTINGS if getattr(self, name) is not None}


@dataclass(frozen=True)
class RunContext:
    model_name: str
    model_dir: Path
    manifest: Manifest
    weights_dir: Path
    output_dir: Path
    options: RunOptions
