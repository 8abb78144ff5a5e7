"""On PostgreSQL an audit entry committed by any process wakes every listener at once."""

import multiprocessing as mp
import time
from pathlib import Path

import pytest

from checkpoints.ledger import open_ledger
from tests.postgres import fresh_database


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
            assert listener.wait(0.2) is False  # nothing happened: it times out
            head = ledger.audit_head()
            asker = mp.get_context("spawn").Process(target=_ask, args=(url,))
            asker.start()
            started = time.monotonic()
            assert listener.wait(30.0) is True
            waited = time.monotonic() - started
            asker.join(30)
            assert asker.exitcode == 0
            assert ledger.audit_head() > head
            assert waited < 10.0  # woken by the commit, not by the 30 s timeout
            assert listener.wait(0.2) is False  # one burst, one wake-up
        finally:
            listener.close()


def test_sqlite_has_no_listener_and_is_polled(tmp_path: Path) -> None:
    with open_ledger(tmp_path / "hitl.sqlite") as ledger:
        assert ledger.audit_listener() is None
