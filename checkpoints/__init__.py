"""Persistence: the checkpoint savers (SQLite, PostgreSQL), the ledger's stores, the serializer."""

from hitl.checkpoints.errors import DatabaseError, UntrustedCheckpointError
from hitl.checkpoints.savers import (
    list_thread_ids,
    make_strict_serializer,
    open_async_saver,
    open_saver,
)

__all__ = [
    "DatabaseError",
    "UntrustedCheckpointError",
    "list_thread_ids",
    "make_strict_serializer",
    "open_async_saver",
    "open_saver",
]
