"""Workflow YAML in MHub's shape (`general`, `execute`, `modules`), validated before anything runs.

    general: {description: ..., version: ...}
    execute: [DicomImporter, NiftiConverter, {module: KeepLargestComponents, count: 2, origin: "paper: ..."}, ...]
    modules: {NNUnetRunner: {weights: kidney}, ...}
    extends: default.yml   # a variant: the named workflow's modules settings, its own execute (and overrides)

A step's `origin:` says where the step comes from - `paper: <section/table>`, `authors: <repository/file>` or
`project: <why>` - and `aimi models --graph` prints it.

A step's own keys override `modules.<Name>`; run options (`--device`, ...) override the same-named setting of every
step that has it; `--set Name.key=value` overrides them all. A step's `inputs:` and `outputs:` wire its ports to
artifacts by name (aimi.core.ports); the whole chain's wiring is checked here, before anything runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aimi.core.module import Module, SourceModule, build_settings, setting_names
from aimi.core.ports import Kind, StepPorts, Wiring, check_wiring, parse_wiring
from aimi.errors import ConfigError

TOP_LEVEL_KEYS = ("general", "execute", "modules", "extends")
STEP_KEYS = ("module", "origin", "inputs", "outputs")  # a step's own keys beside its module's settings
ORIGINS = ("paper", "authors", "project")
GENERAL_KEYS = ("description", "version")


@dataclass(frozen=True)
class Step:
    label: str
    module: type[Module]
    settings: Any
    wiring: Wiring = field(default_factory=Wiring)
    origin: str = ""  # where the step comes from: "paper: ...", "authors: ..." or "project: ..."


@dataclass(frozen=True)
class Workflow:
    path: Path
    description: str
    version: str
    steps: tuple[Step, ...]
    artifacts: dict[str, Kind]

    def artifacts_of(self, kind: Kind) -> list[str]:
        return [name for name, of in self.artifacts.items() if of == kind]


def describe_wiring(workflow: Workflow) -> str:
    """The chain's data flow, step by step: each input port <- the artifact it reads, each output port -> the
    artifact it writes, with the artifact's kind (`aimi models --graph`)."""
    lines = [f"{workflow.path}: {len(workflow.steps)} steps"]
    for step in workflow.steps:
        lines.append(f"{step.label}  [{step.origin}]" if step.origin else step.label)
        for port, name in step.wiring.inputs.items():
            kind = workflow.artifacts.get(name, "not written: optional, unused")
            lines.append(f"    in   {port:16} <- {name} ({kind})")
        lines.extend(f"    out  {port:16} -> {name} ({workflow.artifacts[name]})"
                     for port, name in step.wiring.outputs.items())
    return "\n".join(lines)


def parse_overrides(assignments: Sequence[str]) -> dict[str, dict[str, Any]]:
    """`Module.key=value` strings -> {Module: {key: value}}; values are read as YAML scalars or lists."""
    overrides: dict[str, dict[str, Any]] = {}
    for assignment in assignments:
        target, sep, text = assignment.partition("=")
        module, dot, key = target.partition(".")
        if not sep or not dot or not module or not key:
            raise ConfigError(f"--set {assignment!r}: expected Module.key=value")
        overrides.setdefault(module, {})[key] = yaml.safe_load(text) if text else ""
    return overrides


def load_workflow(
    path: Path, registry: Mapping[str, type[Module]], overrides: Mapping[str, Mapping[str, Any]] | None = None,
    option_settings: Mapping[str, Any] | None = None,
) -> Workflow:
    """Read and validate a workflow; every error names the file, the key and the valid choices."""
    raw = _read(path)
    general = raw.get("general") or {}
    _only_keys(general, GENERAL_KEYS, f"{path}: general")
    module_settings = raw.get("modules") or {}
    if not isinstance(module_settings, dict):
        raise ConfigError(f"{path}: modules must be a mapping of module name to settings")
    for name in module_settings:
        _known_module(name, registry, f"{path}: modules")
    overrides = overrides or {}
    for name, values in overrides.items():
        _known_settings(_known_module(name, registry, "--set"), values, f"--set {name}")
    steps = _steps(path, raw.get("execute"), module_settings, overrides, option_settings or {}, registry)
    if not issubclass(steps[0].module, SourceModule):
        raise ConfigError(f"{path}: execute[0] is {steps[0].label}; a chain starts with a source (DicomImporter)")
    wirings, artifacts = check_wiring(path, [
        StepPorts(f"execute[{index}]", step.label, step.module.inputs, step.module.outputs, step.wiring)
        for index, step in enumerate(steps)])
    steps = tuple(Step(s.label, s.module, s.settings, wiring, s.origin) for s, wiring in zip(steps, wirings,
                                                                                               strict=True))
    return Workflow(path, str(general.get("description", "")), str(general.get("version", "")), steps, artifacts)


def _read(path: Path, extended_by: Path | None = None) -> dict[str, Any]:
    """The workflow's mapping; with `extends:`, the named workflow's (same folder) under it: `modules` merged per
    module, `general` and `execute` the variant's own where it has them."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as error:
        prefix = f"{extended_by}: extends: " if extended_by else ""
        raise ConfigError(f"{prefix}{path}: cannot read workflow: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a workflow is a mapping with keys {', '.join(TOP_LEVEL_KEYS)}")
    _only_keys(raw, TOP_LEVEL_KEYS, f"{path}")
    if "extends" not in raw:
        return raw
    base_name = raw.pop("extends")
    if not isinstance(base_name, str) or "/" in base_name or base_name == path.name:
        raise ConfigError(f"{path}: extends: the file name of another workflow in {path.parent}, got {base_name!r}")
    base = _read(path.parent / base_name, extended_by=path)
    modules = dict(base.get("modules") or {})
    for name, own in (raw.get("modules") or {}).items():
        modules[name] = {**(modules.get(name) or {}), **(own or {})}
    return {**base, **raw, "modules": modules}


def _steps(
    path: Path,
    execute: Any,
    module_settings: Mapping[str, Any],
    overrides: Mapping[str, Mapping[str, Any]],
    option_settings: Mapping[str, Any],
    registry: Mapping[str, type[Module]],
) -> tuple[Step, ...]:
    if not isinstance(execute, list) or not execute:
        raise ConfigError(f"{path}: execute must be a non-empty list of module names or {{module: Name, ...}}")
    unused = set(overrides)
    steps = []
    for index, item in enumerate(execute):
        where = f"{path}: execute[{index}]"
        own = dict(item) if isinstance(item, dict) else {"module": item}
        name = own.pop("module", None)
        if not isinstance(name, str):
            raise ConfigError(f"{where}: a step is a module name or a mapping with a 'module' key")
        origin = own.pop("origin", "")
        if origin and (not isinstance(origin, str) or origin.partition(":")[0] not in ORIGINS):
            raise ConfigError(f"{where} ({name}): origin {origin!r} must start with one of "
                              f"{', '.join(f'{o}:' for o in ORIGINS)}")
        module = _known_module(name, registry, where)
        _known_settings(module, own, f"{where} ({name})", also=STEP_KEYS)
        wiring = Wiring(parse_wiring(own.pop("inputs", None), module.inputs, "inputs", f"{where} ({name})"),
                        parse_wiring(own.pop("outputs", None), module.outputs, "outputs", f"{where} ({name})"))
        options = {key: value for key, value in option_settings.items() if key in setting_names(module)}
        merged = {**(module_settings.get(name) or {}), **own, **options, **overrides.get(name, {})}
        unused.discard(name)
        label = name if sum(1 for s in steps if s.module is module) == 0 else f"{name}#{index}"
        steps.append(Step(label, module, build_settings(module, merged, f"{where} ({name})"), wiring, origin))
    if unused:
        raise ConfigError(f"--set names {', '.join(sorted(unused))}, which this workflow does not execute")
    return tuple(steps)


def _only_keys(mapping: Any, valid: Sequence[str], where: str) -> None:
    if not isinstance(mapping, dict):
        raise ConfigError(f"{where}: expected a mapping")
    for key in mapping:
        if key not in valid:
            raise ConfigError(f"{where}: unknown key {key!r}; valid keys: {', '.join(valid)}")


def _known_settings(module: type[Module], raw: Mapping[str, Any], where: str, also: Sequence[str] = ()) -> None:
    """Refuse a key that is neither one of the module's settings nor one of `also` (a step's own keys)."""
    for key in raw:
        if key not in also and key not in setting_names(module):
            steps = f"; step keys: {', '.join(also)}" if also else ""
            valid = ", ".join(sorted(setting_names(module))) or "(none)"
            raise ConfigError(f"{where}: unknown setting {key!r} for {module.__name__}; valid settings: {valid}{steps}")


def _known_module(name: str, registry: Mapping[str, type[Module]], where: str) -> type[Module]:
    if name not in registry:
        raise ConfigError(f"{where}: unknown module {name!r}; valid modules: {', '.join(sorted(registry))}")
    return registry[name]
