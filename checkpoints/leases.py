"""Who is running a thread: runner tokens, leases, and whether a runner is still alive.

A token is `host:pid:start:nonce[:nonce]`, where `start` is the process's start time (so a
reused pid is not mistaken for the dead runner). On this host a token is alive while it is
live in its own process — a lease being held, a tool call being executed; a token of another
host is alive while its lease in the database has not expired.
"""

import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_process_tokens: dict[int, str] = {}  # by pid, so a forked child makes its own
_live: set[str] = set()  # this process's tokens in use right now
_live_lock = threading.Lock()


def runner_token() -> str:
    """This process's token, made on first use (never at import time)."""
    pid = os.getpid()
    if pid not in _process_tokens:
        host = socket.gethostname()
        _process_tokens[pid] = f"{host}:{pid}:{_started(pid)}:{uuid.uuid4().hex[:8]}"
    return _process_tokens[pid]


def new_token() -> str:
    """A token for one lease hold or one execution attempt, unique within this process."""
    return f"{runner_token()}:{uuid.uuid4().hex[:8]}"


@contextmanager
def live(token: str) -> Iterator[None]:
    """Mark one of this process's tokens alive for the duration of the block."""
    mark_live(token)
    try:
        yield
    finally:
        mark_done(token)


def mark_live(token: str) -> None:
    with _live_lock:
        _live.add(token)


def mark_done(token: str) -> None:
    with _live_lock:
        _live.discard(token)


def alive_on_this_host(token: str) -> bool | None:
    """True or False for a token of this host; None when this host cannot tell."""
    parts = token.split(":")
    if len(parts) < 4 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return None
    pid = int(parts[1])
    if pid == os.getpid():
        with _live_lock:
            return token == runner_token() or token in _live
    return _started(pid) == parts[2]  # the process is gone, or its pid belongs to another


def _started(pid: int) -> str | None:
    """The start time of a process (clock ticks since boot), or None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "?"  # no /proc here: a live pid is taken as the same process
    return stat.rsplit(")", 1)[-1].split()[19]


def lease_holder(cur: sqlite3.Cursor, thread_id: str) -> str | None:
    """The live holder of a thread's lease, or None if it is free, expired or its holder died."""
    row = cur.execute(
        "SELECT holder, expires_at FROM hitl_leases WHERE thread_id = ?", (thread_id,)
    ).fetchone()
    if row is None:
        return None
    here = alive_on_this_host(row[0])
    if here is not None:  # on this host, liveness decides: a paused holder keeps its lease
        return str(row[0]) if here else None
    return str(row[0]) if row[1] >= time.time() else None


def try_lease(cur: sqlite3.Cursor, thread_id: str, holder: str, ttl: float) -> str | None:
    """Take (or renew) the lease for `holder`; return the other live holder if it is taken."""
    current = lease_holder(cur, thread_id)
    if current is not None and current != holder:
        return current
    cur.execute(
        "INSERT OR REPLACE INTO hitl_leases (thread_id, holder, expires_at) VALUES (?, ?, ?)",
        (thread_id, holder, time.time() + ttl),
    )
    return None


def runner_alive(cur: sqlite3.Cursor, thread_id: str, runner: str) -> bool:
    """Whether the attempt that started a call of this thread may still be executing it."""
    here = alive_on_this_host(runner)
    if here is not None:
        return here
    holder = lease_holder(cur, thread_id)  # another host: alive while its process's lease is
    return holder is not None and holder.rsplit(":", 1)[0] == runner.rsplit(":", 1)[0]
