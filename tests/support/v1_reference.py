"""The nnU-Net v1 side of the v1 -> v2 conversion proof: run ONLY in the nnunet 1.7.1 venv (tests/support/v1_env.sh).

Usage: `<v1 venv>/bin/python tests/support/v1_reference.py OUT`. For a kidney-like CT task (3 labels) and a
prostate-like MR task (1 label, anisotropic spacing) it uses nnunet 1.7.1's own code only:
  1. ExperimentPlanner3D_v21.plan_experiment on a dataset fingerprint (dataset_properties.pkl) -> plans.pkl,
     with base features 8 and small median shapes so the networks are tiny but planned like the real ones;
  2. nnUNetTrainerV2(...).initialize(training=False) -> Generic_UNet; save_checkpoint -> fold_<k>/
     model_final_checkpoint.model(.pkl), for two folds with different random weights;
  3. each fold's Generic_UNet forward (eval, deep supervision off: the logits) on a fixed input -> forward_fold<k>.npy;
  4. v1 inference preprocessing (nnUNetTrainer.preprocess_patient: crop, transpose, resample, normalise) of a NIfTI
     volume at the target spacing and of volumes at other spacings (anisotropic ones take v1's separate-z path)
     -> preprocessed_<name>.npy/.json;
  5. v1's own sliding-window prediction on CPU (predict_preprocessed_data_return_seg_and_softmax, no mirroring) of
     fold 0 on the preprocessed target-spacing volume (several tiles) -> softmax_tiles_fold0.npy, and on its first
     patch-sized block (one tile) -> softmax_tile_fold0.npy;
  6. v1's whole inference path on CPU (preprocess_predict_nifti: preprocess, sliding window with mirroring, softmax
     resampled back and exported) of fold 0 on each resampled volume -> v1_labels_<name>.nii.gz.
Layout under OUT/<task>/: nnUNet/3d_fullres/<task>/nnUNetTrainerV2__nnUNetPlansv2.1/ (the v1 model folder) and the
.npy/.json/.nii.gz files above.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

TASKS = {
    # name: modality, labels (incl. background), median spacing (z, y, x) of the fingerprint, median size (z, y, x),
    # cropping's median size reduction (MR below 3/4: v1 normalises within the nonzero mask), spacings (z, y, x) of
    # volumes that need resampling (anisotropy > 3: v1 resamples z separately, order 0)
    "Task901_KidneyLike": {"modality": "CT", "classes": [1, 2, 3], "spacing": (2.0, 1.6, 1.6), "size": (40, 48, 48),
                           "size_reduction": 1.0, "resampled": {"other": (3.0, 1.2, 1.2), "aniso": (5.0, 1.0, 1.0)}},
    "Task902_ProstateLike": {"modality": "T2", "classes": [1], "spacing": (3.6, 0.8, 0.8), "size": (16, 64, 64),
                             "size_reduction": 0.6, "resampled": {"other": (3.0, 0.7, 0.9)}},
}
FOLDS = (0, 1)
BASE_FEATURES = 8
CT_INTENSITIES = {0: {"median": 60.0, "mean": 55.0, "sd": 70.0, "mn": -150.0, "mx": 600.0,
                      "percentile_99_5": 320.0, "percentile_00_5": -90.0, "local_props": {}}}


def fingerprint(task: dict) -> dict:
    """A v1 dataset_properties.pkl as DatasetAnalyzer writes it, for five cases around the task's median."""
    cases = [f"case_{i}" for i in range(5)]
    spacings = [np.array(task["spacing"]) * f for f in (0.9, 1.0, 1.0, 1.1, 1.0)]
    sizes = [tuple(int(s * f) for s in task["size"]) for f in (1.1, 1.0, 1.0, 0.9, 1.0)]
    return {
        "all_sizes": sizes, "all_spacings": spacings, "all_classes": task["classes"],
        "modalities": {0: task["modality"]},
        "intensityproperties": CT_INTENSITIES if task["modality"] == "CT" else None,  # v1 collects them for CT only
        "size_reductions": dict.fromkeys(cases, task["size_reduction"]),
    }


def plan(task_name: str, task: dict, work: Path) -> Path:
    """nnunet 1.7.1's own 3d planner on the fingerprint; returns the plans.pkl it wrote."""
    from nnunet.experiment_planning.experiment_planner_baseline_3DUNet_v21 import ExperimentPlanner3D_v21

    cropped, preprocessed = work / "cropped" / task_name, work / "preprocessed" / task_name
    cropped.mkdir(parents=True, exist_ok=True)
    preprocessed.mkdir(parents=True, exist_ok=True)
    with (cropped / "dataset_properties.pkl").open("wb") as f:
        pickle.dump(fingerprint(task), f)
    planner = ExperimentPlanner3D_v21(str(cropped), str(preprocessed))
    planner.unet_base_num_features = BASE_FEATURES
    planner.plan_experiment()
    return Path(planner.plans_fname)


def trainer_for(plans_file: Path, model_dir: Path, fold: int):
    """nnUNetTrainerV2 for 3d_fullres (last stage) as nnUNet_train builds it, initialised for inference."""
    from nnunet.training.network_training.nnUNetTrainerV2 import nnUNetTrainerV2

    with plans_file.open("rb") as f:
        stages = pickle.load(f)["plans_per_stage"]
    torch.manual_seed(fold)
    trainer = nnUNetTrainerV2(str(plans_file), fold, output_folder=str(model_dir), dataset_directory=str(model_dir),
                              batch_dice=True, stage=max(stages), unpack_data=False, deterministic=True, fp16=False)
    trainer.initialize(training=False)
    trainer.network.eval()
    trainer.network.do_ds = False
    return trainer


def perturb_norms(network: torch.nn.Module, seed: int) -> None:
    """Random affine instance-norm parameters (He init leaves them 1/0) so the mapping of every tensor shows."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, torch.nn.InstanceNorm3d):
                module.weight.copy_(1 + 0.2 * torch.randn(module.weight.shape, generator=generator))
                module.bias.copy_(0.2 * torch.randn(module.bias.shape, generator=generator))


def phantom(task: dict, spacing: tuple[float, float, float], shape: tuple[int, int, int], path: Path) -> None:
    """A smooth body with blobs: CT-like HU (air outside, clipped by v1's percentiles) or MR-like positive signal
    in the body and exact zeros outside (cropped away, and outside the nonzero mask v1 normalises within)."""
    rng = np.random.default_rng(7)
    z, y, x = np.meshgrid(*(np.linspace(-1, 1, s) for s in shape), indexing="ij")
    body = (y**2 + x**2) < 0.7
    blob = ((z - 0.1) ** 2 + (y - 0.2) ** 2 + (x + 0.2) ** 2) < 0.12
    if task["modality"] == "CT":
        image = np.where(body, 40.0, -1000.0) + np.where(blob, 110.0, 0.0) + rng.normal(0, 20, shape)
    else:
        image = np.where(body, 500.0 + np.where(blob, 250.0, 0.0) + rng.normal(0, 15, shape), 0.0)
    img = sitk.GetImageFromArray(image.astype(np.float32))
    img.SetSpacing(tuple(float(s) for s in spacing[::-1]))
    sitk.WriteImage(img, str(path))


def main(out: Path) -> None:
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    for task_name, task in TASKS.items():
        work = out / task_name
        plans_file = plan(task_name, task, work)
        model_dir = work / "nnUNet" / "3d_fullres" / task_name / "nnUNetTrainerV2__nnUNetPlansv2.1"
        model_dir.mkdir(parents=True, exist_ok=True)
        (model_dir / "plans.pkl").write_bytes(plans_file.read_bytes())
        trainers = {}
        for fold in FOLDS:
            trainer = trainer_for(model_dir / "plans.pkl", model_dir, fold)
            perturb_norms(trainer.network, seed=100 + fold)
            trainer.save_checkpoint(str(model_dir / f"fold_{fold}" / "model_final_checkpoint.model"))
            trainers[fold] = trainer
        patch = [int(p) for p in trainers[0].patch_size]
        x = torch.from_numpy(np.random.default_rng(3).standard_normal((2, 1, *patch)).astype(np.float32))
        np.save(work / "forward_input.npy", x.numpy())
        with torch.no_grad():
            for fold, trainer in trainers.items():
                np.save(work / f"forward_fold{fold}.npy", trainer.network(x).numpy())
        target = tuple(float(s) for s in trainers[0].plans["plans_per_stage"][trainers[0].stage]["current_spacing"])
        shape = tuple(int(p) + 6 for p in patch)
        for name, spacing in {"target": target, **task["resampled"]}.items():
            phantom(task, spacing, shape, work / f"volume_{name}.nii.gz")
            data, _, properties = trainers[0].preprocess_patient([str(work / f"volume_{name}.nii.gz")])
            np.save(work / f"preprocessed_{name}.npy", data)
            (work / f"preprocessed_{name}.json").write_text(json.dumps({
                "spacing_after_resampling": [float(s) for s in properties["spacing_after_resampling"]],
                "size_after_resampling": [int(s) for s in properties["size_after_resampling"]]}))
        for name in task["resampled"]:
            trainers[0].preprocess_predict_nifti([str(work / f"volume_{name}.nii.gz")],
                                                 str(work / f"v1_labels_{name}.nii.gz"), mixed_precision=False)
        preprocessed = np.load(work / "preprocessed_target.npy")
        one_tile = np.ascontiguousarray(preprocessed[:, :patch[0], :patch[1], :patch[2]])
        for name, data in (("softmax_tiles_fold0", preprocessed), ("softmax_tile_fold0", one_tile)):
            _, softmax = trainers[0].predict_preprocessed_data_return_seg_and_softmax(
                data, do_mirroring=False, mirror_axes=(0, 1, 2), use_sliding_window=True, step_size=0.5,
                use_gaussian=True, all_in_gpu=False, mixed_precision=False, verbose=False)
            np.save(work / f"{name}.npy", softmax)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
