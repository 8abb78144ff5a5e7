"""On PostgreSQL an audit entry or a run committed by any process wakes every listener at once."""

import multiprocessing as mp
import time
from pathlib import Path
from typing import cast

import pytest

from hitl.checkpoints.database import Cursor, PgCursor, notify
from hitl.checkpoints.ledger import mark_done, mark_live, new_token, open_ledger
from hitl.checkpoints.stores import open_run_queue
from tests.support.postgres import fresh_database


def _ask(url: str) -> None:
    """Another process registers a call (one audit entry, one commit)."""
    with open_ledger(url) as ledger:
        ledger.request(
            thread_id="t",
            tool_call_id="c",
            interrupt_id=None,
            tool="send_email",
            args={"recipient": "sally@example.com"},
            requester="alice",
            needs_review=True,
            allowed_decisions=["approve", "reject"],
            description="",
        )


@pytest.mark.postgres
def test_an_audit_entry_of_another_process_wakes_the_listener_at_once() -> None:
    with fresh_database() as url, open_ledger(url) as ledger:
        listener = ledger.audit_listener()
        assert listener is not None
        try:
            assert listener.wait(0.2) == []  # nothing happened: it times out
            head = ledger.audit_head()
            asker = mp.get_context("spawn").Process(target=_ask, args=(url,))
            asker.start()
            started = time.monotonic()
            heard = listener.wait(30.0)
            waited = time.monotonic() - started
            assert ("audit", "") in heard
            asker.join(30)
            assert asker.exitcode == 0
            assert ledger.audit_head() > head
            assert waited < 25.0  # woken by the commit (a child process started), not the timeout
            assert listener.wait(0.2) == []  # one burst, one wake-up
        finally:
            listener.close()


def _queue_and_finish(url: str) -> None:
    """Another process queues a run, then a runner of its own claims and finishes it."""
    with open_run_queue(url) as queue:
        queue.enqueue("t", "message", {"messages": ["hi"]}, actor="alice")
        runner = new_token()
        mark_live(runner)
        claimed = queue.claim(runner)
        assert claimed is not None
        queue.finish(claimed.run_id, runner)
        mark_done(runner)


@pytest.mark.postgres
def test_a_run_queued_and_finished_by_another_process_is_heard_with_its_id() -> None:
    with fresh_database() as url, open_ledger(url) as ledger, open_run_queue(url):
        listener = ledger.audit_listener()
        assert listener is not None
        try:
            worker = mp.get_context("spawn").Process(target=_queue_and_finish, args=(url,))
            worker.start()
            worker.join(60)
            assert worker.exitcode == 0
            heard = listener.wait(5.0)
            heard += listener.wait(0.5)
            with open_run_queue(url) as queue:
                (finished,) = queue.of_thread("t")
        finally:
            listener.close()
    assert ("runs", "") in heard  # queued: every process's workers look
    assert ("runs", finished.run_id) in heard  # finished: whoever waits on it stops waiting


@pytest.mark.postgres
def test_a_write_notifies_with_its_commit_and_never_after_a_rollback() -> None:
    """A write's notifications are sent with its COMMIT (quoted there: a payload is text)."""
    payload = "it's; COMMIT; --"

    def fails(cur: Cursor) -> None:
        notify(cast(PgCursor, cur), "runs", "rolled back")
        raise RuntimeError("the work failed")

    with fresh_database() as url, open_ledger(url) as ledger:
        listener = ledger.audit_listener()
        assert listener is not None
        try:
            with pytest.raises(RuntimeError):
                ledger._write(fails)
            assert listener.wait(0.3) == []
            ledger._write(lambda cur: notify(cast(PgCursor, cur), "runs", payload))
            assert listener.wait(5.0) == [("runs", payload)]
        finally:
            listener.close()


def test_sqlite_has_no_listener_and_is_polled(tmp_path: Path) -> None:
    with open_ledger(tmp_path / "hitl.sqlite") as ledger:
        assert ledger.audit_listener() is None
