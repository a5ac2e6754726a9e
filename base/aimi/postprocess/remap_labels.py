"""RemapLabels: a label map's values mapped to the segment values of the output.

Maps the model's raw label values to the segment values of the output (liver: 8 -> 1, 9 -> 2). Values not in the
mapping become background, or stay, or fail the case, as `unmapped` says.

`names` maps by the label NAMES of a model's dataset.json instead (brain: NCR/ED/ET, whatever their order), for
models whose label order is not known in advance: each output value lists the names it accepts; nnU-Net predicts
the index of a label among the sorted dataset.json values, so the mapping is built from those indices when the
run starts, and a dataset.json without one of the names stops the run naming the labels it has.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from aimi.core.case import Case
from aimi.core.context import RunContext
from aimi.errors import CaseError, ConfigError
from aimi.postprocess.label_editor import LabelMapEditor
from aimi.weights import model_folder

UNMAPPED = ("background", "keep", "error")


@dataclass(frozen=True)
class Settings:
    mapping: dict[int, int] = field(default_factory=dict)
    unmapped: str = "background"
    names: dict[int, list[str]] = field(default_factory=dict)  # output value -> accepted dataset.json label names
    weights: str = ""  # manifest weights id whose dataset.json `names` refers to

    def __post_init__(self) -> None:
        if bool(self.names) != bool(self.weights):
            raise ValueError("names and weights go together: names of the labels in that model's dataset.json")
        if self.names and self.mapping:
            raise ValueError("give either mapping (by label value) or names (by dataset.json label name)")
        for target, accepted in self.names.items():
            if not (isinstance(target, int) and 0 < target < 256 and isinstance(accepted, list) and accepted
                    and all(isinstance(n, str) for n in accepted)):
                raise ValueError(f"names: {target!r}: {accepted!r} - a label value 1-255 and a list of label names")
        if self.unmapped not in UNMAPPED:
            raise ValueError(f"unmapped: {self.unmapped!r} is not one of {', '.join(UNMAPPED)}")
        for source, target in self.mapping.items():
            if not (isinstance(source, int) and isinstance(target, int) and 0 <= source < 256 and 0 <= target < 256):
                raise ValueError(f"mapping: {source!r}: {target!r} - both sides must be label values 0-255")


def mapping_by_names(dataset_json: Path, names: dict[int, list[str]]) -> dict[int, int]:
    """Predicted label index -> output value, from the label names in `dataset_json` (case-insensitive). A
    region-trained model (labels mapped to lists of classes) writes `regions_class_order[i]` where region i holds
    and no later region does (BraTS: whole tumor -> edema, tumor core -> necrosis, enhancing tumor): each region's
    name then names that value."""
    dataset = json.loads(Path(dataset_json).read_text())
    labels = dataset.get("labels", {})
    regions = [name for name, value in labels.items() if isinstance(value, list)]
    if regions:
        order = dataset.get("regions_class_order") or []
        if len(order) != len(regions):
            raise ConfigError(f"{dataset_json}: region-based labels {', '.join(regions)} need one regions_class_order "
                              f"value each, got {order}")
        index = {name.casefold(): int(value) for name, value in zip(regions, order, strict=True)}
    else:
        index = {name.casefold(): position for position, (name, _) in
                 enumerate(sorted(labels.items(), key=lambda item: item[1]))}
    mapping = {}
    for target, accepted in names.items():
        found = [index[n.casefold()] for n in accepted if n.casefold() in index]
        if len(found) != 1:
            raise ConfigError(f"RemapLabels.names: {len(found)} of the labels {accepted} for value {target} are in "
                              f"{dataset_json}, which has {', '.join(labels)}; exactly one must be")
        mapping[found[0]] = target
    return mapping


def remap(array: np.ndarray, mapping: dict[int, int], unmapped: str) -> np.ndarray:
    table = np.arange(256, dtype=np.uint8) if unmapped == "keep" else np.zeros(256, dtype=np.uint8)
    for source, target in mapping.items():
        table[source] = target
    return table[array]


class RemapLabels(LabelMapEditor):
    Settings = Settings

    def __init__(self, settings: Settings, context: RunContext) -> None:
        super().__init__(settings, context)
        self.mapping = dict(settings.mapping)
        if settings.names:
            manifest = context.manifest
            entry = manifest.entry(settings.weights)
            folder = model_folder(context.weights_dir, manifest, entry)
            self.mapping = mapping_by_names(folder / "dataset.json", settings.names)

    def edit(self, case: Case, array: np.ndarray, image: sitk.Image) -> np.ndarray:
        if self.settings.unmapped == "error":
            stray = sorted(set(np.unique(array).tolist()) - set(self.mapping) - {0})
            if stray:
                raise CaseError(f"case {case.id}: label values {stray} have no mapping in RemapLabels.mapping")
        return remap(array, self.mapping, self.settings.unmapped)
