"""NNUnetRunner: one nnU-Net v2 model (one manifest weights entry) over the case's images, a label map out.

nnunetv2's `nnUNetPredictor`, in-process, built once per run and reused for every case. Channels are taken from the
model folder's own dataset.json and mapped to case roles by name; folds, TTA mirroring, tile step and device are
settings (the run options --folds, --no-tta, --step-size and --device set them). A chain of several models (breast)
has one step per model, each wiring its own label map. Each prediction also measures its own doubt per label (fold
disagreement, entropy, volume; aimi.inference.uncertainty) for the run report, which `aimi review select` ranks by.
Its work on a case is three phases - nnU-Net preprocessing (CPU), the network (device), export back to the input
grid (CPU) - so that the runner overlaps one case's network time with other cases' CPU work.
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

from aimi.core.case import MAIN, Case
from aimi.core.context import RunContext
from aimi.core.log import event
from aimi.core.module import Module, Phase
from aimi.core.ports import IMAGES, LABELMAP, MEASURED, PROVENANCE, Port, ports
from aimi.errors import CaseError, ConfigError, one_line
from aimi.inference.device import resolve_device
from aimi.inference.uncertainty import FoldLogits, export_with_doubt, predict_folds, preprocess
from aimi.weights import CHECKPOINT_NAMES, model_folder, provenance, require_weights

log = logging.getLogger("aimi.nnunet")


@dataclass(frozen=True)
class Settings:
    weights: str = ""  # manifest weights id; empty: the manifest's only entry
    channels: dict[str, str] = field(default_factory=dict)  # dataset.json channel name -> case role
    device: str = "auto"  # auto (CUDA when visible), cpu or cuda; --device
    folds: str = "all"  # or fold numbers such as "0,1"; --folds
    tta: bool = True  # test-time mirroring, as the paper; --no-tta
    step_size: float = 0.5  # sliding-window tile step, a fraction of a patch; --step-size
    checkpoint: str = "checkpoint_final.pth"  # or checkpoint_best.pth, as some releases ship
    labels: list[int] = field(default_factory=list)  # the values the later steps read; checked against dataset.json

    def __post_init__(self) -> None:
        if self.checkpoint not in CHECKPOINT_NAMES:
            raise ValueError(f"checkpoint: {self.checkpoint!r} is not one of {', '.join(CHECKPOINT_NAMES)}")
        if not 0.0 < self.step_size <= 1.0:
            raise ValueError(f"step_size: {self.step_size} must be in (0, 1] (a fraction of a patch)")


def folds_in(folder: Path, requested: str, checkpoint: str = "checkpoint_final.pth") -> tuple[int | str, ...]:
    """The folds to ensemble: `all` takes every numbered fold with the checkpoint, or nnU-Net's `fold_all` (one
    model trained on all cases) where a release ships only that."""
    with_checkpoint = [p.name[5:] for p in folder.glob("fold_*") if (p / checkpoint).is_file()]
    present = sorted(int(name) for name in with_checkpoint if name.isdigit())
    if requested == "all":
        chosen = tuple(present) or (("all",) if "all" in with_checkpoint else ())
        if not chosen:
            found = sorted(str(p.relative_to(folder)) for p in folder.glob("fold_*/*.pth")) or ["none"]
            raise ConfigError(f"{folder}: no fold_*/{checkpoint} (checkpoints found: {', '.join(found)}); "
                              "set NNUnetRunner.checkpoint to the one the release ships")
        return chosen
    try:
        wanted = tuple(int(v) for v in requested.split(","))
    except ValueError:
        raise ConfigError(f"--folds {requested!r}: give 'all' or fold numbers like 0,1") from None
    missing = sorted(set(wanted) - set(present))
    if missing:
        raise ConfigError(f"--folds {requested}: fold(s) {missing} not in {folder} (present: {present})")
    return wanted


def _checked(folder: Path) -> Path:
    """The model folder, its dataset.json and plans.json readable JSON, or ConfigError naming the file."""
    for name in ("dataset.json", "plans.json"):
        path = folder / name
        try:
            json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise ConfigError(f"{path}: not a readable nnU-Net {name}: {one_line(error)}") from None
    return folder


def _load_failure(model: _Model, error: Exception, checkpoint_name: str) -> str:
    """Which file of the model nnU-Net could not load: the first checkpoint torch cannot read, else the folder."""
    import torch

    for fold in model.folds:
        checkpoint = model.folder / f"fold_{fold}" / checkpoint_name
        try:
            torch.load(checkpoint, map_location="cpu", weights_only=False)
        except Exception as checkpoint_error:
            return f"{checkpoint}: not a loadable nnU-Net checkpoint: {one_line(checkpoint_error)}"
    return f"{model.folder}: nnU-Net could not load the model: {one_line(error)}"


class _Model:
    """One nnU-Net model folder and, once first needed, its predictor."""

    def __init__(self, weights_id: str, folder: Path, folds: tuple[int | str, ...]) -> None:
        self.weights_id = weights_id
        self.folder = folder
        self.folds = folds
        dataset = json.loads((folder / "dataset.json").read_text())
        names = dataset.get("channel_names") or dataset.get("modality") or {}
        self.channel_names = [names[k] for k in sorted(names, key=int)]
        self.label_values = _output_values(dataset)
        self.predictor: Any = None


def _output_values(dataset: dict[str, Any]) -> dict[int, str]:
    """The values the model writes, background aside, with their dataset.json names. A region-trained model
    (labels mapped to lists of classes) writes `regions_class_order`."""
    labels = dataset.get("labels") or {}
    if any(isinstance(value, list) for value in labels.values()):
        regions = [name for name, value in labels.items() if isinstance(value, list)]
        return dict(zip((int(v) for v in dataset.get("regions_class_order", [])), regions, strict=False))
    return {int(value): name for name, value in labels.items() if int(value) != 0}


def _spacing(image: sitk.Image) -> list[float]:
    return list(reversed(image.GetSpacing()))


@dataclass
class _InFlight:
    """One case between the runner's phases: the grid to export onto, nnU-Net's preprocessed input, the logits."""

    reference: sitk.Image
    prepared: dict[str, Any]
    network: FoldLogits | None = None


class NNUnetRunner(Module):
    inputs = ports(images=Port(IMAGES, "the volumes the model's channels are taken from, by role", "images"))
    outputs = ports(
        labels=Port(LABELMAP, "the model's label map, on the grid of its first channel's image", MAIN),
        provenance=Port(PROVENANCE, "weights id -> Zenodo record, file, md5, sha256, converter", "provenance"),
        measurements=MEASURED,
    )
    Settings = Settings

    def __init__(self, settings: Settings, context: RunContext) -> None:
        super().__init__(settings, context)
        manifest = context.manifest
        if not settings.weights and len(manifest.weights) != 1:
            ids = ", ".join(entry.id for entry in manifest.weights)
            raise ConfigError(f"NNUnetRunner.weights: required, the manifest has several entries ({ids}); "
                              "give one step per weights id")
        entry = manifest.entry(settings.weights or manifest.weights[0].id)
        require_weights(context.weights_dir, manifest)
        self.device = resolve_device(settings.device)
        folder = model_folder(context.weights_dir, manifest, entry)
        self.model = _Model(entry.id, _checked(folder), folds_in(folder, settings.folds, settings.checkpoint))
        self.loads = 0
        self._check_channels()
        self._check_labels()
        self._preflight()

    def _check_channels(self) -> None:
        """The model's channels (its dataset.json) against the workflow's mapping, before the first case."""
        names, mapping = self.model.channel_names, self.settings.channels
        if not mapping and len(names) > 1:
            raise ConfigError(f"{self.model.weights_id}: the model takes {len(names)} channels ({', '.join(names)}); "
                              "map each to a case role with NNUnetRunner.channels")
        if mapping and (missing := [n for n in names if n not in mapping]):
            raise ConfigError(f"NNUnetRunner.channels maps {', '.join(mapping)} but {self.model.weights_id}'s "
                              f"dataset.json names {', '.join(names)} (missing: {', '.join(missing)})")

    def _check_labels(self) -> None:
        """The values the model writes (its dataset.json) against those the workflow's later steps read: another
        release of a model (other classes, other order) stops the run here, not as empty SEGs."""
        expected, found = sorted(self.settings.labels), self.model.label_values
        if expected and expected != sorted(found):
            named = ", ".join(f"{value} {name}" for value, name in sorted(found.items())) or "none"
            raise ConfigError(f"NNUnetRunner.labels: the workflow reads labels {', '.join(map(str, expected))} of "
                              f"{self.model.weights_id}, but its dataset.json has {named}; is this the release "
                              "the manifest names?")

    def _preflight(self) -> None:
        """Load the model before the first case, so that a broken weights file stops the run (exit 2) naming it,
        instead of failing every case."""
        try:
            self._predictor(self.model)
        except Exception as error:
            raise ConfigError(_load_failure(self.model, error, self.settings.checkpoint)) from None

    @property
    def stats(self) -> dict[str, Any]:
        model = self.model
        return {
            "model_loads": self.loads,
            "device": str(self.device),
            "models": {model.weights_id: {"folds": list(model.folds), "channels": model.channel_names}},
        }

    def phases(self) -> tuple[Phase, ...]:
        return (Phase(self.preprocess), Phase(self.predict, on_device=True), Phase(self.export))

    def __call__(self, case: Case) -> None:
        for phase in self.phases():
            phase.run(case)

    def preprocess(self, case: Case) -> None:
        reference, volume = self._input(case, self.read(case, "images"))
        case.handoff[self] = _InFlight(reference, preprocess(self._predictor(self.model), volume, _spacing(reference)))

    def predict(self, case: Case) -> None:
        flight = case.handoff[self]
        flight.network = predict_folds(self._predictor(self.model), flight.prepared.pop("data"))

    def export(self, case: Case) -> None:
        model, flight = self.model, case.handoff.pop(self)
        segmentation, doubt = export_with_doubt(self._predictor(model), flight.prepared["data_properties"],
                                                flight.network, _spacing(flight.reference), model.label_values)
        self.write(case, "measurements", {self.name: {"doubt": doubt.as_dict()}})
        labelmap = sitk.GetImageFromArray(segmentation)
        labelmap.CopyInformation(flight.reference)
        self.write(case, "labels", labelmap)
        entry = self.context.manifest.entry(model.weights_id)
        self.write(case, "provenance",
                   {model.weights_id: provenance(self.context.weights_dir, self.context.manifest, entry)})

    def _input(self, case: Case, images: dict[str, sitk.Image]) -> tuple[sitk.Image, np.ndarray]:
        """The channels in dataset.json order, stacked (c, z, y, x), and the image whose grid they share."""
        model = self.model
        roles = []
        for channel in model.channel_names:
            role = self.settings.channels.get(channel) or (next(iter(images)) if len(images) == 1 else None)
            if role is None or role not in images:
                raise CaseError(
                    f"case {case.id}: no image for channel {channel!r} of {model.weights_id}; "
                    f"map it with NNUnetRunner.channels (case has {', '.join(images) or 'no images'})"
                )
            roles.append(role)
        reference = images[roles[0]]
        for role in roles[1:]:
            image = images[role]
            if image.GetSize() != reference.GetSize() or not np.allclose(image.GetOrigin(), reference.GetOrigin()):
                raise CaseError(f"case {case.id}: channel images {roles[0]} and {role} are not on one grid")
        volume = np.stack([sitk.GetArrayFromImage(images[r]).astype(np.float32) for r in roles])
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
                str(model.folder), use_folds=model.folds, checkpoint_name=self.settings.checkpoint
            )
            use_plans_preprocessor(predictor)  # converted v1 models: v1's resample-then-normalise order
            model.predictor = predictor
            self.loads += 1
            event(log, "model.loaded", weights=model.weights_id, folds=len(model.folds), device=self.device,
                  threads=os.cpu_count())
        return model.predictor
