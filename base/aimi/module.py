"""The module contract: declared inputs and outputs, validated settings, constructed once per run.

A module class declares `reads` and `writes` (artifact kinds of aimi.case) and a `Settings` dataclass whose fields
are the keys a workflow may set. The runner checks the chain against the declarations before the first case.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, ClassVar

from aimi.case import Case
from aimi.context import RunContext
from aimi.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class NoSettings:
    """For modules without settings."""


class Module:
    """Base class of every chain step; subclasses set the class attributes and implement `__call__`."""

    reads: ClassVar[tuple[str, ...]] = ()
    writes: ClassVar[tuple[str, ...]] = ()
    Settings: ClassVar[type] = NoSettings

    def __init__(self, settings: Any, context: RunContext) -> None:
        self.settings = settings
        self.context = context

    @property
    def name(self) -> str:
        return type(self).__name__

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
    """The first step of a chain: turns the input folder into cases."""

    writes = ("dicom",)

    def discover(self, input_dir: Any) -> Discovery:
        raise NotImplementedError

    def __call__(self, case: Case) -> None:
        """Cases arrive with their series already attached; nothing more to do per case."""
