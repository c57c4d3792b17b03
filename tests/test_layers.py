"""The layer table of DESIGN.md as a test: data flows one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = {"sim", "agents", "grids", "policies", "experiments", "mescosim"}
ALLOWED = {
    "sim": set(),
    "agents": {"sim"},
    "grids": {"sim"},
    "policies": {"sim"},
    "experiments": PROJECT - {"mescosim"},
    "mescosim": PROJECT,  # the public Python API, the top layer
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & PROJECT


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_what_it_may(layer):
    bad = {}
    for path in sorted((ROOT / layer).rglob("*.py")):
        extra = imported_packages(path) - ALLOWED[layer] - {layer}
        if extra:
            bad[str(path.relative_to(ROOT))] = sorted(extra)
    assert not bad, f"{layer} imports layers it must not: {bad}"


def module_imports(path: Path) -> set[str]:
    """Project modules a file imports anywhere (functions included), as dotted names."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        found |= {n for n in names if n.split(".")[0] in PROJECT}
    return found


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), sorted."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def test_no_import_cycles_not_even_inside_functions():
    files = {".".join(p.relative_to(ROOT).with_suffix("").parts): p
             for layer in PROJECT for p in (ROOT / layer).rglob("*.py")}
    modules = {m.removesuffix(".__init__") for m in files}
    graph = {}
    for m, p in files.items():
        graph[m.removesuffix(".__init__")] = {n for n in module_imports(p) if n in modules}
    assert import_cycles(graph) == []


def test_cycle_finder_finds_a_cycle_through_a_function_level_import():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
