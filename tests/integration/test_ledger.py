"""The ledger on its own: schema, inbox queries, compare-and-set, leases, the audit chain."""

import multiprocessing as mp
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from langgraph.types import Command

from hitl.checkpoints.errors import CallNotFound, DatabaseError, NotPending, ThreadBusy
from hitl.checkpoints.ledger import SCHEMA_VERSION, InboxQuery, Ledger, open_ledger, runner_token
from hitl.checkpoints.urls import DatabaseName, is_postgres
from hitl.service.errors import UnknownToolCall
from tests.fakes import ToolLog
from tests.integration.conftest import ONE_EMAIL, open_test_service
from tests.sql import execute


class Clock:
    """UNIX seconds set by the test."""

    now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _ask(ledger: Ledger, thread_id: str, call_id: str, **extra: Any) -> None:
    fields: dict[str, Any] = {
        "tool": "send_email",
        "args": {"recipient": f"{call_id}@x.org"},
        "requester": "alice",
        "expires_after": None,
    } | extra
    ledger.request(
        thread_id=thread_id,
        tool_call_id=call_id,
        interrupt_id=None,
        needs_review=True,
        allowed_decisions=["approve", "reject"],
        description="",
        **fields,
    )


def test_the_schema_is_created_once_and_a_newer_one_is_refused(db: Path) -> None:
    with open_ledger(db) as ledger:
        assert ledger.schema_version() == SCHEMA_VERSION
        assert ledger.migrate() == SCHEMA_VERSION  # idempotent
    execute(db, "UPDATE hitl_schema SET version = 99")
    with pytest.raises(DatabaseError, match="newer than this program"), open_ledger(db):
        pass


def test_the_inbox_filters_sorts_and_pages_from_its_index(db: Path) -> None:
    clock = Clock()
    with open_ledger(db, clock=clock) as ledger:
        _ask(ledger, "t1", "a")  # requested at 1000
        clock.now = 1_002
        _ask(ledger, "t1", "b", tool="count_emails", expires_after=10.0)  # expires 1012
        clock.now = 1_004
        _ask(ledger, "t2", "c", requester="bob", expires_after=5.0)  # expires 1009
        _ask(ledger, "t3", "d")
        ledger.decide("t3", {"d": {"type": "approve"}}, actor="carol")

        def ids(**query: Any) -> list[str]:
            return [r.tool_call_id for r in ledger.inbox(InboxQuery(**query))[0]]

        assert ids() == ["a", "b", "c"]
        assert ids(tool="count_emails") == ["b"]
        assert ids(thread_id="t1", descending=True) == ["b", "a"]
        assert ids(requester="bob") == ["c"]
        assert ids(older_than=1_003) == ["a", "b"]
        assert ids(expiring_before=1_010) == ["c"]
        assert ids(sort="expires_at") == ["c", "b", "a"]
        assert ids(limit=1, offset=1) == ["b"]
        assert ledger.inbox(InboxQuery(limit=1))[1] == 3
        if is_postgres(db):
            return  # PostgreSQL's planner picks its own plan (a scan, on a table this small)
        statements: list[str] = []
        ledger._conn.set_trace_callback(statements.append)
        ledger.inbox(InboxQuery())
        ledger._conn.set_trace_callback(None)
        page = next(s for s in statements if s.startswith("SELECT") and "LIMIT" in s)
        plan = str(ledger._conn.execute(f"EXPLAIN QUERY PLAN {page}").fetchall())
    # the first page walks the waiting calls' own index in page order: no scan, no sort
    assert "USING INDEX hitl_approvals_inbox" in plan and "TEMP B-TREE" not in plan


def test_decisions_are_all_or_nothing_and_the_first_one_wins(db: Path) -> None:
    with open_ledger(db) as ledger:
        _ask(ledger, "t", "a")
        _ask(ledger, "t", "b")
        ledger.decide("t", {"b": {"type": "reject", "message": "no"}}, actor="bob")
        with pytest.raises(NotPending) as refused:
            ledger.decide("t", {"a": {"type": "approve"}, "b": {"type": "approve"}}, actor="eve")
        a = ledger.get("t", "a")
    assert refused.value.record.decided_by == "bob"
    assert a is not None and a.status == "pending"  # the batch wrote nothing


def test_a_call_id_from_another_thread_is_named_as_such(db: Path, log: ToolLog) -> None:
    with open_ledger(db) as ledger:
        _ask(ledger, "t1", "a")
        with pytest.raises(CallNotFound) as missing:
            ledger.decide("t2", {"a": {"type": "approve"}}, actor="bob")
    assert missing.value.elsewhere == ["t1"]
    with open_test_service(db, log) as service:
        first = service.run(ONE_EMAIL, actor="alice")
        second = service.run(ONE_EMAIL, actor="alice")
        with pytest.raises(UnknownToolCall, match=f"belongs to thread {first.thread_id}"):
            service.decide(
                second.thread_id, {first.pending[0].tool_call_id: "approve"}, actor="bob"
            )


def _hold_lease_forever(db: str, ready: Any) -> None:
    with open_ledger(db) as ledger, ledger.lease("t"):
        ready.set()
        signal.pause()


def test_a_lease_is_exclusive_and_taken_over_at_once_when_its_holder_dies(db: Path) -> None:
    with open_ledger(db) as ledger:
        ledger.migrate()
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold_lease_forever, args=(str(db), ready))
    holder.start()
    try:
        assert ready.wait(timeout=60)
        with open_ledger(db) as ledger:
            with pytest.raises(ThreadBusy), ledger.lease("t", wait=0.3):
                pass
            assert holder.pid is not None
            os.kill(holder.pid, signal.SIGKILL)
            holder.join(timeout=30)
            with ledger.lease("t", wait=0.0) as mine:
                assert mine.startswith(runner_token())
    finally:
        if holder.is_alive():
            holder.kill()


def _tamper(db: DatabaseName, statement: str) -> None:
    execute(db, statement)


@pytest.mark.parametrize(
    ("statement", "seq", "problem"),
    [
        ('UPDATE hitl_audit SET detail = \'{"decision":"reject"}\' WHERE seq = 2', 2, "altered"),
        ("UPDATE hitl_audit SET actor = 'mallory' WHERE seq = 1", 1, "altered"),
        ("DELETE FROM hitl_audit WHERE seq = 2", 2, "missing"),
        ("DELETE FROM hitl_audit WHERE seq = 3", 3, "ends early"),
    ],
)
def test_audit_verification_finds_the_first_altered_or_deleted_entry(
    db: Path, statement: str, seq: int, problem: str
) -> None:
    with open_ledger(db) as ledger:
        _ask(ledger, "t", "a")
        ledger.decide("t", {"a": {"type": "approve"}}, actor="bob")
        ledger.begin("t", [("a", {"recipient": "a@x.org"})])
        _ask(ledger, "other", "z")
        assert ledger.verify_audit().ok
    _tamper(db, statement.replace("WHERE", "WHERE thread_id = 't' AND"))
    with open_ledger(db) as ledger:
        report = ledger.verify_audit()
    assert [(b.thread_id, b.seq) for b in report.broken] == [("t", seq)]
    assert problem in report.broken[0].problem
    assert "other" in report.heads


def test_an_answer_given_straight_to_the_graph_is_recorded_as_studios(
    db: Path, log: ToolLog
) -> None:
    with open_test_service(db, log) as service:
        view = service.run(ONE_EMAIL, actor="alice")
        pending = view.pending[0]
        config = {"configurable": {"thread_id": view.thread_id}}
        service._graph.invoke(
            Command(resume={pending.interrupt_id: "approve"}), config, durability="sync"
        )
        record = service._ledger.get(view.thread_id, pending.tool_call_id)
    assert record is not None and record.decided_by == "studio"
    assert log.ids("send_email") == [pending.tool_call_id]
