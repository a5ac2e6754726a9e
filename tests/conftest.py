"""Shared fixtures: the real data folder, tiny real models built once per session, synthetic studies."""

from __future__ import annotations

from pathlib import Path

import pytest

from aimi.models import load_model
from aimi.testmodel_cli import build_for_model

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO / ".." / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is not beside the checkout")
    return SHARED_DATA


@pytest.fixture(scope="session")
def kidney_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights folder holding a tiny, real kidney nnU-Net v2 model (built once per test session)."""
    weights = tmp_path_factory.mktemp("weights")
    build_for_model(load_model("bamf_nnunet_ct_kidney"), weights)
    return weights
