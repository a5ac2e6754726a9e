"""Brain MR end to end: a four-contrast study on a real head (Colin27) through `aimi run bamf_nnunet_mr_brain`.

The study's series are acquired in different planes, resolutions and fields of view (T1c axial 1 mm in-plane,
T1 axial 5 mm slices, T2 coronal, FLAIR sagittal); the chain registers them, extracts the brain (deepbet), goes
to the MNI atlas, runs a tiny 4-channel nnU-Net fitted on the brain scene, and maps the labels back onto every
series. Each of the four SEGs must reference its own series, pass dciodvfy, carry the model card's codes, and put
the tumour where it was painted on that series' grid: the centre of the segmented tumour within a few millimetres
of the true ellipsoids' centre. That is a check of the geometry (registration, atlas, the way back onto each
series); how well the tiny model draws the compartments depends on the CPU's arithmetic and is printed, not
asserted (tests/test_testmodel.py checks the builder's guarantee). The atlas grid is coarse (2 mm) and
registration stops at half resolution (BRAIN_FAST) to keep the run to about 4 minutes on two busy CPU cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from aimi.labelmaps import dice
from aimi_testkit.synthetic import voxel_centres
from aimi_testkit.synthetic_brain import ED, ET, NCR, ROLES, write_brain_study
from tests.support.chains import (
    BRAIN_ATLAS_SPACING_MM,
    BRAIN_FAST,
    BrainRun,
    assert_viewers_read_it,
    decoded_labels,
    segment_codes,
    segment_colours,
    table_colours,
)
from tests.support.validators import dciodvfy_errors

pytestmark = pytest.mark.slow

MODEL = "bamf_nnunet_mr_brain"
ALTERED = "49755003"
SEGMENTS = {NCR: ("Necrosis", "6574001", ALTERED), ED: ("Edema", "79654002", ALTERED),
            ET: ("Enhancing Tumor", "C113842", ALTERED)}
#: How far the segmented tumour's centre may lie from the true one: the 2 mm atlas grid (BRAIN_FAST), plus half the
#: series' coarsest voxel edge (the 5 mm slices of the T1 series), for the labels' round trip through it.
ATLAS_SPACING_MM = BRAIN_ATLAS_SPACING_MM


def test_one_valid_seg_per_series_referencing_it(brain_run: BrainRun,
                                                 tmp_path: Path):
    study, status, report, out = brain_run
    assert status == 0, report["cases"]
    [case] = report["cases"]
    for role in ROLES:
        seg_path = out / study.series_uids[role] / f"{MODEL}.seg.dcm"
        seg = pydicom.dcmread(seg_path, stop_before_pixels=True)
        assert [s.SeriesInstanceUID for s in seg.ReferencedSeriesSequence] == [study.series_uids[role]], role
        assert seg.FrameOfReferenceUID == pydicom.dcmread(study.files[role][0]).FrameOfReferenceUID
        assert segment_codes(seg_path) == SEGMENTS, role
        assert segment_colours(seg_path) == table_colours(MODEL), role
        assert dciodvfy_errors(seg_path) == [], role
        assert_viewers_read_it(seg_path, MODEL, study.files[role], tmp_path / role)
    assert case["id"] == pydicom.dcmread(study.files["t1c"][0]).StudyInstanceUID


def test_tumour_is_at_its_physical_position_on_every_series(brain_run: BrainRun):
    study, status, report, out = brain_run
    assert status == 0, report["cases"]
    offsets, scores = {}, {}
    for role in ROLES:
        seg_path = out / study.series_uids[role] / f"{MODEL}.seg.dcm"
        labels = decoded_labels(seg_path, study.files[role], {v: s[0] for v, s in SEGMENTS.items()})
        truth = study.truth[role]
        centres = voxel_centres(study.grids[role])
        assert labels.any(), role
        offsets[role] = float(np.linalg.norm(centres[labels > 0].mean(axis=0) - centres[truth > 0].mean(axis=0)))
        scores[role] = {"whole tumour": round(dice(labels > 0, truth > 0), 3),
                        **{value: round(dice(labels == value, truth == value), 3) for value in (NCR, ED, ET)}}
    print(f"tumour centre offsets (mm) {offsets}; Dice (not asserted) {scores}")
    for role, offset in offsets.items():
        grid = study.grids[role]
        tolerance = ATLAS_SPACING_MM + 0.5 * max(*grid.pixel_spacing, grid.slice_step)
        assert offset <= tolerance, (role, offset, tolerance)


def test_a_study_missing_flair_fails_naming_it(colin27_head: sitk.Image, weights_for: Callable[[str], Path],
                                               tmp_path: Path):
    """Through the `aimi` command itself: exit status 1, and the run report names the missing role."""
    study = write_brain_study(tmp_path / "in", head=colin27_head, roles=("t1", "t1c", "t2"), scale=3.0)
    command = [sys.executable, "-m", "aimi.cli", "run", MODEL, "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
               "--weights", str(weights_for(MODEL)), "--no-tta", *BRAIN_FAST]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    assert result.returncode == 1, result.stderr
    [case] = json.loads((tmp_path / "out" / "run-report.json").read_text())["cases"]
    assert case["status"] == "failed"
    assert case["error"].startswith("study lacks flair: it has ")
    for role in ("t1", "t1c", "t2"):
        assert study.series_uids[role] in case["error"]
    assert not list((tmp_path / "out").rglob("*.seg.dcm"))
