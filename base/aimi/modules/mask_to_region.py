"""MaskToRegion - reads: `labelmap`; writes: `labelmap`.

Keeps each connected component of `labels` only where it lies in or touches the `region` labels (lung nodules
inside the lungs, kidney tumor and cyst within a kidney); other components become background. Touching counts:
a nodule replaces lung voxels, so it borders the lung rather than overlapping it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from aimi.case import MAIN, Case
from aimi.labelmaps import FULL_CONNECTIVITY, components, from_array, mask_of, to_array
from aimi.module import Module


@dataclass(frozen=True)
class Settings:
    labels: list[int] = field(default_factory=list)
    region: list[int] = field(default_factory=list)
    labelmap: str = MAIN

    def __post_init__(self) -> None:
        if not self.labels or not self.region:
            raise ValueError("labels and region: both need at least one label value")
        if set(self.labels) & set(self.region):
            raise ValueError(f"labels {self.labels} and region {self.region} overlap")


def mask_to_region(array: np.ndarray, labels: list[int], region: list[int]) -> np.ndarray:
    indices, _ = components(mask_of(array, labels))
    near_region = ndimage.binary_dilation(mask_of(array, region), structure=FULL_CONNECTIVITY)
    inside = np.unique(indices[near_region & (indices > 0)])
    result = array.copy()
    result[(indices > 0) & ~np.isin(indices, inside)] = 0
    return result


class MaskToRegion(Module):
    reads = ("labelmap",)
    writes = ("labelmap",)
    Settings = Settings

    def __call__(self, case: Case) -> None:
        source = case.labelmap(self.settings.labelmap)
        result = mask_to_region(to_array(source), self.settings.labels, self.settings.region)
        case.labelmaps[self.settings.labelmap] = from_array(result, source)
