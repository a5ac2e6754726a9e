"""Shared fixtures: the real data folder, tiny real models built once per session, synthetic studies."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import SimpleITK as sitk

from aimi.models import load_model
from aimi_testkit.synthetic_brain import write_brain_study
from aimi_testkit.testmodel_cli import build_for_model
from tests.support.chains import BRAIN_FAST, BrainRun, run_chain
from tests.support.data import SHARED_DATA

#: AIMI_TEST_MKLDNN=0 runs torch without its oneDNN kernels: with OMP_NUM_THREADS, a stand-in on one machine for
#: another CPU's float arithmetic (the tests must not depend on it).
MKLDNN_SWITCH = "AIMI_TEST_MKLDNN"


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get(MKLDNN_SWITCH) == "0":
        import torch

        torch.backends.mkldnn.enabled = False


def pytest_report_header(config: pytest.Config) -> str:
    import torch

    return (f"torch {torch.__version__}: {torch.get_num_threads()} threads, "
            f"oneDNN {'on' if torch.backends.mkldnn.enabled else 'off'} ({MKLDNN_SWITCH}=0 turns it off)")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is not beside the checkout")
    return SHARED_DATA


@pytest.fixture(scope="session")
def weights_for(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """`weights_for(model)`: a weights folder with tiny, real nnU-Net v2 models of `model`, built once per session."""
    root = tmp_path_factory.mktemp("weights")
    built: set[str] = set()

    def weights(model: str) -> Path:
        if model not in built:
            build_for_model(load_model(model), root)
            built.add(model)
        return root

    return weights


@pytest.fixture(scope="session")
def kidney_weights(weights_for: Callable[[str], Path]) -> Path:
    return weights_for("bamf_nnunet_ct_kidney")


@pytest.fixture(scope="session")
def colin27_head(shared_data: Path) -> sitk.Image:
    """Colin27 (ch2) with skull and scalp: a different subject from the MNI atlas the brain chain registers to."""
    return sitk.ReadImage(str(shared_data / "mr-brain-templates-nifti" / "ch2.nii.gz"))


@pytest.fixture(scope="session")
def brain_run(colin27_head: sitk.Image, weights_for: Callable[[str], Path],
              tmp_path_factory: pytest.TempPathFactory) -> BrainRun:
    """`aimi run bamf_nnunet_mr_brain` once per session (minutes), writing the review space too: the brain chain
    tests, the QA record and the brain review share it."""
    root = tmp_path_factory.mktemp("brain")
    study = write_brain_study(root / "in", head=colin27_head)
    status, report = run_chain("bamf_nnunet_mr_brain", root / "in", root / "out", weights_for("bamf_nnunet_mr_brain"),
                               *BRAIN_FAST, "--set", "ReviewSpace.write=true")
    return BrainRun(study, status, report, root / "out")
