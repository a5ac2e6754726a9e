"""NNUnetRunner - reads: `image`; writes: `labelmap` (on the grid of the reference role's image).

nnunetv2's `nnUNetPredictor`, in-process, built once per model per run and reused for every case. Channels are
taken from the model folder's own dataset.json and mapped to case roles by name; folds, TTA mirroring, tile step
and device are settings (the run options --folds, --no-tta, --step-size and --device set them). Several models in
one chain (breast) each write a label map named after their weights id.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from aimi.case import MAIN, Case
from aimi.context import RunContext
from aimi.device import resolve_device
from aimi.errors import CaseError, ConfigError
from aimi.log import event
from aimi.module import Module
from aimi.weights import model_folder, provenance, require_weights

log = logging.getLogger("aimi.nnunet")


@dataclass(frozen=True)
class Settings:
    weights: list[str] = field(default_factory=list)  # manifest weights ids; empty: every entry
    channels: dict[str, str] = field(default_factory=dict)  # dataset.json channel name -> case role
    output: str = MAIN  # label map name when one model runs; several models name theirs by weights id
    device: str = "auto"  # auto (CUDA when visible), cpu or cuda; --device
    folds: str = "all"  # or fold numbers such as "0,1"; --folds
    tta: bool = True  # test-time mirroring, as the paper; --no-tta
    step_size: float = 0.5  # sliding-window tile step, a fraction of a patch; --step-size

    def __post_init__(self) -> None:
        if not 0.0 < self.step_size <= 1.0:
            raise ValueError(f"step_size: {self.step_size} must be in (0, 1] (a fraction of a patch)")


def folds_in(folder: Path, requested: str) -> tuple[int, ...]:
    present = sorted(int(p.name[5:]) for p in folder.glob("fold_*") if (p / "checkpoint_final.pth").is_file())
    if requested == "all":
        return tuple(present)
    try:
        wanted = tuple(int(v) for v in requested.split(","))
    except ValueError:
        raise ConfigError(f"--folds {requested!r}: give 'all' or fold numbers like 0,1") from None
    missing = sorted(set(wanted) - set(present))
    if missing:
        raise ConfigError(f"--folds {requested}: fold(s) {missing} not in {folder} (present: {present})")
    return wanted


class _Model:
    """One nnU-Net model folder and, once first needed, its predictor."""

    def __init__(self, weights_id: str, folder: Path, folds: tuple[int, ...]) -> None:
        self.weights_id = weights_id
        self.folder = folder
        self.folds = folds
        dataset = json.loads((folder / "dataset.json").read_text())
        names = dataset.get("channel_names") or dataset.get("modality") or {}
        self.channel_names = [names[k] for k in sorted(names, key=int)]
        self.predictor: Any = None


class NNUnetRunner(Module):
    reads = ("image",)
    writes = ("labelmap",)
    Settings = Settings

    def __init__(self, settings: Settings, context: RunContext) -> None:
        super().__init__(settings, context)
        manifest = context.manifest
        ids = settings.weights or [entry.id for entry in manifest.weights]
        for weights_id in ids:
            manifest.entry(weights_id)
        require_weights(context.weights_dir, manifest)
        self.device = resolve_device(settings.device)
        self.models = []
        for weights_id in ids:
            folder = model_folder(context.weights_dir, manifest, manifest.entry(weights_id))
            self.models.append(_Model(weights_id, folder, folds_in(folder, settings.folds)))
        self.loads = 0

    @property
    def stats(self) -> dict[str, Any]:
        return {
            "model_loads": self.loads,
            "device": str(self.device),
            "models": {m.weights_id: {"folds": list(m.folds), "channels": m.channel_names} for m in self.models},
        }

    def __call__(self, case: Case) -> None:
        for model in self.models:
            name = self.settings.output if len(self.models) == 1 else model.weights_id
            reference, volume = self._input(case, model)
            segmentation = self._predictor(model).predict_single_npy_array(
                volume, {"spacing": list(reversed(reference.GetSpacing()))}, None, None, False
            )
            labelmap = sitk.GetImageFromArray(np.asarray(segmentation, dtype=np.uint8))
            labelmap.CopyInformation(reference)
            case.labelmaps[name] = labelmap
            entry = self.context.manifest.entry(model.weights_id)
            case.provenance[model.weights_id] = provenance(self.context.weights_dir, self.context.manifest, entry)

    def _input(self, case: Case, model: _Model) -> tuple[sitk.Image, np.ndarray]:
        """The channels in dataset.json order, stacked (c, z, y, x), and the image whose grid they share."""
        roles = []
        for channel in model.channel_names:
            role = self.settings.channels.get(channel) or (case.roles[0] if len(case.roles) == 1 else None)
            if role is None or role not in case.images:
                raise CaseError(
                    f"case {case.id}: no image for channel {channel!r} of {model.weights_id}; "
                    f"map it with NNUnetRunner.channels (case has {', '.join(case.images) or 'no images'})"
                )
            roles.append(role)
        reference = case.images[roles[0]]
        for role in roles[1:]:
            image = case.images[role]
            if image.GetSize() != reference.GetSize() or not np.allclose(image.GetOrigin(), reference.GetOrigin()):
                raise CaseError(f"case {case.id}: channel images {roles[0]} and {role} are not on one grid")
        volume = np.stack([sitk.GetArrayFromImage(case.images[r]).astype(np.float32) for r in roles])
        return reference, volume

    def _predictor(self, model: _Model) -> Any:
        if model.predictor is None:
            from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

            from aimi.v1_preprocessing import use_plans_preprocessor

            predictor = nnUNetPredictor(
                tile_step_size=self.settings.step_size,
                use_gaussian=True,
                use_mirroring=self.settings.tta,
                perform_everything_on_device=self.device.type == "cuda",
                device=self.device,
                verbose=False,
                verbose_preprocessing=False,
                allow_tqdm=False,
            )
            predictor.initialize_from_trained_model_folder(
                str(model.folder), use_folds=model.folds, checkpoint_name="checkpoint_final.pth"
            )
            use_plans_preprocessor(predictor)  # converted v1 models: v1's resample-then-normalise order
            model.predictor = predictor
            self.loads += 1
            event(log, "model.loaded", weights=model.weights_id, folds=len(model.folds), device=self.device,
                  threads=os.cpu_count())
        return model.predictor
