"""Our SEGs as OHIF reads them: @cornerstonejs/adapters (OHIF's SEG import) decodes each SEG the project's writer makes
on real DICOM, voxel for voxel, and shows each segment in the colour its table gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
import yaml

from aimi.dicom.geometry import sort_by_position
from aimi.seg.segments import SegmentSpec, parse_segments
from aimi.seg.writer import SegHeader, build_seg, write_dataset_atomically
from aimi_testkit.synthetic import GridSpec, write_series
from tests.support.data import SHARED_DATA
from tests.support.ohif_reader import ohif_decode, ohif_labels
from tests.support.readers import dcmqi_labels
from tests.support.validators import dciodvfy_errors

REPO = Path(__file__).resolve().parents[1]
SERIES = {
    "ct-axial": SHARED_DATA / "ct-head-phantom-dcmqa-dicom",
    "mr-sagittal": SHARED_DATA / "mr-head-t1-sag-dcmqa-dicom",
}
MODELS = sorted(path.name for path in (REPO / "models").iterdir() if (path / "config" / "default.yml").is_file())

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"real DICOM data not present at {SHARED_DATA}")



def model_segments(model: str) -> list[SegmentSpec]:
    """The segment table a model ships (its default workflow's DsegConverter), colours included."""
    config = yaml.safe_load((REPO / "models" / model / "config" / "default.yml").read_text())
    where = f"models/{model}/config/default.yml: modules.DsegConverter.segments"
    return parse_segments(config["modules"]["DsegConverter"]["segments"], where)


HEADER = SegHeader(
    series_description="AIMI OHIF reader check",
    series_number=900,
    body_part_examined="KIDNEY",
    algorithm_name="BAMF-Kidney-CT",
    algorithm_version="1.0.0",
)


def source_files(folder: Path) -> list[Path]:
    """The series' files in source frame order (the order the writer's label map follows)."""
    files = [path for path in folder.iterdir() if path.is_file() and path.name != "SOURCE.txt"]
    return [Path(ds.filename) for ds in sort_by_position([pydicom.dcmread(p, stop_before_pixels=True) for p in files])]


def three_label_map(slices: int, rows: int, cols: int) -> np.ndarray:
    """Labels 1-3, not symmetric in rows, columns or slices (a flip or transpose shows), one of them a single voxel;
    the first two and the last slices stay empty."""
    labels = np.zeros((slices, rows, cols), dtype=np.uint8)
    labels[2 : slices // 2, rows // 4 : rows // 2, cols // 8 : cols // 2] = 1
    labels[slices // 3 : 2 * slices // 3, rows // 2 : 7 * rows // 8, cols // 2 : 3 * cols // 4] = 2
    labels[slices - 3, rows // 8 : rows // 4, cols // 2 : cols // 2 + 7] = 3
    labels[slices // 3, 3, 5] = 3
    return labels


def write_seg(files: list[Path], labels: np.ndarray, segments: list[SegmentSpec], path: Path) -> Path:
    datasets = [pydicom.dcmread(p, stop_before_pixels=True) for p in files]
    write_dataset_atomically(build_seg(labels, datasets, segments, HEADER), path)
    return path


def shape_of(files: list[Path]) -> tuple[int, int, int]:
    first = pydicom.dcmread(files[0], stop_before_pixels=True)
    return len(files), int(first.Rows), int(first.Columns)


@pytest.mark.parametrize("series", sorted(SERIES))
def test_ohif_decodes_our_seg_voxel_for_voxel_in_the_table_colours(series: str, tmp_path: Path) -> None:
    files = source_files(SERIES[series])
    segments = model_segments("bamf_nnunet_ct_kidney")
    labels = three_label_map(*shape_of(files))
    seg = write_seg(files, labels, segments, tmp_path / "seg.dcm")
    decoded, colours = ohif_labels(seg, files, {s.name: s.label for s in segments}, tmp_path / "ohif")
    np.testing.assert_array_equal(decoded, labels)
    assert colours == {s.label: s.rgb for s in segments}


def test_ohif_places_each_frame_on_its_own_source_slice_whatever_order_they_are_given_in(tmp_path: Path) -> None:
    """The label map follows `source_files` as given: reversed files give the reversed label map."""
    files = source_files(SERIES["mr-sagittal"])
    segments = model_segments("bamf_nnunet_ct_kidney")
    labels = three_label_map(*shape_of(files))
    seg = write_seg(files, labels, segments, tmp_path / "seg.dcm")
    decoded, _ = ohif_labels(seg, files[::-1], {s.name: s.label for s in segments}, tmp_path / "ohif")
    np.testing.assert_array_equal(decoded, labels[::-1])


def test_ohif_reads_the_segment_labels_without_overlap(tmp_path: Path) -> None:
    files = source_files(SERIES["ct-axial"])
    segments = model_segments("bamf_nnunet_ct_kidney")
    decoded = ohif_decode(write_seg(files, three_label_map(*shape_of(files)), segments, tmp_path / "seg.dcm"), files,
                          tmp_path / "ohif")
    labels = {number: segment["label"] for number, segment in decoded["segments"].items()}
    assert labels == {"1": "Kidney", "2": "Tumor", "3": "Cyst"}
    assert sorted(decoded["voxels"]) == ["1", "2", "3"]
    assert decoded["overlapping"] is False


def test_the_check_sees_a_seg_whose_frames_are_mirrored(tmp_path: Path) -> None:
    """Not vacuous: a SEG whose frames claim to run right to left (rows mirrored against the source) is decoded
    mirrored by OHIF, so a writer that got the orientation wrong would fail the tests above."""
    files = source_files(SERIES["ct-axial"])
    segments = model_segments("bamf_nnunet_ct_kidney")
    labels = three_label_map(*shape_of(files))
    path = write_seg(files, labels, segments, tmp_path / "seg.dcm")
    seg = pydicom.dcmread(path)
    plane = seg.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0]
    row, column = [float(v) for v in plane.ImageOrientationPatient[:3]], plane.ImageOrientationPatient[3:]
    plane.ImageOrientationPatient = [-v for v in row] + list(column)
    seg.save_as(path)
    decoded, _ = ohif_labels(path, files, {s.name: s.label for s in segments}, tmp_path / "ohif")
    np.testing.assert_array_equal(decoded, labels[:, :, ::-1])


@pytest.mark.parametrize("model", MODELS)
def test_ohif_shows_each_model_segment_in_its_configured_colour(model: str, tmp_path: Path) -> None:
    """Every model's segment table as shipped: OHIF's CIELab -> RGB gives back the configured `rgb` exactly."""
    segments = model_segments(model)
    files = source_files(SERIES["ct-axial"])
    slices, rows, cols = shape_of(files)
    labels = np.zeros((slices, rows, cols), dtype=np.uint8)
    for k, spec in enumerate(segments):
        labels[k + 1, 10 * k : 10 * k + 5, 20:30] = spec.label
    seg = write_seg(files, labels, segments, tmp_path / "seg.dcm")
    decoded, colours = ohif_labels(seg, files, {s.name: s.label for s in segments}, tmp_path / "ohif")
    np.testing.assert_array_equal(decoded, labels)
    assert colours == {s.label: s.rgb for s in segments if s.rgb is not None}


@pytest.mark.parametrize("model", ["bamf_nnunet_ct_kidney", "bamf_nnunet_mr_prostate"])
def test_frames_that_would_pack_into_an_odd_byte_count_get_one_empty_frame_so_ohif_opens_the_seg(
        model: str, tmp_path: Path) -> None:
    """30 x 36 pixels are 135 bytes a frame: five frames would end in PS3.5's padding byte, which OHIF's reader
    refuses; the writer adds one empty frame (kidney: another segment on a slice already framed; prostate, one
    segment: a slice without a frame), and every reader agrees."""
    grid = GridSpec.axial(rows=30, columns=36, slices=18)
    files = write_series(np.full((18, 30, 36), 40.0, np.float32), grid, tmp_path / "ct")
    segments = model_segments(model)
    labels = np.zeros((18, 30, 36), np.uint8)
    labels[4:9, 10:20, 5:25] = 1
    seg = write_seg(files, labels, segments, tmp_path / "seg.dcm")
    written = pydicom.dcmread(seg)
    assert (5 * 30 * 36 // 8) % 2 == 1 and int(written.NumberOfFrames) == 6 and len(written.PixelData) == 6 * 135
    assert dciodvfy_errors(seg) == []
    values = {s.name: s.label for s in segments}
    decoded, _ = ohif_labels(seg, files, values, tmp_path / "ohif")
    np.testing.assert_array_equal(decoded, labels)
    reference = sitk.ReadImage([str(f) for f in files])
    np.testing.assert_array_equal(dcmqi_labels(seg, reference, values, tmp_path / "dcmqi")[0], labels)
