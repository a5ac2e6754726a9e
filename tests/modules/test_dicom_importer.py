"""DicomImporter on messy folders and real data: every series and every ignored file is accounted for."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from aimi.core.context import RunContext, RunOptions
from aimi.core.workflow import load_workflow
from aimi.io.dicom_importer import DicomImporter, Settings
from aimi.models import load_model
from aimi.registry import registry
from aimi_testkit.synthetic import (
    GridSpec,
    StudyInfo,
    write_localizer,
    write_non_dicom,
    write_series,
    write_sr,
    write_truncated_copy,
)

KIDNEY = load_model("bamf_nnunet_ct_kidney")


def kidney_importer(tmp_path: Path) -> DicomImporter:
    chain = load_workflow(KIDNEY.workflow_path("default"), registry())
    context = RunContext(KIDNEY.name, KIDNEY.path, KIDNEY.manifest, tmp_path, tmp_path, RunOptions())
    return DicomImporter(chain.steps[0].settings, context)


def ct(slices: int = 24, **grid: object) -> tuple[np.ndarray, GridSpec]:
    spec = GridSpec.axial(rows=16, columns=16, slices=slices, **grid)  # type: ignore[arg-type]
    return np.full((spec.slices, 16, 16), 40.0, np.float32), spec


def by_description(series: list[dict]) -> dict[str, dict]:
    return {s["description"]: s for s in series}


def test_messy_folder_selects_suitable_series_and_explains_the_rest(tmp_path: Path):
    root = tmp_path / "in"
    study_a, study_b = StudyInfo.new("A"), StudyInfo.new("B")
    good_a = write_series(*ct(), root / "a" / "deep" / "nest", study=study_a, series_description="ABD 3MM",
                          file_names="random")
    write_series(*ct(), root / "b", study=study_b, series_description="ABD B", file_names="instance", series_number=2)
    write_series(*ct(slices=8), root / "b", study=study_b, series_description="THIN STACK", series_number=3)
    write_series(*ct(), root / "a" / "mr", study=study_a, modality="MR", series_description="T1 AX", series_number=4)
    write_localizer(root / "a" / "scout", study_a)
    write_sr(root / "a" / "sr", study_a)
    write_non_dicom(root / "README.txt")
    write_truncated_copy(good_a[3], root / "a" / "copy-interrupted.dcm")

    discovery = kidney_importer(tmp_path).discover(root)

    series = by_description(discovery.series)
    assert {s["status"] for s in discovery.series} <= {"selected", "skipped", "rejected"}
    assert len(discovery.series) == 5
    assert series["ABD 3MM"]["status"] == series["ABD B"]["status"] == "selected"
    assert series["THIN STACK"] == series["THIN STACK"] | {"status": "skipped", "reason": "@slices '8' is below 20"}
    assert series["T1 AX"]["reason"] == "Modality 'MR' not one of ['CT']"
    localizer = next(s for s in discovery.series if s["description"] not in series or "LOCALIZER" in s["reason"])
    assert "LOCALIZER" in localizer["reason"] and localizer["status"] == "skipped"
    assert sorted(c.series["ct"].series_uid for c in discovery.cases) == sorted(
        [series["ABD 3MM"]["series_uid"], series["ABD B"]["series_uid"]])
    assert len(discovery.cases[0].series["ct"].files) == 24  # the truncated copy did not join its series
    ignored = {i["file"]: i["reason"] for i in discovery.ignored_files}
    assert ignored["README.txt"] == "not a DICOM file"
    assert "truncated" in ignored["a/copy-interrupted.dcm"]
    assert any(r == "not an image object (Comprehensive SR Storage)" for r in ignored.values())
    assert len(ignored) == 3


def test_gantry_tilt_and_irregular_spacing_are_refused_with_reasons(tmp_path: Path):
    volume, spec = ct()
    write_series(volume, spec, tmp_path / "tilt", series_description="TILT", extra_tags={"GantryDetectorTilt": 12.0})
    files = write_series(volume, spec, tmp_path / "gap", series_description="GAP", series_number=2)
    files[10].unlink()  # a missing slice in the middle of the stack
    series = by_description(kidney_importer(tmp_path).discover(tmp_path).series)
    assert series["TILT"]["reason"] == "GantryDetectorTilt '12.0' exceeds in magnitude 0.0"
    assert series["GAP"]["status"] == "rejected"
    assert series["GAP"]["reason"].startswith("irregular geometry: slice spacing is not uniform")


def test_real_ct_with_empty_uids_is_refused_with_the_reason(shared_data: Path, tmp_path: Path):
    discovery = kidney_importer(tmp_path).discover(shared_data / "ct-abdomen-totalseg-dicom")
    assert discovery.cases == []
    [series] = discovery.series
    assert series["status"] == "rejected" and series["files"] == 20
    assert series["reason"].startswith("SeriesInstanceUID is empty")


def test_real_sagittal_mr_is_skipped_by_the_ct_model(shared_data: Path, tmp_path: Path):
    discovery = kidney_importer(tmp_path).discover(shared_data / "mr-head-t1-sag-dcmqa-dicom")
    [series] = discovery.series
    assert (series["status"], series["reason"], series["files"]) == ("skipped", "Modality 'MR' not one of ['CT']", 35)


def test_real_enhanced_multiframe_ct_is_refused(shared_data: Path, tmp_path: Path):
    root = tmp_path / "in"
    root.mkdir()
    shutil.copy(shared_data / "enhanced-multiframe-pydicom-data" / "eCT_Supplemental.dcm", root)
    [series] = kidney_importer(tmp_path).discover(root).series
    assert series["reason"] == "ImageType 'DERIVED\\PRIMARY\\PERFUSION\\RCBF' does not contain 'ORIGINAL'"
    context = RunContext(KIDNEY.name, KIDNEY.path, KIDNEY.manifest, tmp_path, tmp_path, RunOptions())
    any_ct = DicomImporter(Settings(roles={"ct": [{"attribute": "Modality", "in": ["CT"]}]}), context)
    discovery = any_ct.discover(root)
    assert discovery.cases == []
    [series] = discovery.series
    assert series["status"] == "rejected"
    assert series["reason"] == "multi-frame images (2 frames): only classic single-frame series are supported"


def test_study_case_assembles_roles_and_names_a_missing_one(tmp_path: Path):
    study = StudyInfo.new("BRAIN")
    volume, spec = ct()
    for number, (description, sequence) in enumerate([("t1 mprage", "T1"), ("t2 tse", "T2")], start=1):
        write_series(volume, spec, tmp_path / description, modality="MR", study=study, series_number=number,
                     series_description=description, mr_sequence=sequence)
    roles = {
        "t1": [{"attribute": "SeriesDescription", "matches": "(?i)t1"}],
        "t2": [{"attribute": "SeriesDescription", "matches": "(?i)t2"}],
        "flair": [{"attribute": "SeriesDescription", "matches": "(?i)flair"}],
    }
    context = RunContext(KIDNEY.name, KIDNEY.path, KIDNEY.manifest, tmp_path, tmp_path, RunOptions())
    importer = DicomImporter(Settings(case="study", roles=roles), context)
    discovery = importer.discover(tmp_path)
    assert discovery.cases == []
    [failure] = discovery.failures
    assert failure["id"] == study.study_uid
    assert failure["error"].startswith("study lacks flair: it has ")
    assert "t1 mprage" in failure["error"] and "t2 tse" in failure["error"]
    roles.pop("flair")
    discovery = DicomImporter(Settings(case="study", roles=roles), context).discover(tmp_path)
    [case] = discovery.cases
    assert {role: s.description for role, s in case.series.items()} == {"t1": "t1 mprage", "t2": "t2 tse"}


@pytest.mark.parametrize("settings", [{"case": "patient"}, {"roles": {}}, {"roles": {"a": [], "b": []}}])
def test_importer_settings_are_validated(settings: dict):
    with pytest.raises(ValueError):
        Settings(**{"roles": {"ct": []}, **settings})
