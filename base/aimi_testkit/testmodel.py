"""Tiny but real nnU-Net v2 model folders, fitted in seconds on a CPU until they meet a stated quality.

They stand in for the Zenodo weights in tests, demos and container tests: the folder has the layout, the
`dataset.json`, the `plans.json` and the `fold_<k>/checkpoint_final.pth` that nnunetv2's `nnUNetPredictor`
reads, the network is built by nnunetv2's own `nnUNetTrainer.build_network_architecture`, and it is fitted on
`synthetic_case` volumes normalised by nnunetv2's own normalisation classes, so a phantom made of the same
intensities is segmented through the exact inference path of the real models.

Quality: fitting stops when every label reaches `QualityTarget.min_dice` on each fresh validation case, predicted
by nnunetv2's predictor; a build that cannot get there within the step budget raises TestModelQualityError. A fixed
step count would not do: another CPU's float arithmetic takes training elsewhere. `QUALITY_FILE` records what was
reached, so tests can assert exactly what was guaranteed.

Label values: nnU-Net (labels, not regions) predicts the *index* of a label in the sorted list of the
dataset.json label values. For contiguous labels (0, 1, 2, ...) index and value agree; for BraTS-style
{0, 1, 2, 4} the predictor returns 0, 1, 2, 3 (3 meaning label 4), exactly as a real model with that
dataset.json would. The network here is trained on those indices.

Scenes: most models are fitted on blobs on a uniform background (`synthetic_case`). The brain tumour model sees,
in atlas space, a skull-stripped brain (zero outside) of grey matter, white matter and CSF around the tumour, so
its test model is fitted on that scene (`brain_case`), normalised like BraTS nnU-Net plans (z-score inside the
non-zero region).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from aimi.labelmaps import dice
from aimi.nnunet_plans import resampling_entries

CONFIGURATION = "3d_fullres"
TRAINER_NAME = "nnUNetTrainer"
PLANS_NAME = "nnUNetPlans"
#: Blob radii in millimetres: large enough for a 4-stage U-Net, small enough that several fit a 64^3 volume.
BLOB_RADIUS_MM = (10.0, 20.0)
#: Noise standard deviation as a fraction of the spread of the class intensities in a channel.
NOISE_FRACTION = 0.05
#: ... and at most this fraction of the smallest gap between two class intensities.
GAP_NOISE_FRACTION = 0.25
SECOND_BLOB_PROBABILITY = 0.5
N_STAGES = 4
CONVS_PER_STAGE = 1
FEATURES_PER_STAGE = (8, 16, 32, 32)
BATCH_SIZE = 2
LEARNING_RATE = 1e-2
WARMUP_STEPS = 20
GRADIENT_CLIP = 12.0  # nnU-Net's own gradient-norm clip
#: The record of what a built model reached, beside its dataset.json.
QUALITY_FILE = "testmodel-quality.json"
#: Validation cases are drawn from their own random stream, never from the training one.
VALIDATION_STREAM = 7919
#: Validation cases are this many patches along each axis: the sliding window stitches several tiles, as in use.
VALIDATION_PATCHES = 2
SCENES = ("blobs", "brain")
#: Label names of the BraTS tumour sub-regions: a spec with exactly these is fitted on the brain scene.
BRAIN_LABELS = frozenset({"background", "NCR", "ED", "ET"})
#: nnU-Net's BraTS channel names -> the contrasts of `aimi_testkit.synthetic_brain`.
BRATS_CHANNELS = {"T1": "t1", "T1ce": "t1c", "T2": "t2", "FLAIR": "flair"}
#: Brain scene: tumour (oedema) radii in mm; enhancing rim and necrotic core as fractions of the next outer one.
TUMOUR_RADIUS_MM = (12.0, 26.0)
RIM_FRACTION = (0.5, 0.7)
CORE_FRACTION = (0.45, 0.7)
TUMOUR_PROBABILITY = 0.85
#: Case-to-case spread of tissue signal (bias-field residue, scanner differences), as a fraction.
TISSUE_JITTER = 0.08


class TestModelQualityError(RuntimeError):
    """The step budget ran out before every label reached the quality target."""

    __test__ = False


@dataclass(frozen=True)
class QualityTarget:
    """When fitting stops: every label reaches `min_dice` on every one of `validation_cases` fresh cases.

    Checked every `check_every` steps through nnunetv2's own predictor (sliding window, no mirroring: what the
    tests run); after `max_steps` without reaching it the build fails, naming the label and the Dice it reached.
    A fixed step count would give a model whose quality depends on the CPU's float arithmetic.
    """

    __test__ = False

    min_dice: float = 0.9
    check_every: int = 25
    max_steps: int = 2000
    validation_cases: int = 4

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_dice <= 1.0:
            raise ValueError(f"min_dice must lie in [0, 1], got {self.min_dice}")
        if self.check_every < 1 or self.max_steps < self.check_every or self.validation_cases < 1:
            raise ValueError(f"need 1 <= check_every <= max_steps and validation_cases >= 1, got {self}")


DEFAULT_TARGET = QualityTarget()


@dataclass(frozen=True)
class TestModelSpec:
    """What a test model must look like from outside: the channels, labels and normalisation of a real model."""

    __test__ = False  # not a pytest test class despite its name

    dataset_name: str
    channels: dict[str, str]
    labels: dict[str, int]
    intensities: dict[int, tuple[float, ...]]
    spacing: tuple[float, float, float] = (3.0, 2.0, 2.0)
    patch_size: tuple[int, int, int] = (32, 32, 32)
    folds: tuple[int, ...] = (0,)
    scene: str = ""  # "blobs" or "brain"; empty: "brain" for the BraTS sub-region labels (BRAIN_LABELS), else "blobs"

    def __post_init__(self) -> None:
        """Fail at construction, naming the field, rather than with an nnU-Net stack trace later."""
        if sorted(self.channels) != [str(i) for i in range(len(self.channels))] or not self.channels:
            raise ValueError(f"channels keys must be '0'..'n-1', got {sorted(self.channels)}")
        values = sorted(self.labels.values())
        if self.labels.get("background") != 0 or len(set(values)) != len(values) or values[0] != 0:
            raise ValueError(f"labels must map 'background' to 0 and have distinct values >= 0, got {self.labels}")
        if set(self.intensities) != set(values):
            raise ValueError(f"intensities need one entry per label value {values}, got {sorted(self.intensities)}")
        bad = [v for v, i in self.intensities.items() if len(i) != len(self.channels)]
        if bad:
            raise ValueError(f"intensities of label values {bad} need one value per channel ({len(self.channels)})")
        if not self.scene:
            object.__setattr__(self, "scene", "brain" if set(self.labels) == BRAIN_LABELS else "blobs")
        if self.scene not in SCENES:
            raise ValueError(f"scene {self.scene!r} is not one of {', '.join(SCENES)}")
        if self.scene == "brain" and sorted(self.channels.values()) != sorted(BRATS_CHANNELS):
            raise ValueError(f"a brain scene needs the channels {sorted(BRATS_CHANNELS)}, got {self.channels}")
        divisor = 2 ** (N_STAGES - 1)
        if any(p % divisor for p in self.patch_size):
            raise ValueError(f"patch_size {self.patch_size} must be divisible by {divisor} on every axis")

    @property
    def label_values(self) -> list[int]:
        """Label values in the order of the network's output channels (nnU-Net sorts them)."""
        return sorted(self.labels.values())

    def noise_std(self) -> np.ndarray:
        """Per-channel noise level: a fraction of the spread of the class intensities (the same contrast-to-noise
        ratio in every channel), at most a fraction of the smallest gap between two classes, so that many classes
        on one channel (liver's ten) stay as separable as few."""
        table = np.array([self.intensities[v] for v in self.label_values], dtype=np.float64)
        spread = table.max(axis=0) - table.min(axis=0)
        gaps = np.diff(np.sort(table, axis=0), axis=0)
        smallest_gap = np.where(gaps > 0, gaps, np.inf).min(axis=0)
        return np.maximum(np.minimum(spread * NOISE_FRACTION, smallest_gap * GAP_NOISE_FRACTION), 1.0)


def synthetic_case(spec: TestModelSpec, shape: tuple[int, int, int],
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One or two ellipsoid blobs per foreground label on background at `spec.spacing`: what the model is fitted on
    (or, for the brain scene, `brain_case`).

    Returns (image[c, z, y, x] float32, labels[z, y, x] uint8 holding the spec's label values).
    """
    if spec.scene == "brain":
        return brain_case(spec, shape, rng)
    labels = np.zeros(shape, dtype=np.uint8)
    grid = np.ogrid[tuple(slice(0, s) for s in shape)]
    foreground = spec.label_values[1:]
    seconds = [v for v in foreground if rng.random() < SECOND_BLOB_PROBABILITY]
    for order, value in enumerate(foreground + seconds):  # every label's first blob before any second one
        mask = _free_ellipsoid(labels, grid, spec.spacing, rng)
        if mask is None and order < len(foreground):
            raise ValueError(f"no room for a blob of label {value} in a volume of shape {shape}")
        if mask is not None:
            labels[mask] = value
    table = np.array([spec.intensities[v] for v in spec.label_values], dtype=np.float32)
    index = np.searchsorted(spec.label_values, labels)
    noise = rng.standard_normal((len(spec.channels), *shape)).astype(np.float32)
    image = np.moveaxis(table[index], -1, 0) + noise * spec.noise_std().astype(np.float32)[:, None, None, None]
    return image.astype(np.float32), labels


def brain_case(spec: TestModelSpec, shape: tuple[int, int, int],
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A skull-stripped brain crop in atlas space: WM with GM and CSF patches, zero outside the brain, and (mostly)
    one tumour of nested ellipsoids - oedema, enhancing rim, necrotic core (label names ED, ET, NCR of the spec).

    Normal tissue signal comes from `aimi_testkit.synthetic_brain.TISSUE_SIGNAL`, the tumour's from the spec, each
    varied a little per case; noise only inside the brain, so the outside stays exactly zero like brain-extracted
    input.
    """
    from scipy.ndimage import gaussian_filter

    from aimi_testkit.synthetic_brain import TISSUE_SIGNAL

    grid = np.ogrid[tuple(slice(0, s) for s in shape)]
    spacing = np.array(spec.spacing)
    half = np.array(shape) / 2.0
    brain = _ellipsoid(grid, rng.uniform(0.2, 0.8) * np.array(shape), half * rng.uniform(0.8, 1.6, 3)) <= 1.0
    field = gaussian_filter(rng.standard_normal((2, *shape)), sigma=(0, 2.0, 2.0, 2.0))
    gm = field[0] > np.quantile(field[0], 0.6)
    csf = field[1] > np.quantile(field[1], 0.93)
    roles = [BRATS_CHANNELS[spec.channels[str(c)]] for c in range(len(spec.channels))]
    tissue = {name: np.array([TISSUE_SIGNAL[r][name] for r in roles], np.float32) for name in ("wm", "gm", "csf")}
    labels = np.zeros(shape, np.uint8)
    if rng.random() < TUMOUR_PROBABILITY:
        centre = rng.uniform(0.15, 0.85) * np.array(shape)
        outer = rng.uniform(*TUMOUR_RADIUS_MM) * rng.uniform(0.85, 1.15, 3) / spacing
        rim = outer * rng.uniform(*RIM_FRACTION)
        core = rim * rng.uniform(*CORE_FRACTION)
        for name, radii in (("ED", outer), ("ET", rim), ("NCR", core)):
            labels[_ellipsoid(grid, centre, radii) <= 1.0] = spec.labels[name]
        labels[~brain] = 0
    image = np.zeros((len(roles), *shape), np.float32)
    for mask, signal in ((brain, tissue["wm"]), (brain & gm, tissue["gm"]), (brain & csf, tissue["csf"])):
        image[:, mask] = (signal * rng.uniform(1 - TISSUE_JITTER, 1 + TISSUE_JITTER, len(roles)))[:, None]
    for value in spec.label_values[1:]:
        signal = np.array(spec.intensities[value], np.float32)
        image[:, labels == value] = (signal * rng.uniform(1 - TISSUE_JITTER, 1 + TISSUE_JITTER, len(roles)))[:, None]
    noise = rng.standard_normal((len(roles), int(brain.sum()))).astype(np.float32)
    image[:, brain] += noise * spec.noise_std().astype(np.float32)[:, None]
    return image, labels


def _ellipsoid(grid: list[np.ndarray], centre: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Normalised squared distance from `centre` (<= 1 inside the ellipsoid), in voxels."""
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True))


def _free_ellipsoid(labels: np.ndarray, grid: list[np.ndarray], spacing: tuple[float, float, float],
                    rng: np.random.Generator, attempts: int = 100) -> np.ndarray | None:
    """A random ellipsoid inside the volume with a margin to every blob placed so far; None if none fits."""
    shape = np.array(labels.shape)
    occupied = labels > 0
    for attempt in range(attempts):
        shrink = 1.0 - 0.75 * attempt / attempts  # smaller blobs when the volume is crowded
        radii = rng.uniform(*BLOB_RADIUS_MM, size=3) / np.array(spacing) * shrink
        radii = np.clip(radii, 1.5, np.maximum(shape / 6.0, 1.5))
        centre = rng.uniform(radii + 1, shape - radii - 1)
        distance = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True))
        if not occupied[distance <= 1.6].any():
            return distance <= 1.0
    return None


def build_test_model(spec: TestModelSpec, out: Path, *, target: QualityTarget = DEFAULT_TARGET,
                     seed: int = 0) -> Path:
    """Write a loadable nnU-Net v2 model folder for `spec` at `out` and return it; deterministic for a seed.

    Every fold is fitted until it meets `target` (else TestModelQualityError, and no folder); what each reached is
    written to `QUALITY_FILE` in the folder. The folder appears whole (built beside it, then renamed). Torch's
    thread setting (OMP_NUM_THREADS) is left as the caller has it.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")  # mkdir, unlike mkdtemp, keeps the umask's mode
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        _write_model(spec, partial, target, seed)
        shutil.rmtree(out, ignore_errors=True)
        partial.rename(out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return out


def _write_model(spec: TestModelSpec, folder: Path, target: QualityTarget, seed: int) -> None:
    dataset_json = _dataset_json(spec)
    plans = _plans(spec)
    (folder / "dataset.json").write_text(json.dumps(dataset_json, indent=2))
    (folder / "plans.json").write_text(json.dumps(plans, indent=2))
    folds = {}
    for fold in spec.folds:
        network, reached = _fit(spec, plans, dataset_json, target=target, seed=seed + fold)
        _save_checkpoint(folder / f"fold_{fold}" / "checkpoint_final.pth", network, plans, dataset_json, fold)
        folds[str(fold)] = {"seed": seed + fold, **reached}
    record = {"target": asdict(target), "validation_shape": list(validation_shape(spec)), "folds": folds,
              "torch": torch.__version__, "threads": torch.get_num_threads(),
              "mkldnn": bool(torch.backends.mkldnn.enabled)}
    (folder / QUALITY_FILE).write_text(json.dumps(record, indent=2))


def read_quality(folder: Path) -> dict:
    """The quality record `build_test_model` wrote into `folder`."""
    return json.loads((Path(folder) / QUALITY_FILE).read_text())


def validation_shape(spec: TestModelSpec) -> tuple[int, int, int]:
    return tuple(VALIDATION_PATCHES * p for p in spec.patch_size)  # type: ignore[return-value]


def validation_cases(spec: TestModelSpec, seed: int, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The fresh cases a fold fitted from `seed` is judged on: (image, labels) each holding every label.

    A stream of its own (never the training one), so a test can draw the same cases again and re-measure.
    """
    rng = np.random.default_rng([seed, VALIDATION_STREAM])
    cases = []
    for _ in range(100 * count):
        image, labels = synthetic_case(spec, validation_shape(spec), rng)
        if set(np.unique(labels)) == set(spec.label_values):  # the brain scene may draw no tumour
            cases.append((image, labels))
        if len(cases) == count:
            return cases
    raise ValueError(f"{spec.dataset_name}: cannot draw {count} validation cases holding every label")


def dice_per_label(prediction: np.ndarray, truth: np.ndarray, values: list[int]) -> dict[int, float]:
    """Dice of each label value; 1.0 where both are empty."""
    return {value: dice(prediction == value, truth == value) for value in values}


def _dataset_json(spec: TestModelSpec) -> dict:
    """The dataset.json nnU-Net v2 writes for a raw dataset with these channels and labels."""
    return {
        "name": spec.dataset_name,
        "channel_names": dict(spec.channels),
        "labels": dict(spec.labels),
        "numTraining": 8,
        "file_ending": ".nii.gz",
    }


def _normalization_scheme(channel_name: str) -> str:
    """nnU-Net's rule: a channel named CT gets CTNormalization, everything else z-scores."""
    return "CTNormalization" if channel_name.casefold() == "ct" else "ZScoreNormalization"


def _intensity_properties(spec: TestModelSpec, channel: int) -> dict[str, float]:
    """Intensity statistics in the shape of nnU-Net's fingerprint, over every class of this spec.

    nnU-Net takes them from foreground voxels only; here background is a class of its own that CTNormalization
    must not clip onto a foreground class (background -100 HU vs cyst 0 HU), so it is included.
    """
    noise = float(spec.noise_std()[channel])
    means = np.array([spec.intensities[v][channel] for v in spec.label_values])
    return {
        "mean": float(means.mean()),
        "median": float(np.median(means)),
        "std": float(np.sqrt(means.var() + noise**2)),
        "min": float(means.min() - 5 * noise),
        "max": float(means.max() + 5 * noise),
        "percentile_99_5": float(means.max() + 2.6 * noise),
        "percentile_00_5": float(means.min() - 2.6 * noise),
    }


def _plans(spec: TestModelSpec) -> dict:
    """A plans.json with one small `3d_fullres` configuration in the exact shape nnunetv2 2.8 reads."""
    median_shape = [2 * p for p in spec.patch_size]
    configuration = {
        "data_identifier": f"{PLANS_NAME}_{CONFIGURATION}",
        "preprocessor_name": "DefaultPreprocessor",
        "batch_size": BATCH_SIZE,
        "patch_size": list(spec.patch_size),
        "median_image_size_in_voxels": median_shape,
        "spacing": list(spec.spacing),
        "normalization_schemes": [_normalization_scheme(spec.channels[str(c)]) for c in range(len(spec.channels))],
        # BraTS plans z-score inside the brain (the non-zero region), as nnU-Net plans skull-stripped data
        "use_mask_for_norm": [spec.scene == "brain"] * len(spec.channels),
        **resampling_entries(),
        "architecture": {
            "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": {
                "n_stages": N_STAGES,
                "features_per_stage": list(FEATURES_PER_STAGE),
                "conv_op": "torch.nn.modules.conv.Conv3d",
                "kernel_sizes": [[3, 3, 3]] * N_STAGES,
                "strides": [[1, 1, 1]] + [[2, 2, 2]] * (N_STAGES - 1),
                "n_conv_per_stage": [CONVS_PER_STAGE] * N_STAGES,
                "n_conv_per_stage_decoder": [CONVS_PER_STAGE] * (N_STAGES - 1),
                "conv_bias": True,
                # No normalisation layer: instance norm makes a patch's features blind to absolute intensity, and
                # these blobs differ only in intensity (a lone kidney blob and a lone tumor blob look alike).
                "norm_op": None,
                "norm_op_kwargs": None,
                "dropout_op": None,
                "dropout_op_kwargs": None,
                "nonlin": "torch.nn.LeakyReLU",
                "nonlin_kwargs": {"inplace": True},
            },
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
        },
        "batch_dice": True,
    }
    return {
        "dataset_name": spec.dataset_name,
        "plans_name": PLANS_NAME,
        "original_median_spacing_after_transp": list(spec.spacing),
        "original_median_shape_after_transp": median_shape,
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {CONFIGURATION: configuration},
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {
            str(c): _intensity_properties(spec, c) for c in range(len(spec.channels))
        },
    }


def _fit(spec: TestModelSpec, plans: dict, dataset_json: dict, *, target: QualityTarget,
         seed: int) -> tuple[torch.nn.Module, dict]:
    """Build the network the way the predictor will and fit it with nnU-Net's Dice+CE loss until it meets `target`.

    Returns the network and what it reached: steps taken and the worst validation Dice of each label (by name).
    """
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    plans_manager = PlansManager(plans)
    configuration_manager = plans_manager.get_configuration(CONFIGURATION)
    network = nnUNetTrainer.build_network_architecture(
        plans_manager, configuration_manager, len(spec.channels), len(spec.label_values),
        enable_deep_supervision=False)
    loss = DC_and_CE_loss({"batch_dice": True, "smooth": 1e-5, "do_bg": False, "ddp": False}, {},
                          weight_ce=1, weight_dice=1, dice_class=MemoryEfficientSoftDiceLoss)
    optimizer = torch.optim.Adam(network.parameters(), lr=LEARNING_RATE)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _learning_rate_factor(step, target))
    judge = _Validator(spec, plans_manager, dataset_json, network, validation_cases(spec, seed,
                                                                                    target.validation_cases))
    worst: dict[int, float] = {}
    for step, (images, targets) in enumerate(_batches(spec, plans, rng, target.max_steps), start=1):
        network.train()
        optimizer.zero_grad(set_to_none=True)
        loss(network(torch.from_numpy(images)), torch.from_numpy(targets)).backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), GRADIENT_CLIP)
        optimizer.step()
        schedule.step()
        if step % target.check_every == 0:
            worst = judge.worst_dice()
            if min(worst.values()) >= target.min_dice:
                return network.eval(), {"steps": step, "min_dice": _by_name(spec, worst)}
    value, reached = min(worst.items(), key=lambda item: item[1])
    raise TestModelQualityError(
        f"test model {spec.dataset_name}: after {target.max_steps} steps label {_name_of(spec, value)!r} "
        f"(value {value}) reaches Dice {reached:.3f} on its worst validation case, below the target "
        f"{target.min_dice}; every label: {_by_name(spec, worst)}")


def _learning_rate_factor(step: int, target: QualityTarget) -> float:
    """Linear warm-up, then nnU-Net's polynomial decay over the step budget."""
    if step < WARMUP_STEPS:
        return (step + 1) / WARMUP_STEPS
    return (1.0 - step / (target.max_steps + 1)) ** 0.9


def _name_of(spec: TestModelSpec, value: int) -> str:
    return next(name for name, v in spec.labels.items() if v == value)


def _by_name(spec: TestModelSpec, scores: dict[int, float]) -> dict[str, float]:
    return {_name_of(spec, value): round(score, 4) for value, score in scores.items()}


class _Validator:
    """nnunetv2's predictor around the network being fitted: the inference path the saved model will take."""

    def __init__(self, spec: TestModelSpec, plans_manager: object, dataset_json: dict, network: torch.nn.Module,
                 cases: list[tuple[np.ndarray, np.ndarray]]) -> None:
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

        self.spec = spec
        self.cases = cases
        self.predictor = nnUNetPredictor(tile_step_size=0.5, use_mirroring=False, perform_everything_on_device=False,
                                         device=torch.device("cpu"), verbose=False, allow_tqdm=False)
        self.predictor.manual_initialization(
            network, plans_manager, plans_manager.get_configuration(CONFIGURATION),  # type: ignore[attr-defined]
            [network.state_dict()], dataset_json, TRAINER_NAME, (0, 1, 2))

    def worst_dice(self) -> dict[int, float]:
        """Per foreground label value: the lowest Dice over the validation cases."""
        values = self.spec.label_values[1:]
        worst = dict.fromkeys(values, 1.0)
        for image, labels in self.cases:
            try:
                prediction = self.predictor.predict_single_npy_array(image, {"spacing": list(self.spec.spacing)})
            except RuntimeError as error:  # logits beyond float16, which nnunetv2 sums tiles in: unusable yet
                if "inf in predicted array" not in str(error):
                    raise
                return dict.fromkeys(values, 0.0)
            scores = dice_per_label(np.asarray(prediction), np.searchsorted(self.spec.label_values, labels),
                                    list(range(1, len(values) + 1)))
            for index, value in enumerate(values, start=1):
                worst[value] = min(worst[value], scores[index])
        return worst


def _batches(spec: TestModelSpec, plans: dict, rng: np.random.Generator,
             steps: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Random, randomly mirrored crops of fresh, normalised synthetic cases a little larger than a patch, with
    label-index targets.

    Small cases put every label into nearly every patch, so each class's Dice term has a target in every batch;
    mirroring (as nnU-Net's own training does) keeps the model indifferent to the axis directions a converter picks.
    """
    patch = np.array(spec.patch_size)
    for _ in range(steps):
        images, targets = [], []
        for _ in range(BATCH_SIZE):
            shape = tuple(int(s) for s in rng.integers(patch, VALIDATION_PATCHES * patch + 1))
            image, labels = synthetic_case(spec, shape, rng)
            start = rng.integers(0, np.array(shape) - patch + 1)
            crop = tuple(slice(int(s), int(s + p)) for s, p in zip(start, patch, strict=True))
            flips = tuple(axis for axis in range(3) if rng.random() < 0.5)
            image = np.flip(_normalize_like_nnunet(image, plans)[(slice(None), *crop)], [a + 1 for a in flips])
            images.append(image)
            targets.append(np.flip(np.searchsorted(spec.label_values, labels[crop]), flips)[None])
        yield np.ascontiguousarray(np.stack(images)), np.ascontiguousarray(np.stack(targets).astype(np.float32))


def _normalize_like_nnunet(image: np.ndarray, plans: dict) -> np.ndarray:
    """Normalise image[c, z, y, x] with the classes and plans nnU-Net's DefaultPreprocessor uses at inference."""
    from nnunetv2.preprocessing.cropping.cropping import create_nonzero_mask
    from nnunetv2.preprocessing.normalization import default_normalization_schemes as schemes

    configuration = plans["configurations"][CONFIGURATION]
    properties = plans["foreground_intensity_properties_per_channel"]
    outside = np.where(create_nonzero_mask(image), 0, -1).astype(np.int8)  # nnU-Net's crop_to_nonzero marking
    out = np.empty_like(image, dtype=np.float32)
    for c in range(image.shape[0]):
        normalizer = getattr(schemes, configuration["normalization_schemes"][c])(
            use_mask_for_norm=configuration["use_mask_for_norm"][c], intensityproperties=properties[str(c)])
        out[c] = normalizer.run(image[c].copy(), outside)
    return out


def _save_checkpoint(path: Path, network: torch.nn.Module, plans: dict, dataset_json: dict, fold: int) -> None:
    """Save the keys nnUNetPredictor reads, in the shape nnUNetTrainer.save_checkpoint writes them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = {
        "network_weights": network.state_dict(),
        "init_args": {"plans": plans, "configuration": CONFIGURATION, "fold": fold, "dataset_json": dataset_json,
                      "device": torch.device("cpu")},
        "trainer_name": TRAINER_NAME,
        "inference_allowed_mirroring_axes": (0, 1, 2),
    }
    torch.save(checkpoint, path)
