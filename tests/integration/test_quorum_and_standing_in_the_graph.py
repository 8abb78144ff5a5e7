"""Quorum and standing approvals through the service and the real graph: the tool runs once,
after the N-th approval, however many processes approve at once; a remembered approval lets
the next run's call through without asking, and its history says which standing approval."""

import json
import multiprocessing as mp
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from hitl.app import open_service
from hitl.checkpoints.urls import DatabaseName
from hitl.graph.policy import Policy, ToolRule
from hitl.service.errors import AlreadyDecided, AlreadyVoted, DecisionNotAllowed, NotPermitted
from hitl.service.settings import Settings
from hitl.service.workflow import Remember
from tests.support.fakes import ToolLog
from tests.support.harness import hitl_settings, open_test_service
from tests.support.plugins import plugin_spec
from tests.support.prompts import SALLY

QUORUM = Policy(rules={"send_email": ToolRule(quorum=2)})


def test_a_quorum_call_runs_once_after_the_second_approval_and_shows_its_progress(
    db: DatabaseName, log: ToolLog
) -> None:
    with open_test_service(db, log, QUORUM) as service:
        view = service.run(SALLY, actor="alice")
        [call] = view.pending
        assert (call.quorum, call.allowed_decisions) == (2, ["approve", "reject"])
        with pytest.raises(DecisionNotAllowed):
            service.decide(view.thread_id, {call.tool_call_id: "respond"}, actor="bob")
        first = service.decide(view.thread_id, {call.tool_call_id: "approve"}, actor="bob")
        assert first.run is None and log.ids("send_email") == []
        [waiting] = service.pending().items
        assert waiting.progress == "1 of 2 approvals: bob"
        assert service.show(view.thread_id).pending[0].approvals == ["bob"]
        with pytest.raises(AlreadyVoted):
            service.decide(view.thread_id, {call.tool_call_id: "approve"}, actor="bob")
        service.decide(view.thread_id, {call.tool_call_id: "approve"}, actor="carol")
        assert log.ids("send_email") == [call.tool_call_id]
        assert service.show(view.thread_id).status == "done"


def _settings(db: DatabaseName, outbox: Path) -> Settings:
    return hitl_settings(db, outbox, {"HITL_POLICY": plugin_spec("QUORUM_OF_TWO")})


def _approve(
    db: DatabaseName,
    outbox: Path,
    thread_id: str,
    call_id: str,
    actor: str,
    barrier: Barrier,
    results: "mp.Queue[str]",
) -> None:
    with open_service(_settings(db, outbox)) as service:
        barrier.wait(timeout=60)
        try:
            decided = service.decide(thread_id, {call_id: "approve"}, actor=actor)
            results.put(f"{actor}:{decided.records[0].status}")
        except (AlreadyVoted, AlreadyDecided) as refused:
            results.put(f"{actor}:{type(refused).__name__}")


@pytest.mark.slow
def test_approvers_racing_in_processes_run_a_quorum_call_exactly_once(
    db: DatabaseName, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox.jsonl"
    with open_service(_settings(db, outbox)) as service:
        view = service.run(SALLY, actor="alice")
    call_id = view.pending[0].tool_call_id
    ctx = mp.get_context("spawn")
    actors = ["bob", "carol", "dave"] * 2
    barrier, results = ctx.Barrier(len(actors)), ctx.Queue()
    procs = [
        ctx.Process(
            target=_approve, args=(db, outbox, view.thread_id, call_id, a, barrier, results)
        )
        for a in actors
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sum(o.endswith(":approved") for o in outcomes) == 1, outcomes
    assert sum(o.endswith(":pending") for o in outcomes) == 1, outcomes
    sent = [json.loads(line)["tool_call_id"] for line in outbox.read_text().splitlines()]
    assert sent == [call_id]  # the tool ran once
    with open_service(_settings(db, outbox)) as service:
        assert service.show(view.thread_id).status == "done"
        assert service.verify_audit().ok


def test_an_approval_remembered_for_alice_lets_her_next_email_through_unasked(
    db: DatabaseName, log: ToolLog
) -> None:
    with open_test_service(db, log) as service:
        first = service.run(SALLY, actor="alice")
        call_id = first.pending[0].tool_call_id
        remember = Remember(expires_after=3600, requester=True)
        service.decide(first.thread_id, {call_id: "approve"}, actor="bob", remember=remember)
        [standing] = service.standing_approvals()
        assert standing.scope["requester"] == "alice"

        second = service.run(SALLY, actor="alice")
        assert second.pending == [] and second.status == "done"
        assert len(log.ids("send_email")) == 2
        [entry] = [e for e in service.audit(second.thread_id) if e.event == "approved_by_standing"]
        assert (entry.actor, entry.detail["standing_id"]) == ("alice", standing.id)
        assert [d for e in service.history(second.thread_id) for d in e.decided.values()] == [
            "approve"
        ]

        third = service.run(SALLY, actor="mallory")  # not in its scope: asked about
        assert len(third.pending) == 1
        service.revoke_standing(standing.id, actor="carol")
        fourth = service.run(SALLY, actor="alice")
        assert len(fourth.pending) == 1  # revoked: asked about again
        with pytest.raises(NotPermitted, match="names a role"):
            service.allow("send_email", actor="role:admin", expires_after=60)
