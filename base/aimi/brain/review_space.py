"""ReviewSpace: what a brain reviewer corrects, as the paper's reviewers did - the atlas-space volumes the model saw
and its atlas-space label map - with the transforms that take a correction back onto each original series.

Writes, when `write` is set (`--set ReviewSpace.write=true`), under `<StudyInstanceUID>/review-space/`:
`<role>.nii.gz` (each contrast on the atlas grid, as handed to nnU-Net), `labels.nii.gz` (the label map on the atlas
grid, in the segment table's values), `<role>.tfm` (reference-role point -> role point) and `atlas.tfm` (atlas point
-> reference-role point), ITK transform files. `aimi review package` hands them to the reviewer and `aimi review
import` maps the corrected atlas label map back through the exact inverse, as LabelsToSeries maps the AI's. Each file
is staged and renamed when all are written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import SimpleITK as sitk

from aimi.atomic import stage
from aimi.brain.spaces import ATLAS_TRANSFORM_PORT, ROLE_TRANSFORMS_PORT
from aimi.core.case import MAIN, SERIES, Case, DicomSeries
from aimi.core.module import Module
from aimi.core.ports import FILES, IMAGES, LABELMAP, Port, ports
from aimi.core.ports import SERIES as SERIES_KIND
from aimi.io.data_organizer import safe_name, safe_uid

FOLDER = "review-space"
LABELS = "labels.nii.gz"
ATLAS_TRANSFORM = "atlas.tfm"


@dataclass(frozen=True)
class Settings:
    write: bool = False


class ReviewSpace(Module):
    inputs = ports(
        images=Port(IMAGES, "every role on the atlas grid, as the model saw them", "atlas_images"),
        labels=Port(LABELMAP, "the label map on the atlas grid, in the segment table's values", MAIN),
        series=Port(SERIES_KIND, "the case's series, for the study folder", SERIES),
        transforms=ROLE_TRANSFORMS_PORT,
        atlas_transform=ATLAS_TRANSFORM_PORT,
    )
    outputs = ports(files=Port(FILES, "the files written (none unless write)", "files"))
    Settings = Settings

    def __call__(self, case: Case) -> None:
        if not self.settings.write:
            return
        series: dict[str, DicomSeries] = self.read(case, "series")
        folder = self.context.output_dir / safe_uid(next(iter(series.values())).study_uid) / FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        writes = {folder / f"{safe_name(role)}.nii.gz": (lambda p, i=image: _image(i, p))
                  for role, image in self.read(case, "images").items()}
        writes[folder / LABELS] = lambda p: _image(sitk.Cast(self.read(case, "labels"), sitk.sitkUInt8), p)
        for role, transform in self.read(case, "transforms").items():
            writes[folder / f"{safe_name(role)}.tfm"] = lambda p, t=transform: _transform(t, p)
        writes[folder / ATLAS_TRANSFORM] = lambda p: _transform(self.read(case, "atlas_transform"), p)
        staged = [(stage(target, write), target) for target, write in writes.items()]
        for temporary, target in staged:
            os.replace(temporary, target)
        self.write(case, "files", [target for _, target in staged])


def _image(image: sitk.Image, path: Path) -> None:
    """NIfTI insists on a .nii.gz name: written under one beside the temporary, then moved onto it."""
    named = path.with_name(path.name + ".nii.gz")
    sitk.WriteImage(image, str(named), useCompression=True, imageIO="NiftiImageIO")
    os.replace(named, path)


def _transform(transform: sitk.Transform, path: Path) -> None:
    named = path.with_name(path.name + ".tfm")
    sitk.WriteTransform(transform, str(named))
    os.replace(named, path)
