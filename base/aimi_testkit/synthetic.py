"""Synthetic classic single-frame CT and MR DICOM series on any grid, for tests, demos and benchmarks.

Conventions are those of `aimi.dicom.geometry`: a volume is (slices, rows, columns) with slice k at the k-th
position in ascending order along the slice normal; coordinates are DICOM patient coordinates (LPS, mm).
Stored pixels: CT as signed int16 with RescaleSlope 1 and RescaleIntercept -1024 (HU = stored - 1024, the
common scanner encoding); MR as uint16 without rescaling. Values are rounded to integers when written.
Also here: the "messy folder" fixtures (localizer, SR, non-DICOM, truncated and corrupt files).
"""

from __future__ import annotations

import copy
import datetime
import secrets
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import highdicom as hd
import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)
from pydicom.valuerep import format_number_as_ds

Vector = tuple[float, float, float]
Orientation = tuple[float, float, float, float, float, float]
Modality = Literal["CT", "MR"]
FileNaming = Literal["uid", "instance", "random"]

MANUFACTURER = "AIMI synthetic"
CT_RESCALE_INTERCEPT = -1024
_SOP_CLASS = {"CT": CTImageStorage, "MR": MRImageStorage}
_STORED_DTYPE = {"CT": np.int16, "MR": np.uint16}
_DEFAULT_IMAGE_TYPE = {"CT": ("ORIGINAL", "PRIMARY", "AXIAL"), "MR": ("ORIGINAL", "PRIMARY", "OTHER")}
_LOCALIZER_TYPE = ("ORIGINAL", "PRIMARY", "LOCALIZER")

_CT_TAGS: dict[str, object] = {
    "KVP": 120, "XRayTubeCurrent": 200, "ConvolutionKernel": "STANDARD", "GantryDetectorTilt": 0,
    "AcquisitionNumber": 1, "ScanOptions": "HELIX", "WindowCenter": 40, "WindowWidth": 400,
    "RescaleIntercept": CT_RESCALE_INTERCEPT, "RescaleSlope": 1,
}
_MR_COMMON: dict[str, object] = {
    "ScanOptions": "", "MagneticFieldStrength": 3, "ImagedNucleus": "1H", "ImagingFrequency": 123.25,
    "NumberOfAverages": 1, "EchoNumbers": 1, "AcquisitionNumber": 1,
}
#: Typical acquisition parameters per contrast (PS3.3 C.8.3.1); ContrastBolusAgent marks post-contrast series.
MR_PRESETS: dict[str, dict[str, object]] = {
    "T1": {"ScanningSequence": "GR", "SequenceVariant": "SP", "MRAcquisitionType": "3D", "SequenceName": "*fl3d1",
           "RepetitionTime": 8.0, "EchoTime": 3.5, "FlipAngle": 12, "EchoTrainLength": 1},
    "T1C": {"ScanningSequence": "GR", "SequenceVariant": "SP", "MRAcquisitionType": "3D", "SequenceName": "*fl3d1",
            "RepetitionTime": 8.0, "EchoTime": 3.5, "FlipAngle": 12, "EchoTrainLength": 1,
            "ContrastBolusAgent": "Gadobutrol"},
    "T2": {"ScanningSequence": "SE", "SequenceVariant": ["SK", "SP"], "MRAcquisitionType": "2D",
           "SequenceName": "*tse2d1_16", "RepetitionTime": 4000.0, "EchoTime": 100.0, "FlipAngle": 150,
           "EchoTrainLength": 16},
    "FLAIR": {"ScanningSequence": ["SE", "IR"], "SequenceVariant": ["SK", "SP", "MP"], "MRAcquisitionType": "2D",
              "SequenceName": "*tir2d1_16", "RepetitionTime": 9000.0, "EchoTime": 120.0, "InversionTime": 2500.0,
              "FlipAngle": 150, "EchoTrainLength": 16},
}


def _unit(vector: Sequence[float]) -> np.ndarray:
    array = np.asarray(vector, float)
    return array / np.linalg.norm(array)


def _rotation(axis: Literal["x", "y", "z"], angle_deg: float) -> np.ndarray:
    """Right-handed rotation by `angle_deg` about a patient axis (Rodrigues' formula)."""
    k = np.eye(3)["xyz".index(axis)]
    theta = np.radians(angle_deg)
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) * np.cos(theta) + np.sin(theta) * cross + (1 - np.cos(theta)) * np.outer(k, k)


def _plane(row_cosines: Vector, column_cosines: Vector, doc: str) -> Any:
    """A GridSpec constructor for one acquisition plane, centred on `centre` (see GridSpec.centred)."""
    def build(cls: type[GridSpec], *, rows: int = 32, columns: int = 32, slices: int = 16,
              pixel_spacing: tuple[float, float] = (1.0, 1.0), slice_step: float = 2.0,
              centre: Vector = (0.0, 0.0, 0.0)) -> GridSpec:
        return cls.centred(row_cosines, column_cosines, rows=rows, columns=columns, slices=slices,
                           pixel_spacing=pixel_spacing, slice_step=slice_step, centre=centre)

    build.__doc__ = doc
    return classmethod(build)


@dataclass(frozen=True)
class GridSpec:
    """An acquisition grid in DICOM patient coordinates (LPS, mm), validated at construction.

    `pixel_spacing` is DICOM PixelSpacing: (spacing between rows, spacing between columns).
    `first_position` is the ImagePositionPatient of the first slice in ascending order along the normal.
    """

    rows: int
    columns: int
    slices: int
    pixel_spacing: tuple[float, float]
    slice_step: float
    orientation: Orientation
    first_position: Vector

    def __post_init__(self) -> None:
        if min(self.rows, self.columns, self.slices) < 1:
            raise ValueError(f"rows/columns/slices must be >= 1, got {self.rows}/{self.columns}/{self.slices}")
        if min(self.pixel_spacing) <= 0 or self.slice_step <= 0:
            raise ValueError(f"pixel_spacing {self.pixel_spacing} and slice_step {self.slice_step} must be > 0")
        row, col = np.asarray(self.orientation[:3], float), np.asarray(self.orientation[3:], float)
        if not (np.isclose(row @ row, 1, atol=1e-6) and np.isclose(col @ col, 1, atol=1e-6)
                and abs(row @ col) < 1e-6):
            raise ValueError(f"orientation {self.orientation}: ImageOrientationPatient must be two orthogonal "
                             "unit vectors (PS3.3 C.7.6.2.1.1)")

    @property
    def axes(self) -> np.ndarray:
        """Columns: row direction (along a row), column direction (down a column), slice normal."""
        row, col = np.asarray(self.orientation[:3], float), np.asarray(self.orientation[3:], float)
        return np.column_stack([row, col, np.cross(row, col)])

    @classmethod
    def centred(cls, row_cosines: Sequence[float], column_cosines: Sequence[float], *, rows: int, columns: int,
                slices: int, pixel_spacing: tuple[float, float], slice_step: float, centre: Vector) -> GridSpec:
        """A grid whose middle voxel centre (half-way along each axis) lies at `centre`."""
        row, col = _unit(row_cosines), _unit(column_cosines)
        normal = np.cross(row, col)
        half = ((columns - 1) * pixel_spacing[1] * row + (rows - 1) * pixel_spacing[0] * col
                + (slices - 1) * slice_step * normal) / 2
        first = np.asarray(centre, float) - half
        return cls(rows, columns, slices, (float(pixel_spacing[0]), float(pixel_spacing[1])), float(slice_step),
                   tuple(float(v) for v in (*row, *col)), tuple(float(v) for v in first))

    axial = _plane((1, 0, 0), (0, 1, 0), "Rows run to patient left, columns to posterior; slices ascend to the head.")
    coronal = _plane((1, 0, 0), (0, 0, -1), "Rows run to patient left, columns to the feet; slices ascend backwards.")
    sagittal = _plane((0, 1, 0), (0, 0, -1), "Rows run to posterior, columns to the feet; slices ascend to the right.")

    @classmethod
    def oblique(cls, angle_deg: float, *, axis: Literal["x", "y", "z"] = "x", rows: int = 32, columns: int = 32,
                slices: int = 16, pixel_spacing: tuple[float, float] = (1.0, 1.0), slice_step: float = 2.0,
                centre: Vector = (0.0, 0.0, 0.0)) -> GridSpec:
        """The axial grid rotated by `angle_deg` about a patient axis through `centre`."""
        rotation = _rotation(axis, angle_deg)
        return cls.centred(rotation[:, 0], rotation[:, 1], rows=rows, columns=columns, slices=slices,
                           pixel_spacing=pixel_spacing, slice_step=slice_step, centre=centre)


def voxel_centres(grid: GridSpec) -> np.ndarray:
    """(slices, rows, columns, 3) LPS points of every voxel centre, slice k in ascending-normal order."""
    return np.stack([_slice_centres(grid, k) for k in range(grid.slices)])


def _slice_centres(grid: GridSpec, k: int) -> np.ndarray:
    """(rows, columns, 3) LPS points of slice k: one slice at a time keeps large grids in memory."""
    row, col, normal = grid.axes.T
    r = np.arange(grid.rows)[:, None, None] * grid.pixel_spacing[0] * col
    c = np.arange(grid.columns)[None, :, None] * grid.pixel_spacing[1] * row
    return np.asarray(grid.first_position, float) + k * grid.slice_step * normal + r + c


@dataclass(frozen=True)
class Ellipsoid:
    """A solid ellipsoid; `axes` rows are its unit semi-axis directions in LPS (None: the patient axes)."""

    centre_lps: Vector
    radii_mm: Vector
    value: float
    label: int
    axes: tuple[Vector, Vector, Vector] | None = None

    def __post_init__(self) -> None:
        if min(self.radii_mm) <= 0:
            raise ValueError(f"radii_mm {self.radii_mm} must be > 0")
        if not 0 <= self.label <= 255:
            raise ValueError(f"label {self.label} must be in 0..255 (stored as uint8)")
        if self.axes is not None and not np.allclose(np.asarray(self.axes) @ np.asarray(self.axes).T, np.eye(3),
                                                      atol=1e-6):
            raise ValueError(f"axes {self.axes} must be three orthonormal vectors")

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Boolean mask of the points (..., 3) inside the ellipsoid."""
        axes = np.eye(3) if self.axes is None else np.asarray(self.axes, float)
        local = (points - np.asarray(self.centre_lps, float)) @ axes.T
        return np.sum((local / np.asarray(self.radii_mm, float)) ** 2, axis=-1) <= 1.0


def sample_phantom(grid: GridSpec, shapes: Sequence[Ellipsoid], background: float, *, noise_sd: float = 0.0,
                   rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(volume float32, labels uint8), both (slices, rows, columns): later shapes overwrite earlier ones.

    Gaussian noise (sd `noise_sd`) is added to the volume only, so labels stay the ground truth.
    """
    shape = (grid.slices, grid.rows, grid.columns)
    volume = np.full(shape, background, np.float32)
    labels = np.zeros(shape, np.uint8)
    for k in range(grid.slices):
        points = _slice_centres(grid, k)
        for ellipsoid in shapes:
            inside = ellipsoid.contains(points)
            volume[k][inside] = ellipsoid.value
            labels[k][inside] = ellipsoid.label
    if noise_sd > 0:
        rng = rng if rng is not None else np.random.default_rng(0)
        volume += rng.normal(0.0, noise_sd, shape).astype(np.float32)
    return volume, labels


@dataclass(frozen=True)
class StudyInfo:
    """Patient and study attributes shared by every series of one synthetic study."""

    patient_name: str
    patient_id: str
    patient_birth_date: str
    patient_sex: str
    study_uid: str
    study_date: str
    study_time: str
    accession: str
    study_id: str
    study_description: str

    @classmethod
    def new(cls, patient_id: str = "AIMI-0001", *, patient_name: str = "AIMI^SYNTHETIC",
            study_description: str = "AIMI synthetic study") -> StudyInfo:
        """A fresh study (new StudyInstanceUID, today's date) for a fake patient."""
        now = datetime.datetime.now()
        return cls(patient_name=patient_name, patient_id=patient_id, patient_birth_date="19700101",
                   patient_sex="O", study_uid=generate_uid(), study_date=now.strftime("%Y%m%d"),
                   study_time=now.strftime("%H%M%S"), accession=f"AIMI{secrets.randbelow(10**8):08d}",
                   study_id="1", study_description=study_description)


def _stored_pixels(volume: np.ndarray, grid: GridSpec, modality: Modality) -> np.ndarray:
    """The volume rounded to stored values; refuses shapes and values the encoding cannot represent."""
    expected = (grid.slices, grid.rows, grid.columns)
    if volume.shape != expected:
        raise ValueError(f"volume shape {volume.shape} must be (slices, rows, columns) = {expected}")
    if not np.all(np.isfinite(volume)):
        raise ValueError("volume contains NaN or infinite values")
    offset = CT_RESCALE_INTERCEPT if modality == "CT" else 0
    dtype = _STORED_DTYPE[modality]
    stored = np.rint(np.asarray(volume, np.float64)) - offset
    info = np.iinfo(dtype)
    if stored.min() < info.min or stored.max() > info.max:
        raise ValueError(f"{modality} values {volume.min()}..{volume.max()} outside the storable range "
                         f"{info.min + offset}..{info.max + offset}")
    return stored.astype(dtype)


def _ds(value: float) -> str:
    """A decimal string of at most 16 characters (PS3.5 6.2, VR DS)."""
    return format_number_as_ds(float(value))


def _series_template(grid: GridSpec, stored: np.ndarray, modality: Modality, study: StudyInfo, *,
                     series_description: str, series_number: int, image_type: Sequence[str], body_part: str,
                     patient_position: str, frame_of_reference_uid: str, mr_sequence: str) -> Dataset:
    """Attributes every slice of the series shares (PS3.3 A.3 CT Image IOD, A.4 MR Image IOD)."""
    now = datetime.datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = list(image_type)
    ds.SOPClassUID = _SOP_CLASS[modality]
    for prefix in ("InstanceCreation", "Series", "Acquisition", "Content"):
        setattr(ds, f"{prefix}Date", date)
        setattr(ds, f"{prefix}Time", time)
    ds.StudyDate, ds.StudyTime = study.study_date, study.study_time
    ds.AccessionNumber = study.accession
    ds.Modality = modality
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = "aimi_testkit.synthetic"
    ds.InstitutionName = "AIMI Model Hub"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = study.study_description
    ds.SeriesDescription = series_description
    ds.ProtocolName = series_description
    ds.PatientName, ds.PatientID = study.patient_name, study.patient_id
    ds.PatientBirthDate, ds.PatientSex = study.patient_birth_date, study.patient_sex
    ds.BodyPartExamined = body_part
    ds.SliceThickness = _ds(grid.slice_step)
    ds.PatientPosition = patient_position
    ds.StudyInstanceUID = study.study_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyID = study.study_id
    ds.SeriesNumber = series_number
    ds.ImageOrientationPatient = [_ds(v) for v in grid.orientation]
    ds.FrameOfReferenceUID = frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = grid.rows, grid.columns
    ds.PixelSpacing = [_ds(v) for v in grid.pixel_spacing]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1 if modality == "CT" else 0
    for keyword, value in _modality_tags(modality, stored, grid, mr_sequence).items():
        setattr(ds, keyword, value)
    return ds


def _modality_tags(modality: Modality, stored: np.ndarray, grid: GridSpec, mr_sequence: str) -> dict[str, object]:
    """CT Image (C.8.2.1) or MR Image (C.8.3.1) module attributes; MR windows span the stored range."""
    if modality == "CT":
        return dict(_CT_TAGS)
    if mr_sequence not in MR_PRESETS:
        raise ValueError(f"mr_sequence {mr_sequence!r} is not one of {sorted(MR_PRESETS)}")
    low, high = int(stored.min()), int(stored.max())
    window = {"WindowCenter": _ds((low + high) / 2), "WindowWidth": max(high - low, 1),
              "SpacingBetweenSlices": _ds(grid.slice_step)}
    return {**_MR_COMMON, **MR_PRESETS[mr_sequence], **window}


def _apply_extra_tags(ds: Dataset, extra_tags: Mapping[str, object]) -> None:
    """Set (or, for None, delete) attributes by DICOM keyword; unknown keywords are an error."""
    for keyword, value in extra_tags.items():
        if tag_for_keyword(keyword) is None:
            raise ValueError(f"extra_tags: {keyword!r} is not a DICOM keyword")
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)


def _file_name(ds: Dataset, file_names: FileNaming) -> str:
    """'uid': <SOPInstanceUID>.dcm; 'instance': sorts by series then instance; 'random': no extension."""
    if file_names == "uid":
        return f"{ds.SOPInstanceUID}.dcm"
    if file_names == "instance":
        return f"IM_{int(ds.SeriesNumber):04d}_{int(ds.InstanceNumber):05d}.dcm"
    if file_names == "random":
        return secrets.token_hex(8)
    raise ValueError(f"file_names {file_names!r} is not one of 'uid', 'instance', 'random'")


def _save(ds: Dataset, path: Path) -> None:
    """Write a Part 10 file (explicit VR little endian) without overwriting an existing one."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    ds.save_as(path, enforce_file_format=True, overwrite=False)


def write_series(volume: np.ndarray, grid: GridSpec, out_dir: Path, *, modality: Modality = "CT",
                 series_description: str = "AIMI synthetic series", study: StudyInfo | None = None,
                 descending_files: bool = False, file_names: FileNaming = "uid",
                 extra_tags: Mapping[str, object] | None = None, image_type: Sequence[str] | None = None,
                 series_number: int = 1, body_part: str = "ABDOMEN", patient_position: str = "HFS",
                 frame_of_reference_uid: str | None = None, mr_sequence: str = "T1") -> list[Path]:
    """Write `volume` (slices, rows, columns; HU for CT) as one series; returns paths[k] for volume[k].

    `descending_files` numbers instances from the last slice along the normal (the reversed acquisition order).
    `image_type` defaults to ORIGINAL\\PRIMARY\\AXIAL (CT) or ORIGINAL\\PRIMARY\\OTHER (MR).
    `extra_tags` (DICOM keyword -> value, None deletes) is applied last, to every slice.
    `mr_sequence` picks acquisition parameters from MR_PRESETS.
    """
    if modality not in _SOP_CLASS:
        raise ValueError(f"modality {modality!r} is not one of {sorted(_SOP_CLASS)}")
    stored = _stored_pixels(volume, grid, modality)
    template = _series_template(
        grid, stored, modality, study or StudyInfo.new(), series_description=series_description,
        series_number=series_number, image_type=image_type or _DEFAULT_IMAGE_TYPE[modality], body_part=body_part,
        patient_position=patient_position, frame_of_reference_uid=frame_of_reference_uid or generate_uid(),
        mr_sequence=mr_sequence)
    out_dir.mkdir(parents=True, exist_ok=True)
    normal = grid.axes[:, 2]
    paths: list[Path] = []
    for k in range(grid.slices):
        ds = _slice_dataset(template, stored[k], grid, k, normal)
        ds.InstanceNumber = grid.slices - k if descending_files else k + 1
        _apply_extra_tags(ds, extra_tags or {})
        path = out_dir / _file_name(ds, file_names)
        _save(ds, path)
        paths.append(path)
    return paths


def _slice_dataset(template: Dataset, pixels: np.ndarray, grid: GridSpec, k: int, normal: np.ndarray) -> Dataset:
    """One slice: the shared attributes plus its own UID, position and pixels."""
    ds = copy.deepcopy(template)
    position = np.asarray(grid.first_position, float) + k * grid.slice_step * normal
    ds.SOPInstanceUID = generate_uid()
    ds.ImagePositionPatient = [_ds(v) for v in position]
    ds.SliceLocation = _ds(position @ normal)
    ds.PixelData = np.ascontiguousarray(pixels).astype(pixels.dtype.newbyteorder("<")).tobytes()
    return ds


def write_localizer(out_dir: Path, study: StudyInfo | None = None, *, slices: int = 3, modality: Modality = "CT",
                    size: int = 32, series_number: int = 99, file_names: FileNaming = "uid") -> list[Path]:
    """A scout series (ImageType ORIGINAL\\PRIMARY\\LOCALIZER): one slice per plane, coronal, sagittal, axial."""
    if not 1 <= slices <= 3:
        raise ValueError(f"slices {slices} must be 1..3 (one per plane)")
    study = study or StudyInfo.new()
    series_uid, frame_uid = generate_uid(), generate_uid()
    planes = (GridSpec.coronal, GridSpec.sagittal, GridSpec.axial)[:slices]
    body = [Ellipsoid((0.0, 0.0, 0.0), (size / 3, size / 4, size / 2), 40.0 if modality == "CT" else 300.0, 1)]
    paths: list[Path] = []
    for instance, plane in enumerate(planes, start=1):
        grid = plane(rows=size, columns=size, slices=1, pixel_spacing=(2.0, 2.0), slice_step=2.0)
        volume, _ = sample_phantom(grid, body, -1000.0 if modality == "CT" else 0.0)
        paths += write_series(volume, grid, out_dir, modality=modality, series_description="Localizer", study=study,
                              image_type=_LOCALIZER_TYPE, series_number=series_number, file_names=file_names,
                              frame_of_reference_uid=frame_uid,
                              extra_tags={"SeriesInstanceUID": series_uid, "InstanceNumber": instance})
    return paths


def write_sr(out_dir: Path, study: StudyInfo | None = None, *, series_number: int = 900) -> Path:
    """A minimal Comprehensive SR (one text finding) in the study: a non-image object an importer must skip."""
    study = study or StudyInfo.new()
    finding = hd.sr.TextContentItem(name=hd.sr.CodedConcept("121071", "DCM", "Finding"),
                                    value="Synthetic report: no findings", relationship_type="CONTAINS")
    root = hd.sr.ContainerContentItem(name=hd.sr.CodedConcept("126000", "DCM", "Imaging Measurement Report"))
    root.ContentSequence = [finding]
    sr = hd.sr.ComprehensiveSR(evidence=[_study_stub(study)], content=root, series_instance_uid=generate_uid(),
                               series_number=series_number, sop_instance_uid=generate_uid(), instance_number=1,
                               manufacturer=MANUFACTURER, institution_name="AIMI Model Hub")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{sr.SOPInstanceUID}.dcm"
    sr.save_as(path, enforce_file_format=True, overwrite=False)
    return path


def _study_stub(study: StudyInfo) -> Dataset:
    """An image reference carrying the patient/study attributes highdicom copies from an SR's evidence."""
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID, ds.SeriesInstanceUID = CTImageStorage, generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID = study.patient_name, study.patient_id
    ds.PatientBirthDate, ds.PatientSex = study.patient_birth_date, study.patient_sex
    ds.StudyInstanceUID, ds.StudyID = study.study_uid, study.study_id
    ds.StudyDate, ds.StudyTime = study.study_date, study.study_time
    ds.AccessionNumber, ds.ReferringPhysicianName = study.accession, ""
    ds.StudyDescription = study.study_description
    return ds


def write_non_dicom(path: Path) -> Path:
    """A plain text file where DICOM files are expected (README, export log...)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("Exported by AIMI synthetic fixtures. This file is not DICOM.\n")
    return path


def write_truncated_copy(src: Path, dst: Path) -> Path:
    """The first half of `src`'s bytes: an interrupted copy or download."""
    data = src.read_bytes()
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(data[: len(data) // 2])
    return dst


def corrupt_pixel_data(path: Path) -> None:
    """Keep every header attribute but make the pixels undecodable where only a decoder can tell: RLE Lossless
    whose one segment holds a few bytes instead of Rows x Columns samples (native pixel data cut short is caught
    at the scan, by its length; a compressed stream's content only when it is decoded)."""
    ds = pydicom.dcmread(path)
    header = struct.pack("<16I", 1, 64, *([0] * 14))  # one segment, at offset 64
    ds.PixelData = pydicom.encaps.encapsulate([header + b"\x00\x00\x07\x00\x00\x00"])
    ds.file_meta.TransferSyntaxUID = pydicom.uid.RLELossless
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)


def grid_from_image(image: sitk.Image) -> tuple[GridSpec, np.ndarray]:
    """The acquisition grid and (slices, rows, columns) volume of a 3D image (e.g. a NIfTI), so that
    `write_series` can turn real volumes into DICOM; slices are reordered to ascend along the normal."""
    direction = np.asarray(image.GetDirection(), float).reshape(3, 3)
    row, column, through = direction[:, 0], direction[:, 1], direction[:, 2]
    volume = sitk.GetArrayFromImage(image).astype(np.float32)
    origin = np.asarray(image.GetOrigin(), float)
    if np.dot(np.cross(row, column), through) < 0:
        volume = volume[::-1]
        origin = origin + (image.GetSize()[2] - 1) * image.GetSpacing()[2] * through
    grid = GridSpec(rows=image.GetSize()[1], columns=image.GetSize()[0], slices=image.GetSize()[2],
                    pixel_spacing=(image.GetSpacing()[1], image.GetSpacing()[0]), slice_step=image.GetSpacing()[2],
                    orientation=(*row, *column), first_position=tuple(origin))
    return grid, np.ascontiguousarray(volume)
