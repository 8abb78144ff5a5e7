"""The layers and package faces declared as import-linter contracts in `pyproject.toml` hold,
and a violation of them fails the check (`lint-imports`, run by `dev.py lint` in CI too); and
the tests' own rule: no test module is imported by another module (helpers live in
`tests/support`, fixtures in `conftest.py`)."""

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint_imports() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_every_layer_and_package_face_contract_is_kept() -> None:
    done = _lint_imports()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout
    for face in ("database", "savers", "ledger", "stores", "maintenance"):
        assert f"Face of hitl.checkpoints.{face}" in done.stdout


def test_an_http_route_importing_a_store_breaks_the_contracts() -> None:
    """Lower layers never import upper ones, routes never reach the ledger, and nobody
    imports a storage package's private modules: one probe module breaks all three."""
    probe = ROOT / "hitl" / "server" / "api" / "probe_violation.py"
    probe.write_text(
        "from hitl.checkpoints.ledger import _ledger\n"  # a private module, from a route
        "from hitl.checkpoints.ledger import Ledger\n"
    )
    lower = ROOT / "checkpoints" / "probe_violation.py"
    lower.write_text("from hitl.service import workflow\n")  # storage importing the service
    try:
        done = _lint_imports()
    finally:
        probe.unlink()
        lower.unlink()
    assert done.returncode != 0
    assert "HTTP routes and the web inbox decide through the service, never on storage BROKEN" in (
        done.stdout
    )
    assert "hitl.server.api.probe_violation -> hitl.checkpoints.ledger" in done.stdout
    assert "Face of hitl.checkpoints.ledger: its _modules are its own BROKEN" in done.stdout
    assert "hitl.checkpoints.probe_violation -> hitl.service.workflow" in done.stdout


PLUGIN_SPEC = re.compile(r"^(tests(?:\.\w+)+):\w+$")
"""A `HITL_TOOLS` / `HITL_POLICY` value naming a module of the tests (loaded by name)."""


def _test_modules_used(tree: ast.Module, package: str) -> Iterator[str]:
    """The test modules (`test_*`) and `conftest` modules that code of `package` imports, or
    names as a plugin to load."""
    for node in ast.walk(tree):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            module = ".".join([*base, node.module] if node.level else [node.module or ""])
            modules = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found = PLUGIN_SPEC.match(node.value)
            modules = [found.group(1)] if found else []
        for module in modules:
            last = module.rsplit(".", 1)[-1]
            if module.startswith("tests.") and (last.startswith("test_") or last == "conftest"):
                yield module


def test_no_test_module_is_imported_by_another_module_of_the_tests() -> None:
    """A test module imported elsewhere, or loaded by name, couples two files of tests."""
    found = {}
    for path in sorted((ROOT / "tests").rglob("*.py")):
        package = ".".join(path.relative_to(ROOT).parent.parts)
        used = sorted(set(_test_modules_used(ast.parse(path.read_text()), package)))
        if used:
            found[str(path.relative_to(ROOT))] = used
    assert found == {}


def test_an_import_of_another_test_module_or_a_conftest_is_found() -> None:
    """The check above can fail: each way of reaching a test module is seen."""
    probe = ast.parse(
        "from tests.integration.test_http_api import Api\n"
        "from tests.e2e import conftest\n"
        "from .test_cli import seed\n"
        "import tests.support.harness, tests.unit.test_policy\n"
        "POLICY = 'tests.integration.test_races:EXPIRING'\n"
        "TOOLS = 'tests.support.plugins:slow_tools'\n"
    )
    assert sorted(set(_test_modules_used(probe, "tests.e2e"))) == [
        "tests.e2e.conftest",
        "tests.e2e.test_cli",
        "tests.integration.test_http_api",
        "tests.integration.test_races",
        "tests.unit.test_policy",
    ]
