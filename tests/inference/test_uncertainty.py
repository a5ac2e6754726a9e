"""aimi.inference.uncertainty on a tiny real kidney model with two folds: the ensemble it returns is nnU-Net's own
prediction (voxel for voxel), identical folds agree exactly, a perturbed fold shows as fold disagreement, and the
entropy and volumes are what they claim."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from aimi.inference.uncertainty import predict_with_doubt
from aimi.models import load_model
from aimi.weights import model_folder
from aimi_testkit.phantoms import demo_grid, phantom_shapes
from aimi_testkit.synthetic import sample_phantom
from aimi_testkit.testmodel_cli import spec_for

KIDNEY = "bamf_nnunet_ct_kidney"
LABELS = {1: "kidney", 2: "tumor", 3: "cyst"}


def two_fold_model(kidney_weights: Path, root: Path, perturbation: float) -> Path:
    """The tiny kidney model with a second fold: fold_0's weights plus Gaussian noise of `perturbation` x each
    tensor's own standard deviation (0: an identical copy)."""
    model = load_model(KIDNEY)
    source = model_folder(kidney_weights, model.manifest, model.manifest.weights[0])
    folder = root / source.name
    shutil.copytree(source, folder)
    checkpoint_path = folder / "fold_0" / "checkpoint_final.pth"
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
    generator = torch.Generator().manual_seed(0)
    for name, tensor in checkpoint["network_weights"].items():
        if tensor.is_floating_point() and tensor.numel() > 1:
            noise = torch.randn(tensor.shape, generator=generator) * float(tensor.std()) * perturbation
            checkpoint["network_weights"][name] = tensor + noise
    (folder / "fold_1").mkdir()
    torch.save(checkpoint, folder / "fold_1" / "checkpoint_final.pth")
    return folder


def predictor_for(folder: Path, folds: tuple[int, ...]):
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    predictor = nnUNetPredictor(tile_step_size=0.5, use_mirroring=False, perform_everything_on_device=False,
                                device=torch.device("cpu"), verbose=False, allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(folder), use_folds=folds)
    return predictor


@pytest.fixture(scope="module")
def phantom() -> tuple[np.ndarray, list[float], np.ndarray]:
    """One kidney phantom volume (c, z, y, x) at the tiny model's spacing, its spacing (z, y, x) and truth."""
    intensities = spec_for(load_model(KIDNEY), "kidney").intensities
    grid = demo_grid()
    volume, truth = sample_phantom(grid, phantom_shapes(intensities), float(intensities[0][0]), noise_sd=10.0,
                                   rng=np.random.default_rng(3))
    return volume[None].astype(np.float32), [grid.slice_step, *grid.pixel_spacing], truth


@pytest.mark.parametrize("perturbation", [0.0, 0.5])
def test_the_ensemble_is_nnunets_own_prediction(perturbation: float, kidney_weights: Path, phantom,
                                                tmp_path: Path) -> None:
    volume, spacing, _ = phantom
    predictor = predictor_for(two_fold_model(kidney_weights, tmp_path, perturbation), (0, 1))
    ours, doubt = predict_with_doubt(predictor, volume, spacing, LABELS)
    theirs = predictor.predict_single_npy_array(volume, {"spacing": spacing}, None, None, False)
    np.testing.assert_array_equal(ours, theirs)
    assert doubt.folds == 2 and len(predictor.list_of_parameters) == 2  # the folds are put back


def test_identical_folds_agree_and_a_perturbed_fold_does_not(kidney_weights: Path, phantom, tmp_path: Path) -> None:
    volume, spacing, _ = phantom
    doubts = {}
    for perturbation in (0.0, 0.5):
        folder = two_fold_model(kidney_weights, tmp_path / str(perturbation), perturbation)
        doubts[perturbation] = predict_with_doubt(predictor_for(folder, (0, 1)), volume, spacing, LABELS)[1]
    same, perturbed = doubts[0.0], doubts[0.5]
    present = [name for name, label in same.labels.items() if label.voxels]
    assert present and all(same.labels[name].fold_dice == 1.0 for name in present)
    worst = min(perturbed.labels[name].fold_dice or 1.0 for name in present)
    assert worst < 0.95, perturbed.as_dict()
    assert perturbed.score >= 1.0 - worst and perturbed.score > same.score


def test_entropy_volume_and_score_say_what_they_claim(kidney_weights: Path, phantom) -> None:
    volume, spacing, _ = phantom
    model = load_model(KIDNEY)
    folder = model_folder(kidney_weights, model.manifest, model.manifest.weights[0])
    segmentation, doubt = predict_with_doubt(predictor_for(folder, (0,)), volume, spacing, LABELS)
    assert doubt.folds == 1
    voxel_ml = float(np.prod(spacing)) / 1000
    for value, name in LABELS.items():
        label = doubt.labels[name]
        assert label.fold_dice is None  # one fold: nothing to disagree with
        assert label.voxels == int((segmentation == value).sum())
        assert label.volume_ml == pytest.approx(label.voxels * voxel_ml, abs=1e-3)
        if label.voxels:
            assert label.entropy is not None and 0.0 <= label.entropy <= 1.0
    assert doubt.empty == [name for name, label in doubt.labels.items() if not label.voxels]
    assert doubt.score == pytest.approx(max(label.entropy or 0.0 for label in doubt.labels.values()), abs=1e-6)
    # the model is fit on this kind of phantom: it is sure of most of what it segments
    assert doubt.labels["kidney"].entropy < 0.5
