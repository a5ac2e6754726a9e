"""Which cases to review: every finished case of one or many runs or batches, ranked by the doubt its prediction
measured (aimi.inference.uncertainty, in run-report.json or batch-report.json).

Strategies: `uncertainty` (most doubtful first), `random` (the paper's way, a seeded baseline), `stratified` (one
case at random from each of as many equal bands of the doubt ranking as cases are wanted: the whole range, for
an unbiased estimate of quality). A case's score is the largest of its steps' doubts (breast: two models).

Volume sanity without invented norms: a segment whose volume lies far from the other cases' of the same model and
step (robust z-score of log volume over at least MIN_COHORT cases beyond VOLUME_Z) is named in the reasons; it does
not change the score.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from aimi.atomic import write_atomically

REPORTS = ("run-report.json", "batch-report.json")
LIST_COLUMNS = ("rank", "case", "model", "score", "reasons", "run", "series", "outputs")
STRATEGIES = ("uncertainty", "random", "stratified")
#: Doubts worth a reviewer's note: entropy over predicted voxels, and fold Dice below these.
ENTROPY_NOTE, FOLD_DICE_NOTE = 0.2, 0.9
#: Volume sanity: cases of one model that make a cohort, and how far (robust z of log volume) an outlier lies.
MIN_COHORT, VOLUME_Z = 8, 3.5


@dataclass(frozen=True)
class Candidate:
    """A finished case that can be reviewed: where it ran, what it wrote, and how doubtful its prediction was."""

    run: Path
    case: str
    model: str
    series: dict[str, str]
    outputs: tuple[str, ...]
    score: float
    reasons: tuple[str, ...]
    volumes: tuple[tuple[str, float], ...] = ()  # ('<step>: <label>', mL) of each segment found


def candidates(folders: Iterable[Path]) -> list[Candidate]:
    """Every done case of each folder's report; a folder without a report is a ValueError naming it."""
    found = []
    for folder in folders:
        report_path = next((folder / name for name in REPORTS if (folder / name).is_file()), None)
        if report_path is None:
            raise ValueError(f"{folder}: no {' or '.join(REPORTS)}; give output folders of aimi run or aimi batch")
        report = json.loads(report_path.read_text())
        model = str(report.get("model", {}).get("name", ""))
        for entry in report.get("cases") or report.get("series") or []:
            if entry.get("status", entry.get("state")) == "done":
                found.append(_candidate(folder, model, entry))
    return _with_volume_outliers(found)


def _with_volume_outliers(pool: list[Candidate]) -> list[Candidate]:
    """Each candidate with a reason for every segment volume unlike its cohort's (same model, step and label)."""
    cohorts: dict[tuple[str, str], list[float]] = {}
    for item in pool:
        for name, ml in item.volumes:
            cohorts.setdefault((item.model, name), []).append(math.log(ml))
    notes = {}
    for key, logs in cohorts.items():
        if len(logs) >= MIN_COHORT:
            median = float(np.median(logs))
            spread = 1.4826 * float(np.median(np.abs(np.asarray(logs) - median)))
            notes[key] = (median, spread)
    result = []
    for item in pool:
        extra = []
        for name, ml in item.volumes:
            median, spread = notes.get((item.model, name), (0.0, 0.0))
            if spread > 0 and abs(math.log(ml) - median) / spread > VOLUME_Z:
                extra.append(f"{name}: volume {ml:.1f} mL, unlike the other {len(cohorts[(item.model, name)]) - 1} "
                             f"cases' (median {math.exp(median):.1f} mL)")
        result.append(replace(item, reasons=(*item.reasons, *extra)) if extra else item)
    return result


def select(pool: Sequence[Candidate], fraction: float, strategy: str, seed: int = 0) -> list[Candidate]:
    """`fraction` of `pool` (at least one case when there is any), in review order."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"--fraction {fraction}: give a share of the cases in (0, 1], e.g. 0.1")
    if strategy not in STRATEGIES:
        raise ValueError(f"--strategy {strategy!r}: one of {', '.join(STRATEGIES)}")
    wanted = min(len(pool), max(1, math.ceil(fraction * len(pool)))) if pool else 0
    ranked = sorted(pool, key=lambda c: (-_known(c.score), c.run.as_posix(), c.case))
    rng = np.random.default_rng(seed)
    if strategy == "uncertainty":
        return ranked[:wanted]
    if strategy == "random":
        return [pool[int(i)] for i in rng.permutation(len(pool))[:wanted]]
    bands = np.array_split(np.arange(len(ranked)), wanted) if wanted else []
    return [ranked[int(rng.choice(band))] for band in bands if len(band)]


def _known(score: float) -> float:
    """A case whose doubt was never measured ranks after every measured one."""
    return -1.0 if math.isnan(score) else score


def _candidate(folder: Path, model: str, entry: Mapping[str, Any]) -> Candidate:
    steps = {step: values["doubt"] for step, values in (entry.get("measurements") or {}).items()
             if isinstance(values, dict) and "doubt" in values}
    scores = [float(doubt.get("score", 0.0)) for doubt in steps.values()]
    reasons = [reason for step, doubt in steps.items() for reason in _reasons(step, doubt, len(steps) > 1)]
    uid = str(entry.get("id") or entry.get("series_uid"))  # a run's case, or a batch's series
    series = entry["series"] if isinstance(entry.get("series"), dict) else {"series": uid}
    volumes = tuple((f"{step}: {name}" if len(steps) > 1 else name, float(label["volume_ml"]))
                    for step, doubt in steps.items() for name, label in (doubt.get("labels") or {}).items()
                    if label.get("voxels") and label.get("volume_ml"))
    return Candidate(folder, uid, model, dict(series),
                     tuple(entry.get("outputs") or ()), max(scores, default=float("nan")),
                     tuple(reasons) or (("no doubt measured (run before aimi measured it)",) if not steps else ()),
                     volumes)


def _reasons(step: str, doubt: Mapping[str, Any], name_step: bool) -> list[str]:
    """What a reviewer should look at first, in words."""
    prefix = f"{step}: " if name_step else ""
    reasons = []
    for name, label in (doubt.get("labels") or {}).items():
        if label.get("fold_dice") is not None and label["fold_dice"] < FOLD_DICE_NOTE:
            reasons.append(f"{prefix}{name}: folds disagree (Dice {label['fold_dice']:.2f})")
        if label.get("entropy") is not None and label["entropy"] >= ENTROPY_NOTE:
            reasons.append(f"{prefix}{name}: uncertain voxels (entropy {label['entropy']:.2f})")
    reasons += [f"{prefix}{name}: none found" for name in doubt.get("empty") or []]
    return reasons


def write_list(selected: Sequence[Candidate], path: Path) -> None:
    """review-list.csv: rank, case, model, score, reasons, run folder, series (role=uid), outputs."""
    rows = [[rank, item.case, item.model, f"{item.score:.6f}", "; ".join(item.reasons), str(item.run),
             " ".join(f"{k}={v}" for k, v in item.series.items()), " ".join(item.outputs)]
            for rank, item in enumerate(selected, start=1)]

    def write(partial: Path) -> None:
        with partial.open("w", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(LIST_COLUMNS)
            writer.writerows(rows)

    write_atomically(path, write)
