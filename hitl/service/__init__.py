"""The service layer: every rule of starting, continuing, deciding, reconciling and expiring,
shared by every front end (the CLI, the HTTP API and web inbox, the remote CLI).

Front ends import what they need from here; `errors` (what each operation may refuse, with
its exit code and HTTP status) and `timespec` (durations and moments as people write them)
are modules of their own.
"""

from hitl.service.settings import Settings, default_actor
from hitl.service.views import (
    HistoryEntry,
    InboxPage,
    PendingApproval,
    Status,
    SweepReport,
    ThreadView,
)
from hitl.service.workflow import (
    SWEEP_ACTOR,
    ApprovalService,
    Decided,
    EveryPending,
    InboxQuery,
    MovesOn,
    Observer,
    ReconcileAction,
    Reconciled,
    RunHere,
    Sent,
)

__all__ = [
    "SWEEP_ACTOR",
    "ApprovalService",
    "Decided",
    "EveryPending",
    "HistoryEntry",
    "InboxPage",
    "InboxQuery",
    "MovesOn",
    "Observer",
    "PendingApproval",
    "ReconcileAction",
    "Reconciled",
    "RunHere",
    "Sent",
    "Settings",
    "Status",
    "SweepReport",
    "ThreadView",
    "default_actor",
]
