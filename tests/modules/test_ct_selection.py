"""CT selection as the authors curated: the lung model's NLST preset, the kidney model's contrast warning."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aimi.core.context import RunContext, RunOptions
from aimi.core.workflow import load_workflow
from aimi.io.dicom_importer import DicomImporter
from aimi.models import load_model
from aimi.registry import registry
from aimi_testkit.synthetic import GridSpec, StudyInfo, write_series


def importer(workflow: str, tmp_path: Path, model: str = "bamf_nnunet_ct_lung") -> DicomImporter:
    folder = load_model(model)
    step = load_workflow(folder.workflow_path(workflow), registry()).steps[0]
    return DicomImporter(step.settings, RunContext(folder.name, folder.path, folder.manifest, tmp_path, tmp_path,
                                                   RunOptions()))


def nlst_like_study(root: Path) -> None:
    """Two series the curation accepts (SeriesNumber 3 and 2), a 5 mm one and a short one."""
    study = StudyInfo.new("NLST")
    for name, number, thickness, slices in (("B", 3, 2.5, 110), ("A", 2, 2.5, 110), ("thick", 4, 5.0, 110),
                                            ("short", 5, 2.5, 60)):
        grid = GridSpec.axial(rows=16, columns=16, slices=slices, slice_step=thickness)
        write_series(np.full((slices, 16, 16), -800.0, np.float32), grid, root / name, study=study,
                     series_description=name, series_number=number, extra_tags={"SliceThickness": thickness})


def test_the_nlst_curation_takes_one_series_per_study_of_1_5_to_3_5_mm_and_over_100_slices(tmp_path: Path) -> None:
    nlst_like_study(tmp_path / "in")
    discovery = importer("nlst-curation", tmp_path).discover(tmp_path / "in")
    [case] = discovery.cases
    assert case.series["ct"].description == "A"
    seen = {s["description"]: (s["status"], s["reason"]) for s in discovery.series}
    assert seen["B"] == ("skipped", f"not the first series of its study by SeriesNumber: series {case.id} was taken")
    assert seen["thick"] == ("skipped", "SliceThickness '5.0' is above 3.5")
    assert seen["short"] == ("skipped", "@slices '60' is below 101")
    assert len(importer("default", tmp_path).discover(tmp_path / "in").cases) == 4


def test_kidney_segments_a_ct_without_contrast_agent_but_warns_in_its_report_entry(tmp_path: Path) -> None:
    """The kidney model was trained on contrast-enhanced CT; exports often omit the tag, so nothing is refused."""
    study, grid = StudyInfo.new("KIDNEY"), GridSpec.axial(rows=16, columns=16, slices=24)
    for name, agent in (("plain", None), ("enhanced", "Iohexol")):
        write_series(np.full((24, 16, 16), 40.0, np.float32), grid, tmp_path / "in" / name, study=study,
                     series_description=name, extra_tags={"ContrastBolusAgent": agent})
    discovery = importer("default", tmp_path, "bamf_nnunet_ct_kidney").discover(tmp_path / "in")
    assert len(discovery.cases) == 2
    seen = {s["description"]: s.get("warnings") for s in discovery.series}
    assert seen == {"plain": ["ContrastBolusAgent is missing"], "enhanced": None}
