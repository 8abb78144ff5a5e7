"""The wheel, installed in a fresh virtualenv beside a user's own project: one top-level package
(`hitl`) whose graph and checkpoints are real files, and a `hitl` command that needs neither
pytest nor PostgreSQL's driver."""

import csv
import io
import json
import shutil
import stat
import subprocess
import sys
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.environment import process_environment

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_SECONDS = 300
INSTALL_TIMEOUT_SECONDS = 900
"""pip resolves and installs every runtime dependency: minutes on two cores and a cold cache."""
RUN_TIMEOUT_SECONDS = 120
NOT_RUNTIME = ("pytest", "psycopg", "psycopg_pool", "langgraph.checkpoint.postgres")
"""Modules of the dev and postgres extras, which a plain install must not pull in."""
FIND = """
import importlib.util, json, sys
print(json.dumps([name for name in sys.argv[1:] if importlib.util.find_spec(name)]))
"""
"""Prints which of the modules named in its arguments are installed."""
NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*_cache", "*.sqlite*"
)

USER_CHECK = """
import json, sys
import graph, checkpoints
import hitl, hitl.graph, hitl.checkpoints.ledger
import hitl.cli, hitl.server.app, uvicorn  # what `hitl serve` loads
print(json.dumps({
    "graph": graph.WHO,
    "checkpoints": checkpoints.WHO,
    "user_graph_file": graph.__file__,
    "build_graph": callable(getattr(hitl.graph, "build_graph", None)),
    "ledger_file": hitl.checkpoints.ledger.__file__,
    "still_users": sys.modules["graph"] is graph and sys.modules["checkpoints"] is checkpoints,
}))
"""
"""Run in the user's project: their `graph` and `checkpoints`, then ours, then theirs again."""


@dataclass(frozen=True)
class Installed:
    source: Path
    """The copy of the checkout the wheel was built from."""
    wheel: Path
    venv: Path
    project: Path
    """A user's project with its own `graph.py` and `checkpoints/` package."""

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A test subprocess's environment without what would let the checkout or the dev venv
    leak in, plus `extra`."""
    leaky = ("PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH", "VIRTUAL_ENV")
    env = {k: v for k, v in process_environment({}).items() if k not in leaky}
    env.update(PYTHONNOUSERSITE="1")
    env.update(extra or {})
    return env


def _run(
    args: Sequence[str | Path],
    *,
    timeout: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=dict(env or _env()),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, (
        f"{' '.join(map(str, args))} exited {done.returncode}\n"
        f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}"
    )
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("packaging")
    source = tmp / "source"
    # a copy: setuptools leaves build/ in the tree it builds from, and stale files in build/lib
    # end up in the next wheel
    shutil.copytree(ROOT, source, symlinks=True, ignore=NOT_COPIED)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    _run([*pip, "wheel", "--no-deps", source, "-w", tmp / "dist"], timeout=BUILD_TIMEOUT_SECONDS)
    (wheel,) = (tmp / "dist").glob("*.whl")
    venv = tmp / "venv"
    # no pip of its own: this pip installs into it (and reuses its cache)
    _run([sys.executable, "-m", "venv", "--without-pip", venv], timeout=RUN_TIMEOUT_SECONDS)
    _run(
        [*pip, "--python", venv / "bin" / "python", "install", wheel],
        timeout=INSTALL_TIMEOUT_SECONDS,
    )
    project = tmp / "project"
    (project / "checkpoints").mkdir(parents=True)
    (project / "graph.py").write_text('WHO = "user graph"\n')
    (project / "checkpoints" / "__init__.py").write_text('WHO = "user checkpoints"\n')
    return Installed(source, wheel, venv, project)


def _top_level(paths: Sequence[str]) -> set[str]:
    """First path components, without the dist-info folder and the scripts outside it."""
    return {
        p.split("/")[0] for p in paths if not p.startswith("..") and ".dist-info/" not in p + "/"
    }


def test_the_wheel_holds_one_top_level_package_with_graph_and_checkpoints_as_real_files(
    installed: Installed,
) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        entries = {info.filename: info for info in wheel.infolist()}
        (record,) = [name for name in entries if name.endswith(".dist-info/RECORD")]
        recorded = [row[0] for row in csv.reader(io.StringIO(wheel.read(record).decode()))]
        (top_level,) = [name for name in entries if name.endswith(".dist-info/top_level.txt")]
        declared = wheel.read(top_level).decode().split()
    assert _top_level(list(entries)) == {"hitl"}, sorted(_top_level(list(entries)))
    assert _top_level(recorded) == {"hitl"}, sorted(_top_level(recorded))
    assert declared == ["hitl"]
    expected = [
        f"hitl/{path.relative_to(installed.source).as_posix()}"
        for folder in ("graph", "checkpoints/ledger")
        for path in sorted((installed.source / folder).glob("*.py"))
    ]
    assert any(p.startswith("hitl/graph/") for p in expected)
    assert any(p.startswith("hitl/checkpoints/ledger/") for p in expected)
    missing = [p for p in expected if p not in entries]
    assert not missing, f"not in the wheel: {missing}"
    links = [p for p in expected if stat.S_ISLNK(entries[p].external_attr >> 16)]
    assert not links, f"symbolic links in the wheel, not files: {links}"
    assert all(entries[p].file_size > 0 or p.endswith("__init__.py") for p in expected)


def test_installing_adds_hitl_and_no_graph_or_checkpoints_package_to_site_packages(
    installed: Installed,
) -> None:
    purelib = _run(
        [installed.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        timeout=RUN_TIMEOUT_SECONDS,
    ).stdout.strip()
    site = Path(purelib)
    assert (site / "hitl" / "graph" / "builder.py").is_file()
    assert not (site / "hitl" / "graph").is_symlink()
    clashes = [
        name
        for name in ("graph", "checkpoints")
        if (site / name).exists() or (site / f"{name}.py").exists()
    ]
    assert not clashes, f"site-packages holds top-level {clashes}: a user's own would collide"


def test_a_users_own_graph_and_checkpoints_modules_live_beside_ours(
    installed: Installed,
) -> None:
    done = _run(
        [installed.python, "-c", USER_CHECK], cwd=installed.project, timeout=RUN_TIMEOUT_SECONDS
    )
    seen = json.loads(done.stdout)
    assert seen["graph"] == "user graph"
    assert seen["checkpoints"] == "user checkpoints"
    assert Path(seen["user_graph_file"]).parent == installed.project
    assert seen["build_graph"], "hitl.graph.build_graph is missing"
    assert Path(seen["ledger_file"]).is_relative_to(installed.venv), "not the installed package"
    assert seen["still_users"], "importing hitl replaced the user's graph or checkpoints"


def test_the_installed_hitl_command_runs_without_pytest_or_psycopg(
    installed: Installed,
) -> None:
    found = _run([installed.python, "-c", FIND, *NOT_RUNTIME], timeout=RUN_TIMEOUT_SECONDS)
    assert json.loads(found.stdout) == [], "the dev or postgres extras got installed"
    hitl = installed.venv / "bin" / "hitl"
    helped = _run([hitl, "--help"], cwd=installed.project, timeout=RUN_TIMEOUT_SECONDS)
    assert "Usage: hitl" in helped.stdout
    env = _env({"HITL_DB": str(installed.project / "hitl.sqlite")})
    _run([hitl, "db", "migrate"], cwd=installed.project, env=env, timeout=RUN_TIMEOUT_SECONDS)
    pending = _run([hitl, "pending"], cwd=installed.project, env=env, timeout=RUN_TIMEOUT_SECONDS)
    assert "nothing is waiting" in pending.stdout
