"""`aimi review import DIR -o OUT`: the reviewed folders of `aimi review package` back as standard objects.

Reads, per folder of DIR: package.json, image/ (the source series), ai-seg.dcm, qa-row.csv (filled) and the
correction if the reviewer saved one (corrected.seg.nrrd, or a label map corrected.nrrd / corrected.nii.gz in the
model's values). A brain study's folder holds the atlas-space volumes and labels (atlas/, the correction saved there),
every series (series/<role>/), their AI SEGs (ai-seg/<role>.dcm) and the transforms: the correction goes back onto
each series through the exact inverse of its way into the atlas, one SEG and one row per series.
Writes OUT as the published QA record lays it out, which `aimi evaluate --qa-results` reads:
- ai-segmentations-dcm/<SeriesInstanceUID>.dcm: the AI SEG;
- qa-segmentations-dcm/<SeriesInstanceUID>_<Reviewer>.dcm: the correction as a DICOM SEG on the original series;
  each segment the reviewer left as it was stays AUTOMATIC with the AI's algorithm, a changed one is SEMIAUTOMATIC,
  one drawn where the AI had none MANUAL; the reviewer is the content creator, and the AI SEG it derives from is
  referenced (Common Instance Reference) and named in the content description. No correction, no SEG (the paper's
  strong agreement);
- qa-results.csv: the filled rows with AISegmentation and CorrectedSegmentation set.
A folder that cannot be imported is named with the reason; the others are imported; files are written atomically.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset

from aimi.atomic import write_atomically
from aimi.brain.spaces import from_atlas, resample
from aimi.review.package import labels_on_series, segment_table, source_image
from aimi.review.slicer import SlicerFileError, read_labels
from aimi.seg.segments import SegmentSpec
from aimi.seg.writer import SegHeader, build_seg

CORRECTIONS = ("corrected.seg.nrrd", "corrected.nrrd", "corrected.nii.gz", "corrected.nii")
AI_FOLDER, QA_FOLDER, QA_CSV = "ai-segmentations-dcm", "qa-segmentations-dcm", "qa-results.csv"


@dataclass(frozen=True)
class Imported:
    """One qa-results row written, and the correction SEG it names (None: the reviewer gave none)."""

    folder: Path
    row: dict[str, str]
    correction: Path | None


def import_reviews(packages: Path, out: Path) -> tuple[list[Imported], list[str]]:
    """Every reviewed folder under `packages` into `out`; (what was imported, one failure line per folder that was
    not)."""
    done, failures = [], []
    for folder in sorted(p.parent for p in packages.glob("*/package.json")):
        try:
            done += _import_one(folder, out)
        except (ValueError, OSError, KeyError, RuntimeError) as error:
            failures.append(f"{folder}: {error}")
    if done:
        columns = list(dict.fromkeys(column for item in done for column in item.row))
        write_atomically(out / QA_CSV, lambda partial: _write_rows(partial, columns, [i.row for i in done]))
    return done, failures


@dataclass(frozen=True)
class _Series:
    """One reviewed series of a package: its files, its AI SEG, and how a correction lands on its grid."""

    uid: str
    files: list[Path]
    ai_seg: Path
    onto_grid: Callable[[sitk.Image, sitk.Image], sitk.Image]  # (corrected labels, series grid) -> labels on grid


def _import_one(folder: Path, out: Path) -> list[Imported]:
    """One row (and SEG, if corrected) per series of the package: one series, or every series of a brain study."""
    manifest = json.loads((folder / "package.json").read_text())
    filled = _filled_row(folder / "qa-row.csv")
    segments = segment_table(manifest["model"])
    if manifest.get("space") == "atlas":
        reviewed, correction = _atlas_series(folder, manifest), _correction(folder / "atlas") or _correction(folder)
    else:
        reviewed = [_Series(manifest["series_uid"], sorted((folder / "image").iterdir()), folder / "ai-seg.dcm",
                            _same_space)]
        correction = _correction(folder)
    corrected = None
    if correction is not None:
        try:
            corrected = read_labels(correction, segments)
        except SlicerFileError as error:
            raise ValueError(str(error)) from None
    done = []
    for series in reviewed:
        row = dict(filled)
        ai_name = f"{series.uid}.dcm"
        (out / AI_FOLDER).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(series.ai_seg, out / AI_FOLDER / ai_name)
        row.update({"SeriesInstanceUID": series.uid, "AISegmentation": ai_name, "CorrectedSegmentation": ""})
        written = None
        if corrected is not None:
            seg = _correction_seg(series, corrected, segments, row["Reviewer"])
            written = out / QA_FOLDER / f"{series.uid}_{row['Reviewer']}.dcm"
            written.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(written, lambda partial, s=seg: s.save_as(partial, enforce_file_format=True))
            row["CorrectedSegmentation"] = written.name
        done.append(Imported(folder, row, written))
    return done


def _correction(folder: Path) -> Path | None:
    return next((folder / name for name in CORRECTIONS if (folder / name).is_file()), None)


def _same_space(labels: sitk.Image, grid: sitk.Image) -> sitk.Image:
    return sitk.Resample(labels, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)


def _atlas_series(folder: Path, manifest: dict[str, object]) -> list[_Series]:
    """A brain study's series, each with the exact inverse of its way into the atlas (as LabelsToSeries)."""
    atlas = sitk.ReadTransform(str(folder / "transforms" / str(manifest["atlas_transform"])))
    reviewed = []
    for role, uid in dict(manifest["roles"]).items():  # type: ignore[call-overload]
        inverse = from_atlas(sitk.ReadTransform(str(folder / "transforms" / f"{role}.tfm")), atlas)

        def onto(labels: sitk.Image, grid: sitk.Image, transform: sitk.Transform = inverse) -> sitk.Image:
            return resample(labels, grid, transform, sitk.sitkNearestNeighbor, sitk.sitkUInt8)

        reviewed.append(_Series(str(uid), sorted((folder / "series" / role).iterdir()),
                                folder / "ai-seg" / f"{role}.dcm", onto))
    return reviewed


def _correction_seg(series: _Series, corrected: sitk.Image, segments: Sequence[SegmentSpec], reviewer: str
                    ) -> Dataset:
    """The reviewer's label map as a SEG on the series, referencing the AI SEG."""
    grid, _, sources = source_image(series.files)
    labels = sitk.GetArrayFromImage(series.onto_grid(corrected, grid))
    ai_labels = sitk.GetArrayFromImage(labels_on_series(series.ai_seg, grid, segments))
    ai = pydicom.dcmread(series.ai_seg, stop_before_pixels=True)
    seg = build_seg(labels.astype(np.uint8), sources, segments, _header(ai, reviewer),
                    algorithm_types=_algorithm_types(labels, ai_labels, segments))
    _reference(seg, ai)
    return seg


def _algorithm_types(labels: np.ndarray, ai_labels: np.ndarray, segments: Sequence[SegmentSpec]) -> dict[int, str]:
    """AUTOMATIC where the reviewer left the AI's segment as it was, SEMIAUTOMATIC where they edited it, MANUAL where
    they drew one the AI did not find."""
    types = {}
    for spec in segments:
        mine, theirs = labels == spec.label, ai_labels == spec.label
        if not np.array_equal(mine, theirs):
            types[spec.label] = "SEMIAUTOMATIC" if theirs.any() else "MANUAL"
    return types


def _header(ai: Dataset, reviewer: str) -> SegHeader:
    algorithm = ai.SegmentSequence[0].get("SegmentationAlgorithmIdentificationSequence", [Dataset()])[0]
    return SegHeader(
        series_description=f"Reviewer correction ({reviewer})"[:64], series_number=int(ai.get("SeriesNumber", 300)) + 1,
        body_part_examined=str(ai.get("BodyPartExamined", "")),
        algorithm_name=str(algorithm.get("AlgorithmName", "unknown")),
        algorithm_version=str(algorithm.get("AlgorithmVersion", "unknown")),
        algorithm_source=algorithm.get("AlgorithmSource"),
        content_creator=reviewer, content_label="CORRECTION",
        content_description=f"Reviewer correction of AI SEG {ai.SOPInstanceUID}"[:64],
    )


def _reference(seg: Dataset, ai: Dataset) -> None:
    """The AI SEG this correction derives from, in the Common Instance Reference module (PS3.3 C.12.2)."""
    instance = Dataset()
    instance.ReferencedSOPClassUID = ai.SOPClassUID
    instance.ReferencedSOPInstanceUID = ai.SOPInstanceUID
    series = Dataset()
    series.SeriesInstanceUID = ai.SeriesInstanceUID
    series.ReferencedInstanceSequence = [instance]
    seg.ReferencedSeriesSequence.append(series)


def _filled_row(path: Path) -> dict[str, str]:
    with path.open(newline="", encoding="utf-8-sig") as stream:
        rows = list(csv.DictReader(stream))
    if len(rows) != 1:
        raise ValueError(f"{path}: expected the one row of the case, found {len(rows)}")
    row = {key: (value or "").strip() for key, value in rows[0].items()}
    if not row.get("Reviewer"):
        raise ValueError(f"{path}: Reviewer is empty; fill in who reviewed the case (e.g. rad1, ne1)")
    return row


def _write_rows(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
