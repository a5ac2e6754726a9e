"""FuseLabelMaps: two label maps painted into one, layer by layer.

Paints layers from the `first` and `second` label maps (input ports) into one output, later layers over earlier
ones, each optionally only where the output already holds given values. Breast: breast = A > 0, FGT = A == 2,
tumor = B == 1 within the breast - keeping FGT (the incumbent binarised A, so FGT never appeared) and every tumor
component.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aimi.core.case import MAIN, Case
from aimi.core.module import Module
from aimi.core.ports import LABELMAP, Port, ports
from aimi.errors import CaseError
from aimi.labelmaps import from_array, mask_of, to_array

LAYER_KEYS = ("source", "labels", "value", "within")
SOURCES = ("first", "second")


@dataclass(frozen=True)
class Layer:
    source: str
    labels: tuple[int, ...]
    value: int
    within: tuple[int, ...] = ()


@dataclass(frozen=True)
class Settings:
    layers: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.layers:
            raise ValueError("layers: give at least one {source, labels, value[, within]}")
        parsed = [_layer(raw, f"layers[{index}]") for index, raw in enumerate(self.layers)]
        object.__setattr__(self, "parsed", parsed)


def _layer(raw: Any, where: str) -> Layer:
    if not isinstance(raw, dict) or set(raw) - set(LAYER_KEYS) or not {"source", "labels", "value"} <= set(raw):
        raise ValueError(f"{where}: expected keys source, labels, value and optionally within; got {raw!r}")
    if raw["source"] not in SOURCES:
        raise ValueError(f"{where}.source: {raw['source']!r} is not an input port; one of {', '.join(SOURCES)}")
    if not isinstance(raw["value"], int) or not 0 < raw["value"] < 256:
        raise ValueError(f"{where}.value: a label value 1-255, got {raw['value']!r}")
    return Layer(str(raw["source"]), tuple(int(v) for v in raw["labels"]), raw["value"],
                 tuple(int(v) for v in raw.get("within", ())))


def fuse(sources: dict[str, np.ndarray], layers: list[Layer]) -> np.ndarray:
    shape = next(iter(sources.values())).shape
    fused = np.zeros(shape, np.uint8)
    for layer in layers:
        paint = mask_of(sources[layer.source], layer.labels)
        if layer.within:
            paint &= mask_of(fused, layer.within)
        fused[paint] = layer.value
    return fused


class FuseLabelMaps(Module):
    inputs = ports(
        first=Port(LABELMAP, "a label map the layers paint from", MAIN),
        second=Port(LABELMAP, "another label map the layers paint from, on the same grid", "second"),
    )
    outputs = ports(labels=Port(LABELMAP, "the fused label map", MAIN))
    Settings = Settings

    def __call__(self, case: Case) -> None:
        layers: list[Layer] = self.settings.parsed  # type: ignore[attr-defined]
        images = {port: self.read(case, port) for port in SOURCES}
        reference = images["first"]
        image = images["second"]
        if image.GetSize() != reference.GetSize() or not np.allclose(image.GetOrigin(), reference.GetOrigin()):
            names = " and ".join(self.wiring.inputs[port] for port in SOURCES)
            raise CaseError(f"case {case.id}: label maps {names} are not on one grid")
        fused = fuse({port: to_array(image) for port, image in images.items()}, layers)
        self.write(case, "labels", from_array(fused, reference))
