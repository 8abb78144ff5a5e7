"""Replays and forks never repeat a finished call; a call runs only with the args approved."""

from pathlib import Path
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig

from hitl.graph.state import Review
from hitl.service.errors import ArgsChanged
from tests.fakes import ToolLog
from tests.integration.conftest import ONE_EMAIL, open_test_service


def _config(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}}


def test_replaying_from_before_the_tools_step_returns_the_journaled_result(
    db: Path, log: ToolLog
) -> None:
    with open_test_service(db, log) as service:
        view = service.run(ONE_EMAIL, actor="alice")
        call_id = view.pending[0].tool_call_id
        service.decide(view.thread_id, {call_id: "approve"}, actor="bob")
        graph = service._graph
        history = list(graph.get_state_history(_config(view.thread_id)))
        before_tools = next(s for s in history if s.next == ("tools",))
        before_decision = next(s for s in history if s.interrupts)
        for snapshot in (before_tools, before_decision):  # time travel: fork and re-run
            forked = graph.invoke(None, snapshot.config, durability="sync")
            results = [m for m in forked["messages"] if getattr(m, "tool_call_id", None) == call_id]
            assert [m.content for m in results] == ["sent to sally@example.com"]
    assert log.ids("send_email") == [call_id]


def _interrupted_with_changed_args(service: Any, changed: dict[str, Any]) -> tuple[str, str]:
    view = service.run(ONE_EMAIL, actor="alice")
    call_id = view.pending[0].tool_call_id
    service._ledger.decide(view.thread_id, {call_id: {"type": "approve"}}, actor="bob")
    review = Review(tool_call_id=call_id, name="send_email", decision="approve", args=changed)
    service._graph.update_state(
        _config(view.thread_id), {"reviews": {call_id: review}}, as_node="approval"
    )
    return view.thread_id, call_id


def test_a_call_whose_args_changed_after_approval_is_asked_about_again(
    db: Path, log: ToolLog
) -> None:
    changed = {"message": "wire $10,000", "recipient": "mallory@example.net"}
    with open_test_service(db, log) as service:
        thread_id, call_id = _interrupted_with_changed_args(service, changed)
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
    with open_test_service(db, log) as service:
        thread_id, call_id = _interrupted_with_changed_args(service, changed)
        service.resume(thread_id)
        service.decide(thread_id, {call_id: "reject"}, actor="carol")
        done = service.show(thread_id)
    assert done.status == "done" and log.calls == []


def test_a_decision_bound_to_the_args_seen_is_refused_once_they_changed(
    db: Path, log: ToolLog
) -> None:
    changed = {"message": "hi", "recipient": "eve@example.net"}
    with open_test_service(db, log) as service:
        view = service.run(ONE_EMAIL, actor="alice")
        seen = view.pending[0].args_hash
        thread_id, call_id = _interrupted_with_changed_args(service, changed)  # another thread
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
