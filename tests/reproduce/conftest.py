"""The bundled IDC index, opened once for the reproduce tests (a few seconds)."""

from __future__ import annotations

from typing import Any

import pytest

from aimi.reproduce.cli import bundled_index


@pytest.fixture(scope="session")
def idc() -> Any:
    return bundled_index()
