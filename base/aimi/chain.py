"""The one way a model's chain is assembled: `aimi run`, `aimi batch`, `mhub.run` (through `aimi run`), the bench
and the tests all call `build_chain`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aimi.core.context import RunContext, RunOptions
from aimi.core.runner import Runner
from aimi.core.workflow import load_workflow, parse_overrides
from aimi.models import load_model
from aimi.registry import registry

DEFAULT_OPTIONS = RunOptions()


def build_chain(model_name: str, *, weights_dir: Path, output_dir: Path, options: RunOptions = DEFAULT_OPTIONS,
                workflow: str = "default", assignments: Sequence[str] = ()) -> Runner:
    """A model's workflow (a name in its config/ or a .yml path) with `--set` overrides, checked and its modules built
    once; raises ConfigError before anything runs when the setup is wrong."""
    model = load_model(model_name)
    chain = load_workflow(model.workflow_path(workflow), registry(), parse_overrides(list(assignments)),
                          options.settings())
    return Runner(chain, RunContext(model.name, model.path, model.manifest, weights_dir, output_dir, options))
