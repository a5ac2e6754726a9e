"""The atlas template: nilearn's bundled MNI ICBM152 2009a (no download) or a NIfTI path, and its output grid."""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from aimi.brain.spaces import from_nibabel, resample

MNI152 = "mni152"


@lru_cache(maxsize=4)
def load_template(name: str, mask: str = "") -> tuple[sitk.Image, sitk.Image | None]:
    """(template T1, brain mask or None) in physical space; `mni152` ships in the nilearn wheel (1 mm)."""
    if name == MNI152:
        from nilearn.datasets import load_mni152_brain_mask, load_mni152_template

        template = from_nibabel(load_mni152_template(resolution=1))
        brain = from_nibabel(load_mni152_brain_mask(resolution=1), sitk.sitkUInt8)
        return template, brain
    path = Path(name)
    if not path.is_file():
        raise FileNotFoundError(f"atlas template {name!r} is neither {MNI152!r} nor a NIfTI file")
    template = sitk.ReadImage(str(path), sitk.sitkFloat32)
    brain = sitk.ReadImage(mask, sitk.sitkUInt8) if mask else None
    return template, brain


def grid_at(image: sitk.Image, spacing_mm: float) -> sitk.Image:
    """An empty grid covering the same box as `image` (outer corners kept) with isotropic `spacing_mm` voxels."""
    old = np.asarray(image.GetSpacing(), float)
    extent = old * np.asarray(image.GetSize())
    size = [max(1, math.ceil(e / spacing_mm - 1e-6)) for e in extent]
    direction = np.asarray(image.GetDirection(), float).reshape(3, 3)
    corner = np.asarray(image.GetOrigin(), float) - direction @ (old / 2)
    grid = sitk.Image(size, sitk.sitkUInt8)
    grid.SetSpacing([spacing_mm] * 3)
    grid.SetDirection(image.GetDirection())
    grid.SetOrigin([float(v) for v in corner + direction @ np.full(3, spacing_mm / 2)])
    return grid


def on_grid(image: sitk.Image, grid: sitk.Image, interpolator: int) -> sitk.Image:
    return resample(image, grid, sitk.Transform(3, sitk.sitkIdentity), interpolator)
