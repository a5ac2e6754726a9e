"""ComponentSizeFilter: connected components whose size is out of bounds become background.

Removes connected components of `labels` whose size is out of bounds (their voxels become background):
- the longest diameter in the patient's axial plane, in mm, in physical space (lung nodules: 3 to 30 mm), and/or
- the volume in mm^3 (breast tumors: a minimum volume).

The diameter is the largest distance between the corners of the component's voxels projected onto the axial
(x-y) plane of the patient coordinate system: the physical extent of what was segmented, independent of the
acquisition's orientation and of anisotropic slice spacing.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, field
from itertools import product

import numpy as np
import SimpleITK as sitk
from scipy.spatial import ConvexHull, QhullError

from aimi.core.case import Case
from aimi.core.ports import EDITED_LABELS, MEASURED, ports
from aimi.labelmaps import components, mask_of
from aimi.postprocess.label_editor import LabelMapEditor

CORNERS = np.array(list(product((-0.5, 0.5), repeat=3)))


@dataclass(frozen=True)
class Settings:
    labels: list[int] = field(default_factory=list)
    min_diameter_mm: float = 0.0
    max_diameter_mm: float | None = None
    min_volume_mm3: float = 0.0

    def __post_init__(self) -> None:
        if not self.labels:
            raise ValueError("labels: name the label values to filter, e.g. [2]")
        if self.max_diameter_mm is not None and self.max_diameter_mm < self.min_diameter_mm:
            raise ValueError(f"max_diameter_mm {self.max_diameter_mm} is below min_diameter_mm {self.min_diameter_mm}")


def axial_diameter_mm(voxels_zyx: np.ndarray, image: sitk.Image) -> float:
    """Longest distance between voxel corners of one component, projected onto the patient axial plane."""
    index_xyz = voxels_zyx[:, ::-1].astype(float)
    corners = (index_xyz[:, None, :] + CORNERS[None, :, :]).reshape(-1, 3)
    matrix = np.asarray(image.GetDirection()).reshape(3, 3) * np.asarray(image.GetSpacing())
    points = (np.asarray(image.GetOrigin()) + corners @ matrix.T)[:, :2]
    points = np.unique(np.round(points, 6), axis=0)
    with suppress(QhullError):  # degenerate hull: keep every point
        points = points[ConvexHull(points).vertices]
    differences = points[:, None, :] - points[None, :, :]
    return float(np.sqrt((differences**2).sum(axis=-1)).max())


def filter_components(array: np.ndarray, image: sitk.Image, settings: Settings) -> tuple[np.ndarray, list[dict]]:
    """The filtered label array and, per component, its measured size and whether it was kept."""
    indices, sizes = components(mask_of(array, settings.labels))
    voxel_volume = float(np.prod(image.GetSpacing()))
    result = array.copy()
    measured = []
    for number, voxels in enumerate(_voxels_by_component(indices, len(sizes)), start=1):
        diameter = axial_diameter_mm(voxels, image)
        volume = sizes[number - 1] * voxel_volume
        keep = diameter >= settings.min_diameter_mm and volume >= settings.min_volume_mm3 and (
            settings.max_diameter_mm is None or diameter <= settings.max_diameter_mm)
        if not keep:
            result[tuple(voxels.T)] = 0
        measured.append({"diameter_mm": round(diameter, 3), "volume_mm3": round(volume, 3), "kept": keep})
    return result, measured


def _voxels_by_component(indices: np.ndarray, count: int) -> list[np.ndarray]:
    coordinates = np.argwhere(indices > 0)
    owners = indices[tuple(coordinates.T)]
    order = np.argsort(owners, kind="stable")
    bounds = np.searchsorted(owners[order], np.arange(1, count + 2))
    return [coordinates[order[bounds[i]:bounds[i + 1]]] for i in range(count)]


class ComponentSizeFilter(LabelMapEditor):
    outputs = ports(labels=EDITED_LABELS, measurements=MEASURED)
    Settings = Settings

    def edit(self, case: Case, array: np.ndarray, image: sitk.Image) -> np.ndarray:
        result, measured = filter_components(array, image, self.settings)
        self.write(case, "measurements", {self.name: measured})
        return result
