"""The tiny test models are real nnU-Net v2 model folders that nnunetv2's predictor loads, fitted until they meet a
stated quality on fresh cases (whatever the CPU's arithmetic), or failing loudly."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch

from aimi.cli import main
from aimi.models import load_model
from aimi.weights import model_folder
from aimi_testkit.testmodel import (
    QualityTarget,
    TestModelQualityError,
    TestModelSpec,
    build_test_model,
    dice_per_label,
    read_quality,
    synthetic_case,
    validation_cases,
)
from aimi_testkit.testmodel_cli import spec_for

if TYPE_CHECKING:
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

KIDNEY = spec_for(load_model("bamf_nnunet_ct_kidney"), "kidney")  # the session's kidney test model
PROSTATE_ENTRY = load_model("bamf_nnunet_mr_prostate").manifest.entry("prostate")
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


def _worst_dice_from_disk(spec: TestModelSpec, folder: Path) -> dict[str, float]:
    """Each label's worst Dice over the builder's own validation cases, predicted by nnunetv2 from the saved folder."""
    record = read_quality(folder)
    predictor = _predictor(folder)
    worst: dict[str, float] = {}
    for image, truth in validation_cases(spec, record["folds"]["0"]["seed"], record["target"]["validation_cases"]):
        prediction = predictor.predict_single_npy_array(image, {"spacing": spec.spacing})
        assert prediction.shape == truth.shape
        indices = list(range(1, len(spec.label_values)))
        scores = dice_per_label(prediction, np.searchsorted(spec.label_values, truth), indices)
        for index in indices:
            name = next(n for n, v in spec.labels.items() if v == spec.label_values[index])
            worst[name] = min(worst.get(name, 1.0), scores[index])
    return worst


@pytest.fixture(scope="module")
def kidney_model(weights_for: Callable[[str], Path]) -> Path:
    """The session's kidney test model, built from KIDNEY."""
    model = load_model("bamf_nnunet_ct_kidney")
    return model_folder(weights_for(model.name), model.manifest, model.manifest.entry("kidney"))


@pytest.fixture(scope="module")
def brats_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_test_model(BRATS, tmp_path_factory.mktemp("brats"))


@pytest.mark.parametrize(("spec", "model"), [(KIDNEY, "kidney_model"), (BRATS, "brats_model")], ids=["ct", "mr4"])
def test_saved_model_meets_its_recorded_quality_when_nnunet_loads_it(spec: TestModelSpec, model: str,
                                                                       request: pytest.FixtureRequest) -> None:
    """The guarantee holds by construction: the saved weights, loaded as nnunetv2 loads real ones, reach on the
    builder's validation cases what the builder recorded, which is at least its target for every label."""
    folder = request.getfixturevalue(model)
    record = read_quality(folder)
    assert record["target"] == asdict(QualityTarget())
    reached = record["folds"]["0"]["min_dice"]
    assert set(reached) == set(spec.labels) - {"background"}
    measured = _worst_dice_from_disk(spec, folder)
    print(f"{spec.dataset_name}: {record['folds']['0']['steps']} steps, worst validation Dice {measured}")
    assert measured == pytest.approx(reached, abs=1e-4)
    assert min(measured.values()) >= record["target"]["min_dice"]


def test_four_channel_mr_model_returns_label_indices(brats_model: Path) -> None:
    """nnU-Net predicts the index into the sorted label values: BraTS enhancing tumour (label 4) comes out as 3."""
    [(image, _)] = validation_cases(BRATS, read_quality(brats_model)["folds"]["0"]["seed"], 1)
    prediction = _predictor(brats_model).predict_single_npy_array(image, {"spacing": BRATS.spacing})
    assert set(np.unique(prediction)) == {0, 1, 2, 3}


def test_a_spec_it_cannot_fit_fails_within_the_budget_naming_the_label(tmp_path: Path) -> None:
    """Two labels with one intensity cannot be told apart: the builder must say so, not return a weak model."""
    twins = TestModelSpec("Dataset900_Twins", {"0": "CT"}, {"background": 0, "left": 1, "right": 2},
                          {0: (-100.0,), 1: (100.0,), 2: (100.0,)}, patch_size=(16, 16, 16))
    target = QualityTarget(min_dice=0.9, check_every=10, max_steps=30, validation_cases=2)
    message = r"after 30 steps label '(left|right)' \(value [12]\) reaches Dice 0\.\d{3} on its worst validation case"
    with pytest.raises(TestModelQualityError, match=message + r", below the target 0\.9"):
        build_test_model(twins, tmp_path / "twins", target=target)
    assert list(tmp_path.iterdir()) == []  # no folder, whole or partial, of a model that fell short


def test_testmodel_command_exits_1_naming_the_label_short_of_the_target(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    status = main(["testmodel", "bamf_nnunet_mr_prostate", str(tmp_path), "--min-dice", "1.0", "--max-steps", "25"])
    assert status == 1
    assert "label 'prostate' (value 1) reaches Dice 0." in capsys.readouterr().err


def test_testmodel_command_reads_a_spec_file_of_ones_own_and_a_missing_table_is_a_usage_error(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A model the test kit does not know gets its test model from `--spec FILE`, in testmodels.toml's shape."""
    specs = tmp_path / "specs.toml"
    specs.write_text("# no tables yet\n")
    assert main(["testmodel", "bamf_nnunet_mr_prostate", str(tmp_path / "w"), "--spec", str(specs)]) == 2
    assert f"{specs}: no [bamf_nnunet_mr_prostate.prostate] table" in capsys.readouterr().err
    specs = tmp_path / "prostate.toml"  # (specs are read once per file and process)
    specs.write_text('[bamf_nnunet_mr_prostate.prostate]\nchannels = { "0" = "T2" }\n'
                     'labels = { background = 0, gland = 1 }\nintensities = { "0" = [100.0], "1" = [500.0] }\n')
    status = main(["testmodel", "bamf_nnunet_mr_prostate", str(tmp_path / "w"), "--spec", str(specs),
                   "--min-dice", "0.5"])
    assert status == 0
    folder = model_folder(tmp_path / "w", load_model("bamf_nnunet_mr_prostate").manifest, PROSTATE_ENTRY)
    assert json.loads((folder / "dataset.json").read_text())["labels"] == {"background": 0, "gland": 1}


def test_folder_holds_the_dataset_json_plans_and_checkpoint_keys_the_predictor_reads(kidney_model: Path) -> None:
    dataset = json.loads((kidney_model / "dataset.json").read_text())
    plans = json.loads((kidney_model / "plans.json").read_text())
    checkpoint = torch.load(kidney_model / "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert dataset["labels"] == KIDNEY.labels
    assert dataset["channel_names"] == KIDNEY.channels
    assert dataset["name"] == plans["dataset_name"] == KIDNEY.dataset_name
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
    target = QualityTarget(min_dice=0.0, check_every=2, max_steps=2, validation_cases=1)
    first = build_test_model(spec, tmp_path / "a", target=target, seed=7)
    second = build_test_model(spec, tmp_path / "b", target=target, seed=7)
    assert read_quality(first) == read_quality(second)
    assert sorted(read_quality(first)["folds"]) == ["0", "1"]
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
