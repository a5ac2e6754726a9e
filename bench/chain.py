"""The project's own modules, built from the benchmark's workflow exactly as `aimi run` builds them."""

from __future__ import annotations

from pathlib import Path

from aimi.case import Case, DicomSeries
from aimi.context import RunContext, RunOptions
from aimi.module import Module
from aimi.modules import registry
from aimi.workflow import load_workflow
from bench.common import BenchError
from bench.data import Inputs

ROLE = "ct"


def modules(inputs: Inputs, output_dir: Path, labels: tuple[str, ...]) -> dict[str, Module]:
    """The named steps of the workflow, constructed once (as the runner does) with CPU run options."""
    workflow = load_workflow(inputs.workflow, registry())
    context = RunContext(inputs.model.name, inputs.model.path, inputs.model.manifest, inputs.weights, output_dir,
                         RunOptions(device="cpu"))
    return {s.label: s.module(s.settings, context) for s in workflow.steps if s.label in labels}


def discover_one(importer: Module, folder: Path) -> Case:
    """The single selected series case of `folder`, its headers read once (DicomImporter's scan)."""
    cases = importer.discover(folder).cases  # type: ignore[attr-defined]
    if len(cases) != 1:
        raise BenchError(f"{folder}: expected one selected CT series, the importer found {len(cases)}")
    return cases[0]


def series_of(case: Case) -> DicomSeries:
    return case.series[ROLE]
