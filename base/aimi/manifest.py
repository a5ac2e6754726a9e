"""A model's `manifest.toml`: where its weights come from and which nnU-Net model they are.

Reads: `models/<name>/manifest.toml`. Writes: nothing. Every key is checked when the file is loaded, so a typo fails
at once with the file, the key path (`weights[0].format`) and the valid choices, never later inside a download.

    [model]                 name, version
    [[weights]]             id, url, file, format, license; record (the Zenodo record id: fetch reads the file's
                            size and MD5 from it and checks them); sha256 (optional: a pin a site adds, checked too)
    [weights.nnunet]        version, task (v1) or dataset (v2), configuration, trainer, plans
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from aimi.errors import ConfigError

FORMATS = ("nnunet-v1", "nnunet-v2")
NNUNET_VERSION_OF_FORMAT = {"nnunet-v1": 1, "nnunet-v2": 2}
#: nnU-Net's own defaults, used when a manifest leaves trainer or plans out.
DEFAULT_TRAINER = {1: "nnUNetTrainerV2", 2: "nnUNetTrainer"}
DEFAULT_PLANS = {1: "nnUNetPlansv2.1", 2: "nnUNetPlans"}
CONFIGURATIONS = ("2d", "3d_fullres", "3d_lowres", "3d_cascade_fullres")

_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_RECORD = re.compile(r"^([0-9]+)?$")
_SHA256 = re.compile(r"^([0-9a-f]{64})?$")
_FILE = re.compile(r"^[^/\\]+$")
_V1_TASK = re.compile(r"^Task\d{3}_\w+$")
_V2_DATASET = re.compile(r"^Dataset\d{3}_\w+$")


class ManifestError(ConfigError):
    """A manifest is wrong; the message names the file, the key path and what is valid there."""


@dataclass(frozen=True)
class NnunetIdentity:
    """Which trained nnU-Net model an archive holds: `task` for v1, `dataset` for v2 (the other is "")."""

    version: int
    task: str
    dataset: str
    configuration: str
    trainer: str
    plans: str


@dataclass(frozen=True)
class WeightsEntry:
    """One downloadable archive holding one nnU-Net model; `id` names it for the NNUnetRunner and on disk."""

    id: str
    url: str
    file: str
    sha256: str
    format: str
    license: str
    nnunet: NnunetIdentity
    record: str = ""


@dataclass(frozen=True)
class Manifest:
    """A model's weights, as declared in `path`."""

    name: str
    version: str
    weights: tuple[WeightsEntry, ...]
    path: Path

    def entry(self, id: str) -> WeightsEntry:
        """The entry called `id`; a ManifestError lists the ids this manifest has."""
        for entry in self.weights:
            if entry.id == id:
                return entry
        raise ManifestError(f"{self.path}: no weights with id {id!r}; ids: {', '.join(e.id for e in self.weights)}")


@dataclass(frozen=True)
class _At:
    """Where in which file a value sits, so every error can say so."""

    file: Path
    key: str

    def __truediv__(self, name: str | int) -> _At:
        if isinstance(name, int):
            return _At(self.file, f"{self.key}[{name}]")
        return _At(self.file, f"{self.key}.{name}" if self.key else name)

    def fail(self, problem: str) -> NoReturn:
        raise ManifestError(f"{self.file}: {self.key}: {problem}")


def load_manifest(path: Path) -> Manifest:
    """Read and validate `path`; a ManifestError names the file, the key path and the valid choices."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ManifestError(f"{path}: not valid TOML: {err}") from err
    except OSError as err:
        raise ManifestError(f"{path}: cannot read the manifest: {err}") from err
    root = _At(path, "")
    _check_keys(root, data, required=("model", "weights"))
    model = _table(root / "model", data["model"])
    _check_keys(root / "model", model, required=("name", "version"))
    entries = data["weights"]
    if not isinstance(entries, list) or not entries:
        (root / "weights").fail("must be a non-empty array of tables ([[weights]])")
    weights = tuple(_entry(root / "weights" / i, raw) for i, raw in enumerate(entries))
    ids = [entry.id for entry in weights]
    for i, entry_id in enumerate(ids):
        if ids.index(entry_id) != i:
            (root / "weights" / i / "id").fail(f"{entry_id!r} is used twice; ids must be unique")
    return Manifest(
        name=_string(root / "model" / "name", model["name"], pattern=_NAME, rule="lower case, digits and _"),
        version=_string(root / "model" / "version", model["version"]),
        weights=weights,
        path=path,
    )


def _entry(at: _At, raw: Any) -> WeightsEntry:
    """One [[weights]] table."""
    table = _table(at, raw)
    _check_keys(at, table, required=("id", "url", "file", "format", "license", "nnunet"),
                optional=("record", "sha256"))
    fmt = _string(at / "format", table["format"], choices=FORMATS)
    url = _string(at / "url", table["url"])
    if not url.startswith(("https://", "http://")):
        (at / "url").fail(f"{url!r} must start with https:// or http://")
    return WeightsEntry(
        id=_string(at / "id", table["id"], pattern=_ID, rule="letters, digits, _ and -"),
        url=url,
        file=_string(at / "file", table["file"], pattern=_FILE, rule="a file name without /"),
        sha256=_string(at / "sha256", table.get("sha256", ""), pattern=_SHA256, rule='"" or 64 lower-case hex digits',
                       empty_ok=True),
        format=fmt,
        license=_string(at / "license", table["license"]),
        nnunet=_nnunet(at / "nnunet", table["nnunet"], NNUNET_VERSION_OF_FORMAT[fmt]),
        record=_string(at / "record", table.get("record", ""), pattern=_RECORD, rule="the digits of a Zenodo record",
                       empty_ok=True),
    )


def _nnunet(at: _At, raw: Any, expected_version: int) -> NnunetIdentity:
    """[weights.nnunet]: v1 names a task, v2 a dataset; its version must match the entry's format."""
    table = _table(at, raw)
    if "version" not in table:
        (at / "version").fail("missing; required: 1 or 2")
    version = table["version"]
    if version not in (1, 2) or isinstance(version, bool):
        (at / "version").fail(f"{version!r} is not one of: 1, 2")
    if version != expected_version:
        (at / "version").fail(f"{version} does not match format nnunet-v{expected_version}")
    name_key, pattern = ("task", _V1_TASK) if version == 1 else ("dataset", _V2_DATASET)
    _check_keys(at, table, required=("version", name_key, "configuration"), optional=("trainer", "plans"))
    name = _string(at / name_key, table[name_key], pattern=pattern, rule=pattern.pattern)
    return NnunetIdentity(
        version=version,
        task=name if version == 1 else "",
        dataset=name if version == 2 else "",
        configuration=_string(at / "configuration", table["configuration"], choices=CONFIGURATIONS),
        trainer=_string(at / "trainer", table.get("trainer", DEFAULT_TRAINER[version])),
        plans=_string(at / "plans", table.get("plans", DEFAULT_PLANS[version])),
    )


def _table(at: _At, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        at.fail(f"must be a table, got {value!r}")
    return value


def _check_keys(at: _At, table: dict[str, Any], required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
    """Unknown keys and missing required keys are errors that list the valid keys."""
    valid = ", ".join(sorted((*required, *optional)))
    for key in table:
        if key not in required and key not in optional:
            (at / key).fail(f"unknown key; valid keys: {valid}")
    for key in required:
        if key not in table:
            (at / key).fail(f"missing; required keys: {', '.join(required)}")


def _string(at: _At, value: Any, *, choices: tuple[str, ...] = (), pattern: re.Pattern[str] | None = None,
            rule: str = "", empty_ok: bool = False) -> str:
    """A string that is non-empty (unless `empty_ok`), one of `choices` and matching `pattern` when given."""
    if not isinstance(value, str):
        at.fail(f"must be a string, got {value!r}")
    if choices and value not in choices:
        at.fail(f"{value!r} is not one of: {', '.join(choices)}")
    if not value and not empty_ok:
        at.fail("must not be empty")
    if pattern is not None and not pattern.match(value):
        at.fail(f"{value!r} is not valid ({rule})")
    return value
