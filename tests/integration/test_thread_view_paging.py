"""A thread's view carries the newest page of its conversation, not all of it: the view `run`
returns (and the one a front end shows after a decision) reads a page's worth of messages
however long the thread, and older messages come page by page."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage

from hitl.app import Assembly, open_reader
from hitl.checkpoints.savers import SqliteMessageSource
from hitl.service.errors import MessagesOutOfRange
from hitl.service.views import MESSAGES_PAGE
from hitl.service.workflow import ApprovalService, EveryPending
from tests.support.fakes import ToolLog
from tests.support.harness import hitl_settings, open_harness
from tests.support.prompts import COUNT, SALLY

pytestmark = pytest.mark.sqlite_only  # counts the SQLite saver's message reads


def earlier_conversation(count: int) -> list[AnyMessage]:
    return [
        HumanMessage(f"note {i}", id=f"h{i}") if i % 2 == 0 else AIMessage(f"ok {i}", id=f"a{i}")
        for i in range(count)
    ]


def seeded(parts: Assembly, thread_id: str, messages: int) -> None:
    """A finished thread holding `messages` earlier messages, on disk (no model call)."""
    parts.graph.update_state(
        {"configurable": {"thread_id": thread_id}},
        {"messages": earlier_conversation(messages)},
        as_node="ApprovalMiddleware.after_model",
    )
    parts.saver.flush()


@contextmanager
def messages_read() -> Iterator[list[int]]:
    """How many stored messages the saver reads meanwhile, one entry per read."""
    read: list[int] = []
    load = SqliteMessageSource.load

    def counting(self: SqliteMessageSource, tail: str, limit: int) -> list[Any]:
        found = load(self, tail, limit)
        read.append(len(found))
        return found

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SqliteMessageSource, "load", counting)
        yield read


def approval_cycle(service: ApprovalService, thread_id: str) -> None:
    """What the CLI does for `hitl run` then `hitl approve`: each prints the thread after."""
    service.run(SALLY, thread_id, actor="alice")
    service.decide(thread_id, EveryPending("approve"), actor="bob")
    service.show(thread_id)


def test_a_cycle_through_the_service_reads_no_more_than_the_model_does_on_a_long_thread(
    db: Path, log: ToolLog
) -> None:
    with open_harness(db, log) as parts:
        seeded(parts, "long", 1000)
    with messages_read() as read, open_harness(db, log) as parts:
        approval_cycle(parts.service, "long")
        view = parts.service.show("long")
    # the model reads the whole conversation at each of its two turns; nothing else may
    assert view.messages_total == 1004 and len(view.messages) == MESSAGES_PAGE
    assert sum(read) <= 2 * 1004 + 4 * MESSAGES_PAGE, read


def test_the_view_holds_the_newest_page_and_says_how_to_reach_the_older_ones(
    db: Path, log: ToolLog
) -> None:
    with open_harness(db, log) as parts:
        seeded(parts, "t", 50)
        view = parts.service.run(COUNT, "t", actor="alice")
        whole = [m["text"] for m in parts.service.show("t", messages=1000).messages]
    assert view.messages_total == 54 == len(whole)
    assert [m["text"] for m in view.messages] == whole[-MESSAGES_PAGE:]
    assert view.messages_next_before == 54 - MESSAGES_PAGE
    assert view.answer == whole[-1] and view.status == "done"


def test_pages_put_together_are_the_whole_conversation_from_the_graph_and_the_rows(
    db: Path, log: ToolLog
) -> None:
    with open_harness(db, log) as parts:
        seeded(parts, "t", 23)
        parts.service.run(COUNT, "t", actor="alice")
        service = parts.service
        whole = service.show("t", messages=1000).messages
        pages: list[list[dict[str, Any]]] = []
        before: int | None = None
        while True:
            page = service.show("t", messages=10, before=before)
            pages.insert(0, page.messages)
            if page.messages_next_before is None:
                break
            before = page.messages_next_before
        from_graph = [service.show("t", messages=10, before=b) for b in (None, 17, 7)]
    with open_reader(hitl_settings(db)) as reader:
        from_rows = [reader.show("t", messages=10, before=b) for b in (None, 17, 7)]

    assert [m for page in pages for m in page] == whole and len(whole) == 27
    assert [len(p) for p in pages] == [7, 10, 10]
    assert [v.to_json() if v else None for v in from_rows] == [v.to_json() for v in from_graph]


def test_a_page_before_a_position_the_conversation_does_not_have_is_refused(
    db: Path, log: ToolLog
) -> None:
    with open_harness(db, log) as parts:
        seeded(parts, "t", 6)
        for before in (0, 7, -1):
            with pytest.raises(MessagesOutOfRange, match="holds 6 messages"):
                parts.service.show("t", before=before)
        with open_reader(hitl_settings(db)) as reader, pytest.raises(MessagesOutOfRange):
            reader.show("t", before=7)
