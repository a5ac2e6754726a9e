"""LabelsToSeries - reads: `labelmap`, `transform`, `dicom`; writes: `labelmap` (one per role, named by the role).

The atlas-space label map goes back onto each role's ORIGINAL series grid (from its DICOM headers) through the exact
inverse of the forward composite (role -> reference -> atlas), nearest neighbour; DsegConverter then writes one SEG
per series from `labelmaps[role]`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import SimpleITK as sitk

from aimi.brain.spaces import ATLAS, from_atlas, resample
from aimi.case import MAIN, Case
from aimi.module import CaseError, Module


@dataclass(frozen=True)
class Settings:
    labelmap: str = MAIN
    roles: list[str] = field(default_factory=list)  # empty: every series of the case


class LabelsToSeries(Module):
    reads = ("labelmap", "transform", "dicom")
    writes = ("labelmap",)
    Settings = Settings

    def __call__(self, case: Case) -> None:
        labels = case.labelmap(self.settings.labelmap)
        for role in self.settings.roles or case.roles:
            missing = [name for name in (role, ATLAS) if name not in case.transforms]
            if role not in case.series or missing:
                raise CaseError(
                    f"case {case.id}: cannot map {self.settings.labelmap!r} back to series {role!r} "
                    f"(missing: {', '.join(missing) or 'the series'})"
                )
            inverse = from_atlas(case.transforms[role], case.transforms[ATLAS])
            grid = case.series[role].geometry.reference_image()
            case.labelmaps[role] = resample(labels, grid, inverse, sitk.sitkNearestNeighbor, sitk.sitkUInt8)
