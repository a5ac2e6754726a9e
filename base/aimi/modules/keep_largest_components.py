"""KeepLargestComponents - reads: `labelmap`; writes: `labelmap`.

Keeps the `count` largest connected components of the union of `labels` (kidney: 2 components of kidney, tumor
and cyst - the two kidneys); a component after the first is kept only if it is at least `min_ratio` of the
largest (lung: the second lung if > 20% of the first). Voxels of removed components become background.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from aimi.case import MAIN, Case
from aimi.labelmaps import components, from_array, mask_of, to_array
from aimi.module import Module


@dataclass(frozen=True)
class Settings:
    labels: list[int] = field(default_factory=list)  # empty: every foreground label
    count: int = 1
    min_ratio: float = 0.0
    labelmap: str = MAIN

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


class KeepLargestComponents(Module):
    reads = ("labelmap",)
    writes = ("labelmap",)
    Settings = Settings

    def __call__(self, case: Case) -> None:
        source = case.labelmap(self.settings.labelmap)
        s = self.settings
        case.labelmaps[s.labelmap] = from_array(keep_largest(to_array(source), s.labels, s.count, s.min_ratio), source)
