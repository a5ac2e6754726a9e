"""Structured logs: one line per event, `key=value` fields, never patient names or IDs (UIDs and counts only).

The DICOM libraries warn with the header values they find odd (highdicom prints a PatientName without `^`, pydicom
an over-long or invalid value): their warnings and log records are reduced to where they came from and their
category, the text withheld, so that no name or ID reaches stderr, the log or the report.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Any, TextIO

_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
#: Libraries whose warnings may quote header values.
QUOTING_LIBRARIES = ("pydicom", "highdicom")
_PYTHON_SHOW_WARNING = warnings.showwarning


def configure(verbose: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT))
    root = logging.getLogger("aimi")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
    for library in QUOTING_LIBRARIES:
        logging.getLogger(library).handlers[:] = [logging.NullHandler()]
        logging.getLogger(library).propagate = False
    warnings.showwarning = _show_warning


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: TextIO | None = None, line: str | None = None) -> None:
    """Warnings of the DICOM libraries as one debug line without their text; any other as Python shows it."""
    source = next((name for name in QUOTING_LIBRARIES if f"{os.sep}{name}{os.sep}" in filename), None)
    if source is None:
        _PYTHON_SHOW_WARNING(message, category, filename, lineno, file, line)
        return
    event(logging.getLogger("aimi.warnings"), "library.warning", logging.DEBUG, source=source,
          category=category.__name__, text="withheld (it may quote header values)")


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log `name` with sorted key=value fields (values quoted when they hold spaces)."""
    parts = [name]
    for key, value in fields.items():
        text = str(value)
        parts.append(f"{key}={text!r}" if " " in text or not text else f"{key}={text}")
    logger.log(level, " ".join(parts))
