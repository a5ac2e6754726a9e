"""The module contract: named, typed ports, validated settings, constructed once per run.

A module class declares `inputs` and `outputs` (port name -> aimi.core.ports.Port) and a `Settings` dataclass whose
fields are the keys a workflow may set. It reads and writes the case only through its ports (`read`, `write`), so the
workflow's wiring, checked before the first case, is the whole data flow.

A module's work on a case is one or more `Phase`s: CPU work, or work on the device (a network). The runner overlaps
one case's device phase with other cases' CPU phases (aimi.core.pipeline); a module that runs a network either
sets `on_device` or splits itself (NNUnetRunner: preprocess, predict, export).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from aimi.core.case import SERIES, Case
from aimi.core.context import RunContext
from aimi.core.ports import SERIES as SERIES_KIND
from aimi.core.ports import Port, Wiring, default_wiring, ports
from aimi.errors import CaseError, ConfigError


@dataclasses.dataclass(frozen=True)
class Phase:
    """One part of a step's work on a case. `on_device`: it runs a network, one case at a time; CPU phases of
    other cases run beside it."""

    run: Callable[[Case], None]
    on_device: bool = False


@dataclasses.dataclass(frozen=True)
class NoSettings:
    """For modules without settings."""


class Module:
    """Base class of every chain step; subclasses set the class attributes and implement `__call__`."""

    inputs: ClassVar[Mapping[str, Port]] = ports()
    outputs: ClassVar[Mapping[str, Port]] = ports()
    Settings: ClassVar[type] = NoSettings
    on_device: ClassVar[bool] = False  # the whole step runs a network

    def __init__(self, settings: Any, context: RunContext) -> None:
        self.settings = settings
        self.context = context
        self.wiring = default_wiring(self.inputs, self.outputs)

    @property
    def name(self) -> str:
        return type(self).__name__

    def wire(self, wiring: Wiring) -> Module:
        """Use the workflow step's wiring (unnamed ports keep their defaults)."""
        self.wiring = default_wiring(self.inputs, self.outputs, wiring)
        return self

    def read(self, case: Case, port: str) -> Any:
        """The artifact wired to input `port`; None for an optional input nobody wrote."""
        name = self.wiring.inputs[port]
        if name in case.artifacts:
            return case.artifacts[name]
        if self.inputs[port].optional:
            return None
        have = ", ".join(sorted(case.artifacts)) or "none"
        raise CaseError(f"case {case.id}: {self.name} input {port!r} reads {name!r}, absent (the case has: {have})")

    def write(self, case: Case, port: str, value: Any) -> None:
        """Store `value` as the artifact wired to output `port`; a merging kind adds to what is there."""
        name = self.wiring.outputs[port]
        if self.outputs[port].accepts[0].merges and name in case.artifacts:
            merged = case.artifacts[name]
            merged.extend(value) if isinstance(merged, list) else merged.update(value)
        else:
            case.artifacts[name] = value

    def phases(self) -> tuple[Phase, ...]:
        """The step's work on a case, in order; one phase unless the module splits its CPU and device work."""
        return (Phase(self.__call__, self.on_device),)

    def __call__(self, case: Case) -> None:
        raise NotImplementedError


def setting_names(module: type[Module]) -> set[str]:
    return {f.name for f in dataclasses.fields(module.Settings)}


def build_settings(module: type[Module], raw: dict[str, Any], where: str) -> Any:
    """Validate `raw` against the module's Settings dataclass; errors name `where`, the key and the valid keys."""
    fields = {f.name: f for f in dataclasses.fields(module.Settings)}
    hints = typing.get_type_hints(module.Settings)
    for key in raw:
        if key not in fields:
            valid = ", ".join(sorted(fields)) or "(none)"
            raise ConfigError(f"{where}: unknown setting {key!r} for {module.__name__}; valid settings: {valid}")
    values = {key: _check_type(value, hints[key], f"{where}.{key}") for key, value in raw.items()}
    try:
        return module.Settings(**values)
    except TypeError as error:
        raise ConfigError(f"{where}: {module.__name__} settings: {error}") from None
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None


def _check_type(value: Any, hint: Any, where: str) -> Any:
    """Shallow type check of YAML values, so that a typo fails at load time, not in the middle of a run."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in options:
            try:
                return _check_type(value, option, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} is not a valid {hint}")
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(hint)
        item = args[0] if args else Any
        return origin(_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return value
    check = origin or hint
    if (isinstance(check, type) and not isinstance(value, check)) or (check is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: expected {getattr(check, '__name__', check)}, got {value!r}")
    return value


@dataclasses.dataclass
class Discovery:
    """What a source module found: the cases to run, every series seen, and every file it ignored."""

    cases: list[Case]
    series: list[dict[str, Any]]
    ignored_files: list[dict[str, str]]
    failures: list[dict[str, Any]] = dataclasses.field(default_factory=list)


class SourceModule(Module):
    """The first step of a chain: turns the input folder into cases, each carrying its series."""

    outputs = ports(series=Port(SERIES_KIND, "the series of each case, by role", SERIES))

    def discover(self, input_dir: Any) -> Discovery:
        raise NotImplementedError

    def __call__(self, case: Case) -> None:
        """Cases arrive with their series attached; they go out under the name the workflow wires."""
        self.write(case, "series", case.series)
