"""LabelsToSeries: the atlas-space label map back onto each series' own grid, one label map per role.

The label map goes back onto each role's ORIGINAL series grid (from its DICOM headers) through the exact inverse of
the forward composite (role -> reference -> atlas), nearest neighbour; DsegConverter then writes one SEG per series.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import SimpleITK as sitk

from aimi.brain.spaces import ATLAS_TRANSFORM_PORT, ROLE_TRANSFORMS_PORT, from_atlas, resample
from aimi.core.case import MAIN, SERIES, Case, DicomSeries
from aimi.core.module import Module
from aimi.core.ports import LABELMAP, SERIES_LABELMAPS, Port, ports
from aimi.core.ports import SERIES as SERIES_KIND
from aimi.errors import CaseError


@dataclass(frozen=True)
class Settings:
    roles: list[str] = field(default_factory=list)  # empty: every series of the case


class LabelsToSeries(Module):
    inputs = ports(
        labels=Port(LABELMAP, "the label map on the atlas grid", MAIN),
        series=Port(SERIES_KIND, "the series whose grids the labels go back to", SERIES),
        transforms=ROLE_TRANSFORMS_PORT,
        atlas_transform=ATLAS_TRANSFORM_PORT,
    )
    outputs = ports(labels=Port(SERIES_LABELMAPS, "one label map per role, on its series grid", "series_labels"))
    Settings = Settings

    def __call__(self, case: Case) -> None:
        labels = self.read(case, "labels")
        series_by_role: dict[str, DicomSeries] = self.read(case, "series")
        transforms = self.read(case, "transforms")
        on_series = {}
        for role in self.settings.roles or list(series_by_role):
            if role not in series_by_role or role not in transforms:
                missing = "the series" if role not in series_by_role else "its transform"
                raise CaseError(f"case {case.id}: cannot map the labels back to series {role!r} (missing: {missing})")
            inverse = from_atlas(transforms[role], self.read(case, "atlas_transform"))
            grid = series_by_role[role].geometry.reference_image()
            on_series[role] = resample(labels, grid, inverse, sitk.sitkNearestNeighbor, sitk.sitkUInt8)
        self.write(case, "labels", on_series)
