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
            int(ds.get("InstanceNumber") or 0),
        ),
    )


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
