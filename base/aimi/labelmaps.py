"""Label-map helpers shared by the post-processing modules: array views and connected components."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

#: 26-neighbourhood: voxels touching by a corner belong to one component (removes the fewest voxels).
FULL_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)


def to_array(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image)


def from_array(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(np.ascontiguousarray(array, dtype=np.uint8))
    image.CopyInformation(reference)
    return image


def mask_of(array: np.ndarray, labels: Iterable[int]) -> np.ndarray:
    return np.isin(array, list(labels))


def components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Component index per voxel (0 outside) and the voxel count of each component, index 1 first."""
    indices, count = ndimage.label(mask, structure=FULL_CONNECTIVITY)
    sizes = np.bincount(indices.ravel(), minlength=count + 1)[1:]
    return indices, sizes
