"""RigidRegistration: one rigid transform per role onto the reference role (reference point -> role point).

Each moving role (T1, T2, FLAIR) is registered rigidly to the reference role (T1c) with Mattes mutual information,
coarse to fine. Series of one session share the scanner frame, so the start is the identity rotating about the
reference's centre (`initializer: identity`); `moments` or `geometry` start from centred images instead. Images are
not resampled here: AtlasResampler applies every transform once, composed with the atlas transform.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import SimpleITK as sitk

from aimi.brain.registration import Schedule, register
from aimi.core.case import Case
from aimi.core.module import Module
from aimi.core.ports import IMAGES, MEASURED, TRANSFORMS, Port, ports
from aimi.errors import CaseError, one_line

INITIALIZERS = {
    "identity": None,
    "moments": sitk.CenteredTransformInitializerFilter.MOMENTS,
    "geometry": sitk.CenteredTransformInitializerFilter.GEOMETRY,
}


@dataclass(frozen=True)
class Settings:
    reference: str = "t1c"
    roles: list[str] = field(default_factory=list)  # moving roles; empty: every other role with an image
    initializer: str = "identity"
    shrink_factors: list[int] = field(default_factory=lambda: [4, 2, 1])
    smoothing_mm: list[float] = field(default_factory=lambda: [2.0, 1.0, 0.0])
    iterations: int = 100  # per level
    samples: int = 50_000  # metric samples per resolution level

    def __post_init__(self) -> None:
        if self.initializer not in INITIALIZERS:
            raise ValueError(f"initializer: {self.initializer!r} is not one of {', '.join(INITIALIZERS)}")
        if len(self.shrink_factors) != len(self.smoothing_mm):
            raise ValueError("shrink_factors and smoothing_mm need one entry per resolution level")
        if self.samples < 1000:
            raise ValueError(f"samples: {self.samples} is too few for a mutual-information metric (>= 1000)")

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.shrink_factors, self.smoothing_mm, self.iterations, self.samples)


def initial_rigid(fixed: sitk.Image, moving: sitk.Image, initializer: str) -> sitk.Euler3DTransform:
    """The starting transform: rotation centre at the fixed image's centre, translation as the initializer says."""
    mode = INITIALIZERS[initializer]
    if mode is not None:
        return sitk.CenteredTransformInitializer(fixed, moving, sitk.Euler3DTransform(), mode)
    transform = sitk.Euler3DTransform()
    centre = fixed.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in fixed.GetSize()])
    transform.SetCenter(centre)
    return transform


def register_rigid(fixed: sitk.Image, moving: sitk.Image, settings: Settings) -> tuple[sitk.Transform, float]:
    return register(fixed, moving, initial_rigid(fixed, moving, settings.initializer), settings.schedule)


class RigidRegistration(Module):
    inputs = ports(images=Port(IMAGES, "the volumes to register, by role", "images"))
    outputs = ports(
        transforms=Port(TRANSFORMS, "per role: reference-role point -> that role's point (identity for the "
                        "reference)", "to_reference"),
        measurements=MEASURED,
    )
    Settings = Settings

    def __call__(self, case: Case) -> None:
        reference = self.settings.reference
        images = self.read(case, "images")
        if reference not in images:
            raise CaseError(f"case {case.id}: no {reference!r} image to register the other series to")
        fixed = images[reference]
        transforms: dict[str, sitk.Transform] = {reference: sitk.Euler3DTransform()}
        metrics = {}
        for role in self.settings.roles or [r for r in images if r != reference]:
            if role not in images:
                raise CaseError(f"case {case.id}: RigidRegistration.roles names {role!r}, which has no image")
            try:
                transforms[role], metrics[role] = register_rigid(fixed, images[role], self.settings)
            except RuntimeError as error:  # SimpleITK: too few slices to smooth, no overlap, a blank image...
                raise CaseError(f"case {case.id}: registering {role!r} to {reference!r}: {one_line(error)}") from None
        self.write(case, "transforms", transforms)
        self.write(case, "measurements", {self.name: {"reference": reference, "metric": metrics}})
