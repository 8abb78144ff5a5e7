"""A checkpoint's new messages follow a stored one: the commit that writes them (SQLite's
transaction, PostgreSQL's pipeline) checks that one is still there, on both backends."""

import sqlite3
from contextlib import closing

import psycopg
import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.base import empty_checkpoint

from hitl.checkpoints.errors import MissingMessage
from hitl.checkpoints.savers import open_saver
from hitl.checkpoints.urls import DatabaseName, as_postgres, is_postgres, writes_table
from hitl.graph.message_log import MessageLogChannel
from tests.support.fakes import ToolLog
from tests.support.harness import open_test_service
from tests.support.prompts import COUNT


def run_sql(db: DatabaseName, statements: list[str]) -> list[tuple[object, ...] | None]:
    """Each statement's first row, run apart from the service (as another process would)."""
    if is_postgres(db):
        with psycopg.connect(str(as_postgres(db)), autocommit=True) as conn:
            cursors = [conn.execute(s) for s in statements]
            return [c.fetchone() if c.description else None for c in cursors]
    with closing(sqlite3.connect(db)) as conn, conn:
        return [conn.execute(s).fetchone() for s in statements]


def test_a_checkpoint_is_never_committed_after_the_messages_it_follows_were_deleted(
    db: DatabaseName, log: ToolLog
) -> None:
    """The guard for a run that appends without reading: what `hitl prune --older-than` in
    another process does meanwhile makes the checkpoint fail, not refer to nothing."""
    with open_test_service(db, log) as service:
        for _ in range(2):
            service.run(COUNT, "t", actor="alice")
    with open_saver(db) as saver:
        loaded = saver.get_tuple({"configurable": {"thread_id": "t"}})
        assert loaded is not None
        channel = MessageLogChannel().from_checkpoint(
            loaded.checkpoint["channel_values"]["messages"]
        )
        channel.update([HumanMessage("late", id="late")])  # appended: nothing read
        tables = ("checkpoints", writes_table(is_postgres(db)), "hitl_messages")
        run_sql(db, [f"DELETE FROM {table} WHERE thread_id = 't'" for table in tables])
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"messages": channel.checkpoint()}
        with pytest.raises(MissingMessage, match="thread 't'"):
            saver.put(loaded.config, checkpoint, {}, {})  # schedules nothing: commits now
        assert saver.get_tuple({"configurable": {"thread_id": "u"}}) is None  # still usable
    counted = ("checkpoints", "hitl_messages")
    assert run_sql(db, [f"SELECT COUNT(*) FROM {t} WHERE thread_id = 't'" for t in counted]) == [
        (0,),
        (0,),
    ]
