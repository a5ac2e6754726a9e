"""Images between SimpleITK (LPS physical space) and nibabel (RAS affine), and the transform chain of a study.

Transforms follow ITK's resampling convention: a transform maps points of the space resampled *onto* (fixed) to
points of the space sampled *from* (moving). A case holds `to_reference` (per role: reference role -> role, from
RigidRegistration) and `atlas_transform` (atlas -> reference role, from AtlasRegistration), so the one-interpolation
resampling of a role onto the atlas uses role o atlas, and the way back uses the inverses in the opposite order.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from aimi.core.ports import TRANSFORM, TRANSFORMS, Port

ATLAS = "atlas"
#: The two inputs of every step that maps between the atlas and the series: together, atlas point -> role point.
ROLE_TRANSFORMS_PORT = Port(TRANSFORMS, "reference-role point -> role point, per role", "to_reference")
ATLAS_TRANSFORM_PORT = Port(TRANSFORM, "atlas point -> reference-role point", "atlas_transform")
#: LPS (DICOM, ITK) <-> RAS (NIfTI): negate the first two world axes.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def affine_of(image: sitk.Image) -> np.ndarray:
    """The NIfTI (RAS) voxel-to-world affine of a SimpleITK image, for nibabel's (x, y, z) array order."""
    direction = np.asarray(image.GetDirection(), float).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction @ np.diag(image.GetSpacing())
    lps[:3, 3] = image.GetOrigin()
    return LPS_TO_RAS @ lps


def to_nibabel(image: sitk.Image) -> nib.Nifti1Image:
    array = sitk.GetArrayFromImage(image).transpose(2, 1, 0)
    return nib.Nifti1Image(np.ascontiguousarray(array), affine_of(image))


def from_nibabel(image: nib.Nifti1Image, pixel_type: int = sitk.sitkFloat32) -> sitk.Image:
    """A nibabel image as SimpleITK, keeping its voxel order; the affine must be free of shear."""
    affine = LPS_TO_RAS @ image.affine
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    result = sitk.GetImageFromArray(np.asarray(image.dataobj).transpose(2, 1, 0).copy())
    result = sitk.Cast(result, pixel_type)
    result.SetSpacing([float(s) for s in spacing])
    result.SetOrigin([float(v) for v in affine[:3, 3]])
    result.SetDirection([float(v) for v in (affine[:3, :3] / spacing).ravel()])
    return result


def array_on(array: np.ndarray, reference: sitk.Image, pixel_type: int = sitk.sitkUInt8) -> sitk.Image:
    """A nibabel-ordered (x, y, z) array back on the grid of `reference`."""
    image = sitk.Cast(sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0))), pixel_type)
    image.CopyInformation(reference)
    return image


def to_atlas(role_transform: sitk.Transform, atlas_transform: sitk.Transform) -> sitk.CompositeTransform:
    """Atlas point -> role point: atlas -> reference, then reference -> role (ITK applies the list's last first)."""
    return sitk.CompositeTransform([role_transform, atlas_transform])


def from_atlas(role_transform: sitk.Transform, atlas_transform: sitk.Transform) -> sitk.CompositeTransform:
    """Role point -> atlas point: the exact inverse of `to_atlas` (role -> reference, then reference -> atlas)."""
    return sitk.CompositeTransform([atlas_transform.GetInverse(), role_transform.GetInverse()])


def resample(
    image: sitk.Image, grid: sitk.Image, transform: sitk.Transform, interpolator: int, pixel_type: int | None = None
) -> sitk.Image:
    """`image` sampled on `grid` through `transform` (grid point -> image point); outside the image = 0."""
    out_type = image.GetPixelID() if pixel_type is None else pixel_type
    return sitk.Resample(image, grid, transform, interpolator, 0.0, out_type)
