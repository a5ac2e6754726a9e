"""A synthetic four-contrast brain MR study (T1, T1c, T2, FLAIR) with a known tumour, built on a real head.

Brain extraction and registration need real anatomy, so the contrasts are intensity mappings of a real T1 head
(nilearn's bundled MNI ICBM152 2009a T1 by default, or any T1 head such as Colin27 `ch2`): the head's air, CSF,
grey and white matter levels (Otsu classes of the T1) are mapped to each contrast's typical levels. A tumour of
three nested ellipsoids - necrotic core (NCR), enhancing rim (ET), oedema halo (ED) - is painted at a known LPS
position with each contrast's signal (dark T1 core, bright T1c rim, bright T2/FLAIR oedema). Each contrast is then
sampled on its own acquisition grid (T1c axial 1 mm in-plane, T1 axial thick slices, T2 coronal, FLAIR sagittal,
each with its own field of view and centre) and written as a DICOM series with the tags a scanner writes, all in
one study and one frame of reference. The true tumour label map on every grid is computed from the ellipsoids at
that grid's voxel centres, so tests can compare a SEG with the truth on its own series.

Label values of the truth: 1 NCR, 2 ED, 3 ET (the brain model's output segments).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.uid import generate_uid

from aimi_testkit.synthetic import Ellipsoid, GridSpec, StudyInfo, Vector, voxel_centres, write_series

ROLES = ("t1", "t1c", "t2", "flair")
NCR, ED, ET = 1, 2, 3
#: Signal of each tissue per contrast (arbitrary MR units): air, CSF, grey matter, white matter, the brightest
#: T1 tissue (fat of the scalp), then the tumour compartments.
TISSUE_SIGNAL: dict[str, dict[str, float]] = {
    "t1":    {"air": 0, "csf": 150, "gm": 400, "wm": 550, "fat": 700, "ncr": 120, "et": 420, "ed": 300},
    "t1c":   {"air": 0, "csf": 150, "gm": 400, "wm": 550, "fat": 700, "ncr": 120, "et": 1000, "ed": 300},
    "t2":    {"air": 0, "csf": 1000, "gm": 550, "wm": 400, "fat": 600, "ncr": 900, "et": 620, "ed": 800},
    "flair": {"air": 0, "csf": 120, "gm": 450, "wm": 380, "fat": 500, "ncr": 520, "et": 600, "ed": 950},
}
NOISE_SD = 12.0


@dataclass(frozen=True)
class Tumour:
    """Three nested ellipsoids about one centre (LPS, mm): NCR inside ET inside ED."""

    centre_lps: Vector = (-30.0, 10.0, 22.0)  # right hemisphere, frontal-parietal white matter of MNI space
    ncr_radii_mm: Vector = (9.0, 8.0, 8.0)
    et_radii_mm: Vector = (14.0, 13.0, 12.0)
    ed_radii_mm: Vector = (24.0, 22.0, 20.0)

    def shapes(self) -> list[Ellipsoid]:
        """Outermost first, so inner compartments overwrite outer ones."""
        return [Ellipsoid(self.centre_lps, self.ed_radii_mm, 0.0, ED),
                Ellipsoid(self.centre_lps, self.et_radii_mm, 0.0, ET),
                Ellipsoid(self.centre_lps, self.ncr_radii_mm, 0.0, NCR)]

    def labels_on(self, grid: GridSpec) -> np.ndarray:
        """The true label map (slices, rows, columns) at the voxel centres of `grid`."""
        points = voxel_centres(grid)
        labels = np.zeros(points.shape[:3], np.uint8)
        for shape in self.shapes():
            labels[shape.contains(points)] = shape.label
        return labels


@dataclass(frozen=True)
class SeriesSpec:
    """How one contrast is acquired and labelled by the scanner."""

    description: str
    plane: str  # axial, coronal, sagittal
    pixel_spacing: tuple[float, float]
    slice_step: float
    fov_mm: tuple[float, float, float]  # rows, columns, slices extent
    shift_mm: Vector  # offset of the grid centre from the head centre
    mr_sequence: str  # synthetic.MR_PRESETS key
    series_number: int
    tags: Mapping[str, object] = field(default_factory=dict)


#: A typical clinical glioma protocol: one 3D post-contrast T1 and three 2D sequences in other planes.
DEFAULT_SERIES: dict[str, SeriesSpec] = {
    "t1": SeriesSpec("t1_se_tra", "axial", (1.2, 1.2), 5.0, (216, 180, 160), (0.0, 3.0, -2.0), "T1", 3, {
        "ScanningSequence": "SE", "SequenceVariant": "SP", "MRAcquisitionType": "2D", "SequenceName": "*se2d1",
        "RepetitionTime": 550.0, "EchoTime": 9.0, "FlipAngle": 90, "EchoTrainLength": 1}),
    "t1c": SeriesSpec("AX T1 POST GAD", "axial", (1.0, 1.0), 2.0, (216, 176, 150), (0.0, 0.0, 0.0), "T1C", 7, {
        "ScanningSequence": ["GR", "IR"], "SequenceVariant": ["SP", "MP"], "SequenceName": "*tfl3d1_16ns",
        "RepetitionTime": 2300.0, "EchoTime": 2.3, "InversionTime": 900.0, "FlipAngle": 8,
        "ContrastBolusVolume": 15.0, "ContrastBolusRoute": "IV"}),
    "t2": SeriesSpec("t2_tse_cor", "coronal", (1.2, 1.2), 4.0, (180, 180, 216), (2.0, -4.0, 3.0), "T2", 4),
    "flair": SeriesSpec("t2_tirm_sag_dark-fluid", "sagittal", (1.2, 1.2), 5.0, (180, 216, 160), (-3.0, 2.0, 0.0),
                        "FLAIR", 5),
}
_PLANES = {"axial": GridSpec.axial, "coronal": GridSpec.coronal, "sagittal": GridSpec.sagittal}


@dataclass(frozen=True)
class BrainStudy:
    """What was written: files and the true tumour label map on each role's own grid."""

    files: dict[str, list[Path]]
    grids: dict[str, GridSpec]
    truth: dict[str, np.ndarray]
    series_uids: dict[str, str]


def mni_head() -> sitk.Image:
    """nilearn's bundled MNI ICBM152 2009a T1 at 1 mm (already brain-extracted), as an LPS SimpleITK image."""
    from nilearn.datasets import load_mni152_template

    nifti = load_mni152_template(resolution=1)
    array = np.asarray(nifti.get_fdata(), np.float32)
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    ras_to_lps = np.diag([-1.0, -1.0, 1.0])
    affine = np.asarray(nifti.affine, float)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(v) for v in ras_to_lps @ affine[:3, 3]))
    image.SetDirection(tuple(float(v) for v in (ras_to_lps @ (affine[:3, :3] / spacing)).flatten()))
    return image


def contrasts_of(head: sitk.Image, tumour: Tumour) -> dict[str, sitk.Image]:
    """Four contrasts of the T1 `head` on its own grid, tumour painted in (before noise and resampling)."""
    t1 = sitk.GetArrayFromImage(sitk.Cast(head, sitk.sitkFloat32))
    anchors = _t1_anchors(t1)
    labels = sitk.GetArrayFromImage(_label_image(head, tumour))
    images = {}
    for role in ROLES:
        signal = TISSUE_SIGNAL[role]
        levels = [signal[t] for t in ("air", "csf", "gm", "wm", "fat")]
        array = np.interp(t1, anchors, levels).astype(np.float32)
        for value, name in ((ED, "ed"), (ET, "et"), (NCR, "ncr")):
            array[labels == value] = signal[name]
        image = sitk.GetImageFromArray(array)
        image.CopyInformation(head)
        images[role] = image
    return images


def _t1_anchors(t1: np.ndarray) -> list[float]:
    """T1 values of air, CSF, GM, WM and the brightest tissue: 0, the means of three Otsu classes, the maximum."""
    head = t1[t1 > 0.02 * t1.max()]
    thresholds = sitk.OtsuMultipleThresholdsImageFilter()
    thresholds.SetNumberOfThresholds(2)
    thresholds.Execute(sitk.GetImageFromArray(head.reshape(-1, 1, 1)))
    low, high = thresholds.GetThresholds()
    means = [float(head[head < low].mean()), float(head[(head >= low) & (head < high)].mean()),
             float(head[head >= high].mean())]
    return [0.0, *means, float(max(head.max(), means[-1] * 1.01))]


def _label_image(head: sitk.Image, tumour: Tumour) -> sitk.Image:
    """The tumour label map on the head's own grid: voxel centres near the tumour tested against the ellipsoids."""
    reach = max(tumour.ed_radii_mm)
    corners = [np.asarray(tumour.centre_lps) + reach * (np.array(sign) - 1) for sign in np.ndindex(3, 3, 3)]
    index = np.array([head.TransformPhysicalPointToContinuousIndex(tuple(map(float, c))) for c in corners])
    low = np.clip(np.floor(index.min(axis=0)).astype(int), 0, None)
    high = np.minimum(np.ceil(index.max(axis=0)).astype(int) + 1, head.GetSize())
    grid = np.stack(np.meshgrid(*(np.arange(a, b) for a, b in zip(low, high, strict=True)), indexing="ij"), -1)
    direction = np.asarray(head.GetDirection()).reshape(3, 3)
    points = np.asarray(head.GetOrigin()) + (grid * np.asarray(head.GetSpacing())) @ direction.T
    labels = np.zeros(head.GetSize()[::-1], np.uint8)
    box = labels[low[2]:high[2], low[1]:high[1], low[0]:high[0]]
    for shape in tumour.shapes():
        box[shape.contains(points).transpose(2, 1, 0)] = shape.label
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(head)
    return image


def head_centre(head: sitk.Image) -> Vector:
    """LPS centre of the bounding box of the head (non-zero voxels)."""
    shape = sitk.LabelShapeStatisticsImageFilter()
    shape.Execute(sitk.Cast(sitk.BinaryThreshold(head, 1e-3 * float(sitk.GetArrayViewFromImage(head).max()),
                                                 1e30), sitk.sitkUInt8))
    x, y, z, sx, sy, sz = shape.GetBoundingBox(1)
    centre_index = (x + (sx - 1) / 2, y + (sy - 1) / 2, z + (sz - 1) / 2)
    return tuple(float(v) for v in head.TransformContinuousIndexToPhysicalPoint(centre_index))  # type: ignore[return-value]


def series_grid(spec: SeriesSpec, centre: Vector) -> GridSpec:
    """The acquisition grid of `spec`: its plane, spacing and field of view, centred at `centre` + its shift."""
    rows, columns, slices = (max(1, round(extent / step)) for extent, step in
                             zip(spec.fov_mm, (*spec.pixel_spacing, spec.slice_step), strict=True))
    grid_centre = tuple(float(c + s) for c, s in zip(centre, spec.shift_mm, strict=True))
    return _PLANES[spec.plane](rows=rows, columns=columns, slices=slices, pixel_spacing=spec.pixel_spacing,
                               slice_step=spec.slice_step, centre=grid_centre)  # type: ignore[arg-type]


def sample_on(image: sitk.Image, grid: GridSpec) -> np.ndarray:
    """`image` linearly interpolated at the voxel centres of `grid`: (slices, rows, columns), 0 outside."""
    reference = sitk.Image(grid.columns, grid.rows, grid.slices, sitk.sitkFloat32)
    reference.SetSpacing((grid.pixel_spacing[1], grid.pixel_spacing[0], grid.slice_step))
    reference.SetOrigin(grid.first_position)
    reference.SetDirection(tuple(float(v) for v in grid.axes.flatten()))
    resampled = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(resampled)


def write_brain_study(out_dir: Path, *, head: sitk.Image | None = None, tumour: Tumour | None = None,
                      series: Mapping[str, SeriesSpec] | None = None, study: StudyInfo | None = None,
                      roles: tuple[str, ...] = ROLES, scale: float = 1.0, seed: int = 0) -> BrainStudy:
    """Write the study's series under out_dir/<role>/ and return the files and the truth on each grid.

    `roles` writes a subset (a study missing a contrast); `scale` multiplies every spacing (coarser, smaller
    series for fast tests); `series` overrides the acquisition of some roles.
    """
    head = head if head is not None else mni_head()
    tumour = tumour or Tumour()
    specs = {**DEFAULT_SERIES, **(series or {})}
    study = study or StudyInfo.new("AIMI-BRAIN", study_description="MRI BRAIN W/WO CONTRAST")
    rng = np.random.default_rng(seed)
    centre = head_centre(head)
    frame_of_reference = generate_uid()
    images = contrasts_of(head, tumour)
    result = BrainStudy({}, {}, {}, {})
    for role in roles:
        spec = _scaled(specs[role], scale)
        grid = series_grid(spec, centre)
        volume = sample_on(images[role], grid)
        volume = np.clip(volume + rng.normal(0.0, NOISE_SD, volume.shape), 0.0, None)  # magnitude signal
        files = write_series(volume, grid, out_dir / role, modality="MR", series_description=spec.description,
                             study=study, series_number=spec.series_number, body_part="BRAIN",
                             frame_of_reference_uid=frame_of_reference, mr_sequence=spec.mr_sequence,
                             image_type=("ORIGINAL", "PRIMARY", "M", "ND"), extra_tags=dict(spec.tags))
        result.files[role] = files
        result.grids[role] = grid
        result.truth[role] = tumour.labels_on(grid)
        result.series_uids[role] = _series_uid(files[0])
    return result


def _scaled(spec: SeriesSpec, scale: float) -> SeriesSpec:
    return replace(spec, pixel_spacing=(spec.pixel_spacing[0] * scale, spec.pixel_spacing[1] * scale),
                   slice_step=spec.slice_step * scale)


def _series_uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID)
