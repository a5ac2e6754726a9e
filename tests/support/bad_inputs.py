"""A corpus of bad and unusual DICOM input, all in one folder with good series, for the kidney CT chain.

Each class writes its own subfolder and says what a run must make of it: the series' status and a pattern its
reason must match, or, for a file that is no usable image, the ignored-file reason. Every class plants its own
patient name, so a test can grep every output for all of them (no name may reach a log, the report or stdout).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import DeflatedExplicitVRLittleEndian, RLELossless, generate_uid

from aimi_testkit.phantoms import demo_grid, phantom_shapes
from aimi_testkit.synthetic import (
    GridSpec,
    StudyInfo,
    sample_phantom,
    write_localizer,
    write_non_dicom,
    write_series,
    write_sr,
)

#: Kidney CT intensities (HU) of the test model's phantom.
INTENSITIES = {0: [-100.0], 1: [150.0], 2: [60.0], 3: [0.0]}
SLICES = 20  # the kidney preset's minimum


@dataclass
class Expect:
    """What a run must report for one class: a series (by UID) or an ignored file (by path under the root)."""

    status: str  # selected | skipped | rejected | ignored | absent (not reported as a series at all)
    reason: str = ""  # regex the reason must match (search)
    series_uid: str = ""
    files: list[str] = field(default_factory=list)  # ignored files, relative to the corpus root
    patient_name: str = ""
    warning: str = ""  # regex a warning of the case must match
    series_warning: str = ""  # regex a warning of the series entry must match


def _series(folder: Path, name: str, *, grid: GridSpec | None = None, seed: int = 0,
            **options: object) -> tuple[list[Path], str]:
    """A kidney phantom series under `folder` with patient `name`; returns its files and SeriesInstanceUID."""
    grid = grid or demo_grid(rows=32, columns=32, slices=SLICES)
    volume, _ = sample_phantom(grid, phantom_shapes(INTENSITIES, organ=1, lesions=[2, 3]), -100.0, noise_sd=5.0,
                               rng=np.random.default_rng(seed))
    study = StudyInfo.new(f"ID-{name}", patient_name=name)
    files = write_series(volume, grid, folder, study=study, **options)  # type: ignore[arg-type]
    return files, str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)


def _edit(files: list[Path], change: Callable[[pydicom.Dataset], None], *, only: int | None = None) -> None:
    for index, path in enumerate(files):
        if only is None or index == only:
            ds = pydicom.dcmread(path)
            change(ds)
            ds.save_as(path)


def _rel(root: Path, paths: list[Path]) -> list[str]:
    return [str(p.relative_to(root)) for p in paths]


def _delete(*keywords: str) -> Callable[[pydicom.Dataset], None]:
    def change(ds: pydicom.Dataset) -> None:
        for keyword in keywords:
            if keyword in ds:
                delattr(ds, keyword)
    return change


def _set(**values: object) -> Callable[[pydicom.Dataset], None]:
    def change(ds: pydicom.Dataset) -> None:
        for keyword, value in values.items():
            setattr(ds, keyword, value)
    return change


def _raw(keyword: str, text: bytes) -> Callable[[pydicom.Dataset], None]:
    """Store `text` as the element's raw bytes, whatever its VR allows (what a broken writer leaves behind)."""
    def change(ds: pydicom.Dataset) -> None:
        element = ds[keyword]
        ds[keyword] = pydicom.dataelem.RawDataElement(element.tag, element.VR, len(text), text, 0, False, True)
    return change


def _edited(root: Path, name: str, folder: str, change: Callable[[pydicom.Dataset], None], status: str,
            reason: str, *, only: int | None = None, warning: str = "") -> Expect:
    """A phantom series with one header change (in every file, or file `only`), and what a run must say of it."""
    files, uid = _series(root / folder, name)
    _edit(files, change, only=only)
    return Expect(status, reason, uid, patient_name=name, warning=warning)


def good(root: Path, name: str) -> Expect:
    _, uid = _series(root / "good" / "a" / "b", name, file_names="random")
    return Expect("selected", "^$|duplicate", uid, patient_name=name)


def good_second(root: Path, name: str) -> Expect:
    _, uid = _series(root / "good2", name, seed=1, descending_files=True)
    return Expect("selected", "^$", uid, patient_name=name)


def zero_byte(root: Path, name: str) -> Expect:
    path = root / "zero" / "empty.dcm"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    return Expect("ignored", "not a DICOM file|unreadable", files=_rel(root, [path]))


def junk(root: Path, name: str) -> Expect:
    path = write_non_dicom(root / "junk" / "README.dcm")
    return Expect("ignored", "not a DICOM file", files=_rel(root, [path]))


def truncated_file(root: Path, name: str) -> Expect:
    files, uid = _series(root / "truncated_file", name)
    data = files[5].read_bytes()
    files[5].write_bytes(data[:200])  # too short to say which series it was: the others show the gap
    return Expect("rejected", "slice spacing is not uniform", uid, files=_rel(root, [files[5]]), patient_name=name)


def no_pixel_data(root: Path, name: str) -> Expect:
    files, uid = _series(root / "no_pixels", name)
    _edit(files, _delete("PixelData"))
    return Expect("ignored", "without pixel data", uid, files=_rel(root, files), patient_name=name)


def structured_report(root: Path, name: str) -> Expect:
    path = write_sr(root / "sr", StudyInfo.new(patient_name=name))
    return Expect("ignored", "not an image object", files=_rel(root, [path]), patient_name=name)


def localizer(root: Path, name: str) -> Expect:
    files = write_localizer(root / "localizer", StudyInfo.new(patient_name=name))
    uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)
    return Expect("skipped", "LOCALIZER|Image", uid, patient_name=name)


def slice_gap(root: Path, name: str) -> Expect:
    files, uid = _series(root / "gap", name)
    files[7].unlink()
    return Expect("rejected", "slice spacing is not uniform", uid, patient_name=name)


def duplicate_files(root: Path, name: str) -> Expect:
    files, uid = _series(root / "duplicates", name)
    (root / "duplicates" / "copy.dcm").write_bytes(files[3].read_bytes())
    return Expect("selected", "1 duplicate file", uid, patient_name=name)


def mixed_sizes(root: Path, name: str) -> Expect:
    files, uid = _series(root / "mixed_sizes", name)
    big, _ = _series(root / "mixed_sizes_tmp", name, grid=demo_grid(rows=40, columns=32, slices=SLICES))
    replacement = pydicom.dcmread(big[4])
    replacement.SeriesInstanceUID = uid
    replacement.StudyInstanceUID = pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID
    replacement.save_as(files[4])
    for path in big:
        path.unlink()
    (root / "mixed_sizes_tmp").rmdir()
    return Expect("rejected", "Rows/Columns differ", uid, patient_name=name)


def mixed_orientations(root: Path, name: str) -> Expect:
    return _edited(root, name, "mixed_orientations", _set(ImageOrientationPatient=[1, 0, 0, 0, 0.9998477, -0.0174524]),
                   "rejected", "ImageOrientationPatient differs", only=3)


def gantry_tilt(root: Path, name: str) -> Expect:
    _, uid = _series(root / "tilt", name, extra_tags={"GantryDetectorTilt": 12.0})
    return Expect("skipped", "GantryDetectorTilt", uid, patient_name=name)


def rle_compressed(root: Path, name: str) -> Expect:
    files, uid = _series(root / "rle", name)
    for path in files:
        ds = pydicom.dcmread(path)
        ds.compress(RLELossless)
        ds.save_as(path)
    return Expect("selected", "^$", uid, patient_name=name)


def _deflate(files: list[Path]) -> None:
    for path in files:
        ds = pydicom.dcmread(path)
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
        ds.save_as(path)


def deflated(root: Path, name: str) -> Expect:
    files, uid = _series(root / "deflated", name)
    _deflate(files)
    return Expect("selected", "^$", uid, patient_name=name)


def _stored_as(bits: int, signed: bool, slope: float) -> Callable[[pydicom.Dataset], None]:
    """Re-encode the slice's HU as `bits`-bit (signed or not) stored values with RescaleSlope `slope`."""
    dtype = {(8, False): np.uint8, (16, True): np.int16, (32, True): np.int32}[(bits, signed)]

    def change(ds: pydicom.Dataset) -> None:
        hounsfield = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        intercept = 0.0 if signed else -1024.0
        info = np.iinfo(dtype)
        stored = np.clip(np.rint((hounsfield - intercept) / slope), info.min, info.max).astype(dtype)
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, int(signed)
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        ds.PixelData = stored.tobytes()
    return change


def eight_bit(root: Path, name: str) -> Expect:
    return _edited(root, name, "eight_bit", _stored_as(8, False, 8.0), "selected", "^$")


def thirty_two_bit(root: Path, name: str) -> Expect:
    return _edited(root, name, "thirty_two_bit", _stored_as(32, True, 1.0), "selected", "^$")


def signed_mix(root: Path, name: str) -> Expect:
    """One slice stored signed, the others unsigned, as mixed exports leave them."""
    return _edited(root, name, "signed_mix", _stored_as(16, True, 1.0), "selected|rejected", "^$|PixelRepresentation",
                   only=0)


def single_slice(root: Path, name: str) -> Expect:
    _, uid = _series(root / "single", name, grid=demo_grid(rows=32, columns=32, slices=1))
    return Expect("skipped|rejected", "slice", uid, patient_name=name)


def two_slices(root: Path, name: str) -> Expect:
    _, uid = _series(root / "two", name, grid=demo_grid(rows=32, columns=32, slices=2))
    return Expect("skipped", "@slices", uid, patient_name=name)


def symlink_loop(root: Path, name: str) -> Expect:
    _, uid = _series(root / "loop" / "inner", name)
    (root / "loop" / "inner" / "back").symlink_to(root / "loop")
    return Expect("selected", "^$", uid, patient_name=name)


def dicomdir(root: Path, name: str) -> Expect:
    ds = pydicom.Dataset()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.FileSetID = "AIMI"
    ds.DirectoryRecordSequence = []
    path = root / "dicomdir" / "DICOMDIR"
    path.parent.mkdir(parents=True)
    ds.save_as(path, enforce_file_format=True)
    return Expect("ignored", "not an image object", files=_rel(root, [path]))


def empty_uids(root: Path, name: str) -> Expect:
    files, _ = _series(root / "empty_uids", name)
    _edit(files, _set(SeriesInstanceUID=""))
    return Expect("rejected", "SeriesInstanceUID is empty", "", patient_name=name)


def multi_frame(root: Path, name: str) -> Expect:
    def two_frames(ds: pydicom.Dataset) -> None:
        ds.NumberOfFrames, ds.PixelData = 2, ds.PixelData * 2
    return _edited(root, name, "multi_frame", two_frames, "rejected", "multi-frame", only=0)


def long_strings(root: Path, name: str) -> Expect:
    files, uid = _series(root / "long_strings", name)
    _edit(files, _raw("StudyDescription", b"X" * 20000))
    _edit(files, _raw("SeriesDescription", b"Y" * 20000))
    return Expect("selected", "^$", uid, patient_name=name)


def non_ascii_utf8(root: Path, name: str) -> Expect:
    files, uid = _series(root / "utf8", name)
    _edit(files, _set(SpecificCharacterSet="ISO_IR 192", StudyDescription="Nieren Übersicht / 腎臓",
                      InstitutionName="Universitätsklinik Zürich"))
    return Expect("selected", "^$", uid, patient_name=name)


def undeclared_latin1(root: Path, name: str) -> Expect:
    files, uid = _series(root / "latin1", name)
    _edit(files, _raw("StudyDescription", "Nieren Übersicht".encode("latin-1")))
    _edit(files, _raw("InstitutionName", "Hôpital Cantonal ".encode("latin-1")))
    return Expect("selected", "^$", uid, patient_name=name)


def missing_position_everywhere(root: Path, name: str) -> Expect:
    return _edited(root, name, "no_position", _delete("ImagePositionPatient"),
                   "rejected", "ImagePositionPatient missing")


def missing_position_once(root: Path, name: str) -> Expect:
    return _edited(root, name, "no_position_once", _delete("ImagePositionPatient"),
                   "rejected", "ImagePositionPatient missing", only=9)


def missing_orientation(root: Path, name: str) -> Expect:
    return _edited(root, name, "no_orientation", _delete("ImageOrientationPatient"),
                   "rejected", "ImageOrientationPatient missing")


def missing_spacing(root: Path, name: str) -> Expect:
    return _edited(root, name, "no_spacing", _delete("PixelSpacing"), "rejected", "PixelSpacing missing")


def garbled_position(root: Path, name: str) -> Expect:
    return _edited(root, name, "garbled_position", _raw("ImagePositionPatient", b"abc\\def\\ghi "),
                   "rejected", "ImagePositionPatient .*not numeric", only=4)


def garbled_instance_number(root: Path, name: str) -> Expect:
    return _edited(root, name, "garbled_instance", _raw("InstanceNumber", b"x1 "), "selected", "^$")


def screen_save(root: Path, name: str) -> Expect:
    """A GE dose report: Secondary Capture, Modality CT, no geometry at all."""
    files, uid = _series(root / "screen_save", name, grid=demo_grid(rows=32, columns=32, slices=1))
    _edit(files, _delete("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness"))
    _edit(files, _set(SOPClassUID="1.2.840.10008.5.1.4.1.1.7", ImageType=["DERIVED", "SECONDARY", "SCREEN SAVE"]))
    return Expect("skipped|rejected", "ImageType|ImagePositionPatient", uid, patient_name=name)


def rgb(root: Path, name: str) -> Expect:
    files, uid = _series(root / "rgb", name)

    def to_rgb(ds: pydicom.Dataset) -> None:
        grey = np.clip(ds.pixel_array // 16, 0, 255).astype(np.uint8)
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelData = np.repeat(grey[..., None], 3, axis=2).tobytes()
    _edit(files, to_rgb)
    return Expect("rejected", "SamplesPerPixel '3': colour", uid, patient_name=name)


def name_without_caret(root: Path, name: str) -> Expect:
    """De-identified data often hold a name without `^`: highdicom warns and its warning prints the value."""
    _, uid = _series(root / "no_caret", name.replace("^", ""))
    return Expect("selected", "^$", uid, patient_name=name.replace("^", ""))


def dropped_first_and_last(root: Path, name: str) -> Expect:
    files, uid = _series(root / "dropped_ends", name)
    for path in (files[0], files[-1]):
        path.write_bytes(path.read_bytes()[:-100])
    return Expect("rejected", r"2 of 20 files unusable", uid, files=_rel(root, [files[0], files[-1]]),
                  patient_name=name)


def dropped_middle(root: Path, name: str) -> Expect:
    files, uid = _series(root / "dropped_middle", name)
    files[10].write_bytes(files[10].read_bytes()[:-300])
    return Expect("rejected", r"1 of 20 files unusable", uid, files=_rel(root, [files[10]]), patient_name=name)


def fifo(root: Path, name: str) -> Expect:
    path = root / "fifo" / "pipe.dcm"
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    return Expect("ignored", "not a regular file", files=_rel(root, [path]))


def zero_orientation(root: Path, name: str) -> Expect:
    return _edited(root, name, "zero_orientation", _set(ImageOrientationPatient=[0, 0, 0, 0, 0, 0]),
                   "rejected", "ImageOrientationPatient .*orthogonal unit")


def sheared_orientation(root: Path, name: str) -> Expect:
    return _edited(root, name, "sheared_orientation", _set(ImageOrientationPatient=[1, 0, 0, 0.5, 0.8660254, 0.2]),
                   "rejected", "ImageOrientationPatient .*orthogonal unit")


def zero_spacing(root: Path, name: str) -> Expect:
    return _edited(root, name, "zero_spacing", _set(PixelSpacing=[0, 0]), "rejected", "PixelSpacing .*> 0")


def illegal_uid(root: Path, name: str) -> Expect:
    files, _ = _series(root / "illegal_uid", name)
    _edit(files, _raw("SeriesInstanceUID", b"1.2.3/../x"))
    return Expect("rejected", "SeriesInstanceUID .*not a valid UID", "1.2.3/../x", patient_name=name)


def huge_rescale(root: Path, name: str) -> Expect:
    return _edited(root, name, "huge_rescale", _set(RescaleSlope="1e30"), "selected", "^$", warning="outside .*HU")


def ybr_colour(root: Path, name: str) -> Expect:
    return _edited(root, name, "ybr", _set(PhotometricInterpretation="YBR_FULL"),
                   "rejected", "PhotometricInterpretation 'YBR_FULL'")


def zero_rows(root: Path, name: str) -> Expect:
    files, uid = _series(root / "zero_rows", name)
    _edit(files, _set(Rows=0))
    return Expect("rejected|ignored", "Rows|pixel data", uid, files=[], patient_name=name)


def big_endian(root: Path, name: str) -> Expect:
    files, uid = _series(root / "big_endian", name)
    for path in files:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
        ds.PixelData = pixels.astype(pixels.dtype.newbyteorder(">")).tobytes()
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRBigEndian
        pydicom.filewriter.dcmwrite(path, ds, implicit_vr=False, little_endian=False, force_encoding=True)
    return Expect("selected|rejected", "^$|[Bb]ig", uid, patient_name=name)


def compressed_blob(root: Path, name: str) -> Expect:
    path = root / "compressed_blob" / "blob.dcm"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"DICM" + zlib.compress(b"x" * 1000))
    return Expect("ignored", "not a DICOM file|unreadable", files=_rel(root, [path]))


def deflated_cut_short(root: Path, name: str) -> Expect:
    """An interrupted copy of a deflated series: one file's compressed stream ends early (zlib.error in pydicom)."""
    files, uid = _series(root / "deflated_cut", name)
    _deflate(files)
    files[7].write_bytes(files[7].read_bytes()[:-400])
    return Expect("rejected", "slice spacing is not uniform", uid, files=_rel(root, [files[7]]), patient_name=name)


def nested_sequences(root: Path, name: str) -> Expect:
    """A small file whose sequences nest past Python's recursion limit (RecursionError in pydicom)."""
    files, _ = _series(root / "nested", name, grid=demo_grid(rows=32, columns=32, slices=1))
    item = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    sequence = struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF)
    data = files[0].read_bytes()
    files[0].write_bytes(data[:data.index(b"\x08\x00\x05\x00")] + (sequence + item) * 3000)
    return Expect("ignored", "unreadable DICOM", files=_rel(root, files))


def one_series_uid_two_studies(root: Path, name: str) -> Expect:
    """Two studies' series sharing one SeriesInstanceUID: both rejected, neither SEG overwrites the other."""
    _, uid = _series(root / "shared_uid" / "a", name)
    twin, _ = _series(root / "shared_uid" / "b", name, seed=2)
    _edit(twin, _set(SeriesInstanceUID=uid))
    return Expect("rejected", "SeriesInstanceUID is also used by 1 other study", uid, patient_name=name)


def rows_larger_than_pixels(root: Path, name: str) -> Expect:
    """Rows says 40 (or 60000) where the pixel data holds 32 rows: every file is unusable, nothing decodes it."""
    files, uid = _series(root / "rows_mismatch", name)
    _edit(files, _set(Rows=40))
    return Expect("ignored", "pixel data holds 2048 bytes but Rows 40", uid, files=_rel(root, files),
                  patient_name=name)


def sop_class_only_in_meta(root: Path, name: str) -> Expect:
    return _edited(root, name, "sop_class_in_meta", _delete("SOPClassUID"), "rejected", "SOPClassUID missing")


def enhanced_class_on_single_frames(root: Path, name: str) -> Expect:
    return _edited(root, name, "enhanced_class", _set(SOPClassUID=pydicom.uid.EnhancedCTImageStorage), "rejected",
                   r"SOPClassUID 1\.2\.840\.10008\.5\.1\.4\.1\.1\.2\.1 \(Enhanced CT Image Storage\)")


def retired_class(root: Path, name: str) -> Expect:
    return _edited(root, name, "retired_class", _set(SOPClassUID="1.2.840.10008.5.1.4.1.1.5"), "rejected",
                   r"SOPClassUID 1\.2\.840\.10008\.5\.1\.4\.1\.1\.5 \(Nuclear Medicine Image Storage")


def spacing_not_in_mm(root: Path, name: str) -> Expect:
    """PixelSpacing in micrometres: a 12.8 m field of view that nnU-Net would resample into gigabytes."""
    return _edited(root, name, "spacing_um", _set(PixelSpacing=[400, 400]), "rejected", "field of view 12800 x 12800")


def zero_slope(root: Path, name: str) -> Expect:
    return _edited(root, name, "zero_slope", _set(RescaleSlope=0), "rejected", "RescaleSlope .*: a slope of 0")


def nan_slope(root: Path, name: str) -> Expect:
    return _edited(root, name, "nan_slope", _raw("RescaleSlope", b"nan "), "rejected",
                   "RescaleSlope .*finite number")


def last_slice_cut_short(root: Path, name: str) -> Expect:
    """The last file of an interrupted copy, cut so short its header names no series: no gap to see, so the series
    is segmented, saying that an unreadable DICOM file lies in its folder."""
    files, uid = _series(root / "last_cut", name, grid=demo_grid(rows=32, columns=32, slices=SLICES + 1))
    files[-1].write_bytes(files[-1].read_bytes()[:200])
    return Expect("selected", "^$", uid, files=_rel(root, [files[-1]]), patient_name=name,
                  series_warning="1 unreadable DICOM file.* in the series' own folder")


def odd_file_name(root: Path, name: str) -> Expect:
    """A name with a newline and bytes that are not UTF-8: reported with escapes, so the report stays strict JSON."""
    write_non_dicom(root / "odd_names" / os.fsdecode(b"junk\xff\nname.dcm"))
    return Expect("ignored", "not a DICOM file", files=["odd_names/junk\\xff\\nname.dcm"])


def orientation_within_tolerance(root: Path, name: str) -> Expect:
    """One slice's orientation off by 5e-5 (a writer's rounding): one grid to the importer, one SEG orientation."""
    return _edited(root, name, "orientation_eps", _set(ImageOrientationPatient=[1, 0, 0, 0, 0.99999999, 0.00005]),
                   "selected", "^$", only=5)


def header_values_no_seg_may_carry(root: Path, name: str) -> Expect:
    """Patient and study values as archives hold them: a sex spelt out, an ACR-NEMA time, a birth date in words, a
    second name after a backslash, control characters. Segmented; the SEG carries them cleaned, saying which."""
    return _edited(root, name, "header_values", lambda ds: (
        _raw("PatientSex", b"Male")(ds), _raw("StudyTime", b"10:30:00")(ds), _raw("PatientBirthDate", b"unknown ")(ds),
        _raw("PatientID", b"ID\x07\\ID2 ")(ds), _raw("AccessionNumber", b"A\x01\\B ")(ds)),
        "selected", "^$", warning="SEG header: PatientSex")


def slice_thickness_unusable(root: Path, name: str) -> Expect:
    """SliceThickness 0 (a Type 2 value many exports leave empty or absent): the SEG takes the slice step."""
    return _edited(root, name, "thickness_zero", _set(SliceThickness=0), "selected", "^$",
                   warning="SEG header: SliceThickness")


def iso2022_japanese(root: Path, name: str) -> Expect:
    """A Japanese name under ISO 2022 code extensions (first value empty): decoded, the SEG written as UTF-8."""
    def japanese(ds: pydicom.Dataset) -> None:
        ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
        ds.StudyDescription = "腎臓"
    return _edited(root, name, "iso2022", japanese, "selected", "^$")


def values_dcm2niix_splits_on(root: Path, name: str) -> Expect:
    """One grid whose slices alternate EchoNumbers and ProtocolName (as some exports write them): dcm2niix would
    split it into two volumes, neither on the series' grid."""
    files, uid = _series(root / "split_values", name)
    for index in range(1, SLICES, 2):
        _edit(files, _set(EchoNumbers=2, ProtocolName="ABDOMEN B"), only=index)
    return Expect("selected", "^$", uid, patient_name=name)


CLASSES: dict[str, Callable[[Path, str], Expect]] = {function.__name__: function for function in [
    good, good_second, zero_byte, junk, truncated_file, no_pixel_data, structured_report, localizer, slice_gap,
    duplicate_files, mixed_sizes, mixed_orientations, gantry_tilt, rle_compressed, deflated, eight_bit,
    thirty_two_bit, signed_mix, single_slice, two_slices, symlink_loop, dicomdir, empty_uids, multi_frame,
    long_strings, non_ascii_utf8, undeclared_latin1, missing_position_everywhere, missing_position_once,
    missing_orientation, missing_spacing, garbled_position, garbled_instance_number, screen_save, rgb,
    name_without_caret, dropped_first_and_last, dropped_middle, fifo, zero_orientation, sheared_orientation,
    zero_spacing, illegal_uid, huge_rescale, ybr_colour, zero_rows, big_endian, compressed_blob,
    deflated_cut_short, nested_sequences, one_series_uid_two_studies, rows_larger_than_pixels, sop_class_only_in_meta,
    enhanced_class_on_single_frames, retired_class, spacing_not_in_mm, zero_slope, nan_slope, last_slice_cut_short,
    odd_file_name, orientation_within_tolerance, header_values_no_seg_may_carry, slice_thickness_unusable,
    iso2022_japanese, values_dcm2niix_splits_on,
]}


def write_corpus(root: Path) -> dict[str, Expect]:
    """Every class under `root/<class folder>`; each plants its own patient name `PLANTED^<CLASS>`."""
    return {name: write(root, f"PLANTED^{name.upper()}") for name, write in CLASSES.items()}
