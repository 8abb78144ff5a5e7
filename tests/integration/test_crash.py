"""A process that dies mid-way: killed (`kill -9`) in the middle of a tool, the call is never
run again by itself; killed between recording a decision and applying it, the decision is
applied later (by `sweep`, or before the thread's next message), once."""

import time
from pathlib import Path

import pytest

from hitl.checkpoints.urls import DatabaseName
from hitl.service.errors import NotReconcilable, PendingApprovalsExist
from tests.support.fakes import FakeClock, ToolLog
from tests.support.harness import open_harness, open_test_service
from tests.support.processes import kill_when_marked
from tests.support.prompts import SALLY


def _approve_with_a_tool_that_hangs(
    db: DatabaseName, thread_id: str, call_id: str, marker: str
) -> None:
    def hang(name: str, tool_call_id: str) -> None:
        Path(marker).write_text(tool_call_id)
        time.sleep(300)

    log = ToolLog(before_run=hang)
    with open_test_service(db, log) as service:
        service.decide(thread_id, {call_id: "approve"}, actor="bob")


def _crash_mid_tool(db: DatabaseName, folder: Path) -> tuple[str, str]:
    """Start a thread, approve its call in a child process and kill -9 it inside the tool."""
    with open_test_service(db, ToolLog()) as service:
        view = service.run(SALLY, actor="alice")
    call_id = view.pending[0].tool_call_id
    marker = folder / "tool.started"
    args = (db, view.thread_id, call_id, str(marker))
    kill_when_marked(_approve_with_a_tool_that_hangs, args, marker)
    return view.thread_id, call_id


@pytest.mark.slow
@pytest.mark.parametrize(
    ("action", "runs_again", "result"),
    [
        ("retry", True, "sent to sally@example.com"),
        ("mark_done", False, "confirmed by carol"),
        ("skip", False, "Not run: carol skipped"),
    ],
)
def test_a_call_killed_mid_tool_waits_for_a_person_and_then_resumes_once(
    db: DatabaseName, tmp_path: Path, action: str, runs_again: bool, result: str
) -> None:
    thread_id, call_id = _crash_mid_tool(db, tmp_path)
    log = ToolLog()
    with open_test_service(db, log) as service:
        inbox = service.pending().items
        assert [(p.tool_call_id, p.status) for p in inbox] == [(call_id, "outcome_unknown")]

        service.resume(thread_id)  # a restart: the thread goes on, but not through that call
        stalled = service.show(thread_id)
        assert stalled.status == "interrupted" and log.calls == []
        assert [p.status for p in stalled.pending] == ["outcome_unknown"]

        service.reconcile(thread_id, call_id, action, actor="carol")  # type: ignore[arg-type]

        done = service.show(thread_id)
        with pytest.raises(NotReconcilable):
            service.reconcile(thread_id, call_id, "retry", actor="carol")
        events = [(e.event, e.actor) for e in service.audit(thread_id)]

    assert done.status == "done"
    assert log.ids("send_email") == ([call_id] if runs_again else [])
    tool_result = next(m for m in done.messages if m.get("tool_call_id") == call_id)
    assert result in str(tool_result["content"])
    assert ("outcome_unknown", "ledger") in events and ("reconciled", "carol") in events


@pytest.mark.slow
def test_a_restart_or_a_new_message_never_reruns_or_abandons_the_unknown_call(
    db: DatabaseName, tmp_path: Path
) -> None:
    thread_id, call_id = _crash_mid_tool(db, tmp_path)
    log = ToolLog()
    with open_harness(db, log) as parts:
        parts.service.resume(thread_id)
        parts.service.resume(thread_id)
        with pytest.raises(PendingApprovalsExist, match="outcome is unknown"):
            parts.service.run("never mind", thread_id, actor="alice", cancel_pending=True)
        record = parts.ledger.get(thread_id, call_id)
    assert record is not None and record.status == "outcome_unknown"
    assert log.calls == []


def test_sweep_resumes_a_thread_whose_decision_was_recorded_but_never_applied(
    db: Path, log: ToolLog
) -> None:
    clock = FakeClock()
    with open_harness(db, log, clock=clock) as parts:
        view = parts.service.run(SALLY, actor="alice")
        call_id = view.pending[0].tool_call_id
        # the decider's process died between recording the decision and resuming the thread
        parts.ledger.decide(view.thread_id, {call_id: {"type": "approve"}}, actor="bob")
        assert parts.service.sweep().resumed == []  # too fresh: its runner may still apply it
        clock.advance(61)
        assert parts.service.sweep().resumed == [view.thread_id]
        assert parts.service.sweep().resumed == []
    assert log.ids("send_email") == [call_id]


@pytest.mark.parametrize(
    "decision", [{"type": "reject", "message": "no"}, {"type": "respond", "message": "done"}]
)
def test_sweep_applies_a_lost_reject_or_respond(
    db: Path, log: ToolLog, decision: dict[str, str]
) -> None:
    clock = FakeClock()
    with open_harness(db, log, clock=clock) as parts:
        view = parts.service.run(SALLY, actor="alice")
        call_id = view.pending[0].tool_call_id
        parts.ledger.decide(view.thread_id, {call_id: decision}, actor="bob")  # then a crash
        clock.advance(61)
        assert parts.service.sweep().resumed == [view.thread_id]
        assert parts.service.sweep().resumed == []
        done = parts.service.show(view.thread_id)
    assert done.status == "done" and log.calls == []


def test_a_new_message_first_applies_a_decision_whose_resume_was_lost(
    db: Path, log: ToolLog
) -> None:
    with open_harness(db, log) as parts:
        view = parts.service.run(SALLY, actor="alice")
        call_id = view.pending[0].tool_call_id
        parts.ledger.decide(view.thread_id, {call_id: {"type": "reject"}}, actor="bob")
        after = parts.service.run("thanks", view.thread_id, actor="alice")
    answered = [m for m in after.messages if m.get("tool_call_id") == call_id]
    assert len(answered) == 1 and answered[0]["status"] == "error"
