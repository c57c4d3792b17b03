"""The layer table of DESIGN.md as a test: data flows one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = {"sim", "agents", "grids", "policies", "experiments"}
ALLOWED = {
    "sim": set(),
    "agents": {"sim"},
    "grids": {"sim"},
    "policies": {"sim"},
    "experiments": PROJECT,
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
