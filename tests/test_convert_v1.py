"""nnU-Net v1 -> v2 conversion, proved against nnunet 1.7.1 itself.

The v1 side runs in its own venv (tests/support/v1_env.sh) with nnunet 1.7.1's planner, nnUNetTrainerV2,
Generic_UNet and GenericPreprocessor (tests/support/v1_reference.py): a kidney-like CT task (3 labels, isotropic
kernels) and a prostate-like MR task (1 label, anisotropic [1, 3, 3] kernels, z-score within the nonzero mask), two
folds each. This side converts those v1 model folders and loads them with nnunetv2's nnUNetPredictor, given the
plans' v1-order preprocessor as NNUnetRunner does.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from aimi.convert_v1 import ConversionError, convert_v1
from aimi.manifest import load_manifest
from aimi.v1_preprocessing import PLANS_KEY, V1OrderPreprocessor, use_plans_preprocessor
from aimi.weights import PROVENANCE_FILE, fetch, model_folder, write_provenance

REPO = Path(__file__).resolve().parents[1]
SUPPORT = REPO / "tests" / "support"
CT, MR = "Task901_KidneyLike", "Task902_ProstateLike"
V1_MODEL = "nnUNet/3d_fullres/{task}/nnUNetTrainerV2__nnUNetPlansv2.1"
FOLDS = (0, 1)
#: Volumes v1_reference.py made at spacings other than the target; "aniso" and the MR one take v1's separate-z path.
RESAMPLED = [(CT, "other"), (CT, "aniso"), (MR, "other")]


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
        assert use_plans_preprocessor(predictor)
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


def preprocess_v2(predictor, volume: Path, preprocessor_class=None) -> np.ndarray:
    """nnunetv2's preprocessing of a NIfTI file with the converted plans (the predictor's path; its preprocessor is
    V1OrderPreprocessor unless another class is given)."""
    preprocessor = (preprocessor_class or predictor.configuration_manager.preprocessor_class)(verbose=False)
    data, _, _ = preprocessor.run_case([str(volume)], None, predictor.plans_manager,
                                       predictor.configuration_manager, predictor.dataset_json)
    return data


@pytest.mark.parametrize("task", [CT, MR])
def test_v2_preprocessing_equals_v1_at_the_target_spacing(v1_reference, predictors, task):
    expected = np.load(v1_reference / task / "preprocessed_target.npy")

    got = preprocess_v2(predictors[task], v1_reference / task / "volume_target.nii.gz")

    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-5  # CT clipping and z-scoring; measured 0.0


@pytest.mark.parametrize(("task", "name"), RESAMPLED)
def test_v1_order_preprocessing_equals_v1_with_resampling(v1_reference, predictors, task, name):
    """v1 resamples, then normalises (MR: z-score within the resampled nonzero mask, zeros outside); so does
    V1OrderPreprocessor. nnunetv2's own order (normalise, then resample) is shown to differ, so the check can fail."""
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor

    expected = np.load(v1_reference / task / f"preprocessed_{name}.npy")
    meta = json.loads((v1_reference / task / f"preprocessed_{name}.json").read_text())
    predictor, volume = predictors[task], v1_reference / task / f"volume_{name}.nii.gz"
    assert predictor.configuration_manager.preprocessor_class is V1OrderPreprocessor

    got = preprocess_v2(predictor, volume)

    assert list(got.shape[1:]) == meta["size_after_resampling"]
    assert predictor.configuration_manager.spacing == pytest.approx(meta["spacing_after_resampling"])
    assert np.abs(got - expected).max() <= 1e-4  # measured 0.0 (bit-identical) for all three volumes
    native = preprocess_v2(predictor, volume, DefaultPreprocessor)
    assert np.abs(native - expected).max() > 0.5  # measured 2.48 (CT other), 1.98 (CT aniso), 4.26 (MR)


def test_plans_without_the_key_keep_nnunetv2_preprocessing(converted, tmp_path):
    """Native v2 model folders are untouched; a plans entry naming a non-preprocessor is refused by name."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor

    folder = tmp_path / "native"
    subprocess.run(["cp", "-r", str(converted[CT]), str(folder)], check=True)
    plans = json.loads((folder / "plans.json").read_text())
    del plans["configurations"]["3d_fullres"][PLANS_KEY]
    (folder / "plans.json").write_text(json.dumps(plans))
    predictor = nnUNetPredictor(device=torch.device("cpu"), perform_everything_on_device=False)
    predictor.initialize_from_trained_model_folder(str(folder), use_folds=(0,))
    manager = predictor.configuration_manager

    assert use_plans_preprocessor(predictor) is False
    assert predictor.configuration_manager is manager
    assert manager.preprocessor_class is DefaultPreprocessor
    manager.configuration[PLANS_KEY] = "aimi.convert_v1.V1DecoderPlainConvUNet"
    with pytest.raises(ValueError, match=r"V1DecoderPlainConvUNet.*not an nnU-Net DefaultPreprocessor"):
        use_plans_preprocessor(predictor)


def nnunetv2_probabilities(predictor, data: np.ndarray) -> np.ndarray:
    """nnunetv2's sliding window (fold 0, the predictor's own settings) -> softmax, for v1's probabilities."""
    predictor.network.load_state_dict(predictor.list_of_parameters[0])
    logits = predictor.predict_sliding_window_return_logits(torch.from_numpy(data)).float()
    return torch.softmax(logits, 0).numpy()


@pytest.mark.parametrize("task", [CT, MR])
def test_v2_sliding_window_agrees_with_v1_over_several_tiles(v1_reference, predictors, task):
    """Over overlapping tiles v1 averages softmax in float32, nnunetv2 logits in float16: near-identical labels,
    not identical numbers. (Averaging softmax in float32 over nnunetv2's own tiles and Gaussian reproduces v1 to
    5e-7; averaging logits in float32 agrees on 0.988 (CT) / 0.9999 (MR) of voxels.)"""
    data = np.load(v1_reference / task / "preprocessed_target.npy")
    expected = np.load(v1_reference / task / "softmax_tiles_fold0.npy")

    got = nnunetv2_probabilities(predictors[task], data)

    assert (got.argmax(0) == expected.argmax(0)).mean() >= 0.97  # measured 0.982 (CT), 0.9986 (MR), random weights


@pytest.mark.parametrize("task", [CT, MR])
def test_one_tile_differs_from_v1_only_by_nnunetv2_float16_sums(v1_reference, converted, task):
    """Why one tile is not bit-identical although the network is: nnunetv2 2.8.1 sums Gaussian-weighted logits in
    float16, and its float16 Gaussian falls to the smallest subnormal (6e-8) at the tile's rim, where a logit times
    the weight keeps about one significant bit. Without the Gaussian only float16 rounding of the logits is left.
    (v1 uses no Gaussian for a single tile and sums softmax in float32.)"""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.inference.sliding_window_prediction import compute_gaussian

    expected = np.load(v1_reference / task / "softmax_tile_fold0.npy")
    data = np.load(v1_reference / task / "preprocessed_target.npy")[(slice(None), *map(slice, expected.shape[1:]))]
    diffs = {}
    for gaussian in (True, False):
        predictor = nnUNetPredictor(use_gaussian=gaussian, use_mirroring=False, perform_everything_on_device=False,
                                    device=torch.device("cpu"), allow_tqdm=False)
        predictor.initialize_from_trained_model_folder(str(converted[task]), use_folds=(0,))
        diffs[gaussian] = np.abs(nnunetv2_probabilities(predictor, data) - expected).max(0)

    assert diffs[False].max() <= 2e-3  # measured 8.6e-4 (CT), 4.5e-4 (MR)
    assert diffs[True].max() > 0.05  # measured 0.21 (CT), 0.22 (MR)
    weights = compute_gaussian(tuple(expected.shape[1:]), sigma_scale=1 / 8, value_scaling_factor=10,
                               device=torch.device("cpu")).numpy()
    assert weights[np.unravel_index(diffs[True].argmax(), weights.shape)] == weights.min() < 1e-7


@pytest.mark.parametrize(("task", "name"), RESAMPLED)
def test_whole_inference_agrees_with_v1s_own_cpu_inference(v1_reference, converted, task, name):
    """v1's preprocess_predict_nifti (fold 0, mirroring, softmax resampled back) vs the predictor NNUnetRunner
    builds: same preprocessing now; left are softmax vs logit averaging (tiles, mirrors, resampling back) and
    nnunetv2's float16 sums, on random weights whose near-uniform probabilities make argmax fragile."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    image = sitk.ReadImage(str(v1_reference / task / f"volume_{name}.nii.gz"))
    expected = sitk.GetArrayFromImage(sitk.ReadImage(str(v1_reference / task / f"v1_labels_{name}.nii.gz")))
    predictor = nnUNetPredictor(use_mirroring=True, perform_everything_on_device=False, device=torch.device("cpu"),
                                allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(converted[task]), use_folds=(0,))
    use_plans_preprocessor(predictor)

    labels = predictor.predict_single_npy_array(sitk.GetArrayFromImage(image)[None].astype(np.float32),
                                                {"spacing": list(reversed(image.GetSpacing()))})

    assert labels.shape == expected.shape
    assert (labels == expected).mean() >= 0.97  # measured 0.9994 / 0.9997 (CT other / aniso), 0.984 (MR)


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
    """fetch's v1 path: the verified v1 folder is converted after download, not again on the next fetch, and again
    when the converted folder predates v1-order preprocessing (its plans lack the preprocessor key)."""
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

    plans_file = model_folder(weights, manifest, entry) / "plans.json"
    plans = json.loads(plans_file.read_text())
    del plans["configurations"]["3d_fullres"]["aimi_preprocessor_class"]
    plans_file.write_text(json.dumps(plans))
    assert fetch(manifest, weights, progress=False) == [model_folder(weights, manifest, entry)]
    assert len(calls) == 2
    assert "aimi_preprocessor_class" in json.loads(plans_file.read_text())["configurations"]["3d_fullres"]
    record = json.loads((model_folder(weights, manifest, entry) / PROVENANCE_FILE).read_text())
    assert (record["file"], record["sha256"]) == (entry.file, "cd" * 32)


@pytest.mark.parametrize("folds", ["numbered", "fold_all"])
def test_a_v1_release_as_mhub_ships_it_is_checked_unpacked_converted_and_loaded(v1_reference, tmp_path,
                                                                                monkeypatch, folds):
    """BAMF's v1 zips (MHub's kidney and prostate) start at the configuration, `3d_fullres/<task>/<trainer>__<plans>/`,
    with no `nnUNet/` folder above: served by a Zenodo stand-in, fetch checks them against the record, unpacks,
    converts, and NNUnetRunner loads every fold - or v1's single `fold_all` model."""
    from aimi.core.context import RunContext, RunOptions
    from aimi.inference.nnunet_runner import NNUnetRunner, Settings
    from tests.support.zenodo import serving

    release = tmp_path / f"{CT}.zip"
    source = v1_model(v1_reference, CT)
    with zipfile.ZipFile(release, "w") as zf:
        for item in sorted(p for p in source.rglob("*") if p.is_file()):
            inside = item.relative_to(source).as_posix()
            if folds == "fold_all" and inside.startswith("fold_"):
                if not inside.startswith("fold_0/"):
                    continue
                inside = inside.replace("fold_0/", "fold_all/", 1)
            zf.write(item, f"3d_fullres/{CT}/nnUNetTrainerV2__nnUNetPlansv2.1/{inside}")
    (tmp_path / "manifest.toml").write_text(f"""
[model]
name = "test_model"
version = "1.0.0"

[[weights]]
id = "organ"
url = "https://zenodo.org/records/901/files/{release.name}"
record = "901"
file = "{release.name}"
format = "nnunet-v1"
license = "CC BY-NC 4.0"

[weights.nnunet]
version = 1
task = "{CT}"
configuration = "3d_fullres"
trainer = "nnUNetTrainerV2"
plans = "nnUNetPlansv2.1"
""")
    manifest = load_manifest(tmp_path / "manifest.toml")
    with serving("901") as zenodo:
        zenodo.files[release.name] = release.read_bytes()
        monkeypatch.setenv("AIMI_ZENODO_URL", zenodo.url)
        [folder] = fetch(manifest, tmp_path / "weights", progress=False)

    expected_folds = FOLDS if folds == "numbered" else ("all",)
    assert sorted(p.relative_to(folder).as_posix() for p in folder.glob("fold_*/*.pth")) == [
        f"fold_{fold}/checkpoint_final.pth" for fold in expected_folds]
    record = json.loads((folder / PROVENANCE_FILE).read_text())
    assert (record["record"], record["md5"]) == ("901", hashlib.md5(release.read_bytes()).hexdigest())
    assert record["converter"].startswith("nnU-Net v1 to v2 by aimi ")
    context = RunContext("test_model", tmp_path, manifest, tmp_path / "weights", tmp_path / "out", RunOptions())
    runner = NNUnetRunner(Settings(device="cpu"), context)
    assert runner.model.folder == folder and runner.model.folds == expected_folds and runner.loads == 1


@pytest.mark.slow
@pytest.mark.parametrize(("model", "weights_id", "task", "series"), [
    ("bamf_nnunet_ct_kidney", "kidney", CT, {}),
    ("bamf_nnunet_mr_prostate", "prostate", MR,
     {"modality": "MR", "mr_sequence": "T2", "series_description": "t2_tse_tra", "paired": False}),
])
def test_chain_runs_on_a_converted_v1_model(converted, tmp_path, model, weights_id, task, series):
    from aimi.cli import main
    from aimi.models import load_model
    from aimi_testkit.phantoms import write_phantom_series
    from aimi_testkit.testmodel_cli import spec_for
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
