"""Label-map helpers shared by the post-processing modules, registration checks, the test-model builder and
evaluation: array views, connected components and the one Dice."""

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


def dice(a: np.ndarray | sitk.Image, b: np.ndarray | sitk.Image) -> float:
    """2|A∩B| / (|A| + |B|) of two masks on one grid (non-zero is inside); 1.0 when both are empty."""
    x, y = (sitk.GetArrayViewFromImage(m) if isinstance(m, sitk.Image) else np.asarray(m) for m in (a, b))
    if x.shape != y.shape:
        raise ValueError(f"masks of shapes {x.shape} and {y.shape}: resample one onto the other's grid first")
    x, y = x != 0, y != 0
    total = int(x.sum()) + int(y.sum())
    return 2.0 * int((x & y).sum()) / total if total else 1.0
