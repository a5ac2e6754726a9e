"""Where the real DICOM nobody here wrote lives: ../shared/data beside the checkout (never copied into it)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO / ".." / "shared" / "data"
