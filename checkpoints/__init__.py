"""Persistence: the checkpoint savers (SQLite, PostgreSQL), the ledger's stores, the serializer."""

from checkpoints.backends import open_async_saver, open_saver
from checkpoints.serde import UntrustedCheckpointError, make_strict_serializer
from checkpoints.sqlite import DatabaseError, list_thread_ids

__all__ = [
    "DatabaseError",
    "UntrustedCheckpointError",
    "list_thread_ids",
    "make_strict_serializer",
    "open_async_saver",
    "open_saver",
]
