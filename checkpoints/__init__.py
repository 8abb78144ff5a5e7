"""Persistence: the SQLite saver, tuned for durable approvals, and its strict serializer."""

from checkpoints.serde import UntrustedCheckpointError, make_strict_serializer
from checkpoints.sqlite import DatabaseError, list_thread_ids, open_async_saver, open_saver

__all__ = [
    "DatabaseError",
    "UntrustedCheckpointError",
    "list_thread_ids",
    "make_strict_serializer",
    "open_async_saver",
    "open_saver",
]
