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

from aimi.evaluate.model_data import model_file

#: figures.toml keys `analyses.<metric>[, <year> review].<segment>`; NSD carries its tolerance in the metric or the
#: segment.
_KEY = re.compile(r"^analyses\.(?P<metric>Dice|HD95 \(mm\)|MSD \(mm\)|NSD(?: \(\d+ mm\))?)(?:, \d{4} review)?"
                  r"\.(?P<segment>.+)$")
#: The review year a figure was computed over, from its source: the notebooks' version aimiv1 (AimiProjectYear
#: 2023) or aimiv2 (2024).
_VERSION_YEAR = {"aimiv1": "2023", "aimiv2": "2024"}
_METRIC = {"Dice": "dice", "HD95 (mm)": "hd95", "MSD (mm)": "msd"}
_SUMMARY = {"dice": "dice_mean", "hd95": "hd95_mean_mm", "msd": "msd_mean_mm", "nsd": "nsd_mean"}


@dataclass(frozen=True)
class Figure:
    value: str  # as published: "0.97 (0.11)"
    source: str

    @property
    def mean(self) -> float:
        return float(self.value.split()[0])

    @property
    def year(self) -> str:
        """The AimiProjectYear of the rows the figure was computed over; '' where the source does not say."""
        version = re.search(r"\baimiv[12]\b", self.source)
        return _VERSION_YEAR[version.group()] if version else ""


def published_figures(task: str) -> dict[tuple[str, str, str], Figure]:
    """(segment in lower case, metric, year or '') -> the published figure, for the model whose name ends in
    `_<task>`."""
    path = model_file(task, "figures.toml")
    if path is None:
        return {}
    with path.open("rb") as stream:
        figures = tomllib.load(stream).get("figure", [])
    found = {}
    for figure in figures:
        match = _KEY.match(str(figure.get("key", "")))
        if match:
            metric = _METRIC.get(match["metric"], "nsd")
            published = Figure(str(figure["value"]), str(figure["source"]))
            found[(_segment(match["segment"]), metric, published.year)] = published
    return found


def _segment(name: str) -> str:
    """'Kidney (7 mm)' -> 'kidney', 'Tumor core (1+3)' -> 'tumor core'."""
    return re.sub(r"\s*\([^)]*\)\s*$", "", name).strip().casefold()


def comparison_markdown(summary: Sequence[Mapping[str, object]]) -> str:
    """Computed mean against the published one of the same review year (or one that names no year), per task, year,
    segment and metric, with the difference."""
    lines = ["| task | year | segment | metric | computed | published mean (sd) | difference | source |",
             "|---|---|---|---|---|---|---|---|"]
    cache: dict[str, dict[tuple[str, str, str], Figure]] = {}
    for row in summary:
        task, segment, year = str(row["task"]), str(row["segment"]), str(row["year"])
        published = cache.setdefault(task, published_figures(task))
        for metric, column in _SUMMARY.items():
            computed = float(str(row[column]))
            name = segment.casefold()
            figure = published.get((name, metric, year)) or published.get((name, metric, ""))
            shown = "n/a" if math.isnan(computed) else f"{computed:.3f}"
            start = f"| {task} | {year or '-'} | {segment} | {metric} | {shown} |"
            if figure is None:
                lines.append(f"{start} not published | | |")
                continue
            difference = "" if math.isnan(computed) else f"{computed - figure.mean:+.3f}"
            lines.append(f"{start} {figure.value} | {difference} | {figure.source} |")
    return "\n".join(lines) + "\n"
