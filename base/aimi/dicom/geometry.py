"""The image grid of a classic single-frame DICOM series, derived from its headers alone.

Conventions (used everywhere in aimi):
- Slices are sorted by their position along the slice normal n = row_cosines x column_cosines, ascending.
  That order is the *source frame order*: the SEG's frames and `source_images` follow it.
- The grid is expressed as a SimpleITK image: x = along a row (ImageOrientationPatient[0:3]), y = down a column
  (ImageOrientationPatient[3:6]), z = n. Spacing (PixelSpacing[1], PixelSpacing[0], slice step).
  `sitk.GetArrayFromImage` of an image on this grid is (slice, row, column): frame k is array[k].
- All coordinates are DICOM patient coordinates (LPS), which is also SimpleITK's physical space.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset

#: Largest relative deviation of slice steps from their median that still counts as one uniform grid.
SLICE_STEP_TOLERANCE = 0.01
#: How far ImageOrientationPatient may be from two orthogonal unit vectors (PS3.3 C.7.6.2.1.1) and still be used.
ORIENTATION_TOLERANCE = 1e-3
GREYSCALE = ("MONOCHROME1", "MONOCHROME2")
GEOMETRY_TAGS = (("ImagePositionPatient", 3), ("ImageOrientationPatient", 6), ("PixelSpacing", 2))


class GeometryError(ValueError):
    """The headers do not describe one regular 3D grid."""


@dataclass(frozen=True)
class SeriesGeometry:
    """A regular grid: origin of the first sorted slice, axes, spacing (x, y, z) and size (cols, rows, slices)."""

    origin: tuple[float, float, float]
    row_cosines: tuple[float, float, float]
    column_cosines: tuple[float, float, float]
    normal: tuple[float, float, float]
    spacing: tuple[float, float, float]
    size: tuple[int, int, int]

    @property
    def direction(self) -> tuple[float, ...]:
        """SimpleITK direction: the axes as matrix columns, row-major flattened."""
        axes = np.column_stack([self.row_cosines, self.column_cosines, self.normal])
        return tuple(float(v) for v in axes.ravel())

    def reference_image(self, pixel_type: int = sitk.sitkUInt8) -> sitk.Image:
        """An empty image on this grid, for resampling onto it."""
        image = sitk.Image([int(s) for s in self.size], pixel_type)
        image.SetOrigin(self.origin)
        image.SetSpacing(self.spacing)
        image.SetDirection(self.direction)
        return image

    def obliquity_degrees(self) -> float:
        """Angle between the slice normal and the patient's head-foot axis (0 for axial slices)."""
        return float(np.degrees(np.arccos(min(1.0, abs(self.normal[2])))))


def header_problem(ds: Dataset) -> str:
    """Why one image header cannot be a slice of a grid the chain reads, naming the tag; "" when it can.

    Checked before any native library (dcm2niix, SimpleITK) sees the pixels: colour and multi-sample images,
    missing, non-numeric or degenerate geometry (orientation not two orthogonal unit vectors, spacing <= 0), and a
    rescale that is not a finite, non-zero slope and a finite intercept.
    """
    samples = _values(ds, "SamplesPerPixel", 1) if "SamplesPerPixel" in ds else [1.0]
    if isinstance(samples, str) or samples != [1.0]:
        return f"SamplesPerPixel {_shown(ds, 'SamplesPerPixel')}: colour or multi-sample images are not supported"
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    if photometric not in GREYSCALE:
        return f"PhotometricInterpretation {photometric!r}: only greyscale (MONOCHROME1/2) images are supported"
    for keyword in ("Rows", "Columns"):
        size = _values(ds, keyword, 1)
        if isinstance(size, str) or size[0] < 1:
            return f"{keyword} {_shown(ds, keyword)}: an image needs at least one row and column"
    found = {}
    for keyword, count in GEOMETRY_TAGS:
        numbers = _values(ds, keyword, count)
        if isinstance(numbers, str):
            return numbers
        found[keyword] = np.asarray(numbers)
    row, col = found["ImageOrientationPatient"][:3], found["ImageOrientationPatient"][3:]
    if not (abs(row @ row - 1) < ORIENTATION_TOLERANCE and abs(col @ col - 1) < ORIENTATION_TOLERANCE
            and abs(row @ col) < ORIENTATION_TOLERANCE):
        return (f"ImageOrientationPatient {_shown(ds, 'ImageOrientationPatient')} is not two orthogonal unit "
                "vectors (degenerate orientation)")
    if np.any(found["PixelSpacing"] <= 0):
        return f"PixelSpacing {_shown(ds, 'PixelSpacing')}: both values must be > 0"
    return _rescale_problem(ds)


def _rescale_problem(ds: Dataset) -> str:
    """A slope of 0 makes every voxel one value, a non-finite one makes NaN: both pass any intensity check."""
    for keyword in ("RescaleSlope", "RescaleIntercept"):
        value = _values(ds, keyword, 1) if keyword in ds else "missing"
        if isinstance(value, str):
            if "missing" in value:  # absent or empty: the identity
                continue
            return value
        if keyword == "RescaleSlope" and value[0] == 0:
            return f"RescaleSlope {_shown(ds, keyword)}: a slope of 0 maps every pixel to one value"
    return ""


def _values(ds: Dataset, keyword: str, count: int) -> list[float] | str:
    """`count` finite numbers from the element, or the problem with it, naming the tag."""
    try:
        raw = ds.get(keyword)
    except Exception:  # a value pydicom cannot convert fails on access
        return f"{keyword} {_shown(ds, keyword)} is not numeric"
    if raw is None or raw == "":
        return f"{keyword} missing"
    items = list(raw) if isinstance(raw, Sequence) and not isinstance(raw, str | bytes) else [raw]
    try:
        numbers = [float(v) for v in items]
    except (TypeError, ValueError):
        return f"{keyword} {_shown(ds, keyword)} is not numeric"
    if len(numbers) != count or not np.all(np.isfinite(numbers)):
        return f"{keyword} {_shown(ds, keyword)}: expected {count} finite number(s)"
    return numbers


def _shown(ds: Dataset, keyword: str) -> str:
    """The element's value as stored, short, for a reason (geometry tags, never names)."""
    element = ds.data_element(keyword) if keyword in ds else None
    if element is None:
        return "(absent)"
    value = element.value
    text = value.decode("latin-1", "replace") if isinstance(value, bytes) else str(value)
    return repr(text.strip()[:40])


def slice_normal(orientation: Sequence[float]) -> np.ndarray:
    row, col = np.asarray(orientation[:3], float), np.asarray(orientation[3:6], float)
    normal = np.cross(row, col)
    return normal / np.linalg.norm(normal)


def sort_by_position(datasets: Sequence[Dataset]) -> list[Dataset]:
    """Source frame order: ascending position along the slice normal (ties broken by InstanceNumber)."""
    normal = slice_normal(datasets[0].ImageOrientationPatient)
    return sorted(
        datasets,
        key=lambda ds: (
            float(np.dot(normal, np.asarray(ds.ImagePositionPatient, float))),
            _instance_number(ds),
        ),
    )


def _instance_number(ds: Dataset) -> float:
    """InstanceNumber for breaking ties in position; 0 where it is absent or not a number."""
    number = _values(ds, "InstanceNumber", 1)
    return 0.0 if isinstance(number, str) else number[0]


def series_geometry(sorted_datasets: Sequence[Dataset]) -> SeriesGeometry:
    """The grid of slices already in source frame order; raises GeometryError naming the rule they break."""
    if len(sorted_datasets) < 2:
        raise GeometryError(f"{len(sorted_datasets)} slice(s): a 3D grid needs at least 2")
    first = sorted_datasets[0]
    orientation = np.asarray(first.ImageOrientationPatient, float)
    for ds in sorted_datasets[1:]:
        if not np.allclose(np.asarray(ds.ImageOrientationPatient, float), orientation, atol=1e-4):
            raise GeometryError("ImageOrientationPatient differs between slices")
        if (ds.Rows, ds.Columns) != (first.Rows, first.Columns):
            raise GeometryError("Rows/Columns differ between slices")
        if not np.allclose(np.asarray(ds.PixelSpacing, float), np.asarray(first.PixelSpacing, float), atol=1e-4):
            raise GeometryError("PixelSpacing differs between slices")
    normal = slice_normal(orientation)
    positions = np.asarray([ds.ImagePositionPatient for ds in sorted_datasets], float)
    steps = np.diff(positions @ normal)
    step = float(np.median(steps))
    if step <= 1e-4:
        raise GeometryError("slices share a position (duplicate or multi-phase series)")
    if np.max(np.abs(steps - step)) > SLICE_STEP_TOLERANCE * step + 1e-3:
        raise GeometryError(f"slice spacing is not uniform (steps {steps.min():.3f} to {steps.max():.3f} mm)")
    offsets = positions - positions[0]
    in_plane = offsets - np.outer(offsets @ normal, normal)
    if np.max(np.linalg.norm(in_plane, axis=1)) > 0.01 * step + 1e-3:
        raise GeometryError("slice positions are not along the slice normal (gantry tilt or sheared stack)")
    row_spacing, col_spacing = (float(v) for v in first.PixelSpacing)
    return SeriesGeometry(
        origin=tuple(float(v) for v in positions[0]),
        row_cosines=tuple(float(v) for v in orientation[:3]),
        column_cosines=tuple(float(v) for v in orientation[3:6]),
        normal=tuple(float(v) for v in normal),
        spacing=(col_spacing, row_spacing, step),
        size=(int(first.Columns), int(first.Rows), len(sorted_datasets)),
    )


def same_voxel_centres(image: sitk.Image, geometry: SeriesGeometry, tolerance_mm: float = 0.05) -> bool:
    """True when `image` samples exactly the points of `geometry` (axes may be permuted or flipped)."""
    def corners(img: sitk.Image) -> np.ndarray:
        size = img.GetSize()
        idx = [(i, j, k) for i in (0, size[0] - 1) for j in (0, size[1] - 1) for k in (0, size[2] - 1)]
        return np.asarray([img.TransformIndexToPhysicalPoint(c) for c in idx])

    if sorted(image.GetSize()) != sorted(geometry.size):
        return False
    ours, theirs = corners(image), corners(geometry.reference_image())
    distances = np.linalg.norm(ours[:, None, :] - theirs[None, :, :], axis=2)
    return bool(np.all(distances.min(axis=1) <= tolerance_mm))
