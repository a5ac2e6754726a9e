"""The tiny test models are real nnU-Net v2 model folders that nnunetv2's predictor loads and runs accurately."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch

from aimi.testmodel import TestModelSpec, build_test_model, synthetic_case

if TYPE_CHECKING:
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

KIDNEY = TestModelSpec(
    dataset_name="Dataset779_Kidney",
    channels={"0": "CT"},
    labels={"background": 0, "kidney": 1, "tumor": 2, "cyst": 3},
    intensities={0: (-100.0,), 1: (150.0,), 2: (60.0,), 3: (0.0,)},
)
BRATS = TestModelSpec(
    dataset_name="Dataset002_BRATS19",
    channels={"0": "T1", "1": "T1c", "2": "T2", "3": "FLAIR"},
    labels={"background": 0, "necrosis": 1, "edema": 2, "enhancing": 4},
    intensities={0: (50.0, 50.0, 60.0, 40.0), 1: (300.0, 350.0, 800.0, 500.0),
                 2: (400.0, 420.0, 900.0, 1000.0), 4: (420.0, 1000.0, 600.0, 700.0)},
    spacing=(1.0, 1.0, 1.0),
)


def _predictor(folder: Path) -> nnUNetPredictor:
    """The predictor exactly as the runner builds it (imported here: the import alone costs seconds)."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    predictor = nnUNetPredictor(tile_step_size=0.5, use_mirroring=False, perform_everything_on_device=False,
                                device=torch.device("cpu"), verbose=False, allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(folder), use_folds=None)
    return predictor


def _dice_per_label(prediction: np.ndarray, truth: np.ndarray, values: list[int]) -> dict[int, float]:
    return {v: 2 * np.sum((prediction == v) & (truth == v)) / (np.sum(prediction == v) + np.sum(truth == v))
            for v in values}


@pytest.fixture(scope="module")
def kidney_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_test_model(KIDNEY, tmp_path_factory.mktemp("kidney"))


@pytest.fixture(scope="module")
def brats_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_test_model(BRATS, tmp_path_factory.mktemp("brats"))


def test_ct_model_segments_every_label_of_a_fresh_case_with_dice_above_0_9(kidney_model: Path) -> None:
    image, truth = synthetic_case(KIDNEY, (48, 96, 96), np.random.default_rng(1234))
    prediction = _predictor(kidney_model).predict_single_npy_array(image, {"spacing": KIDNEY.spacing})
    assert prediction.shape == truth.shape
    dice = _dice_per_label(prediction, truth, [1, 2, 3])
    assert min(dice.values()) >= 0.9, dice


def test_four_channel_mr_model_returns_label_indices_with_dice_above_0_9(brats_model: Path) -> None:
    """nnU-Net predicts the index into the sorted label values: BraTS enhancing tumour (label 4) comes out as 3."""
    image, truth = synthetic_case(BRATS, (64, 64, 64), np.random.default_rng(1234))
    prediction = _predictor(brats_model).predict_single_npy_array(image, {"spacing": BRATS.spacing})
    assert set(np.unique(prediction)) == {0, 1, 2, 3}
    dice = _dice_per_label(prediction, np.searchsorted(BRATS.label_values, truth), [1, 2, 3])
    assert min(dice.values()) >= 0.9, dice


def test_folder_holds_the_dataset_json_plans_and_checkpoint_keys_the_predictor_reads(kidney_model: Path) -> None:
    dataset = json.loads((kidney_model / "dataset.json").read_text())
    plans = json.loads((kidney_model / "plans.json").read_text())
    checkpoint = torch.load(kidney_model / "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert dataset["labels"] == KIDNEY.labels
    assert dataset["channel_names"] == KIDNEY.channels
    assert dataset["name"] == plans["dataset_name"] == "Dataset779_Kidney"
    configuration = plans["configurations"]["3d_fullres"]
    assert configuration["normalization_schemes"] == ["CTNormalization"]
    assert configuration["spacing"] == list(KIDNEY.spacing)
    assert set(plans["foreground_intensity_properties_per_channel"]["0"]) >= {"mean", "std", "percentile_00_5",
                                                                             "percentile_99_5"}
    assert checkpoint["trainer_name"] == "nnUNetTrainer"
    assert checkpoint["init_args"]["configuration"] == "3d_fullres"
    assert checkpoint["init_args"]["plans"] == plans
    assert checkpoint["init_args"]["dataset_json"] == dataset
    assert checkpoint["inference_allowed_mirroring_axes"] == (0, 1, 2)
    assert all(isinstance(t, torch.Tensor) for t in checkpoint["network_weights"].values())


def test_mr_channels_get_z_score_normalisation(brats_model: Path) -> None:
    plans = json.loads((brats_model / "plans.json").read_text())
    assert plans["configurations"]["3d_fullres"]["normalization_schemes"] == ["ZScoreNormalization"] * 4


def test_same_seed_gives_identical_weights_and_every_fold_is_written(tmp_path: Path) -> None:
    spec = TestModelSpec("Dataset788_Prostate", {"0": "T2"}, {"background": 0, "prostate": 1},
                         {0: (80.0,), 1: (400.0,)}, folds=(0, 1))
    first = build_test_model(spec, tmp_path / "a", steps=2, seed=7)
    second = build_test_model(spec, tmp_path / "b", steps=2, seed=7)
    for fold in (0, 1):
        a = torch.load(first / f"fold_{fold}" / "checkpoint_final.pth", weights_only=False)["network_weights"]
        b = torch.load(second / f"fold_{fold}" / "checkpoint_final.pth", weights_only=False)["network_weights"]
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_synthetic_case_holds_every_label_at_its_intensity() -> None:
    image, labels = synthetic_case(KIDNEY, (48, 96, 96), np.random.default_rng(0))
    assert image.shape == (1, 48, 96, 96) and image.dtype == np.float32 and labels.dtype == np.uint8
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    for value, (mean,) in KIDNEY.intensities.items():
        assert abs(image[0][labels == value].mean() - mean) < 5


@pytest.mark.parametrize(("change", "message"), [
    ({"labels": {"background": 1, "organ": 2}}, "background"),
    ({"intensities": {0: (0.0,)}}, "one entry per label value"),
    ({"intensities": {0: (0.0, 1.0), 1: (1.0, 2.0)}}, "one value per channel"),
    ({"patch_size": (32, 30, 32)}, "divisible by 8"),
])
def test_spec_rejects_inconsistent_fields(change: dict, message: str) -> None:
    fields = {"dataset_name": "Dataset001_X", "channels": {"0": "CT"}, "labels": {"background": 0, "organ": 1},
              "intensities": {0: (0.0,), 1: (100.0,)}} | change
    with pytest.raises(ValueError, match=message):
        TestModelSpec(**fields)
