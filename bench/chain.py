"""The project's own modules, built from the benchmark's workflow exactly as `aimi run` builds them."""

from __future__ import annotations

from pathlib import Path

from aimi.chain import build_chain
from aimi.core.case import Case, DicomSeries
from aimi.core.context import RunOptions
from aimi.core.module import Module
from bench.common import BenchError
from bench.data import Inputs

ROLE = "ct"


def modules(inputs: Inputs, output_dir: Path, labels: tuple[str, ...]) -> dict[str, Module]:
    """The named steps of the workflow, built by `build_chain` exactly as `aimi run` builds them, on the CPU."""
    runner = build_chain(inputs.model.name, weights_dir=inputs.weights, output_dir=output_dir,
                         options=RunOptions(device="cpu"), workflow=str(inputs.workflow))
    return {step.label: module for step, module in runner.modules if step.label in labels}


def discover_one(importer: Module, folder: Path) -> Case:
    """The single selected series case of `folder`, its headers read once (DicomImporter's scan)."""
    cases = importer.discover(folder).cases  # type: ignore[attr-defined]
    if len(cases) != 1:
        raise BenchError(f"{folder}: expected one selected CT series, the importer found {len(cases)}")
    return cases[0]


def series_of(case: Case) -> DicomSeries:
    return case.series[ROLE]
