"""The variants of the authors' post-processing (`as-published.yml`: what IDC's annotations were made with;
`as-released.yml`: the authors' released code, where that is not what the published annotations show) against
`default.yml`: the post-processing steps of both workflows, as the YAML wires them, on label maps built so that
every stated difference shows, and nowhere else. Every step of every workflow names where
it comes from (paper, authors' code or project)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from aimi.cli import main
from aimi.core.case import MAIN, Case
from aimi.core.context import RunContext, RunOptions
from aimi.core.workflow import ORIGINS, Workflow, load_workflow
from aimi.errors import ConfigError
from aimi.inference.nnunet_runner import NNUnetRunner
from aimi.io.dseg_converter import DsegConverter
from aimi.models import available_models, load_model
from aimi.registry import registry

SPACING = (0.8, 0.8, 2.0)  # x, y, z: a voxel is 1.28 mm3


def _image(array: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing(SPACING)
    return image


def post_process(model: str, workflow: str, network_outputs: list[np.ndarray], tmp_path: Path) -> np.ndarray:
    """The steps between the workflow's last NNUnetRunner and its DsegConverter, run as the chain runs them, on
    `network_outputs` (one per NNUnetRunner step, in order); the label map the SEG would be made from."""
    folder = load_model(model)
    chain: Workflow = load_workflow(folder.workflow_path(workflow), registry())
    runners = [i for i, step in enumerate(chain.steps) if step.module is NNUnetRunner]
    seg = next(i for i, step in enumerate(chain.steps) if step.module is DsegConverter)
    context = RunContext(model, folder.path, folder.manifest, tmp_path / "w", tmp_path / "out", RunOptions())
    case = Case("scene", {})
    for index, array in zip(runners, network_outputs, strict=True):
        case.artifacts[chain.steps[index].wiring.outputs["labels"]] = _image(array)
    for step in chain.steps[runners[-1] + 1:seg]:
        step.module(step.settings, context).wire(step.wiring)(case)
    return sitk.GetArrayFromImage(case.artifacts[MAIN])


def kidney_scene() -> tuple[list[np.ndarray], np.ndarray]:
    """Two kidneys (one with a tumor, one with a cyst) and a third, small component with a tumor of its own."""
    raw = np.zeros((16, 40, 60), np.uint8)
    raw[2:12, 5:30, 5:20] = 1
    raw[5:8, 10:15, 8:12] = 2
    raw[2:12, 5:30, 35:50] = 1
    raw[4:7, 20:25, 40:44] = 3
    stray = np.zeros(raw.shape, bool)
    stray[12:15, 33:38, 52:58] = True
    raw[stray] = 1
    raw[13, 35, 55] = 2
    return [raw], stray


def prostate_scene() -> tuple[list[np.ndarray], np.ndarray]:
    """The gland and a detached blob the network also called prostate."""
    raw = np.zeros((16, 40, 40), np.uint8)
    raw[4:12, 10:30, 10:30] = 1
    stray = np.zeros(raw.shape, bool)
    stray[1:3, 2:6, 33:38] = True
    raw[stray] = 1
    return [raw], stray


def breast_scene() -> tuple[list[np.ndarray], np.ndarray]:
    """Model A: two breasts with FGT; model B: a large, a medium and a 12.8 mm3 tumor inside, one outside. Differs:
    the FGT (kept by default, merged into the breast as published) and the medium tumor (over 20 mm3, but the
    third largest component of model B as published: the one outside is larger)."""
    breast_fgt = np.zeros((12, 60, 100), np.uint8)
    breast_fgt[2:10, 5:55, 5:45] = 1
    breast_fgt[2:10, 5:55, 55:95] = 1
    fgt = np.zeros(breast_fgt.shape, bool)
    fgt[4:8, 20:40, 15:35] = fgt[4:8, 20:40, 65:85] = True
    breast_fgt[fgt] = 2
    tumor = np.zeros_like(breast_fgt)
    tumor[3:8, 8:16, 8:16] = 1  # large: 320 voxels
    tumor[5:8, 45:50, 60:65] = 1  # outside the breasts' FGT, inside a breast: 75 voxels
    medium = np.zeros(breast_fgt.shape, bool)
    medium[5:7, 25:30, 20:25] = True  # 50 voxels, 64 mm3, in the FGT
    tumor[medium] = 1
    tumor[4:6, 10:12, 80:82] = 1  # 8 voxels, 10.2 mm3: under 20 mm3
    tumor[5:8, 56:60, 47:52] = 1  # between the breasts: 60 voxels, dropped by both
    return [breast_fgt, tumor], (fgt & ~medium) | medium


SCENES: dict[tuple[str, str], Callable[[], tuple[list[np.ndarray], np.ndarray]]] = {
    ("bamf_nnunet_ct_kidney", "as-published"): kidney_scene,
    ("bamf_nnunet_mr_prostate", "as-published"): prostate_scene,
    ("bamf_nnunet_mr_breast", "as-released"): breast_scene,
}


def test_every_post_processing_variant_has_a_scene_here() -> None:
    variants = {(m, w) for m in available_models() for w in load_model(m).workflows() if w.startswith("as-")}
    assert variants == set(SCENES)


@pytest.mark.parametrize(("model", "variant"), sorted(SCENES))
def test_a_variant_differs_from_default_exactly_where_stated(model: str, variant: str, tmp_path: Path) -> None:
    network_outputs, stated = SCENES[model, variant]()
    default = post_process(model, "default", network_outputs, tmp_path)
    published = post_process(model, variant, network_outputs, tmp_path)
    assert stated.any()
    np.testing.assert_array_equal(default != published, stated)


@pytest.mark.parametrize("model", available_models())
def test_every_step_of_every_workflow_names_where_it_comes_from(model: str) -> None:
    folder = load_model(model)
    for workflow in folder.workflows():
        chain = load_workflow(folder.workflow_path(workflow), registry())
        unnamed = [step.label for step in chain.steps if step.origin.partition(":")[0] not in ORIGINS
                   or not step.origin.partition(":")[2].strip()]
        assert unnamed == [], f"{workflow}: steps without an origin"


def test_a_variant_takes_the_settings_of_the_workflow_it_extends(tmp_path: Path) -> None:
    kidney = load_model("bamf_nnunet_ct_kidney").workflow_path("default")
    (tmp_path / "default.yml").write_text(kidney.read_text())
    (tmp_path / "variant.yml").write_text("extends: default.yml\nexecute: [DicomImporter, NiftiConverter]\n"
                                          "modules: {DicomImporter: {case: study}}\n")
    variant = load_workflow(tmp_path / "variant.yml", registry())
    importer = variant.steps[0].settings
    assert importer.case == "study" and importer.roles == load_workflow(kidney, registry()).steps[0].settings.roles
    (tmp_path / "loop.yml").write_text("extends: loop.yml\n")
    with pytest.raises(ConfigError, match=r"loop.yml: extends: the file name of another workflow"):
        load_workflow(tmp_path / "loop.yml", registry())
    (tmp_path / "bad-origin.yml").write_text("extends: default.yml\nexecute: [{module: DicomImporter, "
                                             "origin: 'folklore: x'}]\n")
    with pytest.raises(ConfigError, match=r"execute\[0\] \(DicomImporter\): origin 'folklore: x' must start with "
                                          r"one of paper:, authors:, project:"):
        load_workflow(tmp_path / "bad-origin.yml", registry())


def test_aimi_models_lists_both_workflows_and_the_graph_prints_each_steps_origin(
        capsys: pytest.CaptureFixture) -> None:
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    kidney = listing[listing.index("bamf_nnunet_ct_kidney"):listing.index("bamf_nnunet_ct_liver")]
    assert "workflows: as-published, default" in kidney
    assert main(["models", "--graph", "bamf_nnunet_ct_kidney", "--workflow", "as-published"]) == 0
    graph = capsys.readouterr().out
    assert "KeepLargestComponents" not in graph
    assert "DsegConverter  [authors: MHub bamf_nnunet_ct_kidney config/default.yml" in graph
