"""Persistence: the checkpoint savers (SQLite, PostgreSQL), the ledger's stores, the serializer.

The names load on first use: a module of this package (the ledger, the records) is imported
without loading LangGraph's savers, so `hitl pending` starts without them.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hitl.checkpoints.errors import DatabaseError, UntrustedCheckpointError
    from hitl.checkpoints.savers import (
        list_thread_ids,
        make_strict_serializer,
        open_async_saver,
        open_saver,
    )

_EXPORTS = {
    "DatabaseError": "hitl.checkpoints.errors",
    "UntrustedCheckpointError": "hitl.checkpoints.errors",
    "list_thread_ids": "hitl.checkpoints.savers",
    "make_strict_serializer": "hitl.checkpoints.savers",
    "open_async_saver": "hitl.checkpoints.savers",
    "open_saver": "hitl.checkpoints.savers",
}

__all__ = [
    "DatabaseError",
    "UntrustedCheckpointError",
    "list_thread_ids",
    "make_strict_serializer",
    "open_async_saver",
    "open_saver",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
