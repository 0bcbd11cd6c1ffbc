"""The package's import graph is a DAG: no subpackage imports, directly or through others, one that imports it.

Every ``import`` / ``from ... import`` in ``src/scmamba`` counts, at module level or inside a function or a
``TYPE_CHECKING`` block: an import deferred into a function still ties the two subpackages together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "scmamba"
#: Names the package root hands out lazily, and the unit that defines them.
ROOT_NAMES = {"SCMAMBA": "model"}


def _unit(path: Path) -> str:
    """The node a file belongs to: its subpackage (``'model'``), or the top-level module (``'_constants'``)."""
    parts = path.relative_to(SRC).with_suffix("").parts
    return parts[0]


def _imported_units(path: Path) -> set[str]:
    """The scmamba units a file imports (absolute ``scmamba.x`` or relative ``..x`` / ``.x`` imports)."""
    package = path.relative_to(SRC.parent).with_suffix("").parts[:-1]  # e.g. ('scmamba', 'model')
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                module = [*base, *(node.module.split(".") if node.module else [])]
                names = [".".join(module)] if node.module else [".".join([*module, a.name]) for a in node.names]
            else:
                names = [node.module or ""]
                names += [f"{node.module}.{a.name}" for a in node.names] if node.module == "scmamba" else []
        for name in names:
            parts = name.split(".")
            if parts[0] == "scmamba" and len(parts) > 1:
                unit = ROOT_NAMES.get(parts[1], parts[1])
                if (SRC / unit).is_dir() or (SRC / f"{unit}.py").is_file():
                    out.add(unit)
    return out


def import_graph() -> dict[str, set[str]]:
    """Unit -> the other units it imports."""
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        unit = _unit(path)
        if unit == "__init__":  # the package root's lazy attribute access names every subpackage
            continue
        graph.setdefault(unit, set()).update(_imported_units(path) - {unit})
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of units (first == last), or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_no_import_cycle_between_subpackages():
    graph = import_graph()
    assert {"model", "module", "nn", "metrics", "tl", "pl"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle: {' -> '.join(cycle)}"


def test_metrics_build_on_tl_and_shared_helpers_are_a_leaf():
    graph = import_graph()
    assert "tl" in graph["metrics"] and "metrics" not in graph["tl"]
    assert graph["_embeddings"] == set()  # shared by metrics, tl and pl: imports nothing from the package


@pytest.mark.parametrize(
    ("graph", "expected"),
    [({"a": {"b"}, "b": {"c"}, "c": set()}, None), ({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"])],
)
def test_find_cycle(graph, expected):
    assert find_cycle(graph) == expected
