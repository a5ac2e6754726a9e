"""Spaces and transforms of the brain chain: LPS/RAS hand-over, ITK's composite order, and the exact inverse."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from aimi.brain.labels_to_series import LabelsToSeries, Settings
from aimi.brain.rigid_registration import initial_rigid
from aimi.brain.spaces import affine_of, from_atlas, from_nibabel, resample, to_atlas, to_nibabel
from aimi.core.case import MAIN, Case
from tests.brain.studies import AXIAL, SAGITTAL, context, grid, motion, rotation, series_of


def oblique_image() -> sitk.Image:
    image = grid((20, 24, 12), (1.1, 0.9, 3.0), SAGITTAL @ rotation((7.0, -4.0, 11.0)))
    values = np.arange(image.GetNumberOfPixels(), dtype=np.float32).reshape(12, 24, 20)
    result = sitk.GetImageFromArray(values)
    result.CopyInformation(image)
    return result


def labels_on(reference: sitk.Image) -> sitk.Image:
    """Three nested ellipsoid labels (1 < 2 < 3 inside each other) drawn in `reference`'s physical space."""
    points = np.stack(np.meshgrid(*[np.arange(n) for n in reference.GetSize()], indexing="ij"), axis=-1).reshape(-1, 3)
    axes = np.asarray(reference.GetDirection()).reshape(3, 3) * np.asarray(reference.GetSpacing())
    world = np.asarray(reference.GetOrigin()) + points @ axes.T - np.asarray([0.0, -18.0, 18.0])
    radius = np.sqrt(((world / np.asarray([40.0, 30.0, 25.0])) ** 2).sum(axis=1))
    values = np.select([radius < 0.4, radius < 0.7, radius < 1.0], [3, 2, 1], 0).astype(np.uint8)
    image = sitk.GetImageFromArray(values.reshape(reference.GetSize()).transpose(2, 1, 0).copy())
    image.CopyInformation(reference)
    return image


def test_nibabel_affine_is_the_one_nifti_files_carry(tmp_path: Path) -> None:
    """SimpleITK writes NIfTI in RAS; our affine must equal the one nibabel reads back, and convert losslessly."""
    image = oblique_image()
    sitk.WriteImage(image, str(tmp_path / "oblique.nii"))
    written = nib.load(tmp_path / "oblique.nii")
    assert np.allclose(affine_of(image), written.affine, atol=1e-4)
    assert np.array_equal(np.asarray(to_nibabel(image).dataobj), np.asarray(written.dataobj))
    back = from_nibabel(to_nibabel(image))
    assert np.allclose(back.GetOrigin(), image.GetOrigin()) and np.allclose(back.GetDirection(), image.GetDirection())
    assert np.allclose(back.GetSpacing(), image.GetSpacing())
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))


def test_composite_applies_atlas_first_and_inverse_undoes_it() -> None:
    role = motion((3.0, -5.0, 8.0), (4.0, -2.0, 6.0))
    atlas = sitk.AffineTransform(3)
    atlas.SetMatrix((1.3, 0.05, 0.0, -0.02, 0.8, 0.03, 0.0, 0.01, 1.2))
    atlas.SetTranslation((2.0, -7.0, 3.0))
    point = (52.0, -60.0, 71.0)
    forward = to_atlas(role, atlas).TransformPoint(point)
    assert np.allclose(forward, role.TransformPoint(atlas.TransformPoint(point)))
    assert not np.allclose(forward, atlas.TransformPoint(role.TransformPoint(point)), atol=2.0)
    assert np.allclose(from_atlas(role, atlas).TransformPoint(forward), point, atol=1e-9)


def case_with(labels: sitk.Image, series_grid: sitk.Image, role: sitk.Transform, atlas: sitk.Transform) -> Case:
    case = Case("round-trip", {"t1c": series_of(series_grid, "t1c")})
    case.artifacts.update({MAIN: labels, "to_reference": {"t1c": role}, "atlas_transform": atlas})
    return case


def test_identity_round_trip_is_exact(tmp_path: Path) -> None:
    """Atlas grid = series grid and identity transforms: the label map comes back voxel for voxel."""
    labels = labels_on(grid((60, 50, 20), (1.0, 1.2, 4.0), SAGITTAL @ rotation((0.0, 9.0, 0.0))))
    case = case_with(labels, labels, sitk.Euler3DTransform(), sitk.AffineTransform(3))
    LabelsToSeries(Settings(), context(tmp_path))(case)
    back = case.artifacts["series_labels"]["t1c"]
    assert np.allclose(back.GetOrigin(), labels.GetOrigin()) and back.GetSize() == labels.GetSize()
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(labels))


def test_round_trip_through_the_atlas_differs_only_on_label_boundaries(tmp_path: Path) -> None:
    """Labels drawn on a sagittal series go to a 1 mm atlas (forward composite) and back (its inverse)."""
    series_grid = grid((100, 90, 30), (1.0, 1.0, 3.0), SAGITTAL @ rotation((4.0, 0.0, -6.0)))
    labels = labels_on(series_grid)
    role = motion((5.0, -3.0, 7.0), (6.0, 4.0, -5.0))
    atlas = sitk.AffineTransform(3)
    atlas.SetMatrix((1.08, 0.03, 0.0, -0.02, 0.93, 0.04, 0.01, 0.0, 1.02))
    atlas.SetTranslation((3.0, -10.0, 5.0))
    atlas_grid = grid((140, 140, 140), (1.0, 1.0, 1.0), AXIAL, centre=(0.0, 0.0, 0.0))
    in_atlas = resample(labels, atlas_grid, to_atlas(role, atlas), sitk.sitkNearestNeighbor)
    case = case_with(in_atlas, series_grid, role, atlas)
    LabelsToSeries(Settings(), context(tmp_path))(case)

    original, back = sitk.GetArrayFromImage(labels), sitk.GetArrayFromImage(case.artifacts["series_labels"]["t1c"])
    differs = original != back
    boundary = sitk.GetArrayFromImage(sitk.LabelContour(labels, fullyConnected=True, backgroundValue=-1)) > 0
    near_boundary = ndimage.binary_dilation(boundary, structure=np.ones((3, 3, 3), bool))
    agreement = 1.0 - differs[original > 0].mean()
    print(f"round trip: {agreement:.4f} of label voxels unchanged, {int(differs.sum())} voxels differ")
    assert agreement > 0.97
    assert not (differs & ~near_boundary).any(), "a voxel away from any label boundary changed"


def test_rigid_start_is_centred_on_the_reference() -> None:
    """`identity` rotates about the reference's centre without moving; `moments` also starts at the mass shift."""
    reference = labels_on(grid((60, 60, 40), (2.0, 2.0, 2.0), AXIAL))
    shifted = grid((60, 60, 40), (2.0, 2.0, 2.0), AXIAL, centre=(20.0, -8.0, 30.0))
    moved = resample(reference, shifted, motion((0.0, 0.0, 0.0), (-20.0, 10.0, -12.0)), sitk.sitkNearestNeighbor)
    centre = reference.TransformContinuousIndexToPhysicalPoint([29.5, 29.5, 19.5])
    identity = initial_rigid(reference, moved, "identity")
    assert np.allclose(identity.GetCenter(), centre) and np.allclose(identity.GetTranslation(), 0.0)
    moments = initial_rigid(sitk.Cast(reference, sitk.sitkFloat32), sitk.Cast(moved, sitk.sitkFloat32), "moments")
    assert np.allclose(moments.GetTranslation(), (20.0, -10.0, 12.0), atol=0.5)
