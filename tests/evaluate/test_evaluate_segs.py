"""aimi evaluate on SEG files: the project's own SEGs on one or two grids, real SEGs from dcmqi and highdicom,
the three CLI modes, and an AI SEG from the kidney chain against the phantom's truth."""

from __future__ import annotations

import csv
import math
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
import yaml

from aimi.cli import main as aimi_main
from aimi.evaluate import evaluate_pair, metrics
from aimi.evaluate import report as out
from aimi.evaluate.cli import add_parser, parse_tolerances, run
from aimi.evaluate.qa_record import QA_RECORD
from aimi.models import available_models, load_model
from aimi.seg.segments import SegmentSpec, parse_segments
from aimi.seg.writer import SegHeader, build_seg
from aimi_testkit.phantoms import write_phantom_series
from aimi_testkit.seg_reader import read_seg_masks
from aimi_testkit.synthetic import GridSpec, StudyInfo, write_series
from aimi_testkit.testmodel_cli import spec_for
from tests.evaluate.test_metrics import monai_scores
from tests.support.zenodo import serving

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
REAL_SEGS = ["dcmqi/liver.dcm", "highdicom/seg_image_ct_binary.dcm", "dcmqi/partial_overlaps.dcm"]


def model_segments(model: str = "bamf_nnunet_ct_kidney") -> list[SegmentSpec]:
    """A model's segment table, from its workflow YAML."""
    workflow = yaml.safe_load(load_model(model).workflow_path("default").read_text())
    return parse_segments(workflow["modules"]["DsegConverter"]["segments"], f"{model} segments")


def kidney_segments() -> list[SegmentSpec]:
    return model_segments()


def write_seg(labels: np.ndarray, files: list[Path], segments: list[SegmentSpec], path: Path,
              body_part: str = "KIDNEY") -> Path:
    sources = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    header = SegHeader(f"AIMI {body_part.title()} Segmentation", 100, body_part, "BAMF-test", "test")
    path.parent.mkdir(parents=True, exist_ok=True)
    build_seg(labels, sources, segments, header).save_as(path, enforce_file_format=True)
    return path


def series(tmp: Path, grid: GridSpec, study: StudyInfo, frame_uid: str) -> list[Path]:
    volume = np.zeros((grid.slices, grid.rows, grid.columns))
    return write_series(volume, grid, tmp, study=study, frame_of_reference_uid=frame_uid)


@pytest.fixture(scope="module")
def two_grids(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Reviewer SEG on a 1 mm grid, AI SEG on a 2 mm grid (segments renumbered and relabelled): one box each,
    drawn so that every 2 mm voxel holds exactly 2x2x2 of the 1 mm voxel centres."""
    tmp = tmp_path_factory.mktemp("grids")
    study, frame_uid = StudyInfo.new("GRID"), pydicom.uid.generate_uid()
    fine = GridSpec(24, 24, 16, (1.0, 1.0), 1.0, AXIAL, (0.0, 0.0, 0.0))
    coarse = GridSpec(12, 12, 8, (2.0, 2.0), 2.0, AXIAL, (0.5, 0.5, 0.5))
    kidney, tumor, cyst = kidney_segments()
    reference = np.zeros((16, 24, 24), np.uint8)
    reference[4:12, 4:12, 4:12] = 1
    reference[6:8, 6:8, 6:8] = 2
    prediction = np.zeros((8, 12, 12), np.uint8)
    prediction[2:6, 2:6, 2:6] = 2
    prediction[3, 3, 3] = 1
    renamed = [SegmentSpec(1, "Mass", tumor.category, tumor.type, region=tumor.region),
               SegmentSpec(2, "Kidneys", kidney.category, kidney.type, kidney.modifier), cyst]
    return (write_seg(reference, series(tmp / "fine", fine, study, frame_uid), [kidney, tumor, cyst],
                      tmp / "qa" / "reviewer.dcm"),
            write_seg(prediction, series(tmp / "coarse", coarse, study, frame_uid), renamed, tmp / "ai" / "ai.dcm"))


@pytest.fixture(scope="module")
def one_grid(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """Reviewer and AI SEG of one anisotropic series; the AI's kidney is 2 slices off and it has no Cyst segment."""
    tmp = tmp_path_factory.mktemp("same")
    grid = GridSpec.axial(rows=20, columns=24, slices=12, pixel_spacing=(0.7, 0.9), slice_step=2.5)
    files = series(tmp / "ct", grid, StudyInfo.new("SAME"), pydicom.uid.generate_uid())
    reference = np.zeros((12, 20, 24), np.uint8)
    reference[2:9, 4:14, 5:17] = 1
    reference[4:6, 6:8, 6:9] = 2
    reference[7, 10:12, 12:14] = 3
    prediction = np.zeros_like(reference)
    prediction[4:11, 4:14, 5:17] = 1
    prediction[4:6, 6:8, 6:9] = 2
    segments = kidney_segments()
    return (write_seg(reference, files, segments, tmp / "qa" / "reviewer.dcm"),
            write_seg(prediction, files, segments[:2], tmp / "ai" / "ai.dcm"), reference, prediction)


def by_segment(results) -> dict:
    return {r.segment: r for r in results}


def test_brain_composites_are_evaluated_like_segments_at_the_authors_5_mm(tmp_path: Path) -> None:
    """Whole Tumor (necrosis + edema + enhancing) and Tumor Core (necrosis + enhancing) from the two SEGs' own
    segments, scored against MONAI on the united masks."""
    grid = GridSpec.axial(rows=30, columns=30, slices=16, pixel_spacing=(1.0, 1.0), slice_step=1.5)
    files = series(tmp_path / "mr", grid, StudyInfo.new("BRAIN"), pydicom.uid.generate_uid())
    reference = np.zeros((16, 30, 30), np.uint8)
    reference[2:14, 4:26, 4:26] = 2  # edema around the core
    reference[5:11, 9:21, 9:21] = 3  # enhancing rim
    reference[7:9, 13:17, 13:17] = 1  # necrosis
    prediction = np.zeros_like(reference)
    prediction[3:14, 5:24, 4:26] = 2
    prediction[5:11, 10:21, 9:20] = 3
    prediction[6:9, 13:18, 13:17] = 1
    segments = model_segments("bamf_nnunet_mr_brain")
    results = by_segment(evaluate_pair(write_seg(reference, files, segments, tmp_path / "qa.dcm", "HEAD"),
                                       write_seg(prediction, files, segments, tmp_path / "ai.dcm", "BRAIN"), "brain"))
    assert list(results) == ["Necrosis", "Edema", "Enhancing Tumor", "Whole Tumor", "Tumor Core"]
    assert {r.tolerance_mm for r in results.values()} == {5.0}
    spacing = (1.5, 1.0, 1.0)
    for name, values in (("Whole Tumor", (1, 2, 3)), ("Tumor Core", (1, 3))):
        ref, pred = np.isin(reference, values), np.isin(prediction, values)
        monai = monai_scores(ref, pred, spacing, 5.0)
        result = results[name]
        assert abs(result.dice - monai[0]) <= 1e-6 and abs(result.nsd - monai[1]) <= 1e-6, name
        assert abs(result.hd95_mm - monai[2]) <= 1e-3 and abs(result.msd_mm - monai[3]) <= 1e-3, name


def test_segs_on_different_grids_are_compared_in_physical_space(two_grids: tuple[Path, Path]) -> None:
    reviewer, ai = two_grids
    results = by_segment(evaluate_pair(reviewer, ai, "grids"))

    assert set(results) == {"Kidney", "Tumor", "Cyst"}  # matched by codes, despite other labels and numbers
    for name in ("Kidney", "Tumor"):
        assert (results[name].dice, results[name].nsd, results[name].hd95_mm) == (1.0, 1.0, 0.0), name
    assert results["Kidney"].reference_voxels == 8**3 - 2**3
    assert (results["Tumor"].true_positives, results["Tumor"].false_positives) == (1, 0)
    assert results["Kidney"].true_positives is None  # organs are not lesions
    assert (results["Cyst"].status, results["Cyst"].dice, results["Cyst"].hd95_mm) == ("ok", 1.0, 0.0)  # both empty


def test_segs_on_one_grid_give_the_metrics_of_their_label_maps(one_grid) -> None:
    reviewer, ai, reference, prediction = one_grid
    results = by_segment(evaluate_pair(reviewer, ai, "same", tolerances={"kidney": 3.0}))
    spacing = (2.5, 0.7, 0.9)
    kidney_distances = metrics.surface_distances(reference == 1, prediction == 1, spacing)

    assert results["Kidney"].dice == metrics.dice(reference == 1, prediction == 1) == 2 * 584 / (824 + 828)
    assert results["Kidney"].hd95_mm == pytest.approx(metrics.hd95(kidney_distances), abs=1e-9)
    assert results["Kidney"].nsd == pytest.approx(metrics.nsd(kidney_distances, 3.0), abs=1e-12)
    assert results["Kidney"].tolerance_mm == 3.0 and results["Tumor"].tolerance_mm == 2.0
    assert results["Tumor"].dice == 1.0
    cyst = results["Cyst"]
    assert (cyst.status, cyst.dice, cyst.nsd, cyst.false_negatives) == ("missing in prediction", 0.0, 0.0, 1)
    assert math.isnan(cyst.hd95_mm)


@pytest.mark.parametrize("name", REAL_SEGS)
def test_a_real_seg_against_itself_is_perfect(shared_data: Path, name: str) -> None:
    path = shared_data / "seg-real-examples" / name
    results = evaluate_pair(path, path, name)
    assert results and all((r.dice, r.nsd, r.hd95_mm, r.status) == (1.0, 1.0, 0.0, "ok") for r in results)
    assert all(r.reference_voxels > 0 for r in results)


def test_tolerances_parse_and_refuse_bad_entries() -> None:
    assert parse_tolerances(["Breast=7", "Fibroglandular Tissue=2.5"]) == {"Breast": 7.0,
                                                                         "Fibroglandular Tissue": 2.5}
    for bad in ("7", "Breast=", "Breast=-1", "=3"):
        with pytest.raises(ValueError, match="SEGMENT=MM"):
            parse_tolerances([bad])


def evaluate_cli(*argv: str) -> int:
    import argparse

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    return run(parser.parse_args(["evaluate", *argv]))


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as stream:
        return list(csv.DictReader(stream))


def test_cli_pairs_folders_by_referenced_series_and_writes_every_output(one_grid, two_grids, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """The two-grid SEGs reference different series, so folder mode leaves them unpaired."""
    ai_dir, qa_dir = tmp_path / "ai-segmentations-dcm", tmp_path / "qa-segmentations-dcm"
    for index, (reviewer, ai) in enumerate((one_grid[:2], two_grids)):
        (ai_dir / "nested" / str(index)).mkdir(parents=True)
        qa_dir.mkdir(exist_ok=True)
        (qa_dir / f"{index}.dcm").write_bytes(reviewer.read_bytes())
        (ai_dir / "nested" / str(index) / "seg.dcm").write_bytes(ai.read_bytes())
    (qa_dir / "notes.txt").write_text("not DICOM")

    assert evaluate_cli(str(ai_dir), str(qa_dir), "-o", str(tmp_path / "out")) == 0
    rows = read_csv(tmp_path / "out" / "evaluation.csv")
    assert [(r["segment"], r["status"]) for r in rows] == [
        ("Kidney", "ok"), ("Tumor", "ok"), ("Cyst", "missing in prediction")]
    assert {r["task"] for r in rows} == {"kidney"}
    summary = {r["segment"]: r for r in read_csv(tmp_path / "out" / "summary.csv")}
    assert float(summary["Kidney"]["dice_mean"]) == pytest.approx(2 * 584 / (824 + 828))
    assert summary["Tumor"]["detection_sensitivity"] == "1.0"
    assert summary["Cyst"]["hd95_cases"] == "0"  # the missing-in-prediction NaN is left out
    assert (tmp_path / "out" / "boxplot-kidney.png").read_bytes()[:4] == b"\x89PNG"
    unpaired = read_csv(tmp_path / "out" / "unpaired.csv")
    assert sorted((r["folder"], Path(r["file"]).name) for r in unpaired) == [("prediction", "seg.dcm"),
                                                                             ("reference", "1.dcm")]
    kidney = rows[0]
    assert float(kidney["tolerance_mm"]) == 7.0  # the authors' kidney notebook: 7 mm for the kidney, 2 for lesions
    assert [float(r["tolerance_mm"]) for r in rows[1:]] == [2.0, 2.0]
    nsd, msd = float(kidney["nsd"]), float(kidney["msd_mm"])
    assert 0.606 < nsd <= 1 and 0 < msd < 5.0  # wider than at 2 mm (0.606); a mean below the 95th percentile
    printed = capsys.readouterr().out
    assert f"| kidney | - | all | Kidney | 1 | 0.707 | {nsd:.3f} (7 mm) | 5.00 | {msd:.2f} |  |" in printed


def test_cli_follows_qa_results_as_the_authors_count_them(one_grid, two_grids, tmp_path: Path) -> None:
    """One case per series and reviewer; a blank correction is a reviewed case whose reference is the AI SEG
    (Dice 1, as the paper's 1.0 ± 0.0 rows); --year and --reviewers select rows, Likert answers counted over them."""
    ai_dir, qa_dir = tmp_path / "ai-segmentations-dcm", tmp_path / "qa-segmentations-dcm"
    ai_dir.mkdir()
    qa_dir.mkdir()
    names = []
    for index, (reviewer, ai) in enumerate((one_grid[:2], two_grids)):
        (qa_dir / f"case{index}.dcm").write_bytes(reviewer.read_bytes())
        (ai_dir / f"case{index}.dcm").write_bytes(ai.read_bytes())
        names.append(str(pydicom.dcmread(ai, stop_before_pixels=True).ReferencedSeriesSequence[0].SeriesInstanceUID))
    kidney_q, tumor_q = "Was the AI predicted Kidney label accurate?", "Was the AI predicted Tumor label accurate?"
    rows = [
        {"SeriesInstanceUID": names[0], "Reviewer": "rad1", "AimiProjectYear": "2023", "Validation": "True",
         "AISegmentation": "case0.dcm",
         "CorrectedSegmentation": "case0.dcm", kidney_q: "4 - Agree", tumor_q: "5 - Strongly Agree"},
        {"SeriesInstanceUID": names[1], "Reviewer": "ne1", "AimiProjectYear": "2024", "Validation": "True",
         "AISegmentation": "",
         "CorrectedSegmentation": "qa-segmentations-dcm/case1.dcm", kidney_q: "4 - Agree", tumor_q: ""},
        {"SeriesInstanceUID": names[0], "Reviewer": "rad2", "AimiProjectYear": "2024", "Validation": "True",
         "AISegmentation": "case0.dcm", "CorrectedSegmentation": "", kidney_q: "5 - Strongly Agree",
         tumor_q: "5 - Strongly Agree"},
        # outside the validation set (the non-expert scored every AI SEG): not evaluated, not counted
        {"SeriesInstanceUID": names[1], "Reviewer": "ne1", "AimiProjectYear": "2023", "Validation": "False",
         "AISegmentation": "case1.dcm", "CorrectedSegmentation": "", kidney_q: "3 - Neutral", tumor_q: ""},
    ]
    qa_csv = tmp_path / "qa-results.csv"
    out.write_csv(qa_csv, ["Collection", "PatientID", "SeriesInstanceUID", "Validation", "Reviewer", "AimiProjectYear",
                           "AISegmentation", "CorrectedSegmentation", kidney_q, tumor_q, "comments"], rows)

    def evaluated(*selection: str) -> tuple[list[dict[str, str]], dict[tuple[str, str], int]]:
        folder = tmp_path / "-".join(["out", *selection])
        assert evaluate_cli(str(ai_dir), str(qa_dir), "--qa-results", str(qa_csv), "-o", str(folder),
                            *selection) == 0
        likert: dict[tuple[str, str], int] = {}
        for r in read_csv(folder / "likert.csv"):
            likert[(r["segment"], r["answer"])] = likert.get((r["segment"], r["answer"]), 0) + int(r["count"])
        return read_csv(folder / "evaluation.csv"), likert

    results, likert = evaluated()
    assert {(r["case"], r["reviewer"], r["year"], r["reference"]) for r in results} == {
        (f"{names[0]} rad1", "rad1", "2023", "corrected"), (f"{names[1]} ne1", "ne1", "2024", "corrected"),
        (f"{names[0]} rad2", "rad2", "2024", "ai")}
    blank = [r for r in results if r["reference"] == "ai"]
    assert blank and all(float(r["dice"]) == 1.0 and float(r["msd_mm"]) == 0.0 for r in blank)
    assert likert == {("Kidney", "4 - Agree"): 2, ("Kidney", "5 - Strongly Agree"): 1,
                      ("Tumor", "5 - Strongly Agree"): 2}
    by_year_and_kind = [(r["segment"], r["year"], r["reviewers"], r["answer"], r["count"])
                        for r in read_csv(tmp_path / "out" / "likert.csv")]
    assert by_year_and_kind == [("Kidney", "2023", "rad", "4 - Agree", "1"), ("Kidney", "2024", "ne", "4 - Agree", "1"),
                                ("Kidney", "2024", "rad", "5 - Strongly Agree", "1"),
                                ("Tumor", "2023", "rad", "5 - Strongly Agree", "1"),
                                ("Tumor", "2024", "rad", "5 - Strongly Agree", "1")]
    for selection, cases in ((("--reviewers", "rad"), {"rad1", "rad2"}), (("--year", "2024"), {"ne1", "rad2"}),
                             (("--year", "2024", "--reviewers", "rad"), {"rad2"}),
                             (("--year", "2023", "--year", "2024", "--reviewers", "ne"), {"ne1"})):
        results, likert = evaluated(*selection)
        assert {r["reviewer"] for r in results} == cases, selection
        assert sum(likert.values()) == sum(bool(row[q]) for row in rows if row["Reviewer"] in cases
                                           and row["Validation"] == "True" for q in (kidney_q, tumor_q)), selection
    rows[3]["Validation"] = "maybe"
    out.write_csv(qa_csv, list(rows[0]), rows)
    assert evaluate_cli(str(ai_dir), str(qa_dir), "--qa-results", str(qa_csv), "-o", str(tmp_path / "out1")) == 2
    rows.pop()

    rows[1]["CorrectedSegmentation"] = "missing.dcm"
    out.write_csv(qa_csv, list(rows[0]), rows)
    assert evaluate_cli(str(ai_dir), str(qa_dir), "--qa-results", str(qa_csv), "-o", str(tmp_path / "out2")) == 1
    assert evaluate_cli(str(ai_dir), str(qa_csv), "-o", str(tmp_path / "out3")) == 2  # a folder and a file
    assert evaluate_cli(str(ai_dir), str(qa_dir), "--year", "2024", "-o", str(tmp_path / "out4")) == 2  # no CSV


@pytest.mark.slow
def test_ai_seg_from_the_kidney_chain_against_the_phantom_truth(kidney_weights: Path, tmp_path: Path) -> None:
    intensities = spec_for(load_model("bamf_nnunet_ct_kidney"), "kidney").intensities
    files, truth = write_phantom_series(tmp_path / "in", intensities, study=StudyInfo.new("CHAIN"))
    assert aimi_main(["run", "bamf_nnunet_ct_kidney", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
                      "--weights", str(kidney_weights), "--no-tta"]) == 0
    ai_seg = next((tmp_path / "out").rglob("*.seg.dcm"))
    truth_seg = write_seg(truth, files, kidney_segments(), tmp_path / "truth.dcm")

    results = by_segment(evaluate_pair(truth_seg, ai_seg, "chain"))
    uids = [str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files]
    decoded = read_seg_masks(ai_seg, uids)
    for value, name in enumerate(("Kidney", "Tumor", "Cyst"), start=1):
        assert results[name].dice == pytest.approx(metrics.dice(truth == value, decoded[name]), abs=1e-12)
    # measured: Dice 0.96, HD95 12.2 mm (the tiny model labels part of the lesions bordering the kidney as kidney)
    assert results["Kidney"].dice >= 0.9 and results["Kidney"].hd95_mm < 15.0
    found = results["Tumor"]
    assert (found.true_positives, found.false_positives, found.false_negatives) == tuple(
        vars(metrics.detection(truth == 2, decoded["Tumor"])).values())


@pytest.fixture
def kidney_qa_zip(one_grid, two_grids, tmp_path: Path) -> Path:
    """A QA record zip laid out as the published one: <task>/ai-segmentations-dcm/, qa-segmentations-dcm/ and
    qa-results.csv (one corrected case, one blank correction)."""
    root = tmp_path / "zip-src" / "kidney-ct"
    for folder in ("ai-segmentations-dcm", "qa-segmentations-dcm"):
        (root / folder).mkdir(parents=True)
    series = []
    for index, (reviewer, ai) in enumerate((one_grid[:2], two_grids)):
        (root / "qa-segmentations-dcm" / f"{index}.dcm").write_bytes(reviewer.read_bytes())
        (root / "ai-segmentations-dcm" / f"{index}.dcm").write_bytes(ai.read_bytes())
        series.append(str(pydicom.dcmread(ai, stop_before_pixels=True).ReferencedSeriesSequence[0].SeriesInstanceUID))
    out.write_csv(root / "qa-results.csv", ["SeriesInstanceUID", "Reviewer", "AimiProjectYear", "AISegmentation",
                                            "CorrectedSegmentation"],
                  [{"SeriesInstanceUID": series[0], "Reviewer": "rad1", "AimiProjectYear": "2024",
                    "AISegmentation": "0.dcm", "CorrectedSegmentation": "0.dcm"},
                   {"SeriesInstanceUID": series[1], "Reviewer": "ne1", "AimiProjectYear": "2024",
                    "AISegmentation": "1.dcm", "CorrectedSegmentation": ""}])
    archive = tmp_path / "kidney-ct.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(root.parent.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(root.parent).as_posix())
    return archive


def test_idc_fetches_the_tasks_qa_record_checks_it_and_evaluates_it(kidney_qa_zip: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """`--idc kidney` against a Zenodo stand-in: the record's kidney-ct.zip checked (size, MD5), unpacked once,
    evaluated as the authors count it; a file unlike its record is refused and nothing unpacked; `--archive` works
    offline."""
    with serving(QA_RECORD) as zenodo:
        monkeypatch.setenv("AIMI_ZENODO_URL", zenodo.url)
        zenodo.files["kidney-ct.zip"] = kidney_qa_zip.read_bytes()
        assert evaluate_cli("--idc", "kidney", "-o", str(tmp_path / "out")) == 0
        rows = read_csv(tmp_path / "out" / "evaluation.csv")
        assert {(r["reviewer"], r["reference"]) for r in rows} == {("rad1", "corrected"), ("ne1", "ai")}
        downloads = [path for path, _ in zenodo.requests if path.endswith("/content")]
        assert evaluate_cli("--idc", "kidney", "-o", str(tmp_path / "out")) == 0  # unpacked already: no download
        assert [path for path, _ in zenodo.requests if path.endswith("/content")] == downloads
        assert sorted(p.name for p in (tmp_path / "out" / "qa-record").iterdir()) == ["kidney"]

        zenodo.stated["kidney-ct.zip"] = {"checksum": "md5:" + "0" * 32}
        assert evaluate_cli("--idc", "kidney", "-o", str(tmp_path / "tampered")) == 1
        assert not (tmp_path / "tampered" / "qa-record" / "kidney").exists()
    monkeypatch.setenv("AIMI_ZENODO_URL", zenodo.url)  # the stand-in is gone: offline
    assert evaluate_cli("--idc", "kidney", "--archive", str(kidney_qa_zip), "-o", str(tmp_path / "offline"),
                        "--compare-published") == 0
    assert len(read_csv(tmp_path / "offline" / "evaluation.csv")) == len(rows)
    table4 = {r["segment"]: r for r in read_csv(tmp_path / "offline" / "table4.csv")}
    summary = {r["segment"]: r for r in read_csv(tmp_path / "offline" / "summary.csv")}
    assert table4["Kidney"]["n"] == "1" and table4["Kidney"]["NSD tolerance (mm)"] == "7"  # the other: "Kidneys"
    assert table4["Kidney"]["Dice"] == f"{float(summary['Kidney']['dice_mean']):.2f}"  # one case: no sd
    compared = (tmp_path / "offline" / "compare-published.md").read_text()
    dice = float(summary["Kidney"]["dice_mean"])
    # the record's rows are of 2024: compared with the authors' aimiv2 (2024) figures, not the 2023 ones (0.97)
    assert f"| kidney | 2024 | Kidney | dice | {dice:.3f} | 1.00 (0.00) | {dice - 1:+.3f} | bamf-health/aimi-kidney" \
           in compared
    assert evaluate_cli("--idc", "kidney", str(tmp_path), str(tmp_path), "-o", str(tmp_path / "x")) == 2
    assert evaluate_cli("--archive", str(kidney_qa_zip), "-o", str(tmp_path / "x")) == 2


@pytest.mark.parametrize("task", ["kidney", "liver", "lung", "breast", "brain"])
def test_every_segment_of_a_task_has_its_published_figures(task: str) -> None:
    """The four metrics of each segment (and the brain composites) are found in the model's figures.toml."""
    from aimi.evaluate.published import published_figures

    figures = published_figures(task)
    [model] = [m for m in available_models() if m.endswith(f"_{task}")]
    segments = [s.name.casefold() for s in model_segments(model)]
    segments += ["whole tumor", "tumor core"] if task == "brain" else []
    metrics_of = {"kidney": ("dice", "hd95", "nsd")}.get(task, ("dice", "hd95", "nsd", "msd"))
    assert {(segment, metric) for segment in segments for metric in metrics_of} <= {key[:2] for key in figures}
