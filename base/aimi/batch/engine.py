"""The batch loop: one Runner (modules and model weights built once) over every series still to do in the ledger.

Per series: fetched into scratch (by the prefetcher, one series ahead), discovered, its cases submitted to the
runner's pipeline (overlapped with the series before and after it), and once its last case is out, its state
committed to the ledger and its scratch copy deleted. `batch-report.json` is rewritten atomically at the end.
"""

from __future__ import annotations

import fcntl
import logging
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from aimi.atomic import prepare_output_folder, remove_stale
from aimi.batch.ledger import Entry, Ledger
from aimi.batch.prefetch import Fetched, Prefetcher
from aimi.batch.sources import Source
from aimi.chain import build_chain
from aimi.core.case import Case
from aimi.core.context import RunOptions
from aimi.core.log import event
from aimi.core.pipeline import Job
from aimi.core.runner import CaseResult, Runner, result_of
from aimi.errors import EXIT_FAILED, EXIT_OK, ConfigError, without_values
from aimi.models import load_model
from aimi.report import now, report_header, write_report
from aimi.weights import check_image_weights

log = logging.getLogger("aimi.batch")

LEDGER_NAME = "ledger.sqlite"
REPORT_NAME = "batch-report.json"
LOCK_NAME = ".aimi-batch.lock"
SCRATCH_NAME = ".scratch"


@dataclass(frozen=True)
class BatchSettings:
    model: str
    output_dir: Path
    weights_dir: Path
    options: RunOptions
    workflow: str = "default"
    assignments: list[str] = field(default_factory=list)
    retries: int = 1
    max_scratch_bytes: int = 20 << 30
    scratch_dir: Path | None = None

    @property
    def scratch(self) -> Path:
        return self.scratch_dir or self.output_dir / SCRATCH_NAME


@dataclass(frozen=True)
class Outcome:
    state: str
    module: str = ""
    reason: str = ""
    outputs: tuple[str, ...] = ()
    measurements: dict[str, Any] = field(default_factory=dict)


def run_batch(uids: list[str], source: Source, settings: BatchSettings) -> int:
    """Segment every series of `uids` not yet done; exit 1 when any series of the manifest ends failed."""
    check_image_weights(load_model(settings.model).manifest, settings.weights_dir)
    prepare_output_folder(settings.output_dir)  # before the lock: a folder that takes no file fails here
    with _exclusive(settings.output_dir), Ledger(settings.output_dir / LEDGER_NAME) as ledger:
        started = now()
        ledger.add(uids)
        remove_stale(settings.output_dir)
        requeued = ledger.recover(settings.output_dir)
        todo = ledger.todo(uids, settings.retries)
        event(log, "batch.start", series=len(uids), todo=len(todo), requeued=len(requeued))
        runner = _build_runner(settings) if todo else None
        stats = _process(ledger, runner, todo, source, settings, len(uids)) if runner else {"series": 0, "seconds": 0.0}
        entries = ledger.entries(uids)
    report = _report(settings, entries, started, stats, runner)
    write_report(settings.output_dir / REPORT_NAME, report)
    _print_summary(report)
    return EXIT_FAILED if report["summary"]["failed"] else EXIT_OK


@contextmanager
def _exclusive(output_dir: Path) -> Iterator[None]:
    """One batch per output folder; the lock dies with its process, even under kill -9."""
    with open(output_dir / LOCK_NAME, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another aimi batch is writing to {output_dir}; wait for it or use another -o") from None
        yield



def _build_runner(settings: BatchSettings) -> Runner:
    return build_chain(settings.model, weights_dir=settings.weights_dir, output_dir=settings.output_dir,
                       options=settings.options, workflow=settings.workflow, assignments=settings.assignments)


@dataclass
class _InFlight:
    """A series whose cases are in the pipeline."""

    item: Fetched
    began: float
    cases: int
    results: list[CaseResult] = field(default_factory=list)


def _process(ledger: Ledger, runner: Runner, todo: list[str], source: Source, settings: BatchSettings,
             total: int) -> dict[str, Any]:
    shutil.rmtree(settings.scratch, ignore_errors=True)
    finished = total - len(todo)
    progress = tqdm(total=total, initial=finished, unit="series", desc="batch", disable=None)
    clock = time.perf_counter()
    in_flight: dict[str, _InFlight] = {}
    count = 0

    def finish(series: _InFlight, outcome: Outcome) -> None:
        nonlocal count
        ledger.finish(series.item.uid, outcome.state, module=outcome.module, reason=outcome.reason,
                      outputs=outcome.outputs, seconds=time.perf_counter() - series.began,
                      measurements=outcome.measurements)
        prefetcher.release(series.item)
        count += 1
        _advance(progress, count, len(todo), time.perf_counter() - clock, series.item.uid, outcome.state)

    def settle(jobs: Iterable[Job]) -> None:
        for job in jobs:
            series = in_flight[job.tag]
            series.results.append(result_of(job))
            if len(series.results) == series.cases:
                finish(in_flight.pop(job.tag), _outcome(series.results))

    with progress, Prefetcher(source, todo, settings.scratch, max_bytes=settings.max_scratch_bytes) as prefetcher, \
            runner.pipeline() as pipeline:
        for item in prefetcher.items(idle=lambda: settle(pipeline.ready())):
            ledger.start(item.uid)
            series = _InFlight(item, time.perf_counter(), 0)
            cases, outcome = _cases(runner, item)
            if outcome is not None:
                finish(series, outcome)
                continue
            in_flight[item.uid], series.cases = series, len(cases)
            for case in cases:
                runner.submit(pipeline, case, tag=item.uid)
            settle(pipeline.ready())
        settle(pipeline.drain())
    shutil.rmtree(settings.scratch, ignore_errors=True)
    return {"series": count, "seconds": time.perf_counter() - clock}


def _cases(runner: Runner, item: Fetched) -> tuple[list[Case], Outcome | None]:
    """The series' cases, or why it has none to run: every failure names the module and the reason."""
    if item.folder is None:
        return [], Outcome("failed", "fetch", item.error)
    try:
        discovery = runner.discover(item.folder)
    except Exception as error:  # an unreadable download fails this series, not the batch
        return [], Outcome("failed", "DicomImporter", without_values(error))
    cases = [case for case in discovery.cases if item.uid in {s.series_uid for s in case.series.values()}]
    if not cases:
        reasons = [f"{s['status']}: {s['reason']}" for s in discovery.series if s.get("reason")]
        reasons += [str(f.get("error", "")) for f in discovery.failures]
        return [], Outcome("skipped", "DicomImporter", "; ".join(reasons) or "no series of the model's inputs found")
    return cases, None


def _outcome(results: list[CaseResult]) -> Outcome:
    failed = [r for r in results if r.status == "failed"]
    if failed:
        return Outcome("failed", failed[0].module, failed[0].error)
    measured = {step: values for r in results for step, values in r.measurements.items()}
    return Outcome("done", outputs=tuple(p for r in results for p in r.outputs), measurements=measured)


def _advance(progress: tqdm, count: int, todo: int, seconds: float, uid: str, state: str) -> None:
    """Progress bar and a log line per series: series/hour of this run and the time left for the rest."""
    per_hour = 3600.0 * count / seconds if seconds > 0 else 0.0
    eta_min = (todo - count) * seconds / count / 60.0
    progress.set_postfix(series_per_h=f"{per_hour:.0f}", refresh=False)
    progress.update(1)
    event(log, "batch.series", series=uid, state=state, progress=f"{count}/{todo}",
          series_per_hour=f"{per_hour:.1f}", eta_min=f"{eta_min:.1f}")


def _report(settings: BatchSettings, entries: list[Entry], started: str, stats: dict[str, Any],
            runner: Runner | None) -> dict[str, Any]:
    model = load_model(settings.model)
    states = [e.state for e in entries]
    seconds = stats["seconds"]
    return {
        **report_header(model.name, model.manifest, settings.weights_dir, settings.workflow,
                        runner.effective_options() if runner else asdict(settings.options), started),
        "summary": {
            "series": len(entries), **{state: states.count(state) for state in ("done", "failed", "skipped")},
            "pending": states.count("pending") + states.count("running"),
            "this_run": {"series": stats["series"], "seconds": round(seconds, 1),
                         "series_per_hour": round(3600.0 * stats["series"] / seconds, 1) if seconds else None},
        },
        "modules": runner.module_stats() if runner else {},
        "series": [e.as_dict() for e in entries],
    }


def _print_summary(report: dict[str, Any]) -> None:
    summary = report["summary"]
    run = summary["this_run"]
    rate = f", {run['series_per_hour']} series/hour" if run["series_per_hour"] else ""
    print(f"aimi batch: {summary['series']} series: {summary['done']} done, {summary['failed']} failed, "
          f"{summary['skipped']} skipped, {summary['pending']} pending (this run: {run['series']} in "
          f"{run['seconds']} s{rate})")
    for entry in report["series"]:
        if entry["state"] in ("failed", "skipped"):
            print(f"  {entry['state']}: {entry['series_uid']} [{entry['failed_module']}] {entry['reason']}")
