"""Liver CT, lung CT, prostate MR and breast MR end to end on tiny real models, and on real CT where we have it.

Every chain must write a dciodvfy-clean SEG with the segments and codes of its model card that equals its label map on
the source grid. How well a tiny model segments is not asserted here: it depends on the CPU's float arithmetic, and
the builder guarantees it only on its own validation cases (tests/test_testmodel.py checks that guarantee). The
geometry is proved exactly on known label maps (tests/modules/test_seg_geometry.py), the post-processing on exact
label maps (tests/modules/test_postprocessing.py, tests/modules/test_size_and_fusion.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from aimi_testkit.phantoms import write_phantom_series
from aimi_testkit.synthetic import GridSpec, StudyInfo
from tests.support.chains import (
    assert_viewers_read_it,
    decoded_labels,
    exported_labels,
    real_ct_as_dicom,
    run_chain,
    segment_codes,
    segment_colours,
    table_colours,
)
from tests.support.validators import dciodvfy_errors


@dataclass(frozen=True)
class Task:
    model: str
    segments: dict[int, tuple[str, str, str]]  # model card: value -> (SegmentLabel, type code, category code)
    intensities: dict[int, list[float]]  # phantom class -> intensity
    organ: int
    lesions: list[int]
    paired: bool
    series: dict[str, object] = field(default_factory=dict)


ANATOMY, ALTERED = "123037004", "49755003"
TASKS = {
    "liver": Task("bamf_nnunet_ct_liver", {1: ("Liver", "10200004", ANATOMY), 2: ("Tumor", "108369006", ALTERED)},
                  {0: [-100.0], 8: [140.0], 9: [60.0]}, 8, [9], False),
    "lung": Task("bamf_nnunet_ct_lung", {1: ("Lung", "39607008", ANATOMY), 2: ("Nodule", "27925004", ALTERED)},
                 {0: [40.0], 1: [-850.0], 2: [200.0]}, 1, [2], True),
    "prostate": Task("bamf_nnunet_mr_prostate", {1: ("Prostate", "41216001", ANATOMY)},
                     {0: [120.0], 1: [420.0]}, 1, [], False,
                     {"modality": "MR", "mr_sequence": "T2", "series_description": "t2_tse_tra"}),
    "breast": Task("bamf_nnunet_mr_breast",
                   {1: ("Breast", "76752008", ANATOMY), 2: ("Fibroglandular Tissue", "1342375003", ANATOMY),
                    3: ("Structural Tumor", "4147007", ALTERED)},
                   {0: [30.0], 1: [600.0], 2: [250.0], 3: [1000.0]}, 1, [2, 3], True,
                   {"modality": "MR", "mr_sequence": "T1C", "series_description": "t1_fl3d_tra_dyn_post1"}),
}


@pytest.mark.parametrize("name", list(TASKS))
def test_chain_writes_a_valid_seg_equal_to_its_label_map(name: str, weights_for: Callable[[str], Path],
                                                          tmp_path: Path):
    task = TASKS[name]
    files, truth = write_phantom_series(tmp_path / "in", task.intensities, study=StudyInfo.new(name.upper()),
                                        organ=task.organ, lesions=task.lesions, paired=task.paired,
                                        noise_sd=5.0, **task.series)
    status, report = run_chain(task.model, tmp_path / "in", tmp_path / "out", weights_for(task.model))
    assert status == 0, report["cases"]
    [case] = report["cases"]
    seg_path = tmp_path / "out" / case["id"] / f"{task.model}.seg.dcm"
    assert dciodvfy_errors(seg_path) == []
    assert segment_codes(seg_path) == task.segments
    assert segment_colours(seg_path) == table_colours(task.model)
    labels = decoded_labels(seg_path, files, {v: s[0] for v, s in task.segments.items()})
    np.testing.assert_array_equal(labels, exported_labels(seg_path))
    assert labels.shape == truth.shape
    assert_viewers_read_it(seg_path, task.model, files, tmp_path / "readers")


@pytest.mark.parametrize(("name", "nifti", "crop"), [
    ("lung", "ct-chest-pyradiomics-nifti/lung1_image.nii.gz", (slice(128, 384), slice(128, 384), slice(None))),
    ("liver", "ct-mr-abdomen-totalseg-nifti/example_ct_sm.nii.gz", None),
])
def test_ct_chain_runs_on_real_anatomy(name: str, nifti: str, crop, shared_data: Path,
                                        weights_for: Callable[[str], Path], tmp_path: Path):
    task = TASKS[name]
    files = real_ct_as_dicom(shared_data / nifti, tmp_path / "in", crop)
    status, report = run_chain(task.model, tmp_path / "in", tmp_path / "out", weights_for(task.model),
                               "--step-size", "1.0")
    assert status == 0, report["cases"]
    [case] = report["cases"]
    seg_path = tmp_path / "out" / case["id"] / f"{task.model}.seg.dcm"
    assert dciodvfy_errors(seg_path) == []
    labels = decoded_labels(seg_path, files, {v: s[0] for v, s in task.segments.items()})
    np.testing.assert_array_equal(labels, exported_labels(seg_path))
    assert labels.shape == (len(files), *sitk.ReadImage(str(files[0])).GetSize()[1::-1])
    assert_viewers_read_it(seg_path, task.model, files, tmp_path / "readers")


def test_breast_runs_both_models_once_each(weights_for: Callable[[str], Path], tmp_path: Path):
    task = TASKS["breast"]
    for index in range(2):
        write_phantom_series(tmp_path / "in" / str(index), task.intensities, study=StudyInfo.new(f"B{index}"),
                             organ=1, lesions=[2, 3], seed=index, grid=GridSpec.axial(
                                 rows=48, columns=64, slices=20, pixel_spacing=(2.0, 2.0), slice_step=3.0),
                             **task.series)
    status, report = run_chain(task.model, tmp_path / "in", tmp_path / "out", weights_for(task.model))
    assert status == 0
    assert report["summary"]["cases_done"] == 2
    runners = {label: stats for label, stats in report["modules"].items() if label.startswith("NNUnetRunner")}
    assert [(stats["model_loads"], list(stats["models"])) for stats in runners.values()] == [
        (1, ["breast_fgt"]), (1, ["tumor"])]  # one step per model, each loaded once for both cases
