"""AtlasResampler - reads: `image`, `transform`, `labelmap` (brain mask, atlas grid); writes: `image` (atlas grid).

Every role is resampled ONCE, from its own (bias-corrected) image onto the atlas grid, through the composite
atlas -> reference -> role; so the four channels handed to nnU-Net are voxel-aligned and interpolated once. The
reference's brain mask, brought to the atlas with nearest neighbour, zeroes everything outside the brain in all four.
"""

from __future__ import annotations

from dataclasses import dataclass

import SimpleITK as sitk

from aimi.brain.spaces import ATLAS, resample, to_atlas
from aimi.case import Case
from aimi.errors import CaseError
from aimi.module import Module

INTERPOLATORS = {"linear": sitk.sitkLinear, "bspline": sitk.sitkBSpline}


@dataclass(frozen=True)
class Settings:
    mask: str = "brain_mask"  # on the reference role's grid; empty: no masking
    grid: str = ATLAS  # label map whose grid is the atlas grid (written by AtlasRegistration)
    interpolator: str = "linear"

    def __post_init__(self) -> None:
        if self.interpolator not in INTERPOLATORS:
            raise ValueError(f"interpolator: {self.interpolator!r} is not one of {', '.join(INTERPOLATORS)}")


class AtlasResampler(Module):
    reads = ("image", "transform", "labelmap")
    writes = ("image",)
    Settings = Settings

    def __call__(self, case: Case) -> None:
        grid = case.labelmap(self.settings.grid)
        atlas = self._transform(case, ATLAS)
        brain = None
        if self.settings.mask:
            mask = case.labelmap(self.settings.mask)
            brain = resample(mask, grid, atlas, sitk.sitkNearestNeighbor, sitk.sitkUInt8) > 0
        interpolator = INTERPOLATORS[self.settings.interpolator]
        for role in list(case.images):
            composite = to_atlas(self._transform(case, role), atlas)
            image = resample(sitk.Cast(case.images[role], sitk.sitkFloat32), grid, composite, interpolator)
            case.images[role] = image if brain is None else sitk.Mask(image, sitk.Cast(brain, sitk.sitkUInt8))

    @staticmethod
    def _transform(case: Case, name: str) -> sitk.Transform:
        if name not in case.transforms:
            have = ", ".join(sorted(case.transforms)) or "none"
            raise CaseError(
                f"case {case.id}: no transform for {name!r} (have: {have}); run RigidRegistration and "
                "AtlasRegistration first"
            )
        return case.transforms[name]
