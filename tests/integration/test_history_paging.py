"""History pages: a page of N costs the same few statements however long the thread, and
pages put together are the whole history."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hitl.checkpoints.savers import Saver
from hitl.service.errors import UnknownCheckpoint
from hitl.service.workflow import ApprovalService
from tests.support.fakes import ToolLog
from tests.support.harness import open_harness, open_test_service
from tests.support.prompts import COUNT


def grown(service: ApprovalService, thread_id: str, turns: int) -> str:
    for _ in range(turns):
        service.run(COUNT, thread_id, actor="alice")
    return thread_id


@contextmanager
def statements(saver: Saver) -> Iterator[list[str]]:
    """The SQL statements the checkpoint saver runs meanwhile (on its own connection: what a
    page costs it)."""
    seen: list[str] = []
    conn = saver.conn
    conn.set_trace_callback(seen.append)
    try:
        yield seen
    finally:
        conn.set_trace_callback(None)


@pytest.mark.sqlite_only  # counts the SQLite saver's statements
def test_a_page_costs_the_same_statements_on_a_long_thread_as_on_a_short_one(
    db: Path, log: ToolLog
) -> None:
    with open_harness(db, log) as parts:
        service = parts.service
        short = grown(service, "short", 13)
        long = grown(service, "long", 60)
        assert len(service.history(long)) > 4 * len(service.history(short))
        with statements(parts.saver) as on_short:
            short_page = service.history(short, limit=20)
        with statements(parts.saver) as on_long:
            long_page = service.history(long, limit=20)
    assert len(short_page) == len(long_page) == 20
    selects = [s for s in on_long if s.lstrip().upper().startswith("SELECT")]
    assert len(on_long) == len(on_short) and len(selects) <= 4, on_long


def test_pages_put_together_are_the_whole_history(db: Path, log: ToolLog) -> None:
    with open_test_service(db, log) as service:
        thread_id = grown(service, "t", 7)
        whole = service.history(thread_id)
        pages, before = [], None
        while page := service.history(thread_id, limit=6, before=before):
            pages.insert(0, page)
            before = page[0].checkpoint_id
    assert [e for page in pages for e in page] == whole


def test_a_page_before_a_checkpoint_the_thread_does_not_have_is_refused(
    db: Path, log: ToolLog
) -> None:
    with open_test_service(db, log) as service:
        thread_id = grown(service, "t", 1)
        other = grown(service, "u", 1)
        elsewhere = service.history(other)[-1].checkpoint_id
        for before in ("no-such-checkpoint", elsewhere):
            with pytest.raises(UnknownCheckpoint, match="has no checkpoint"):
                service.history(thread_id, limit=5, before=before)
