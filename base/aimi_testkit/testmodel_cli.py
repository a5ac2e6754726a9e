"""`aimi testmodel MODEL OUT`: a tiny real model per manifest weights entry, laid out like fetched weights, each
fitted until it meets a stated quality (`QualityTarget`) and saying what it reached. What each looks like (channels,
labels, intensities) is the test kit's own data (testmodels.toml), not the production manifests'."""

from __future__ import annotations

from pathlib import Path

from aimi.models import ModelFolder
from aimi.weights import TESTMODEL_FILE, model_folder, write_provenance
from aimi_testkit.specs import SPECS_FILE, SpecError, load_specs
from aimi_testkit.testmodel import DEFAULT_TARGET, QualityTarget, TestModelSpec, build_test_model, read_quality


def spec_for(model: ModelFolder, weights_id: str, specs: Path = SPECS_FILE) -> TestModelSpec:
    """The spec of `model`'s weights entry (the test kit's, or `specs`), named like the real model's nnU-Net
    dataset."""
    entry = model.manifest.entry(weights_id)
    table = load_specs(specs).get(model.name, {}).get(weights_id)
    if table is None:
        raise SpecError(f"{specs}: no [{model.name}.{weights_id}] table for weights {weights_id!r} (channels, "
                        "labels and an intensity per label; give a file of your own with --spec)")
    dataset = entry.nnunet.dataset or entry.nnunet.task.replace("Task", "Dataset", 1)
    return TestModelSpec(dataset_name=dataset, channels=dict(table["channels"]),
                         labels={str(k): int(v) for k, v in table["labels"].items()},
                         intensities={int(k): tuple(float(x) for x in v) for k, v in table["intensities"].items()})


def build_for_model(model: ModelFolder, weights_dir: Path, target: QualityTarget = DEFAULT_TARGET,
                    specs: Path = SPECS_FILE) -> list[Path]:
    """Every weights entry of `model` as a test model under `weights_dir`; TestModelQualityError if one falls short."""
    built = []
    for entry in model.manifest.weights:
        folder = model_folder(weights_dir, model.manifest, entry)
        build_test_model(spec_for(model, entry.id, specs), folder, target=target)
        write_provenance(folder, url="", file=TESTMODEL_FILE, sha256="")
        built.append(folder)
    return built


def quality_summary(folder: Path) -> str:
    """One line per fold: steps taken and each label's worst validation Dice, against the target."""
    record = read_quality(folder)
    target = record["target"]
    lines = [f"{folder}: target Dice >= {target['min_dice']} per label on {target['validation_cases']} fresh cases"]
    for fold, reached in record["folds"].items():
        scores = ", ".join(f"{name} {dice:.3f}" for name, dice in reached["min_dice"].items())
        lines.append(f"  fold {fold}: met after {reached['steps']} steps; worst case per label: {scores}")
    return "\n".join(lines)
