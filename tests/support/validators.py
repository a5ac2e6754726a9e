"""Offline DICOM validators for tests: every SEG written anywhere must pass these without errors."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

DCIODVFY = "/usr/bin/dciodvfy"


def dciodvfy_errors(path: Path) -> list[str]:
    """The "Error" lines dciodvfy (dicom3tools) reports for `path`: IOD rules of PS3.3 it finds broken."""
    executable = shutil.which(DCIODVFY)
    if executable is None:
        raise RuntimeError(f"{DCIODVFY} (dicom3tools) is missing: run `make setup` to install it")
    result = subprocess.run([executable, str(path)], capture_output=True, text=True, check=False)
    errors = [line for line in (result.stderr + result.stdout).splitlines() if line.startswith("Error")]
    if result.returncode != 0 and not errors:
        detail = result.stderr.strip()
        raise RuntimeError(f"dciodvfy exited {result.returncode} on {path} without an Error line: {detail}")
    return errors
