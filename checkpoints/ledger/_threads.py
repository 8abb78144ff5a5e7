"""The list of threads: every thread with a checkpoint, newest activity first, with whether a
call of it waits for a person.

No table of ours lists threads; three indexes together do, without reading a checkpoint:
the saver's `checkpoints` primary key (`thread_id, checkpoint_ns, checkpoint_id`) holds every
thread and its newest checkpoint ID (a UUIDv6: it sorts by time and carries its time), the
ledger's rows say which threads have calls waiting for a person, and the run queue's open
runs (where the HTTP service made that table) which threads are being run. One page costs one
pass over the checkpoint index (grouped by thread, as SQLite and PostgreSQL read it in
order), a sort of one row per thread, and the page's own lookups.

A thread that stopped before its end (a crash, with no run queued to finish it), one a CLI
process is running (the run queue is the service's), and one paused at a graph's own
`interrupt()` that is not an approval count as `finished` here: only its checkpoint, which this
list does not read, knows otherwise.
"""

from dataclasses import dataclass
from typing import Any, Literal

from hitl.checkpoints.database import Cursor, scalar, table_exists
from hitl.checkpoints.ledger._schema import WAITING

ThreadStatus = Literal["waiting", "running", "finished"]
ThreadFilter = Literal["all", "waiting", "running", "finished"]
_OPEN_RUN = "status IN ('queued', 'running')"
"""The run queue's open runs, as its partial index spells them."""
_UUID_EPOCH = 0x01B21DD213814000
"""1582-10-15, where UUID time starts, in 100 ns steps before the UNIX epoch."""


@dataclass(frozen=True)
class ThreadQuery:
    """A filter, a search and a page of the thread list."""

    status: ThreadFilter = "all"
    prefix: str = ""
    """Only threads whose ID starts with this (case-sensitive); empty: all."""
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True)
class ThreadSummary:
    """One thread in the list."""

    thread_id: str
    status: ThreadStatus
    """`waiting`: a call waits for a person (a decision, or an unknown outcome to settle);
    `running`: a run of the service is queued or running; `finished`: neither."""
    waiting: int
    """How many of its calls wait for a person."""
    updated_at: float | None
    """When its newest checkpoint was written (UNIX seconds); None if its ID has no time."""


def list_threads(
    cur: Cursor, query: ThreadQuery, *, on_postgres: bool
) -> tuple[list[ThreadSummary], int]:
    """One page of threads, newest activity first, and how many match in all."""
    if not table_exists(cur, "checkpoints"):
        return [], 0
    runs = table_exists(cur, "hitl_runs")
    where, params = ["checkpoint_ns = ''"], list[Any]()
    if query.prefix:
        where.append("substr(thread_id, 1, ?) = ?")
        params += [len(query.prefix), query.prefix]
        if not on_postgres:  # a range of the index; PostgreSQL's collation may not be bytes
            where.append("thread_id >= ?")
            params.append(query.prefix)
            if (above := _just_above(query.prefix)) is not None:
                where.append("thread_id < ?")
                params.append(above)
    threads = (
        "SELECT thread_id, MAX(checkpoint_id) AS newest FROM checkpoints "
        f"WHERE {' AND '.join(where)} GROUP BY thread_id"
    )
    waiting = f"SELECT thread_id FROM hitl_approvals WHERE {WAITING}"
    running = f"SELECT thread_id FROM hitl_runs WHERE {_OPEN_RUN}" if runs else None
    match query.status:
        case "waiting":
            chosen = f"t.thread_id IN ({waiting})"
        case "running":
            if running is None:
                return [], 0
            chosen = f"t.thread_id NOT IN ({waiting}) AND t.thread_id IN ({running})"
        case "finished":
            chosen = f"t.thread_id NOT IN ({waiting})"
            if running is not None:
                chosen += f" AND t.thread_id NOT IN ({running})"
        case _:
            chosen = "1 = 1"
    open_runs = (
        f"EXISTS (SELECT 1 FROM hitl_runs r WHERE r.thread_id = p.thread_id AND r.{_OPEN_RUN})"
        if runs
        else "0 = 1"
    )
    rows = cur.execute(
        "SELECT p.thread_id, p.newest, "
        "(SELECT COUNT(*) FROM hitl_approvals a WHERE a.thread_id = p.thread_id "
        f"AND a.{WAITING}), {open_runs} FROM ("
        f"SELECT t.thread_id, t.newest FROM ({threads}) t WHERE {chosen} "
        "ORDER BY t.newest DESC, t.thread_id LIMIT ? OFFSET ?) p "
        "ORDER BY p.newest DESC, p.thread_id",
        (*params, query.limit, query.offset),
    ).fetchall()
    total = scalar(cur.execute(f"SELECT COUNT(*) FROM ({threads}) t WHERE {chosen}", params))
    return [_summary(*row) for row in rows], int(total or 0)


def _summary(thread_id: str, newest: str, waiting: int, running: object) -> ThreadSummary:
    status: ThreadStatus = "waiting" if waiting else "running" if running else "finished"
    return ThreadSummary(thread_id, status, int(waiting), checkpoint_time(newest))


def checkpoint_time(checkpoint_id: str) -> float | None:
    """When a checkpoint was made, from its ID (LangGraph's are UUIDv6: time first)."""
    try:
        value = int(checkpoint_id.replace("-", ""), 16)
    except ValueError:
        return None
    if len(checkpoint_id) != 36 or (value >> 76) & 0xF != 6:
        return None
    ticks = ((value >> 80) << 12) | ((value >> 64) & 0x0FFF)
    return (ticks - _UUID_EPOCH) / 10_000_000


def _just_above(prefix: str) -> str | None:
    """The smallest text above every text that starts with `prefix` (SQLite compares UTF-8
    bytes, in code point order); None if there is none to spell."""
    last = ord(prefix[-1]) + 1
    if last > 0x10FFFF or 0xD800 <= last <= 0xDFFF:
        return None
    return prefix[:-1] + chr(last)
