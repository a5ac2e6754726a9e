"""Brain MR end to end: a four-contrast study on a real head (Colin27) through `aimi run bamf_nnunet_mr_brain`.

The study's series are acquired in different planes, resolutions and fields of view (T1c axial 1 mm in-plane,
T1 axial 5 mm slices, T2 coronal, FLAIR sagittal); the chain registers them, extracts the brain (deepbet), goes
to the MNI atlas, runs a tiny 4-channel nnU-Net fitted on the brain scene, and maps the labels back onto every
series. Each of the four SEGs must reference its own series, pass dciodvfy, carry the MODELS.md codes, and put
the tumour where it was painted on that series' grid (Dice against the true ellipsoids sampled at the series'
voxel centres). The atlas grid is coarse (2 mm) and registration stops at half resolution (FAST) to keep the run
to about 4 minutes on two busy CPU cores, plus about 7 minutes to fit the tiny model once per session.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
import pytest
import SimpleITK as sitk

from aimi.dicom.synthetic_brain import ED, ET, NCR, ROLES, BrainStudy, write_brain_study
from tests.support.chains import decoded_labels, dice, run_chain, segment_codes
from tests.support.validators import dciodvfy_errors

pytestmark = pytest.mark.slow

MODEL = "bamf_nnunet_mr_brain"
ALTERED = "49755003"
SEGMENTS = {NCR: ("Necrosis / non-enhancing tumor core", "6574001", ALTERED), ED: ("Edema", "79654002", ALTERED),
            ET: ("Enhancing Tumor", "C113842", ALTERED)}
#: A 2 mm atlas grid and registrations stopped at half resolution: the same Dice, a third of the run time.
FAST = ("--set", "AtlasRegistration.spacing_mm=2",
        "--set", "RigidRegistration.shrink_factors=[4,2]", "--set", "RigidRegistration.smoothing_mm=[2.0,1.0]",
        "--set", "AtlasRegistration.shrink_factors=[4,2]", "--set", "AtlasRegistration.smoothing_mm=[2.0,1.0]")
#: What the tiny model reaches on every series: the whole tumour, and the enhancing rim and oedema separately.
#: Measured over two runs (model fit and registration vary a little): whole tumour 0.92-0.94, oedema 0.87-0.90,
#: enhancing rim 0.83-0.86 on every series. The necrotic core (8-9 mm radius) comes out at about half its volume
#: (Dice 0.41-0.61): not asserted.
MIN_DICE = {"whole tumour": 0.9, ED: 0.8, ET: 0.75}


@pytest.fixture(scope="module")
def head(shared_data: Path) -> sitk.Image:
    """Colin27 (ch2) with skull and scalp: a different subject from the MNI atlas the chain registers to."""
    return sitk.ReadImage(str(shared_data / "mr-brain-templates-nifti" / "ch2.nii.gz"))


@pytest.fixture(scope="module")
def brain_run(head: sitk.Image, weights_for: Callable[[str], Path],
              tmp_path_factory: pytest.TempPathFactory) -> tuple[BrainStudy, int, dict[str, Any], Path]:
    root = tmp_path_factory.mktemp("brain")
    study = write_brain_study(root / "in", head=head)
    status, report = run_chain(MODEL, root / "in", root / "out", weights_for(MODEL), *FAST)
    return study, status, report, root / "out"


def test_one_valid_seg_per_series_referencing_it(brain_run: tuple[BrainStudy, int, dict[str, Any], Path]):
    study, status, report, out = brain_run
    assert status == 0, report["cases"]
    [case] = report["cases"]
    for role in ROLES:
        seg_path = out / study.series_uids[role] / f"{MODEL}.seg.dcm"
        seg = pydicom.dcmread(seg_path, stop_before_pixels=True)
        assert [s.SeriesInstanceUID for s in seg.ReferencedSeriesSequence] == [study.series_uids[role]], role
        assert seg.FrameOfReferenceUID == pydicom.dcmread(study.files[role][0]).FrameOfReferenceUID
        assert segment_codes(seg_path) == SEGMENTS, role
        assert dciodvfy_errors(seg_path) == [], role
    assert case["id"] == pydicom.dcmread(study.files["t1c"][0]).StudyInstanceUID


def test_tumour_is_at_its_physical_position_on_every_series(brain_run: tuple[BrainStudy, int, dict[str, Any], Path]):
    study, status, report, out = brain_run
    assert status == 0, report["cases"]
    scores = {}
    for role in ROLES:
        seg_path = out / study.series_uids[role] / f"{MODEL}.seg.dcm"
        labels = decoded_labels(seg_path, study.files[role], {v: s[0] for v, s in SEGMENTS.items()})
        truth = study.truth[role]
        scores[role] = {"whole tumour": dice(labels > 0, truth > 0),
                        **{value: dice(labels == value, truth == value) for value in (NCR, ED, ET)}}
    print(scores)  # the figures quoted in the report
    for role, score in scores.items():
        for key, minimum in MIN_DICE.items():
            assert score[key] >= minimum, (role, key, score)


def test_a_study_missing_flair_fails_naming_it(head: sitk.Image, weights_for: Callable[[str], Path], tmp_path: Path):
    """Through the `aimi` command itself: exit status 1, and the run report names the missing role."""
    study = write_brain_study(tmp_path / "in", head=head, roles=("t1", "t1c", "t2"), scale=3.0)
    command = [sys.executable, "-m", "aimi.cli", "run", MODEL, "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
               "--weights", str(weights_for(MODEL)), "--no-tta", *FAST]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    assert result.returncode == 1, result.stderr
    [case] = json.loads((tmp_path / "out" / "run-report.json").read_text())["cases"]
    assert case["status"] == "failed"
    assert case["error"].startswith("study lacks flair: it has ")
    for role in ("t1", "t1c", "t2"):
        assert study.series_uids[role] in case["error"]
    assert not list((tmp_path / "out").rglob("*.seg.dcm"))
