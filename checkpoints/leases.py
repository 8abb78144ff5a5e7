"""Who is running a thread: runner tokens, leases, and whether a runner is still alive.

A token is `host:pid:nonce`. On this host a runner is alive while its process is; a runner on
another host is alive while its lease in the database has not expired.
"""

import os
import socket
import sqlite3
import time
import uuid
from functools import cache


@cache
def runner_token() -> str:
    """This process's token, made on first use (never at import time)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def lease_holder_token() -> str:
    """A token for one hold of a lease: this process's token plus a nonce of its own."""
    return f"{runner_token()}:{uuid.uuid4().hex[:8]}"


def process_of(token: str) -> tuple[str, int] | None:
    """The (host, pid) a token names, or None if it is not one of ours."""
    parts = token.split(":")
    if len(parts) < 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


def alive_on_this_host(token: str) -> bool | None:
    """True or False for a token of this host's processes; None when this host cannot tell."""
    where = process_of(token)
    if where is None or where[0] != socket.gethostname():
        return None
    if where[1] == os.getpid():
        return token.startswith(runner_token())
    try:
        os.kill(where[1], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lease_holder(cur: sqlite3.Cursor, thread_id: str) -> str | None:
    """The live holder of a thread's lease, or None if it is free, expired or its holder died."""
    row = cur.execute(
        "SELECT holder, expires_at FROM hitl_leases WHERE thread_id = ?", (thread_id,)
    ).fetchone()
    if row is None or row[1] < time.time():
        return None
    if alive_on_this_host(row[0]) is False:
        return None
    return str(row[0])


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
    """Whether the runner that started a call of this thread may still be executing it."""
    here = alive_on_this_host(runner)
    if here is not None:
        return here
    holder = lease_holder(cur, thread_id)
    return holder is not None and holder.startswith(runner)
