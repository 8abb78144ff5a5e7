"""The PostgreSQL saver: LangGraph's conformance suite, and conversations stored once."""

from collections.abc import AsyncIterator

import psycopg
import pytest
from langgraph.checkpoint.conformance import checkpointer_test

from hitl.checkpoints.savers import HitlPostgresSaver, open_postgres_saver
from tests.support.conformance import assert_conformant
from tests.support.fakes import ToolLog
from tests.support.harness import open_test_service
from tests.support.postgres import fresh_database
from tests.support.prompts import COUNT

pytestmark = pytest.mark.postgres


def test_the_postgres_saver_passes_langgraph_checkpoint_conformance() -> None:
    @checkpointer_test(name="HitlPostgresSaver")
    async def ours() -> AsyncIterator[HitlPostgresSaver]:
        with fresh_database() as url, open_postgres_saver(url) as saver:
            yield saver

    assert_conformant(ours)


def test_a_long_conversation_is_stored_once_per_message_on_postgres() -> None:
    """Each turn adds its messages to `hitl_messages` once; the checkpoints' blobs of the
    conversation stay a small reference however long it grows."""
    with fresh_database() as url:
        with open_test_service(url, ToolLog()) as service:
            thread_id = service.run(COUNT, actor="a").thread_id
            for turn in range(15):
                service.run(f"and again, turn {turn}", thread_id, actor="a")
            messages = service.show(thread_id).messages_total
        with psycopg.connect(url) as conn:
            stored = conn.execute(
                "SELECT COUNT(*) FROM hitl_messages WHERE thread_id = %s", (thread_id,)
            ).fetchone()
            biggest = conn.execute(
                "SELECT MAX(length(blob)) FROM checkpoint_blobs WHERE thread_id = %s "
                "AND channel = 'messages'",
                (thread_id,),
            ).fetchone()
    assert stored is not None and biggest is not None
    assert stored[0] == messages > 30
    assert biggest[0] < 200  # a reference, not the list (which is several kB by now)
