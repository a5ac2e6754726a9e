"""The product's import graph has no loop: each sub-package (aimi.dicom, aimi.registry, ...) and each top-level
module is one node, and an import anywhere in a file (function-level ones included) is an edge."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "base" / "aimi"


def _node(module: str) -> str:
    """`aimi.dicom.scan` -> `aimi.dicom` (a sub-package is one node); `aimi.core.case` stays itself."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() else module


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imported(tree: ast.AST) -> set[str]:
    """The aimi modules a file imports (`from aimi.x import y` counts `aimi.x.y` where y is a module)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.split(".")[0] in ("aimi", "aimi_testkit") and _is_module(name)}


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        source = _node(module)
        targets = {_node(name) for name in _imported(ast.parse(path.read_text()))} - {source}
        graph.setdefault(source, set()).update(targets)
    return graph


def find_loop(graph: dict[str, set[str]]) -> list[str]:
    """One loop of the graph as the list of its nodes (first repeated at the end), or [] if there is none."""
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str]:
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return [*path[path.index(target):], target]
            if target not in state and (loop := visit(target, [*path, target])):
                return loop
        state[node] = "done"
        return []

    for start in sorted(graph):
        if start not in state and (loop := visit(start, [start])):
            return loop
    return []


def test_no_import_loop_between_packages() -> None:
    graph = import_graph()
    assert {"aimi.core", "aimi.io", "aimi.inference", "aimi.postprocess", "aimi.brain", "aimi.dicom"} <= set(graph)
    assert find_loop(graph) == []


def test_the_product_does_not_import_the_test_kit_outside_the_testmodel_command() -> None:
    users = {source for source, targets in import_graph().items()
             if any(target.startswith("aimi_testkit") for target in targets)}
    assert users == {"aimi.cli"}


def test_the_loop_finder_finds_a_loop() -> None:
    """The loop that existed before the errors moved out of the module layer: dicom -> module -> case -> dicom."""
    graph = {"aimi.dicom": {"aimi.module"}, "aimi.module": {"aimi.case"}, "aimi.case": {"aimi.dicom"}}
    assert find_loop(graph) == ["aimi.case", "aimi.dicom", "aimi.module", "aimi.case"]
