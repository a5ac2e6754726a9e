"""What `aimi evaluate` reads from a task's model folder: `evaluation.toml` (composite regions) and `figures.toml`
(the published figures).

Reads: models/<name>/evaluation.toml, the model whose name ends in `_<task>`. A model without one has no
composites; a malformed entry is a ValueError naming the file.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from aimi.models import available_models, load_model


@dataclass(frozen=True)
class Composite:
    """A region evaluated like a segment: the union of the segments whose property types are `parts`."""

    name: str
    parts: tuple[str, ...]
    tolerance_mm: float
    source: str

    @property
    def property_type(self) -> str:
        return f"composite:{self.name}"


def model_file(task: str, name: str) -> Path | None:
    """models/<model>/<name> of the model whose name ends in `_<task>`, if it has one."""
    models = [model for model in available_models() if model.rsplit("_", 1)[-1] == task]
    path = load_model(models[0]).path / name if models else None
    return path if path and path.is_file() else None


@cache
def composites(task: str) -> tuple[Composite, ...]:
    """The task's composite regions, as its model's evaluation.toml declares them."""
    path = model_file(task, "evaluation.toml")
    if path is None:
        return ()
    with path.open("rb") as stream:
        entries = tomllib.load(stream).get("composite", [])
    try:
        return tuple(Composite(str(e["name"]), tuple(str(p) for p in e["parts"]), float(e["tolerance_mm"]),
                               str(e["source"])) for e in entries)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: a [[composite]] needs name, parts, tolerance_mm and source ({error})") from error
