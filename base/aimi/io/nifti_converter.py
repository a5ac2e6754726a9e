"""NiftiConverter: each series as a volume on the series' own grid.

dcm2niix through its Python wrapper, uncompressed NIfTI (no gzip on the hot path), its exit status checked, and
the result checked voxel-centre by voxel-centre against the grid the DICOM headers describe. Where dcm2niix
splits a series into several files, the one on the DICOM grid is taken deterministically and the rest reported.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import dcm2niix
import SimpleITK as sitk

from aimi.core.case import Case, DicomSeries
from aimi.core.module import Module
from aimi.core.ports import IMAGES, SERIES, Port, ports
from aimi.dicom.geometry import same_voxel_centres
from aimi.errors import CaseError


@dataclass(frozen=True)
class Settings:
    timeout_s: float = 600.0


class NiftiConverter(Module):
    inputs = ports(series=Port(SERIES, "the series to convert, by role", "series"))
    outputs = ports(images=Port(IMAGES, "one volume per role, on its series' own grid", "images"))
    Settings = Settings

    def __call__(self, case: Case) -> None:
        series_by_role: dict[str, DicomSeries] = self.read(case, "series")
        self.write(case, "images", {role: self.convert(series) for role, series in series_by_role.items()})

    def convert(self, series: DicomSeries) -> sitk.Image:
        with tempfile.TemporaryDirectory(prefix="aimi-dcm2niix-") as work:
            source, target = Path(work, "in"), Path(work, "out")
            source.mkdir()
            target.mkdir()
            for index, path in enumerate(series.files):
                os.symlink(path.resolve(), source / f"{index:05d}.dcm")
            self._run(series, source, target)
            return self._choose(series, sorted(target.glob("*.nii")))

    def _run(self, series: DicomSeries, source: Path, target: Path) -> None:
        args = ["-z", "n", "-b", "n", "-f", "%s_%p", "-o", str(target), str(source)]
        try:
            done = dcm2niix.main(args, capture_output=True, text=True, timeout=self.settings.timeout_s)
        except OSError as error:
            raise CaseError(f"series {series.series_uid}: cannot start dcm2niix: {error}") from None
        if done.returncode != 0:
            tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
            raise CaseError(f"series {series.series_uid}: dcm2niix failed with exit status {done.returncode}: {tail}")

    def _choose(self, series: DicomSeries, outputs: list[Path]) -> sitk.Image:
        if not outputs:
            raise CaseError(f"series {series.series_uid}: dcm2niix wrote no NIfTI (unreadable pixel data?)")
        matching = []
        for path in outputs:
            image = sitk.ReadImage(str(path), sitk.sitkFloat32)
            if image.GetDimension() == 3 and same_voxel_centres(image, series.geometry):
                matching.append((path.name, image))
        if not matching:
            names = ", ".join(p.name for p in outputs)
            raise CaseError(
                f"series {series.series_uid}: no dcm2niix output ({names}) lies on the grid of the DICOM headers "
                f"({series.geometry.size[2]} slices); the series may be incomplete or its pixel data corrupt"
            )
        return matching[0][1]
