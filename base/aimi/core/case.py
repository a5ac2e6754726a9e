"""The unit of work: one series (most tasks) or one study with named series roles (brain: t1, t1c, t2, flair).

A case carries its source series and the artifacts its steps write, by name; which step reads and writes which
artifact, and of what kind, is declared by the modules' ports and wired by the workflow (aimi.core.ports).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from aimi.dicom.geometry import SeriesGeometry

#: The artifact names a chain uses unless its workflow wires others: the source series, the result label map.
SERIES = "series"
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
    artifacts: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    handoff: dict[Any, Any] = field(default_factory=dict)  # a module's own state between its phases, not an artifact

    def __post_init__(self) -> None:
        self.artifacts.setdefault(SERIES, self.series)

    @property
    def roles(self) -> list[str]:
        return list(self.series)
