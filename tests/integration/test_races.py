"""Several processes on one database at the same instant: deciding the same call (one decision
wins, once), resuming the same thread (it runs once), or holding the write lock while a tool's
result must be journaled (the run stops rather than go on without the record)."""

import json
import multiprocessing as mp
import time
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from hitl.app import assemble, open_service
from hitl.checkpoints.urls import DatabaseName
from hitl.service.errors import AlreadyDecided, Busy, NothingPending
from hitl.service.settings import Settings
from tests.support.fakes import ToolLog
from tests.support.harness import hitl_settings, open_harness, open_test_service
from tests.support.plugins import plugin_spec
from tests.support.prompts import SALLY
from tests.support.sql import execute, hold_write_lock

DECIDERS = 8
ROUNDS = 3


def _settings(db: DatabaseName, outbox: Path) -> Settings:
    return hitl_settings(db, outbox, {"HITL_POLICY": plugin_spec("EXPIRING")})


def _an_hour_later() -> float:
    return time.time() + 3600


def _decide(
    db: DatabaseName,
    outbox: Path,
    thread_id: str,
    call_id: str,
    answer: str,
    barrier: Barrier,
    results: "mp.Queue[str]",
) -> None:
    clock = _an_hour_later if answer == "sweep" else time.time  # a sweeper past the deadline
    with open_service(_settings(db, outbox), clock=clock) as service:
        barrier.wait(timeout=60)  # everyone is connected: now race
        try:
            if answer == "sweep":
                expired = service.sweep().expired
                results.put("won:reject" if expired else "refused:sweep")
                return
            service.decide(thread_id, {call_id: answer}, actor=f"decider-{answer}")
            results.put(f"won:{answer}")
        except (AlreadyDecided, NothingPending) as e:
            results.put(f"refused:{type(e).__name__}")


def _race(procs: "list[mp.process.BaseProcess]", results: "mp.Queue[str]") -> list[str]:
    """Start the racing processes; one outcome from each; every one must exit cleanly."""
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return outcomes


def _forks(db: DatabaseName) -> list[tuple[str, int]]:
    return [
        (parent, int(n))
        for parent, n in execute(
            db,
            "SELECT parent_checkpoint_id, COUNT(*) FROM checkpoints WHERE checkpoint_ns = '' "
            "AND parent_checkpoint_id IS NOT NULL "
            "GROUP BY parent_checkpoint_id HAVING COUNT(*) > 1",
        )
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("round_", "answers"),
    [(r, ("approve", "reject")) for r in range(ROUNDS)] + [(0, ("approve", "sweep"))],
)
def test_eight_processes_racing_on_one_call_record_one_decision_and_run_the_tool_at_most_once(
    db: DatabaseName, tmp_path: Path, round_: int, answers: tuple[str, str]
) -> None:
    outbox = tmp_path / "outbox.jsonl"
    with open_service(_settings(db, outbox)) as service:
        view = service.run(SALLY, actor="alice")
    call_id = view.pending[0].tool_call_id
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(DECIDERS)
    results: mp.Queue[str] = ctx.Queue()
    procs = [
        ctx.Process(target=_decide, args=(db, outbox, view.thread_id, call_id, a, barrier, results))
        for a in list(answers) * (DECIDERS // 2)
    ]
    outcomes = _race(procs, results)

    winners = [o for o in outcomes if o.startswith("won:")]
    assert len(winners) == 1, outcomes
    sent = outbox.read_text().splitlines() if outbox.exists() else []
    assert len(sent) == (1 if winners[0] == "won:approve" else 0)
    assert _forks(db) == []
    with open_service(_settings(db, outbox)) as service:
        after = service.show(view.thread_id)
        decided = service.history(view.thread_id)
    assert after.status == "done"
    assert [d for e in decided for d in e.decided.values()] == [winners[0].removeprefix("won:")]


def _resume(
    db: DatabaseName, outbox: Path, thread_id: str, barrier: Barrier, results: "mp.Queue[str]"
) -> None:
    with open_service(_settings(db, outbox)) as service:
        barrier.wait(timeout=60)
        service.resume(thread_id)
        results.put("resumed")


@pytest.mark.slow
def test_processes_resuming_one_thread_at_once_run_it_once_without_forking(
    db: DatabaseName, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox.jsonl"
    with assemble(_settings(db, outbox)) as parts:
        view = parts.service.run(SALLY, actor="alice")
        call_id = view.pending[0].tool_call_id
        parts.ledger.decide(view.thread_id, {call_id: {"type": "approve"}}, actor="bob")
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(DECIDERS)
    results: mp.Queue[str] = ctx.Queue()
    procs = [
        ctx.Process(target=_resume, args=(db, outbox, view.thread_id, barrier, results))
        for _ in range(DECIDERS)
    ]
    outcomes = _race(procs, results)
    assert outcomes == ["resumed"] * DECIDERS  # each waited its turn under the lease
    sent = outbox.read_text().splitlines()
    assert [json.loads(line)["tool_call_id"] for line in sent] == [call_id]
    assert _forks(db) == []


def test_a_result_that_cannot_be_journaled_stops_the_run_instead_of_telling_the_model(
    db: DatabaseName, log: ToolLog
) -> None:
    def lock_the_database(name: str, tool_call_id: str) -> None:
        hold_write_lock(db, 1.5)  # held well past the ledger's (shortened) wait

    with open_harness(db, log, lock_wait=0.3) as parts:
        view = parts.service.run(SALLY, actor="alice")
        call_id = view.pending[0].tool_call_id
        log.before_run = lock_the_database
        with pytest.raises(Busy, match="could not be recorded"):
            parts.service.decide(view.thread_id, {call_id: "approve"}, actor="bob")
    log.before_run = None
    with open_test_service(db, log) as service:
        stopped = service.show(view.thread_id)
        inbox = service.pending().items
    assert not any(m.get("tool_call_id") == call_id for m in stopped.messages)
    assert [(p.tool_call_id, p.status) for p in inbox] == [(call_id, "outcome_unknown")]
    assert log.ids("send_email") == [call_id]
