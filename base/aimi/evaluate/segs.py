"""DICOM SEG -> one SimpleITK mask per segment in physical space, and AI/reviewer segments paired on one grid.

The grid comes from the SEG itself (PS3.3 C.7.6.16: PlanePositionSequence, PlaneOrientationSequence and
PixelMeasuresSequence of its functional groups, read by highdicom's `get_volume`), so the source series is not
needed. Slices without a frame (empty frames omitted, PS3.3 C.8.20.2) are empty. FRACTIONAL segments count every
value > 0 as inside, as aimi_testkit.seg_reader does.

Segments of two SEGs are paired by (property type code, category code) first, then by SegmentLabel (case-
insensitive), never by segment number. A segment present in only one SEG is compared with an empty mask.
Both masks of a pair are resampled, nearest neighbour, onto the reference SEG's voxel lattice (its orientation and
spacing) cropped to the two masks' physical extent: on one lattice this is a copy; on different grids the
comparison happens in physical space.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset

#: SOP classes read as SEGs: Segmentation Storage and Label Map Segmentation Storage (PS3.4 B.5).
SEG_SOP_CLASSES = ("1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7")
#: SCT 49755003 "Morphologically Altered Structure": the category of lesions, whose detection is counted.
LESION_CATEGORY = "49755003"


class SegError(ValueError):
    """A SEG cannot be evaluated (not a SEG, no volume geometry, or not comparable with its partner)."""


@dataclass(frozen=True)
class Segment:
    """One segment: its codes ('scheme:value'), label and mask (uint8 0/1) in physical space."""

    number: int
    label: str
    property_type: str
    category: str
    mask: sitk.Image

    @property
    def is_lesion(self) -> bool:
        return self.category.endswith(f":{LESION_CATEGORY}")


@dataclass(frozen=True)
class LoadedSeg:
    """A SEG file's segments plus the identifiers used to pair it with another SEG."""

    path: Path
    referenced_series_uid: str
    frame_of_reference_uid: str
    body_part: str
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class SegmentPair:
    """A reference and a predicted segment on one grid; `status` says whether either SEG lacked the segment."""

    label: str
    property_type: str
    reference: np.ndarray
    prediction: np.ndarray
    spacing: tuple[float, float, float]
    is_lesion: bool
    status: str


def load_seg(path: Path) -> LoadedSeg:
    """Read a SEG and build one mask per segment on the grid its frames describe."""
    seg = _read(path)
    numbers = [n for n in seg.segment_numbers if n > 0]  # 0: a LABELMAP SEG's background
    try:
        volume = seg.get_volume(segment_numbers=numbers, combine_segments=False, allow_missing_positions=True)
    except (ValueError, RuntimeError) as error:
        raise SegError(f"{path}: its frames do not form one regular 3D grid ({error})") from error
    items = {int(item.SegmentNumber): item for item in seg.SegmentSequence}
    array = np.asarray(volume.array)
    segments = tuple(
        _segment(items[number], array[..., index] > 0, volume.affine) for index, number in enumerate(numbers)
    )
    referenced = seg.get("ReferencedSeriesSequence")
    return LoadedSeg(
        path=Path(path),
        referenced_series_uid=str(referenced[0].SeriesInstanceUID) if referenced else "",
        frame_of_reference_uid=str(seg.get("FrameOfReferenceUID", "")),
        body_part=str(seg.get("BodyPartExamined", "")),
        segments=segments,
    )


def pair_segments(reference: LoadedSeg, prediction: LoadedSeg) -> list[SegmentPair]:
    """Every segment of either SEG, paired by codes then label, both masks on the reference lattice."""
    if reference.frame_of_reference_uid != prediction.frame_of_reference_uid:
        raise SegError(f"{prediction.path} and {reference.path} lie in different frames of reference "
                       f"({prediction.frame_of_reference_uid} vs {reference.frame_of_reference_uid})")
    matches = match_segments(reference.segments, prediction.segments)
    lattice = reference.segments[0].mask if reference.segments else prediction.segments[0].mask
    return [_pair(ref, pred, lattice) for ref, pred in matches]


def match_segments(
    reference: Sequence[Segment], prediction: Sequence[Segment]
) -> list[tuple[Segment | None, Segment | None]]:
    """Pairs by (property type, category) codes when they identify one segment each, else by SegmentLabel."""
    unmatched = list(prediction)
    pairs: list[tuple[Segment | None, Segment | None]] = []
    for ref in reference:
        partner = _find(ref, unmatched)
        if partner is not None:
            unmatched.remove(partner)
        pairs.append((ref, partner))
    return pairs + [(None, pred) for pred in unmatched]


def _find(ref: Segment, candidates: Sequence[Segment]) -> Segment | None:
    by_code = [c for c in candidates if (c.property_type, c.category) == (ref.property_type, ref.category)]
    if len(by_code) == 1:
        return by_code[0]
    pool = by_code or candidates
    by_label = [c for c in pool if c.label.casefold() == ref.label.casefold()]
    return by_label[0] if by_label else None


def _pair(ref: Segment | None, pred: Segment | None, lattice: sitk.Image) -> SegmentPair:
    present = [s for s in (ref, pred) if s is not None]
    grid = _common_grid(lattice, [s.mask for s in present])
    known = present[0]
    status = "ok" if len(present) == 2 else ("missing in reference" if ref is None else "missing in prediction")
    return SegmentPair(
        label=known.label,
        property_type=known.property_type,
        reference=_on_grid(ref, grid),
        prediction=_on_grid(pred, grid),
        spacing=tuple(float(s) for s in reversed(grid.GetSpacing())),  # array axes (slice, row, column)
        is_lesion=known.is_lesion,
        status=status,
    )


def _common_grid(lattice: sitk.Image, masks: Sequence[sitk.Image]) -> sitk.Image:
    """An empty image on `lattice`'s voxel lattice covering every mask's foreground plus one voxel each side."""
    corners = [c for mask in masks for c in _foreground_corners(mask)]
    grid = sitk.Image([1, 1, 1], sitk.sitkUInt8)
    grid.SetDirection(lattice.GetDirection())
    grid.SetSpacing(lattice.GetSpacing())
    if not corners:
        grid.SetOrigin(lattice.GetOrigin())
        return grid
    indices = np.array([lattice.TransformPhysicalPointToContinuousIndex(c) for c in corners])
    low = np.floor(indices.min(axis=0) + 0.5).astype(int) - 1
    high = np.ceil(indices.max(axis=0) - 0.5).astype(int) + 1
    grid = sitk.Image([int(v) for v in high - low + 1], sitk.sitkUInt8)
    grid.SetDirection(lattice.GetDirection())
    grid.SetSpacing(lattice.GetSpacing())
    grid.SetOrigin(lattice.TransformContinuousIndexToPhysicalPoint([float(v) for v in low]))
    return grid


def _foreground_corners(mask: sitk.Image) -> list[tuple[float, ...]]:
    """Physical corners of the foreground's bounding box, voxel extents included (half a voxel past centres)."""
    array = sitk.GetArrayViewFromImage(mask)
    if not array.any():
        return []
    nonzero = np.nonzero(array)
    low = [float(axis.min()) - 0.5 for axis in reversed(nonzero)]  # (x, y, z) index order
    high = [float(axis.max()) + 0.5 for axis in reversed(nonzero)]
    return [
        mask.TransformContinuousIndexToPhysicalPoint([x, y, z])
        for x in (low[0], high[0]) for y in (low[1], high[1]) for z in (low[2], high[2])
    ]


def _on_grid(segment: Segment | None, grid: sitk.Image) -> np.ndarray:
    if segment is None:
        return np.zeros(sitk.GetArrayViewFromImage(grid).shape, dtype=bool)
    resampled = sitk.Resample(segment.mask, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return sitk.GetArrayFromImage(resampled).astype(bool)


def _segment(item: Dataset, mask: np.ndarray, affine: np.ndarray) -> Segment:
    return Segment(
        number=int(item.SegmentNumber),
        label=str(item.SegmentLabel),
        property_type=_code(item.SegmentedPropertyTypeCodeSequence[0]),
        category=_code(item.SegmentedPropertyCategoryCodeSequence[0]),
        mask=_to_sitk(mask, affine),
    )


def _to_sitk(mask: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """A (slice, row, column) mask with highdicom's affine (index -> LPS mm) as a SimpleITK image.

    SimpleITK indexes (x, y, z) = (column, row, slice), so its axes are the affine's columns in reverse order.
    """
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    axes = affine[:3, :3][:, ::-1]
    spacing = np.linalg.norm(axes, axis=0)
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection([float(v) for v in (axes / spacing).ravel()])
    image.SetOrigin([float(v) for v in affine[:3, 3]])
    return image


def _code(item: Dataset) -> str:
    return f"{item.CodingSchemeDesignator}:{item.CodeValue}"


def _read(path: Path) -> hd.seg.Segmentation:
    try:
        return hd.seg.segread(path)
    except (ValueError, AttributeError, OSError) as error:
        raise SegError(f"{path}: not a readable DICOM SEG ({error})") from error
