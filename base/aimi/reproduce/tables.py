"""The reproduced SEGs against the published ones as `aimi evaluate` writes them, plus the short table printed.

In: SegmentResults of `aimi.evaluate.evaluate_pair` (reference = the SEG IDC published, prediction = this run's),
OUT and a line saying what was compared. Out, under OUT (moved into place together once all are written):
evaluation.csv, summary.csv/.md and table4.csv/.md (the paper's Table 4 layout, AI against AI); the text printed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from aimi.atomic import temporary_for
from aimi.evaluate import SegmentResult
from aimi.evaluate import report as out

TABLE4 = "table4.md"


def write_tables(results: Sequence[SegmentResult], output_dir: Path, source: str) -> None:
    """evaluation.csv, summary.csv/.md and table4.csv/.md of `results` in `output_dir`."""
    staging = temporary_for(output_dir / "tables")
    staging.mkdir(parents=True)
    out.write_results_csv(results, staging / "evaluation.csv")
    summary = out.summarise(results)
    out.write_summary(summary, staging / "summary.csv", staging / "summary.md")
    header = ["# Table 4 shape, AI against AI: this run's SEG (prediction) vs the SEG IDC published (reference)", "",
              f"- Compared: {source}.", f"- Cases: {len({r.case for r in results})}."]
    out.write_table4(summary, staging / "table4.csv", staging / TABLE4, header)
    for path in staging.iterdir():
        os.replace(path, output_dir / path.name)
    staging.rmdir()


def segment_table(results: Sequence[SegmentResult]) -> str:
    """One line per segment: Dice, HD95, NSD at its tolerance, MSD and the voxel counts of both SEGs."""
    lines = ["| segment | status | Dice | HD95 (mm) | NSD (tolerance) | MSD (mm) | voxels published / reproduced |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.segment} | {r.status} | {_number(r.dice, 3)} | {_number(r.hd95_mm, 2)} | "
                     f"{_number(r.nsd, 3)} ({r.tolerance_mm:g} mm) | {_number(r.msd_mm, 2)} | "
                     f"{r.reference_voxels} / {r.prediction_voxels} |")
    return "\n".join(lines) + "\n"


def below(results: Sequence[SegmentResult], min_dice: float | None) -> list[str]:
    """'<case> <segment> Dice 0.812' for every segment under `min_dice` (none without it)."""
    if min_dice is None:
        return []
    return [f"{r.case} {r.segment} Dice {r.dice:.3f}" for r in results if not r.dice >= min_dice]


def _number(value: float, digits: int) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"
