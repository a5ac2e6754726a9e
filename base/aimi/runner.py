"""Runs a validated workflow: modules built once, the chain checked before the first case, each case isolated.

`build_chain` is the one way a model's chain is assembled (`aimi run`, `aimi batch`, `mhub.run` through `aimi run`,
the bench); the runner owns discovery through the chain's first step, the source. A failing case is recorded with
the module, the series and the reason; the other cases go on (unless fail-fast).
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from aimi.case import Case
from aimi.context import OPTION_SETTINGS, RunContext, RunOptions
from aimi.errors import CaseError, ConfigError
from aimi.log import event
from aimi.models import load_model
from aimi.module import Discovery, Module, SourceModule, setting_names
from aimi.modules import registry
from aimi.workflow import Step, Workflow, load_workflow, parse_overrides

log = logging.getLogger("aimi.runner")
DEFAULT_OPTIONS = RunOptions()


@dataclass
class CaseResult:
    case_id: str
    roles: dict[str, str]
    status: str = "done"
    module: str = ""
    error: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    measurements: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.case_id,
            "series": self.roles,
            "status": self.status,
            "failed_module": self.module or None,
            "error": self.error or None,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "outputs": self.outputs,
            **({"measurements": self.measurements} if self.measurements else {}),
        }


def check_chain(workflow: Workflow) -> None:
    """Every kind a step reads must be written by an earlier step; the first step must be a source."""
    first = workflow.steps[0]
    if not issubclass(first.module, SourceModule):
        raise ConfigError(f"{workflow.path}: execute[0] is {first.label}; a chain starts with a source (DicomImporter)")
    available: set[str] = set()
    for index, step in enumerate(workflow.steps):
        for kind in step.module.reads:
            if kind not in available:
                writers = sorted({s.module.__name__ for s in workflow.steps if kind in s.module.writes})
                hint = f"add one of {', '.join(writers)} before it" if writers else "no module in this chain writes it"
                raise ConfigError(
                    f"{workflow.path}: execute[{index}] {step.label} reads {kind!r}, "
                    f"which no earlier step writes; {hint}"
                )
        available.update(step.module.writes)


def build_chain(model_name: str, *, weights_dir: Path, output_dir: Path, options: RunOptions = DEFAULT_OPTIONS,
                workflow: str = "default", assignments: Sequence[str] = ()) -> Runner:
    """A model's workflow (a name in its config/ or a .yml path) with `--set` overrides, checked and its modules built
    once; raises ConfigError before anything runs when the setup is wrong."""
    model = load_model(model_name)
    chain = load_workflow(model.workflow_path(workflow), registry(), parse_overrides(list(assignments)),
                          options.settings())
    return Runner(chain, RunContext(model.name, model.path, model.manifest, weights_dir, output_dir, options))


class Runner:
    def __init__(self, workflow: Workflow, context: RunContext) -> None:
        check_chain(workflow)
        self.workflow = workflow
        self.context = context
        self.modules: list[tuple[Step, Module]] = [(s, s.module(s.settings, context)) for s in workflow.steps]

    @property
    def source(self) -> SourceModule:
        module = self.modules[0][1]
        assert isinstance(module, SourceModule)
        return module

    def discover(self, input_dir: Path) -> Discovery:
        """The cases of `input_dir`, every series seen and every file ignored, as the chain's source finds them."""
        discovery = self.source.discover(input_dir)
        event(log, "scan.done", series=len(discovery.series), cases=len(discovery.cases),
              ignored_files=len(discovery.ignored_files))
        return discovery

    def run_cases(self, cases: list[Case]) -> list[CaseResult]:
        results = []
        for case in tqdm(cases, desc="cases", unit="case", disable=None):
            result = self.run_case(case)
            results.append(result)
            if result.status == "failed" and self.context.options.fail_fast:
                break
        return results

    def run_case(self, case: Case) -> CaseResult:
        result = CaseResult(case.id, {role: s.series_uid for role, s in case.series.items()})
        event(log, "case.start", case=case.id, roles=",".join(case.roles))
        for step, module in self.modules[1:]:
            started = time.perf_counter()
            try:
                module(case)
            except CaseError as error:
                return self._failed(result, step, str(error), started)
            except Exception as error:  # a module bug or library failure must not stop the other cases
                log.debug(traceback.format_exc())
                return self._failed(result, step, f"{type(error).__name__}: {error}", started)
            result.seconds[step.label] = time.perf_counter() - started
        result.outputs = [str(p.relative_to(self.context.output_dir)) for p in case.outputs]
        result.measurements = case.measurements
        event(log, "case.done", case=case.id, seconds=round(sum(result.seconds.values()), 2))
        return result

    def _failed(self, result: CaseResult, step: Step, message: str, started: float) -> CaseResult:
        result.seconds[step.label] = time.perf_counter() - started
        result.status, result.module, result.error = "failed", step.label, message
        event(log, "case.failed", logging.ERROR, case=result.case_id, module=step.label, error=message)
        return result

    def effective_options(self) -> dict[str, Any]:
        """Each run option as the chain uses it: the setting of the first step that has it (else as given)."""
        given = self.context.options
        values = {}
        for name in OPTION_SETTINGS:
            holders = [step.settings for step in self.workflow.steps if name in setting_names(step.module)]
            values[name] = getattr(holders[0], name) if holders else getattr(given, name)
        return {**values, "fail_fast": given.fail_fast}

    def module_stats(self) -> dict[str, Any]:
        return {step.label: stats for step, module in self.modules if (stats := getattr(module, "stats", None))}

