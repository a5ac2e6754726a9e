"""The published figures `aimi evaluate --compare-published` prints beside the computed ones.

Read from each model's `models/<name>/figures.toml` (the data file behind its model card): per segment Dice,
HD95, NSD and MSD as mean (sd), each with its source. The papers' own Table 4 could not be read when these were
collected; the values are the outputs of the authors' evaluation notebooks (the code that computed Table 4 from
the QA record, Zenodo 13244892), at the commits each figure's source names.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aimi.models import available_models, load_model

#: figures.toml keys `analyses.<metric>.<segment>`; NSD carries its tolerance in the metric or the segment.
_KEY = re.compile(r"^analyses\.(?P<metric>Dice|HD95 \(mm\)|MSD \(mm\)|NSD(?: \(\d+ mm\))?)\.(?P<segment>.+)$")
_METRIC = {"Dice": "dice", "HD95 (mm)": "hd95", "MSD (mm)": "msd"}
_SUMMARY = {"dice": "dice_mean", "hd95": "hd95_mean_mm", "msd": "msd_mean_mm", "nsd": "nsd_mean"}


@dataclass(frozen=True)
class Figure:
    value: str  # as published: "0.97 (0.11)"
    source: str

    @property
    def mean(self) -> float:
        return float(self.value.split()[0])


def published_figures(task: str) -> dict[tuple[str, str], Figure]:
    """(segment in lower case, metric) -> the published figure, for the model whose name ends in `_<task>`."""
    names = [name for name in available_models() if name.rsplit("_", 1)[-1] == task]
    if not names:
        return {}
    path = load_model(names[0]).path / "figures.toml"
    if not path.is_file():
        return {}
    with path.open("rb") as stream:
        figures = tomllib.load(stream).get("figure", [])
    found = {}
    for figure in figures:
        match = _KEY.match(str(figure.get("key", "")))
        if match:
            metric = _METRIC.get(match["metric"], "nsd")
            found[(_segment(match["segment"]), metric)] = Figure(str(figure["value"]), str(figure["source"]))
    return found


def _segment(name: str) -> str:
    """'Kidney (7 mm)' -> 'kidney', 'Tumor core (1+3)' -> 'tumor core'."""
    return re.sub(r"\s*\([^)]*\)\s*$", "", name).strip().casefold()


def comparison_markdown(summary: Sequence[Mapping[str, object]]) -> str:
    """Computed mean against the published one, per task, segment and metric, with the difference."""
    lines = ["| task | segment | metric | computed | published mean (sd) | difference | source |",
             "|---|---|---|---|---|---|---|"]
    cache: dict[str, dict[tuple[str, str], Figure]] = {}
    for row in summary:
        task, segment = str(row["task"]), str(row["segment"])
        published = cache.setdefault(task, published_figures(task))
        for metric, column in _SUMMARY.items():
            computed = float(str(row[column]))
            figure = published.get((segment.casefold(), metric))
            shown = "n/a" if math.isnan(computed) else f"{computed:.3f}"
            if figure is None:
                lines.append(f"| {task} | {segment} | {metric} | {shown} | not published | | |")
                continue
            difference = "" if math.isnan(computed) else f"{computed - figure.mean:+.3f}"
            lines.append(f"| {task} | {segment} | {metric} | {shown} | {figure.value} | {difference} | "
                         f"{figure.source} |")
    return "\n".join(lines) + "\n"
