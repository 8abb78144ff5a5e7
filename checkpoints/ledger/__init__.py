"""The approvals ledger: one row per gated tool call, its state machine, journal, leases and
the hash-chained audit trail."""

from hitl.checkpoints.database import MAX_OFFSET
from hitl.checkpoints.ledger._leases import (
    alive_on_this_host,
    host_id,
    lease_holder,
    mark_done,
    mark_live,
    new_token,
    runner_process,
    runner_token,
)
from hitl.checkpoints.ledger._ledger import (
    ROLE_PREFIX,
    Ledger,
    check_permitted,
    make_ledger,
    open_ledger,
)
from hitl.checkpoints.ledger._quorum import progress
from hitl.checkpoints.ledger._reads import Clock, InboxQuery, SnoozeFilter, SortKey
from hitl.checkpoints.ledger._renewal import LeaseRenewer
from hitl.checkpoints.ledger._schema import (
    AUDIT_COLUMNS,
    COLUMNS,
    SCHEMA_VERSION,
    audit_entry_of,
    record_of,
)
from hitl.checkpoints.ledger._standing import Remember
from hitl.checkpoints.ledger._threads import (
    ThreadFilter,
    ThreadQuery,
    ThreadStatus,
    ThreadSummary,
    checkpoint_time,
)

__all__ = [
    "AUDIT_COLUMNS",
    "COLUMNS",
    "MAX_OFFSET",
    "ROLE_PREFIX",
    "SCHEMA_VERSION",
    "Clock",
    "InboxQuery",
    "LeaseRenewer",
    "Ledger",
    "Remember",
    "SnoozeFilter",
    "SortKey",
    "ThreadFilter",
    "ThreadQuery",
    "ThreadStatus",
    "ThreadSummary",
    "alive_on_this_host",
    "audit_entry_of",
    "check_permitted",
    "checkpoint_time",
    "host_id",
    "lease_holder",
    "make_ledger",
    "mark_done",
    "mark_live",
    "new_token",
    "open_ledger",
    "progress",
    "record_of",
    "runner_process",
    "runner_token",
]
