"""The ledger on its own: schema, inbox queries, compare-and-set, a turn's calls begun all or
none, leases, the audit chain."""

import contextlib
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hitl.checkpoints.database import Cursor
from hitl.checkpoints.errors import CallNotFound, DatabaseError, NotPending, ThreadBusy
from hitl.checkpoints.ledger import (
    SCHEMA_VERSION,
    InboxQuery,
    Ledger,
    open_ledger,
    runner_token,
)
from hitl.checkpoints.ledger import _ledger as ledger_module
from hitl.checkpoints.ledger._leases import lease_holder
from hitl.checkpoints.records import ApprovalRecord
from hitl.checkpoints.urls import DatabaseName, is_postgres
from hitl.service.errors import UnknownToolCall
from tests.support.fakes import FakeClock, ToolLog
from tests.support.harness import open_test_service
from tests.support.ledger import request_call
from tests.support.postgres import fresh_database
from tests.support.prompts import SALLY
from tests.support.sql import execute


def test_the_schema_is_created_once_and_a_newer_one_is_refused(db: Path) -> None:
    with open_ledger(db) as ledger:
        assert ledger.schema_version() == SCHEMA_VERSION
        assert ledger.migrate() == SCHEMA_VERSION  # idempotent
    execute(db, "UPDATE hitl_schema SET version = 99")
    with pytest.raises(DatabaseError, match="newer than this program"), open_ledger(db):
        pass


def test_the_inbox_filters_sorts_and_pages_from_its_index(db: Path) -> None:
    clock = FakeClock(1_000.0)
    with open_ledger(db, clock=clock) as ledger:
        request_call(ledger, "t1", "a")  # requested at 1000
        clock.now = 1_002
        request_call(ledger, "t1", "b", tool="count_emails", expires_after=10.0)  # expires 1012
        clock.now = 1_004
        request_call(ledger, "t2", "c", requester="bob", expires_after=5.0)  # expires 1009
        request_call(ledger, "t3", "d")
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
        with ledger.traced() as statements:
            ledger.inbox(InboxQuery())
    page = next(s for s in statements if s.startswith("SELECT") and "LIMIT" in s)
    plan = str(execute(db, f"EXPLAIN QUERY PLAN {page}"))
    # the first page walks the waiting calls' own index in page order: no scan, no sort
    assert "USING INDEX hitl_approvals_inbox" in plan and "TEMP B-TREE" not in plan


def test_the_sweep_finds_unapplied_decisions_through_their_own_index(db: Path) -> None:
    """Only decided calls not yet applied are in that index (a request writes no page of it);
    the sweep's query walks it, not every call."""
    clock = FakeClock(1_000.0)
    with open_ledger(db, clock=clock) as ledger:
        request_call(ledger, "t1", "a")
        request_call(ledger, "t2", "b")
        request_call(ledger, "t2", "c")
        ledger.decide("t2", {"b": {"type": "approve"}, "c": {"type": "reject"}}, actor="bob")
        clock.advance(100)
        assert ledger.unapplied_threads(older_than=50) == ["t2"]  # once, though two calls
        assert ledger.unapplied_threads(older_than=500) == []
        if is_postgres(db):
            return  # PostgreSQL's planner picks its own plan (a scan, on a table this small)
        with ledger.traced() as statements:
            ledger.unapplied_threads(older_than=50)
    query = next(s for s in statements if "applied = 0" in s)
    plan = str(execute(db, f"EXPLAIN QUERY PLAN {query}"))
    assert "USING INDEX hitl_approvals_decided_unapplied" in plan, plan


_OLD_UNAPPLIED = (
    "CREATE INDEX hitl_approvals_unapplied ON hitl_approvals (decided_at) WHERE applied = 0"
)


def _has_index(db: DatabaseName, name: str) -> bool:
    if is_postgres(db):
        return execute(db, f"SELECT to_regclass('{name}') IS NOT NULL")[0][0] is True
    return bool(execute(db, "SELECT 1 FROM sqlite_master WHERE name = ?", (name,)))


def test_a_ledger_made_before_an_index_changed_gets_the_new_index_when_opened(
    db: Path,
) -> None:
    """An index change needs no new schema version (a program of this version, or one that
    may only read the file, works with either index): the first writer that opens it swaps it."""
    with open_ledger(db) as ledger:
        request_call(ledger, "t", "a")
    execute(db, "DROP INDEX hitl_approvals_decided_unapplied")
    execute(db, _OLD_UNAPPLIED)  # as a program before the change left it
    with open_ledger(db) as ledger:
        assert ledger.schema_version() == SCHEMA_VERSION
        ledger.decide("t", {"a": {"type": "approve"}}, actor="bob")
    assert _has_index(db, "hitl_approvals_decided_unapplied")
    assert not _has_index(db, "hitl_approvals_unapplied")


def test_decisions_are_all_or_nothing_and_the_first_one_wins(db: Path) -> None:
    with open_ledger(db) as ledger:
        request_call(ledger, "t", "a")
        request_call(ledger, "t", "b")
        ledger.decide("t", {"b": {"type": "reject", "message": "no"}}, actor="bob")
        with pytest.raises(NotPending) as refused:
            ledger.decide("t", {"a": {"type": "approve"}, "b": {"type": "approve"}}, actor="eve")
        a = ledger.get("t", "a")
    assert refused.value.record.decided_by == "bob"
    assert a is not None and a.status == "pending"  # the batch wrote nothing


def test_a_call_id_from_another_thread_is_named_as_such(db: Path, log: ToolLog) -> None:
    with open_ledger(db) as ledger:
        request_call(ledger, "t1", "a")
        with pytest.raises(CallNotFound) as missing:
            ledger.decide("t2", {"a": {"type": "approve"}}, actor="bob")
    assert missing.value.elsewhere == ["t1"]
    with open_test_service(db, log) as service:
        first = service.run(SALLY, actor="alice")
        second = service.run(SALLY, actor="alice")
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


def _race_for_lease(db: str, start: Any, tried: Any, won: Any) -> None:
    """Take the thread's lease the moment every racer is ready; hold it until all have tried."""
    with open_ledger(db) as ledger:
        start.wait(60)
        try:
            with ledger.lease("t", wait=0.0):
                won.put(os.getpid())
                tried.wait(60)
                return
        except ThreadBusy:
            pass
        tried.wait(60)


def test_of_processes_racing_for_a_free_lease_exactly_one_takes_it(db: Path) -> None:
    with open_ledger(db) as ledger:
        ledger.migrate()
    ctx = mp.get_context("spawn")
    racers = 6
    start, tried, won = ctx.Barrier(racers), ctx.Barrier(racers), ctx.Queue()
    processes = [
        ctx.Process(target=_race_for_lease, args=(str(db), start, tried, won))
        for _ in range(racers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0] * racers
    winners = []
    with contextlib.suppress(queue.Empty):
        while True:
            winners.append(won.get(timeout=1))
    assert len(winners) == 1


@pytest.mark.postgres
def test_a_lease_row_is_not_taken_while_a_write_that_judged_the_leases_is_open() -> None:
    """A write that saw a thread unleased (a prune) acts on that until it commits: a lease is
    taken under the write lock, after it, never in the middle."""
    judged, taken = threading.Event(), threading.Event()
    ends: dict[str, float] = {}

    def judge_then_work(cur: Cursor) -> None:
        assert lease_holder(cur, "t") is None
        judged.set()
        time.sleep(0.5)  # deletes what the unleased thread holds, say
        ends["write"] = time.monotonic()

    def take() -> None:
        judged.wait(10)
        with other.lease("t", wait=10):
            ends["lease"] = time.monotonic()
        taken.set()

    with fresh_database() as url, open_ledger(url) as ledger, open_ledger(url) as other:
        ledger.migrate()
        taker = threading.Thread(target=take)
        taker.start()
        ledger._write(judge_then_work)
        assert taken.wait(30)
        taker.join(10)
    assert ends["lease"] > ends["write"]


@pytest.mark.sqlite_only
def test_on_a_sqlite_without_returning_a_written_row_is_read_back_the_same(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite before 3.35 has no `RETURNING`: each write reads its row again instead."""

    def cycle(ledger: Ledger, thread_id: str) -> list[ApprovalRecord]:
        request_call(ledger, thread_id, "c")
        (decided,) = ledger.decide(thread_id, {"c": {"type": "approve"}}, actor="bob")
        begun = ledger.begin(thread_id, [("c", {"recipient": "c@x.org"})])["c"]
        ledger.finish(thread_id, "c", ok=True, result="sent")
        finished = ledger.get(thread_id, "c")
        assert begun.record is not None and finished is not None
        return [decided, begun.record, finished]

    clock = FakeClock()
    with open_ledger(db, clock=clock) as ledger:
        with_returning = cycle(ledger, "t1")
        monkeypatch.setattr(ledger_module, "SQLITE_RETURNING", False)
        with ledger.traced() as statements:
            without = cycle(ledger, "t2")
        assert statements and not any("RETURNING" in s for s in statements)
        assert ledger.verify_audit().ok
    assert [replace(r, thread_id="t1", runner=None) for r in without] == [
        replace(r, runner=None) for r in with_returning
    ]
    assert [r.status for r in without] == ["approved", "running", "succeeded"]


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
        request_call(ledger, "t", "a")
        ledger.decide("t", {"a": {"type": "approve"}}, actor="bob")
        ledger.begin("t", [("a", {"recipient": "a@x.org"})])
        request_call(ledger, "other", "z")
        assert ledger.verify_audit().ok
    _tamper(db, statement.replace("WHERE", "WHERE thread_id = 't' AND"))
    with open_ledger(db) as ledger:
        report = ledger.verify_audit()
    assert [(b.thread_id, b.seq) for b in report.broken] == [("t", seq)]
    assert problem in report.broken[0].problem
    assert "other" in report.heads


def test_an_auto_approved_call_asked_again_with_other_args_runs_without_a_tamper_alarm(
    db: Path,
) -> None:
    with open_ledger(db) as ledger:
        request_call(ledger, "t", "a", args={"n": 1}, needs_review=False)
        request_call(ledger, "t", "a", args={"n": 2}, needs_review=False)
        begun = ledger.begin("t", [("a", {"n": 2})])
        ledger.finish("t", "a", ok=True, result="2")
        report = ledger.verify_audit()
    assert begun["a"].action == "run" and report.ok


def test_a_turn_with_a_call_busy_elsewhere_starts_none_of_its_calls(db: Path) -> None:
    with open_ledger(db) as ledger:
        request_call(ledger, "t", "a", args={"n": 1}, needs_review=False)
        request_call(ledger, "t", "b", args={"n": 2}, needs_review=False)
        first = ledger.begin("t", [("b", {"n": 2})])  # b runs (this process, still live)
        turn = ledger.begin("t", [("a", {"n": 1}), ("b", {"n": 2})])
        a = ledger.get("t", "a")
    assert first["b"].action == "run" and turn["b"].action == "busy"
    assert a is not None and a.status == "approved"
