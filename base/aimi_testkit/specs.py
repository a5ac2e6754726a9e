"""testmodels.toml: the channels, labels and synthetic intensities of each model's tiny test model, checked on load.

Reads: `aimi_testkit/testmodels.toml` (or a file of the same shape, `aimi testmodel --spec FILE`, for a model the
kit does not know), tables `[<model>.<weights id>]`. A malformed or missing table fails with the file, the key path
and the rule, before any training starts.
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any

from aimi.errors import ConfigError

SPECS_FILE = Path(__file__).with_name("testmodels.toml")
KEYS = ("channels", "labels", "intensities")


class SpecError(ConfigError):
    """A test-model spec that is missing or malformed (a usage error: nothing is built)."""


@cache
def load_specs(path: Path = SPECS_FILE) -> dict[str, dict[str, dict[str, Any]]]:
    """Model name -> weights id -> its checked spec table."""
    try:
        with path.open("rb") as file:
            raw = tomllib.load(file)
    except OSError as error:
        raise SpecError(f"{path}: cannot read test-model specs: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"{path}: not valid TOML: {error}") from None
    return {model: {weights_id: check_spec(table, f"{path}: {model}.{weights_id}")
                    for weights_id, table in by_id.items()}
            for model, by_id in raw.items()}


def check_spec(table: Any, where: str) -> dict[str, Any]:
    """Channels "0".."n-1"; labels with background 0 and distinct values; one intensity per channel for each label."""
    if not isinstance(table, dict) or set(table) != set(KEYS):
        raise SpecError(f"{where}: a table with exactly the keys {', '.join(KEYS)}")
    channels, labels, intensities = (table[key] for key in KEYS)
    if not channels or sorted(channels) != [str(i) for i in range(len(channels))]:
        raise SpecError(f"{where}.channels: keys must be \"0\"..\"n-1\", got {sorted(channels)}")
    values = list(labels.values())
    if any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in values):
        raise SpecError(f"{where}.labels: values must be non-negative integers, got {values}")
    if labels.get("background") != 0 or len(set(values)) != len(values):
        raise SpecError(f"{where}.labels: needs background = 0 and distinct values")
    if sorted(intensities) != sorted(str(v) for v in values):
        raise SpecError(f"{where}.intensities: one entry per label value {sorted(values)}, got {sorted(intensities)}")
    for key, signal in intensities.items():
        if not isinstance(signal, list) or len(signal) != len(channels) or not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in signal):
            raise SpecError(f"{where}.intensities.{key}: must be a list of {len(channels)} number(s), one per channel")
    return table
