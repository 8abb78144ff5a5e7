"""Replays and forks never repeat a finished or running call; a call runs only with the args
approved."""

import threading
from pathlib import Path
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig

from hitl.app import Assembly
from hitl.graph.errors import CallInProgress
from hitl.service.errors import ArgsChanged
from tests.support.fakes import ToolLog
from tests.support.harness import open_harness
from tests.support.prompts import SALLY


def _config(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}}


def test_replaying_from_before_the_tools_step_returns_the_journaled_result(
    db: Path, log: ToolLog
) -> None:
    with open_harness(db, log) as parts:
        view = parts.service.run(SALLY, actor="alice")
        call_id = view.pending[0].tool_call_id
        parts.service.decide(view.thread_id, {call_id: "approve"}, actor="bob")
        graph = parts.graph
        history = list(graph.get_state_history(_config(view.thread_id)))
        before_tools = next(s for s in history if s.next == ("tools",))
        before_decision = next(s for s in history if s.interrupts)
        for snapshot in (before_tools, before_decision):  # time travel: fork and re-run
            forked = graph.invoke(None, snapshot.config, durability="sync")
            results = [m for m in forked["messages"] if getattr(m, "tool_call_id", None) == call_id]
            assert [m.content for m in results] == ["sent to sally@example.com"]
    assert log.ids("send_email") == [call_id]


def _interrupted_with_changed_args(parts: Assembly, changed: dict[str, Any]) -> tuple[str, str]:
    """A thread whose approved call's args were changed in its checkpoint after the approval."""
    view = parts.service.run(SALLY, actor="alice")
    call_id = view.pending[0].tool_call_id
    parts.ledger.decide(view.thread_id, {call_id: {"type": "approve"}}, actor="bob")
    turn = parts.graph.get_state(_config(view.thread_id)).values["messages"][-1]
    calls = [call | {"args": changed} for call in turn.tool_calls]
    parts.graph.update_state(
        _config(view.thread_id),
        {"messages": [turn.model_copy(update={"tool_calls": calls})]},
        as_node="model",
    )
    return view.thread_id, call_id


def test_a_call_whose_args_changed_after_approval_is_asked_about_again(
    db: Path, log: ToolLog
) -> None:
    changed = {"message": "wire $10,000", "recipient": "mallory@example.net"}
    with open_harness(db, log) as parts:
        service = parts.service
        thread_id, call_id = _interrupted_with_changed_args(parts, changed)
        service.resume(thread_id)
        again = service.show(thread_id)
        assert log.calls == []  # not run with args nobody approved
        assert again.status == "interrupted"
        assert [(p.tool_call_id, p.args, p.status) for p in again.pending] == [
            (call_id, changed, "pending")
        ]
        service.decide(thread_id, {call_id: "approve"}, actor="carol")
        done = service.show(thread_id)
        events = [e.event for e in service.audit(thread_id)]
    assert done.status == "done"
    assert log.calls == [("send_email", call_id, changed)]
    assert events.count("decided") == 2 and "re-requested" in events


def test_a_rejected_re_request_never_runs(db: Path, log: ToolLog) -> None:
    changed = {"message": "hi", "recipient": "eve@example.net"}
    with open_harness(db, log) as parts:
        service = parts.service
        thread_id, call_id = _interrupted_with_changed_args(parts, changed)
        service.resume(thread_id)
        service.decide(thread_id, {call_id: "reject"}, actor="carol")
        done = service.show(thread_id)
    assert done.status == "done" and log.calls == []


def test_a_decision_bound_to_the_args_seen_is_refused_once_they_changed(
    db: Path, log: ToolLog
) -> None:
    changed = {"message": "hi", "recipient": "eve@example.net"}
    with open_harness(db, log) as parts:
        service = parts.service
        view = service.run(SALLY, actor="alice")
        seen = view.pending[0].args_hash
        thread_id, call_id = _interrupted_with_changed_args(parts, changed)  # another thread
        service.resume(thread_id)
        now = service.show(thread_id).pending[0]
        with pytest.raises(ArgsChanged, match="changed since you looked"):
            service.decide(
                thread_id,
                {call_id: "approve"},
                actor="carol",
                seen_args_hashes={call_id: view.pending[0].args_hash},
            )
        assert service.show(thread_id).pending[0].status == "pending"
        service.decide(
            thread_id,
            {call_id: "approve"},
            actor="carol",
            seen_args_hashes={call_id: now.args_hash},
        )
        fresh = view.pending[0].tool_call_id
        service.decide(
            view.thread_id, {fresh: "approve"}, actor="carol", seen_args_hashes={fresh: seen}
        )
    assert sorted(c[2]["recipient"] for c in log.calls) == ["eve@example.net", "sally@example.com"]


def test_a_second_run_in_the_same_process_does_not_touch_a_call_that_is_still_running(
    db: Path, log: ToolLog
) -> None:
    inside, release = threading.Event(), threading.Event()

    def hold(name: str, tool_call_id: str) -> None:
        inside.set()
        release.wait(30)

    with open_harness(db, log) as parts:
        view = parts.service.run(SALLY, actor="alice")
        call_id = view.pending[0].tool_call_id
        log.before_run = hold
        first = threading.Thread(
            target=parts.service.decide,
            args=(view.thread_id, {call_id: "approve"}),
            kwargs={"actor": "b"},
        )
        first.start()
        assert inside.wait(30)
        latest = parts.graph.get_state(_config(view.thread_id)).config
        with pytest.raises(CallInProgress):
            parts.graph.invoke(None, latest, durability="sync")
        running = parts.ledger.get(view.thread_id, call_id)
        release.set()
        first.join(30)
        finished = parts.ledger.get(view.thread_id, call_id)
    assert running is not None and running.status == "running"
    assert finished is not None and finished.status == "succeeded" and finished.result
    assert log.ids("send_email") == [call_id]


def test_an_edit_bound_to_stale_args_is_refused(db: Path, log: ToolLog) -> None:
    with open_harness(db, log) as parts:
        service = parts.service
        view = service.run(SALLY, actor="alice")
        call_id = view.pending[0].tool_call_id
        with pytest.raises(ArgsChanged):
            edit = service.edit_answer(
                view.thread_id, call_id, {"message": "x", "recipient": "y@z.org"}
            )
            service.decide(
                view.thread_id, {call_id: edit}, actor="bob", seen_args_hashes={call_id: "0" * 64}
            )
        assert service.show(view.thread_id).pending[0].status == "pending"
