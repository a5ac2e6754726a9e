"""N4 removes a known smooth bias field, intensities only, also on a series of a few thick slices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from aimi.brain.bias_field_corrector import BiasFieldCorrector, Settings
from aimi.brain.spaces import resample
from aimi.core.case import Case
from tests.brain.studies import AXIAL, TEMPLATES, context, grid, read


def test_n4_flattens_a_known_bias_on_thick_slices(shared_data: Path, tmp_path: Path) -> None:
    """ch2 on 12 axial slices of 8 mm times a 1.6-fold ramp: N4 gives nearly what it gives without the ramp."""
    ch2 = read(shared_data / TEMPLATES / "ch2.nii.gz")
    thick = grid((90, 108, 12), (2.0, 2.0, 8.0), AXIAL)
    truth = resample(ch2, thick, sitk.Euler3DTransform(), sitk.sitkLinear)
    x = sitk.GetArrayFromImage(
        sitk.PhysicalPointSource(
            sitk.sitkVectorFloat32, thick.GetSize(), thick.GetOrigin(), thick.GetSpacing(), thick.GetDirection()
        )
    )[..., 0]
    bias = np.exp(0.47 * (x - x.min()) / np.ptp(x)).astype(np.float32)  # 1.0 at the right, 1.6 at the left
    biased = sitk.GetImageFromArray(sitk.GetArrayFromImage(truth) * bias)
    biased.CopyInformation(thick)
    corrector = BiasFieldCorrector(Settings(), context(tmp_path))
    case = Case("bias", {}, artifacts={"images": {"biased": biased, "unbiased": truth}})
    corrector(case)
    corrected = case.artifacts["images"]["biased"]
    assert corrected.GetSize() == thick.GetSize() and np.allclose(corrected.GetOrigin(), thick.GetOrigin())

    head = sitk.GetArrayFromImage(truth) > 40
    before = sitk.GetArrayFromImage(biased)[head] / sitk.GetArrayFromImage(truth)[head]
    # N4 also evens out the anatomy's own shading, so compare with N4 of the unbiased image
    after = sitk.GetArrayFromImage(corrected)[head] / sitk.GetArrayFromImage(case.artifacts["images"]["unbiased"])[head]
    spread = {name: float(np.std(v) / np.mean(v)) for name, v in (("before", before), ("after", after))}
    print(
        f"biased/unbiased ratio in the head, coefficient of variation: {spread['before']:.3f} -> {spread['after']:.3f}"
    )
    assert spread["after"] < 0.3 * spread["before"]
