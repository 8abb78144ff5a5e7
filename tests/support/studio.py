"""Running the real `langgraph dev` server in a subprocess, on a free port and throwaway files."""

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk.client import get_sync_client

from hitl.checkpoints.urls import DatabaseName
from tests.support.environment import REPO_ROOT, hitl_environment, process_environment
from tests.support.processes import free_port, read_log

LANGGRAPH = Path(sys.executable).parent / "langgraph"
STARTUP_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0
LOG_TAIL_CHARS = 8000
E2E_METADATA = {"created_by": "tests/e2e"}
"""Tags the threads the tests create, so teardown can delete them."""
RELOAD_MARKER = "Reloading..."
"""What uvicorn logs when its file watcher restarts the server."""


def server_env(
    db: DatabaseName, outbox: Path, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of an offline, isolated `langgraph dev` on `db` (with `extra`
    settings, such as the `HITL_GRAPH` it serves)."""
    return process_environment(
        hitl_environment(
            db,
            outbox,
            {
                "LANGGRAPH_NO_VERSION_CHECK": "true",  # else a thread asks PyPI for a newer one
                "LANGGRAPH_CLI_NO_ANALYTICS": "1",
                "LOG_COLOR": "false",  # keep the captured log readable
                **(extra or {}),
            },
        )
    )


@dataclass(frozen=True)
class StudioServer:
    """A running `langgraph dev` and the files it writes."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    db_path: DatabaseName
    outbox_path: Path

    def reloads(self) -> list[str]:
        """The log lines where the file watcher restarted the server."""
        return [line for line in read_log(self.log_path).splitlines() if RELOAD_MARKER in line]

    def worker_pids(self) -> frozenset[int] | None:
        """The uvicorn worker processes under the supervisor; every reload starts a new one.

        `None` where `/proc` cannot list children (not Linux); the log check still applies.
        """
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            pids = [int(pid) for pid in children.read_text().split()]
            return frozenset(
                pid for pid in pids if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
            )
        except OSError:
            return None


def _wait_until_ready(process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"langgraph dev exited with {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{url}/ok", timeout=2) as response:
                # our server's banner names its URL; without it, /ok came from someone else
                if response.status == 200 and url in read_log(log_path):
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    pytest.fail(f"langgraph dev did not answer {url}/ok within {STARTUP_TIMEOUT_SECONDS:.0f} s")


def _delete_test_threads(url: str) -> None:
    # The in-memory runtime keeps its thread list in the repo's .langgraph_api/, which a
    # developer's own `langgraph dev` reloads; leave no test threads behind in it.
    with contextlib.suppress(Exception):  # best effort: the server may be failing already
        client = get_sync_client(url=url, timeout=10)
        for thread in client.threads.search(metadata=E2E_METADATA, limit=1000):
            client.threads.delete(thread["thread_id"])


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, then SIGKILL whatever is left of it."""
    group = process.pid  # start_new_session=True made the server its group's leader
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    # uvicorn's worker and multiprocessing's resource tracker can outlive the supervisor
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_TIMEOUT_SECONDS)


@contextlib.contextmanager
def run_studio_server(
    tmp_path: Path, db: DatabaseName, extra: Mapping[str, str] | None = None
) -> Iterator[StudioServer]:
    """Start `langgraph dev` from the repo root with `HITL_DB=db`; stop it and its children after.

    The server's output goes to `tmp_path/langgraph-dev.log`; its tail is printed on the way
    out, so pytest shows it under the report of a failed test.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "langgraph-dev.log"
    command = [str(LANGGRAPH), "dev", "--no-browser", "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=server_env(db, tmp_path / "outbox.jsonl", extra),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_until_ready(process, url, log_path)
            # langgraph dev silently moves to another port when ours was taken meanwhile
            if "already in use" in read_log(log_path):
                pytest.fail(f"port {port} was taken before langgraph dev could bind it")
            yield StudioServer(url, process, log_path, db, tmp_path / "outbox.jsonl")
        finally:
            if process.poll() is None:
                _delete_test_threads(url)
            _stop(process)
            print(f"--- tail of {log_path} ---\n{read_log(log_path)[-LOG_TAIL_CHARS:]}")


def agent_chat_ui_acts_on(value: Any) -> bool:
    """The checks Agent Chat UI makes before it shows buttons for an interrupt (its
    `isHumanInterruptSchema`: batched `action_requests` and `review_configs`)."""
    if not isinstance(value, dict):
        return False
    actions, configs = value.get("action_requests"), value.get("review_configs")
    return (
        isinstance(actions, list)
        and bool(actions)
        and all(isinstance(a["name"], str) and isinstance(a["args"], dict) for a in actions)
        and isinstance(configs, list)
        and bool(configs)
        and all(
            isinstance(c["action_name"], str) and isinstance(c["allowed_decisions"], list)
            for c in configs
        )
    )
