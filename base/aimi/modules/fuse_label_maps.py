"""FuseLabelMaps - reads: `labelmap` (several, by name); writes: `labelmap`.

Paints layers from named label maps into one output, later layers over earlier ones, each optionally only where
the output already holds given values. Breast: breast = A > 0, FGT = A == 2, tumor = B == 1 within the breast -
keeping FGT (the incumbent binarised A, so FGT never appeared) and every tumor component.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aimi.case import MAIN, Case
from aimi.errors import CaseError
from aimi.labelmaps import from_array, mask_of, to_array
from aimi.module import Module

LAYER_KEYS = ("labelmap", "labels", "value", "within")


@dataclass(frozen=True)
class Layer:
    labelmap: str
    labels: tuple[int, ...]
    value: int
    within: tuple[int, ...] = ()


@dataclass(frozen=True)
class Settings:
    layers: list[dict[str, Any]] = field(default_factory=list)
    output: str = MAIN

    def __post_init__(self) -> None:
        if not self.layers:
            raise ValueError("layers: give at least one {labelmap, labels, value[, within]}")
        parsed = [_layer(raw, f"layers[{index}]") for index, raw in enumerate(self.layers)]
        object.__setattr__(self, "parsed", parsed)


def _layer(raw: Any, where: str) -> Layer:
    if not isinstance(raw, dict) or set(raw) - set(LAYER_KEYS) or not {"labelmap", "labels", "value"} <= set(raw):
        raise ValueError(f"{where}: expected keys labelmap, labels, value and optionally within; got {raw!r}")
    if not isinstance(raw["value"], int) or not 0 < raw["value"] < 256:
        raise ValueError(f"{where}.value: a label value 1-255, got {raw['value']!r}")
    return Layer(str(raw["labelmap"]), tuple(int(v) for v in raw["labels"]), raw["value"],
                 tuple(int(v) for v in raw.get("within", ())))


def fuse(sources: dict[str, np.ndarray], layers: list[Layer]) -> np.ndarray:
    shape = next(iter(sources.values())).shape
    fused = np.zeros(shape, np.uint8)
    for layer in layers:
        paint = mask_of(sources[layer.labelmap], layer.labels)
        if layer.within:
            paint &= mask_of(fused, layer.within)
        fused[paint] = layer.value
    return fused


class FuseLabelMaps(Module):
    reads = ("labelmap",)
    writes = ("labelmap",)
    Settings = Settings

    def __call__(self, case: Case) -> None:
        layers: list[Layer] = self.settings.parsed  # type: ignore[attr-defined]
        names = sorted({layer.labelmap for layer in layers})
        images = {name: case.labelmap(name) for name in names}
        reference = images[names[0]]
        for name, image in images.items():
            if image.GetSize() != reference.GetSize() or not np.allclose(image.GetOrigin(), reference.GetOrigin()):
                raise CaseError(f"case {case.id}: label maps {names[0]} and {name} are not on one grid")
        fused = fuse({name: to_array(image) for name, image in images.items()}, layers)
        case.labelmaps[self.settings.output] = from_array(fused, reference)
