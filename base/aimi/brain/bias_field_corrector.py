"""BiasFieldCorrector: N4 bias-field correction of each role's volume (same grid, intensities only).

SimpleITK N4 per role: fitted on a shrunk copy inside an Otsu head mask (as N4's own tools do), the bias field then
evaluated at full resolution and divided out, so that no voxel is resampled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import SimpleITK as sitk

from aimi.core.case import Case
from aimi.core.module import Module
from aimi.core.ports import IMAGES, Port, ports
from aimi.errors import CaseError

#: Fewest voxels an axis keeps after shrinking, so that a series of few thick slices still has a field to fit.
MIN_SHRUNK_VOXELS = 8


@dataclass(frozen=True)
class Settings:
    roles: list[str] = field(default_factory=list)  # empty: every role with an image
    shrink_factor: int = 4
    iterations: list[int] = field(default_factory=lambda: [50, 50, 30, 20])  # one entry per fitting level

    def __post_init__(self) -> None:
        if self.shrink_factor < 1:
            raise ValueError(f"shrink_factor: {self.shrink_factor} must be >= 1")
        if not self.iterations or min(self.iterations) < 1:
            raise ValueError(f"iterations: {self.iterations} must list at least one positive count")


def n4(image: sitk.Image, shrink_factor: int, iterations: list[int]) -> sitk.Image:
    """The image divided by its N4 bias field; negative values (interpolation undershoot) are clipped to 0."""
    image = sitk.Threshold(sitk.Cast(image, sitk.sitkFloat32), 0.0, float("inf"), 0.0)
    mask = sitk.OtsuThreshold(image, 0, 1, 200)
    shrink = [max(1, min(shrink_factor, size // MIN_SHRUNK_VOXELS)) for size in image.GetSize()]  # thick slices
    corrector = sitk.N4BiasFieldCorrectionImageFilter()
    corrector.SetMaximumNumberOfIterations(list(iterations))
    corrector.Execute(sitk.Shrink(image, shrink), sitk.Shrink(mask, shrink))
    log_bias = corrector.GetLogBiasFieldAsImage(image)
    return sitk.Cast(image / sitk.Exp(log_bias), sitk.sitkFloat32)


class BiasFieldCorrector(Module):
    inputs = ports(images=Port(IMAGES, "the volumes to correct, by role", "images"))
    outputs = ports(images=Port(IMAGES, "the corrected volumes; by default in place", "images", follows="images"))
    Settings = Settings

    def __call__(self, case: Case) -> None:
        images = dict(self.read(case, "images"))
        for role in self.settings.roles or list(images):
            if role not in images:
                raise CaseError(f"case {case.id}: BiasFieldCorrector.roles names {role!r}, which has no image")
            try:
                images[role] = n4(images[role], self.settings.shrink_factor, self.settings.iterations)
            except RuntimeError as error:
                series = case.series[role].series_uid if role in case.series else role
                raise CaseError(f"case {case.id}: N4 bias correction of series {series} failed: {error}") from None
        self.write(case, "images", images)
