"""RemapLabels - reads: `labelmap`; writes: `labelmap`.

Maps the model's raw label values to the segment values of the output (liver: 8 -> 1, 9 -> 2). Values not in the
mapping become background, or stay, or fail the case, as `unmapped` says.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from aimi.case import MAIN, Case
from aimi.labelmaps import from_array, to_array
from aimi.module import CaseError, Module

UNMAPPED = ("background", "keep", "error")


@dataclass(frozen=True)
class Settings:
    mapping: dict[int, int] = field(default_factory=dict)
    unmapped: str = "background"
    labelmap: str = MAIN
    output: str = MAIN

    def __post_init__(self) -> None:
        if self.unmapped not in UNMAPPED:
            raise ValueError(f"unmapped: {self.unmapped!r} is not one of {', '.join(UNMAPPED)}")
        for source, target in self.mapping.items():
            if not (isinstance(source, int) and isinstance(target, int) and 0 <= source < 256 and 0 <= target < 256):
                raise ValueError(f"mapping: {source!r}: {target!r} - both sides must be label values 0-255")


def remap(array: np.ndarray, mapping: dict[int, int], unmapped: str) -> np.ndarray:
    table = np.arange(256, dtype=np.uint8) if unmapped == "keep" else np.zeros(256, dtype=np.uint8)
    for source, target in mapping.items():
        table[source] = target
    return table[array]


class RemapLabels(Module):
    reads = ("labelmap",)
    writes = ("labelmap",)
    Settings = Settings

    def __call__(self, case: Case) -> None:
        source = case.labelmap(self.settings.labelmap)
        array = to_array(source)
        if self.settings.unmapped == "error":
            stray = sorted(set(np.unique(array).tolist()) - set(self.settings.mapping) - {0})
            if stray:
                raise CaseError(f"case {case.id}: label values {stray} have no mapping in RemapLabels.mapping")
        remapped = remap(array, self.settings.mapping, self.settings.unmapped)
        case.labelmaps[self.settings.output] = from_array(remapped, source)
