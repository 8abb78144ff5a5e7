"""The ledger's tables: versioned migrations, and how a row becomes a record."""

import json
from typing import Any

from hitl.checkpoints.database import PostgresOnly
from hitl.checkpoints.records import ApprovalRecord, AuditEntry, Triage

WAITING = "status IN ('pending', 'outcome_unknown')"
"""The inbox's condition, spelled once: SQLite uses a partial index only for this exact text."""
SCHEMA_VERSION = 3
MIGRATIONS: dict[int, tuple[str | PostgresOnly, ...]] = {
    1: (
        """CREATE TABLE hitl_approvals (
            thread_id TEXT NOT NULL,
            tool_call_id TEXT NOT NULL,
            interrupt_id TEXT,
            tool TEXT NOT NULL,
            args TEXT NOT NULL,
            args_hash TEXT NOT NULL,
            requester TEXT,
            status TEXT NOT NULL,
            allowed_decisions TEXT NOT NULL,
            description TEXT NOT NULL,
            requested_at REAL NOT NULL,
            expires_at REAL,
            on_expire TEXT NOT NULL,
            approvers TEXT,
            allow_self_approval INTEGER NOT NULL,
            decided_at REAL,
            decided_by TEXT,
            decision TEXT,
            reason TEXT,
            approved_args_hash TEXT,
            runner TEXT,
            started_at REAL,
            finished_at REAL,
            result TEXT,
            result_status TEXT,
            audit_seq INTEGER NOT NULL DEFAULT 0,
            applied INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (thread_id, tool_call_id)
        )""",
        "CREATE INDEX hitl_approvals_status ON hitl_approvals (status, requested_at)",
        # the inbox: only the rows that need a person, already in page order
        "CREATE INDEX hitl_approvals_inbox ON hitl_approvals (requested_at, thread_id, "
        f"tool_call_id) WHERE {WAITING}",
        "CREATE INDEX hitl_approvals_inbox_by_deadline ON hitl_approvals ((expires_at IS NULL), "
        f"expires_at, thread_id, tool_call_id) WHERE {WAITING}",
        "CREATE INDEX hitl_approvals_expiry ON hitl_approvals (status, expires_at)"
        " WHERE expires_at IS NOT NULL",
        "CREATE INDEX hitl_approvals_call ON hitl_approvals (tool_call_id)",
        # decided calls whose thread has not been seen to apply the decision yet
        "CREATE INDEX hitl_approvals_unapplied ON hitl_approvals (decided_at) WHERE applied = 0",
        """CREATE TABLE hitl_audit (
            thread_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            at REAL NOT NULL,
            event TEXT NOT NULL,
            actor TEXT NOT NULL,
            tool_call_id TEXT,
            detail TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL,
            PRIMARY KEY (thread_id, seq)
        )""",
        # SQLite numbers rows itself; webhooks and inbox streams follow audit rows by `rowid`
        PostgresOnly(
            "ALTER TABLE hitl_audit ADD COLUMN rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE"
        ),
        """CREATE TABLE hitl_leases (
            thread_id TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            expires_at REAL NOT NULL
        )""",
    ),
    # one step past the first release: triage (reminders, escalation, assignment, snooze;
    # see `_triage.py`), quorum and standing approvals (`_quorum.py`, `_standing.py`), and
    # why each call was asked or let through (`_policy.py`)
    2: (
        "ALTER TABLE hitl_approvals ADD COLUMN remind_at REAL",
        "ALTER TABLE hitl_approvals ADD COLUMN escalate_at REAL",
        "ALTER TABLE hitl_approvals ADD COLUMN escalate_to TEXT",
        "ALTER TABLE hitl_approvals ADD COLUMN reminded_at REAL",
        "ALTER TABLE hitl_approvals ADD COLUMN escalated_at REAL",
        "ALTER TABLE hitl_approvals ADD COLUMN assignee TEXT",
        "ALTER TABLE hitl_approvals ADD COLUMN snoozed_until REAL",
        # the inbox's count reads snoozed_until from the index, not from each row
        "DROP INDEX hitl_approvals_status",
        "CREATE INDEX hitl_approvals_status ON hitl_approvals "
        "(status, requested_at, snoozed_until)",
        # the sweep's nudges: only the pending calls with one still to send
        "CREATE INDEX hitl_approvals_reminders ON hitl_approvals (remind_at) "
        "WHERE status = 'pending' AND reminded_at IS NULL AND remind_at IS NOT NULL",
        "CREATE INDEX hitl_approvals_escalations ON hitl_approvals (escalate_at) "
        "WHERE status = 'pending' AND escalated_at IS NULL AND escalate_at IS NOT NULL",
        "ALTER TABLE hitl_approvals ADD COLUMN quorum INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE hitl_approvals ADD COLUMN quorum_distinct_roles INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE hitl_approvals ADD COLUMN reject_vetoes INTEGER NOT NULL DEFAULT 1",
        # one vote per person per call (the primary key); asking again with other args
        # clears the call's votes (the audit trail keeps them)
        """CREATE TABLE hitl_votes (
            thread_id TEXT NOT NULL,
            tool_call_id TEXT NOT NULL,
            args_hash TEXT NOT NULL,
            approver TEXT NOT NULL,
            role TEXT,
            vote TEXT NOT NULL,
            at REAL NOT NULL,
            PRIMARY KEY (thread_id, tool_call_id, approver)
        )""",
        """CREATE TABLE hitl_standing (
            id TEXT PRIMARY KEY,
            tool TEXT NOT NULL,
            args_hash TEXT,
            requester TEXT,
            thread_id TEXT,
            created_by TEXT NOT NULL,
            created_roles TEXT NOT NULL,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            revoked_at REAL,
            revoked_by TEXT,
            source_thread_id TEXT NOT NULL,
            source_tool_call_id TEXT NOT NULL
        )""",
        "CREATE INDEX hitl_standing_tool ON hitl_standing (tool, expires_at)",
        "ALTER TABLE hitl_approvals ADD COLUMN why TEXT",
    ),
    # no table changes: on SQLite a thread's lease is a file lock from now on, not a row of
    # `hitl_leases`, and a program that takes them as rows must not run beside one that takes
    # files (both would hold the thread): this version tells it the schema is newer than it
    3: (),
}
INDEX_UPGRADES = (
    # the decided calls not yet applied (the sweep's), without the undecided ones: a request
    # writes no page of it
    "CREATE INDEX IF NOT EXISTS hitl_approvals_decided_unapplied ON hitl_approvals (decided_at) "
    "WHERE applied = 0 AND decided_at IS NOT NULL",
)
"""Indexes added since the version's tables were made, and (`RETIRED_INDEXES`) the ones they
replace: applied by any program that may write the file, once. Tables and queries are the
version's, so a program of the same version that predates them (or one that may only read
the file) works with either."""
RETIRED_INDEXES = ("hitl_approvals_unapplied",)
COLUMNS = (
    "thread_id, tool_call_id, interrupt_id, tool, args, args_hash, requester, status, "
    "allowed_decisions, description, requested_at, expires_at, on_expire, approvers, "
    "allow_self_approval, decided_at, decided_by, decision, reason, approved_args_hash, "
    "runner, started_at, finished_at, result, result_status, why, "
    "remind_at, escalate_at, escalate_to, reminded_at, escalated_at, assignee, snoozed_until, "
    "quorum, quorum_distinct_roles, reject_vetoes"
)


COLUMN_NAMES = tuple(name.strip() for name in COLUMNS.split(","))


def record_of_fields(thread_id: str, tool_call_id: str, fields: dict[str, Any]) -> ApprovalRecord:
    """The record a new row of these column values (as stored) would read back as: what an
    insert would return, without the insert (columns not given are NULL)."""
    given = {"thread_id": thread_id, "tool_call_id": tool_call_id, **fields}
    return record_of(tuple(given.get(name) for name in COLUMN_NAMES))


def record_of(row: tuple[Any, ...]) -> ApprovalRecord:
    """A `hitl_approvals` row (selected as `COLUMNS`) as a record."""
    (
        thread_id, tool_call_id, interrupt_id, tool, args, h, requester, status, allowed,
        description, requested_at, expires_at, on_expire, approvers, allow_self, decided_at,
        decided_by, decision, reason, approved_hash, runner, started_at, finished_at, result,
        result_status, why, remind_at, escalate_at, escalate_to, reminded_at, escalated_at,
        assignee, snoozed_until, quorum, quorum_distinct_roles, reject_vetoes,
    ) = row  # fmt: skip
    return ApprovalRecord(
        thread_id=thread_id,
        tool_call_id=tool_call_id,
        interrupt_id=interrupt_id,
        tool=tool,
        args=json.loads(args),
        args_hash=h,
        requester=requester,
        status=status,
        allowed_decisions=json.loads(allowed),
        description=description,
        requested_at=requested_at,
        expires_at=expires_at,
        on_expire=on_expire,
        approvers=None if approvers is None else json.loads(approvers),
        allow_self_approval=bool(allow_self),
        decided_at=decided_at,
        decided_by=decided_by,
        decision=None if decision is None else json.loads(decision),
        reason=reason,
        approved_args_hash=approved_hash,
        runner=runner,
        started_at=started_at,
        finished_at=finished_at,
        result=result,
        result_status=result_status,
        why=None if why is None else json.loads(why),
        triage=None
        if remind_at is None
        and escalate_at is None
        and escalate_to is None
        and reminded_at is None
        and escalated_at is None
        and assignee is None
        and snoozed_until is None
        else Triage(
            remind_at=remind_at,
            escalate_at=escalate_at,
            escalate_to=None if escalate_to is None else json.loads(escalate_to),
            reminded_at=reminded_at,
            escalated_at=escalated_at,
            assignee=assignee,
            snoozed_until=snoozed_until,
        ),
        quorum=int(quorum),
        quorum_distinct_roles=bool(quorum_distinct_roles),
        reject_vetoes=bool(reject_vetoes),
    )


def audit_entry_of(row: tuple[Any, ...]) -> AuditEntry:
    """A `hitl_audit` row (selected as `AUDIT_COLUMNS`) as an entry."""
    thread_id, seq, at, event, actor, tool_call_id, detail, prev_hash, entry_hash = row
    try:
        parsed = json.loads(detail)
    except (TypeError, json.JSONDecodeError):
        # an altered row stays readable; its hash no longer matches, so verification flags it
        parsed = {"unreadable_detail": str(detail)}
    return AuditEntry(thread_id, seq, at, event, actor, tool_call_id, parsed, prev_hash, entry_hash)


AUDIT_COLUMNS = "thread_id, seq, at, event, actor, tool_call_id, detail, prev_hash, hash"
