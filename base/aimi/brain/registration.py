"""One configured SimpleITK registration (Mattes mutual information, multi-resolution) for rigid and affine stages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import SimpleITK as sitk

#: Fixed sampling seed: the same inputs register to the same transform on every run.
SEED = 20240601


@dataclass(frozen=True)
class Schedule:
    """How hard to work at each resolution level (shrink factors and smoothing in mm, coarse to fine)."""

    shrink_factors: Sequence[int] = (4, 2, 1)
    smoothing_mm: Sequence[float] = (2.0, 1.0, 0.0)
    iterations: int = 100
    samples: int = 50_000  # metric samples per level: the cost does not grow with the image
    bins: int = 50


def register(
    fixed: sitk.Image,
    moving: sitk.Image,
    initial: sitk.Transform,
    schedule: Schedule,
    fixed_mask: sitk.Image | None = None,
    moving_mask: sitk.Image | None = None,
) -> tuple[sitk.Transform, float]:
    """Optimise `initial` (fixed point -> moving point); returns the fitted transform and the final metric value."""
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=schedule.bins)
    method.SetMetricSamplingStrategy(method.RANDOM)
    voxels = [fixed.GetNumberOfPixels() / factor ** fixed.GetDimension() for factor in schedule.shrink_factors]
    method.SetMetricSamplingPercentagePerLevel([min(1.0, schedule.samples / v) for v in voxels], SEED)
    if fixed_mask is not None:
        method.SetMetricFixedMask(fixed_mask)
    if moving_mask is not None:
        method.SetMetricMovingMask(moving_mask)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0,
        minStep=1e-4,
        numberOfIterations=schedule.iterations,
        relaxationFactor=0.6,
        gradientMagnitudeTolerance=1e-6,
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(schedule.shrink_factors))
    method.SetSmoothingSigmasPerLevel(list(schedule.smoothing_mm))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetInitialTransform(initial, inPlace=False)
    result = method.Execute(sitk.Cast(fixed, sitk.sitkFloat32), sitk.Cast(moving, sitk.sitkFloat32))
    return _plain(result), float(method.GetMetricValue())


def _plain(transform: sitk.Transform) -> sitk.Transform:
    """Execute wraps the result in a composite; unwrap a single transform so that it keeps its own type."""
    if isinstance(transform, sitk.CompositeTransform) and transform.GetNumberOfTransforms() == 1:
        return transform.GetNthTransform(0).Downcast()
    return transform.Downcast()
