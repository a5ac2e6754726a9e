"""A synthetic four-series study (Colin27 seen after known motions, on axial, sagittal, coronal and oblique grids):
rigid registration recovers the motions, the four channels on the atlas grid are voxel-aligned, the atlas
registration of the real ch2 brain to MNI152 is right, and atlas labels land on each series' own anatomy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from aimi.brain import atlas_registration, atlas_resampler, labels_to_series, rigid_registration
from aimi.brain.atlas_registration import AtlasRegistration
from aimi.brain.atlas_resampler import AtlasResampler
from aimi.brain.labels_to_series import LabelsToSeries
from aimi.brain.rigid_registration import RigidRegistration
from aimi.brain.spaces import ATLAS, resample
from aimi.core.case import MAIN, Case
from aimi.errors import CaseError, ConfigError
from aimi.labelmaps import dice
from tests.brain.studies import (
    AXIAL,
    BRAIN_CENTRE,
    CORONAL,
    SAGITTAL,
    TEMPLATES,
    Study,
    ball,
    centroid,
    context,
    grid,
    linear_part,
    motion,
    read,
    rotation,
    study,
)

BLOB = 400.0  # brighter than anything in ch2 (uint8), in every contrast
ATLAS_MM = 2.0
GRIDS = {
    "t1c": grid((90, 100, 80), (2.0, 2.0, 2.0), AXIAL),
    "t1": grid((130, 120, 60), (1.6, 1.6, 3.0), SAGITTAL),
    "t2": grid((124, 120, 52), (1.5, 1.5, 4.0), CORONAL @ rotation((0.0, 0.0, 12.0))),
    "flair": grid((112, 124, 42), (1.8, 1.8, 4.5), AXIAL @ rotation((15.0, -8.0, 5.0))),
}
MOTIONS = {
    "t1c": motion((2.0, -3.0, 4.0), (3.0, -2.0, 5.0)),
    "t1": motion((6.0, -4.0, 8.0), (7.0, -5.0, 9.0)),
    "t2": motion((-5.0, 3.0, -6.0), (-6.0, 8.0, 4.0)),
    "flair": motion((4.0, 6.0, -3.0), (5.0, 6.0, -8.0)),
}


def contrasts(ch2: sitk.Image) -> dict[str, sitk.Image]:
    """Four contrasts of ch2 at 2 mm (T2 inverts it, FLAIR compresses it), each with the same bright blob."""
    anatomy_grid = grid((96, 112, 96), (2.0, 2.0, 2.0), AXIAL)
    t1 = resample(ch2, anatomy_grid, sitk.Euler3DTransform(), sitk.sitkLinear)
    t2 = 255.0 - t1
    flair = sitk.Sqrt(t1) * 16.0
    blob = sitk.Cast(ball(anatomy_grid, np.add(BRAIN_CENTRE, (25.0, 10.0, 15.0)), 9.0), sitk.sitkFloat32)
    images = {"t1c": t1, "t1": t1, "t2": t2, "flair": flair}
    return {role: image * (1.0 - blob) + blob * BLOB for role, image in images.items()}


@pytest.fixture(scope="module")
def synthetic(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Study:
    """The study through RigidRegistration, AtlasRegistration (brain mask from ch2bet, moved like t1c) and
    AtlasResampler; `original` keeps the series images as acquired."""
    ch2 = read(shared_data / TEMPLATES / "ch2.nii.gz")
    result = study(contrasts(ch2), GRIDS, MOTIONS)
    case, ctx = result.case, context(tmp_path_factory.mktemp("study"))
    bet = read(shared_data / TEMPLATES / "ch2bet.nii.gz", sitk.sitkUInt8) > 0
    case.artifacts["brain_mask"] = resample(bet, GRIDS["t1c"], MOTIONS["t1c"], sitk.sitkNearestNeighbor)
    result.original = dict(case.artifacts["images"])
    RigidRegistration(rigid_registration.Settings(), ctx)(case)
    coarse = atlas_registration.Settings(spacing_mm=ATLAS_MM, shrink_factors=[4, 2], smoothing_mm=[2.0, 1.0])
    AtlasRegistration(coarse, ctx)(case)
    result.before_resampling = dict(case.artifacts["images"])
    AtlasResampler(atlas_resampler.Settings(), ctx)(case)
    return result


@pytest.mark.parametrize("role", ["t1", "t2", "flair"])
def test_rigid_registration_recovers_known_motion(synthetic: Study, role: str) -> None:
    """Sagittal, coronal and oblique series of other contrasts back onto the axial T1c within 1 mm and 1 degree."""
    estimate, truth = synthetic.case.artifacts["to_reference"][role], synthetic.true_transform(role)
    shift = np.linalg.norm(np.subtract(estimate.TransformPoint(BRAIN_CENTRE), truth.TransformPoint(BRAIN_CENTRE)))
    residual = linear_part(estimate) @ linear_part(truth).T
    angle = np.degrees(np.arccos(np.clip((np.trace(residual) - 1) / 2, -1.0, 1.0)))
    metric = synthetic.case.artifacts["measurements"]["RigidRegistration"]["metric"][role]
    print(f"{role}: {shift:.2f} mm, {angle:.2f} degrees off (Mattes MI {metric:.3f})")
    assert shift < 1.0 and angle < 1.0


def test_ch2_brain_registers_affinely_to_mni152(synthetic: Study) -> None:
    measured = synthetic.case.artifacts["measurements"]["AtlasRegistration"]
    print(f"ch2 -> MNI152: brain-mask Dice {measured['mask_dice']:.3f}, scale {measured['scale']:.3f}")
    assert measured["mask_dice"] >= 0.88  # ch2bet and the MNI152 mask draw the brain edge differently
    assert 0.9 < measured["scale"] < 1.1  # Colin27 and ICBM152 are both MNI-space heads


def shifted_correlations(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> dict[tuple[int, int, int], float]:
    """Correlation of `a` with `b` moved by zero or one voxel along each axis, inside `mask`."""
    shifts = [(0, 0, 0)] + [tuple(int(v) for v in d * s) for d in np.eye(3, dtype=int) for s in (-1, 1)]
    inner = mask[1:-1, 1:-1, 1:-1]
    moved = {shift: np.roll(b, shift, axis=(0, 1, 2))[1:-1, 1:-1, 1:-1] for shift in shifts}
    return {shift: np.corrcoef(a[1:-1, 1:-1, 1:-1][inner], m[inner])[0, 1] for shift, m in moved.items()}


def test_a_registration_below_the_mask_overlap_bar_fails_the_case(synthetic: Study, tmp_path: Path) -> None:
    strict = atlas_registration.Settings(spacing_mm=4.0, shrink_factors=[4], smoothing_mm=[2.0], min_mask_dice=0.99)
    case = Case("strict", synthetic.case.series, artifacts={"images": {"t1c": synthetic.before_resampling["t1c"]}})
    case.artifacts["brain_mask"] = synthetic.case.artifacts["brain_mask"]
    with pytest.raises(CaseError, match=r"atlas registration of series .* failed: .* Dice"):
        AtlasRegistration(strict, context(tmp_path))(case)
    assert "atlas_transform" not in case.artifacts
    with pytest.raises(ConfigError, match="no-such-template"):
        AtlasRegistration(atlas_registration.Settings(template="no-such-template.nii.gz"), context(tmp_path))


def test_four_channels_are_voxel_aligned_on_the_atlas_grid(synthetic: Study) -> None:
    """Same grid; the blob at one place in all four; each channel matches, without a voxel's offset, its contrast
    taken straight from the anatomy through T1c's true motion and the atlas transform (not through its series)."""
    case = synthetic.case
    images, grid_image = case.artifacts["atlas_images"], case.artifacts[ATLAS]
    for image in images.values():
        assert image.GetSize() == grid_image.GetSize()
        assert np.allclose(image.GetOrigin(), grid_image.GetOrigin())
        assert np.allclose(image.GetSpacing(), ATLAS_MM)
    centres = {role: centroid(image, BLOB * 0.75) for role, image in images.items()}
    spread = max(np.linalg.norm(c - centres["t1c"]) for c in centres.values())
    print(f"blob centroids within {spread:.2f} mm of T1c's")
    assert spread < ATLAS_MM / 2
    brain = sitk.GetArrayFromImage(images["t1c"]) > 0
    truth = sitk.CompositeTransform([synthetic.motions["t1c"], case.artifacts["atlas_transform"]])
    for role, image in images.items():
        expected = resample(synthetic.anatomy[role], grid_image, truth, sitk.sitkLinear)
        correlations = shifted_correlations(sitk.GetArrayFromImage(expected), sitk.GetArrayFromImage(image), brain)
        best = max(correlations, key=correlations.__getitem__)
        print(f"{role}: correlation with the expected channel {correlations[(0, 0, 0)]:.4f}, best at shift {best}")
        assert best == (0, 0, 0)
        assert correlations[(0, 0, 0)] > 0.95
    outside = sitk.GetArrayFromImage(images["t2"])[~brain]
    assert not outside.any(), "the brain mask is not applied to every channel"


def test_atlas_labels_land_on_each_series_own_anatomy(synthetic: Study, tmp_path: Path) -> None:
    """The blob segmented once in atlas space goes back onto each original series grid, onto that series' blob."""
    case = synthetic.case
    case.artifacts[MAIN] = sitk.Cast(case.artifacts["atlas_images"]["t1c"] > BLOB * 0.75, sitk.sitkUInt8)
    LabelsToSeries(labels_to_series.Settings(), context(tmp_path))(case)
    for role, image in synthetic.original.items():
        labels = case.artifacts["series_labels"][role]
        assert labels.GetSize() == image.GetSize() and np.allclose(labels.GetOrigin(), image.GetOrigin())
        overlap = dice(labels, image > BLOB * 0.75)
        print(f"{role}: atlas label vs the series' own blob, Dice {overlap:.3f}")
        assert overlap > 0.8
    assert case.artifacts["images"] is not case.artifacts["atlas_images"]  # the series-grid images stay for QC


def test_a_series_registration_cannot_use_fails_its_case_naming_the_role_and_what_itk_said(tmp_path: Path) -> None:
    """Three slices cannot be smoothed at the coarse levels: the reason names the role and ITK's cause, not the
    source location SimpleITK puts on its first line."""
    reference = sitk.GaussianSource(sitk.sitkFloat32, [40, 40, 40], sigma=[8.0] * 3, mean=[20.0] * 3, scale=500.0)
    thin = sitk.GaussianSource(sitk.sitkFloat32, [40, 40, 3], sigma=[8.0, 8.0, 2.0], mean=[20.0, 20.0, 1.0],
                               scale=500.0)
    case = Case("thin", {}, artifacts={"images": {"t1c": reference, "flair": thin}})
    with pytest.raises(CaseError, match=r"case thin: registering 'flair' to 't1c': RuntimeError: .*less than 4") \
            as error:
        RigidRegistration(rigid_registration.Settings(), context(tmp_path))(case)
    assert "/" not in str(error.value).split("RuntimeError")[1]  # no build path
