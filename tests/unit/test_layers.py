"""The layers import downwards only: graph and checkpoints never import the service layer."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"graph": {"checkpoints", "hitl"}, "checkpoints": {"graph", "hitl"}}


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_do_not_import_upper_ones(package: str) -> None:
    for module in (ROOT / package).rglob("*.py"):
        if module.name == "studio.py":  # the langgraph.json entry points compose layers
            continue
        wrong = _imported_packages(module) & FORBIDDEN[package]
        assert not wrong, f"{module.relative_to(ROOT)} imports {wrong}"
