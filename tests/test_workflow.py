"""Workflow YAML validation: every mistake is named with the file, the key and the valid choices."""

from __future__ import annotations

from pathlib import Path

import pytest

from aimi.cli import main
from aimi.context import RunOptions
from aimi.errors import EXIT_USAGE, ConfigError
from aimi.models import load_model
from aimi.modules import registry
from aimi.runner import check_chain
from aimi.workflow import load_workflow, parse_overrides

KIDNEY = load_model("bamf_nnunet_ct_kidney")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "flow.yml"
    path.write_text(text)
    return path


def test_every_model_workflow_loads_and_its_chain_is_satisfiable():
    for workflow in KIDNEY.workflows():
        chain = load_workflow(KIDNEY.workflow_path(workflow), registry())
        check_chain(chain)
        assert chain.steps[0].label == "DicomImporter"


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
    with pytest.raises(ConfigError, match=r"execute\[1\].*'cuont'.*valid settings: count, labelmap, labels"):
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


def test_chain_reading_what_no_earlier_step_writes_is_refused_before_any_case(tmp_path):
    path = write(tmp_path, "execute: [DicomImporter, NNUnetRunner, NiftiConverter]\n"
                           "modules: {DicomImporter: {roles: {ct: []}}}\n")
    chain = load_workflow(path, registry())
    with pytest.raises(ConfigError, match=r"execute\[1\] NNUnetRunner reads 'image'.*add one of NiftiConverter"):
        check_chain(chain)


def test_unknown_workflow_name_lists_the_workflows():
    with pytest.raises(ConfigError, match=r"no workflow 'fast'; valid workflows: default"):
        KIDNEY.workflow_path("fast")


def test_unknown_model_lists_the_models():
    with pytest.raises(ConfigError, match=r"unknown model 'kidney'; valid models: .*bamf_nnunet_ct_kidney"):
        load_model("kidney")


@pytest.mark.parametrize(("options", "message"), [
    (["--workflow", "nope"], "no workflow 'nope'; valid workflows: default"),
    (["--set", "DsegConverter.colour=red"], "unknown setting 'colour' for DsegConverter"),
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
        "  - NNUnetRunner\n", "  - {module: NNUnetRunner, step_size: 0.25, tta: false}\n"))

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
