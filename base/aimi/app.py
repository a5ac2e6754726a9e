"""`aimi run`: load a model's workflow, build its modules once, run every case, write the report, pick the exit code."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from aimi.context import RunContext, RunOptions
from aimi.errors import EXIT_FAILED, EXIT_OK, ConfigError
from aimi.log import event
from aimi.models import load_model
from aimi.modules import registry
from aimi.report import now, summary, versions, write_report
from aimi.runner import Runner
from aimi.weights import provenance
from aimi.workflow import load_workflow, parse_overrides

log = logging.getLogger("aimi.run")

REPORT_NAME = "run-report.json"


def run_model(
    model_name: str,
    input_dir: Path,
    output_dir: Path,
    *,
    workflow: str = "default",
    weights_dir: Path,
    options: RunOptions,
    assignments: list[str] | None = None,
) -> int:
    """Run one model over a folder; raises ConfigError (exit 2) before any case starts when the setup is wrong."""
    if not input_dir.is_dir():
        raise ConfigError(f"input folder {input_dir} does not exist or is not a folder")
    started = now()
    model = load_model(model_name)
    chain = load_workflow(model.workflow_path(workflow), registry(), parse_overrides(assignments or []))
    output_dir.mkdir(parents=True, exist_ok=True)
    context = RunContext(model.name, model.path, model.manifest, weights_dir, output_dir, options)
    runner = Runner(chain, context)
    discovery = runner.source.discover(input_dir)
    event(log, "scan.done", series=len(discovery.series), cases=len(discovery.cases),
          ignored_files=len(discovery.ignored_files))
    results = [r.as_dict() for r in runner.run_cases(discovery.cases)]
    results += [_failed_before_start(f) for f in discovery.failures]
    report = {
        "model": {
            "name": model.name,
            "version": model.manifest.version,
            "workflow": str(chain.path.relative_to(model.path)) if chain.path.is_relative_to(model.path)
            else str(chain.path),
            "weights": {e.id: provenance(weights_dir, model.manifest, e) for e in model.manifest.weights},
        },
        "versions": versions(),
        "options": asdict(options),
        "started": started,
        "finished": now(),
        "summary": summary(results, discovery.series),
        "series": discovery.series,
        "ignored_files": discovery.ignored_files,
        "cases": results,
        "modules": runner.module_stats(),
    }
    write_report(output_dir / REPORT_NAME, report)
    event(log, "run.done", **report["summary"])
    return EXIT_FAILED if report["summary"]["cases_failed"] else EXIT_OK


def _failed_before_start(failure: dict[str, Any]) -> dict[str, Any]:
    return {**failure, "status": "failed", "failed_module": "DicomImporter", "seconds": {}, "outputs": []}
