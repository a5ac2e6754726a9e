"""LabelsToSeries - reads: `labelmap`, `transform`, `dicom`; writes: `labelmap` (one per role), `image`.

The atlas-space label map goes back onto each role's ORIGINAL series grid (from its DICOM headers) through the exact
inverse of the forward composite (role -> reference -> atlas), nearest neighbour; DsegConverter then writes one SEG
per series from `labelmaps[role]`. With `images` the atlas-space channels go back the same way (linear), so that
later steps that show images with labels (DataOrganizer's QC overlay) see each series' own geometry: the brain as
the model saw it, where the SEG puts its labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import SimpleITK as sitk

from aimi.brain.spaces import ATLAS, from_atlas, resample
from aimi.case import MAIN, Case
from aimi.errors import CaseError
from aimi.module import Module


@dataclass(frozen=True)
class Settings:
    labelmap: str = MAIN
    roles: list[str] = field(default_factory=list)  # empty: every series of the case
    images: bool = True  # also bring case.images[role] back from the atlas grid onto the series grid


class LabelsToSeries(Module):
    reads = ("labelmap", "transform", "dicom")
    writes = ("labelmap", "image")
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
            if self.settings.images and role in case.images:
                case.images[role] = resample(case.images[role], grid, inverse, sitk.sitkLinear, sitk.sitkFloat32)
