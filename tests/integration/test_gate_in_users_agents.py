"""The approval gate in front of a user's own agent: `create_agent` with `ApprovalMiddleware`
(both interrupt modes) and a hand-built `StateGraph` with `ApprovalToolNode`, served by the
service from `HITL_GRAPH`, decided from a second service as another process would."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, ToolMessage

from hitl.app import Assembly, assemble
from hitl.checkpoints.urls import DatabaseName
from hitl.service.errors import InvalidSettings, NotPermitted
from hitl.service.workflow import EveryPending
from tests.support.harness import hitl_settings
from tests.support.user_agents import (
    AGENTS,
    one_append,
    side_lines,
    two_appends,
    user_settings,
)


@contextmanager
def serving(
    db: DatabaseName, settings: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Assembly]:
    for key, value in settings.items():  # the user's module reads its own settings
        monkeypatch.setenv(key, value)
    with assemble(hitl_settings(db, extra=settings)) as parts:
        yield parts


def tool_messages(parts: Assembly, thread_id: str) -> list[ToolMessage]:
    messages = parts.service.show(thread_id).messages
    return [m for m in messages if m["type"] == "tool"]  # type: ignore[misc]


MODES = ["batched", "per_call"]


@pytest.mark.parametrize("mode", MODES)
def test_an_approved_call_runs_once_with_the_decision_from_another_process(
    db: DatabaseName, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    settings = user_settings(tmp_path, "agent", one_append("hello"), mode=mode)
    with serving(db, settings, monkeypatch) as first:
        view = first.service.run("please append", "t1", actor="alice")
        assert view.status == "interrupted"
        assert [p.tool for p in first.service.pending().items] == ["append_line"]
        assert side_lines(settings) == []
        with serving(db, settings, monkeypatch) as second:  # its own connections and graph
            second.service.decide("t1", EveryPending("approve"), actor="bob")
        assert side_lines(settings) == ["hello"]
        assert first.service.show("t1").status == "done"
        record = first.ledger.thread_records("t1")[0]
        assert (record.status, record.decided_by, record.requester) == ("succeeded", "bob", "alice")
        first.service.resume("t1")  # a replay runs nothing again
        assert side_lines(settings) == ["hello"]


@pytest.mark.parametrize("mode", MODES)
def test_a_rejected_call_never_runs_and_the_model_is_told_why(
    db: DatabaseName, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    settings = user_settings(tmp_path, "agent", one_append(), mode=mode)
    with serving(db, settings, monkeypatch) as parts:
        parts.service.run("please append", "t1", actor="alice")
        answer = {"type": "reject", "message": "not today"}
        parts.service.decide("t1", EveryPending(answer), actor="bob")
        assert side_lines(settings) == []
        (told,) = tool_messages(parts, "t1")
        assert told["status"] == "error" and "not today" in told["text"]
        assert parts.service.show("t1").answer == "Done."


@pytest.mark.parametrize("mode", MODES)
def test_an_edited_call_runs_with_the_edited_args_and_the_model_is_told(
    db: DatabaseName, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    settings = user_settings(tmp_path, "agent", one_append("draft"), mode=mode)
    with serving(db, settings, monkeypatch) as parts:
        view = parts.service.run("please append", "t1", actor="alice")
        call_id = view.pending[0].tool_call_id
        edit = parts.service.edit_answer("t1", call_id, {"line": "final"})
        parts.service.decide("t1", {call_id: edit}, actor="bob")
        assert side_lines(settings) == ["final"]
        (told,) = tool_messages(parts, "t1")
        assert "Executed instead: append_line" in told["text"]
        assert "final" in told["text"] and "Do not re-issue" in told["text"]


def test_parallel_calls_of_a_hand_built_graph_wait_together_and_are_decided_separately(
    db: DatabaseName, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = user_settings(tmp_path, "handmade", two_appends("one", "two"))
    with serving(db, settings, monkeypatch) as parts:
        view = parts.service.run("append two", "t1", actor="alice")
        assert [p.args["line"] for p in view.pending] == ["one", "two"]
        first, second = (p.tool_call_id for p in view.pending)
        with serving(db, settings, monkeypatch) as other:
            other.service.decide("t1", {second: {"type": "approve"}}, actor="bob")
        assert side_lines(settings) == ["two"]
        assert [p.tool_call_id for p in parts.service.show("t1").pending] == [first]
        parts.service.decide("t1", {first: "reject"}, actor="carol")
        assert side_lines(settings) == ["two"]
        shown = parts.service.show("t1")
        assert shown.status == "done"
        kinds = [m["type"] for m in shown.messages]
        assert kinds[:2] == ["human", "system"]  # the retrieval step ran before the model


def test_the_policy_lets_listed_harmless_tools_run_without_asking(
    db: DatabaseName, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    replies: list[Any] = [{"tool_calls": [{"name": "read_lines", "args": {}}]}, "Nothing yet."]
    settings = user_settings(tmp_path, "agent", replies)
    with serving(db, settings, monkeypatch) as parts:
        view = parts.service.run("what is in the file?", "t1", actor="alice")
        assert view.status == "done" and view.pending == []
        (record,) = parts.ledger.thread_records("t1")
        assert (record.status, record.decided_by) == ("succeeded", "policy")


def test_a_graph_without_a_gate_is_refused_with_what_to_do(
    db: DatabaseName, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = user_settings(tmp_path, "ungated", one_append())
    refused = pytest.raises(InvalidSettings, match=r"no approval gate.*ApprovalMiddleware")
    with refused, serving(db, settings, monkeypatch):
        pass
    allowed = settings | {"HITL_ALLOW_UNGATED": "1"}
    with (
        pytest.warns(UserWarning, match="no approval gate"),
        serving(db, allowed, monkeypatch) as parts,
    ):
        assert parts.service.run("append", "t1", actor="alice").status == "done"
        # its tools are not journaled: their steps commit alone, not with a ledger write
        assert not getattr(parts.saver, "carried", False)
    assert side_lines(settings) == ["hello"]


@pytest.mark.parametrize(
    ("graph", "says"),
    [
        ("no_messages", "no 'messages' key"),
        ("missing", "has no attribute 'missing'"),
        ("broken", "failed while calling it: RuntimeError: OPENAI_API_KEY is not set"),
        ("with_breakpoint", "static breakpoints"),
    ],
)
def test_a_graph_the_service_cannot_serve_is_a_clear_error(
    db: DatabaseName, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, graph: str, says: str
) -> None:
    settings = user_settings(tmp_path, graph, one_append())
    with pytest.raises(InvalidSettings, match=says), serving(db, settings, monkeypatch):
        pass


def test_content_blocks_are_read_like_strings_by_the_offline_model(
    db: DatabaseName, tmp_path: Path
) -> None:
    with assemble(hitl_settings(db, tmp_path / "outbox.jsonl")) as parts:
        blocks = [{"type": "text", "text": "how many emails did I get in the last 5 days?"}]
        parts.graph.invoke(
            {"messages": [{"role": "user", "content": blocks}]},
            {"configurable": {"thread_id": "t1"}},
            durability="sync",
        )
        messages = parts.graph.get_state({"configurable": {"thread_id": "t1"}}).values["messages"]
        reply = next(m for m in messages if isinstance(m, AIMessage))
        assert [c["name"] for c in reply.tool_calls] == ["count_emails"]


def test_the_offline_model_asking_for_a_tool_the_agent_lacks_is_a_clear_error(
    db: DatabaseName, tmp_path: Path
) -> None:
    extra = {"HITL_TOOLS": f"{AGENTS}:TOOLS"}  # the user's tools: no send_email among them
    refused = pytest.raises(InvalidSettings, match=r"asks for send_email.*append_line")
    with assemble(hitl_settings(db, tmp_path / "outbox.jsonl", extra)) as parts, refused:
        parts.service.run("Send sally@example.com an email saying 'hi'", "t1", actor="al")


def test_a_scripted_reply_calling_a_tool_the_agent_lacks_is_a_clear_error(
    db: DatabaseName, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    replies: list[Any] = [{"tool_calls": [{"name": "wire_money", "args": {}}]}]
    settings = user_settings(tmp_path, "agent", replies)
    refused = pytest.raises(InvalidSettings, match=r"calls wire_money.*append_line, read_lines")
    with serving(db, settings, monkeypatch) as parts, refused:
        parts.service.run("pay", "t1", actor="alice")


def test_a_hand_built_graph_records_who_sent_the_message_and_keeps_them_from_self_approval(
    db: DatabaseName, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its state (`MessagesState`) has no `requester`: the service's run carries it."""
    settings = user_settings(tmp_path, "handmade", one_append()) | {"SELF_APPROVAL": "0"}
    with serving(db, settings, monkeypatch) as parts:
        view = parts.service.run("append", "t1", actor="alice")
        (record,) = parts.ledger.thread_records("t1")
        assert record.requester == "alice"
        with pytest.raises(NotPermitted):
            parts.service.decide("t1", EveryPending("approve"), actor="alice")
        assert side_lines(settings) == []
        parts.service.decide("t1", {view.pending[0].tool_call_id: "approve"}, actor="bob")
        assert side_lines(settings) == ["hello"]


def test_a_decided_call_of_a_turn_still_waiting_on_another_is_not_resumed_by_every_sweep(
    db: DatabaseName, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = user_settings(tmp_path, "agent", two_appends())
    with serving(db, settings, monkeypatch) as parts:
        view = parts.service.run("append two", "t1", actor="alice")
        first = view.pending[0].tool_call_id
        parts.service.decide("t1", {first: "approve"}, actor="bob")
        assert parts.service.show("t1").status == "interrupted"
        assert parts.ledger.unapplied_calls("t1") == set()  # the graph saw the decision


def test_a_plain_tools_node_beside_a_gated_one_is_refused_by_name(
    db: DatabaseName, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = user_settings(tmp_path, "mixed", one_append())
    refused = pytest.raises(InvalidSettings, match="no approval gate in front of admin_tools,")
    with refused, serving(db, settings, monkeypatch):
        pass


def test_history_shows_the_calls_a_batched_interrupt_waits_on(
    db: DatabaseName, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = user_settings(tmp_path, "agent", two_appends())
    with serving(db, settings, monkeypatch) as parts:
        view = parts.service.run("append two", "t1", actor="alice")
        newest = parts.service.history("t1")[-1]
        assert sorted(newest.pending) == sorted(p.tool_call_id for p in view.pending)
