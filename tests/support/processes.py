"""Waiting on our subprocesses and servers: a free port, a log to read, a condition to meet,
a child process killed (`kill -9`) at the moment it marks."""

import multiprocessing as mp
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read_log(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def eventually(
    check: Callable[[], bool], what: str = "the condition", timeout: float = 30.0
) -> None:
    """Poll `check` until it is true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


def kill_when_marked(target: Callable[..., None], args: tuple[Any, ...], marker: Path) -> None:
    """Run `target(*args)` in a spawned process and `kill -9` it the moment `marker` exists
    (the child writes it at the point to die in); fail if it ends or never marks."""
    child = mp.get_context("spawn").Process(target=target, args=args)
    child.start()
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert time.monotonic() < deadline and child.is_alive(), f"never marked {marker.name}"
        time.sleep(0.05)
    assert child.pid is not None
    os.kill(child.pid, signal.SIGKILL)
    child.join(timeout=30)
    assert child.exitcode == -signal.SIGKILL
