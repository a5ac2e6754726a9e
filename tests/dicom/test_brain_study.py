"""The synthetic four-contrast brain study, and how the brain model's selection rules assemble a study from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
import yaml

from aimi.core.context import RunContext, RunOptions
from aimi.io.dicom_importer import DicomImporter, Settings
from aimi.models import load_model
from aimi_testkit.synthetic import GridSpec, StudyInfo, write_localizer, write_series
from aimi_testkit.synthetic_brain import DEFAULT_SERIES, ED, ET, NCR, ROLES, TISSUE_SIGNAL, Tumour, write_brain_study
from aimi_testkit.testmodel import synthetic_case
from aimi_testkit.testmodel_cli import spec_for

MODEL = "bamf_nnunet_mr_brain"


def importer(tmp_path: Path) -> DicomImporter:
    """The DicomImporter exactly as the model's workflow YAML configures it."""
    model = load_model(MODEL)
    raw = yaml.safe_load(model.workflow_path("default").read_text())["modules"]["DicomImporter"]
    context = RunContext(model.name, model.path, model.manifest, tmp_path, tmp_path, RunOptions())
    return DicomImporter(Settings(**raw), context)


def write_small(root: Path, study: StudyInfo, role: str, *, description: str | None = None, number: int | None = None,
                slices: int = 12, **tags: Any) -> None:
    """A small uniform series acquired like `role` in DEFAULT_SERIES (tags, timing, plane), with overrides."""
    spec = DEFAULT_SERIES[role]
    grid = {"axial": GridSpec.axial, "coronal": GridSpec.coronal, "sagittal": GridSpec.sagittal}[spec.plane](
        rows=16, columns=16, slices=slices)
    description = spec.description if description is None else description
    write_series(np.full((grid.slices, 16, 16), 300.0, np.float32), grid, root / f"{role}-{description or number}",
                 modality="MR", study=study, series_description=description,
                 series_number=spec.series_number if number is None else number, mr_sequence=spec.mr_sequence,
                 extra_tags={**spec.tags, **tags}, body_part="BRAIN")


def selected_roles(discovery: Any) -> dict[str, str]:
    [case] = discovery.cases
    return {role: series.description for role, series in case.series.items()}


def test_study_is_four_contrasts_on_their_own_grids_with_the_tumour_where_it_was_put(tmp_path: Path):
    tumour = Tumour()
    study = write_brain_study(tmp_path, tumour=tumour, scale=2.0)
    headers = {role: pydicom.dcmread(files[0], stop_before_pixels=True) for role, files in study.files.items()}
    assert len({h.StudyInstanceUID for h in headers.values()}) == 1
    assert len({h.FrameOfReferenceUID for h in headers.values()}) == 1
    assert len({h.SeriesInstanceUID for h in headers.values()}) == 4
    assert [list(h.ImageType[:2]) for h in headers.values()] == [["ORIGINAL", "PRIMARY"]] * 4
    assert [role for role, h in headers.items() if "ContrastBolusAgent" in h] == ["t1c"]
    assert float(headers["flair"].InversionTime) > 2000 and float(headers["t2"].EchoTime) > 80
    orientations = {role: tuple(round(float(v)) for v in h.ImageOrientationPatient) for role, h in headers.items()}
    assert orientations == {"t1": (1, 0, 0, 0, 1, 0), "t1c": (1, 0, 0, 0, 1, 0), "t2": (1, 0, 0, 0, 0, -1),
                            "flair": (0, 1, 0, 0, 0, -1)}
    assert headers["t1"].SliceThickness > headers["t1c"].SliceThickness
    for role in ROLES:
        truth, grid = study.truth[role], study.grids[role]
        assert {NCR, ED, ET} <= set(np.unique(truth).tolist()), role
        # the tumour's centroid, in patient coordinates, is where it was put (within a voxel)
        k, r, c = np.nonzero(truth)
        row, col, normal = grid.axes.T
        points = (np.asarray(grid.first_position) + np.outer(k, normal) * grid.slice_step
                  + np.outer(r, col) * grid.pixel_spacing[0] + np.outer(c, row) * grid.pixel_spacing[1])
        assert np.linalg.norm(points.mean(axis=0) - tumour.centre_lps) < max(grid.slice_step, 2.0), role
        # and the pixels carry each compartment's signal for this contrast
        pixels = np.stack([pydicom.dcmread(f).pixel_array for f in study.files[role]]).astype(float)
        for value, name in ((NCR, "ncr"), (ED, "ed"), (ET, "et")):
            core = _eroded(truth == value)
            assert abs(np.median(pixels[core]) - TISSUE_SIGNAL[role][name]) < 40, (role, name)


def _eroded(mask: np.ndarray) -> np.ndarray:
    """Voxels whose four in-plane neighbours share the label: free of partial volume with the next compartment."""
    inner = mask.copy()
    for axis in (1, 2):
        inner &= np.roll(mask, 1, axis) & np.roll(mask, -1, axis)
    return inner


def test_missing_contrast_study_writes_only_the_roles_asked_for(tmp_path: Path):
    study = write_brain_study(tmp_path, roles=("t1", "t1c", "t2"), scale=3.0)
    assert sorted(study.files) == ["t1", "t1c", "t2"] and not (tmp_path / "flair").exists()


def test_testmodel_intensities_are_those_of_the_synthetic_study():
    """The tiny model learns the tumour signal the synthetic study is written with."""
    spec = spec_for(load_model(MODEL), "brats")
    roles = ["t1", "t1c", "t2", "flair"]
    assert [spec.channels[str(c)] for c in range(4)] == ["T1", "T1ce", "T2", "FLAIR"]
    for label, name in ((1, "ncr"), (2, "ed"), (3, "et"), (0, "wm")):
        assert list(spec.intensities[label]) == [TISSUE_SIGNAL[r][name] for r in roles], name


def test_four_contrasts_are_recognised_and_localizer_and_dwi_skipped(tmp_path: Path):
    study = StudyInfo.new("BRAIN")
    for role in ROLES:
        write_small(tmp_path, study, role)
    write_localizer(tmp_path / "loc", study, modality="MR")
    write_small(tmp_path, study, "t2", description="ep2d_diff_3scan_trace_p2", number=8, ScanningSequence="EP",
                RepetitionTime=5000.0, EchoTime=89.0)
    write_small(tmp_path, study, "t2", description="ep2d_diff_3scan_trace_p2_ADC", number=9, ScanningSequence="EP",
                RepetitionTime=5000.0, EchoTime=89.0, ImageType=["DERIVED", "PRIMARY", "DIFFUSION", "ADC"])
    discovery = importer(tmp_path).discover(tmp_path)
    assert selected_roles(discovery) == {role: DEFAULT_SERIES[role].description for role in ROLES}
    seen = {s["description"]: s for s in discovery.series}
    assert {d: s["status"] for d, s in seen.items()} == {
        **{DEFAULT_SERIES[r].description: "selected" for r in ROLES}, "Localizer": "skipped",
        "ep2d_diff_3scan_trace_p2": "skipped", "ep2d_diff_3scan_trace_p2_ADC": "skipped"}
    assert "LOCALIZER" in seen["Localizer"]["reason"]
    assert "matches 'dwi|adc|diff" in seen["ep2d_diff_3scan_trace_p2"]["reason"].replace("(?i)", "")


def test_contrasts_are_recognised_from_timing_and_contrast_tags_when_descriptions_say_nothing(tmp_path: Path):
    study = StudyInfo.new("BRAIN")
    for number, role in enumerate(ROLES, start=1):
        write_small(tmp_path, study, role, description=f"SERIES {number}", number=number)
    discovery = importer(tmp_path).discover(tmp_path)
    assert selected_roles(discovery) == {"t1": "SERIES 1", "t1c": "SERIES 2", "t2": "SERIES 3", "flair": "SERIES 4"}


def test_a_study_missing_flair_fails_naming_flair_and_the_series_it_has(tmp_path: Path):
    study = StudyInfo.new("BRAIN")
    for role in ("t1", "t1c", "t2"):
        write_small(tmp_path, study, role)
    write_localizer(tmp_path / "loc", study, modality="MR")
    discovery = importer(tmp_path).discover(tmp_path)
    assert discovery.cases == []
    [failure] = discovery.failures
    assert failure["id"] == study.study_uid
    assert failure["error"].startswith("study lacks flair: it has ")
    for role in ("t1", "t1c", "t2"):
        assert DEFAULT_SERIES[role].description in failure["error"]


def test_of_two_post_contrast_t1_the_one_with_more_slices_wins(tmp_path: Path):
    """Documented in the workflow YAML: a 3D post-contrast T1 (more, thinner slices) over a 2D one."""
    study = StudyInfo.new("BRAIN")
    for role in ROLES:
        write_small(tmp_path, study, role)
    write_small(tmp_path, study, "t1c", description="t1_mprage_sag_p2_iso_post", number=12, slices=24)
    discovery = importer(tmp_path).discover(tmp_path)
    assert selected_roles(discovery)["t1c"] == "t1_mprage_sag_p2_iso_post"
    loser = next(s for s in discovery.series if s["description"] == DEFAULT_SERIES["t1c"].description)
    assert (loser["status"], loser["reason"]) == ("skipped", "another series of the study took its role")


@pytest.mark.parametrize(("description", "tags"), [
    ("AX T1 POST GAD", {"ContrastBolusAgent": None}),  # agent tag removed by de-identification: the name tells
    ("t1_se_tra", {}),  # no "post" in the name: the agent tag tells
])
def test_post_contrast_t1_is_never_taken_as_native_t1(tmp_path: Path, description: str, tags: dict[str, Any]):
    study = StudyInfo.new("BRAIN")
    write_small(tmp_path, study, "t1c", description=description, **tags)
    discovery = importer(tmp_path).discover(tmp_path)
    [series] = discovery.series
    assert series["role"] == "t1c"


@pytest.mark.parametrize(("description", "role", "tags"), [
    ("AX T1 FLAIR", "t1", {"RepetitionTime": 2200.0, "EchoTime": 12.0, "InversionTime": 860.0}),  # T1-weighted
    ("Ax T2 FLAIR", "flair", {}),
    ("SAG 3D CUBE", "flair", {}),  # nothing in the name: the long inversion time tells
])
def test_flair_in_the_name_is_a_flair_only_when_not_t1_weighted(tmp_path: Path, description: str, role: str,
                                                                tags: dict[str, Any]):
    write_small(tmp_path, StudyInfo.new("BRAIN"), "flair", description=description, **tags)
    [series] = importer(tmp_path).discover(tmp_path).series
    assert series["role"] == role


def test_brain_scene_of_the_test_model_is_a_skull_stripped_brain_with_a_nested_tumour():
    """What the tiny model is fitted on looks like AtlasResampler's output: zero outside the brain, tissue inside."""
    spec = spec_for(load_model(MODEL), "brats")
    assert spec.scene == "brain"
    rng = np.random.default_rng(3)
    image, labels = synthetic_case(spec, (40, 48, 48), rng)
    brain = np.any(image != 0, axis=0)
    assert 0.2 < brain.mean() < 0.95 and not labels[~brain].any()
    assert set(np.unique(labels).tolist()) == {0, 1, 2, 3}
    # the core is surrounded by the rim, the rim by the oedema
    assert _box_within(labels == NCR, labels == ET) and _box_within(labels == ET, labels == ED)
    # the enhancing rim is the brightest thing on T1c, the oedema the brightest on FLAIR
    t1c, flair = image[1], image[3]
    assert np.median(t1c[labels == ET]) > np.percentile(t1c[brain & (labels == 0)], 99)
    assert np.median(flair[labels == ED]) > np.percentile(flair[brain & (labels == 0)], 99)


def _box_within(inner: np.ndarray, outer: np.ndarray) -> bool:
    """The bounding box of `inner` lies within that of `outer` (for disjoint masks: `outer` surrounds `inner`)."""
    return all(o.min() <= i.min() and i.max() <= o.max() for i, o in zip(np.nonzero(inner), np.nonzero(outer),
                                                                         strict=True))
