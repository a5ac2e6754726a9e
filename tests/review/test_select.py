"""`aimi review select`: the strategies on hand-made reports, batch reports and old ledgers, and the ranking on 20
real kidney-chain cases with known injected errors against random selection."""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from aimi.batch.ledger import Ledger
from aimi.cli import main as aimi_main
from aimi.models import load_model
from aimi.review.select import candidates, select
from aimi_testkit.phantoms import write_phantom_series
from aimi_testkit.synthetic import StudyInfo
from aimi_testkit.testmodel_cli import spec_for
from tests.support.chains import real_ct_as_dicom, run_chain

KIDNEY = "bamf_nnunet_ct_kidney"


def doubt(score: float, **labels: dict[str, object]) -> dict[str, object]:
    return {"NNUnetRunner": {"doubt": {"score": score, "folds": 1, "empty": [n for n, v in labels.items()
                                                                           if not v.get("voxels")],
                                        "labels": labels}}}


def write_run(folder: Path, scores: list[float]) -> None:
    folder.mkdir(parents=True)
    cases = [{"id": f"case{i}", "series": {"ct": f"series{i}"}, "status": "done", "outputs": [f"case{i}/x.seg.dcm"],
              "measurements": doubt(score, kidney={"voxels": 10, "entropy": score, "fold_dice": None})}
             for i, score in enumerate(scores)]
    cases.append({"id": "broken", "series": {"ct": "s"}, "status": "failed", "outputs": []})
    (folder / "run-report.json").write_text(json.dumps({"model": {"name": KIDNEY}, "cases": cases}))


def read_list(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as stream:
        return list(csv.DictReader(stream))


def test_strategies_rank_choose_and_explain(tmp_path: Path) -> None:
    scores = [0.1, 0.5, 0.3, 0.05, 0.45, 0.2, 0.15, 0.35, 0.25, 0.4]
    write_run(tmp_path / "a", scores[:5])
    write_run(tmp_path / "b", scores[5:])
    pool = candidates([tmp_path / "a", tmp_path / "b"])
    assert len(pool) == 10  # the failed cases are not reviewable
    top = select(pool, 0.3, "uncertainty")
    assert [c.score for c in top] == [0.5, 0.45, 0.4]
    assert top[0].reasons == ("kidney: uncertain voxels (entropy 0.50)",)
    assert select(pool, 0.01, "uncertainty") == top[:1]  # at least one case
    random = select(pool, 0.3, "random", seed=7)
    assert random == select(pool, 0.3, "random", seed=7) and len(random) == 3
    assert {tuple(c.case for c in select(pool, 0.3, "random", seed=s)) for s in range(20)} != {tuple(
        c.case for c in random)}
    ranked = sorted(pool, key=lambda c: -c.score)
    bands = [range(0, 4), range(4, 7), range(7, 10)]  # ten cases in three bands of the ranking
    picks = [[ranked.index(c) for c in select(pool, 0.3, "stratified", seed=seed)] for seed in range(10)]
    assert all(index in band for picked in picks for index, band in zip(picked, bands, strict=True))
    assert len({tuple(picked) for picked in picks}) > 1  # at random within each band
    with pytest.raises(ValueError, match="fraction"):
        select(pool, 0.0, "uncertainty")

    assert aimi_main(["review", "select", str(tmp_path / "a"), str(tmp_path / "b"), "--fraction", "0.2",
                      "-o", str(tmp_path / "list.csv")]) == 0
    rows = read_list(tmp_path / "list.csv")
    assert [(r["rank"], r["case"], r["score"], r["series"]) for r in rows] == [
        ("1", "case1", "0.500000", "ct=series1"), ("2", "case4", "0.450000", "ct=series4")]
    assert Path(rows[0]["run"]) == tmp_path / "a" and rows[0]["outputs"] == "case1/x.seg.dcm"
    assert aimi_main(["review", "select", str(tmp_path), "-o", str(tmp_path / "x.csv")]) == 2  # no report there
    assert not (tmp_path / "x.csv").exists()


def test_reasons_name_disagreeing_folds_and_missing_segments(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    measured = doubt(0.4, kidney={"voxels": 9, "entropy": 0.05, "fold_dice": 0.6}, tumor={"voxels": 0})
    (tmp_path / "run" / "run-report.json").write_text(json.dumps({"model": {"name": KIDNEY}, "cases": [
        {"id": "c", "series": {"ct": "s"}, "status": "done", "outputs": [], "measurements": measured}]}))
    [candidate] = candidates([tmp_path / "run"])
    assert candidate.reasons == ("kidney: folds disagree (Dice 0.60)", "tumor: none found")


def test_a_volume_unlike_the_cohorts_is_named_without_changing_the_score(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    volumes = [300.0, 280.0, 320.0, 310.0, 295.0, 305.0, 290.0, 315.0, 2400.0]  # one kidney pair eight times too big
    cases = [{"id": f"c{i}", "series": {"ct": f"s{i}"}, "status": "done", "outputs": [],
              "measurements": doubt(0.1, kidney={"voxels": 100, "entropy": 0.1, "fold_dice": None, "volume_ml": ml})}
             for i, ml in enumerate(volumes)]
    (tmp_path / "run" / "run-report.json").write_text(json.dumps({"model": {"name": KIDNEY}, "cases": cases}))
    pool = {c.case: c for c in candidates([tmp_path / "run"])}
    assert pool["c8"].reasons == ("kidney: volume 2400.0 mL, unlike the other 8 cases' (median 305.0 mL)",)
    assert all(not pool[f"c{i}"].reasons for i in range(8)) and {c.score for c in pool.values()} == {0.1}
    (tmp_path / "run" / "run-report.json").write_text(json.dumps({"model": {"name": KIDNEY}, "cases": cases[-4:]}))
    assert not any(c.reasons for c in candidates([tmp_path / "run"]))  # four cases make no cohort


def test_batch_ledgers_keep_the_doubt_old_ledgers_included(tmp_path: Path) -> None:
    """A ledger written before measurements were kept gets the column; a batch report's series are candidates."""
    old = sqlite3.connect(tmp_path / "ledger.sqlite")
    old.execute("CREATE TABLE series (uid TEXT PRIMARY KEY, position INTEGER NOT NULL, state TEXT NOT NULL DEFAULT "
                "'pending', attempts INTEGER NOT NULL DEFAULT 0, interruptions INTEGER NOT NULL DEFAULT 0, module TEXT "
                "NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '', outputs TEXT NOT NULL DEFAULT '[]', seconds "
                "REAL NOT NULL DEFAULT 0, updated TEXT NOT NULL)")
    old.execute("INSERT INTO series (uid, position, state, updated) VALUES ('1.2.3', 0, 'done', 'then')")
    old.commit()
    old.close()
    measured = doubt(0.3, kidney={"voxels": 5, "entropy": 0.3, "fold_dice": None})
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        assert ledger.entries()[0].measurements == {}
        ledger.add(["1.2.4"])
        ledger.finish("1.2.4", "done", outputs=["1.2.4/x.seg.dcm"], measurements=measured)
        entries = [entry.as_dict() for entry in ledger.entries()]
    assert entries[1]["measurements"] == measured and "measurements" not in entries[0]
    (tmp_path / "batch-report.json").write_text(json.dumps({"model": {"name": KIDNEY}, "series": entries}))
    pool = candidates([tmp_path])
    assert [(c.case, c.series) for c in pool] == [("1.2.3", {"series": "1.2.3"}), ("1.2.4", {"series": "1.2.4"})]
    assert np.isnan(pool[0].score) and pool[1].score == 0.3
    assert pool[0].reasons == ("no doubt measured (run before aimi measured it)",)


#: Errors injected into 6 of 20 cases: inputs the tiny kidney model was not fit on.
INJECTED = {"contrast shifted by +80 HU": 2, "noise 4.5x": 2, "real CT": 2}


@pytest.fixture(scope="module")
def twenty_cases(shared_data: Path, kidney_weights: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    """14 phantoms like those the tiny model was fit on, and 6 with an injected error; one `aimi run` over all."""
    root = tmp_path_factory.mktemp("twenty")
    intensities = spec_for(load_model(KIDNEY), "kidney").intensities
    shifted = {label: tuple(v + 80.0 for v in values) for label, values in intensities.items()}
    erroneous: set[str] = set()

    def phantom(name: str, classes: dict[int, tuple[float, ...]], seed: int, noise: float) -> list[Path]:
        return write_phantom_series(root / "in" / name, classes, study=StudyInfo.new(name), seed=seed,
                                    noise_sd=noise)[0]

    for index in range(14):
        phantom(f"clean{index}", intensities, 100 + index, 10.0)
    for index in range(2):
        erroneous.add(_uid(phantom(f"shift{index}", shifted, 200 + index, 10.0)))
        erroneous.add(_uid(phantom(f"noise{index}", intensities, 300 + index, 45.0)))
    erroneous.add(_uid(real_ct_as_dicom(shared_data / "ct-mr-abdomen-totalseg-nifti" / "example_ct_sm.nii.gz",
                                        root / "in" / "abdomen")))
    erroneous.add(_uid(real_ct_as_dicom(shared_data / "ct-chest-pyradiomics-nifti" / "lung1_image.nii.gz",
                                        root / "in" / "chest", (slice(128, 384), slice(128, 384), slice(None)))))
    status, report = run_chain(KIDNEY, root / "in", root / "out", kidney_weights)
    assert status == 0 and report["summary"]["cases_done"] == 20, report["summary"]
    return root / "out", erroneous


def _uid(files: list[Path]) -> str:
    import pydicom

    return str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)


@pytest.mark.slow
def test_uncertainty_puts_the_injected_errors_first(twenty_cases: tuple[Path, set[str]], tmp_path: Path) -> None:
    out, erroneous = twenty_cases
    assert len(erroneous) == sum(INJECTED.values())
    pool = candidates([out])

    def found(strategy: str, fraction: float, seeds: range = range(1)) -> tuple[float, float]:
        """Mean over seeds: share of the selected cases that are injected errors, share of the errors selected."""
        shares = []
        for seed in seeds:
            chosen = select(pool, fraction, strategy, seed)
            hits = sum(c.case in erroneous for c in chosen)
            shares.append((hits / len(chosen), hits / len(erroneous)))
        return tuple(float(v) for v in np.mean(shares, axis=0))  # type: ignore[return-value]

    rows: dict[str, Callable[[float], tuple[float, float]]] = {
        "uncertainty": lambda f: found("uncertainty", f),
        "random (mean of 200 seeds)": lambda f: found("random", f, range(200)),
        "stratified (mean of 200 seeds)": lambda f: found("stratified", f, range(200)),
    }
    table = {name: (measure(0.1), measure(0.3)) for name, measure in rows.items()}
    print("\n| strategy | top 10% (2 cases): errors among them | top 30% (6 cases): errors among them | "
          "errors found in top 30% |\n|---|---|---|---|")
    for name, ((precision_10, _), (precision_30, recall_30)) in table.items():
        print(f"| {name} | {precision_10:.0%} | {precision_30:.0%} | {recall_30:.0%} |")
    (uncertain_10, _), (_, uncertain_recall_30) = table["uncertainty"]
    (random_10, _), (_, random_recall_30) = table["random (mean of 200 seeds)"]
    assert abs(random_10 - 0.3) < 0.1  # the base rate: 6 of 20
    assert uncertain_10 > random_10 and uncertain_10 >= 0.5
    assert uncertain_recall_30 >= 0.5 and uncertain_recall_30 > random_recall_30
