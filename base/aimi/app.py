"""`aimi run`: load a model's workflow, build its modules once, run every case, write the report, pick the exit code."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from aimi.atomic import prepare_output_folder
from aimi.chain import build_chain
from aimi.core.context import RunOptions
from aimi.core.log import event
from aimi.errors import EXIT_FAILED, EXIT_OK, ConfigError, os_reason
from aimi.models import load_model
from aimi.report import now, report_header, summary, write_report
from aimi.weights import check_image_weights

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
    check_image_weights(load_model(model_name).manifest, weights_dir)
    runner = build_chain(model_name, weights_dir=weights_dir, output_dir=output_dir, options=options,
                         workflow=workflow, assignments=assignments or [])
    stale = prepare_output_folder(output_dir)
    if stale:
        event(log, "output.stale_removed", files=len(stale))
    discovery = runner.discover(input_dir)
    results = [r.as_dict() for r in runner.run_cases(discovery.cases)]
    results += [_failed_before_start(f) for f in discovery.failures]
    chain, context = runner.workflow, runner.context
    workflow_label = (str(chain.path.relative_to(context.model_dir)) if chain.path.is_relative_to(context.model_dir)
                      else str(chain.path))
    report = {
        **report_header(context.model_name, context.manifest, weights_dir, workflow_label, runner.effective_options(),
                        started),
        "input": str(input_dir.resolve()),  # where the series were read: aimi review package finds them there
        "summary": summary(results, discovery.series),
        "series": discovery.series,
        "ignored_files": discovery.ignored_files,
        "cases": results,
        "modules": runner.module_stats(),
    }
    event(log, "run.done", **report["summary"])
    try:
        write_report(output_dir / REPORT_NAME, report)
    except OSError as error:
        print(f"aimi: error: cannot write {output_dir / REPORT_NAME}: {os_reason(error)}; "
              f"summary: {json.dumps(report['summary'])}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_FAILED if report["summary"]["cases_failed"] else EXIT_OK


def _failed_before_start(failure: dict[str, Any]) -> dict[str, Any]:
    return {**failure, "status": "failed", "failed_module": "DicomImporter", "seconds": {}, "outputs": []}
