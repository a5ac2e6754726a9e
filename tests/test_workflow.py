"""Workflow YAML validation and port wiring: every mistake is named with the file, the step or key, and the valid
choices, before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from aimi.cli import main
from aimi.core.context import RunOptions
from aimi.core.ports import LABELMAP, SERIES_LABELMAPS, ports_table
from aimi.core.workflow import load_workflow, parse_overrides
from aimi.errors import EXIT_USAGE, ConfigError
from aimi.manifest import load_manifest
from aimi.models import available_models, load_model
from aimi.registry import registry

KIDNEY = load_model("bamf_nnunet_ct_kidney")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "flow.yml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", available_models())
def test_every_model_workflow_loads_and_ends_in_segs_written_from_a_label_map(name: str):
    model = load_model(name)
    for workflow in model.workflows():
        chain = load_workflow(model.workflow_path(workflow), registry())
        assert chain.steps[0].label == "DicomImporter"
        steps = {step.label: step for step in chain.steps}
        assert chain.artifacts[steps["DsegConverter"].wiring.inputs["labels"]] in (LABELMAP, SERIES_LABELMAPS)
        assert steps["DataOrganizer"].wiring.inputs["segs"] == steps["DsegConverter"].wiring.outputs["segs"]


def test_breast_runs_one_nnunet_step_per_model_each_wired_to_its_own_label_map():
    chain = load_workflow(load_model("bamf_nnunet_mr_breast").workflow_path("default"), registry())
    runners = [step for step in chain.steps if step.module.__name__ == "NNUnetRunner"]
    assert [(s.settings.weights, s.wiring.outputs["labels"]) for s in runners] == [
        ("breast_fgt", "breast_fgt"), ("tumor", "tumor")]
    fuse = next(step for step in chain.steps if step.label == "FuseLabelMaps")
    assert fuse.wiring.inputs == {"first": "breast_fgt", "second": "tumor"}


def test_unknown_module_names_file_and_valid_modules(tmp_path):
    path = write(tmp_path, "execute: [DicomImporter, NnUnetRunner]\nmodules: {DicomImporter: {roles: {ct: []}}}\n")
    with pytest.raises(ConfigError) as error:
        load_workflow(path, registry())
    message = str(error.value)
    assert str(path) in message and "execute[1]" in message and "'NnUnetRunner'" in message
    assert "NNUnetRunner" in message  # the valid choices are listed


def test_unknown_setting_names_the_key_and_valid_settings(tmp_path):
    path = write(tmp_path, "execute: [DicomImporter, {module: KeepLargestComponents, cuont: 2}]\n"
                           "modules: {DicomImporter: {roles: {ct: []}}}\n")
    with pytest.raises(ConfigError, match=r"execute\[1\].*'cuont'.*valid settings: count, labels, min_ratio; "
                                          r"step keys: module, origin, inputs, outputs"):
        load_workflow(path, registry())


def test_unknown_top_level_key_is_refused(tmp_path):
    path = write(tmp_path, "execute: [DicomImporter]\nmodule: {}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'module'; valid keys: general, execute, modules"):
        load_workflow(path, registry())


def test_wrong_type_is_refused_at_load_time(tmp_path):
    path = write(tmp_path, "execute: [DicomImporter, {module: KeepLargestComponents, count: two}]\n"
                           "modules: {DicomImporter: {roles: {ct: []}}}\n")
    with pytest.raises(ConfigError, match=r"count: expected int, got 'two'"):
        load_workflow(path, registry())


def test_bad_selection_rule_names_the_role_and_operators(tmp_path):
    path = write(tmp_path, "execute: [DicomImporter]\n"
                           "modules: {DicomImporter: {roles: {ct: [{attribute: Modality, equals: CT}]}}}\n")
    with pytest.raises(ConfigError, match=r"roles.ct\[0\].*valid operators: in, not_in"):
        load_workflow(path, registry())


def test_set_overrides_one_setting_and_rejects_modules_not_in_the_chain():
    overrides = parse_overrides(["KeepLargestComponents.count=3", "DataOrganizer.qc_png=true"])
    chain = load_workflow(KIDNEY.workflow_path("default"), registry(), overrides)
    settings = {step.label: step.settings for step in chain.steps}
    assert settings["KeepLargestComponents"].count == 3
    assert settings["KeepLargestComponents"].labels == [1, 2, 3]  # the rest of the step is kept
    assert settings["DataOrganizer"].qc_png is True
    with pytest.raises(ConfigError, match=r"MaskToRegion, which this workflow does not execute"):
        load_workflow(KIDNEY.workflow_path("default"), registry(), parse_overrides(["MaskToRegion.labels=[2]"]))
    with pytest.raises(ConfigError, match=r"expected Module\.key=value"):
        parse_overrides(["count=3"])


KIDNEY_HEAD = """modules:
  DicomImporter: {roles: {ct: []}}
  NNUnetRunner: {weights: kidney}
  DsegConverter:
    segments: [{label: 1, name: Kidney, category: {scheme: SCT, value: "123037004", meaning: Anatomical Structure},
                type: {scheme: SCT, value: "64033007", meaning: Kidney}}]
execute:
"""


@pytest.mark.parametrize(("steps", "message"), [
    # a port nobody writes: NNUnetRunner before the images exist
    (["DicomImporter", "NNUnetRunner", "NiftiConverter"],
     r"execute\[1\] \(NNUnetRunner\): input 'images' \(Images\) reads 'images', which no earlier step writes; "
     r"execute\[2\] \(NiftiConverter\) writes it later: move this step after that one; written before it: "
     r"series \(Series\); valid inputs: images"),
    # a misspelt artifact name
    (["DicomImporter", "NiftiConverter", "NNUnetRunner", "{module: KeepLargestComponents, inputs: {labels: mian}}"],
     r"execute\[3\] \(KeepLargestComponents\): input 'labels' \(LabelMap\) reads 'mian', which no earlier step "
     r"writes; written before it: series \(Series\), images \(Images\), warnings \(Warnings\), main"),
    # a misspelt port
    (["DicomImporter", "NiftiConverter", "NNUnetRunner", "{module: KeepLargestComponents, inputs: {label: main}}"],
     r"execute\[3\] \(KeepLargestComponents\): unknown input port 'label'; valid inputs: labels"),
    (["DicomImporter", "NiftiConverter", "{module: NNUnetRunner, outputs: {label: main}}"],
     r"execute\[2\] \(NNUnetRunner\): unknown output port 'label'; valid outputs: labels, provenance"),
    # a type mismatch: images where a label map belongs
    (["DicomImporter", "NiftiConverter", "NNUnetRunner", "{module: DsegConverter, inputs: {labels: images}}"],
     r"execute\[3\] \(DsegConverter\): input 'labels' accepts LabelMap or SeriesLabelMaps, but 'images' holds "
     r"Images \(written by NiftiConverter\); valid inputs: series, labels, provenance"),
    # a second model writing where the first wrote, before anything read the first one's labels
    (["DicomImporter", "NiftiConverter", "NNUnetRunner", "NNUnetRunner", "DsegConverter"],
     r"execute\[3\] \(NNUnetRunner#3\): output 'labels' \(LabelMap\) would replace 'main', written by "
     r"NNUnetRunner and read by no step since; wire one of them to another name"),
    # an output that would change an artifact's kind
    (["DicomImporter", "NiftiConverter", "{module: NNUnetRunner, outputs: {labels: images}}"],
     r"execute\[2\] \(NNUnetRunner\): output 'labels' \(LabelMap\) would overwrite 'images', which holds Images "
     r"\(written by NiftiConverter\)"),
    # an optional input wired by name must exist; only its default may be absent
    (["DicomImporter", "NiftiConverter", "NNUnetRunner", "{module: DsegConverter, inputs: {provenance: weights}}"],
     r"execute\[3\] \(DsegConverter\): input 'provenance' \(Provenance\) reads 'weights', which no earlier"),
    (["NiftiConverter"], r"execute\[0\] is NiftiConverter; a chain starts with a source"),
])
def test_a_wiring_error_fails_at_load_time_naming_the_file_the_step_and_the_valid_ports(
        steps: list[str], message: str, tmp_path: Path) -> None:
    path = write(tmp_path, KIDNEY_HEAD + "".join(f"  - {step}\n" for step in steps))
    with pytest.raises(ConfigError, match=message) as error:
        load_workflow(path, registry())
    assert str(error.value).startswith(str(path))


def test_an_optional_input_nobody_writes_is_left_out_and_an_edit_in_place_follows_its_input(tmp_path: Path):
    path = write(tmp_path, KIDNEY_HEAD + "".join(f"  - {step}\n" for step in [
        "DicomImporter", "NiftiConverter", "{module: NNUnetRunner, outputs: {labels: raw}}",
        "{module: KeepLargestComponents, inputs: {labels: raw}}", "{module: DsegConverter, inputs: {labels: raw}}"]))
    chain = load_workflow(path, registry())
    keep = chain.steps[3]
    assert keep.wiring.outputs == {"labels": "raw"}  # written back where it was read
    assert "main" not in chain.artifacts


def test_aimi_models_graph_prints_each_steps_wiring_and_a_wiring_error_exits_2(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["models", "--graph", "bamf_nnunet_mr_brain"]) == 0
    graph = capsys.readouterr().out
    assert "    in   images           <- atlas_images (Images)" in graph  # nnU-Net sees the atlas-space images
    assert "    out  labels           -> series_labels (SeriesLabelMaps)" in graph
    broken = write(tmp_path, KIDNEY_HEAD + "  - DicomImporter\n  - {module: NNUnetRunner, inputs: {imgs: images}}\n")
    assert main(["models", "--graph", KIDNEY.name, "--workflow", str(broken)]) == EXIT_USAGE
    assert "unknown input port 'imgs'; valid inputs: images" in capsys.readouterr().err


def test_the_readme_ports_table_is_the_modules_own_declaration() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert ports_table(list(registry().values())) in readme


def test_unknown_workflow_name_lists_the_workflows():
    with pytest.raises(ConfigError, match=r"no workflow 'fast'; valid workflows: as-published, default"):
        KIDNEY.workflow_path("fast")


def test_unknown_model_lists_the_models():
    with pytest.raises(ConfigError, match=r"unknown model 'kidney'; valid models: .*bamf_nnunet_ct_kidney"):
        load_model("kidney")


@pytest.mark.parametrize(("options", "message"), [
    (["--workflow", "nope"], "no workflow 'nope'; valid workflows: as-published, default"),
    (["--set", "DsegConverter.colour=red"], "--set DsegConverter: unknown setting 'colour' for DsegConverter"),
    (["--set", "NNUnetRunner.weights=nope"], "default.yml: execute[2] (NNUnetRunner): "),
    (["--set", "NNUnetRunner.weights=nope"], "manifest.toml: no weights with id 'nope'; ids: kidney"),
    (["--set", "DataOrganizer.pattern=../../{series_uid}/{model}.seg.dcm"], "without '..' or '.'"),
    (["--set", "DataOrganizer.pattern=/tmp/{series_uid}/{model}.seg.dcm"], "a path relative to the output folder"),
])
def test_aimi_run_with_a_wrong_chain_exits_2_before_making_the_output_folder(
        options: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "in").mkdir()
    status = main(["run", KIDNEY.name, "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
                   "--weights", str(tmp_path / "weights"), *options])
    assert status == EXIT_USAGE
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_run_options_override_the_settings_of_the_steps_that_have_them_and_set_overrides_them(tmp_path: Path):
    """A workflow pins a setting per step; a given run option overrides it; `--set` overrides both."""
    path = write(tmp_path, KIDNEY.workflow_path("default").read_text().replace(
        "  - {module: NNUnetRunner, origin:", "  - {module: NNUnetRunner, step_size: 0.25, tta: false, origin:"))
    assert "step_size: 0.25" in path.read_text()

    def runner_settings(options: RunOptions, assignments: tuple[str, ...] = ()) -> object:
        chain = load_workflow(path, registry(), parse_overrides(list(assignments)), options.settings())
        return next(step.settings for step in chain.steps if step.label == "NNUnetRunner")

    pinned = runner_settings(RunOptions())
    assert (pinned.step_size, pinned.tta, pinned.device) == (0.25, False, "auto")
    given = runner_settings(RunOptions(step_size=0.5, device="cpu"))
    assert (given.step_size, given.tta, given.device) == (0.5, False, "cpu")
    assert runner_settings(RunOptions(step_size=0.5), ("NNUnetRunner.step_size=0.75",)).step_size == 0.75
    dseg = load_workflow(path, registry(), {}, RunOptions(keep_empty_frames=True).settings()).steps
    assert next(s.settings for s in dseg if s.label == "DsegConverter").keep_empty_frames is True


def test_a_step_size_out_of_range_is_a_usage_error_before_anything_runs(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "in").mkdir()
    status = main(["run", KIDNEY.name, "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
                   "--weights", str(tmp_path / "weights"), "--step-size", "0"])
    assert status == EXIT_USAGE
    assert "step_size: 0.0 must be in (0, 1]" in capsys.readouterr().err


def test_the_readme_new_model_example_loads_and_wires_like_the_kidney_chain(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Adding a model"):]
    block = section[section.index("```yaml\n") + 8:section.index("```\n", section.index("```yaml\n"))]
    path = write(tmp_path, "\n".join(line[3:] for line in block.splitlines()))
    chain = load_workflow(path, registry())
    kidney = load_workflow(KIDNEY.workflow_path("default"), registry())
    assert [s.label for s in chain.steps] == [s.label for s in kidney.steps]
    assert [s.wiring for s in chain.steps] == [s.wiring for s in kidney.steps]


def test_the_readme_new_model_manifest_loads(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Adding a model"):]
    block = section[section.index("```toml\n") + 8:section.index("```\n", section.index("```toml\n"))]
    (tmp_path / "manifest.toml").write_text("\n".join(line[3:] for line in block.splitlines()))
    manifest = load_manifest(tmp_path / "manifest.toml")
    assert (manifest.name, manifest.entry("spleen").nnunet.dataset) == ("bamf_nnunet_ct_spleen", "Dataset123_Spleen")
