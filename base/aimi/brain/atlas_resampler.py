"""AtlasResampler: every role's volume on the atlas grid, masked to the brain - what nnU-Net sees.

Every role is resampled ONCE, from its own (bias-corrected) image onto the atlas grid, through the composite
atlas -> reference -> role; so the four channels handed to nnU-Net are voxel-aligned and interpolated once. The
reference's brain mask, brought to the atlas with nearest neighbour, zeroes everything outside the brain in all four.
"""

from __future__ import annotations

from dataclasses import dataclass

import SimpleITK as sitk

from aimi.brain.spaces import ATLAS, ATLAS_TRANSFORM_PORT, ROLE_TRANSFORMS_PORT, resample, to_atlas
from aimi.core.case import Case
from aimi.core.module import Module
from aimi.core.ports import GRID, IMAGES, LABELMAP, Port, ports
from aimi.errors import CaseError

INTERPOLATORS = {"linear": sitk.sitkLinear, "bspline": sitk.sitkBSpline}


@dataclass(frozen=True)
class Settings:
    interpolator: str = "linear"

    def __post_init__(self) -> None:
        if self.interpolator not in INTERPOLATORS:
            raise ValueError(f"interpolator: {self.interpolator!r} is not one of {', '.join(INTERPOLATORS)}")


class AtlasResampler(Module):
    inputs = ports(
        images=Port(IMAGES, "the volumes on their own series grids, by role", "images"),
        transforms=ROLE_TRANSFORMS_PORT,
        atlas_transform=ATLAS_TRANSFORM_PORT,
        grid=Port(GRID, "the atlas grid", ATLAS),
        mask=Port(LABELMAP, "the brain mask on the reference role's grid; without it nothing is masked",
                  "brain_mask", optional=True),
    )
    outputs = ports(images=Port(IMAGES, "every role on the atlas grid, masked to the brain", "atlas_images"))
    Settings = Settings

    def __call__(self, case: Case) -> None:
        grid = self.read(case, "grid")
        atlas = self.read(case, "atlas_transform")
        transforms = self.read(case, "transforms")
        mask = self.read(case, "mask")
        brain = None if mask is None else resample(mask, grid, atlas, sitk.sitkNearestNeighbor, sitk.sitkUInt8) > 0
        interpolator = INTERPOLATORS[self.settings.interpolator]
        resampled = {}
        for role, image in self.read(case, "images").items():
            if role not in transforms:
                raise CaseError(f"case {case.id}: no transform for role {role!r} (have: {', '.join(transforms)})")
            composite = to_atlas(transforms[role], atlas)
            image = resample(sitk.Cast(image, sitk.sitkFloat32), grid, composite, interpolator)
            resampled[role] = image if brain is None else sitk.Mask(image, sitk.Cast(brain, sitk.sitkUInt8))
        self.write(case, "images", resampled)
