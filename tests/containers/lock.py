"""The lock (constraints.txt) and the native environment's runtime stack, for comparing them with the images."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
#: Runtime packages `pip freeze` (so `make lock`) never lists: the lock may lack them; where it has them, it rules.
NOT_FROZEN = frozenset({"setuptools", "argparse"})


def normal(name: str) -> str:
    """PEP 503 normalised project name, so `PyYAML`, `pyyaml` and `py_yaml` compare equal."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins() -> dict[str, str]:
    """constraints.txt as {name: version}."""
    lines = (REPO / "constraints.txt").read_text().splitlines()
    return {normal(name): version for name, _, version in
            (line.partition("==") for line in lines if line.strip() and not line.startswith("#"))}


def runtime_stack(root: str = "aimi") -> dict[str, str]:
    """{name: version} of what `root` needs at run time in this (native) environment: its requirements without its
    extras, followed transitively (with the extras each requirement asks for). This is what an image must hold."""
    seen: dict[str, str] = {}
    visited: set[tuple[str, frozenset[str]]] = set()
    todo = [(root, frozenset[str]())]
    while todo:
        name, extras = todo.pop()
        if (normal(name), extras) in visited:
            continue
        visited.add((normal(name), extras))
        dist = metadata.distribution(name)
        seen[normal(name)] = dist.version
        for text in dist.requires or []:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": extra}) for extra in {"", *extras}):
                todo.append((requirement.name, frozenset(requirement.extras)))
    return seen
