"""`aimi evaluate --idc TASK --archive ZIP` on QA records in the published layout, made from the project's own chains
on real data (kidney CT on two real CT series, brain MR on the four-contrast Colin27 study), with reviewer SEGs that
are edited copies of the AI SEGs (tests/support/qa_record.py): corrections and blank corrections, both project
years, radiologists and non-experts, a case reviewed twice, a row outside the validation set, brain composites.

Every number of evaluation.csv is checked against MONAI on the two label maps the record was written from (the
decoded AI SEG and the correction), and the summary against the means of those numbers; the tolerances are the
authors' notebooks' values written out here (kidney 7/2/2 mm, brain 5 mm). Changing a filter changes the counts as
the rows predict.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest

from aimi.cli import main as aimi_main
from tests.evaluate.test_metrics import monai_scores
from tests.support.chains import BrainRun, real_ct_as_dicom, run_chain
from tests.support.qa_record import AiSeg, Review, ReviewedCase, chained, grow, paint, shift, shrink, write_record

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::FutureWarning")]

KIDNEY, BRAIN = "bamf_nnunet_ct_kidney", "bamf_nnunet_mr_brain"
#: The authors' notebooks' NSD tolerances (mm): aimi-kidney-ct model_performance_aimi2.ipynb, aimi-brain-mr brats.
TOLERANCE_MM = {"kidney": {"Kidney": 7.0, "Tumor": 2.0, "Cyst": 2.0},
                "brain": dict.fromkeys(("Necrosis", "Edema", "Enhancing Tumor", "Whole Tumor", "Tumor Core"), 5.0)}
#: The brain composites as the authors' brats notebook scores them: unions of the model's labels.
COMPOSITES = {"Whole Tumor": ("Necrosis", "Edema", "Enhancing Tumor"), "Tumor Core": ("Necrosis", "Enhancing Tumor")}
LABELS = {"kidney": {"Kidney": 1, "Tumor": 2, "Cyst": 3}, "brain": {"Necrosis": 1, "Edema": 2, "Enhancing Tumor": 3}}


@pytest.fixture(scope="module")
def kidney_record(shared_data: Path, kidney_weights: Path,
                  tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[ReviewedCase]]:
    """The kidney chain on a real abdominal CT (TotalSegmentator's, written as DICOM) and a real CT series of a head
    phantom (dcm_qa_ct, as scanned); five rows, one outside the validation set."""
    root = tmp_path_factory.mktemp("kidney-record")
    phantom = shared_data / "ct-head-phantom-dcmqa-dicom"
    (root / "in").mkdir()
    (root / "in" / "phantom").symlink_to(phantom, target_is_directory=True)
    abdomen_files = real_ct_as_dicom(shared_data / "ct-mr-abdomen-totalseg-nifti" / "example_ct_sm.nii.gz",
                                     root / "in" / "abdomen")
    status, report = run_chain(KIDNEY, root / "in", root / "out", kidney_weights)
    assert status == 0, report["cases"]
    segs = {str(pydicom.dcmread(p, stop_before_pixels=True).ReferencedSeriesSequence[0].SeriesInstanceUID): p
            for p in (root / "out").rglob("*.seg.dcm")}
    abdomen, phantom_ai = (AiSeg(segs[_series_of(files[0])], files, KIDNEY) for files in
                           (abdomen_files, sorted(p for p in phantom.iterdir() if p.name.startswith("I"))))
    return write_record(root / "record", [
        Review(abdomen, "rad1", "2023", True, chained(shrink(1, 3.0), grow(2, 3.0), paint(3, (0.5, 0.5, 0.6), 9.0)),
               "3 - Neither agree nor disagree"),
        Review(abdomen, "ne1", "2023", True, chained(grow(1, 6.0), shift(2, (1, 2, 0)))),  # reviewed twice
        Review(phantom_ai, "rad1", "2024", True, None, "5 - Strongly Agree"),  # no correction
        Review(phantom_ai, "ne1", "2024", True, chained(shift(1, (0, 6, -4)), paint(2, (0.4, 0.5, 0.5), 4.0))),
        Review(abdomen, "ne2", "2024", False, None),  # outside the validation set: not evaluated
    ])


@pytest.fixture(scope="module")
def brain_record(brain_run: BrainRun, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[ReviewedCase]]:
    """The brain chain's SEGs of the T1c, T2 and FLAIR series of one study (real head, Colin27)."""
    study, status, report, out = brain_run
    assert status == 0, report["cases"]
    ai = {role: AiSeg(out / study.series_uids[role] / f"{BRAIN}.seg.dcm", study.files[role], BRAIN)
          for role in ("t1c", "t2", "flair")}
    return write_record(tmp_path_factory.mktemp("brain-record"), [
        Review(ai["t1c"], "rad1", "2024", True, chained(grow(2, 4.0), shift(3, (1, 1, 0)), shrink(1, 1.0))),
        Review(ai["flair"], "ne1", "2024", True, None, "5 - Strongly Agree"),
        Review(ai["t2"], "rad2", "2023", True, chained(shrink(2, 3.0), grow(3, 2.0)), "2 - Disagree"),
    ])


def _series_of(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID)


def evaluated(task: str, archive: Path, out: Path, *selection: str) -> dict[str, list[dict[str, str]]]:
    assert aimi_main(["evaluate", "--idc", task, "--archive", str(archive), "-o", str(out), *selection]) == 0
    return {name: read_csv(out / f"{name}.csv") for name in ("evaluation", "summary", "table4", "reviewed", "likert")}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as stream:
        return list(csv.DictReader(stream))


def expected_scores(task: str, case: ReviewedCase) -> dict[str, tuple[float, float, float, float]]:
    """Per segment (and composite): Dice, NSD, HD95, MSD by MONAI; one empty mask: 0, 0, NaN, NaN (the documented
    convention; MONAI has none)."""
    names = {**{name: (name,) for name in LABELS[task]}, **(COMPOSITES if task == "brain" else {})}
    scores = {}
    for name, parts in names.items():
        values = [LABELS[task][part] for part in parts]
        reference, prediction = np.isin(case.reference_labels, values), np.isin(case.ai_labels, values)
        if reference.any() and prediction.any():
            scores[name] = monai_scores(reference, prediction, case.spacing, TOLERANCE_MM[task][name])
        elif reference.any() or prediction.any():
            scores[name] = (0.0, 0.0, math.nan, math.nan)
        else:
            scores[name] = (1.0, 1.0, 0.0, 0.0)
    return scores


def assert_close(ours: float, theirs: float, tolerance: float, what: str) -> None:
    assert (math.isnan(ours) and math.isnan(theirs)) or abs(ours - theirs) <= tolerance, (what, ours, theirs)


@pytest.mark.parametrize("task", ["kidney", "brain"])
def test_every_number_agrees_with_monai_and_blank_corrections_count_as_dice_1(
        task: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    archive, cases = request.getfixturevalue(f"{task}_record")
    outputs = evaluated(task, archive, tmp_path / "out")
    rows = {(r["case"], r["segment"]): r for r in outputs["evaluation"]}
    validated = [case for case in cases if case.review.validation]
    assert {r["case"] for r in outputs["evaluation"]} == {case.case for case in validated}
    per_group: dict[tuple[str, str], list[tuple[float, ...]]] = {}
    for case in validated:
        for segment, theirs in expected_scores(task, case).items():
            row = rows[(case.case, segment)]
            what = f"{case.case} {segment}"
            assert (row["task"], row["year"], row["reviewer"]) == (task, case.review.year, case.review.reviewer)
            assert row["reference"] == ("ai" if case.review.edit is None else "corrected"), what
            assert float(row["tolerance_mm"]) == TOLERANCE_MM[task][segment], what
            ours = tuple(float(row[c]) for c in ("dice", "nsd", "hd95_mm", "msd_mm"))
            for value, expected, limit in zip(ours, theirs, (1e-6, 1e-6, 1e-3, 1e-3), strict=True):
                assert_close(value, expected, limit, what)
            if case.review.edit is None:
                assert ours[0] == 1.0, what
            per_group.setdefault((case.review.year, segment), []).append(ours)
    summary = {(r["year"], r["segment"]): r for r in outputs["summary"]}
    assert set(summary) == set(per_group)
    for key, scores in per_group.items():
        assert int(summary[key]["cases"]) == len(scores), key
        for index, column in enumerate(("dice_mean", "nsd_mean", "hd95_mean_mm", "msd_mean_mm")):
            finite = [s[index] for s in scores if not math.isnan(s[index])]
            assert_close(float(summary[key][column]), float(np.mean(finite)) if finite else math.nan, 1e-6,
                         f"{key} {column}")
    print(f"\n{task}: table4.md\n" + (tmp_path / "out" / "table4.md").read_text())


@pytest.mark.parametrize(("selection", "takes"), [
    ((), lambda r: True),
    (("--year", "2023"), lambda r: r.year == "2023"),
    (("--reviewers", "rad"), lambda r: r.reviewer.startswith("rad")),
    (("--year", "2024", "--reviewers", "ne"), lambda r: r.year == "2024" and r.reviewer.startswith("ne")),
])
def test_a_filter_changes_the_counts_as_the_rows_say(selection: tuple[str, ...], takes: Callable[[Review], bool],
                                                    kidney_record: tuple[Path, list[ReviewedCase]],
                                                    tmp_path: Path) -> None:
    archive, cases = kidney_record
    taken = [case.review for case in cases if case.review.validation and takes(case.review)]
    outputs = evaluated("kidney", archive, tmp_path / "out", *selection)
    per_year = Counter(review.year for review in taken)
    assert {(r["year"], r["segment"]): int(r["n"]) for r in outputs["table4"]} == {
        (year, segment): n for year, n in per_year.items() for segment in LABELS["kidney"]}
    reviewed = {(r["year"], r["reviewers"]): r for r in outputs["reviewed"]}
    everything = reviewed[("all", "all")]
    assert int(everything["cases"]) == len(taken)
    assert int(everything["series"]) == len({review.ai.series_uid for review in taken})
    assert int(everything["no_correction"]) == sum(review.edit is None for review in taken)
    for kind in ("rad", "ne"):
        count = sum(review.reviewer.startswith(kind) for review in taken)
        assert int(reviewed[("all", kind)]["cases"]) == count if count else ("all", kind) not in reviewed
    likert: Counter[tuple[str, str, str]] = Counter()
    for row in outputs["likert"]:
        likert[(row["year"], row["reviewers"], row["answer"])] += int(row["count"])
    expected: Counter[tuple[str, str, str]] = Counter()
    for review in taken:  # one answer per segment column
        expected[(review.year, review.reviewer.rstrip("0123456789"), review.likert)] += len(LABELS["kidney"])
    assert likert == expected
