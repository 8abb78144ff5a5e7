"""`hitl db copy`: move an installation to another database (SQLite to PostgreSQL, typically).

Checkpoints go through the savers (each backend stores them its own way): every checkpoint
of every thread and namespace, oldest first, with its parent and its pending writes, so
history, forks and interrupted threads come across whole. Every other table (ledger, audit
trail, runs, tokens, webhooks, stored messages) is copied row for row. Then the counts on
both sides are compared, table by table and thread by thread.

The target must be empty; the source should not be in use meanwhile (stop the services).
"""

import bisect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple

from hitl.checkpoints.database import Cursor, Store, scalar, store_connection
from hitl.checkpoints.errors import CopyError
from hitl.checkpoints.maintenance._progress import Progress, no_progress
from hitl.checkpoints.maintenance._schema import HITL_TABLES, migrate, status
from hitl.checkpoints.savers import SavedLog, Saver, log_ref, open_saver
from hitl.checkpoints.urls import DatabaseName, display, is_postgres, writes_table

COPIED_TABLES = tuple(t for t in HITL_TABLES if t != "hitl_schema")
"""Copied row for row (`hitl_schema` is the target's own, made by `migrate`)."""
_NUMBERED = {"hitl_audit", "hitl_webhooks"}
"""Tables whose row order is their `rowid` (implicit in SQLite, an identity on PostgreSQL):
copied in that order, without it, and the target numbers them anew."""
_IDENTITIES = {"hitl_runs": "seq", "hitl_webhook_deliveries": "id"}
"""Columns copied as they are, after which a PostgreSQL target's counter must move past them."""
_OWN_ROWS = {"hitl_schema", "hitl_webhook_cursor"}
"""Tables `migrate` fills in a new database; the copy replaces their rows."""
BATCH = 500


@dataclass
class CopyReport:
    """What was copied, and the counts on both sides."""

    source: str
    target: str
    threads: int = 0
    checkpoints: int = 0
    writes: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    """Rows copied per table."""
    converted_messages: int = 0
    """Messages an older checkpoint held as a list, stored as a log in the target."""
    mismatches: list[str] = field(default_factory=list)
    """Counts that differ between source and target (empty: verified)."""

    @property
    def verified(self) -> bool:
        return not self.mismatches

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "threads": self.threads,
            "checkpoints": self.checkpoints,
            "writes": self.writes,
            "rows": self.rows,
            "converted_messages": self.converted_messages,
            "verified": self.verified,
            "mismatches": self.mismatches,
        }


def copy_database(
    source: DatabaseName, target: DatabaseName, progress: Progress = no_progress
) -> CopyReport:
    """Copy everything in `source` to the empty database `target`, then verify the counts;
    `progress` is told the rows of each table and the threads copied."""
    if display(source) == display(target):
        raise CopyError("the source and the target are the same database; name two")
    before = status(source)  # also: the source must exist
    if not before.rows.get("hitl_approvals") and not before.rows.get("checkpoints"):
        raise CopyError(f"{display(source)} holds no threads and no approvals; nothing to copy")
    if is_postgres(target) or Path(target).exists():  # refused before anything is created
        occupied = {t: n for t, n in status(target).rows.items() if n and t not in _OWN_ROWS}
        if occupied:
            raise CopyError(
                f"{display(target)} is not empty ({_counts(occupied)}); copy into a new database"
            )
    migrate(target)
    report = CopyReport(display(source), display(target))
    src, dst = _Tables(store_connection(source)), _Tables(store_connection(target))
    try:
        if before.rows.get("hitl_messages") is not None:
            # stored messages first: the checkpoints copied next refer to them
            report.rows["hitl_messages"] = _copy_table(src, dst, "hitl_messages", progress)
        logged = _count(dst, "hitl_messages")
        with open_saver(source, create=False) as reader, open_saver(target) as writer:
            thread_ids = src._read(
                lambda cur: [
                    r[0]
                    for r in cur.execute(
                        "SELECT DISTINCT thread_id FROM checkpoints ORDER BY thread_id"
                    ).fetchall()
                ]
            )
            _copy_checkpoints(thread_ids, reader, writer, report, progress)
        # an older database's checkpoints hold their conversation as a list: the target's
        # saver stores it as a log, so the target has these rows more than the source
        report.converted_messages = _count(dst, "hitl_messages") - logged
        new_rowids: dict[str, list[tuple[int, int]]] = {}
        for table in COPIED_TABLES:
            if table != "hitl_messages" and before.rows.get(table) is not None:
                report.rows[table] = _copy_table(src, dst, table, progress, new_rowids)
        _renumber_audit_cursors(dst, new_rowids.get("hitl_audit", []))
        if before.rows.get("hitl_webhook_cursor") is None:
            _cursor_after_the_history(dst)
        report.mismatches = _compare(
            src, dst, source, target, report.converted_messages, before.rows
        )
    finally:
        src.close()
        dst.close()
    return report


class _Tables(Store):
    """Raw access to a database's tables, for copying."""


def _copy_checkpoints(
    thread_ids: list[str], reader: Saver, writer: Saver, report: CopyReport, progress: Progress
) -> None:
    progress("threads", 0, len(thread_ids))
    for done, thread_id in enumerate(thread_ids, 1):
        report.threads += 1
        for found in _oldest_first(reader, thread_id):
            configurable = found.config["configurable"]
            parent = found.parent_config["configurable"] if found.parent_config else {}
            config: RunnableConfig = {
                "configurable": {
                    "thread_id": thread_id,
                    "checkpoint_ns": configurable["checkpoint_ns"],
                    **({"checkpoint_id": parent["checkpoint_id"]} if parent else {}),
                }
            }
            values = {  # a conversation goes across as the reference it was stored as
                k: log_ref(v.tail, v.length) if isinstance(v, SavedLog) else v
                for k, v in found.checkpoint["channel_values"].items()
            }
            saved = writer.put(
                config,
                {**found.checkpoint, "channel_values": values},
                found.metadata,
                dict(found.checkpoint["channel_versions"]),
            )
            report.checkpoints += 1
            by_task: dict[str, list[tuple[str, Any]]] = {}
            for task_id, channel, value in found.pending_writes or []:
                by_task.setdefault(task_id, []).append((channel, value))
            for task_id, writes in by_task.items():
                writer.put_writes(saved, writes, task_id)
                report.writes += len(writes)
        writer.flush()
        progress("threads", done, len(thread_ids))


def _oldest_first(saver: Saver, thread_id: str) -> list[CheckpointTuple]:
    """A thread's checkpoints in every namespace, each after its parent."""
    found = list(saver.list({"configurable": {"thread_id": thread_id}}))
    return sorted(found, key=lambda t: t.config["configurable"]["checkpoint_id"])


def _copy_table(
    src: _Tables,
    dst: _Tables,
    table: str,
    progress: Progress,
    new_rowids: dict[str, list[tuple[int, int]]] | None = None,
) -> int:
    """Copy every row; for a numbered table, remember each old rowid's new one."""
    numbered = table in _NUMBERED
    columns = src._read(lambda cur: _columns(cur, table))
    selected = ", ".join(columns)
    order = "rowid" if numbered else "1"
    rows = src._read(
        lambda cur: cur.execute(
            f"SELECT {'rowid, ' if numbered else ''}{selected} FROM {table} ORDER BY {order}"
        ).fetchall()
    )
    if not rows:
        return 0
    insert = f"INSERT INTO {table} ({selected}) VALUES ({', '.join('?' for _ in columns)})"

    def work(cur: Cursor) -> None:
        if table in _OWN_ROWS:
            cur.execute(f"DELETE FROM {table}")
        values = [tuple(r[1:]) if numbered else tuple(r) for r in rows]
        progress(f"rows of {table}", 0, len(values))
        for start in range(0, len(values), BATCH):
            cur.executemany(insert, values[start : start + BATCH])
            progress(f"rows of {table}", min(start + BATCH, len(values)), len(values))
        if numbered and new_rowids is not None:
            fresh = [r[0] for r in cur.execute(f"SELECT rowid FROM {table} ORDER BY rowid")]
            new_rowids[table] = list(zip([r[0] for r in rows], fresh, strict=True))
        if table in _IDENTITIES and dst.on_postgres:
            column = _IDENTITIES[table]
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                f"(SELECT MAX({column}) FROM {table}))"
            )

    dst._write(work)
    return len(rows)


def _columns(cur: Cursor, table: str) -> list[str]:
    """The table's columns, without a PostgreSQL `rowid` (the target numbers rows itself)."""
    described = cur.execute(f"SELECT * FROM {table} LIMIT 0").description or ()
    return [d[0] for d in described if d[0] != "rowid"]


def _renumber_audit_cursors(dst: _Tables, mapping: list[tuple[int, int]]) -> None:
    """Webhook cursors name audit rows by rowid: give them the target's numbers."""
    old = [o for o, _ in mapping]

    def renumbered(value: int) -> int:
        i = bisect.bisect_right(old, value)
        return mapping[i - 1][1] if i else 0

    def work(cur: Cursor) -> None:
        for (value,) in cur.execute("SELECT audit_rowid FROM hitl_webhook_cursor").fetchall():
            cur.execute("UPDATE hitl_webhook_cursor SET audit_rowid = ?", (renumbered(value),))
        for webhook_id, value in cur.execute(
            "SELECT id, after_audit_rowid FROM hitl_webhooks"
        ).fetchall():
            cur.execute(
                "UPDATE hitl_webhooks SET after_audit_rowid = ? WHERE id = ?",
                (renumbered(value), webhook_id),
            )

    dst._write(work)


def _cursor_after_the_history(dst: _Tables) -> None:
    """The source never had a webhook outbox: the target's (made by `migrate`, before the
    audit rows came) starts after the copied history, as a new outbox's does."""
    dst._write(
        lambda cur: cur.execute(
            "UPDATE hitl_webhook_cursor SET audit_rowid = "
            "(SELECT COALESCE(MAX(rowid), 0) FROM hitl_audit)"
        )
    )


def _compare(
    src: _Tables,
    dst: _Tables,
    source: DatabaseName,
    target: DatabaseName,
    converted: int,
    source_tables: dict[str, int | None],
) -> list[str]:
    """Every count that differs: rows per table (the target's messages: the source's plus
    those its lists became; not the target's own rows of a table the source lacks),
    checkpoints per thread, pending writes."""
    differ = []
    before, after = status(source).rows, status(target).rows
    for table in COPIED_TABLES:
        if table in _OWN_ROWS and source_tables.get(table) is None:
            continue
        expected = (before.get(table) or 0) + (converted if table == "hitl_messages" else 0)
        if expected != (after.get(table) or 0):
            differ.append(
                f"{table}: {expected} rows expected from the source, "
                f"{after.get(table) or 0} in the target"
            )
    per_thread = "SELECT thread_id, COUNT(*) FROM checkpoints GROUP BY thread_id"
    theirs: dict[str, int] = dict(src._read(lambda cur: cur.execute(per_thread).fetchall()))
    ours: dict[str, int] = dict(dst._read(lambda cur: cur.execute(per_thread).fetchall()))
    for thread_id in sorted(set(theirs) | set(ours)):
        if theirs.get(thread_id, 0) != ours.get(thread_id, 0):
            differ.append(
                f"thread {thread_id}: {theirs.get(thread_id, 0)} checkpoints in the source, "
                f"{ours.get(thread_id, 0)} in the target"
            )
    n_src = _count(src, writes_table(is_postgres(source)))
    n_dst = _count(dst, writes_table(is_postgres(target)))
    if n_src != n_dst:
        differ.append(f"pending writes: {n_src} in the source, {n_dst} in the target")
    return differ


def _count(tables: _Tables, table: str) -> int:
    return int(tables._read(lambda cur: scalar(cur.execute(f"SELECT COUNT(*) FROM {table}"))))


def _counts(rows: dict[str, int]) -> str:
    return ", ".join(f"{n} {table}" for table, n in sorted(rows.items()))
