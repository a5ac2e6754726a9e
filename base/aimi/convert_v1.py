"""nnU-Net v1 model folders -> nnU-Net v2 model folders, so the v1 AIMI models run on the one nnunetv2 runtime.

nnU-Net v1 breaks with torch >= 2.6 and its inference is GPU-minded; the kidney (Task779) and prostate (Task788)
weights are v1. This module rewrites such a model folder into one that nnunetv2's `nnUNetPredictor` loads, with the
same preprocessing (target spacing, axis transposition, CT clipping / z-scoring with v1's intensity statistics, in
v1's order: resample, then normalise - see aimi.v1_preprocessing) and the same network (v1 `Generic_UNet` as built
by `nnUNetTrainerV2` -> v2 `PlainConvUNet`, weights mapped one to one).

Reads: a v1 model folder `<trainer>__<plans>/` with `plans.pkl` and `fold_<k>/model_final_checkpoint.model`.
Writes: `dataset.json`, `plans.json`, `fold_<k>/checkpoint_final.pth` (every fold) and, when the source has one,
its `.aimi-weights.json` provenance, into DST - built beside DST and renamed into place, so DST is never half there.

v1 folders are pickles throughout (plans.pkl, the checkpoint's training curves): load them only from a trusted,
sha256-verified archive, as `aimi weights fetch` does.

One topology difference needs more than PlainConvUNet: v1 decoder stage u convolves with the kernel of the stage
below it (`conv_kernel_sizes[-(u + 1)]`), v2 with the kernel of its skip stage. They agree for isotropic kernels;
where they do not (anisotropic MR, e.g. prostate), the v2 plans name `V1DecoderPlainConvUNet`, a PlainConvUNet whose
decoder convolutions take v1's kernels.
"""

from __future__ import annotations

import json
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from dynamic_network_architectures.building_blocks.simple_conv_blocks import StackedConvBlocks

import aimi
from aimi.atomic import replace_folder
from aimi.nnunet_plans import resampling_entries
from aimi.v1_preprocessing import PLANS_KEY, V1_ORDER

V1_CHECKPOINT = "model_final_checkpoint.model"
V2_CHECKPOINT = "checkpoint_final.pth"
CONFIGURATION = "3d_fullres"
#: The v2 trainer the predictor instantiates; plain nnUNetTrainer needs no trainer-variant lookup.
V2_TRAINER = "nnUNetTrainer"
PLANS_NAME = "nnUNetPlans"
PROVENANCE_FILE = ".aimi-weights.json"  # aimi.weights.PROVENANCE_FILE (not imported: weights imports this module)
#: nnUNetTrainerV2's fixed choices (initialize_network): instance norm, no dropout, leaky ReLU 1e-2, conv bias.
NORM_KWARGS = {"eps": 1e-5, "affine": True}
NONLIN_KWARGS = {"inplace": True, "negative_slope": 1e-2}
#: v1 normalisation scheme -> v2 normalisation class. v1 "CT2" (per-case statistics) has no v2 class.
NORMALIZATION = {"CT": "CTNormalization", "nonCT": "ZScoreNormalization", "noNorm": "NoNormalization"}
#: v1 `dataset_properties['intensityproperties'][c]` key -> v2 `foreground_intensity_properties_per_channel` key.
INTENSITY_KEYS = {"mean": "mean", "median": "median", "sd": "std", "mn": "min", "mx": "max",
                  "percentile_99_5": "percentile_99_5", "percentile_00_5": "percentile_00_5"}
PLAIN_UNET = "dynamic_network_architectures.architectures.unet.PlainConvUNet"
V1_DECODER_UNET = "aimi.convert_v1.V1DecoderPlainConvUNet"


class ConversionError(ValueError):
    """A v1 model folder cannot be converted faithfully; the message names the file and what is unsupported."""


class V1DecoderPlainConvUNet(PlainConvUNet):
    """PlainConvUNet whose decoder stage s convolves with `decoder_kernel_sizes[s]`, as v1's Generic_UNet did."""

    def __init__(self, *args: Any, decoder_kernel_sizes: list[list[int]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        encoder = self.encoder
        for s, kernel in enumerate(decoder_kernel_sizes):
            old = self.decoder.stages[s]
            self.decoder.stages[s] = StackedConvBlocks(
                len(old.convs), encoder.conv_op, old.convs[0].input_channels, old.output_channels, kernel, 1,
                encoder.conv_bias, encoder.norm_op, encoder.norm_op_kwargs, encoder.dropout_op,
                encoder.dropout_op_kwargs, encoder.nonlin, encoder.nonlin_kwargs, False)


def convert_v1(src: Path, dst: Path, *, replace: bool = False) -> Path:
    """Write the nnU-Net v2 model folder of the v1 model folder `src` to `dst` (every fold) and return `dst`.

    Raises ConversionError for folders that are not v1 3d model folders or use what v2 cannot express, and
    FileExistsError when `dst` exists and `replace` is false.
    """
    src, dst = Path(src), Path(dst)
    plans = read_v1_plans(src)
    folds = v1_folds(src)
    if dst.exists() and not replace:
        raise FileExistsError(f"{dst} already exists; remove it or convert to another folder")
    dataset_json = v2_dataset_json(plans, _dataset_name(src))
    v2_plans = v2_plans_from_v1(plans, dataset_json["name"])
    dst.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".converting", dir=dst.parent))
    try:
        (staging / "dataset.json").write_text(json.dumps(dataset_json, indent=2) + "\n", encoding="utf-8")
        (staging / "plans.json").write_text(json.dumps(v2_plans, indent=2) + "\n", encoding="utf-8")
        for fold, checkpoint in folds.items():
            _convert_fold(checkpoint, staging / f"fold_{fold}" / V2_CHECKPOINT, v2_plans, dataset_json, fold)
        if (src / PROVENANCE_FILE).is_file():
            _copy_provenance(src / PROVENANCE_FILE, staging / PROVENANCE_FILE)
        replace_folder(staging, dst)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dst


def _copy_provenance(src: Path, dst: Path) -> None:
    """The v1 archive's provenance, plus who converted it: a SEG from converted weights says so."""
    facts = json.loads(src.read_text(encoding="utf-8"))
    facts["converter"] = f"nnU-Net v1 to v2 by aimi {aimi.__version__}"
    dst.write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")


def is_current_conversion(dst: Path) -> bool:
    """Whether `dst` was written by this converter: folders converted before v1-order preprocessing lack its key."""
    try:
        plans = json.loads((Path(dst) / "plans.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return plans.get("configurations", {}).get("3d_fullres", {}).get(PLANS_KEY) == V1_ORDER


def read_v1_plans(src: Path) -> dict[str, Any]:
    """`src/plans.pkl`, checked to be a v1 plans file with a 3d stage."""
    path = Path(src) / "plans.pkl"
    if not path.is_file():
        raise ConversionError(f"{src} is not an nnU-Net v1 model folder: it has no plans.pkl")
    try:
        with path.open("rb") as f:
            plans = pickle.load(f)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as err:
        raise ConversionError(f"{path}: not a readable nnU-Net v1 plans pickle ({err!r})") from err
    if not isinstance(plans, dict) or "plans_per_stage" not in plans:
        raise ConversionError(f"{path}: not an nnU-Net v1 plans file (no plans_per_stage)")
    if len(_stage(plans)["patch_size"]) != 3:
        raise ConversionError(f"{path}: only 3d configurations are converted; its last stage is 2d")
    return plans


def v1_folds(src: Path) -> dict[int | str, Path]:
    """The final checkpoint of every `fold_<k>` in `src`, by fold, or of v1's `fold_all` (one model trained on every
    case) where a release ships only that."""
    found = {p.parent.name.removeprefix("fold_"): p for p in Path(src).glob(f"fold_*/{V1_CHECKPOINT}")}
    numbered = {int(fold): path for fold, path in found.items() if fold.isdigit()}
    if numbered:
        return dict(sorted(numbered.items()))
    if "all" in found:
        return {"all": found["all"]}
    present = sorted(str(p.relative_to(src)) for p in Path(src).glob("fold_*/*.model")) or ["none"]
    raise ConversionError(f"{src} has no fold_<k>/{V1_CHECKPOINT} nor fold_all/{V1_CHECKPOINT} "
                          f"(checkpoints found: {', '.join(present)})")


def _stage(plans: dict[str, Any]) -> dict[str, Any]:
    """The 3d_fullres stage: the last one (v1's default_configuration picks it for 3d_fullres)."""
    return plans["plans_per_stage"][max(plans["plans_per_stage"])]


def _dataset_name(src: Path) -> str:
    """The v1 task folder's name (`Task779_Kidneys_KIRC`) when `src` still sits in it, else the folder's own."""
    task = src.resolve().parent.name
    return task if task.startswith("Task") else src.resolve().name


def v2_dataset_json(plans: dict[str, Any], name: str) -> dict[str, Any]:
    """Channels from v1 `modalities`, labels 0..num_classes (v1 has no label names: `label_<k>`)."""
    modalities = plans["modalities"]
    labels = {"background": 0} | {f"label_{k}": k for k in range(1, int(plans["num_classes"]) + 1)}
    return {
        "name": name,
        "channel_names": {str(c): str(modalities[c]) for c in sorted(modalities)},
        "labels": labels,
        "numTraining": len(plans.get("list_of_npz_files", [])),
        "file_ending": ".nii.gz",
        "converted_from": "nnU-Net v1 model folder (aimi.convert_v1)",
    }


def v2_plans_from_v1(plans: dict[str, Any], dataset_name: str) -> dict[str, Any]:
    """The v2 plans.json of a v1 plans.pkl: one `3d_fullres` configuration that preprocesses and builds like v1."""
    stage = _stage(plans)
    channels = int(plans["num_modalities"])
    spacing = [float(s) for s in stage["current_spacing"]]  # v1 stores it in transposed order, as v2 does
    configuration = {
        "data_identifier": f"{PLANS_NAME}_{CONFIGURATION}",
        "preprocessor_name": "DefaultPreprocessor",
        PLANS_KEY: V1_ORDER,  # v1 resamples, then normalises (aimi.v1_preprocessing; the runner applies it)
        "batch_size": int(stage["batch_size"]),
        "patch_size": [int(p) for p in stage["patch_size"]],
        "median_image_size_in_voxels": [int(s) for s in stage["median_patient_size_in_voxels"]],
        "spacing": spacing,
        "normalization_schemes": [_normalization(plans["normalization_schemes"][c]) for c in range(channels)],
        "use_mask_for_norm": [bool(plans["use_mask_for_norm"][c]) for c in range(channels)],
        # v1 GenericPreprocessor / inference resample as nnU-Net v2's default does (same orders, same threshold)
        **resampling_entries(),
        "architecture": v2_architecture(plans),
        "batch_dice": True,
    }
    return {
        "dataset_name": dataset_name,
        "plans_name": PLANS_NAME,
        "original_median_spacing_after_transp": spacing,
        "original_median_shape_after_transp": configuration["median_image_size_in_voxels"],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [int(a) for a in plans["transpose_forward"]],
        "transpose_backward": [int(a) for a in plans["transpose_backward"]],
        "configurations": {CONFIGURATION: configuration},
        "experiment_planner_used": "converted from nnU-Net v1 plans.pkl (aimi.convert_v1)",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": _intensity_properties(plans, channels),
    }


def _normalization(scheme: str) -> str:
    if scheme not in NORMALIZATION:
        raise ConversionError(f"v1 normalisation scheme {scheme!r} has no nnU-Net v2 equivalent; "
                              f"supported: {', '.join(NORMALIZATION)}")
    return NORMALIZATION[scheme]


def _intensity_properties(plans: dict[str, Any], channels: int) -> dict[str, dict[str, float]]:
    """v1 foreground intensity statistics per channel; {} where v1 has none (MR plans: z-score needs none)."""
    properties = plans["dataset_properties"].get("intensityproperties") or {}
    return {str(c): {v2: float(properties[c][v1]) for v1, v2 in INTENSITY_KEYS.items()} if c in properties else {}
            for c in range(channels)}


def _features_per_stage(plans: dict[str, Any], n_stages: int) -> list[int]:
    """Generic_UNet: base features doubled per stage (rounded), capped at 320 for 3d."""
    features, out = int(plans["base_num_features"]), []
    for _ in range(n_stages):
        out.append(features)
        features = min(int(np.round(features * 2)), 320)
    return out


def v1_decoder_kernel_sizes(plans: dict[str, Any]) -> list[list[int]]:
    """Kernel of v1 decoder stage u: `conv_kernel_sizes[-(u + 1)]`, the kernel of the stage below its skip."""
    kernels = [[int(k) for k in kernel] for kernel in _stage(plans)["conv_kernel_sizes"]]
    return [kernels[-(u + 1)] for u in range(len(kernels) - 1)]


def v2_architecture(plans: dict[str, Any]) -> dict[str, Any]:
    """The `architecture` of the v2 plans: nnUNetTrainerV2.initialize_network's Generic_UNet as a PlainConvUNet."""
    stage = _stage(plans)
    kernels = [[int(k) for k in kernel] for kernel in stage["conv_kernel_sizes"]]
    n_stages = len(kernels)
    convs = int(plans.get("conv_per_stage", 2))
    arch_kwargs: dict[str, Any] = {
        "n_stages": n_stages,
        "features_per_stage": _features_per_stage(plans, n_stages),
        "conv_op": "torch.nn.modules.conv.Conv3d",
        "kernel_sizes": kernels,
        "strides": [[1, 1, 1]] + [[int(p) for p in pool] for pool in stage["pool_op_kernel_sizes"]],
        "n_conv_per_stage": [convs] * n_stages,
        "n_conv_per_stage_decoder": [convs] * (n_stages - 1),
        "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
        "norm_op_kwargs": dict(NORM_KWARGS),
        "dropout_op": None,
        "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": dict(NONLIN_KWARGS),
    }
    decoder_kernels = v1_decoder_kernel_sizes(plans)
    v2_decoder_kernels = [kernels[-(s + 2)] for s in range(n_stages - 1)]  # UNetDecoder's choice
    if decoder_kernels != v2_decoder_kernels:
        arch_kwargs["decoder_kernel_sizes"] = decoder_kernels
    return {
        "network_class_name": PLAIN_UNET if decoder_kernels == v2_decoder_kernels else V1_DECODER_UNET,
        "arch_kwargs": arch_kwargs,
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }


def v1_names_of_v2_parameters(n_stages: int, convs: int) -> dict[str, str | None]:
    """v2 PlainConvUNet parameter name -> v1 Generic_UNet state-dict name (None: a v2 bias v1 lacks, set to 0).

    v1 (nnUNetTrainerV2: convolutional pooling and upsampling): `conv_blocks_context[s].blocks[j]`, where the
    bottleneck and every `conv_blocks_localization[u]` are two StackedConvLayers (convs-1 blocks, then one);
    `tu[u]` transposed convs and `seg_outputs[u]` 1x1 convs, both without bias. seg_outputs[:-1] are the
    deep-supervision heads: v2 always builds them too (seg_layers[:-1]) and, like v1, ignores them at inference.
    """
    names: dict[str, str | None] = {}

    def blocks(v1_prefix: str, v2_prefix: str, split: bool) -> None:
        for j in range(convs):
            block = f"{v1_prefix}.blocks.{j}"
            if split:
                block = f"{v1_prefix}.0.blocks.{j}" if j < convs - 1 else f"{v1_prefix}.1.blocks.0"
            for v1_layer, v2_layer in (("conv", "conv"), ("instnorm", "norm")):
                for tensor in ("weight", "bias"):
                    names[f"{v2_prefix}.convs.{j}.{v2_layer}.{tensor}"] = f"{block}.{v1_layer}.{tensor}"

    for s in range(n_stages):
        blocks(f"conv_blocks_context.{s}", f"encoder.stages.{s}.0", split=s == n_stages - 1)
    for u in range(n_stages - 1):
        blocks(f"conv_blocks_localization.{u}", f"decoder.stages.{u}", split=True)
        names |= {f"decoder.transpconvs.{u}.weight": f"tu.{u}.weight", f"decoder.transpconvs.{u}.bias": None,
                  f"decoder.seg_layers.{u}.weight": f"seg_outputs.{u}.weight", f"decoder.seg_layers.{u}.bias": None}
    return names


def load_v1_weights(network: torch.nn.Module, v1_state: dict[str, torch.Tensor], n_stages: int, convs: int) -> None:
    """Copy v1 weights into a freshly built v2 network; every v2 parameter and every v1 tensor must be used."""
    names = v1_names_of_v2_parameters(n_stages, convs)
    parameters = dict(network.named_parameters())  # a shared module once, under its conv/norm name
    if set(parameters) != set(names):
        raise ConversionError(f"v2 network and mapping disagree: only in v2 {sorted(set(parameters) - set(names))}, "
                              f"only in the mapping {sorted(set(names) - set(parameters))}")
    missing = sorted({n for n in names.values() if n is not None} - set(v1_state))
    unused = sorted(set(v1_state) - set(names.values()))
    if missing or unused:
        raise ConversionError(f"v1 state dict does not fit the plans: missing {missing}, not converted {unused}")
    with torch.no_grad():
        for name, parameter in parameters.items():
            v1_name = names[name]
            tensor = torch.zeros_like(parameter) if v1_name is None else v1_state[v1_name]
            if tensor.shape != parameter.shape:
                raise ConversionError(f"{v1_name} -> {name}: v1 shape {tuple(tensor.shape)} != v2 shape "
                                      f"{tuple(parameter.shape)}")
            parameter.copy_(tensor)


def _convert_fold(checkpoint: Path, out: Path, plans: dict[str, Any], dataset_json: dict[str, Any],
                  fold: int | str) -> None:
    """One fold: v1 weights into the network nnunetv2 builds from the converted plans, saved as the predictor reads."""
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)  # v1 checkpoints pickle numpy scalars
    architecture = plans["configurations"][CONFIGURATION]["architecture"]
    arch_kwargs = architecture["arch_kwargs"]
    network = get_network_from_plans(architecture["network_class_name"], arch_kwargs,
                                     architecture["_kw_requires_import"], len(dataset_json["channel_names"]),
                                     len(dataset_json["labels"]), allow_init=False, deep_supervision=False)
    try:
        load_v1_weights(network, saved["state_dict"], arch_kwargs["n_stages"], arch_kwargs["n_conv_per_stage"][0])
    except ConversionError as err:
        raise ConversionError(f"{checkpoint}: {err}") from err
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({
        "network_weights": network.state_dict(),
        "init_args": {"plans": plans, "configuration": CONFIGURATION, "fold": fold, "dataset_json": dataset_json},
        "trainer_name": V2_TRAINER,
        "inference_allowed_mirroring_axes": (0, 1, 2),  # v1 nnUNetTrainerV2 3d mirror_axes
        "current_epoch": int(saved.get("epoch", 0)),
    }, out)
