"""Edge cases found in review: the same process replaying a running call, a paused lease
holder, a lost reject, a journal that cannot be written, a forged row, a reused pid."""

import multiprocessing as mp
import os
import signal
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from hitl.checkpoints.errors import NotPending, ThreadBusy
from hitl.checkpoints.ledger import alive_on_this_host, host_id, open_ledger
from hitl.checkpoints.urls import is_postgres
from hitl.graph.ledger import CallInProgress
from hitl.graph.policy import Policy, ToolRule
from hitl.service.errors import ArgsChanged, Busy, InvalidDecision, LedgerTampered
from tests.fakes import ToolLog
from tests.integration.conftest import ONE_EMAIL, open_test_service
from tests.integration.test_deadlines_and_identity import FakeClock
from tests.sql import execute, hold_write_lock


def test_a_second_run_in_the_same_process_does_not_touch_a_call_that_is_still_running(
    db: Path, log: ToolLog
) -> None:
    inside, release = threading.Event(), threading.Event()

    def hold(name: str, tool_call_id: str) -> None:
        inside.set()
        release.wait(30)

    with open_test_service(db, log) as service:
        view = service.run(ONE_EMAIL, actor="alice")
        call_id = view.pending[0].tool_call_id
        log.before_run = hold
        first = threading.Thread(
            target=service.decide,
            args=(view.thread_id, {call_id: "approve"}),
            kwargs={"actor": "b"},
        )
        first.start()
        assert inside.wait(30)
        config = {"configurable": {"thread_id": view.thread_id}}
        latest = service._graph.get_state(config).config
        with pytest.raises(CallInProgress):
            service._graph.invoke(None, latest, durability="sync")
        running = service._ledger.get(view.thread_id, call_id)
        release.set()
        first.join(30)
        finished = service._ledger.get(view.thread_id, call_id)
    assert running is not None and running.status == "running"
    assert finished is not None and finished.status == "succeeded" and finished.result
    assert log.ids("send_email") == [call_id]


def _hold_lease(db: str, ready: Any) -> None:
    with open_ledger(db) as ledger, ledger.lease("t", ttl=0.5):
        ready.set()
        signal.pause()


def test_a_paused_lease_holder_on_this_host_keeps_its_lease_past_the_ttl(db: Path) -> None:
    with open_ledger(db):
        pass
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold_lease, args=(str(db), ready))
    holder.start()
    try:
        assert ready.wait(60) and holder.pid is not None
        os.kill(holder.pid, signal.SIGSTOP)  # a debugger, a frozen container: alive, silent
        with open_ledger(db) as ledger, pytest.raises(ThreadBusy), ledger.lease("t", wait=1.5):
            pass
    finally:
        holder.kill()
        holder.join(30)


@pytest.mark.parametrize(
    "decision", [{"type": "reject", "message": "no"}, {"type": "respond", "message": "done"}]
)
def test_sweep_applies_a_lost_reject_or_respond(
    db: Path, log: ToolLog, decision: dict[str, str]
) -> None:
    clock = FakeClock()
    with open_test_service(db, log, clock=clock) as service:
        view = service.run(ONE_EMAIL, actor="alice")
        call_id = view.pending[0].tool_call_id
        service._ledger.decide(view.thread_id, {call_id: decision}, actor="bob")  # then a crash
        clock.advance(61)
        assert service.sweep().resumed == [view.thread_id]
        assert service.sweep().resumed == []
        done = service.show(view.thread_id)
    assert done.status == "done" and log.calls == []


def test_a_new_message_first_applies_a_decision_whose_resume_was_lost(
    db: Path, log: ToolLog
) -> None:
    with open_test_service(db, log) as service:
        view = service.run(ONE_EMAIL, actor="alice")
        call_id = view.pending[0].tool_call_id
        service._ledger.decide(view.thread_id, {call_id: {"type": "reject"}}, actor="bob")
        after = service.run("thanks", view.thread_id, actor="alice")
    answered = [m for m in after.messages if m.get("tool_call_id") == call_id]
    assert len(answered) == 1 and answered[0]["status"] == "error"


def test_a_result_that_cannot_be_journaled_stops_the_run_instead_of_telling_the_model(
    db: Path, log: ToolLog
) -> None:
    def lock_the_database(name: str, tool_call_id: str) -> None:
        hold_write_lock(db, 1.5)  # held well past the ledger's (shortened) wait

    with open_test_service(db, log) as service:
        view = service.run(ONE_EMAIL, actor="alice")
        call_id = view.pending[0].tool_call_id
        service._ledger._lock_wait = 0.3
        if not is_postgres(db):
            service._ledger._conn.execute("PRAGMA busy_timeout=100")
        log.before_run = lock_the_database
        with pytest.raises(Busy, match="could not be recorded"):
            service.decide(view.thread_id, {call_id: "approve"}, actor="bob")
    log.before_run = None
    with open_test_service(db, log) as service:
        stopped = service.show(view.thread_id)
        inbox = service.pending().items
    assert not any(m.get("tool_call_id") == call_id for m in stopped.messages)
    assert [(p.tool_call_id, p.status) for p in inbox] == [(call_id, "outcome_unknown")]
    assert log.ids("send_email") == [call_id]


def test_a_row_forged_to_approved_is_refused_and_reported(db: Path, log: ToolLog) -> None:
    with open_test_service(db, log) as service:
        view = service.run(ONE_EMAIL, actor="alice")
        call_id = view.pending[0].tool_call_id
    execute(
        db,
        "UPDATE hitl_approvals SET status = 'approved', decided_by = 'carol', "
        'decision = \'{"type":"approve"}\', approved_args_hash = args_hash',
    )
    with open_test_service(db, log) as service:
        report = service.verify_audit()
        with pytest.raises(LedgerTampered):
            service.resume(view.thread_id)
    assert log.calls == []
    assert [(b.thread_id, "no approval" in b.problem) for b in report.broken] == [
        (view.thread_id, True)
    ]
    assert call_id in report.broken[0].problem


def test_a_token_of_another_container_with_the_same_host_name_is_not_judged_by_our_locks() -> None:
    """Same host name, same pid 1, another /tmp: that runner is alive while its lease lasts."""
    twin = f"{socket.gethostname()}~0ther1d0:1:a:b"
    assert host_id().startswith(socket.gethostname() + "~") and host_id() != twin.split(":")[0]
    assert alive_on_this_host(twin) is None
    assert alive_on_this_host(f"{host_id()}:1:a:b") is False  # ours, and nobody holds it


def test_a_runner_token_nobody_holds_is_dead_even_if_its_pid_is_alive(db: Path) -> None:
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        token = f"{host_id()}:{stranger.pid}:a:b"  # a reused pid, a finished attempt
        with open_ledger(db) as ledger:
            ledger.request(
                thread_id="t",
                tool_call_id="c",
                interrupt_id=None,
                tool="send_email",
                args={},
                requester="alice",
                needs_review=False,
                allowed_decisions=["approve"],
                description="",
            )
            execute(db, "UPDATE hitl_approvals SET status = 'running', runner = ?", (token,))
            orphaned = ledger.mark_orphaned_runs()
    finally:
        stranger.kill()
        stranger.wait()
    assert [r.status for r in orphaned] == ["outcome_unknown"]


def test_text_that_is_not_utf8_is_refused_with_a_clear_error(db: Path, log: ToolLog) -> None:
    with open_test_service(db, log) as service:
        with pytest.raises(InvalidDecision, match="not valid UTF-8"):
            service.run("caf\udce9", actor="alice")
        view = service.run(ONE_EMAIL, actor="alice")
        call_id = view.pending[0].tool_call_id
        with pytest.raises(InvalidDecision, match="not valid UTF-8"):
            service.decide(
                view.thread_id, {call_id: {"type": "reject", "message": "\ud800"}}, actor="b"
            )
        assert service.show(view.thread_id).pending[0].status == "pending"


def _request(ledger: Any, call_id: str, args: dict[str, Any], **extra: Any) -> None:
    fields: dict[str, Any] = {"needs_review": True, "expires_after": None} | extra
    ledger.request(
        thread_id="t",
        tool_call_id=call_id,
        interrupt_id=None,
        tool="send_email",
        args=args,
        requester="alice",
        allowed_decisions=["approve", "reject"],
        description="",
        **fields,
    )


def test_an_auto_approved_call_asked_again_with_other_args_runs_without_a_tamper_alarm(
    db: Path,
) -> None:
    with open_ledger(db) as ledger:
        _request(ledger, "a", {"n": 1}, needs_review=False)
        _request(ledger, "a", {"n": 2}, needs_review=False)
        begun = ledger.begin("t", [("a", {"n": 2})])
        ledger.finish("t", "a", ok=True, result="2")
        report = ledger.verify_audit()
    assert begun["a"].action == "run" and report.ok


def test_a_turn_with_a_call_busy_elsewhere_starts_none_of_its_calls(db: Path) -> None:
    with open_ledger(db) as ledger:
        _request(ledger, "a", {"n": 1}, needs_review=False)
        _request(ledger, "b", {"n": 2}, needs_review=False)
        first = ledger.begin("t", [("b", {"n": 2})])  # b runs (this process, still live)
        turn = ledger.begin("t", [("a", {"n": 1}), ("b", {"n": 2})])
        a = ledger.get("t", "a")
    assert first["b"].action == "run" and turn["b"].action == "busy"
    assert a is not None and a.status == "approved"


def test_a_late_batch_records_nothing_but_the_expiry_and_a_late_reject_still_counts(
    db: Path,
) -> None:
    clock = FakeClock()
    with open_ledger(db, clock=clock) as ledger:
        _request(ledger, "late", {"n": 1}, expires_after=10.0, on_expire="approve")
        _request(ledger, "fresh", {"n": 2})
        _request(ledger, "refused", {"n": 3}, expires_after=10.0, on_expire="approve")
        clock.advance(20)
        with pytest.raises(NotPending):
            ledger.decide(
                "t", {"fresh": {"type": "approve"}, "late": {"type": "approve"}}, actor="b"
            )
        ledger.decide("t", {"refused": {"type": "reject"}}, actor="b")
        rows = {r.tool_call_id: (r.status, r.decided_by) for r in ledger.thread_records("t")}
    assert rows == {
        "late": ("expired", "deadline"),
        "fresh": ("pending", None),
        "refused": ("rejected", "b"),
    }


def test_cancelling_calls_whose_policy_does_not_offer_reject_still_works(
    db: Path, log: ToolLog
) -> None:
    policy = Policy(rules={"send_email": ToolRule(allowed_decisions=("approve", "edit"))})
    with open_test_service(db, log, policy) as service:
        view = service.run(ONE_EMAIL, actor="alice")
        after = service.run("never mind", view.thread_id, actor="alice", cancel_pending=True)
    assert after.status == "done" and log.calls == []


def test_an_edit_bound_to_stale_args_is_refused(db: Path, log: ToolLog) -> None:
    with open_test_service(db, log) as service:
        view = service.run(ONE_EMAIL, actor="alice")
        call_id = view.pending[0].tool_call_id
        with pytest.raises(ArgsChanged):
            edit = service.edit_answer(
                view.thread_id, call_id, {"message": "x", "recipient": "y@z.org"}
            )
            service.decide(
                view.thread_id, {call_id: edit}, actor="bob", seen_args_hashes={call_id: "0" * 64}
            )
        assert service.show(view.thread_id).pending[0].status == "pending"


def _start_and_leak(db: str, ready: Any) -> None:
    """A long-lived process whose attempt ended without a journaled result."""
    with open_ledger(db) as ledger:
        _request(ledger, "a", {"n": 1}, needs_review=False)
        ledger.begin("t", [("a", {"n": 1})])
        ledger.abandon("t", "a")  # e.g. the result could not be journaled
        ready.set()
        signal.pause()


def test_another_process_sees_an_ended_attempt_of_a_live_process_as_dead(db: Path) -> None:
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    service = ctx.Process(target=_start_and_leak, args=(str(db), ready))
    service.start()
    try:
        assert ready.wait(60)
        with open_ledger(db) as ledger:
            orphaned = ledger.mark_orphaned_runs()
    finally:
        service.kill()
        service.join(30)
    assert [(r.tool_call_id, r.status) for r in orphaned] == [("a", "outcome_unknown")]
