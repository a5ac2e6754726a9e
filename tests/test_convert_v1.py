"""nnU-Net v1 -> v2 conversion, proved against nnunet 1.7.1 itself.

The v1 side runs in its own venv (tests/support/v1_env.sh) with nnunet 1.7.1's planner, nnUNetTrainerV2,
Generic_UNet and GenericPreprocessor (tests/support/v1_reference.py): a kidney-like CT task (3 labels, isotropic
kernels) and a prostate-like MR task (1 label, anisotropic [1, 3, 3] kernels, separate-z resampling), two folds each.
This side converts those v1 model folders and loads them with nnunetv2's nnUNetPredictor.
"""

from __future__ import annotations

import json
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from aimi.convert_v1 import ConversionError, convert_v1
from aimi.manifest import load_manifest
from aimi.weights import PROVENANCE_FILE, fetch, model_folder, write_provenance

REPO = Path(__file__).resolve().parents[1]
SUPPORT = REPO / "tests" / "support"
CT, MR = "Task901_KidneyLike", "Task902_ProstateLike"
V1_MODEL = "nnUNet/3d_fullres/{task}/nnUNetTrainerV2__nnUNetPlansv2.1"
FOLDS = (0, 1)
#: Voxels farther than this from clipped air keep v1's values after resampling: the cubic spline's ringing at the
#: -1000 HU edge, clipped after (v1) or before (v2) resampling, decays by ~0.27 a voxel. Measured max |diff|:
#: 2.5 within 4 voxels, 0.023 at 4-8, 4e-5 at 8-12, 2.4e-7 beyond 12 (normalised units).
EDGE_VOXELS = 8


@pytest.fixture(scope="session")
def v1_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """v1 model folders and v1 outputs made by nnunet 1.7.1 (the venv is created on first use, minutes)."""
    setup = subprocess.run(["bash", str(SUPPORT / "v1_env.sh")], capture_output=True, text=True, timeout=1800)
    if setup.returncode:
        pytest.fail(f"cannot create the nnunet 1.7.1 venv with tests/support/v1_env.sh:\n{setup.stderr[-3000:]}")
    out = tmp_path_factory.mktemp("v1-reference")
    run = subprocess.run([setup.stdout.strip(), str(SUPPORT / "v1_reference.py"), str(out)], capture_output=True,
                         text=True, timeout=1200)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    return out


def v1_model(reference: Path, task: str) -> Path:
    return reference / task / V1_MODEL.format(task=task)


@pytest.fixture(scope="session")
def converted(v1_reference: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("converted")
    return {task: convert_v1(v1_model(v1_reference, task), out / task) for task in (CT, MR)}


@pytest.fixture(scope="session")
def predictors(converted: dict[str, Path]) -> dict:
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    loaded = {}
    for task, folder in converted.items():
        predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                                    perform_everything_on_device=False, device=torch.device("cpu"))
        predictor.initialize_from_trained_model_folder(str(folder), use_folds=FOLDS)
        loaded[task] = predictor
    return loaded


def v1_plans(reference: Path, task: str) -> dict:
    with (v1_model(reference, task) / "plans.pkl").open("rb") as f:
        return pickle.load(f)


def logits(predictor, fold: int, x: torch.Tensor) -> np.ndarray:
    """The converted network of `fold`, as the predictor built and loaded it, on `x`."""
    predictor.network.load_state_dict(predictor.list_of_parameters[fold])
    predictor.network.eval()
    with torch.no_grad():
        return predictor.network(x).numpy()


def test_converted_folder_has_every_fold_and_v1_plans(v1_reference, converted):
    for task, folder in converted.items():
        plans, v2 = v1_plans(v1_reference, task), json.loads((folder / "plans.json").read_text())
        stage = plans["plans_per_stage"][max(plans["plans_per_stage"])]
        config = v2["configurations"]["3d_fullres"]
        assert sorted(p.parent.name for p in folder.glob("fold_*/checkpoint_final.pth")) == ["fold_0", "fold_1"]
        assert config["spacing"] == pytest.approx(list(stage["current_spacing"]))
        assert config["patch_size"] == list(stage["patch_size"])
        assert v2["transpose_forward"] == list(plans["transpose_forward"])
        assert v2["transpose_backward"] == list(plans["transpose_backward"])
        labels = json.loads((folder / "dataset.json").read_text())["labels"]
        assert sorted(labels.values()) == list(range(plans["num_classes"] + 1))
    ct = json.loads((converted[CT] / "plans.json").read_text())
    assert ct["configurations"]["3d_fullres"]["normalization_schemes"] == ["CTNormalization"]
    v1_intensity = v1_plans(v1_reference, CT)["dataset_properties"]["intensityproperties"][0]
    assert ct["foreground_intensity_properties_per_channel"]["0"]["std"] == v1_intensity["sd"]
    assert ct["foreground_intensity_properties_per_channel"]["0"]["percentile_00_5"] == v1_intensity["percentile_00_5"]
    mr = json.loads((converted[MR] / "plans.json").read_text())
    assert mr["configurations"]["3d_fullres"]["normalization_schemes"] == ["ZScoreNormalization"]


def test_anisotropic_v1_decoder_kernels_need_the_v1_decoder_unet(predictors):
    assert type(predictors[CT].network).__name__ == "PlainConvUNet"
    mr = predictors[MR].network
    assert type(mr).__name__ == "V1DecoderPlainConvUNet"
    assert [list(stage.convs[0].conv.kernel_size) for stage in mr.decoder.stages] == \
        [[3, 3, 3], [3, 3, 3], [3, 3, 3], [1, 3, 3]]  # v1: conv_kernel_sizes[-(u + 1)]; v2 would use [1, 3, 3] at 2


@pytest.mark.parametrize("task", [CT, MR])
@pytest.mark.parametrize("fold", FOLDS)
def test_converted_forward_equals_v1_generic_unet(v1_reference, predictors, task, fold):
    x = torch.from_numpy(np.load(v1_reference / task / "forward_input.npy"))
    expected = np.load(v1_reference / task / f"forward_fold{fold}.npy")

    got = logits(predictors[task], fold, x)

    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-4  # measured: 0.0 (bit-identical) for both tasks and folds


def preprocess_v2(predictor, volume: Path) -> np.ndarray:
    """nnunetv2's own preprocessing of a NIfTI file with the converted plans (the predictor's path)."""
    preprocessor = predictor.configuration_manager.preprocessor_class(verbose=False)
    data, _, _ = preprocessor.run_case([str(volume)], None, predictor.plans_manager,
                                       predictor.configuration_manager, predictor.dataset_json)
    return data


@pytest.mark.parametrize("task", [CT, MR])
def test_v2_preprocessing_equals_v1_at_the_target_spacing(v1_reference, predictors, task):
    expected = np.load(v1_reference / task / "preprocessed_target.npy")

    got = preprocess_v2(predictors[task], v1_reference / task / "volume_target.nii.gz")

    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-5  # CT clipping and z-scoring; measured 0.0


@pytest.mark.parametrize("task", [CT, MR])
def test_v2_preprocessing_resamples_to_v1_shape_and_spacing(v1_reference, predictors, task):
    """Same target spacing and shape (MR: separate z). Values differ only by where normalisation happens:
    v1 resamples, then normalises; nnunetv2 normalises, then resamples. For z-score that is a change of the
    mean/std (computed before vs after resampling): a small uniform shift; for CT clipping, voxels near air."""
    expected = np.load(v1_reference / task / "preprocessed_other.npy")
    meta = json.loads((v1_reference / task / "preprocessed_other.json").read_text())
    predictor = predictors[task]

    got = preprocess_v2(predictor, v1_reference / task / "volume_other.nii.gz")

    assert list(got.shape[1:]) == meta["size_after_resampling"]
    assert predictor.configuration_manager.spacing == pytest.approx(meta["spacing_after_resampling"])
    diff = np.abs(got - expected)[0]
    if task == MR:
        assert diff.max() <= 0.05  # measured 0.021
    else:
        intensity = predictor.plans_manager.foreground_intensity_properties_per_channel["0"]
        clipped = got[0] <= (intensity["percentile_00_5"] - intensity["mean"]) / intensity["std"] + 1e-3
        interior = ndimage.distance_transform_edt(~clipped) > EDGE_VOXELS
        assert interior.mean() > 0.1
        assert diff[interior].max() <= 1e-4


@pytest.mark.parametrize("task", [CT, MR])
def test_v2_sliding_window_agrees_with_v1_over_several_tiles(v1_reference, predictors, task):
    """Over overlapping tiles v1 averages softmax, nnunetv2 logits: near-identical labels, not identical numbers."""
    predictor = predictors[task]
    data = np.load(v1_reference / task / "preprocessed_target.npy")
    expected = np.load(v1_reference / task / "softmax_tiles_fold0.npy")
    predictor.network.load_state_dict(predictor.list_of_parameters[0])

    got = predictor.predict_sliding_window_return_logits(torch.from_numpy(data)).float().numpy()

    assert (got.argmax(0) == expected.argmax(0)).mean() >= 0.97  # measured 0.982 (CT), 0.993 (MR), random weights


def test_converted_mr_model_predicts_prostate_like_labels(predictors):
    rng = np.random.default_rng(0)
    volume = (300 + 50 * rng.standard_normal((1, 24, 72, 72))).astype(np.float32)
    volume[:, 8:16, 24:48, 24:48] += 400

    labels = predictors[MR].predict_single_npy_array(volume, {"spacing": (3.0, 0.7, 0.7)})

    assert labels.shape == volume.shape[1:]
    assert set(np.unique(labels)) <= {0, 1}


def test_convert_copies_provenance_and_refuses_an_existing_destination(v1_reference, tmp_path):
    src = tmp_path / "v1"
    src.mkdir()
    (src / "plans.pkl").write_bytes((v1_model(v1_reference, CT) / "plans.pkl").read_bytes())
    (src / "fold_3").mkdir()
    (src / "fold_3" / "model_final_checkpoint.model").write_bytes(
        (v1_model(v1_reference, CT) / "fold_0" / "model_final_checkpoint.model").read_bytes())
    write_provenance(src, url="https://example.org/Task.zip", file="Task.zip", sha256="ab" * 32)

    dst = convert_v1(src, tmp_path / "v2")

    assert json.loads((dst / PROVENANCE_FILE).read_text())["sha256"] == "ab" * 32
    assert (dst / "fold_3" / "checkpoint_final.pth").is_file()
    with pytest.raises(FileExistsError):
        convert_v1(src, dst)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_convert_names_what_it_cannot_convert(v1_reference, tmp_path):
    with pytest.raises(ConversionError, match=r"no plans\.pkl"):
        convert_v1(tmp_path, tmp_path / "out")
    plans = v1_plans(v1_reference, CT)
    plans["normalization_schemes"] = {0: "CT2"}
    (tmp_path / "plans.pkl").write_bytes(pickle.dumps(plans))
    (tmp_path / "fold_0").mkdir()
    (tmp_path / "fold_0" / "model_final_checkpoint.model").write_bytes(b"")
    with pytest.raises(ConversionError, match="'CT2' has no nnU-Net v2 equivalent"):
        convert_v1(tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_fetch_converts_v1_weights_once(v1_reference, tmp_path, monkeypatch):
    """fetch's v1 path: the verified v1 folder is converted after download, and not again on the next fetch."""
    import aimi.convert_v1

    manifest = load_manifest(REPO / "models" / "bamf_nnunet_ct_kidney" / "manifest.toml")
    entry = manifest.weights[0]
    weights = tmp_path / "weights"
    v1 = weights / manifest.name / f"{entry.id}.v1"
    v1.parent.mkdir(parents=True)
    subprocess.run(["cp", "-r", str(v1_model(v1_reference, CT)), str(v1)], check=True)
    write_provenance(v1, url=entry.url, file=entry.file, sha256="cd" * 32)
    calls = []
    real = aimi.convert_v1.convert_v1
    monkeypatch.setattr(aimi.convert_v1, "convert_v1", lambda *a, **k: calls.append(a) or real(*a, **k))

    assert fetch(manifest, weights, progress=False) == [model_folder(weights, manifest, entry)]
    assert fetch(manifest, weights, progress=False) == [model_folder(weights, manifest, entry)]

    assert len(calls) == 1
    record = json.loads((model_folder(weights, manifest, entry) / PROVENANCE_FILE).read_text())
    assert (record["file"], record["sha256"]) == (entry.file, "cd" * 32)


@pytest.mark.slow
@pytest.mark.parametrize(("model", "weights_id", "task", "series"), [
    ("bamf_nnunet_ct_kidney", "kidney", CT, {}),
    ("bamf_nnunet_mr_prostate", "prostate", MR,
     {"modality": "MR", "mr_sequence": "T2", "series_description": "t2_tse_tra", "paired": False}),
])
def test_chain_runs_on_a_converted_v1_model(converted, tmp_path, model, weights_id, task, series):
    from aimi.cli import main
    from aimi.models import load_model
    from aimi.phantoms import write_phantom_series
    from aimi.testmodel_cli import spec_for
    from tests.support.validators import dciodvfy_errors

    weights = tmp_path / "weights" / model
    weights.mkdir(parents=True)
    subprocess.run(["cp", "-r", str(converted[task]), str(weights / weights_id)], check=True)
    intensities = spec_for(load_model(model), weights_id).intensities
    write_phantom_series(tmp_path / "in", intensities, seed=0, **series)

    status = main(["run", model, "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
                   "--weights", str(tmp_path / "weights"), "--no-tta"])

    assert status == 0
    [seg] = list((tmp_path / "out").rglob("*.seg.dcm"))
    assert dciodvfy_errors(seg) == []
