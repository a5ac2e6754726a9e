"""Evaluation outputs: per-case CSV, the summary (mean ± sd per segment) as CSV and Markdown, the same in the paper's
Table 4 layout (table4.csv/.md), reviewers' Likert answers counted per segment, the reviewed cases counted per task
(reviewed.csv) and one box-plot PNG per task.

Rows are grouped by task, AimiProjectYear and segment, as the authors' notebooks aggregate them (`groupby(["label_name",
"version"])`, version aimiv1 = 2023, aimiv2 = 2024), and by reviewer kind on request.

Means and sample standard deviations (ddof 1; NaN for a single case) skip NaN values, so an HD95 that is
undefined (exactly one mask empty) is left out and `hd95_cases` says over how many cases it was taken. Detection is
pooled over cases: sensitivity = TP / (TP + FN), precision = TP / (TP + FP).
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path

import numpy as np

from aimi.evaluate import SegmentResult

#: qa-results.csv Likert columns: "Was the AI predicted <segment> label accurate?".
LIKERT_COLUMN = re.compile(r"^\s*Was the AI predicted (?P<segment>.+?) label accurate\?\s*$", re.IGNORECASE)
#: AIMI-1 records: one Likert score per case and reviewer, for every segment at once.
LIKERT_SCORE = "LikertScore"
ALL_SEGMENTS = "(all segments)"
#: qa-results.csv Reviewer prefixes: radiologists and non-experts (the paper's Table 2).
REVIEWER_KINDS = ("rad", "ne")
SUMMARY_COLUMNS = (
    "task", "year", "reviewers", "segment", "cases", "dice_mean", "dice_sd", "nsd_mean", "nsd_sd", "tolerance_mm",
    "hd95_mean_mm", "hd95_sd_mm", "hd95_cases", "msd_mean_mm", "msd_sd_mm", "true_positives", "false_positives",
    "false_negatives", "detection_sensitivity", "detection_precision",
)


def write_results_csv(results: Sequence[SegmentResult], path: Path) -> None:
    """One row per case and segment, in the columns of SegmentResult."""
    names = [f.name for f in fields(SegmentResult)]
    write_csv(path, names, [r.as_row() for r in results])


def reviewer_kind(reviewer: str) -> str:
    """'rad2' -> 'rad', 'ne1' -> 'ne'; '' for anything else."""
    name = reviewer.strip().casefold()
    return next((kind for kind in REVIEWER_KINDS if name.startswith(kind)), "")


def summarise(results: Sequence[SegmentResult], by_reviewer: bool = False) -> list[dict[str, object]]:
    """Table 4: one row per task, year, (reviewer kind,) and segment, in first-seen order; `reviewers` is 'all'
    unless split by kind."""
    groups: dict[tuple[str, str, str, str], list[SegmentResult]] = {}
    for result in results:
        kind = reviewer_kind(result.reviewer) if by_reviewer else "all"
        groups.setdefault((result.task, result.year, kind, result.segment), []).append(result)
    return [_summary_row(key, rows) for key, rows in groups.items()]


def write_summary(summary: Sequence[Mapping[str, object]], csv_path: Path, markdown_path: Path) -> str:
    """Write Table 4 as CSV and Markdown; returns the Markdown."""
    write_csv(csv_path, list(SUMMARY_COLUMNS), summary)
    markdown = summary_markdown(summary)
    markdown_path.write_text(markdown)
    return markdown


def summary_markdown(summary: Sequence[Mapping[str, object]]) -> str:
    """Table 4 for people: mean ± sd per segment, NSD with its tolerance, pooled detection counts."""
    lines = ["| task | year | reviewers | segment | n | Dice | NSD (tolerance) | HD95 (mm) | MSD (mm) | "
             "detection TP/FP/FN |", "|---|---|---|---|---|---|---|---|---|---|"]
    for row in summary:
        detection = (f"{row['true_positives']}/{row['false_positives']}/{row['false_negatives']}"
                     if row["true_positives"] != "" else "")
        lines.append(
            f"| {row['task']} | {row['year'] or '-'} | {row['reviewers']} | {row['segment']} | {row['cases']} | "
            f"{_pm(row['dice_mean'], row['dice_sd'])} | "
            f"{_pm(row['nsd_mean'], row['nsd_sd'])} ({row['tolerance_mm']} mm) | "
            f"{_pm(row['hd95_mean_mm'], row['hd95_sd_mm'], 2)} | {_pm(row['msd_mean_mm'], row['msd_sd_mm'], 2)} | "
            f"{detection} |"
        )
    return "\n".join(lines) + "\n"


TABLE4_COLUMNS = ("task", "year", "reviewers", "segment", "n", "Dice", "HD95 (mm)", "NSD", "NSD tolerance (mm)",
                  "MSD (mm)")


def write_table4(summary: Sequence[Mapping[str, object]], csv_path: Path, markdown_path: Path,
                 header: Sequence[str] = ()) -> None:
    """The paper's Table 4 layout: per task, year and segment, mean (sd) of Dice, HD95, NSD at its tolerance and MSD,
    two decimals as the authors print them. `header`: lines put above the Markdown table (what was evaluated)."""
    rows = [{
        "task": row["task"], "year": row["year"] or "-", "reviewers": row["reviewers"], "segment": row["segment"],
        "n": row["cases"],
        "Dice": _mean_sd_text(row["dice_mean"], row["dice_sd"]),
        "HD95 (mm)": _mean_sd_text(row["hd95_mean_mm"], row["hd95_sd_mm"]),
        "NSD": _mean_sd_text(row["nsd_mean"], row["nsd_sd"]), "NSD tolerance (mm)": row["tolerance_mm"],
        "MSD (mm)": _mean_sd_text(row["msd_mean_mm"], row["msd_sd_mm"]),
    } for row in summary]
    write_csv(csv_path, list(TABLE4_COLUMNS), rows)
    lines = [*header, *([""] if header else []), "| " + " | ".join(TABLE4_COLUMNS) + " |",
             "|" + "---|" * len(TABLE4_COLUMNS)]
    lines += ["| " + " | ".join(str(row[c]) for c in TABLE4_COLUMNS) + " |" for row in rows]
    markdown_path.write_text("\n".join(lines) + "\n")


def _mean_sd_text(mean: object, sd: object) -> str:
    """'0.97 (0.11)'; 'n/a' without a finite mean, the mean alone for a single case."""
    mean_f, sd_f = float(str(mean)), float(str(sd))
    if not np.isfinite(mean_f):
        return "n/a"
    return f"{mean_f:.2f} ({sd_f:.2f})" if np.isfinite(sd_f) else f"{mean_f:.2f}"


LIKERT_COLUMNS = ("segment", "year", "reviewers", "answer", "count")


def likert_counts(rows: Iterable[Mapping[str, str]]) -> list[dict[str, object]]:
    """Per segment column, AimiProjectYear, reviewer kind and answer, how many reviewers gave it (blank answers left
    out); AIMI-1's single LikertScore counts for ALL_SEGMENTS."""
    counts: Counter[tuple[str, str, str, str]] = Counter()
    for row in rows:
        year, kind = row.get("AimiProjectYear", "").strip(), reviewer_kind(row.get("Reviewer", "")) or "other"
        for column, answer in row.items():
            match = LIKERT_COLUMN.match(column or "")
            segment = match["segment"].strip() if match else ALL_SEGMENTS if column == LIKERT_SCORE else None
            if segment and answer and answer.strip():
                counts[(segment, year, kind, answer.strip())] += 1
    return [dict(zip(LIKERT_COLUMNS, (*key, n), strict=True)) for key, n in sorted(counts.items())]


def write_likert(counts: Sequence[Mapping[str, object]], path: Path) -> None:
    write_csv(path, list(LIKERT_COLUMNS), counts)


REVIEWED_COLUMNS = ("task", "year", "reviewers", "cases", "series", "corrected", "no_correction")


def reviewed_counts(results: Sequence[SegmentResult]) -> list[dict[str, object]]:
    """Table 1's "evaluated": per task, year and reviewer kind (and 'all' of each), the reviewed cases (a series
    and its reviewer), distinct series, and how many came with a correction or none (the AI SEG as reference)."""
    cases = {(r.task, r.year, reviewer_kind(r.reviewer) or "other", r.case): r.reference for r in results}
    rows = []
    for task in dict.fromkeys(key[0] for key in cases):
        groups = [(year, kind) for year in ("all", *sorted({k[1] for k in cases if k[0] == task}))
                  for kind in ("all", *REVIEWER_KINDS, "other")]
        for year, kind in groups:
            chosen = {key: reference for key, reference in cases.items() if key[0] == task
                      and year in ("all", key[1]) and kind in ("all", key[2])}
            if chosen:
                references = list(chosen.values())
                rows.append({"task": task, "year": year or "-", "reviewers": kind, "cases": len(chosen),
                             "series": len({_series(key[3]) for key in chosen}),
                             "corrected": references.count("corrected"), "no_correction": references.count("ai")})
    return rows


def _series(case: str) -> str:
    """A QA case is named '<SeriesInstanceUID> <reviewer>'."""
    return case.split(" ", 1)[0]


def write_boxplots(results: Sequence[SegmentResult], out_dir: Path) -> list[Path]:
    """One PNG per task: Dice, NSD and HD95 box plots with one box per segment."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display on servers and in containers
    import matplotlib.pyplot as plt

    paths = []
    for task in dict.fromkeys(r.task for r in results):
        rows = [r for r in results if r.task == task]
        segments = list(dict.fromkeys(r.segment for r in rows))
        figure, axes = plt.subplots(1, 3, figsize=(4 + 1.5 * len(segments) * 3, 4), squeeze=False)
        for axis, (name, title) in zip(axes[0], (("dice", "Dice"), ("nsd", "NSD"), ("hd95_mm", "HD95 (mm)")),
                                       strict=True):
            values = [_finite([getattr(r, name) for r in rows if r.segment == s]) for s in segments]
            axis.boxplot(values, tick_labels=segments)
            axis.set_title(f"{task}: {title}")
        figure.tight_layout()
        path = out_dir / f"boxplot-{_safe(task)}.png"
        figure.savefig(path, dpi=100)
        plt.close(figure)
        paths.append(path)
    return paths


def _summary_row(key: tuple[str, str, str, str], rows: Sequence[SegmentResult]) -> dict[str, object]:
    task, year, reviewers, segment = key
    dice_mean, dice_sd = _mean_sd([r.dice for r in rows])
    nsd_mean, nsd_sd = _mean_sd([r.nsd for r in rows])
    hd_mean, hd_sd = _mean_sd([r.hd95_mm for r in rows])
    msd_mean, msd_sd = _mean_sd([r.msd_mm for r in rows])
    tolerances = sorted({r.tolerance_mm for r in rows})
    lesion = [r for r in rows if r.true_positives is not None]
    tp, fp, fn = (sum(getattr(r, name) for r in lesion) for name in
                  ("true_positives", "false_positives", "false_negatives"))
    return {
        "task": task, "year": year, "reviewers": reviewers, "segment": segment, "cases": len(rows),
        "dice_mean": dice_mean, "dice_sd": dice_sd,
        "nsd_mean": nsd_mean, "nsd_sd": nsd_sd, "tolerance_mm": "/".join(f"{t:g}" for t in tolerances),
        "hd95_mean_mm": hd_mean, "hd95_sd_mm": hd_sd, "hd95_cases": len(_finite([r.hd95_mm for r in rows])),
        "msd_mean_mm": msd_mean, "msd_sd_mm": msd_sd,
        "true_positives": tp if lesion else "", "false_positives": fp if lesion else "",
        "false_negatives": fn if lesion else "",
        "detection_sensitivity": _ratio(tp, tp + fn) if lesion else "",
        "detection_precision": _ratio(tp, tp + fp) if lesion else "",
    }


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    finite = _finite(values)
    if not finite:
        return float("nan"), float("nan")
    sd = float(np.std(finite, ddof=1)) if len(finite) > 1 else float("nan")
    return float(np.mean(finite)), sd


def _finite(values: Iterable[float]) -> list[float]:
    return [float(v) for v in values if np.isfinite(v)]


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else float("nan")


def _pm(mean: object, sd: object, digits: int = 3) -> str:
    mean_f, sd_f = float(mean), float(sd)  # type: ignore[arg-type]
    if not np.isfinite(mean_f):
        return "n/a"
    return f"{mean_f:.{digits}f} ± {sd_f:.{digits}f}" if np.isfinite(sd_f) else f"{mean_f:.{digits}f}"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "unknown"


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, object]]) -> None:
    with path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
