"""AtlasRegistration: the reference role registered to the atlas template (affine), and the atlas grid.

The skull-stripped reference role (T1c) is registered to the brain-masked template: a similarity stage (rotation,
translation, one scale) from centred brain masses, then a full affine from there. The transform maps atlas
points to reference points; the grid is the template's brain mask on the output grid (`spacing_mm`), the grid
AtlasResampler puts every contrast on. The template `mni152` is nilearn's bundled MNI ICBM152 2009a. A
registration whose brain mask, carried to the atlas, overlaps the template's brain mask less than `min_mask_dice`
fails the case rather than handing nnU-Net a brain in the wrong place.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import SimpleITK as sitk

from aimi.brain.registration import Schedule, register
from aimi.brain.spaces import ATLAS, resample
from aimi.brain.template import MNI152, grid_at, load_template, on_grid
from aimi.core.case import Case
from aimi.core.context import RunContext
from aimi.core.module import Module
from aimi.core.ports import GRID, IMAGES, LABELMAP, MEASURED, TRANSFORM, Port, ports
from aimi.errors import CaseError, ConfigError
from aimi.labelmaps import dice


@dataclass(frozen=True)
class Settings:
    reference: str = "t1c"
    template: str = MNI152  # or a NIfTI path
    template_mask: str = ""  # brain mask NIfTI of a path template; mni152 brings its own
    spacing_mm: float = 1.0  # voxel size of the atlas grid handed to nnU-Net
    shrink_factors: list[int] = field(default_factory=lambda: [4, 2, 1])
    smoothing_mm: list[float] = field(default_factory=lambda: [2.0, 1.0, 0.0])
    iterations: int = 100  # per level and stage
    samples: int = 50_000  # metric samples per resolution level
    min_mask_dice: float = 0.7  # the case fails when the brain mask, in the atlas, overlaps the template's less

    def __post_init__(self) -> None:
        if self.spacing_mm <= 0:
            raise ValueError(f"spacing_mm: {self.spacing_mm} must be positive")
        if len(self.shrink_factors) != len(self.smoothing_mm):
            raise ValueError("shrink_factors and smoothing_mm need one entry per resolution level")
        if not 0.0 <= self.min_mask_dice < 1.0:
            raise ValueError(f"min_mask_dice: {self.min_mask_dice} must be in [0, 1)")
        if self.samples < 1000:
            raise ValueError(f"samples: {self.samples} is too few for a mutual-information metric (>= 1000)")

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.shrink_factors, self.smoothing_mm, self.iterations, self.samples)


def skull_stripped(image: sitk.Image, mask: sitk.Image) -> sitk.Image:
    return sitk.Mask(sitk.Cast(image, sitk.sitkFloat32), sitk.Cast(mask > 0, sitk.sitkUInt8))


def register_affine(
    template: sitk.Image, template_mask: sitk.Image | None, brain: sitk.Image, schedule: Schedule
) -> tuple[sitk.AffineTransform, float]:
    """Atlas point -> subject point: similarity from centred masses, then affine; template brain masked.

    The similarity stage runs on all levels but the finest, the affine one on all but the coarsest: twelve degrees of
    freedom on the coarsest level (a few thousand brain voxels) can shear the brain into a degenerate fit.
    """
    fixed = template if template_mask is None else sitk.Mask(template, template_mask)
    start = sitk.CenteredTransformInitializer(
        fixed, brain, sitk.Similarity3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS
    )
    levels = len(schedule.shrink_factors)
    coarse, fine = (slice(0, max(1, levels - 1)), slice(min(1, levels - 1), levels))
    similarity, _ = register(fixed, brain, start, _levels(schedule, coarse), fixed_mask=template_mask)
    affine = sitk.AffineTransform(3)
    affine.SetCenter(similarity.GetCenter())
    affine.SetMatrix(similarity.GetMatrix())
    affine.SetTranslation(similarity.GetTranslation())
    fitted, metric = register(fixed, brain, affine, _levels(schedule, fine), fixed_mask=template_mask)
    return fitted, metric


def _levels(schedule: Schedule, levels: slice) -> Schedule:
    return replace(schedule, shrink_factors=schedule.shrink_factors[levels], smoothing_mm=schedule.smoothing_mm[levels])


class AtlasRegistration(Module):
    inputs = ports(
        images=Port(IMAGES, "the volumes, by role; the reference role's is registered", "images"),
        mask=Port(LABELMAP, "the brain mask on the reference role's grid", "brain_mask"),
    )
    outputs = ports(
        transform=Port(TRANSFORM, "atlas point -> reference-role point (affine)", "atlas_transform"),
        grid=Port(GRID, "the atlas grid: the template's brain mask at spacing_mm", ATLAS),
        measurements=MEASURED,
    )
    Settings = Settings

    def __init__(self, settings: Settings, context: RunContext) -> None:
        """The template is loaded (and checked) once per run, before the first case."""
        super().__init__(settings, context)
        try:
            self.template, self.template_mask = load_template(settings.template, settings.template_mask)
        except (FileNotFoundError, RuntimeError) as error:
            raise ConfigError(f"AtlasRegistration.template: {error}") from None
        self.grid = grid_at(self.template, settings.spacing_mm)
        mask = self.template_mask
        self.atlas_mask = self.grid if mask is None else on_grid(mask, self.grid, sitk.sitkNearestNeighbor)

    def __call__(self, case: Case) -> None:
        s = self.settings
        images = self.read(case, "images")
        if s.reference not in images:
            raise CaseError(f"case {case.id}: no {s.reference!r} image to register to the atlas")
        mask = self.read(case, "mask")
        brain = skull_stripped(images[s.reference], mask)
        transform, metric = register_affine(self.template, self.template_mask, brain, s.schedule)
        brain_in_atlas = resample(mask, self.grid, transform, sitk.sitkNearestNeighbor, sitk.sitkUInt8)
        overlap = dice(brain_in_atlas, self.atlas_mask) if self.template_mask is not None else None
        self.write(case, "measurements", {self.name: {
            "metric": metric,
            "scale": float(abs(np.linalg.det(np.asarray(transform.GetMatrix()).reshape(3, 3)))) ** (1 / 3),
            "mask_dice": overlap,
        }})
        if overlap is not None and overlap < s.min_mask_dice:
            series = case.series[s.reference].series_uid if s.reference in case.series else s.reference
            raise CaseError(
                f"case {case.id}: atlas registration of series {series} failed: its brain mask overlaps the "
                f"template's with Dice {overlap:.2f} < {s.min_mask_dice} (brain extraction or registration went wrong)"
            )
        self.write(case, "transform", transform)
        self.write(case, "grid", sitk.Cast(self.atlas_mask, sitk.sitkUInt8))
