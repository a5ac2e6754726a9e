"""run-report.json: every series seen, every case's status, timings and outputs, and what produced them."""

from __future__ import annotations

import json
import platform
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import aimi
from aimi.atomic import write_atomically
from aimi.manifest import Manifest
from aimi.weights import provenance

STACK = ("torch", "nnunetv2", "highdicom", "pydicom", "SimpleITK", "dcm2niix", "numpy")


def versions() -> dict[str, str]:
    found = {"aimi": aimi.__version__, "python": platform.python_version()}
    for package in STACK:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def report_header(model_name: str, manifest: Manifest, weights_dir: Path, workflow: str, options: dict[str, Any],
                  started: str) -> dict[str, Any]:
    """What every report (run, batch) opens with: the model, its weights' provenance, versions, options, times."""
    return {
        "model": {"name": model_name, "version": manifest.version, "workflow": workflow,
                  "weights": {e.id: provenance(weights_dir, manifest, e) for e in manifest.weights}},
        "versions": versions(),
        "options": options,
        "started": started,
        "finished": now(),
    }


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def summary(cases: list[dict[str, Any]], series: list[dict[str, Any]]) -> dict[str, int]:
    statuses = [c["status"] for c in cases]
    return {
        "series_seen": len(series),
        "series_selected": sum(s["status"] == "selected" for s in series),
        "series_skipped": sum(s["status"] == "skipped" for s in series),
        "series_rejected": sum(s["status"] == "rejected" for s in series),
        "cases": len(cases),
        "cases_done": statuses.count("done"),
        "cases_failed": statuses.count("failed"),
    }


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Atomic: a reader never sees half a report."""
    text = json.dumps(report, indent=2, default=str) + "\n"
    write_atomically(path, lambda temporary: temporary.write_text(text))
