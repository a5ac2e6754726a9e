"""Brain test material: Colin27 (ch2) from the shared data, grids in any orientation, synthetic multi-series studies.

A synthetic study puts one anatomy on several series grids, each after its own known rigid motion (the patient
moved between series): `motion[role]` maps a point of the role's scan to the anatomy point it shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from aimi.brain.spaces import resample
from aimi.core.case import Case, DicomSeries
from aimi.core.context import RunContext, RunOptions
from aimi.dicom.geometry import SeriesGeometry

TEMPLATES = "mr-brain-templates-nifti"
#: Colin27's brain centre (LPS, mm), where test grids are centred.
BRAIN_CENTRE = (0.0, -18.0, 18.0)


def context(tmp_path: Path) -> RunContext:
    """A run context for modules used outside a model chain (no manifest, no weights: CPU)."""
    return RunContext("brain-test", tmp_path, None, tmp_path, tmp_path, RunOptions(device="cpu"))  # type: ignore[arg-type]


def read(path: Path, pixel_type: int = sitk.sitkFloat32) -> sitk.Image:
    return sitk.ReadImage(str(path), pixel_type)


def rotation(degrees_xyz: tuple[float, float, float]) -> np.ndarray:
    euler = sitk.Euler3DTransform()
    euler.SetRotation(*np.radians(degrees_xyz))
    return np.asarray(euler.GetMatrix()).reshape(3, 3)


def grid(
    size: tuple[int, int, int],
    spacing: tuple[float, float, float],
    direction: np.ndarray,
    centre: tuple[float, float, float] = BRAIN_CENTRE,
) -> sitk.Image:
    """An empty grid with axes `direction` (columns, right-handed) centred on `centre`."""
    image = sitk.Image([int(s) for s in size], sitk.sitkFloat32)
    image.SetSpacing(spacing)
    image.SetDirection([float(v) for v in direction.ravel()])
    half = (np.asarray(size) - 1) * np.asarray(spacing) / 2
    image.SetOrigin([float(v) for v in np.asarray(centre) - direction @ half])
    return image


AXIAL = np.eye(3)
#: Sagittal slices (DICOM 0\1\0\0\0\-1): rows run anterior-posterior, columns foot-ward, normal along x.
SAGITTAL = np.column_stack([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], np.cross([0.0, 1.0, 0.0], [0.0, 0.0, -1.0])])
#: Coronal slices (DICOM 1\0\0\0\0\-1).
CORONAL = np.column_stack([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], np.cross([1.0, 0.0, 0.0], [0.0, 0.0, -1.0])])


def motion(degrees_xyz: tuple[float, float, float], shift_mm: tuple[float, float, float]) -> sitk.Euler3DTransform:
    """A rigid patient motion about the brain centre."""
    transform = sitk.Euler3DTransform()
    transform.SetCenter(BRAIN_CENTRE)
    transform.SetRotation(*np.radians(degrees_xyz))
    transform.SetTranslation(shift_mm)
    return transform


def series_of(image: sitk.Image, description: str) -> DicomSeries:
    """A header-less series whose grid is `image`'s grid (what LabelsToSeries needs of `case.series`)."""
    axes = np.asarray(image.GetDirection()).reshape(3, 3)
    geometry = SeriesGeometry(
        origin=tuple(image.GetOrigin()),
        row_cosines=tuple(axes[:, 0]),
        column_cosines=tuple(axes[:, 1]),
        normal=tuple(axes[:, 2]),
        spacing=tuple(image.GetSpacing()),
        size=tuple(image.GetSize()),
    )
    return DicomSeries("1.2.3", f"1.2.3.{description}", "MR", description, (), (), geometry)


@dataclass
class Study:
    case: Case
    motions: dict[str, sitk.Transform]
    anatomy: dict[str, sitk.Image]
    original: dict[str, sitk.Image] = field(default_factory=dict)
    before_resampling: dict[str, sitk.Image] = field(default_factory=dict)

    def true_transform(self, role: str, reference: str = "t1c") -> sitk.Transform:
        """Reference point -> role point showing the same anatomy: motion[role]^-1 o motion[reference]."""
        return sitk.CompositeTransform([self.motions[role].GetInverse(), self.motions[reference]])


def study(anatomy: dict[str, sitk.Image], grids: dict[str, sitk.Image], motions: dict[str, sitk.Transform]) -> Study:
    """Each role's contrast of the anatomy, seen after its motion, sampled on its grid."""
    images = {role: resample(anatomy[role], grids[role], motions[role], sitk.sitkLinear) for role in grids}
    case = Case("synthetic", {role: series_of(grids[role], role) for role in grids}, artifacts={"images": images})
    return Study(case, motions, anatomy)


def centroid(image: sitk.Image, threshold: float) -> np.ndarray:
    """Physical centroid of the voxels above `threshold`."""
    indices = np.argwhere(sitk.GetArrayViewFromImage(image) > threshold)[:, ::-1]
    return np.mean([image.TransformContinuousIndexToPhysicalPoint(i.tolist()) for i in indices.astype(float)], axis=0)


def max_error_mm(estimate: sitk.Transform, truth: sitk.Transform, half_width: float = 70.0) -> float:
    """Largest distance between the two transforms' images of the corners of a brain-sized box."""
    corners = [np.asarray(BRAIN_CENTRE) + half_width * (2 * np.asarray(s) - 1) for s in np.ndindex(2, 2, 2)]
    return max(
        float(np.linalg.norm(np.subtract(estimate.TransformPoint(c.tolist()), truth.TransformPoint(c.tolist()))))
        for c in corners
    )


def linear_part(transform: sitk.Transform) -> np.ndarray:
    """The 3x3 matrix of a linear (rigid, affine or composite of those) transform, from its action on points."""
    origin = np.asarray(transform.TransformPoint((0.0, 0.0, 0.0)))
    return np.column_stack([np.subtract(transform.TransformPoint(tuple(e)), origin) for e in np.eye(3)])


def ball(reference: sitk.Image, centre: np.ndarray, radius_mm: float) -> sitk.Image:
    """A 0/1 sphere on `reference`'s grid."""
    size = reference.GetSize()
    index = np.stack(np.meshgrid(*[np.arange(n) for n in size], indexing="ij"), axis=-1).reshape(-1, 3)
    axes = np.asarray(reference.GetDirection()).reshape(3, 3) * np.asarray(reference.GetSpacing())
    world = np.asarray(reference.GetOrigin()) + index @ axes.T
    inside = (np.linalg.norm(world - centre, axis=1) < radius_mm).reshape(size).transpose(2, 1, 0)
    image = sitk.GetImageFromArray(inside.astype(np.uint8))
    image.CopyInformation(reference)
    return image
