"""RemapLabels by dataset.json label names: the brain model's labels reach the right segments whatever their order."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from aimi.core.case import Case
from aimi.core.context import RunContext, RunOptions
from aimi.core.workflow import load_workflow
from aimi.errors import ConfigError
from aimi.models import load_model
from aimi.postprocess.remap_labels import RemapLabels, mapping_by_names
from aimi.registry import registry

BRAIN = load_model("bamf_nnunet_mr_brain")


def brain_settings():
    [step] = [s for s in load_workflow(BRAIN.workflow_path("default"), registry(), {}).steps
              if isinstance(s.settings, RemapLabels.Settings)]
    return step.settings


def dataset_json(tmp_path: Path, labels: dict, **more: object) -> Path:
    folder = tmp_path / BRAIN.manifest.name / "brats"
    folder.mkdir(parents=True)
    (folder / "dataset.json").write_text(json.dumps({"labels": labels, **more}))
    return folder / "dataset.json"


@pytest.mark.parametrize(("labels", "expected"), [
    # BraTS 2019 values stored consecutively (the assumption of the workflow)
    ({"background": 0, "NCR": 1, "ED": 2, "ET": 3}, {1: 1, 2: 2, 3: 3}),
    # nnU-Net's own BraTS conversion order: edema 1, necrosis 2, enhancing 3
    ({"background": 0, "edema": 1, "non_enhancing_and_necrosis": 2, "enhancing_tumor": 3}, {1: 2, 2: 1, 3: 3}),
    # the original BraTS values, ET = 4: nnU-Net predicts the index 3
    ({"background": 0, "necrosis": 1, "edema": 2, "enhancing": 4}, {1: 1, 2: 2, 3: 3}),
])
def test_brain_labels_map_by_name_to_the_three_segments(tmp_path: Path, labels: dict, expected: dict):
    assert mapping_by_names(dataset_json(tmp_path, labels), brain_settings().names) == expected


def test_unknown_label_names_stop_the_run_naming_the_labels_found(tmp_path: Path):
    path = dataset_json(tmp_path, {"background": 0, "core": 1, "ED": 2, "ET": 3})
    with pytest.raises(ConfigError, match=r"for value 1 are in .*which has background, core, ED, ET"):
        mapping_by_names(path, brain_settings().names)


def test_a_region_trained_brats_model_maps_each_region_to_what_it_alone_holds(tmp_path: Path):
    """nnU-Net v2's own BraTS dataset: the value of whole tumor is written where tumor core is not (edema), that of
    tumor core where enhancing tumor is not (necrosis / non-enhancing core)."""
    path = dataset_json(tmp_path, {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3],
                                   "enhancing tumor": [3]}, regions_class_order=[1, 2, 3])
    assert mapping_by_names(path, brain_settings().names) == {1: 2, 2: 1, 3: 3}


def test_regions_without_their_class_order_are_refused_naming_them(tmp_path: Path):
    path = dataset_json(tmp_path, {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3],
                                   "enhancing tumor": [3]})
    with pytest.raises(ConfigError, match=r"region-based labels whole tumor, tumor core, enhancing tumor need one "
                                          r"regions_class_order value each, got \[\]"):
        mapping_by_names(path, brain_settings().names)


def test_module_remaps_predicted_indices_of_the_model_folder(tmp_path: Path):
    dataset_json(tmp_path, {"background": 0, "edema": 1, "necrosis": 2, "enhancing tumor": 3})
    context = RunContext(BRAIN.name, BRAIN.path, BRAIN.manifest, tmp_path, tmp_path, RunOptions())
    module = RemapLabels(brain_settings(), context)
    image = sitk.GetImageFromArray(np.array([[[0, 1, 2, 3]]], np.uint8))
    case = Case("c", {})
    case.artifacts["main"] = image
    module(case)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(case.artifacts["main"]), [[[0, 2, 1, 3]]])
