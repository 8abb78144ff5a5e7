"""`dev.py`, the README's commands, as a new user types them."""

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.environment import REPO_ROOT
from tests.support.processes import eventually, free_port, read_log
from tests.support.services import service_env

DEV_PY = REPO_ROOT / "dev.py"


def _dev_py_venv_is_this_one() -> bool:
    """Whether `dev.py` would use this virtualenv as it is (else it would install one first)."""
    stamp = REPO_ROOT / ".venv" / ".installed-pyproject-sha256"
    return Path(sys.executable).parent == REPO_ROOT / ".venv" / "bin" and stamp.exists()


@contextmanager
def dev_py_serve(tmp: Path, *args: str) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """`python3 dev.py serve ARGS` on `tmp`'s database, in a process group of its own; stopped
    with Ctrl-C (SIGINT to the group, as a terminal sends it)."""
    if not _dev_py_venv_is_this_one():
        pytest.skip("dev.py's .venv is not the one running the tests: it would install first")
    log_path = tmp / "dev-serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(DEV_PY), "serve", *args],
            env=service_env(tmp),
            cwd=tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process, log_path
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


@pytest.mark.slow
def test_dev_py_serve_on_another_port_still_leaves_the_demo_approval_waiting(
    tmp_path: Path,
) -> None:
    port = free_port()
    with dev_py_serve(tmp_path, "--port", str(port), "--no-access-log") as (process, log):
        token: list[str] = []

        def signed_in() -> bool:
            assert process.poll() is None, read_log(log)
            for line in read_log(log).splitlines():
                if "first admin token" in line:
                    token.append(line.rsplit(" ", 1)[-1])
            return bool(token)

        eventually(signed_in, "the service printed its admin token", timeout=60)
        headers = {"Authorization": f"Bearer {token[0]}"}
        url = f"http://127.0.0.1:{port}/approvals"

        def waiting() -> int:
            try:
                return int(httpx.get(url, headers=headers, timeout=5).json()["total"])
            except httpx.TransportError:
                return 0

        eventually(lambda: waiting() == 1, "the demo approval waits in the inbox", timeout=30)


def test_dev_py_bench_help_names_every_benchmark_and_exits_0() -> None:
    shown = subprocess.run(
        [sys.executable, str(DEV_PY), "bench", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert shown.returncode == 0, shown.stdout + shown.stderr
    benchmarks = sorted(p.stem for p in (REPO_ROOT / "bench").glob("*.py") if p.stem[0] != "_")
    for name in benchmarks:
        assert name in shown.stdout, shown.stdout
    assert "python3 dev.py bench NAME --help" in shown.stdout


def options_without_help(help_text: str) -> list[str]:
    """The options an argparse `--help` lists with no text after them (nor under them)."""
    lines = help_text.splitlines()
    missing = []
    for i, line in enumerate(lines):
        if not re.match(r"  -", line):
            continue
        said_here = re.match(r"  \S.*?\s{2,}\S", line)
        below = lines[i + 1] if i + 1 < len(lines) else ""
        said_below = re.match(r"\s{8,}[^\s-]", below)
        if not (said_here or said_below):
            missing.append(line.strip())
    return missing


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", sorted(p.stem for p in (REPO_ROOT / "bench").glob("*.py") if p.stem[0] != "_")
)
def test_every_benchmark_option_says_what_it_does(name: str) -> None:
    shown = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert options_without_help(shown.stdout) == [], shown.stdout
