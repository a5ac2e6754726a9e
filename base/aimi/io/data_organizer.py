"""DataOrganizer: the SEGs (and, when asked, label maps, QC overlays and volume SRs) as files under the output folder.

Layout `<SeriesInstanceUID>/<model>.seg.dcm` by default, optional label map on the source grid, QC overlay PNG and
VolumeReport's SR (`<model>.volumes.sr.dcm`) beside it. Every file is written to a temporary name and renamed once
all of a case's files are complete, so no partial file ever appears. Folder names come from UIDs only after
checking they are UIDs.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import re
import shutil
import string
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import SimpleITK as sitk

from aimi.atomic import stage
from aimi.core.case import MAIN, SERIES, Case, DicomSeries
from aimi.core.module import Module
from aimi.core.ports import FILES, IMAGES, LABELMAP, REPORTS, SEGS, SERIES_LABELMAPS, Port, ports
from aimi.core.ports import SERIES as SERIES_KIND
from aimi.dicom.resample import role_on_source_grid
from aimi.errors import CaseError, os_reason
from aimi.io.qc import overlay_png

UID_PATTERN = re.compile(r"^[0-9]+(\.[0-9]+)*$")
FIELDS = ("series_uid", "study_uid", "model", "role")
LABELMAP_FORMATS = ("none", "nrrd", "nii.gz", "nii")


@dataclass(frozen=True)
class Settings:
    pattern: str = "{series_uid}/{model}.seg.dcm"
    labelmap_format: str = "none"
    qc_png: bool = False

    def __post_init__(self) -> None:
        names = {name for _, name, _, _ in string.Formatter().parse(self.pattern) if name}
        if names - set(FIELDS) or not self.pattern.endswith(".seg.dcm"):
            raise ValueError(f"pattern {self.pattern!r}: use fields {', '.join(FIELDS)} and end with .seg.dcm")
        parts = PurePosixPath(self.pattern).parts
        if PurePosixPath(self.pattern).is_absolute() or "\\" in self.pattern or any(p in ("..", ".") for p in parts):
            raise ValueError(f"pattern {self.pattern!r}: a path relative to the output folder, without '..' or '.'")
        if self.labelmap_format not in LABELMAP_FORMATS:
            raise ValueError(f"labelmap_format {self.labelmap_format!r}: one of {', '.join(LABELMAP_FORMATS)}")


def write_labelmap(image: sitk.Image, path: Path, labelmap_format: str) -> None:
    """The format named, not guessed from the (temporary) file name. NIfTI insists on a .nii name: it is written
    beside the temporary under one, then moved (or gzipped, for .nii.gz) onto it."""
    if labelmap_format == "nrrd":
        sitk.WriteImage(image, str(path), useCompression=True, imageIO="NrrdImageIO")
        return
    plain = path.with_name(path.name + ".nii")
    try:
        sitk.WriteImage(image, str(plain), imageIO="NiftiImageIO")
        if labelmap_format == "nii":
            os.replace(plain, path)
            return
        with plain.open("rb") as source, gzip.open(path, "wb") as target:
            shutil.copyfileobj(source, target)
    finally:
        plain.unlink(missing_ok=True)


def _make_folders(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; returns those created, outermost first."""
    missing = [folder, *folder.parents]
    missing = [f for f in missing if not f.exists()][::-1]
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def safe_name(text: str) -> str:
    """A role name as a path component: letters, digits, - and _ only."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", text) or "_"


def safe_uid(uid: str) -> str:
    """A UID as a path component; anything that is not a well-formed UID is replaced by its digest."""
    return uid if UID_PATTERN.match(uid) and len(uid) <= 64 else "x" + hashlib.sha256(uid.encode()).hexdigest()[:32]


class DataOrganizer(Module):
    inputs = ports(
        segs=Port(SEGS, "the SEGs to write, by role", "segs"),
        series=Port(SERIES_KIND, "the source series, for folder names and grids", SERIES),
        labels=Port((LABELMAP, SERIES_LABELMAPS), "the label map(s) to export; needed only with labelmap_format "
                    "or qc_png", MAIN, optional=True),
        images=Port(IMAGES, "the volumes under the QC overlay, on the series grids; needed only with qc_png",
                    "images", optional=True),
        reports=Port(REPORTS, "SRs to write beside the SEGs, by role (<model>.volumes.sr.dcm)", "reports",
                     optional=True),
    )
    outputs = ports(files=Port(FILES, "every file written, once complete", "files"))
    Settings = Settings

    def __call__(self, case: Case) -> None:
        series_by_role: dict[str, DicomSeries] = self.read(case, "series")
        staged: list[tuple[Path, Path]] = []
        created: list[Path] = []
        target = self.context.output_dir
        try:
            for role, seg in self.read(case, "segs").items():
                series = series_by_role[role]
                target = self._target(series, role)
                created += _make_folders(target.parent)
                staged.append((stage(target, lambda p, s=seg: s.save_as(p, enforce_file_format=True)), target))
                staged.extend(self._extras(case, role, series, target))
                staged.extend(self._report(case, role, target))
            for temporary, target in staged:
                os.replace(temporary, target)
        except BaseException as error:
            for temporary, _ in staged:
                temporary.unlink(missing_ok=True)
            for folder in reversed(created):
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only if empty: a case leaves no empty folder behind
            if isinstance(error, OSError):
                where = target.relative_to(self.context.output_dir) if target.is_relative_to(
                    self.context.output_dir) else target.name
                raise CaseError(f"case {case.id}: cannot write {where}: {os_reason(error)}") from None
            raise
        self.write(case, "files", [target for _, target in staged])

    def _target(self, series: DicomSeries, role: str) -> Path:
        """The SEG's path under the output folder; the pattern was checked relative, the fields are UIDs."""
        relative = self.settings.pattern.format(series_uid=safe_uid(series.series_uid),
                                                study_uid=safe_uid(series.study_uid),
                                                model=self.context.model_name, role=safe_name(role))
        return self.context.output_dir / relative

    def _report(self, case: Case, role: str, seg_path: Path) -> list[tuple[Path, Path]]:
        """The role's SR (VolumeReport), if one was made, beside its SEG."""
        report = (self.read(case, "reports") or {}).get(role)
        if report is None:
            return []
        target = seg_path.with_name(seg_path.name.removesuffix(".seg.dcm") + ".volumes.sr.dcm")
        return [(stage(target, lambda p: report.save_as(p, enforce_file_format=True)), target)]

    def _extras(self, case: Case, role: str, series: DicomSeries, seg_path: Path) -> list[tuple[Path, Path]]:
        """The label map and QC overlay beside the SEG, when asked for (only then is a label map needed)."""
        images = self.read(case, "images") or {}
        wants_labels = self.settings.labelmap_format != "none"
        wants_png = self.settings.qc_png and role in images
        if not (wants_labels or wants_png):
            return []
        labelmaps = self.read(case, "labels")
        if labelmaps is None:
            raise CaseError(f"case {case.id}: DataOrganizer: a label-map file or QC overlay was asked for, but input "
                            f"'labels' ({self.wiring.inputs['labels']!r}) was not written")
        stem = seg_path.name.removesuffix(".seg.dcm")
        labels = role_on_source_grid(labelmaps, role, series.geometry)
        extras = []
        if wants_labels:
            image = sitk.GetImageFromArray(labels)
            image.CopyInformation(series.geometry.reference_image())
            target = seg_path.with_name(f"{stem}.labels.{self.settings.labelmap_format}")
            extras.append((stage(target, lambda p: write_labelmap(image, p, self.settings.labelmap_format)), target))
        if wants_png:
            target = seg_path.with_name(f"{stem}.qc.png")
            writer = lambda p: overlay_png(images[role], labels, series.geometry, series.modality, p)  # noqa: E731
            extras.append((stage(target, writer), target))
        return extras
