"""A task's QA record in the published layout, made from the project's own chain outputs.

The published record (Zenodo 13244892) holds one zip per task with `qa-results.csv`, `ai-segmentations-dcm/` and
`qa-segmentations-dcm/` at its root, as the authors' notebooks unpack it. Here the AI SEGs are those a chain wrote;
each reviewer SEG is an edited copy of its AI SEG's label map (grown, shrunk, shifted, a missed region painted in),
written by the project's SEG writer on the same source series. Every segment is left non-empty in a correction, so
each metric has a value. The label maps are kept beside each row, so that tests can compute the expected numbers
with another implementation.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from scipy import ndimage

from aimi.evaluate.report import write_csv
from aimi.seg.segments import SegmentSpec
from aimi.seg.writer import SegHeader, build_seg
from tests.support.chains import decoded_labels, exported_image, segment_table, sorted_by_position

#: A reviewer's correction: (AI label map, voxel spacing z, y, x in mm) -> the corrected label map.
Edit = Callable[[np.ndarray, tuple[float, float, float]], np.ndarray]


@dataclass(frozen=True)
class AiSeg:
    """A SEG a chain wrote, with the series it segments."""

    path: Path
    source_files: list[Path]
    model: str

    @property
    def series_uid(self) -> str:
        header = pydicom.dcmread(self.path, stop_before_pixels=True)
        return str(header.ReferencedSeriesSequence[0].SeriesInstanceUID)


@dataclass(frozen=True)
class Review:
    """One qa-results.csv row to write: the reviewer, the year, whether the case is in the validation set, and the
    correction (None: the reviewer strongly agreed and gave none)."""

    ai: AiSeg
    reviewer: str
    year: str
    validation: bool
    edit: Edit | None
    likert: str = "4 - Agree"


@dataclass(frozen=True)
class ReviewedCase:
    """A written row with the two label maps it compares, on the source series' grid."""

    review: Review
    case: str  # '<SeriesInstanceUID> <reviewer>', as aimi evaluate names a QA case
    ai_labels: np.ndarray
    reference_labels: np.ndarray
    spacing: tuple[float, float, float]


def write_record(root: Path, reviews: Sequence[Review]) -> tuple[Path, list[ReviewedCase]]:
    """`root`/<name>.zip holding the record of `reviews` (root holds the unzipped tree too), and what was written."""
    tree = root / "tree"
    (tree / "ai-segmentations-dcm").mkdir(parents=True)
    (tree / "qa-segmentations-dcm").mkdir()
    rows, written = [], []
    for review in reviews:
        uid = review.ai.series_uid
        ai_name = f"{uid}.dcm"
        if not (tree / "ai-segmentations-dcm" / ai_name).exists():
            (tree / "ai-segmentations-dcm" / ai_name).write_bytes(review.ai.path.read_bytes())
        segments = segment_table(review.ai.model)
        ai_labels = decoded_labels(review.ai.path, review.ai.source_files, {s.label: s.name for s in segments})
        spacing = _spacing(review.ai.path)
        corrected = ""
        reference = ai_labels
        if review.edit is not None:
            reference = _all_present(review.edit(ai_labels, spacing), segments, spacing)
            corrected = f"{uid}_{review.reviewer}.dcm"
            _write_correction(reference, review.ai, segments, tree / "qa-segmentations-dcm" / corrected)
        rows.append(_row(review, uid, ai_name, corrected, segments))
        written.append(ReviewedCase(review, f"{uid} {review.reviewer}", ai_labels, reference, spacing))
    write_csv(tree / "qa-results.csv", list(rows[0]), rows)
    archive = root / "record.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(tree.rglob("*")):
            if path.is_file():
                zipped.write(path, path.relative_to(tree).as_posix())
    return archive, written


def grow(value: int, mm: float) -> Edit:
    """The reviewer adds a rim of `mm` around the label (where no other label is)."""
    def edit(labels: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
        mask = labels == value
        if not mask.any():
            return labels
        near = ndimage.distance_transform_edt(~mask, sampling=spacing) <= mm
        return np.where(near & (labels == 0), value, labels)
    return edit


def shrink(value: int, mm: float) -> Edit:
    """The reviewer removes the outer `mm` of the label."""
    def edit(labels: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
        mask = labels == value
        inner = ndimage.distance_transform_edt(mask, sampling=spacing) > mm
        return np.where(mask & ~inner, 0, labels)
    return edit


def shift(value: int, voxels: tuple[int, int, int]) -> Edit:
    """The reviewer moves the label by whole voxels (z, y, x), cutting what leaves the volume."""
    def edit(labels: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
        mask = labels == value
        moved = np.zeros_like(mask)
        target = tuple(slice(max(v, 0), mask.shape[a] + min(v, 0)) for a, v in enumerate(voxels))
        source = tuple(slice(max(-v, 0), mask.shape[a] + min(-v, 0)) for a, v in enumerate(voxels))
        moved[target] = mask[source]
        return np.where(moved, value, np.where(mask, 0, labels))
    return edit


def paint(value: int, at: tuple[float, float, float], radius_mm: float) -> Edit:
    """The reviewer draws a region the AI missed: a ball at `at` (fractions of the volume's extent, z, y, x)."""
    def edit(labels: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
        return np.where(_ball(labels.shape, spacing, at, radius_mm), value, labels)
    return edit


def chained(*edits: Edit) -> Edit:
    def edit(labels: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
        for step in edits:
            labels = step(labels, spacing)
        return labels
    return edit


def _ball(shape: tuple[int, ...], spacing: tuple[float, float, float], at: tuple[float, float, float],
          radius_mm: float) -> np.ndarray:
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    centre = [f * (n - 1) for f, n in zip(at, shape, strict=True)]
    distance = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, spacing, strict=True))
    return np.asarray(distance <= radius_mm**2)


def _all_present(labels: np.ndarray, segments: Sequence[SegmentSpec], spacing: tuple[float, float, float]
                 ) -> np.ndarray:
    """Each segment a correction lacks is painted in (a small ball of its own, spread over the volume), so that every
    metric of the row has a value."""
    radius = 3 * max(spacing)
    for index, segment in enumerate(segments):
        if not (labels == segment.label).any():
            at = (0.5, 0.3 + 0.2 * index, 0.35 + 0.15 * index)
            labels = np.where(_ball(labels.shape, spacing, at, radius) & (labels == 0), segment.label, labels)
    return labels


def _spacing(seg_path: Path) -> tuple[float, float, float]:
    """(slice step, row, column) spacing in mm of the source grid the chain exported its label map on."""
    x, y, z = exported_image(seg_path).GetSpacing()
    return float(z), float(y), float(x)


def _write_correction(labels: np.ndarray, ai: AiSeg, segments: Sequence[SegmentSpec], path: Path) -> None:
    sources = [pydicom.dcmread(f, stop_before_pixels=True) for f in sorted_by_position(ai.source_files)]
    body_part = str(pydicom.dcmread(ai.path, stop_before_pixels=True).get("BodyPartExamined", ""))
    header = SegHeader("Reviewer correction", 301, body_part, "reviewer", "1")
    build_seg(labels, sources, segments, header).save_as(path, enforce_file_format=True)


def _row(review: Review, uid: str, ai_name: str, corrected: str, segments: Sequence[SegmentSpec]
         ) -> dict[str, str]:
    header = pydicom.dcmread(review.ai.source_files[0], stop_before_pixels=True)
    return {
        "Collection": "aimi-test", "PatientID": "anonymous", "StudyInstanceUID": str(header.StudyInstanceUID),
        "SeriesInstanceUID": uid, "Reviewer": review.reviewer, "Validation": str(review.validation),
        "AimiProjectYear": review.year, "AISegmentation": ai_name, "CorrectedSegmentation": corrected,
        **{f"Was the AI predicted {s.name} label accurate?": review.likert for s in segments},
        "CommentsAboutAISegmentation": "",
    }
