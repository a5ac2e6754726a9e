"""Kidney CT end to end on a tiny real nnU-Net model: DICOM folders in, valid SEGs and a full report out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from aimi.models import load_model
from aimi_testkit.phantoms import write_phantom_series
from aimi_testkit.synthetic import StudyInfo, corrupt_pixel_data, write_non_dicom, write_sr, write_truncated_copy
from aimi_testkit.testmodel_cli import spec_for
from tests.support.chains import (
    assert_viewers_read_it,
    decoded_labels,
    exported_labels,
    run_chain,
    segment_colours,
    sorted_by_position,
    table_colours,
)
from tests.support.validators import dciodvfy_errors

MODEL = "bamf_nnunet_ct_kidney"
SEGMENTS = {  # the model card's segments: label -> (SegmentLabel, property type code, category code)
    1: ("Kidney", "64033007", "123037004"),
    2: ("Tumor", "4147007", "49755003"),
    3: ("Cyst", "367643001", "49755003"),
}
INTENSITIES = spec_for(load_model(MODEL), "kidney").intensities


def run(input_dir: Path, output_dir: Path, weights: Path, *extra: str) -> tuple[int, dict]:
    return run_chain(MODEL, input_dir, output_dir, weights, *extra)


def decoded(seg_path: Path, source_files: list[Path]) -> np.ndarray:
    return decoded_labels(seg_path, source_files, {value: name for value, (name, _, _) in SEGMENTS.items()})


@pytest.fixture(scope="module")
def three_series(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, tuple[list[Path], np.ndarray]]]:
    root = tmp_path_factory.mktemp("three")
    truth = {}
    for index in range(3):
        files, labels = write_phantom_series(root / f"study{index}", INTENSITIES, study=StudyInfo.new(f"P{index}"),
                                             seed=index, descending_files=index == 1, file_names="random")
        uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)
        truth[uid] = (files, labels)
    return root, truth


@pytest.fixture(scope="module")
def three_series_run(three_series, kidney_weights: Path, tmp_path_factory: pytest.TempPathFactory):
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    calls = []
    original = nnUNetPredictor.initialize_from_trained_model_folder

    def counting(self, *args, **kwargs):  # a spy: the real method runs
        calls.append(args)
        return original(self, *args, **kwargs)

    nnUNetPredictor.initialize_from_trained_model_folder = counting
    try:
        output = tmp_path_factory.mktemp("out")
        status, report = run(three_series[0], output, kidney_weights)
    finally:
        nnUNetPredictor.initialize_from_trained_model_folder = original
    return status, report, output, calls


def test_three_series_in_one_run_build_the_predictor_once(three_series_run):
    status, report, _, calls = three_series_run
    assert status == 0
    assert report["summary"]["cases_done"] == 3 and report["summary"]["cases_failed"] == 0
    assert len(calls) == 1
    assert report["modules"]["NNUnetRunner"]["model_loads"] == 1
    # the options as the chain used them: the workflow's settings where no option was given (run_chain: --no-tta)
    options = dict(report["options"])
    assert options.pop("workers") >= 0 and options.pop("memory_budget_gb") > 0  # from the cores ($AIMI_WORKERS), memory
    assert options == {"device": "auto", "folds": "all", "tta": False, "step_size": 0.5, "keep_empty_frames": False,
                       "fail_fast": False}


def test_overlapped_cases_give_the_same_outputs_as_one_case_at_a_time(three_series_run, three_series,
                                                                      kidney_weights: Path, tmp_path: Path):
    """The session's run overlaps its cases (the default, workers >= 1; unless AIMI_WORKERS=0 runs the suite without
    overlap); --workers 0 runs them strictly one after another (or --workers 1 overlaps them, when the session's run
    did not): every SEG's pixels and segments, every label map and the report's cases must be the same."""
    _, overlapped, overlapped_out, _ = three_series_run
    other = "0" if overlapped["options"]["workers"] else "1"
    status, sequential = run(three_series[0], tmp_path, kidney_weights, "--workers", other)
    assert status == 0 and sequential["options"]["workers"] == int(other)

    def without_seconds(cases: list[dict]) -> list[dict]:
        return [{key: value for key, value in case.items() if key != "seconds"} for case in cases]

    assert without_seconds(sequential["cases"]) == without_seconds(overlapped["cases"])
    for case in sequential["cases"]:
        seg, other = (pydicom.dcmread(out / case["id"] / f"{MODEL}.seg.dcm") for out in (tmp_path, overlapped_out))
        assert seg.PixelData == other.PixelData and seg.NumberOfFrames == other.NumberOfFrames
        assert seg.SegmentSequence == other.SegmentSequence
        assert np.array_equal(exported_labels(tmp_path / case["id"] / f"{MODEL}.seg.dcm"),
                              exported_labels(overlapped_out / case["id"] / f"{MODEL}.seg.dcm"))


def test_every_seg_is_valid_and_equals_the_label_map_on_the_source_grid(three_series, three_series_run,
                                                                        tmp_path: Path):
    _, report, output, _ = three_series_run
    _, truth = three_series
    for case in report["cases"]:
        files, true_labels = truth[case["id"]]
        seg_path = output / case["id"] / f"{MODEL}.seg.dcm"
        assert seg_path.is_file()
        assert dciodvfy_errors(seg_path) == []
        labels = decoded(seg_path, files)
        np.testing.assert_array_equal(labels, exported_labels(seg_path))
        assert labels.shape == true_labels.shape  # one frame per source slice (how well the tiny model segments is
        # tests/test_testmodel.py's subject; geometry through dcm2niix, exactly: tests/modules/test_seg_geometry.py)
        assert_viewers_read_it(seg_path, MODEL, files, tmp_path / case["id"])


def test_seg_header_and_segments_follow_the_model_table(three_series_run):
    _, report, output, _ = three_series_run
    case = report["cases"][0]
    seg = pydicom.dcmread(output / case["id"] / f"{MODEL}.seg.dcm")
    assert (seg.SeriesDescription, seg.SeriesNumber) == ("AIMI Kidney Segmentation", 300)  # as the authors' SEGs
    assert seg.BodyPartExamined == "KIDNEY"
    assert seg.ContentCreatorName == "BAMFHealth^AI"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == case["id"]
    described = {}
    for item in seg.SegmentSequence:
        assert item.SegmentAlgorithmType == "AUTOMATIC"
        assert item.SegmentAlgorithmName == "BAMF-Kidney-CT"
        described[int(item.SegmentNumber)] = (
            item.SegmentLabel,
            item.SegmentedPropertyTypeCodeSequence[0].CodeValue,
            item.SegmentedPropertyCategoryCodeSequence[0].CodeValue,
        )
    assert described == SEGMENTS
    kidney = seg.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0]
    assert kidney.SegmentedPropertyTypeModifierCodeSequence[0].CodeValue == "51440002"
    assert seg.SegmentSequence[1].AnatomicRegionSequence[0].CodeValue == "64033007"
    assert "aimi-testmodel" in seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmVersion
    assert segment_colours(output / case["id"] / f"{MODEL}.seg.dcm") == table_colours(MODEL)


@pytest.mark.parametrize("workflow", ["default", "as-published"])
def test_real_phantom_ct_runs_end_to_end(workflow: str, shared_data: Path, kidney_weights: Path, tmp_path: Path):
    source = shared_data / "ct-head-phantom-dcmqa-dicom"
    status, report = run(source, tmp_path, kidney_weights, "--workflow", workflow)
    assert status == 0 and report["model"]["workflow"] == f"config/{workflow}.yml"
    [case] = report["cases"]
    seg_path = tmp_path / case["id"] / f"{MODEL}.seg.dcm"
    assert dciodvfy_errors(seg_path) == []
    files = sorted_by_position([p for p in source.iterdir() if p.name.startswith("I")])
    np.testing.assert_array_equal(decoded(seg_path, files), exported_labels(seg_path))
    seg = pydicom.dcmread(seg_path)
    source_uids = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files}
    referenced = {s.ReferencedSOPInstanceUID for f in seg.PerFrameFunctionalGroupsSequence
                  for d in f.DerivationImageSequence for s in d.SourceImageSequence}
    assert referenced and referenced <= source_uids


def test_messy_folder_yields_segs_for_suitable_series_only(shared_data: Path, kidney_weights: Path, tmp_path: Path):
    root = tmp_path / "in"
    study = StudyInfo.new("MESSY")
    files, _ = write_phantom_series(root / "x" / "y", INTENSITIES, study=study, file_names="random")
    write_sr(root / "reports", study)
    write_non_dicom(root / "notes.txt")
    write_truncated_copy(files[5], root / "partial.dcm")
    for name in ("ct-abdomen-totalseg-dicom", "mr-head-t1-sag-dcmqa-dicom"):
        (root / name).symlink_to(shared_data / name, target_is_directory=True)
    status, report = run(root, tmp_path / "out", kidney_weights)
    assert status == 0
    statuses = sorted((s["status"], s["reason"].split(":")[0]) for s in report["series"])
    assert statuses == [("rejected", "SeriesInstanceUID is empty (de-identified without UIDs)"),
                        ("selected", ""), ("skipped", "Modality 'MR' not one of ['CT']")]
    assert [c["status"] for c in report["cases"]] == ["done"]
    assert len(list((tmp_path / "out").rglob("*.seg.dcm"))) == 1
    # the SR, the notes, the truncated copy, both SOURCE.txt files and TotalSegmentator's reference NIfTI
    assert len(report["ignored_files"]) == 6


def test_a_failing_case_lets_the_others_finish_exits_1_and_leaves_no_partial_file(kidney_weights: Path, tmp_path: Path):
    root = tmp_path / "in"
    uids = []
    for index in range(3):
        files, _ = write_phantom_series(root / str(index), INTENSITIES, study=StudyInfo.new(f"F{index}"), seed=index)
        uids.append(str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID))
        if index == 1:
            corrupt_pixel_data(files[7])
    status, report = run(root, tmp_path / "out", kidney_weights)
    assert status == 1
    cases = {c["id"]: c for c in report["cases"]}
    assert [cases[u]["status"] for u in uids] == ["done", "failed", "done"]
    failed = cases[uids[1]]
    assert failed["failed_module"] == "NiftiConverter"
    assert uids[1] in failed["error"] and "dcm2niix" in failed["error"]
    written = sorted(p.relative_to(tmp_path / "out").parts[0] for p in (tmp_path / "out").rglob("*.seg.dcm"))
    assert written == sorted([uids[0], uids[2]])
    assert not [p for p in (tmp_path / "out").rglob("*") if "partial" in p.name]


def test_run_without_weights_exits_2_and_says_how_to_get_them(tmp_path: Path):
    (tmp_path / "in").mkdir()
    done = subprocess.run([sys.executable, "-m", "aimi.cli", "run", MODEL, "-i", str(tmp_path / "in"),
                           "-o", str(tmp_path / "out"), "--weights", str(tmp_path / "none")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert f"aimi weights fetch {MODEL}" in done.stderr
    assert "aimi testmodel" in done.stderr
