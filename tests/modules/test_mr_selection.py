"""Series selection by DICOM tags for the MR models: one suitable series out of a realistic multi-series study."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag

from aimi.core.context import RunContext, RunOptions
from aimi.core.workflow import load_workflow
from aimi.io.dicom_importer import DicomImporter
from aimi.models import load_model
from aimi.registry import registry
from aimi_testkit.synthetic import GridSpec, StudyInfo, write_localizer, write_series


def importer(model_name: str, tmp_path: Path, **overrides: object) -> DicomImporter:
    model = load_model(model_name)
    step = load_workflow(model.workflow_path("default"), registry(), {"DicomImporter": overrides}).steps[0]
    return DicomImporter(step.settings, RunContext(model.name, model.path, model.manifest, tmp_path, tmp_path,
                                              RunOptions()))


def write(root: Path, study: StudyInfo, description: str, number: int, grid: GridSpec | None = None,
          sequence: str = "T2", **tags: object) -> None:
    grid = grid or GridSpec.axial(rows=24, columns=24, slices=20)
    image_type = tags.pop("image_type", None)
    write_series(np.full((grid.slices, grid.rows, grid.columns), 300.0, np.float32), grid, root / description,
                 modality="MR", study=study, series_description=description, series_number=number,
                 mr_sequence=sequence, image_type=image_type, extra_tags=tags or None, body_part="PROSTATE")


def reasons(series: list[dict]) -> dict[str, tuple[str, str]]:
    return {s["description"]: (s["status"], s["reason"]) for s in series}


@pytest.fixture
def prostate_study(tmp_path: Path) -> Path:
    root, study = tmp_path / "in", StudyInfo.new("PROSTATE")
    write(root, study, "t2_tse_tra", 1)
    write(root, study, "t2_tse_sag", 2, GridSpec.sagittal(rows=24, columns=24, slices=20))
    write(root, study, "ep2d_diff_b50_800", 3, sequence="T1", ScanningSequence="EP", EchoTime=60.0)
    write(root, study, "ep2d_diff_ADC", 4, sequence="T1", ScanningSequence="EP",
          image_type=("DERIVED", "PRIMARY", "DIFFUSION", "ADC"))
    for phase in range(3):
        write(root, study, f"t1_vibe_dce_phase{phase}", 5 + phase, sequence="T1C" if phase else "T1",
              AcquisitionTime=f"10{phase}000")
    write_localizer(root / "loc", study, modality="MR")
    return root


def test_prostate_takes_only_the_axial_t2_and_explains_every_other_series(prostate_study: Path, tmp_path: Path):
    discovery = importer("bamf_nnunet_mr_prostate", tmp_path).discover(prostate_study)
    [case] = discovery.cases
    assert case.series["t2"].description == "t2_tse_tra"
    seen = reasons(discovery.series)
    assert len(seen) == 8
    assert seen["t2_tse_tra"] == ("selected", "")
    assert seen["t2_tse_sag"] == ("skipped", "@obliquity_degrees '90.0' is above 30")
    assert seen["ep2d_diff_ADC"] == ("skipped",
                                     "ImageType 'DERIVED\\PRIMARY\\DIFFUSION\\ADC' does not contain 'ORIGINAL'")
    assert seen["ep2d_diff_b50_800"][1].startswith("none of the alternatives holds: SeriesDescription")
    assert seen["t1_vibe_dce_phase0"][1].startswith("none of the alternatives holds")
    assert seen["t1_vibe_dce_phase1"][1].startswith("none of the alternatives holds")
    localizer = next(s for s in discovery.series if "LOCALIZER" in s["reason"])
    assert localizer["status"] == "skipped"


def test_prostate_accepts_a_t2_named_otherwise_by_its_spin_echo_timing(tmp_path: Path):
    root = tmp_path / "in"
    write(root, StudyInfo.new("P2"), "AX FSE PROSTATE", 1)  # SE, TE 100 ms, no "t2" in its name
    [case] = importer("bamf_nnunet_mr_prostate", tmp_path).discover(root).cases
    assert case.series["t2"].description == "AX FSE PROSTATE"


def write_breast_study(root: Path, contrast_tag: bool) -> None:
    """A DCE study: pre-contrast, three post-contrast phases, a subtraction, a MIP and a T2; the post-contrast
    phases carry ContrastBolusAgent, or - as many exports - nothing tells them from the pre-contrast phase."""
    study, post = StudyInfo.new("BREAST"), {} if contrast_tag else {"ContrastBolusAgent": None}
    write(root, study, "t1_fl3d_tra_dyn_pre", 1, sequence="T1", AcquisitionTime="101000")
    for phase in (1, 2, 3):
        write(root, study, f"t1_fl3d_tra_dyn_post{phase}", 1 + phase, sequence="T1C",
              AcquisitionTime=f"10{phase + 1}000", **post)
    write(root, study, "t1_fl3d_tra_dyn_SUB1", 5, sequence="T1C", AcquisitionTime="102000",
          image_type=("DERIVED", "SECONDARY", "SUBTRACTION"))
    write(root, study, "t1_fl3d_tra_dyn_MIP", 6, sequence="T1C", AcquisitionTime="102000",
          image_type=("DERIVED", "SECONDARY", "MIP"))
    write(root, study, "t2_tse_tra", 7)


@pytest.mark.parametrize(("contrast_tag", "rule"), [
    (True, "first post-contrast phase: the first by AcquisitionTime, SeriesNumber with ContrastBolusAgent"),
    (False, "first post-contrast phase: the 2nd of 4 phases by AcquisitionTime, SeriesNumber (no series of the "
            "study has ContrastBolusAgent; the first is taken as pre-contrast)"),
])
def test_breast_takes_the_first_post_contrast_phase_and_explains_the_rest(contrast_tag: bool, rule: str,
                                                                          tmp_path: Path):
    write_breast_study(tmp_path / "in", contrast_tag)
    discovery = importer("bamf_nnunet_mr_breast", tmp_path).discover(tmp_path / "in")
    [case] = discovery.cases
    assert case.series["t1_dce"].description == "t1_fl3d_tra_dyn_post1"
    seen = reasons(discovery.series)
    first_uid = case.series["t1_dce"].series_uid
    assert seen["t1_fl3d_tra_dyn_post1"] == ("selected", rule)
    for other in ("pre", "post2", "post3"):
        assert seen[f"t1_fl3d_tra_dyn_{other}"] == ("skipped", "not the first post contrast series of its study by "
                                                               f"AcquisitionTime, SeriesNumber: series {first_uid} "
                                                               "was taken")
    assert seen["t1_fl3d_tra_dyn_SUB1"] == ("skipped", "ImageType 'DERIVED\\SECONDARY\\SUBTRACTION' does not "
                                                        "contain 'ORIGINAL'")
    assert seen["t1_fl3d_tra_dyn_MIP"][0] == "skipped" and "ORIGINAL" in seen["t1_fl3d_tra_dyn_MIP"][1]
    assert seen["t2_tse_tra"][0] == "skipped"


@pytest.mark.parametrize("tag", [0x00180010, 0x00080032, 0x00200011])  # ContrastBolusAgent, AcquisitionTime, number
def test_a_phase_value_pydicom_cannot_decode_leaves_the_other_studies_their_case(tag: int, tmp_path: Path):
    """A binary VR of odd length where the study-level choice reads: that header can no longer end the run."""
    write_breast_study(tmp_path / "in" / "good", contrast_tag=True)
    write_breast_study(tmp_path / "in" / "bad", contrast_tag=True)
    for path in (tmp_path / "in" / "bad" / "t1_fl3d_tra_dyn_post2").iterdir():
        ds = pydicom.dcmread(path)
        ds[tag] = RawDataElement(Tag(tag), "SS", 3, b"abc", 0, False, True)
        ds.save_as(path)
    discovery = importer("bamf_nnunet_mr_breast", tmp_path).discover(tmp_path / "in")
    assert len(discovery.cases) == 2
    assert {case.series["t1_dce"].description for case in discovery.cases} == {"t1_fl3d_tra_dyn_post1"}


def test_breast_can_be_switched_to_the_pre_contrast_phase(tmp_path: Path):
    write_breast_study(tmp_path / "in", contrast_tag=True)
    discovery = importer("bamf_nnunet_mr_breast", tmp_path, phase="pre_contrast").discover(tmp_path / "in")
    [case] = discovery.cases
    assert case.series["t1_dce"].description == "t1_fl3d_tra_dyn_pre"
    assert reasons(discovery.series)["t1_fl3d_tra_dyn_pre"][1] == (
        "pre-contrast phase: the first by AcquisitionTime, SeriesNumber without ContrastBolusAgent")


def test_one_untagged_phase_is_skipped_saying_why(tmp_path: Path):
    write(tmp_path / "in", StudyInfo.new("ONE"), "t1_fl3d_tra_dyn", 1, sequence="T1C", ContrastBolusAgent=None)
    discovery = importer("bamf_nnunet_mr_breast", tmp_path).discover(tmp_path / "in")
    assert discovery.cases == []
    assert reasons(discovery.series)["t1_fl3d_tra_dyn"] == ("skipped", (
        "one phase and no ContrastBolusAgent: pre- and post-contrast cannot be told apart; set DicomImporter.phase: "
        "first to take it"))


