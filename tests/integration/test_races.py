"""Several processes deciding the same call at the same instant: one decision wins, once."""

import json
import multiprocessing as mp
import time
from datetime import timedelta
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from hitl.app import open_service
from hitl.checkpoints.urls import DatabaseName
from hitl.graph.policy import Policy, ToolRule
from hitl.service.errors import AlreadyDecided, NothingPending
from hitl.service.settings import Settings
from tests.sql import execute

EXPIRING = Policy(rules={"send_email": ToolRule(expires_after=timedelta(minutes=1))})
"""Loaded by the racing processes through HITL_POLICY."""

DECIDERS = 8
ROUNDS = 3


def _settings(db: DatabaseName, outbox: Path) -> Settings:
    return Settings(
        db=db,
        environ={
            "HITL_OUTBOX": str(outbox),
            "HITL_POLICY": "tests.integration.test_races:EXPIRING",
        },
    )


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
        view = service.run("Send sally@example.com an email saying 'hi'", actor="alice")
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
    with open_service(_settings(db, outbox)) as service:
        view = service.run("Send sally@example.com an email saying 'hi'", actor="alice")
        call_id = view.pending[0].tool_call_id
        service._ledger.decide(view.thread_id, {call_id: {"type": "approve"}}, actor="bob")
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
