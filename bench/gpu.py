"""GPU benchmark: a real-size nnU-Net 3d_fullres network on a 512x512x300 CT, and the speed levers that keep outputs.

    python -m bench.gpu [--smoke] [--json FILE] [--budget-s 420]      (bench/gpu.sh runs it with a time limit)

The network has random weights and the plans of a BAMF-sized model (128^3 patch, 6 stages, 32-320 features,
instance norm): compute per patch is that of the real models; the label maps are not meaningful, and near-ties of
a random network make precision levers look worse than they would with trained weights. Measured, after a warm-up:
the whole `predict_single_npy_array` once, then nnU-Net's own sliding window with 1 fold without TTA under each
lever, and 5 folds with TTA. Every lever's label map is compared with nnU-Net's default (fp16 autocast, results
on the device, one tile at a time). `--smoke` runs the same code on the CPU with a small volume and patch.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

FOLDS = 5
LABELS = {"background": 0, "kidney": 1, "tumor": 2, "cyst": 3}
FEATURES = (32, 64, 128, 256, 320, 320)
FULL = {"shape": (300, 512, 512), "patch": (128, 128, 128), "spacing": (1.0, 0.8, 0.8)}
DEFAULT_NAME = "default: nnU-Net as shipped (fp16 autocast on CUDA), results on the device, 1 tile per forward"
SMOKE = {"shape": (40, 64, 64), "patch": (64, 64, 64), "spacing": (1.0, 0.8, 0.8)}


@dataclass
class Measurement:
    name: str
    seconds: float
    patches: int
    equal_to_default: bool | None
    agreement: float | None  # fraction of voxels with the default's label
    note: str = ""

    @property
    def patches_per_s(self) -> float:
        return self.patches / self.seconds


def plans(patch: tuple[int, int, int], spacing: tuple[float, float, float], shape: tuple[int, int, int]) -> dict:
    """nnU-Net v2 plans of a BAMF-sized 3d_fullres model: PlainConvUNet, 6 stages, 2 convs each, instance norm."""
    stages = len(FEATURES)
    return {
        "dataset_name": "Dataset999_GpuBench", "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": list(spacing), "original_median_shape_after_transp": list(shape),
        "image_reader_writer": "SimpleITKIO", "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
        "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": {
            "mean": 60.0, "median": 60.0, "std": 80.0, "min": -1024.0, "max": 2000.0,
            "percentile_99_5": 400.0, "percentile_00_5": -150.0}},
        "configurations": {"3d_fullres": {
            "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor",
            "batch_size": 2, "patch_size": list(patch), "median_image_size_in_voxels": list(shape),
            "spacing": list(spacing), "normalization_schemes": ["CTNormalization"], "use_mask_for_norm": [False],
            "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_seg": "resample_data_or_seg_to_shape",
            "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
            "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
            "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0,
                                                   "force_separate_z": None},
            "architecture": {
                "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                "arch_kwargs": {
                    "n_stages": stages, "features_per_stage": list(FEATURES),
                    "conv_op": "torch.nn.modules.conv.Conv3d", "kernel_sizes": [[3, 3, 3]] * stages,
                    "strides": [[1, 1, 1]] + [[2, 2, 2]] * (stages - 1), "n_conv_per_stage": [2] * stages,
                    "n_conv_per_stage_decoder": [2] * (stages - 1), "conv_bias": True,
                    "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                    "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
                    "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}},
                "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]},
            "batch_dice": True}},
    }


def write_model(folder: Path, plan: dict) -> Path:
    """A loadable nnU-Net v2 model folder with FOLDS folds of random weights (nnunetv2 builds the network)."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    dataset = {"name": plan["dataset_name"], "channel_names": {"0": "CT"}, "labels": LABELS, "numTraining": 1,
               "file_ending": ".nii.gz"}
    (folder / "plans.json").write_text(json.dumps(plan))
    (folder / "dataset.json").write_text(json.dumps(dataset))
    manager = PlansManager(plan)
    for fold in range(FOLDS):
        torch.manual_seed(fold)
        network = nnUNetTrainer.build_network_architecture(
            manager, manager.get_configuration("3d_fullres"), 1, len(LABELS), enable_deep_supervision=False)
        (folder / f"fold_{fold}").mkdir()
        torch.save({"network_weights": network.state_dict(), "trainer_name": "nnUNetTrainer",
                    "init_args": {"configuration": "3d_fullres"}, "inference_allowed_mirroring_axes": (0, 1, 2)},
                   folder / f"fold_{fold}" / "checkpoint_final.pth")
    return folder


def synthetic_ct(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """(1, z, y, x) HU: fat background, two kidney-like ellipsoids, noise; enough structure for real activations."""
    rng = np.random.default_rng(seed)
    z, y, x = np.ogrid[tuple(slice(0, n) for n in shape)]
    volume = np.full(shape, -100.0, np.float32)
    for side in (-1, 1):
        centre = (shape[0] / 2, shape[1] / 2, shape[2] / 2 + side * shape[2] / 6)
        inside = sum(((g - c) / (n / 8)) ** 2 for g, c, n in zip((z, y, x), centre, shape, strict=True)) <= 1
        volume[inside] = 150.0
    volume += rng.normal(0, 10, shape).astype(np.float32)
    return volume[None]


class Precision(torch.nn.Module):
    """Runs the wrapped network under an autocast dtype of its own (None: fp32, autocast off) inside nnU-Net's."""

    def __init__(self, network: torch.nn.Module, dtype: torch.dtype | None) -> None:
        super().__init__()
        self.network, self.dtype = network, dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dtype is None:
            with torch.autocast(x.device.type, enabled=False):
                return self.network(x.float())
        with torch.autocast(x.device.type, dtype=self.dtype):
            return self.network(x)


def batched_predictor_class() -> type:
    """nnUNetPredictor whose sliding window sends `tiles_per_batch` tiles per forward; same Gaussian weighting,
    same accumulation order per voxel, so only the convolution's batch differs."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.inference.sliding_window_prediction import compute_gaussian

    class BatchedPredictor(nnUNetPredictor):
        tiles_per_batch = 4

        @torch.inference_mode()
        def _internal_predict_sliding_window_return_logits(self, data: torch.Tensor, slicers: list,
                                                           do_on_device: bool = True) -> torch.Tensor:
            results_device = self.device if do_on_device else torch.device("cpu")
            data = data.to(results_device)
            logits = torch.zeros((self.label_manager.num_segmentation_heads, *data.shape[1:]), dtype=torch.half,
                                 device=results_device)
            weights = torch.zeros(data.shape[1:], dtype=torch.half, device=results_device)
            gaussian = compute_gaussian(tuple(self.configuration_manager.patch_size), sigma_scale=1.0 / 8,
                                        value_scaling_factor=10, device=results_device)
            for start in range(0, len(slicers), self.tiles_per_batch):
                group = slicers[start:start + self.tiles_per_batch]
                tiles = torch.stack([data[s] for s in group]).to(self.device)
                predictions = self._internal_maybe_mirror_and_predict(tiles).to(results_device)
                for s, prediction in zip(group, predictions, strict=True):
                    logits[s] += prediction * gaussian
                    weights[s[1:]] += gaussian
            torch.div(logits, weights, out=logits)
            return logits

    return BatchedPredictor


def predictor(folder: Path, device: torch.device, *, folds: tuple[int, ...], tta: bool, on_device: bool = True,
              batched: bool = False) -> Any:
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    cls = batched_predictor_class() if batched else nnUNetPredictor
    result = cls(tile_step_size=0.5, use_gaussian=True, use_mirroring=tta, perform_everything_on_device=on_device,
                 device=device, verbose=False, verbose_preprocessing=False, allow_tqdm=False)
    result.initialize_from_trained_model_folder(str(folder), use_folds=folds, checkpoint_name="checkpoint_final.pth")
    return result


def preprocess(p: Any, image: np.ndarray, spacing: tuple[float, float, float]) -> torch.Tensor:
    """nnU-Net's own preprocessing (crop, CT normalisation, resampling), done once for every sliding-window run."""
    preprocessor = p.configuration_manager.preprocessor_class(verbose=False)
    data, _, _ = preprocessor.run_case_npy(image, None, {"spacing": list(spacing)}, p.plans_manager,
                                           p.configuration_manager, p.dataset_json)
    return torch.from_numpy(data)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def sliding(p: Any, data: torch.Tensor, device: torch.device, *, all_folds: bool = False) -> tuple[float, torch.Tensor]:
    """Seconds of nnU-Net's sliding window (synchronised) and its label map (argmax on the device); `all_folds`
    goes through predict_logits_from_preprocessed_data, which loads and sums every fold's weights."""
    synchronize(device)
    started = time.perf_counter()
    if all_folds:
        logits = p.predict_logits_from_preprocessed_data(data)
    else:
        logits = p.predict_sliding_window_return_logits(data)
    labels = logits.to(device).argmax(0)
    synchronize(device)
    return time.perf_counter() - started, labels


def n_patches(p: Any, data: torch.Tensor) -> int:
    padded = [max(n, t) for n, t in zip(data.shape[1:], p.configuration_manager.patch_size, strict=True)]
    return len(p._internal_get_sliding_window_slicers(padded))


def compare(name: str, seconds: float, patches: int, labels: torch.Tensor, default: torch.Tensor | None,
            note: str = "") -> Measurement:
    print(f"  {name}: {seconds:.2f} s", flush=True)
    if default is None:
        return Measurement(name, seconds, patches, None, None, note)
    agreement = float((labels.cpu() == default.cpu()).float().mean())
    return Measurement(name, seconds, patches, agreement == 1.0, agreement, note)


def levers(device: torch.device, smoke: bool) -> list[tuple[str, Callable[[Any], None], dict[str, Any]]]:
    """(name, change to the 1-fold predictor, predictor options); bf16 and torch.compile only on a GPU (CPU bf16
    convolutions are emulated here and take minutes; compiling takes minutes on a CPU)."""
    def wrap(dtype: torch.dtype | None) -> Callable[[Any], None]:
        return lambda p: setattr(p, "network", Precision(p.network, dtype))

    def keep(_: Any) -> None:
        return None

    chosen = [("fp32 (autocast off)", wrap(None), {}),
              ("results off the device (perform_everything_on_device=False)", keep, {"on_device": False}),
              ("batched tiles, 4 per forward", keep, {"batched": True})]
    if device.type == "cuda" and not smoke:
        chosen += [("bf16 autocast", wrap(torch.bfloat16), {}),
                   ("torch.compile (first call compiles; timed after)",
                    lambda p: setattr(p, "network", torch.compile(p.network)), {})]
    return chosen


def run(args: argparse.Namespace) -> list[Measurement]:
    device = torch.device("cpu" if args.smoke else "cuda")
    size = SMOKE if args.smoke else FULL
    deadline = time.perf_counter() + args.budget_s
    results: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="aimi-gpu-bench-") as work:
        folder = write_model(Path(work), plans(size["patch"], size["spacing"], size["shape"]))
        image = synthetic_ct(size["shape"])
        base = predictor(folder, device, folds=(0,), tta=False)
        data = preprocess(base, image, size["spacing"])
        patches = n_patches(base, data)
        print(f"input {image.shape[1:]}, {patches} patches of {size['patch']} per fold and mirror", flush=True)
        sliding(base, data, device)  # warm-up: cuDNN autotuning, allocator
        started = time.perf_counter()
        base.predict_single_npy_array(image, {"spacing": list(size["spacing"])}, None, None, False)
        whole = time.perf_counter() - started
        seconds, default = sliding(base, data, device)
        results.append(Measurement("whole predict_single_npy_array, 1 fold, no TTA (preprocess + export incl.)",
                                   whole, patches, None, None))
        results.append(compare(DEFAULT_NAME, seconds, patches, default, None, "the reference of every lever below"))
        folds = (0,) if args.smoke else tuple(range(FOLDS))
        seconds, _ = sliding(predictor(folder, device, folds=folds, tta=True), data, device, all_folds=True)
        results.append(Measurement(f"{len(folds)} fold(s) with TTA (8 mirrors), default precision", seconds,
                                   patches * 8 * len(folds), None, None, "the paper's setting"))
        for name, change, options in levers(device, args.smoke):
            if time.perf_counter() > deadline:
                results.append(Measurement(name, float("nan"), patches, None, None, "skipped: time budget spent"))
                continue
            p = predictor(folder, device, folds=(0,), tta=False, **options)
            change(p)
            sliding(p, data, device)  # warm-up (compiles once for torch.compile)
            seconds, labels = sliding(p, data, device)
            results.append(compare(name, seconds, patches, labels, default))
    return results


def print_table(results: list[Measurement], facts: str) -> None:
    print(f"\n{facts}\n")
    print("| run | s | patches | patches/s | label map vs default |")
    print("|---|---|---|---|---|")
    for m in results:
        match = "-" if m.agreement is None else ("equal" if m.equal_to_default else f"{100 * m.agreement:.4f}% equal")
        print(f"| {m.name} | {m.seconds:.2f} | {m.patches} | {m.patches_per_s:.1f} | {match} {m.note} |")


def device_facts(smoke: bool) -> str:
    from importlib.metadata import version

    name = "CPU (--smoke)" if smoke else torch.cuda.get_device_name(0)
    return (f"device: {name}; torch {torch.__version__} (CUDA {torch.version.cuda}); nnunetv2 {version('nnunetv2')}; "
            f"torch threads {torch.get_num_threads()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="run on the CPU with a small volume and patch")
    parser.add_argument("--budget-s", type=float, default=420.0, help="skip the remaining levers after this")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    args = parser.parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        print("no CUDA device visible: bench/gpu.py needs one NVIDIA GPU (H100-class). "
              "`python -m bench.gpu --smoke` checks the same code on the CPU.", file=sys.stderr)
        return 2
    torch.backends.cudnn.benchmark = True  # nnU-Net's predictor sets it too
    facts = device_facts(args.smoke)
    print(facts, flush=True)
    results = run(args)
    print_table(results, facts)
    if args.json:
        args.json.write_text(json.dumps({"facts": facts, "results": [asdict(m) for m in results]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
