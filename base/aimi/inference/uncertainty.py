"""One nnU-Net prediction with what it says about its own doubt, at no extra model cost.

Inputs: an initialised nnUNetPredictor, one case's channels (c, z, y, x) and their spacing. Outputs: the label map on
the input grid (as `predict_single_npy_array` returns it) and, per output label, what review selection ranks by.
Three parts, so that a runner can overlap them across cases: `preprocess` and `export_with_doubt` are CPU work,
`predict_folds` the network's. Per label:
- `fold_dice`: mean Dice between each fold's own segmentation and the ensemble's (None with one fold). The folds
  are run one at a time through nnU-Net's own `predict_logits_from_preprocessed_data` and averaged as it averages
  them, so the ensemble is the same prediction and costs the same.
- `entropy`: mean normalised entropy (0 certain, 1 uniform) of the ensemble's probabilities over the voxels
  predicted as the label (softmax: over the classes; region-trained models: binary entropy of each region's
  sigmoid, averaged), on the network's grid.
- `voxels` and `volume_ml` on the input grid.
A case's `score` is the largest doubt of any label present: max(entropy, 1 - fold_dice); empty labels are listed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LabelDoubt:
    voxels: int
    volume_ml: float
    entropy: float | None  # None when the label is absent
    fold_dice: float | None  # None with one fold or when absent from every fold and the ensemble


@dataclass(frozen=True)
class Doubt:
    labels: dict[str, LabelDoubt]  # dataset.json label name -> its doubt
    folds: int

    @property
    def score(self) -> float:
        values = [max(d.entropy or 0.0, 1.0 - d.fold_dice if d.fold_dice is not None else 0.0)
                  for d in self.labels.values() if d.voxels]
        return round(max(values, default=0.0), 6)

    @property
    def empty(self) -> list[str]:
        return [name for name, d in self.labels.items() if not d.voxels]

    def as_dict(self) -> dict[str, Any]:
        return {"score": self.score, "folds": self.folds, "empty": self.empty,
                "labels": {name: asdict(d) for name, d in self.labels.items()}}


@dataclass
class FoldLogits:
    """The network's output for one case: the fold-averaged logits (on the CPU) and each fold's own labels."""

    logits: Any
    fold_segmentations: list[np.ndarray]
    folds: int


def preprocess(predictor: Any, volume: np.ndarray, spacing_zyx: list[float]) -> dict[str, Any]:
    """nnU-Net's preprocessing of one case's channels (c, z, y, x): CPU work, `data` and `data_properties`."""
    from nnunetv2.inference.data_iterators import PreprocessAdapterFromNpy

    adapter = PreprocessAdapterFromNpy([volume], [None], [{"spacing": spacing_zyx}], [None], predictor.plans_manager,
                                       predictor.dataset_json, predictor.configuration_manager,
                                       num_threads_in_multithreaded=1, verbose=False)
    return next(adapter)


def predict_folds(predictor: Any, data: Any) -> FoldLogits:
    """The network part: every fold through nnU-Net's own sliding window, averaged as nnU-Net averages them."""
    labels = predictor.label_manager
    everything = predictor.list_of_parameters
    total, fold_segmentations = None, []
    try:
        for parameters in everything:
            predictor.list_of_parameters = [parameters]
            logits = predictor.predict_logits_from_preprocessed_data(data).cpu()
            if len(everything) > 1:
                fold_segmentations.append(np.asarray(labels.convert_logits_to_segmentation(logits), np.uint8))
            total = logits if total is None else total + logits
    finally:
        predictor.list_of_parameters = everything
    assert total is not None
    return FoldLogits(total / len(everything), fold_segmentations, len(everything))


def export_with_doubt(predictor: Any, properties: dict[str, Any], network: FoldLogits, spacing_zyx: list[float],
                      label_values: dict[int, str]) -> tuple[np.ndarray, Doubt]:
    """CPU work after the network: the label map back on the input grid, and the doubt of each label."""
    import torch
    from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape

    labels = predictor.label_manager
    probabilities = labels.apply_inference_nonlin(network.logits)
    network_labels = np.asarray(labels.convert_probabilities_to_segmentation(probabilities), np.uint8)
    entropy = _entropy(torch.as_tensor(probabilities).float(), labels.has_regions)
    segmentation = np.asarray(convert_predicted_logits_to_segmentation_with_correct_shape(
        network.logits, predictor.plans_manager, predictor.configuration_manager, labels, properties,
        return_probabilities=False), np.uint8)
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    doubts = {}
    for value, name in label_values.items():
        inside = network_labels == value
        count = int((segmentation == value).sum())
        doubts[name] = LabelDoubt(
            voxels=count, volume_ml=round(count * voxel_ml, 3),
            entropy=round(float(entropy[inside].mean()), 6) if inside.any() else None,
            fold_dice=_fold_dice(network.fold_segmentations, inside, value))
    return segmentation, Doubt(doubts, network.folds)


def predict_with_doubt(predictor: Any, volume: np.ndarray, spacing_zyx: list[float],
                       label_values: dict[int, str]) -> tuple[np.ndarray, Doubt]:
    """The label map of `volume` on its own grid, and the doubt of each of `label_values` (value -> name)."""
    prepared = preprocess(predictor, volume, spacing_zyx)
    network = predict_folds(predictor, prepared["data"])
    return export_with_doubt(predictor, prepared["data_properties"], network, spacing_zyx, label_values)


def _entropy(probabilities: Any, regions: bool) -> np.ndarray:
    """Per voxel, normalised to [0, 1]: Shannon entropy over classes, or mean binary entropy of the regions."""
    import torch

    p = probabilities.clamp(1e-7, 1.0)
    if regions:
        q = (1.0 - probabilities).clamp(1e-7, 1.0)
        values = -(p * p.log() + q * q.log()).mean(0) / math.log(2.0)
    else:
        values = -(p * p.log()).sum(0) / math.log(max(int(probabilities.shape[0]), 2))
    return torch.clamp(values, 0.0, 1.0).numpy()


def _fold_dice(fold_segmentations: list[np.ndarray], ensemble: np.ndarray, value: int) -> float | None:
    """Mean Dice of each fold's mask of `value` against the ensemble's; None with one fold or nothing anywhere."""
    if not fold_segmentations:
        return None
    scores = []
    for fold in fold_segmentations:
        mask = fold == value
        total = int(mask.sum()) + int(ensemble.sum())
        if total:
            scores.append(2.0 * float(np.logical_and(mask, ensemble).sum()) / total)
    return round(float(np.mean(scores)), 6) if scores else None
