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
import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from aimi.core.case import Case, DicomSeries
from aimi.core.module import Module
from aimi.core.ports import IMAGES, SERIES, WARNED, Port, ports
from aimi.dicom.geometry import same_voxel_centres
from aimi.errors import CaseError

#: CT values any tissue, air or metal takes after rescale; a series mostly outside them is warned about.
CT_PLAUSIBLE_HU = (-2000.0, 5000.0)
CT_IMPLAUSIBLE_FRACTION = 0.5


@dataclass(frozen=True)
class Settings:
    timeout_s: float = 600.0


def implausible_intensities(series: DicomSeries, image: sitk.Image) -> str:
    """A CT whose values mostly lie outside any tissue (a wrong RescaleSlope, a non-HU export) still runs, with this
    warning in its report entry; "" when the values are plausible."""
    if series.modality != "CT":
        return ""
    values = sitk.GetArrayViewFromImage(image)
    low, high = CT_PLAUSIBLE_HU
    outside = float(np.mean((values < low) | (values > high)))
    if outside <= CT_IMPLAUSIBLE_FRACTION:
        return ""
    return (f"series {series.series_uid}: {outside:.0%} of the voxels lie outside {low:g}..{high:g} HU after "
            "rescale (RescaleSlope/RescaleIntercept wrong?); the segmentation is unlikely to be meaningful")


def _transfer_syntax(header: Dataset) -> str:
    meta = header.__dict__.get("file_meta")
    return str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""


def _inflate(path: Path, target: Path) -> None:
    """A deflated file rewritten as explicit VR little endian (the same elements, the pixels were never deflated
    separately), for converters that cannot inflate."""
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(target, enforce_file_format=True)


class NiftiConverter(Module):
    inputs = ports(series=Port(SERIES, "the series to convert, by role", "series"))
    outputs = ports(images=Port(IMAGES, "one volume per role, on its series' own grid", "images"), warnings=WARNED)
    Settings = Settings

    def __call__(self, case: Case) -> None:
        series_by_role: dict[str, DicomSeries] = self.read(case, "series")
        images = {role: self.convert(series) for role, series in series_by_role.items()}
        self.write(case, "images", images)
        self.write(case, "warnings", [warning for role, series in series_by_role.items()
                                      if (warning := implausible_intensities(series, images[role]))])

    def convert(self, series: DicomSeries) -> sitk.Image:
        with tempfile.TemporaryDirectory(prefix="aimi-dcm2niix-") as work:
            source, target = Path(work, "in"), Path(work, "out")
            source.mkdir()
            target.mkdir()
            for index, (path, header) in enumerate(zip(series.files, series.headers, strict=True)):
                link = source / f"{index:05d}.dcm"
                if _transfer_syntax(header) == DeflatedExplicitVRLittleEndian:
                    _inflate(path, link)  # dcm2niix cannot read deflated files
                else:
                    os.symlink(path.resolve(), link)
            self._run(series, source, target)
            return self._choose(series, sorted(target.glob("*.nii")))

    def _run(self, series: DicomSeries, source: Path, target: Path) -> None:
        # -m y: one volume per series even where echo, ImageType or numbers vary between its slices (the importer
        # has proved they form one grid); -f %s: file names from the series number only
        args = ["-z", "n", "-b", "n", "-m", "y", "-f", "%s", "-o", str(target), str(source)]
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
