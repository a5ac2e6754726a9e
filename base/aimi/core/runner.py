"""Runs a checked workflow: modules built once and wired, discovery through the chain's first step (the source),
each case isolated. A failing case is recorded with the module, the series and the reason; the other cases go on
(unless fail-fast). `aimi.chain.build_chain` is the one way a model's chain is assembled.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from aimi.core.case import Case
from aimi.core.context import OPTION_SETTINGS, RunContext
from aimi.core.log import event
from aimi.core.module import Discovery, Module, SourceModule, setting_names
from aimi.core.ports import FILES, MEASUREMENTS, WARNINGS
from aimi.core.workflow import Step, Workflow
from aimi.errors import CaseError, one_line

log = logging.getLogger("aimi.core.runner")


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
    warnings: list[str] = field(default_factory=list)

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
            **({"warnings": self.warnings} if self.warnings else {}),
        }


class Runner:
    def __init__(self, workflow: Workflow, context: RunContext) -> None:
        """`workflow` comes from load_workflow, which checked its wiring; each module is built once, wired."""
        self.workflow = workflow
        self.context = context
        self.modules: list[tuple[Step, Module]] = [(s, s.module(s.settings, context).wire(s.wiring))
                                                    for s in workflow.steps]

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
        self.source(case)  # the case's series under the name the workflow wires (discovery was timed as the scan)
        for step, module in self.modules[1:]:
            started = time.perf_counter()
            try:
                module(case)
            except CaseError as error:
                return self._failed(result, step, str(error), started)
            except Exception as error:  # a module bug or library failure must not stop the other cases
                log.debug(traceback.format_exc())
                return self._failed(result, step, one_line(error), started)
            result.seconds[step.label] = time.perf_counter() - started
        files = [p for name in self.workflow.artifacts_of(FILES) for p in case.artifacts.get(name, [])]
        result.outputs = [str(p.relative_to(self.context.output_dir)) for p in files]
        for name in self.workflow.artifacts_of(MEASUREMENTS):
            result.measurements.update(case.artifacts.get(name, {}))
        result.warnings = [w for name in self.workflow.artifacts_of(WARNINGS) for w in case.artifacts.get(name, [])]
        for warning in result.warnings:
            event(log, "case.warning", logging.WARNING, case=case.id, warning=warning)
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

