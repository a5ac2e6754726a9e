"""Runs a checked workflow: modules built once and wired, discovery through the chain's first step (the source),
each case isolated. A failing case is recorded with the module, the series and the reason; the other cases go on
(unless fail-fast). `aimi.chain.build_chain` is the one way a model's chain is assembled.

The steps' phases (aimi.core.module.Phase) are grouped into stages - consecutive CPU phases, then a device phase,
and so on - and cases flow through them overlapped (aimi.core.pipeline): while one case is in the network, the next
is converted and preprocessed and the one before is exported and written. Results come back in case order and
each case's outputs are the same as one case at a time (`workers=0`, also what --fail-fast uses).
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from aimi.core.case import SERIES, Case
from aimi.core.context import OPTION_SETTINGS, RunContext
from aimi.core.log import event
from aimi.core.module import Discovery, Module, Phase, SourceModule, setting_names
from aimi.core.pipeline import Job, Pipeline, Stage
from aimi.core.ports import FILES, MEASUREMENTS, WARNINGS
from aimi.core.workflow import Step, Workflow
from aimi.errors import CaseError, ConfigError, one_line

log = logging.getLogger("aimi.core.runner")

#: Bytes a case holds in flight per voxel of its series, at most: the source volume, nnU-Net's preprocessed copy,
#: the class logits and probabilities, the label maps (measured: about 40 on a 512x512x300 CT with a 4-class model).
BYTES_PER_VOXEL = 40
#: The default of --workers where it is not given (containers, test runs with the overlap off: AIMI_WORKERS=0).
WORKERS_ENV = "AIMI_WORKERS"


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


@dataclass
class _Work:
    """A case in flight and its result so far."""

    case: Case
    result: CaseResult


def _built(path: Path, index: int, step: Step, context: RunContext) -> Module:
    """The step's module, built once and wired; what a module finds wrong in the setup (weights, their dataset.json,
    a checkpoint that does not load) names the workflow file and the step, like the loader's own errors."""
    try:
        return step.module(step.settings, context).wire(step.wiring)
    except ConfigError as error:
        raise ConfigError(f"{path}: execute[{index}] ({step.label}): {error}") from None

class Runner:
    def __init__(self, workflow: Workflow, context: RunContext) -> None:
        """`workflow` comes from load_workflow, which checked its wiring; each module is built once, wired."""
        self.workflow = workflow
        self.context = context
        self.modules: list[tuple[Step, Module]] = [(step, _built(workflow.path, index, step, context))
                                                    for index, step in enumerate(workflow.steps)]
        groups = _grouped([(step, phase) for step, module in self.modules[1:] for phase in module.phases()])
        self.stages = [Stage(self._stage_function(group, last=index == len(groups) - 1), group[0][1].on_device)
                       for index, group in enumerate(groups)]

    @property
    def source(self) -> SourceModule:
        module = self.modules[0][1]
        assert isinstance(module, SourceModule)
        return module

    @property
    def workers(self) -> int:
        """CPU-stage threads: the option, else $AIMI_WORKERS, else the cores left beside the network shared by the
        CPU stages; 0 (one case at a time, inline) with --fail-fast, which must stop before the next case starts."""
        options = self.context.options
        if options.fail_fast:
            return 0
        if options.workers is not None:
            return options.workers
        if (given := os.environ.get(WORKERS_ENV, "").strip()).isdigit():
            return int(given)
        cpu_stages = sum(1 for stage in self.stages if not stage.on_device) or 1
        return max(1, (len(os.sched_getaffinity(0)) - 1) // cpu_stages)

    @property
    def budget_bytes(self) -> int:
        """The memory the cases in flight may hold: the option, else half the machine's memory."""
        gigabytes = self.context.options.memory_budget_gb
        if gigabytes is not None:
            return int(gigabytes * 1e9)
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2

    def discover(self, input_dir: Path) -> Discovery:
        """The cases of `input_dir`, every series seen and every file ignored, as the chain's source finds them."""
        discovery = self.source.discover(input_dir)
        event(log, "scan.done", series=len(discovery.series), cases=len(discovery.cases),
              ignored_files=len(discovery.ignored_files))
        return discovery

    @contextmanager
    def pipeline(self) -> Iterator[Pipeline]:
        """Cases submitted with `submit` flow through the stages overlapped; the pipeline yields them in order."""
        with Pipeline(self.stages, workers=self.workers, budget_bytes=self.budget_bytes,
                      on_error=self._stage_error) as pipeline:
            yield pipeline

    def submit(self, pipeline: Pipeline, case: Case, tag: Any = None) -> None:
        event(log, "case.start", case=case.id, roles=",".join(case.roles))
        self.source(case)  # the case's series under the name the workflow wires (discovery was timed as the scan)
        result = CaseResult(case.id, {role: s.series_uid for role, s in case.series.items()})
        voxels = sum(int(s.geometry.size[0]) * s.geometry.size[1] * s.geometry.size[2] for s in case.series.values())
        pipeline.submit(_Work(case, result), tag=tag, cost=voxels * BYTES_PER_VOXEL)

    def run_cases(self, cases: list[Case]) -> list[CaseResult]:
        results: list[CaseResult] = []
        with tqdm(total=len(cases), desc="cases", unit="case", disable=None) as progress, \
                self.pipeline() as pipeline:
            for case in cases:
                self.submit(pipeline, case)
                results += [result_of(job) for job in pipeline.ready()]
                progress.update(len(results) - progress.n)
                if self.context.options.fail_fast and any(r.status == "failed" for r in results):
                    break
            results += [result_of(job) for job in pipeline.drain()]
            progress.update(len(results) - progress.n)
        return results

    def run_case(self, case: Case) -> CaseResult:
        """One case through the whole chain in this thread."""
        with Pipeline(self.stages, workers=0, budget_bytes=0, on_error=self._stage_error) as pipeline:
            self.submit(pipeline, case)
            return result_of(next(pipeline.drain()))

    def _stage_function(self, units: list[tuple[Step, Phase]], last: bool) -> Callable[[Job], None]:
        def run(job: Job) -> None:
            work: _Work = job.work
            for step, phase in units:
                if work.result.status == "failed":
                    break
                self._run_phase(work, step, phase)
            if last:
                self._complete(work)
        return run

    def _run_phase(self, work: _Work, step: Step, phase: Phase) -> None:
        started = time.perf_counter()
        try:
            phase.run(work.case)
        except CaseError as error:
            self._failed(work.result, step.label, str(error))
        except Exception as error:  # a module bug or library failure must not stop the other cases
            log.debug(traceback.format_exc())
            self._failed(work.result, step.label, one_line(error))
        result = work.result
        result.seconds[step.label] = result.seconds.get(step.label, 0.0) + time.perf_counter() - started

    def _complete(self, work: _Work) -> None:
        """The case's files, measurements and warnings into its result; then its artifacts are let go."""
        case, result = work.case, work.result
        if result.status != "failed":
            files = [p for name in self.workflow.artifacts_of(FILES) for p in case.artifacts.get(name, [])]
            result.outputs = [str(p.relative_to(self.context.output_dir)) for p in files]
            for name in self.workflow.artifacts_of(MEASUREMENTS):
                result.measurements.update(case.artifacts.get(name, {}))
            result.warnings = [w for name in self.workflow.artifacts_of(WARNINGS)
                               for w in case.artifacts.get(name, [])]
            for warning in result.warnings:
                event(log, "case.warning", logging.WARNING, case=case.id, warning=warning)
            event(log, "case.done", case=case.id, seconds=round(sum(result.seconds.values()), 2))
        case.artifacts = {SERIES: case.artifacts.get(SERIES, case.series)}
        case.handoff.clear()

    def _stage_error(self, job: Job, message: str) -> None:
        log.debug(message)
        work: _Work = job.work
        if work.result.status != "failed":
            self._failed(work.result, "runner", message.splitlines()[0])
        self._complete(work)

    def _failed(self, result: CaseResult, label: str, message: str) -> None:
        result.status, result.module, result.error = "failed", label, message
        event(log, "case.failed", logging.ERROR, case=result.case_id, module=label, error=message)

    def effective_options(self) -> dict[str, Any]:
        """Each run option as the chain uses it: the setting of the first step that has it (else as given)."""
        given = self.context.options
        values = {}
        for name in OPTION_SETTINGS:
            holders = [step.settings for step in self.workflow.steps if name in setting_names(step.module)]
            values[name] = getattr(holders[0], name) if holders else getattr(given, name)
        return {**values, "fail_fast": given.fail_fast, "workers": self.workers,
                "memory_budget_gb": round(self.budget_bytes / 1e9, 1)}

    def module_stats(self) -> dict[str, Any]:
        return {step.label: stats for step, module in self.modules if (stats := getattr(module, "stats", None))}


def result_of(job: Job) -> CaseResult:
    work: _Work = job.work
    return work.result


def _grouped(units: list[tuple[Step, Phase]]) -> list[list[tuple[Step, Phase]]]:
    """Consecutive phases in the same place (CPU or device) form one stage."""
    groups: list[list[tuple[Step, Phase]]] = []
    for unit in units:
        if groups and groups[-1][-1][1].on_device == unit[1].on_device:
            groups[-1].append(unit)
        else:
            groups.append([unit])
    return groups
