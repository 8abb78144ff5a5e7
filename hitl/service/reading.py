"""Reading without the graph: the inbox from the ledger alone, and a thread's view from its
stored rows, for the commands that only read and must answer at once.

`hitl pending` needs no model, no tools and no LangGraph: it reads the ledger's index. The
service's `pending` and the CLI's `Reader` both call `read_inbox`, so there is one inbox; the
list of threads (`read_threads`) reads indexes the same way.
`Reader.show` reads the newest checkpoint as plain data (`hitl.checkpoints.stored`) and builds
the same `ThreadView` as `ApprovalService.show` (`thread_view`); when the checkpoint holds
what only the graph reads faithfully, it returns None and the caller asks the service.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

from hitl.checkpoints.errors import DatabaseBusy, NotPlain, ThreadBusy
from hitl.checkpoints.ledger import InboxQuery, Ledger, ThreadQuery
from hitl.checkpoints.records import NEEDS_A_PERSON
from hitl.checkpoints.stored import read_stored_thread
from hitl.checkpoints.urls import DatabaseName, is_postgres
from hitl.service.errors import Busy, ThreadNotFound
from hitl.service.views import (
    MESSAGES_PAGE,
    InboxPage,
    PendingApproval,
    Status,
    ThreadEntry,
    ThreadPage,
    ThreadView,
    page_of_messages,
    stored_message_to_json,
    thread_view,
)


def read_inbox(ledger: Ledger, query: InboxQuery | None = None) -> InboxPage:
    """One page of the approvals that need a person, from the ledger's index only.

    A call whose runner died mid-call is recorded as `outcome_unknown` first, so it shows.
    """
    query = query or InboxQuery()
    with _busy_as_domain_error():
        ledger.mark_orphaned_runs()
        records, total = ledger.inbox(query)
    return InboxPage(
        items=[PendingApproval.of(r) for r in records],
        total=total,
        offset=query.offset,
        limit=query.limit,
    )


def read_threads(ledger: Ledger, query: ThreadQuery | None = None) -> ThreadPage:
    """One page of every thread, newest activity first, from indexes only (no checkpoint is
    read: see `hitl.checkpoints.ledger._threads`)."""
    query = query or ThreadQuery()
    with _busy_as_domain_error():
        summaries, total = ledger.threads(query)
    return ThreadPage(
        threads=[ThreadEntry.of(s) for s in summaries],
        total=total,
        offset=query.offset,
        limit=query.limit,
    )


class Reader:
    """The read-only operations that need no graph, on one ledger."""

    def __init__(self, ledger: Ledger, db: DatabaseName) -> None:
        self._ledger = ledger
        self._db = db

    def pending(self, query: InboxQuery | None = None) -> InboxPage:
        """As `ApprovalService.pending`."""
        return read_inbox(self._ledger, query)

    def show(
        self, thread_id: str, *, messages: int = MESSAGES_PAGE, before: int | None = None
    ) -> ThreadView | None:
        """As `ApprovalService.show`, from the stored rows (the page's and the newest
        message's alone); None when only the graph can read this thread's checkpoint
        faithfully (or the database is PostgreSQL)."""
        if is_postgres(self._db):
            return None
        try:
            stored = read_stored_thread(
                self._db,
                thread_id,
                partial(page_of_messages, thread_id, count=messages, before=before),
            )
        except NotPlain:
            return None
        if stored is None:
            raise ThreadNotFound(thread_id)
        status: Status = (
            "interrupted" if stored.interrupted else "incomplete" if stored.scheduled else "done"
        )
        with _busy_as_domain_error():
            records = self._ledger.thread_records(thread_id)
        waiting = [r for r in records if r.status in NEEDS_A_PERSON]
        return thread_view(
            thread_id,
            status,
            [stored_message_to_json(m.fields) for m in stored.messages],
            waiting,
            page=stored.page,
            total=stored.length,
            newest=None if stored.newest is None else stored_message_to_json(stored.newest.fields),
        )


@contextmanager
def _busy_as_domain_error() -> Iterator[None]:
    try:
        yield
    except (DatabaseBusy, ThreadBusy) as e:
        raise Busy(str(e)) from None
