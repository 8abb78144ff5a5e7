"""Retention: trim or delete finished threads' checkpoints, and give the space back.

A thread is *finished* when its newest root checkpoint schedules nothing, no interrupt is
pending on it, no run is queued or running for it, nobody holds its lease, and the ledger has
no call of it pending, running, with an unknown outcome or with a decision not yet applied.
Anything else is never touched. Pruning keeps each finished thread's newest checkpoint per
namespace (with the messages it reaches) or, with an age, deletes threads finished longer ago
entirely — never their ledger rows or audit trail, so every chain still verifies.

Threads are judged in batches over a read snapshot, then each batch is deleted in one write
transaction that judges every thread again (cheap SQL, no deserializing) and skips any that
changed meanwhile: a new run that started after the judgement keeps its thread whole.

Both backends run the same code: on PostgreSQL the checkpoint rows are LangGraph's (a JSON
checkpoint, its channel values in `checkpoint_blobs`, writes in `checkpoint_writes`), and a
trim also deletes the blobs no kept checkpoint refers to. There, freed space is PostgreSQL's
to reuse (autovacuum); the sizes reported are the tables' own.
"""

import hashlib
import json
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from langgraph.checkpoint.serde.base import SerializerProtocol

from hitl.checkpoints.database import (
    LOCK_WAIT_SECONDS,
    Cursor,
    PgCursor,
    Store,
    is_busy,
    scalar,
    store_connection,
    table_exists,
)
from hitl.checkpoints.errors import DatabaseBusy, DatabaseError
from hitl.checkpoints.ledger import lease_holder
from hitl.checkpoints.maintenance._progress import Progress, no_progress
from hitl.checkpoints.savers import (
    delete_unreachable,
    make_strict_serializer,
    reachable_nodes,
    scheduled_nodes,
    tails_of,
)
from hitl.checkpoints.urls import is_postgres, writes_table
from hitl.compat import INTERRUPT

log = logging.getLogger(__name__)
Clock = Callable[[], float]
Action = Literal["trim", "delete"]
BATCH_THREADS = 200
"""Threads judged and pruned per write transaction: short enough that other writers barely
wait, long enough that 10,000 threads take 50 transactions."""
RUNS_PER_DELETE = 1000
FINISHED_RUNS = ("done", "failed")
_AUTO_VACUUM_INCREMENTAL = 2
_RECLAIMING = "free space given back to the file system"
"""The progress stage of `Pruner.reclaim` (one step: a `VACUUM` cannot say how far it got)."""

Reason = Literal[
    "pending",
    "unsettled",
    "running",
    "incomplete",
    "recent",
    "changed",
    "unreadable",
    "delta_history",
    "already_pruned",
]
"""Why a thread was left untouched:

- `pending`: a call waits for a decision;
- `unsettled`: a call's outcome is unknown, or a decision is not applied yet;
- `running`: a tool call is running, a run is queued or running, or its lease is held;
- `incomplete`: its newest checkpoint still schedules nodes (a run stopped by a crash);
- `recent`: finished less than `older_than` ago;
- `changed`: it changed between the judgement and the deletion (a new run started);
- `unreadable`: its newest checkpoint cannot be deserialized;
- `delta_history`: its newest checkpoint needs older ones (LangGraph's `DeltaChannel`);
- `already_pruned`: there was nothing left to delete.
"""
_BLOCKING_STATUSES = {"pending": "pending", "running": "running", "outcome_unknown": "unsettled"}
_PRECEDENCE = ("pending", "running", "unsettled")
"""Which reason a thread held back for several is counted under."""
_LEDGER_BLOCKS = (
    "SELECT thread_id, status, applied FROM hitl_approvals WHERE thread_id IN ({marks}) AND "
    "(status IN ('pending', 'running', 'outcome_unknown') OR applied = 0)"
)
_OPEN_RUNS = (
    "SELECT DISTINCT thread_id FROM hitl_runs WHERE status IN ('queued', 'running') "
    "AND thread_id IN ({marks})"
)


@dataclass(frozen=True)
class PruneReport:
    """What one prune examined, left alone and deleted, and what it did to the file."""

    dry_run: bool
    older_than: float | None
    """Seconds: threads finished longer ago were deleted entirely (None: trimmed)."""
    threads_examined: int = 0
    kept: dict[str, int] = field(default_factory=dict)
    """Threads left untouched, by reason (see `Reason`)."""
    threads_trimmed: int = 0
    threads_deleted: int = 0
    checkpoints_deleted: int = 0
    writes_deleted: int = 0
    blobs_deleted: int = 0
    """Channel values no kept checkpoint refers to (PostgreSQL keeps them apart)."""
    messages_deleted: int = 0
    runs_deleted: int = 0
    bytes_before: int = 0
    """The database file and its WAL (PostgreSQL: the tables and their indexes), before."""
    bytes_after: int = 0
    seconds: float = 0.0

    @property
    def threads_kept(self) -> int:
        return sum(self.kept.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "older_than": self.older_than,
            "threads_examined": self.threads_examined,
            "threads_kept": self.threads_kept,
            "kept": dict(sorted(self.kept.items())),
            "threads_trimmed": self.threads_trimmed,
            "threads_deleted": self.threads_deleted,
            "checkpoints_deleted": self.checkpoints_deleted,
            "writes_deleted": self.writes_deleted,
            "blobs_deleted": self.blobs_deleted,
            "messages_deleted": self.messages_deleted,
            "runs_deleted": self.runs_deleted,
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class Judged:
    """A thread judged finished, and what the judgement saw (checked again before deleting)."""

    thread_id: str
    action: Action
    newest: dict[str, str]
    """The newest checkpoint ID of each namespace: the ones trimming keeps."""
    digest: str
    """SHA-256 of the newest root checkpoint's row (a checkpoint may be rewritten in place)."""
    tails: dict[str, list[str]] = field(default_factory=dict)
    """Per namespace, the message nodes the kept checkpoint refers to (trimming only)."""


@dataclass
class Tally:
    """What a batch deleted (or, in a dry run, would have), and which threads it skipped."""

    trimmed: int = 0
    deleted: int = 0
    checkpoints: int = 0
    writes: int = 0
    blobs: int = 0
    messages: int = 0
    kept: Counter[str] = field(default_factory=Counter)

    def add(self, other: "Tally") -> None:
        self.trimmed += other.trimmed
        self.deleted += other.deleted
        self.checkpoints += other.checkpoints
        self.writes += other.writes
        self.blobs += other.blobs
        self.messages += other.messages
        self.kept.update(other.kept)


def prune(
    path: Path | str,
    *,
    older_than: float | None = None,
    dry_run: bool = False,
    vacuum: bool = True,
    full_vacuum: bool = True,
    batch: int = BATCH_THREADS,
    clock: Clock = time.time,
    serde: SerializerProtocol | None = None,
    lock_wait: float = LOCK_WAIT_SECONDS,
    progress: Progress = no_progress,
) -> PruneReport:
    """Prune the finished threads of the database at `path` (see the module doc); `progress`
    is told the threads judged (and pruned), then the space given back.

    Without `older_than`, each finished thread keeps only its newest checkpoint per namespace;
    with it, threads finished more than `older_than` seconds ago are deleted (checkpoints,
    writes, messages; never ledger rows or audit entries), and so are finished runs older than
    that, while other threads are left whole. Then, unless `vacuum` is False, the free pages
    go back to the file system: the first time by one `VACUUM` (it rewrites the file, and
    holds the write lock meanwhile) that switches the file to incremental vacuum.
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    if not is_postgres(path) and not Path(path).exists():
        raise DatabaseError(path, FileNotFoundError("no such database file; nothing was pruned"))
    started = time.monotonic()
    pruner = Pruner(store_connection(path), path=str(path), lock_wait=lock_wait)
    try:
        before = pruner.size()
        tally = Tally()
        loads = (serde or make_strict_serializer()).loads_typed
        thread_ids = pruner.thread_ids()
        progress("threads", 0, len(thread_ids))
        for start in range(0, len(thread_ids), batch):
            chunk = thread_ids[start : start + batch]
            judged, kept = pruner.judge(chunk, loads, older_than=older_than, now=clock())
            tally.kept.update(kept)
            if judged:
                tally.add(pruner.apply(judged, dry_run=dry_run))
            progress("threads", start + len(chunk), len(thread_ids))
        runs = 0 if older_than is None else pruner.delete_runs(clock() - older_than, dry_run)
        if vacuum and not dry_run:
            progress(_RECLAIMING, 0, 1)
            if not pruner.reclaim(full_vacuum=full_vacuum):
                log.warning(
                    "%s predates incremental vacuum: its free pages stay in the file until one "
                    "`hitl prune` from the command line rewrites it (a service never does)",
                    path,
                )
            progress(_RECLAIMING, 1, 1)
        after = pruner.size()
    finally:
        pruner.close()
    return PruneReport(
        dry_run=dry_run,
        older_than=older_than,
        threads_examined=len(thread_ids),
        kept=dict(tally.kept),
        threads_trimmed=tally.trimmed,
        threads_deleted=tally.deleted,
        checkpoints_deleted=tally.checkpoints,
        writes_deleted=tally.writes,
        blobs_deleted=tally.blobs,
        messages_deleted=tally.messages,
        runs_deleted=runs,
        bytes_before=before,
        bytes_after=after,
        seconds=time.monotonic() - started,
    )


def file_bytes(path: Path | str) -> int:
    """The size of the database file and of its write-ahead log."""
    return sum(p.stat().st_size for p in (Path(path), Path(f"{path}-wal")) if p.is_file())


class Pruner(Store):
    """The judgement and the deletions, on a connection of their own."""

    def thread_ids(self) -> list[str]:
        """Every thread with a root checkpoint, in a stable order."""
        writes = writes_table(self.on_postgres)
        if not self._tables() >= {"checkpoints", writes}:
            return []
        return self._read(
            lambda cur: [
                r[0]
                for r in cur.execute(
                    "SELECT DISTINCT thread_id FROM checkpoints WHERE checkpoint_ns = '' "
                    "ORDER BY thread_id"
                )
            ]
        )

    def judge(
        self,
        thread_ids: Sequence[str],
        loads: Callable[[tuple[str, bytes]], Any],
        *,
        older_than: float | None,
        now: float,
    ) -> tuple[list[Judged], Counter[str]]:
        """Which of these threads to trim or delete, and why the others are left alone."""
        tables = self._tables()

        def work(cur: Cursor) -> tuple[list[Judged], Counter[str]]:
            blocked = _blocked(cur, thread_ids, tables)
            judged: list[Judged] = []
            kept: Counter[str] = Counter()
            for thread_id in thread_ids:
                outcome = blocked.get(thread_id) or _judge_one(
                    cur, thread_id, loads, older_than=older_than, now=now
                )
                if isinstance(outcome, Judged):
                    judged.append(outcome)
                else:
                    kept[outcome] += 1
            return judged, kept

        return self._read(work)

    def apply(self, judged: Sequence[Judged], *, dry_run: bool) -> Tally:
        """Delete what `judged` allows, in one write transaction, skipping every thread that
        is no longer as judged; a dry run counts instead, in a read transaction."""
        tables = self._tables()

        def work(cur: Cursor) -> Tally:
            tally = Tally()
            blocked = _blocked(cur, [j.thread_id for j in judged], tables)
            for j in judged:
                if j.thread_id in blocked or not _unchanged(cur, j):
                    tally.kept["changed"] += 1
                elif j.action == "delete":
                    _delete_thread(cur, j.thread_id, tables, tally, dry_run)
                else:
                    _trim_thread(cur, j, tables, tally, dry_run)
            return tally

        return self._read(work) if dry_run else self._write(work)

    def delete_runs(self, finished_before: float, dry_run: bool) -> int:
        """Delete the finished runs that ended before this UNIX time; how many."""
        if "hitl_runs" not in self._tables():
            return 0
        marks = ", ".join(f"'{s}'" for s in FINISHED_RUNS)
        where = f"status IN ({marks}) AND finished_at < ?"
        if dry_run:
            return self._read(lambda cur: _count(cur, "hitl_runs", where, finished_before))
        total = 0
        while True:
            deleted: int = self._write(
                lambda cur: (
                    cur.execute(
                        f"DELETE FROM hitl_runs WHERE seq IN (SELECT seq FROM hitl_runs WHERE "
                        f"{where} ORDER BY seq LIMIT ?)",
                        (finished_before, RUNS_PER_DELETE),
                    ).rowcount
                )
            )
            total += deleted
            if deleted < RUNS_PER_DELETE:
                return total

    def size(self) -> int:
        """Bytes the database takes: the file and its WAL; on PostgreSQL, this schema's
        tables with their indexes and TOAST."""
        if not self.on_postgres:
            return file_bytes(self._path)
        return int(
            self._read(
                lambda cur: scalar(
                    cur.execute(
                        "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = current_schema() AND c.relkind = 'r'"
                    )
                )
            )
        )

    def reclaim(self, *, full_vacuum: bool = True) -> bool:
        """Give free pages back to the file system, then truncate the write-ahead log.

        A file made before incremental vacuum needs one `VACUUM`, which rewrites it under the
        write lock: only with `full_vacuum` (the CLI); a service skips it and says so (False).
        On PostgreSQL, autovacuum makes the space reusable; nothing to do here.
        """
        if self.on_postgres:
            return True
        mode = self._read(lambda cur: scalar(cur.execute("PRAGMA auto_vacuum")))
        if mode == _AUTO_VACUUM_INCREMENTAL:
            self._outside_transaction("PRAGMA incremental_vacuum")
        elif full_vacuum:  # takes effect with the next VACUUM, then stays
            self._outside_transaction("PRAGMA auto_vacuum = INCREMENTAL")
            self._outside_transaction("VACUUM")
        self._outside_transaction("PRAGMA wal_checkpoint(TRUNCATE)")
        return mode == _AUTO_VACUUM_INCREMENTAL or full_vacuum

    def _outside_transaction(self, statement: str) -> None:
        """Run a statement that cannot run in a transaction, waiting (bounded) while busy."""
        deadline = time.monotonic() + self._lock_wait
        delay = 0.01
        while True:
            with self._lock:
                try:
                    # `execute` steps a statement without result rows once (incremental_vacuum
                    # would free one page); `executescript` steps it to the end
                    assert isinstance(self._conn, sqlite3.Connection)  # `prune` refuses others
                    self._conn.executescript(statement)
                    return
                except sqlite3.OperationalError as e:
                    if not is_busy(e):
                        raise DatabaseError(self._path, e) from e
                    if time.monotonic() >= deadline:
                        raise DatabaseBusy(self._path, self._lock_wait) from e
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def _tables(self) -> set[str]:
        query = (
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
            if self.on_postgres
            else "SELECT name FROM sqlite_master WHERE type = 'table'"
        )
        return self._read(lambda cur: {r[0] for r in cur.execute(query)})


def _blocked(cur: Cursor, thread_ids: Sequence[str], tables: set[str]) -> dict[str, str]:
    """The threads the ledger, the run queue or a lease says to leave alone, with why."""
    reasons: dict[str, set[str]] = {}
    if not thread_ids:
        return {}
    marks = ", ".join("?" for _ in thread_ids)
    if "hitl_approvals" in tables:
        for thread_id, status, _applied in cur.execute(
            _LEDGER_BLOCKS.format(marks=marks), list(thread_ids)
        ):
            # any other status is here because its decision is not applied yet
            reasons.setdefault(thread_id, set()).add(_BLOCKING_STATUSES.get(status, "unsettled"))
    if "hitl_runs" in tables:
        for (thread_id,) in cur.execute(_OPEN_RUNS.format(marks=marks), list(thread_ids)):
            reasons.setdefault(thread_id, set()).add("running")
    if "hitl_leases" in tables:
        for thread_id in thread_ids:
            if thread_id not in reasons and lease_holder(cur, thread_id) is not None:
                reasons[thread_id] = {"running"}
    return {t: min(found, key=_PRECEDENCE.index) for t, found in reasons.items()}


def _judge_one(
    cur: Cursor,
    thread_id: str,
    loads: Callable[[tuple[str, bytes]], Any],
    *,
    older_than: float | None,
    now: float,
) -> Judged | Reason:
    """Judge one thread the ledger does not hold back, from its checkpoints."""
    newest = _newest(cur, thread_id)
    if "" not in newest:
        return "changed"  # deleted since it was listed
    root = _root_row(cur, thread_id, "", newest[""])
    try:
        checkpoint = _load(cur, thread_id, "", root, loads)
        scheduled = scheduled_nodes(checkpoint)
    except Exception:  # a forged or foreign row: not ours to judge
        return "unreadable"
    if _interrupted(cur, thread_id, newest[""]):
        return "pending"
    if scheduled:
        return "incomplete"
    digest = _digest(root)
    if older_than is not None:
        finished_at = _timestamp(checkpoint.get("ts"))
        if finished_at is None or now - finished_at <= older_than:
            return "recent"
        return Judged(thread_id, "delete", newest, digest)
    if root is None or _needs_delta_history(root[-1]):
        return "delta_history"
    tails = {"": tails_of(checkpoint["channel_values"])}
    for ns, checkpoint_id in newest.items():
        if ns:
            try:
                tails[ns] = _tails_of_row(cur, thread_id, ns, checkpoint_id, loads)
            except Exception:
                return "unreadable"
    if not _has_garbage(cur, thread_id, newest, tails):
        return "already_pruned"
    return Judged(thread_id, "trim", newest, digest, tails)


def _unchanged(cur: Cursor, judged: Judged) -> bool:
    """Whether the thread is still as judged: same newest checkpoints, no interrupt."""
    if _newest(cur, judged.thread_id) != judged.newest:
        return False
    root = _root_row(cur, judged.thread_id, "", judged.newest[""])
    return _digest(root) == judged.digest and not _interrupted(
        cur, judged.thread_id, judged.newest[""]
    )


def _trim_thread(
    cur: Cursor, judged: Judged, tables: set[str], tally: Tally, dry_run: bool
) -> None:
    """Keep the newest checkpoint of each namespace, its writes and the messages it reaches."""
    checkpoints = writes = blobs = messages = 0
    for ns, keep in judged.newest.items():
        # older ones only: on PostgreSQL a lease-less runtime (Studio) may commit a newer
        # checkpoint meanwhile (the saver takes no lock), and it must stay whole
        older = ("thread_id = ? AND checkpoint_ns = ? AND checkpoint_id < ?", judged.thread_id, ns)
        writes += _remove(cur, _writes_table(cur), *older, keep, dry_run=dry_run)
        checkpoints += _remove(cur, "checkpoints", *older, keep, dry_run=dry_run)
        if isinstance(cur, PgCursor):
            blobs += _remove(
                cur, "checkpoint_blobs", _UNREFERENCED_BLOB, judged.thread_id, ns, keep,
                dry_run=dry_run,
            )  # fmt: skip
        if "hitl_messages" in tables:
            tails = judged.tails.get(ns, [])
            # on PostgreSQL, not deeper than the kept conversation: a run appending meanwhile
            # writes deeper rows before its checkpoint
            deepest = (
                _deepest(cur, judged.thread_id, ns, tails) if isinstance(cur, PgCursor) else None
            )
            if dry_run:
                where = "thread_id = ? AND checkpoint_ns = ? AND depth <= ?"
                bound = (1 << 62) if deepest is None else deepest
                stored = _count(cur, "hitl_messages", where, judged.thread_id, ns, bound)
                messages += stored - len(reachable_nodes(cur, judged.thread_id, ns, tails))
            else:
                messages += delete_unreachable(cur, judged.thread_id, ns, tails, max_depth=deepest)
    tally.checkpoints += checkpoints
    tally.writes += writes
    tally.blobs += blobs
    tally.messages += messages
    if checkpoints or writes or blobs or messages:
        tally.trimmed += 1
    else:
        tally.kept["already_pruned"] += 1


def _delete_thread(
    cur: Cursor, thread_id: str, tables: set[str], tally: Tally, dry_run: bool
) -> None:
    """Delete the thread's checkpoints, writes and messages (its ledger rows and audit
    trail stay: they are the record of what was decided)."""
    tally.writes += _remove(cur, _writes_table(cur), "thread_id = ?", thread_id, dry_run=dry_run)
    tally.checkpoints += _remove(cur, "checkpoints", "thread_id = ?", thread_id, dry_run=dry_run)
    if isinstance(cur, PgCursor):
        tally.blobs += _remove(cur, "checkpoint_blobs", "thread_id = ?", thread_id, dry_run=dry_run)
    if "hitl_messages" in tables:
        tally.messages += _remove(cur, "hitl_messages", "thread_id = ?", thread_id, dry_run=dry_run)
    tally.deleted += 1


def _remove(cur: Cursor, table: str, where: str, *params: object, dry_run: bool) -> int:
    """Delete the rows of `table` that match; how many (a dry run only counts them)."""
    if dry_run:
        return _count(cur, table, where, *params)
    deleted: int = cur.execute(f"DELETE FROM {table} WHERE {where}", params).rowcount
    return deleted


def _count(cur: Cursor, table: str, where: str, *params: object) -> int:
    return int(scalar(cur.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}", params)))


def _newest(cur: Cursor, thread_id: str) -> dict[str, str]:
    return {
        ns: checkpoint_id
        for ns, checkpoint_id in cur.execute(
            "SELECT checkpoint_ns, MAX(checkpoint_id) FROM checkpoints WHERE thread_id = ? "
            "GROUP BY checkpoint_ns",
            (thread_id,),
        )
    }


def _interrupted(cur: Cursor, thread_id: str, checkpoint_id: str) -> bool:
    return (
        cur.execute(
            f"SELECT 1 FROM {_writes_table(cur)} WHERE thread_id = ? AND checkpoint_ns = '' "
            "AND checkpoint_id = ? AND channel = ? LIMIT 1",
            (thread_id, checkpoint_id, INTERRUPT),
        ).fetchone()
        is not None
    )


def _digest(row: tuple[Any, ...] | None) -> str:
    if row is None:
        return ""
    h = hashlib.sha256()
    for part in row:
        h.update(b"\0" + (part if isinstance(part, bytes) else str(part).encode()))
    return h.hexdigest()


def _writes_table(cur: Cursor) -> str:
    return writes_table(isinstance(cur, PgCursor))


_UNREFERENCED_BLOB = (
    "thread_id = ? AND checkpoint_ns = ? AND version < (SELECT c.checkpoint -> "
    "'channel_versions' ->> checkpoint_blobs.channel FROM checkpoints c WHERE "
    "c.thread_id = checkpoint_blobs.thread_id AND c.checkpoint_ns = checkpoint_blobs.checkpoint_ns "
    "AND c.checkpoint_id = ?)"
)
"""A blob of a namespace older than the kept checkpoint's (the last parameter) version of its
channel: versions only grow, so a checkpoint committed meanwhile keeps its blobs (and a
channel the kept checkpoint has no version of keeps every blob)."""


def _deepest(cur: Cursor, thread_id: str, ns: str, tails: Sequence[str]) -> int | None:
    """The depth of the deepest of these stored messages (-1: none)."""
    if not tails:
        return -1
    marks = ", ".join("?" for _ in tails)
    row = cur.execute(
        f"SELECT MAX(depth) FROM hitl_messages WHERE thread_id = ? AND checkpoint_ns = ? "
        f"AND node_id IN ({marks})",
        (thread_id, ns, *tails),
    ).fetchone()
    return -1 if row is None or row[0] is None else int(row[0])


def _root_row(cur: Cursor, thread_id: str, ns: str, checkpoint_id: str) -> tuple[Any, ...] | None:
    """A checkpoint's row as stored, ending with its metadata: SQLite's (type, serialized
    checkpoint, metadata), PostgreSQL's (checkpoint JSON, metadata JSON) as text."""
    columns = (
        "checkpoint::text, metadata::text"
        if isinstance(cur, PgCursor)
        else "type, checkpoint, metadata"
    )
    row = cur.execute(
        f"SELECT {columns} FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ? "
        "AND checkpoint_id = ?",
        (thread_id, ns, checkpoint_id),
    ).fetchone()
    return None if row is None else tuple(row)


def _load(
    cur: Cursor,
    thread_id: str,
    ns: str,
    row: tuple[Any, ...] | None,
    loads: Callable[[tuple[str, bytes]], Any],
) -> Any:
    """The checkpoint of a `_root_row`, its channel values included (on PostgreSQL: read from
    `checkpoint_blobs` at the versions it names, as LangGraph's saver reads them)."""
    if row is None:
        raise LookupError("the checkpoint is gone")
    if not isinstance(cur, PgCursor):
        return loads((row[0], row[1]))
    checkpoint = json.loads(row[0])
    values = dict(checkpoint.get("channel_values") or {})
    for channel, version in (checkpoint.get("channel_versions") or {}).items():
        found = cur.execute(
            "SELECT type, blob FROM checkpoint_blobs WHERE thread_id = ? AND checkpoint_ns = ? "
            "AND channel = ? AND version = ?",
            (thread_id, ns, channel, str(version)),
        ).fetchone()
        if found is not None and found[0] != "empty":
            values[channel] = loads((found[0], bytes(found[1])))
    return {**checkpoint, "channel_values": values}


def _tails_of_row(
    cur: Cursor,
    thread_id: str,
    ns: str,
    checkpoint_id: str,
    loads: Callable[[tuple[str, bytes]], Any],
) -> list[str]:
    root = _root_row(cur, thread_id, ns, checkpoint_id)
    return tails_of(_load(cur, thread_id, ns, root, loads)["channel_values"])


def _has_garbage(
    cur: Cursor, thread_id: str, newest: dict[str, str], tails: dict[str, list[str]]
) -> bool:
    """Whether trimming would delete anything: an older checkpoint, a write of one, or a
    stored message no kept checkpoint reaches (counted cheaply; in doubt, yes)."""
    checkpoints = scalar(
        cur.execute("SELECT COUNT(*) FROM checkpoints WHERE thread_id = ?", (thread_id,))
    )
    if checkpoints > len(newest):
        return True
    table = _writes_table(cur)
    writes = scalar(cur.execute(f"SELECT COUNT(*) FROM {table} WHERE thread_id = ?", (thread_id,)))
    kept_writes = sum(
        scalar(
            cur.execute(
                f"SELECT COUNT(*) FROM {table} WHERE thread_id = ? AND checkpoint_ns = ? "
                "AND checkpoint_id = ?",
                (thread_id, ns, checkpoint_id),
            )
        )
        for ns, checkpoint_id in newest.items()
    )
    if writes > kept_writes:
        return True
    if not table_exists(cur, "hitl_messages"):  # no message log in this database
        return False
    stored: dict[str, int] = dict(
        cur.execute(
            "SELECT checkpoint_ns, COUNT(*) FROM hitl_messages WHERE thread_id = ? "
            "GROUP BY checkpoint_ns",
            (thread_id,),
        ).fetchall()
    )
    for ns in newest:
        count, ns_tails = stored.get(ns, 0), tails.get(ns, [])
        if count and (
            len(ns_tails) != 1 or count > _branch_length(cur, thread_id, ns, ns_tails[0])
        ):
            return True
    return False


def _branch_length(cur: Cursor, thread_id: str, ns: str, tail: str) -> int:
    """How many stored messages the branch ending at `tail` holds (its depth + 1)."""
    row = cur.execute(
        "SELECT depth FROM hitl_messages WHERE thread_id = ? AND checkpoint_ns = ? AND node_id = ?",
        (thread_id, ns, tail),
    ).fetchone()
    return 0 if row is None else int(row[0]) + 1


def _needs_delta_history(metadata: bytes | str | None) -> bool:
    """Whether the checkpoint's `DeltaChannel`s are rebuilt from older checkpoints' writes
    (trimming those would silently empty them)."""
    if not metadata:
        return False
    try:
        counters = json.loads(metadata).get("counters_since_delta_snapshot") or {}
        return any(int(c[0]) > 0 or int(c[1]) > 0 for c in counters.values())
    except (ValueError, TypeError, AttributeError, IndexError):
        return True  # cannot tell: leave it whole


def _timestamp(ts: object) -> float | None:
    """UNIX seconds of a checkpoint's ISO 8601 `ts`, or None if it has none."""
    if not isinstance(ts, str):
        return None
    try:
        return datetime.fromisoformat(ts).timestamp()
    except ValueError:
        return None


__all__ = [
    "BATCH_THREADS",
    "Judged",
    "PruneReport",
    "Pruner",
    "Reason",
    "Tally",
    "file_bytes",
    "prune",
]
