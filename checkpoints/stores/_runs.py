"""The run queue: the HTTP service's durable record of the work it accepted.

A request that starts or resumes a thread is answered once its run is a row here (and any
decision is in the ledger); background workers then claim runs, one thread at a time and in
the order they were accepted. A worker holds a runner token (see `checkpoints.leases`) while
it runs: if its process dies, even by `kill -9`, the token dies with it and the next claim
puts the run back in the queue, so a restart finishes every run that was in flight. The
thread's checkpoints and the ledger's journal make the second attempt continue, not repeat.
"""

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hitl.checkpoints.database import Cursor, PgCursor, Store, notify, scalar, store_connection
from hitl.checkpoints.ledger import alive_on_this_host
from hitl.checkpoints.records import iso

RunKind = Literal["message", "resume"]
RunStatus = Literal["queued", "running", "done", "failed"]
FINISHED: tuple[RunStatus, ...] = ("done", "failed")
MAX_ATTEMPTS = 5
"""A run whose runner died this many times is failed, not tried again (a poison run would
otherwise block its thread's later runs forever)."""
OTHER_HOST_SILENCE_SECONDS = 60.0
"""A runner on another host whose heartbeat is older than this is taken for dead."""

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS hitl_runs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL UNIQUE,
        thread_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        actor TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        not_before REAL NOT NULL DEFAULT 0,
        runner TEXT,
        heartbeat_at REAL,
        error TEXT,
        error_type TEXT,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL
    )""",
    "CREATE INDEX IF NOT EXISTS hitl_runs_open ON hitl_runs (thread_id, seq) "
    "WHERE status IN ('queued', 'running')",
    "CREATE INDEX IF NOT EXISTS hitl_runs_thread ON hitl_runs (thread_id, seq)",
    # what `claim` looks at, whatever the number of finished runs
    "CREATE INDEX IF NOT EXISTS hitl_runs_queued ON hitl_runs (seq) WHERE status = 'queued'",
    "CREATE INDEX IF NOT EXISTS hitl_runs_running ON hitl_runs (seq) WHERE status = 'running'",
)
_COLUMNS = (
    "run_id, thread_id, kind, payload, actor, status, attempts, runner, error, error_type, "
    "created_at, started_at, finished_at"
)


@dataclass(frozen=True)
class Run:
    """One unit of accepted work on a thread."""

    run_id: str
    thread_id: str
    kind: RunKind
    payload: dict[str, Any]
    actor: str
    status: RunStatus
    attempts: int
    runner: str | None
    error: str | None
    error_type: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "thread_id": self.thread_id,
            "kind": self.kind,
            "status": self.status,
            "attempts": self.attempts,
            "actor": self.actor,
            "error": None
            if self.error is None
            else {"type": self.error_type, "message": self.error},
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
        }


class RunQueue(Store):
    """Runs in the database beside the checkpoints. Thread-safe."""

    SCHEMA = _SCHEMA

    def enqueue(self, thread_id: str, kind: RunKind, payload: dict[str, Any], *, actor: str) -> Run:
        """Accept a run: once this returns, it is on disk and will be run."""
        run_id = str(uuid.uuid4())

        def work(cur: Cursor) -> Run:
            cur.execute(
                "INSERT INTO hitl_runs (run_id, thread_id, kind, payload, actor, status, "
                "created_at) VALUES (?, ?, ?, ?, ?, 'queued', ?)",
                (run_id, thread_id, kind, json.dumps(payload), actor, time.time()),
            )
            _announce(cur)
            return _require(cur, run_id)

        return self._write(work)

    def enqueue_resume(self, thread_id: str, *, actor: str) -> Run | None:
        """Queue a resume of the thread unless it has a run queued or running already (that
        run applies whatever was recorded); the new run, or None."""

        def work(cur: Cursor) -> Run | None:
            if cur.execute(
                "SELECT 1 FROM hitl_runs WHERE thread_id = ? AND status IN ('queued', 'running')",
                (thread_id,),
            ).fetchone():
                return None
            run_id = str(uuid.uuid4())
            cur.execute(
                "INSERT INTO hitl_runs (run_id, thread_id, kind, payload, actor, status, "
                "created_at) VALUES (?, ?, 'resume', '{}', ?, 'queued', ?)",
                (run_id, thread_id, actor, time.time()),
            )
            _announce(cur)
            return _require(cur, run_id)

        return self._write(work)

    def claim(self, runner: str) -> Run | None:
        """Take the oldest runnable run: queued, due, and first of its thread's open runs.

        Runs whose runner died are put back first. `runner` must be a live token. Looks
        first without the write lock: an idle worker polls, and most polls find nothing.
        """
        if not any(self.open_counts().values()):
            return None

        def work(cur: Cursor) -> Run | None:
            _requeue_dead(cur)
            now = time.time()
            row = cur.execute(
                "SELECT r.run_id, r.attempts FROM hitl_runs r WHERE r.status = 'queued' "
                "AND r.not_before <= ? AND NOT EXISTS (SELECT 1 FROM hitl_runs o "
                "WHERE o.thread_id = r.thread_id AND o.status IN ('queued', 'running') "
                "AND o.seq < r.seq) ORDER BY r.seq LIMIT 1",
                (now,),
            ).fetchone()
            if row is None:
                return None
            if row[1] >= MAX_ATTEMPTS:  # its runner died every time: stop, let the next go
                cur.execute(
                    "UPDATE hitl_runs SET status = 'failed', error_type = 'GaveUp', error = ?, "
                    "finished_at = ? WHERE run_id = ?",
                    (
                        f"its runner died {row[1]} times (killed, or out of memory?); not "
                        "tried again: look at the service's log, then resume the thread",
                        now,
                        row[0],
                    ),
                )
                return None  # the next claim takes the next run
            cur.execute(
                "UPDATE hitl_runs SET status = 'running', runner = ?, heartbeat_at = ?, "
                "started_at = COALESCE(started_at, ?), attempts = attempts + 1 "
                "WHERE run_id = ?",
                (runner, now, now, row[0]),
            )
            return _require(cur, row[0])

        return self._write(work)

    def finish(
        self, run_id: str, runner: str | None, *, error: BaseException | None = None
    ) -> Run | None:
        """Record how a run that `runner` claimed ended; None if it is no longer `runner`'s
        (it was taken for dead and claimed again: the new claimant records it)."""

        def work(cur: Cursor) -> Run | None:
            changed = cur.execute(
                "UPDATE hitl_runs SET status = ?, error = ?, error_type = ?, finished_at = ?, "
                "runner = NULL WHERE run_id = ? AND runner = ?",
                (
                    "done" if error is None else "failed",
                    None if error is None else str(error) or type(error).__name__,
                    None if error is None else type(error).__name__,
                    time.time(),
                    run_id,
                    runner,
                ),
            ).rowcount
            if changed:
                _announce(cur, run_id)
            return _require(cur, run_id) if changed else None

        return self._write(work)

    def postpone(self, run_id: str, runner: str | None, seconds: float, why: str) -> None:
        """Put a run that `runner` claimed back in the queue, due in `seconds` (its thread
        was busy); waiting does not count as an attempt."""
        self._write(
            lambda cur: cur.execute(
                "UPDATE hitl_runs SET status = 'queued', runner = NULL, not_before = ?, "
                "error = ?, attempts = attempts - 1 WHERE run_id = ? AND runner = ?",
                (time.time() + seconds, why, run_id, runner),
            )
        )

    def heartbeat(self, runners: list[str]) -> None:
        """Say that these runners are still at work (read by other hosts)."""
        if runners:
            marks = ", ".join("?" * len(runners))
            self._write(
                lambda cur: cur.execute(
                    f"UPDATE hitl_runs SET heartbeat_at = ? WHERE runner IN ({marks})",
                    (time.time(), *runners),
                )
            )

    def requeue_dead(self) -> int:
        """Put back every run whose runner died; how many (a restart's first step)."""
        return self._write(_requeue_dead)

    def get(self, run_id: str) -> Run | None:
        return self._read(lambda cur: _get(cur, run_id))

    def of_thread(self, thread_id: str, limit: int = 20) -> list[Run]:
        """The thread's newest runs, newest first."""

        def work(cur: Cursor) -> list[Run]:
            rows = cur.execute(
                f"SELECT {_COLUMNS} FROM hitl_runs WHERE thread_id = ? ORDER BY seq DESC LIMIT ?",
                (thread_id, limit),
            ).fetchall()
            return [_run_of(r) for r in rows]

        return self._read(work)

    def open_counts(self) -> dict[str, int]:
        """How many runs are queued and running (from their partial indexes: as fast with a
        long history of finished runs as with none)."""

        def work(cur: Cursor) -> dict[str, int]:
            return {
                status: scalar(
                    cur.execute(f"SELECT COUNT(*) FROM hitl_runs WHERE status = '{status}'")
                )
                for status in ("queued", "running")
            }

        return self._read(work)

    def counts(self) -> dict[str, int]:
        """How many runs are in each status."""

        def work(cur: Cursor) -> dict[str, int]:
            rows = cur.execute("SELECT status, COUNT(*) FROM hitl_runs GROUP BY status")
            return {status: count for status, count in rows}

        return self._read(work)


@contextmanager
def open_run_queue(path: Path | str) -> Iterator[RunQueue]:
    """The run queue in the database at `path` (its table created if missing)."""
    queue = RunQueue(store_connection(path), path=str(path))
    try:
        yield queue
    finally:
        queue.close()


def _announce(cur: Cursor, finished: str = "") -> None:
    """On PostgreSQL, tell every process's workers a run was queued (or, with its ID, that
    it finished: for whoever waits on it), at the commit."""
    if isinstance(cur, PgCursor):
        notify(cur, "runs", finished)


def _requeue_dead(cur: Cursor) -> int:
    stale = time.time() - OTHER_HOST_SILENCE_SECONDS
    dead = [
        run_id
        for run_id, runner, heartbeat_at in cur.execute(
            "SELECT run_id, runner, heartbeat_at FROM hitl_runs WHERE status = 'running'"
        ).fetchall()
        if not _runner_alive(runner, heartbeat_at, stale)
    ]
    for run_id in dead:
        cur.execute(
            "UPDATE hitl_runs SET status = 'queued', runner = NULL, not_before = 0 "
            "WHERE run_id = ?",
            (run_id,),
        )
    return len(dead)


def _runner_alive(runner: str | None, heartbeat_at: float | None, stale: float) -> bool:
    if runner is None:
        return False
    here = alive_on_this_host(runner)
    if here is not None:
        return here
    return heartbeat_at is not None and heartbeat_at >= stale


def _get(cur: Cursor, run_id: str) -> Run | None:
    row = cur.execute(f"SELECT {_COLUMNS} FROM hitl_runs WHERE run_id = ?", (run_id,)).fetchone()
    return None if row is None else _run_of(row)


def _require(cur: Cursor, run_id: str) -> Run:
    run = _get(cur, run_id)
    assert run is not None
    return run


def _run_of(row: tuple[Any, ...]) -> Run:
    (run_id, thread_id, kind, payload, actor, status, attempts, runner, error, error_type,
     created_at, started_at, finished_at) = row  # fmt: skip
    return Run(
        run_id=run_id,
        thread_id=thread_id,
        kind=kind,
        payload=json.loads(payload),
        actor=actor,
        status=status,
        attempts=attempts,
        runner=runner,
        error=error,
        error_type=error_type,
        created_at=created_at,
        started_at=started_at,
        finished_at=finished_at,
    )
