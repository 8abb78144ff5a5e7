"""LangGraph's checkpoint savers on our database (SQLite, PostgreSQL), with the message log
beside them and a serializer that never imports what a row names."""

from typing import TYPE_CHECKING, Any

from hitl.checkpoints.savers._backends import Saver, open_async_saver, open_saver
from hitl.checkpoints.savers._commit_points import scheduled_nodes
from hitl.checkpoints.savers._message_log import (
    LOG_REF_KEY,
    SavedLog,
    SqliteMessageSource,
    delete_unreachable,
    log_ref,
    reachable_nodes,
    tails_of,
)
from hitl.checkpoints.savers._serde import COMPRESSED, MAX_INFLATED, make_strict_serializer
from hitl.checkpoints.savers._sqlite import BatchingSqliteSaver, list_thread_ids

if TYPE_CHECKING:
    from hitl.checkpoints.savers._postgres import HitlPostgresSaver, open_postgres_saver


def __getattr__(name: str) -> Any:
    """The PostgreSQL saver, imported when asked for: psycopg is the `postgres` extra's."""
    if name in ("HitlPostgresSaver", "open_postgres_saver"):
        from hitl.checkpoints.savers import _postgres

        return getattr(_postgres, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "COMPRESSED",
    "LOG_REF_KEY",
    "MAX_INFLATED",
    "BatchingSqliteSaver",
    "HitlPostgresSaver",
    "SavedLog",
    "Saver",
    "SqliteMessageSource",
    "delete_unreachable",
    "list_thread_ids",
    "log_ref",
    "make_strict_serializer",
    "open_async_saver",
    "open_postgres_saver",
    "open_saver",
    "reachable_nodes",
    "scheduled_nodes",
    "tails_of",
]
