"""The layers and package faces declared as import-linter contracts in `pyproject.toml` hold,
and a violation of them fails the check (`lint-imports`, run by `dev.py lint` in CI too)."""

import subprocess
import sys
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
