"""BINARY SEG writer, segment tables and SEG reader, on real source series and real third-party SEGs."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from highdicom.color import CIELabColor
from highdicom.sr import CodedConcept
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from aimi.dicom.geometry import sort_by_position
from aimi.seg.segments import SegmentSpec, parse_segments
from aimi.seg.writer import SegHeader, build_seg, write_dataset_atomically
from aimi_testkit.seg_reader import read_seg_labelmap, read_seg_masks
from tests.support.data import SHARED_DATA
from tests.support.validators import dciodvfy_errors

DATA = SHARED_DATA
CT_HEAD = DATA / "ct-head-phantom-dcmqa-dicom"
MR_SAGITTAL = DATA / "mr-head-t1-sag-dcmqa-dicom"
DCMQI = DATA / "seg-real-examples" / "dcmqi"
HIGHDICOM = DATA / "seg-real-examples" / "highdicom"
SERIES = {"ct-axial": CT_HEAD, "mr-sagittal": MR_SAGITTAL}
WHERE = "models/bamf_nnunet_ct_kidney/config/default.yml: modules.DsegConverter.segments"

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"real DICOM data not present at {DATA}")

KIDNEY_TABLE = [
    {
        "label": 1,
        "name": "Kidney",
        "category": {"scheme": "SCT", "value": "123037004", "meaning": "Anatomical Structure"},
        "type": {"scheme": "SCT", "value": "64033007", "meaning": "Kidney"},
        "modifier": {"scheme": "SCT", "value": "51440002", "meaning": "Right and left"},
    },
    {
        "label": 2,
        "name": "Tumor",
        "category": {"scheme": "SCT", "value": "49755003", "meaning": "Morphologically Altered Structure"},
        "type": {"scheme": "SCT", "value": "4147007", "meaning": "Mass"},
        "region": {"scheme": "SCT", "value": "64033007", "meaning": "Kidney"},
    },
    {
        "label": 3,
        "name": "Cyst",
        "category": {"scheme": "SCT", "value": "49755003", "meaning": "Morphologically Altered Structure"},
        "type": {"scheme": "SCT", "value": "367643001", "meaning": "Cyst"},
        "region": {"scheme": "SCT", "value": "64033007", "meaning": "Kidney"},
    },
]

HEADER = SegHeader(
    series_description="AIMI Kidney Segmentation",
    series_number=900,
    body_part_examined="KIDNEY",
    algorithm_name="BAMF-Kidney-CT",
    algorithm_version="1.0.0",
    content_description="weights Task779_Kidney.zip sha256 0123abcd",
    software_versions="aimi 0.1.0",
)


def read_headers(folder: Path) -> list[Dataset]:
    """Headers only (no PixelData), in source frame order."""
    files = [path for path in folder.iterdir() if path.is_file() and path.name != "SOURCE.txt"]
    return sort_by_position([pydicom.dcmread(path, stop_before_pixels=True) for path in files])


def three_label_map(datasets: list[Dataset]) -> np.ndarray:
    """Labels 1-3 in different slices and places; the first two and the last slices stay empty."""
    slices, rows, cols = len(datasets), int(datasets[0].Rows), int(datasets[0].Columns)
    labels = np.zeros((slices, rows, cols), dtype=np.uint8)
    labels[2 : slices // 2, rows // 4 : rows // 2, cols // 4 : cols // 2] = 1
    labels[slices // 3 : 2 * slices // 3, rows // 2 : 3 * rows // 4, cols // 2 : 3 * cols // 4] = 2
    labels[slices - 3, rows // 8 : rows // 4, cols // 2 : cols // 2 + 7] = 3
    labels[slices // 3, 3, 5] = 3
    return labels


def frames_by_source(seg_path: Path) -> list[tuple[str, int, np.ndarray]]:
    """(referenced SOPInstanceUID, segment number, frame pixels) per frame, decoded with pydicom alone."""
    ds = pydicom.dcmread(seg_path)
    pixels = ds.pixel_array.reshape(int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns))
    frames = []
    for group, frame in zip(ds.PerFrameFunctionalGroupsSequence, pixels, strict=True):
        (source,) = group.DerivationImageSequence[0].SourceImageSequence
        segment = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        frames.append((str(source.ReferencedSOPInstanceUID), segment, frame.astype(bool)))
    return frames


@pytest.fixture(scope="module")
def segments() -> list[SegmentSpec]:
    return parse_segments(copy.deepcopy(KIDNEY_TABLE), WHERE)


@pytest.fixture(scope="module", params=sorted(SERIES))
def written(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, segments: list[SegmentSpec]):
    """(source headers, label map, SEG path) for each real series, built once per module."""
    datasets = read_headers(SERIES[request.param])
    labels = three_label_map(datasets)
    path = tmp_path_factory.mktemp(request.param) / "kidney.seg.dcm"
    write_dataset_atomically(build_seg(labels, datasets, segments, HEADER), path)
    return datasets, labels, path


def uids(datasets: list[Dataset]) -> list[str]:
    return [str(ds.SOPInstanceUID) for ds in datasets]


def test_source_headers_are_read_without_pixel_data(written: tuple) -> None:
    datasets, _, _ = written
    assert not any("PixelData" in ds for ds in datasets)


def test_seg_passes_dciodvfy(written: tuple) -> None:
    _, _, path = written
    assert dciodvfy_errors(path) == []


def test_seg_read_back_equals_label_map_voxel_for_voxel(written: tuple, segments: list[SegmentSpec]) -> None:
    datasets, labels, path = written
    masks = read_seg_masks(path, uids(datasets))
    assert list(masks) == [spec.name for spec in segments]
    for spec in segments:
        np.testing.assert_array_equal(masks[spec.name], labels == spec.label)
    np.testing.assert_array_equal(read_seg_labelmap(path, uids(datasets)), labels)


def test_seg_frames_reference_source_slices(written: tuple, segments: list[SegmentSpec]) -> None:
    datasets, labels, path = written
    index_of = {uid: k for k, uid in enumerate(uids(datasets))}
    seg = pydicom.dcmread(path, stop_before_pixels=True)
    for (uid, number, frame), group in zip(frames_by_source(path), seg.PerFrameFunctionalGroupsSequence, strict=True):
        k = index_of[uid]
        position = group.PlanePositionSequence[0].ImagePositionPatient
        np.testing.assert_allclose([float(v) for v in position], [float(v) for v in datasets[k].ImagePositionPatient])
        np.testing.assert_array_equal(frame, labels[k] == segments[number - 1].label)


def test_empty_frames_are_omitted_by_default(written: tuple, segments: list[SegmentSpec]) -> None:
    datasets, labels, path = written
    non_empty = {(uid, number) for uid, number, frame in frames_by_source(path)}
    expected = {
        (str(ds.SOPInstanceUID), number)
        for k, ds in enumerate(datasets)
        for number, spec in enumerate(segments, start=1)
        if (labels[k] == spec.label).any()
    }
    assert non_empty == expected
    assert all(frame.any() for _, _, frame in frames_by_source(path))


def test_keep_empty_frames_writes_every_frame_of_every_segment(segments: list[SegmentSpec], tmp_path: Path) -> None:
    datasets = read_headers(MR_SAGITTAL)
    labels = three_label_map(datasets)
    path = tmp_path / "all-frames.seg.dcm"
    write_dataset_atomically(build_seg(labels, datasets, segments, HEADER, keep_empty_frames=True), path)
    pairs = [(uid, number) for uid, number, _ in frames_by_source(path)]
    assert sorted(pairs) == sorted((uid, n) for uid in uids(datasets) for n in (1, 2, 3))
    assert dciodvfy_errors(path) == []
    np.testing.assert_array_equal(read_seg_labelmap(path, uids(datasets)), labels)


def test_segment_without_voxels_is_still_described(segments: list[SegmentSpec], tmp_path: Path) -> None:
    datasets = read_headers(MR_SAGITTAL)
    labels = three_label_map(datasets)
    labels[labels == 3] = 0
    path = tmp_path / "no-cyst.seg.dcm"
    write_dataset_atomically(build_seg(labels, datasets, segments, HEADER), path)
    seg = pydicom.dcmread(path, stop_before_pixels=True)
    assert [item.SegmentLabel for item in seg.SegmentSequence] == ["Kidney", "Tumor", "Cyst"]
    assert {number for _, number, _ in frames_by_source(path)} == {1, 2}
    assert dciodvfy_errors(path) == []
    assert not read_seg_masks(path, uids(datasets))["Cyst"].any()


def test_all_empty_label_map_keeps_every_frame(segments: list[SegmentSpec]) -> None:
    datasets = read_headers(MR_SAGITTAL)
    labels = np.zeros((len(datasets), int(datasets[0].Rows), int(datasets[0].Columns)), dtype=np.uint8)
    seg = build_seg(labels, datasets, segments, HEADER)
    assert int(seg.NumberOfFrames) == len(datasets) * len(segments)


def test_seg_header_and_segment_codes_are_as_given(written: tuple) -> None:
    _, _, path = written
    seg = pydicom.dcmread(path, stop_before_pixels=True)
    assert seg.SeriesDescription == "AIMI Kidney Segmentation"
    assert seg.SeriesNumber == 900
    assert seg.BodyPartExamined == "KIDNEY"
    assert str(seg.ContentCreatorName) == "BAMFHealth^AI"
    assert seg.ContentDescription == "weights Task779_Kidney.zip sha256 0123abcd"
    assert seg.SegmentationType == "BINARY"
    assert seg.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    kidney, tumor, cyst = seg.SegmentSequence
    assert [item.SegmentNumber for item in seg.SegmentSequence] == [1, 2, 3]
    assert [item.SegmentLabel for item in seg.SegmentSequence] == ["Kidney", "Tumor", "Cyst"]
    for item in seg.SegmentSequence:
        assert item.SegmentAlgorithmType == "AUTOMATIC"
        assert item.SegmentAlgorithmName == "BAMF-Kidney-CT"
        (algorithm,) = item.SegmentationAlgorithmIdentificationSequence
        assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == ("BAMF-Kidney-CT", "1.0.0")
        family = CodedConcept.from_dataset(algorithm.AlgorithmFamilyCodeSequence[0])
        assert family == codes.cid7162.ArtificialIntelligence
    assert code_of(kidney.SegmentedPropertyCategoryCodeSequence[0]) == ("123037004", "SCT", "Anatomical Structure")
    kidney_type = kidney.SegmentedPropertyTypeCodeSequence[0]
    assert code_of(kidney_type) == ("64033007", "SCT", "Kidney")
    assert code_of(kidney_type.SegmentedPropertyTypeModifierCodeSequence[0]) == ("51440002", "SCT", "Right and left")
    assert "AnatomicRegionSequence" not in kidney
    assert code_of(tumor.SegmentedPropertyCategoryCodeSequence[0])[0] == "49755003"
    assert code_of(tumor.SegmentedPropertyTypeCodeSequence[0]) == ("4147007", "SCT", "Mass")
    assert "SegmentedPropertyTypeModifierCodeSequence" not in tumor.SegmentedPropertyTypeCodeSequence[0]
    assert code_of(cyst.SegmentedPropertyTypeCodeSequence[0]) == ("367643001", "SCT", "Cyst")
    assert [code_of(region) for region in cyst.AnatomicRegionSequence] == [("64033007", "SCT", "Kidney")]


def code_of(item: Dataset) -> tuple[str, str, str]:
    return str(item.CodeValue), str(item.CodingSchemeDesignator), str(item.CodeMeaning)


def test_label_value_missing_from_table_is_refused(segments: list[SegmentSpec]) -> None:
    datasets = read_headers(MR_SAGITTAL)
    labels = three_label_map(datasets)
    labels[5, 10, 10] = 7
    with pytest.raises(ValueError, match=r"label value\(s\) \[7\]"):
        build_seg(labels, datasets, segments, HEADER)


def test_label_value_in_a_gap_of_the_table_is_refused() -> None:
    """Labels 1 and 3 only: a 2 lies within the table's range, so the min/max shortcut must not pass it."""
    table = [copy.deepcopy(KIDNEY_TABLE[0]), copy.deepcopy(KIDNEY_TABLE[2])]
    datasets = read_headers(MR_SAGITTAL)
    with pytest.raises(ValueError, match=r"label value\(s\) \[2\]"):
        build_seg(three_label_map(datasets), datasets, parse_segments(table, WHERE), HEADER)


def test_label_map_off_the_source_grid_is_refused(segments: list[SegmentSpec]) -> None:
    datasets = read_headers(MR_SAGITTAL)
    with pytest.raises(ValueError, match="shape"):
        build_seg(three_label_map(datasets)[1:], datasets, segments, HEADER)


def test_segments_follow_table_order_not_label_values(tmp_path: Path) -> None:
    table = copy.deepcopy(KIDNEY_TABLE[:2])
    table[0]["label"], table[1]["label"] = 9, 8
    datasets = read_headers(MR_SAGITTAL)
    labels = three_label_map(datasets)
    labels[labels == 3] = 0
    remapped = np.select([labels == 1, labels == 2], [9, 8], 0).astype(np.uint8)
    path = tmp_path / "remapped.seg.dcm"
    write_dataset_atomically(build_seg(remapped, datasets, parse_segments(table, WHERE), HEADER), path)
    masks = read_seg_masks(path, uids(datasets))
    np.testing.assert_array_equal(masks["Kidney"], labels == 1)
    np.testing.assert_array_equal(masks["Tumor"], labels == 2)
    np.testing.assert_array_equal(read_seg_labelmap(path, uids(datasets), {"Kidney": 9, "Tumor": 8}), remapped)


def test_parse_segments_gives_coded_concepts(segments: list[SegmentSpec]) -> None:
    kidney, tumor, cyst = segments
    assert (kidney.label, kidney.name) == (1, "Kidney")
    assert kidney.category == CodedConcept("123037004", "SCT", "Anatomical Structure")
    assert kidney.type == codes.SCT.Kidney
    assert kidney.modifier == CodedConcept("51440002", "SCT", "Right and left")
    assert kidney.region is None
    assert tumor.region == codes.SCT.Kidney
    assert cyst.modifier is None


def _set(path: str, value: object) -> Callable[[list], None]:
    """Mutate entry [0] of a copy of the table at a dotted key path."""

    def mutate(table: list) -> None:
        *parents, last = path.split(".")
        target = table[0]
        for key in parents:
            target = target[key]
        target[last] = value

    return mutate


def _delete(path: str) -> Callable[[list], None]:
    def mutate(table: list) -> None:
        *parents, last = path.split(".")
        target = table[0]
        for key in parents:
            target = target[key]
        del target[last]

    return mutate


@pytest.mark.parametrize(
    ("mutate", "where", "rule"),
    [
        (_delete("type"), "segments[0]", "missing required key(s) ['type']"),
        (_set("colour", "red"), "segments[0]", "unknown key(s) ['colour']; valid keys are ['label', 'name'"),
        (_set("label", 0), "segments[0].label", "must be a positive integer"),
        (_set("label", "1"), "segments[0].label", "must be a positive integer"),
        (_set("label", True), "segments[0].label", "must be a positive integer"),
        (_set("label", 70000), "segments[0].label", "up to 65535"),
        (_set("label", 2), "segments[1].label", "duplicate label 2 (already used by"),
        (_set("name", "Tumor"), "segments[1].name", "duplicate name 'Tumor'"),
        (_set("type.scheme", "SNOMED"), "segments[0].type.scheme", "use one of ['SCT', 'DCM', 'NCIt'"),
        (_set("type.value", 64033007), "segments[0].type.value", "must be a non-empty string (quote numbers"),
        (_delete("category.meaning"), "segments[0].category", "missing required key(s) ['meaning']"),
        (_set("modifier", "51440002"), "segments[0].modifier", "must be a mapping with keys ['scheme'"),
        (_set("name", "x" * 65), "segments[0].name", "longer than 64 characters"),
    ],
)
def test_segment_table_errors_name_the_path_and_rule(mutate: Callable[[list], None], where: str, rule: str) -> None:
    table = copy.deepcopy(KIDNEY_TABLE)
    mutate(table)
    with pytest.raises(ValueError) as error:
        parse_segments(table, WHERE)
    message = str(error.value)
    assert message.startswith(f"{WHERE}{where.removeprefix('segments')}: "), message
    assert rule in message


@pytest.mark.parametrize("raw", [None, [], {"label": 1}])
def test_segment_table_must_be_a_non_empty_list(raw: object) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(WHERE)}: must be a non-empty list"):
        parse_segments(raw, WHERE)


def test_reader_reads_dcmqi_liver_seg() -> None:
    sources = read_headers(DCMQI / "ct-3slice")
    masks = read_seg_masks(DCMQI / "liver.dcm", uids(sources))
    assert list(masks) == ["Liver"]
    assert masks["Liver"].shape == (3, 512, 512)
    expected = np.zeros((3, 512, 512), dtype=bool)
    for uid, _, frame in frames_by_source(DCMQI / "liver.dcm"):
        expected[uids(sources).index(uid)] = frame
    np.testing.assert_array_equal(masks["Liver"], expected)
    assert all(masks["Liver"][k].sum() > 30000 for k in range(3))


def test_reader_orders_frames_by_requested_uids_and_fills_unreferenced_with_zeros() -> None:
    sources = read_headers(DCMQI / "ct-3slice")
    forward = read_seg_masks(DCMQI / "liver.dcm", uids(sources))["Liver"]
    backward = read_seg_masks(DCMQI / "liver.dcm", [*uids(sources)[::-1], "1.2.3.4"])["Liver"]
    np.testing.assert_array_equal(backward[:3], forward[::-1])
    assert not backward[3].any()


def test_reader_paints_later_dcmqi_segments_over_earlier_ones() -> None:
    sources = read_headers(DCMQI / "ct-3slice")
    masks = read_seg_masks(DCMQI / "partial_overlaps.dcm", uids(sources))
    labelmap = read_seg_labelmap(DCMQI / "partial_overlaps.dcm", uids(sources))
    assert list(masks) == ["GREEN", "ORANGE", "PURPLE", "LIGHT_BLUE", "DARK_BLUE"]
    expected = np.zeros(labelmap.shape, dtype=np.uint8)
    for value, mask in enumerate(masks.values(), start=1):
        expected[mask] = value
    assert (masks["GREEN"] & masks["PURPLE"]).any()
    np.testing.assert_array_equal(labelmap, expected)


def test_reader_reads_highdicom_binary_seg() -> None:
    sources = read_headers(HIGHDICOM / "source-ct")
    masks = read_seg_masks(HIGHDICOM / "seg_image_ct_binary.dcm", uids(sources))
    expected = np.zeros((len(sources), 16, 16), dtype=bool)
    for uid, _, frame in frames_by_source(HIGHDICOM / "seg_image_ct_binary.dcm"):
        expected[uids(sources).index(uid)] = frame
    assert list(masks) == ["first segment"]
    np.testing.assert_array_equal(masks["first segment"], expected)
    assert expected.any()


def test_reader_reads_dcmqi_labelmap_seg_without_its_background() -> None:
    path = DCMQI / "sparse-labelmap-ppv5.dcm"
    seg = pydicom.dcmread(path, stop_before_pixels=True)
    referenced = [
        str(source.ReferencedSOPInstanceUID)
        for group in seg.PerFrameFunctionalGroupsSequence
        for source in group.DerivationImageSequence[0].SourceImageSequence
    ]
    masks = read_seg_masks(path, referenced)
    assert list(masks) == ["Liver"]
    assert masks["Liver"].shape == (2, int(seg.Rows), int(seg.Columns))
    assert masks["Liver"].any()
    np.testing.assert_array_equal(read_seg_labelmap(path, referenced), masks["Liver"].astype(np.uint8))


def test_reader_accepts_a_dataset(written: tuple) -> None:
    datasets, labels, path = written
    masks = read_seg_masks(pydicom.dcmread(path), uids(datasets))
    np.testing.assert_array_equal(masks["Tumor"], labels == 2)


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(written: tuple, tmp_path: Path) -> None:
    _, _, path = written
    target = tmp_path / "out.seg.dcm"
    target.write_bytes(b"old")
    write_dataset_atomically(pydicom.dcmread(path), target)
    assert pydicom.dcmread(target).SOPInstanceUID == pydicom.dcmread(path).SOPInstanceUID
    assert [p.name for p in tmp_path.iterdir()] == ["out.seg.dcm"]


def test_atomic_write_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.seg.dcm"
    target.write_bytes(b"old")
    broken = Dataset()
    broken.PatientName = "Broken^Dataset"
    with pytest.raises(ValueError, match="Transfer Syntax"):
        write_dataset_atomically(broken, target)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.seg.dcm"]


@pytest.mark.parametrize("rgb", [[255, 0], [0, 0, 256], [0.5, 0, 0], "red", [True, 0, 0]])
def test_a_segment_colour_that_is_not_three_bytes_is_refused_naming_it(rgb: object) -> None:
    table = [dict(KIDNEY_TABLE[0], rgb=rgb)]
    with pytest.raises(ValueError, match=r"segments\[0\]\.rgb: must be \[red, green, blue\], three integers 0-255"):
        parse_segments(table, "segments")


def test_colour_and_description_reach_the_segment(tmp_path: Path) -> None:
    """What 3D Slicer (dcmqi) and OHIF colour a segment with, and the description the published SEGs carry."""
    datasets = read_headers(CT_HEAD)
    [spec] = parse_segments([dict(KIDNEY_TABLE[0], rgb=[212, 126, 151], description="kidney")], "segments")
    labels = np.zeros((len(datasets), int(datasets[0].Rows), int(datasets[0].Columns)), dtype=np.uint8)
    labels[2:5, 10:20, 10:20] = 1
    path = tmp_path / "seg.dcm"
    write_dataset_atomically(build_seg(labels, datasets, [spec], HEADER), path)
    [item] = pydicom.dcmread(path, stop_before_pixels=True).SegmentSequence
    assert tuple(CIELabColor.from_dicom_value(item.RecommendedDisplayCIELabValue).to_rgb()) == (212, 126, 151)
    assert item.SegmentDescription == "kidney"
    assert dciodvfy_errors(path) == []
