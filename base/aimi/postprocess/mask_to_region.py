"""MaskToRegion: components of some labels kept only where they meet a region of other labels.

Keeps each connected component of `labels` only where it lies in or touches the `region` labels (lung nodules
inside the lungs, kidney tumor and cyst within a kidney); other components become background. Touching counts:
a nodule replaces lung voxels, so it borders the lung rather than overlapping it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from aimi.core.case import Case
from aimi.labelmaps import FULL_CONNECTIVITY, components, mask_of
from aimi.postprocess.label_editor import LabelMapEditor


@dataclass(frozen=True)
class Settings:
    labels: list[int] = field(default_factory=list)
    region: list[int] = field(default_factory=list)

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


class MaskToRegion(LabelMapEditor):
    Settings = Settings

    def edit(self, case: Case, array: np.ndarray, image: sitk.Image) -> np.ndarray:
        return mask_to_region(array, self.settings.labels, self.settings.region)
