"""The service layer: every rule of starting, continuing, deciding, reconciling and expiring,
shared by every front end (the CLI, the HTTP API and web inbox, the remote CLI).

Front ends import what they need from here; `errors` (what each operation may refuse, with
its exit code and HTTP status) and `timespec` (durations and moments as people write them)
are modules of their own. The names load on first use: `hitl.service.errors` is imported
without loading the graph and LangGraph, so the CLI starts without them.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_MODULES = {
    "hitl.service.settings": ("Settings", "default_actor"),
    "hitl.service.views": (
        "HistoryEntry",
        "InboxPage",
        "PendingApproval",
        "Status",
        "SweepReport",
        "ThreadView",
    ),
    "hitl.service.workflow": (
        "SWEEP_ACTOR",
        "ApprovalService",
        "Decided",
        "EveryPending",
        "InboxQuery",
        "MovesOn",
        "Observer",
        "ReconcileAction",
        "Reconciled",
        "RunHere",
        "Sent",
    ),
}
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names}

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


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
