"""The unit of work and the typed artifacts that modules pass along it.

A case is one series (most tasks) or one study with named series roles (brain: t1, t1c, t2, flair). Modules read
and write artifacts by kind: `dicom` (the source series per role), `image` (a volume per role), `labelmap` (named
label maps, `main` being the chain's result), `transform` (spatial transforms between roles and the atlas, ITK's
fixed -> moving convention, see aimi.brain.spaces), `seg` (a SEG dataset per role) and `output` (files written).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import SimpleITK as sitk
from pydicom.dataset import Dataset

from aimi.dicom.geometry import SeriesGeometry

MAIN = "main"


@dataclass(frozen=True)
class DicomSeries:
    """A classic single-frame series in source frame order; headers are read once, without pixel data."""

    study_uid: str
    series_uid: str
    modality: str
    description: str
    files: tuple[Path, ...]
    headers: tuple[Dataset, ...]
    geometry: SeriesGeometry

    @property
    def sop_instance_uids(self) -> list[str]:
        return [str(ds.SOPInstanceUID) for ds in self.headers]


@dataclass
class Case:
    """One unit of work; `id` is the SeriesInstanceUID (series case) or StudyInstanceUID (study case)."""

    id: str
    series: dict[str, DicomSeries]
    images: dict[str, sitk.Image] = field(default_factory=dict)
    labelmaps: dict[str, sitk.Image] = field(default_factory=dict)
    transforms: dict[str, sitk.Transform] = field(default_factory=dict)
    segs: dict[str, Dataset] = field(default_factory=dict)
    outputs: list[Path] = field(default_factory=list)
    provenance: dict[str, dict[str, str]] = field(default_factory=dict)
    measurements: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def roles(self) -> list[str]:
        return list(self.series)

    def labelmap(self, name: str = MAIN) -> sitk.Image:
        try:
            return self.labelmaps[name]
        except KeyError:
            present = ", ".join(sorted(self.labelmaps)) or "none"
            raise KeyError(f"case {self.id} has no label map {name!r} (it has: {present})") from None
