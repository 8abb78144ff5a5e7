"""On PostgreSQL a checkpoint's new messages are written in the pipeline that writes the
checkpoint: the guard that the stored message they follow still exists holds there too."""

import psycopg
import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.base import empty_checkpoint

from hitl.checkpoints.errors import MissingMessage
from hitl.checkpoints.savers import open_saver
from hitl.checkpoints.urls import as_postgres
from hitl.graph.message_log import MessageLogChannel
from tests.support.fakes import ToolLog
from tests.support.harness import open_test_service
from tests.support.postgres import fresh_database
from tests.support.prompts import COUNT

pytestmark = pytest.mark.postgres


def test_a_checkpoint_is_never_committed_after_the_messages_it_follows_were_deleted() -> None:
    with fresh_database() as url:
        with open_test_service(url, ToolLog()) as service:
            for _ in range(2):
                service.run(COUNT, "t", actor="alice")
        with open_saver(url) as saver:
            loaded = saver.get_tuple({"configurable": {"thread_id": "t"}})
            assert loaded is not None
            channel = MessageLogChannel().from_checkpoint(
                loaded.checkpoint["channel_values"]["messages"]
            )
            channel.update([HumanMessage("late", id="late")])  # appended: nothing read
            with psycopg.connect(str(as_postgres(url)), autocommit=True) as conn:
                for table in ("checkpoints", "checkpoint_writes", "hitl_messages"):
                    conn.execute(f"DELETE FROM {table} WHERE thread_id = 't'")
            checkpoint = empty_checkpoint()
            checkpoint["channel_values"] = {"messages": channel.checkpoint()}
            with pytest.raises(MissingMessage):
                saver.put(loaded.config, checkpoint, {}, {})
            with psycopg.connect(str(as_postgres(url)), autocommit=True) as conn:
                counts = [
                    conn.execute(f"SELECT COUNT(*) FROM {table} WHERE thread_id = 't'").fetchone()
                    for table in ("checkpoints", "hitl_messages")
                ]
            assert counts == [(0,), (0,)]
            assert saver.get_tuple({"configurable": {"thread_id": "u"}}) is None  # still usable
