"""The ledger's reads: one call's row, a thread's rows, the inbox, the list of threads, what
waits to be applied, counts for monitoring, and the audit trail.

Every method is one read transaction (one snapshot), and none changes a row: the state
machine that does lives in `_ledger.py`.
"""

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from hitl.checkpoints.database import Cursor, PgConnection, PgListener, Store, scalar
from hitl.checkpoints.ledger._audit import read_trail, verify_all
from hitl.checkpoints.ledger._leases import lease_holder
from hitl.checkpoints.ledger._quorum import votes_of
from hitl.checkpoints.ledger._schema import (
    AUDIT_COLUMNS,
    COLUMNS,
    WAITING,
    audit_entry_of,
    record_of,
)
from hitl.checkpoints.ledger._threads import ThreadQuery, ThreadSummary, list_threads
from hitl.checkpoints.records import (
    NEEDS_A_PERSON,
    ApprovalRecord,
    AuditEntry,
    AuditReport,
    Status,
    Vote,
)

Clock = Callable[[], float]
"""UNIX seconds now: `time.time`, or a test's clock."""
RESUME_GRACE_SECONDS = 60.0
"""How old a decision must be before `sweep` resumes a thread that nobody resumed."""
SortKey = Literal["requested_at", "expires_at", "tool", "thread_id"]
SnoozeFilter = Literal["hide", "show", "only"]
_INBOX_INDEXES = {
    "requested_at": "hitl_approvals_inbox",
    "expires_at": "hitl_approvals_inbox_by_deadline",
}


@dataclass(frozen=True)
class InboxQuery:
    """Filters, order and page of an inbox listing; every filter is optional."""

    statuses: tuple[Status, ...] = NEEDS_A_PERSON
    tool: str | None = None
    thread_id: str | None = None
    requester: str | None = None
    older_than: float | None = None
    """Only calls requested before this UNIX time."""
    expiring_before: float | None = None
    """Only calls whose deadline is before this UNIX time."""
    sort: SortKey = "requested_at"
    descending: bool = False
    limit: int = 50
    offset: int = 0
    """Rows to skip; at most `MAX_OFFSET`, which front ends check."""
    assigned_to: tuple[str, ...] | None = None
    """Only calls assigned to one of these (names, `role:NAME`; front ends resolve "me")."""
    snoozed: SnoozeFilter = "hide"
    """Calls snoozed until later: hidden (the default), shown with the others, or only them."""


_SNOOZED = {
    "hide": "(snoozed_until IS NULL OR snoozed_until <= ?)",
    "only": "snoozed_until > ?",
}


EXPORT_PAGE = 1000
"""Audit entries `export_audit` reads at a time."""


class LedgerReads(Store):
    """The reads of the ledger's tables (a part of `Ledger`, which sets `clock`)."""

    clock: Clock

    def get(self, thread_id: str, tool_call_id: str) -> ApprovalRecord | None:
        """One call's row, or None."""
        return self._read(lambda cur: find_record(cur, thread_id, tool_call_id), one_statement=True)

    def latest_requester(self, thread_id: str) -> str | None:
        """Who asked for the thread's newest call that names a requester (None: no call did)."""
        row = self._read(
            lambda cur: cur.execute(
                "SELECT requester FROM hitl_approvals WHERE thread_id = ? "
                "AND requester IS NOT NULL ORDER BY requested_at DESC, tool_call_id LIMIT 1",
                (thread_id,),
            ).fetchone(),
            one_statement=True,
        )
        return None if row is None else str(row[0])

    def thread_records(
        self, thread_id: str, statuses: Collection[str] | None = None
    ) -> list[ApprovalRecord]:
        """Every row of a thread (or those in one of `statuses`), oldest request first."""
        where, params = "thread_id = ?", [thread_id]
        if statuses is not None and not statuses:
            return []
        if statuses is not None:
            where += f" AND status IN ({', '.join('?' for _ in statuses)})"
            params += list(statuses)
        return self._read(
            lambda cur: [
                record_of(r)
                for r in cur.execute(
                    f"SELECT {COLUMNS} FROM hitl_approvals WHERE {where} "
                    "ORDER BY requested_at, tool_call_id",
                    params,
                ).fetchall()
            ],
            one_statement=True,
        )

    def threads_of_call(self, tool_call_id: str) -> list[str]:
        """The threads that have a call with this ID."""
        return self._read(lambda cur: threads_of(cur, tool_call_id))

    def inbox(self, query: InboxQuery = InboxQuery()) -> tuple[list[ApprovalRecord], int]:
        """One page of the calls that need a person, and how many match in all.

        The default listing (sorted by request time or deadline) walks a partial index that
        holds only the waiting calls, in page order: a page costs its own rows, whatever the
        number of threads. Other sorts and statuses cost the number of matching rows.
        """
        params: list[Any] = []
        if set(query.statuses) == set(NEEDS_A_PERSON):
            where = [WAITING]
        else:
            where = [f"status IN ({', '.join('?' for _ in query.statuses)})"]
            params.extend(query.statuses)
        for column, value in (
            ("tool", query.tool),
            ("thread_id", query.thread_id),
            ("requester", query.requester),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if query.older_than is not None:
            where.append("requested_at < ?")
            params.append(query.older_than)
        if query.expiring_before is not None:
            where.append("expires_at IS NOT NULL AND expires_at < ?")
            params.append(query.expiring_before)
        if query.assigned_to is not None:
            where.append(f"assignee IN ({', '.join('?' for _ in query.assigned_to) or 'NULL'})")
            params.extend(query.assigned_to)
        if query.snoozed != "show":  # in the status index: a count still reads only it
            where.append(_SNOOZED[query.snoozed])
            params.append(self.clock())
        clause = " AND ".join(where)
        direction = "DESC" if query.descending else "ASC"
        order = ", ".join(
            f"{column} {direction}" for column in (query.sort, "thread_id", "tool_call_id")
        )
        if query.sort == "expires_at":  # calls without a deadline last, either way
            order = f"expires_at IS NULL, {order}"

        source = "hitl_approvals"
        if where[0] == WAITING and query.sort in _INBOX_INDEXES:  # the planner cannot know
            source += f" INDEXED BY {_INBOX_INDEXES[query.sort]}"

        def work(cur: Cursor) -> tuple[list[ApprovalRecord], int]:
            rows = cur.execute(
                f"SELECT {COLUMNS} FROM {source} WHERE {clause} ORDER BY {order} LIMIT ? OFFSET ?",
                (*params, query.limit, query.offset),
            ).fetchall()
            total = scalar(
                cur.execute(f"SELECT COUNT(*) FROM hitl_approvals WHERE {clause}", params)
            )
            return [record_of(r) for r in rows], int(total)

        return self._read(work)

    def threads(self, query: ThreadQuery) -> tuple[list[ThreadSummary], int]:
        """One page of every thread, newest activity first, and how many match in all
        (`_threads`: from indexes, without reading a checkpoint)."""
        return self._read(lambda cur: list_threads(cur, query, on_postgres=self.on_postgres))

    def unapplied_threads(self, *, older_than: float = RESUME_GRACE_SECONDS) -> list[str]:
        """Threads with a decision older than `older_than` seconds that no run has been seen
        to apply, and no live runner: their resume may have been lost (a crash right after
        the decision, a sweep that found the thread busy, a runtime without leases)."""

        def work(cur: Cursor) -> list[str]:
            rows = cur.execute(  # (no DISTINCT: SQLite would walk every row in key order for
                # it, where this walks the index of the decided calls not yet applied)
                "SELECT thread_id FROM hitl_approvals WHERE applied = 0 "
                "AND decided_at < ? AND status NOT IN ('pending', 'outcome_unknown')",
                (self.clock() - older_than,),
            ).fetchall()
            candidates = dict.fromkeys(r[0] for r in rows)
            return [t for t in candidates if lease_holder(cur, t) is None]

        return self._read(work)

    def unapplied_calls(self, thread_id: str) -> set[str]:
        """The thread's decided calls that no run has been seen to apply yet."""
        return self._read(
            lambda cur: {
                r[0]
                for r in cur.execute(
                    "SELECT tool_call_id FROM hitl_approvals WHERE thread_id = ? AND applied = 0 "
                    "AND status NOT IN ('pending', 'outcome_unknown')",
                    (thread_id,),
                ).fetchall()
            },
            one_statement=True,
        )

    def votes(self, thread_id: str, tool_call_id: str) -> list[Vote]:
        """The votes on a quorum call's current args, oldest first (none for other calls)."""
        return self._read(lambda cur: votes_of(cur, thread_id, tool_call_id))

    def audit_trail(self, thread_id: str) -> list[AuditEntry]:
        """A thread's audit entries, oldest first."""
        return self._read(lambda cur: read_trail(cur, thread_id))

    def export_audit(
        self, thread_id: str | None = None, *, page: int = EXPORT_PAGE
    ) -> Iterator[AuditEntry]:
        """Every audit entry (or one thread's), by thread then `seq`, read `page` entries at a
        time (each page one short read): an export of any size in bounded memory, which never
        holds a read open while the caller writes."""
        after: tuple[str, int] = ("", 0)
        while True:
            entries = self._read(partial(_export_page, thread_id=thread_id, after=after, page=page))
            yield from entries
            if len(entries) < page:
                return
            after = (entries[-1].thread_id, entries[-1].seq)

    def stats(self) -> dict[str, dict[str, int]]:
        """Counts for monitoring: calls by status, decisions by type, tool runs by outcome."""

        def work(cur: Cursor) -> dict[str, dict[str, int]]:
            def grouped(sql: str) -> dict[str, int]:
                return {str(key): count for key, count in cur.execute(sql)}

            return {
                "status": grouped("SELECT status, COUNT(*) FROM hitl_approvals GROUP BY status"),
                "decisions": grouped(
                    "SELECT json_extract(decision, '$.type'), COUNT(*) FROM hitl_approvals "
                    "WHERE decision IS NOT NULL GROUP BY 1"
                ),
                "tool_runs": grouped(
                    "SELECT status, COUNT(*) FROM hitl_approvals WHERE status IN "
                    "('succeeded', 'failed', 'outcome_unknown', 'running') GROUP BY status"
                ),
            }

        return self._read(work)

    def audit_listener(self) -> PgListener | None:
        """On PostgreSQL, a listener woken by every audit entry (and run) any process
        commits; None on SQLite (there, `audit_head` and the run queue are polled)."""
        return PgListener(self._conn.url) if isinstance(self._conn, PgConnection) else None

    def audit_head(self) -> int:
        """A number that grows with every audit entry: has anything happened since?"""
        head = self._read(lambda cur: scalar(cur.execute("SELECT MAX(rowid) FROM hitl_audit")))
        return int(head or 0)

    def verify_audit(self) -> AuditReport:
        """Check every thread's chain; report the first broken link of each broken chain."""
        return self._read(verify_all)


def _export_page(
    cur: Cursor, *, thread_id: str | None, after: tuple[str, int], page: int
) -> list[AuditEntry]:
    """The `page` entries that follow `after` (thread ID, seq) in export order."""
    params: tuple[str | int, ...]
    if thread_id is not None:
        where, params = "thread_id = ? AND seq > ?", (thread_id, after[1])
    else:
        where, params = "thread_id > ? OR (thread_id = ? AND seq > ?)", (after[0], *after)
    rows = cur.execute(
        f"SELECT {AUDIT_COLUMNS} FROM hitl_audit WHERE {where} ORDER BY thread_id, seq LIMIT ?",
        (*params, page),
    ).fetchall()
    return [audit_entry_of(r) for r in rows]


def find_record(cur: Cursor, thread_id: str, tool_call_id: str) -> ApprovalRecord | None:
    """The call's row, or None."""
    row = cur.execute(
        f"SELECT {COLUMNS} FROM hitl_approvals WHERE thread_id = ? AND tool_call_id = ?",
        (thread_id, tool_call_id),
    ).fetchone()
    return None if row is None else record_of(row)


def threads_of(cur: Cursor, tool_call_id: str) -> list[str]:
    """The threads that have a call with this ID."""
    return [
        r[0]
        for r in cur.execute(
            "SELECT thread_id FROM hitl_approvals WHERE tool_call_id = ?", (tool_call_id,)
        ).fetchall()
    ]
