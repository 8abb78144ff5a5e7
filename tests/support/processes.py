"""Waiting on our subprocesses and servers: a free port, a log to read, a condition to meet."""

import socket
import time
from collections.abc import Callable
from pathlib import Path


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
