"""Asking the ledger about a call directly, as the approval node would; a ledger taken back
to its first schema."""

from typing import Any

from hitl.checkpoints.ledger import Ledger
from hitl.checkpoints.urls import DatabaseName
from tests.support.sql import execute


def request_call(ledger: Ledger, thread_id: str, call_id: str, **fields: Any) -> None:
    """Register one `send_email` call of alice's that needs review, may be approved or
    rejected and has no deadline, unless `fields` say otherwise (`args`, `tool`, ...)."""
    asked: dict[str, Any] = {
        "tool": "send_email",
        "args": {"recipient": f"{call_id}@x.org"},
        "requester": "alice",
        "needs_review": True,
        "allowed_decisions": ["approve", "reject"],
        "description": "",
        "expires_after": None,
    } | fields
    ledger.request(thread_id=thread_id, tool_call_id=call_id, interrupt_id=None, **asked)


LATER_COLUMNS = (
    "remind_at",
    "escalate_at",
    "escalate_to",
    "reminded_at",
    "escalated_at",
    "assignee",
    "snoozed_until",
    "why",
    "quorum",
    "quorum_distinct_roles",
    "reject_vetoes",
)
"""Every column a migration after the first adds to `hitl_approvals` (a new one's go here)."""
LATER_INDEXES = ("hitl_approvals_reminders", "hitl_approvals_escalations")
"""Every index a migration after the first adds (a new one's go here)."""
LATER_TABLES = ("hitl_votes", "hitl_standing")
"""Every ledger table a migration after the first creates."""


def back_to_first_schema(db: DatabaseName) -> None:
    """Turn a current ledger's tables back into those of schema 1, keeping their rows: what
    an installation from before every later migration holds."""
    for index in LATER_INDEXES:
        execute(db, f"DROP INDEX {index}")
    execute(db, "DROP INDEX hitl_approvals_status")  # schema 3 widened it
    for column in LATER_COLUMNS:
        execute(db, f"ALTER TABLE hitl_approvals DROP COLUMN {column}")
    for table in LATER_TABLES:
        execute(db, f"DROP TABLE {table}")
    execute(db, "CREATE INDEX hitl_approvals_status ON hitl_approvals (status, requested_at)")
    execute(db, "UPDATE hitl_schema SET version = 1")
