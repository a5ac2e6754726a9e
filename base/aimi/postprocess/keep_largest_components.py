"""KeepLargestComponents: the largest connected components of a label map, the rest background.

Keeps the `count` largest connected components of the union of `labels` (kidney: 2 components of kidney, tumor
and cyst - the two kidneys); a component after the first is kept only if it is at least `min_ratio` of the
largest (lung: the second lung if > 20% of the first). Voxels of removed components become background.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from aimi.core.case import Case
from aimi.labelmaps import components, mask_of
from aimi.postprocess.label_editor import LabelMapEditor


@dataclass(frozen=True)
class Settings:
    labels: list[int] = field(default_factory=list)  # empty: every foreground label
    count: int = 1
    min_ratio: float = 0.0

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"count: {self.count} - keep at least one component")
        if not 0.0 <= self.min_ratio <= 1.0:
            raise ValueError(f"min_ratio: {self.min_ratio} - a fraction of the largest component, 0 to 1")


def keep_largest(array: np.ndarray, labels: list[int], count: int, min_ratio: float) -> np.ndarray:
    mask = mask_of(array, labels) if labels else array > 0
    indices, sizes = components(mask)
    if sizes.size == 0:
        return array
    order = np.argsort(-sizes, kind="stable")[:count]
    kept = [i + 1 for i in order if sizes[i] >= min_ratio * sizes[order[0]]]
    result = array.copy()
    result[mask & ~np.isin(indices, kept)] = 0
    return result


class KeepLargestComponents(LabelMapEditor):
    Settings = Settings

    def edit(self, case: Case, array: np.ndarray, image: sitk.Image) -> np.ndarray:
        return keep_largest(array, self.settings.labels, self.settings.count, self.settings.min_ratio)
