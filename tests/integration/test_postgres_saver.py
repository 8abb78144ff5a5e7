"""The PostgreSQL saver: LangGraph's conformance suite, conversations stored once, and
commits that are all or nothing."""

import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.conformance import checkpointer_test

from hitl.checkpoints.errors import StepsLost
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


FAIL_SECOND_WRITE = """
CREATE FUNCTION fail_second_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.idx = 1 THEN RAISE EXCEPTION 'injected failure'; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER fail_second_write BEFORE INSERT ON checkpoint_writes
    FOR EACH ROW EXECUTE FUNCTION fail_second_write();
"""


def test_a_commit_that_fails_halfway_leaves_none_of_its_rows_behind_on_postgres() -> None:
    """The rows of several puts commit in one transaction: when the last fails, the
    checkpoint buffered before it is not left on disk alone."""
    config: Any = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"branch:to:agent": None}  # schedules a plain node: buffered
    with fresh_database() as url:
        with open_postgres_saver(url) as saver:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(FAIL_SECOND_WRITE)
            saved = saver.put(config, checkpoint, {}, {})
            with pytest.raises(psycopg.errors.RaiseException, match="injected failure"):
                saver.put_writes(saved, [("messages", "first"), ("messages", "second")], "task")
                saver.flush()
            assert saver.get_tuple({"configurable": {"thread_id": "u"}}) is None  # still usable
        with psycopg.connect(url) as conn:
            found = conn.execute(
                "SELECT (SELECT COUNT(*) FROM checkpoints), "
                "(SELECT COUNT(*) FROM checkpoint_writes)"
            ).fetchone()
    assert found == (0, 0)


def test_writes_wait_in_memory_until_a_read_of_their_thread_or_a_commit_point() -> None:
    """A step's writes are buffered (no exchange with the server), and committed before this
    saver reads their thread, so a read never misses them; a read of another thread leaves
    them."""
    config: Any = {"configurable": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "c1"}}
    with fresh_database() as url, open_postgres_saver(url) as saver:
        saver.put_writes(config, [("messages", "first")], "task")

        def on_disk() -> int:
            with psycopg.connect(url) as conn:
                found = conn.execute("SELECT COUNT(*) FROM checkpoint_writes").fetchone()
            return int(found[0]) if found else -1

        assert on_disk() == 0 and saver.commits == 0
        assert saver.get_tuple({"configurable": {"thread_id": "u"}}) is None
        assert on_disk() == 0
        assert saver.get_tuple({"configurable": {"thread_id": "t"}}) is None  # (no checkpoint)
        assert on_disk() == 1 and saver.commits == 1


def _checkpoint(values: dict[str, Any], versions: dict[str, Any]) -> Any:
    checkpoint = empty_checkpoint()
    checkpoint["id"] = str(uuid.uuid4())
    checkpoint["channel_values"], checkpoint["channel_versions"] = values, versions
    return checkpoint


def test_another_runs_refused_commit_leaves_this_runs_steps_to_their_own_commit() -> None:
    """Two runs in one process: the first has a step buffered (a value stored as a blob); the
    second's commit fails on a value PostgreSQL refuses; the first's next commit, which
    refers to that blob, stores its checkpoint whole."""
    first: Any = {"configurable": {"thread_id": "a", "checkpoint_ns": ""}}
    second: Any = {"configurable": {"thread_id": "b", "checkpoint_ns": ""}}
    versions = {"foo": "1", "branch:to:agent": "1"}
    with fresh_database() as url, open_postgres_saver(url) as saver:
        step = _checkpoint({"foo": ["x"], "branch:to:agent": None}, versions)
        saved = saver.put(first, step, {}, versions)  # schedules a plain node: buffered
        refused = _checkpoint({"s": "a\x00b"}, {"s": "1"})  # JSON may not hold a NUL
        with pytest.raises(psycopg.errors.UntranslatableCharacter):
            saver.put(second, refused, {}, {"s": "1"})  # schedules nothing: commits now
        end = _checkpoint({"foo": ["x"]}, {"foo": "1"})
        saver.put(saved, end, {}, {})  # the run's end: the blob is the step's
        found = saver.get_tuple(
            {"configurable": {**saved["configurable"], "checkpoint_id": end["id"]}}
        )
    assert found is not None and found.checkpoint["channel_values"] == {"foo": ["x"]}


def test_a_read_of_a_thread_waits_for_its_commit_under_way_and_not_for_another_threads() -> None:
    """A commit held up in the database (another session holds a row it writes): a read of its
    thread returns once it is on disk; a read of another thread returns at once."""
    held: Any = {"configurable": {"thread_id": "x", "checkpoint_ns": ""}}
    with fresh_database() as url, open_postgres_saver(url) as saver:
        checkpoint = _checkpoint({}, {})
        with psycopg.connect(url) as other:  # holds the row the commit will write, uncommitted
            other.execute(
                "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, checkpoint, "
                "metadata) VALUES ('x', '', %s, '{}', '{}')",
                (checkpoint["id"],),
            )
            committing = threading.Thread(target=saver.put, args=(held, checkpoint, {}, {}))
            committing.start()  # schedules nothing: commits, and waits for `other`
            time.sleep(0.3)
            read: list[object] = []
            reader = threading.Thread(target=lambda: read.append(saver.get_tuple(held)))
            reader.start()
            assert saver.get_tuple({"configurable": {"thread_id": "y"}}) is None  # at once
            reader.join(0.3)
            assert reader.is_alive()  # waits for the commit of x's rows
            other.rollback()
        committing.join(10)
        reader.join(10)
    assert read and read[0] is not None


SLOW_FAILURE = """
CREATE FUNCTION slow_failure() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.metadata->>'fail' = 'yes' THEN PERFORM pg_sleep(1); RAISE EXCEPTION 'injected'; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER slow_failure BEFORE INSERT ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION slow_failure();
"""


def test_a_run_whose_steps_a_read_failed_to_commit_is_stopped_at_its_next_commit() -> None:
    """A read of the thread commits the run's buffered step, and that commit fails slowly;
    the run's end, put meanwhile, follows the dropped step: it is refused (`StepsLost`), not
    stored without the blob and the parent it refers to."""
    run: Any = {"configurable": {"thread_id": "a", "checkpoint_ns": ""}}
    versions = {"foo": "1", "branch:to:agent": "1"}
    with fresh_database() as url, open_postgres_saver(url) as saver:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SLOW_FAILURE)
        step = _checkpoint({"foo": ["x"], "branch:to:agent": None}, versions)
        saved = saver.put(run, step, {"fail": "yes"}, versions)  # buffered (schedules agent)
        reader = threading.Thread(target=lambda: saver.get_tuple(run))  # a UI polling, say
        reader.start()
        time.sleep(0.3)  # the read's commit of the step is under way
        end = _checkpoint({"foo": ["x"]}, {"foo": "1"})
        with pytest.raises(StepsLost, match="'a'"):
            saver.put(saved, end, {}, {})  # the run's end: a commit point
        reader.join(10)
        assert saver.get_tuple(run) is None  # nothing of the run stored
        again = saver.put(run, _checkpoint({}, {}), {}, {})  # a new run, from what is on disk
        assert saver.get_tuple(again) is not None
