"""`ApprovalMiddleware` as a drop-in for LangChain's `HumanInTheLoopMiddleware`: the same wire
shapes (checked against LangChain's own types and what Agent Chat UI checks), and the known
defects of the stock middleware, each shown on the stock one (where the installed langchain
still has it) and absent from ours."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, HumanInTheLoopMiddleware, hook_config
from langchain.agents.middleware.human_in_the_loop import HITLRequest, ToolApprovalRequest
from langchain.agents.middleware.types import ToolCallRequest
from langchain_core.messages import ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command
from pydantic import TypeAdapter, ValidationError

from hitl import ApprovalMiddleware, InterruptOnConfig, ScriptedChatModel, bind_ledger
from hitl.app import Assembly, assemble
from hitl.graph import decisions as decisions_module
from tests.support.harness import hitl_settings

Ran = list[str]


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Assembly]:
    """The service's storage: its saver and ledger, which the agents below are bound to."""
    with assemble(hitl_settings(tmp_path / "hitl.sqlite", tmp_path / "outbox.jsonl")) as built:
        yield built


def recording_tool(ran: Ran) -> Any:
    @tool
    def append_line(line: str) -> str:
        """Append a line."""
        ran.append(line)
        return f"appended {line!r}"

    return append_line


def script(*lines: str) -> ScriptedChatModel:
    calls = [{"name": "append_line", "args": {"line": line}} for line in lines]
    return ScriptedChatModel.from_replies([{"tool_calls": calls}, "Done."])


def ours(
    parts: Assembly, ran: Ran, middleware: list[AgentMiddleware[Any, Any, Any]], *lines: str
) -> CompiledStateGraph[Any]:
    agent = create_agent(script(*lines), tools=[recording_tool(ran)], middleware=middleware)
    return bind_ledger(agent.copy(update={"checkpointer": parts.saver}), parts.ledger)


def stock(
    ran: Ran, middleware: list[AgentMiddleware[Any, Any, Any]], *lines: str
) -> CompiledStateGraph[Any]:
    return create_agent(
        script(*lines),
        tools=[recording_tool(ran)],
        middleware=middleware,
        checkpointer=InMemorySaver(),
    )


CONFIG: Any = {"configurable": {"thread_id": "t1"}}


def start(agent: CompiledStateGraph[Any]) -> Any:
    return agent.invoke(
        {"messages": [{"role": "user", "content": "go"}]}, CONFIG, version="v2", durability="sync"
    )


def resume(agent: CompiledStateGraph[Any], value: object) -> Any:
    return agent.invoke(Command(resume=value), CONFIG, version="v2", durability="sync")


def agent_chat_ui_acts_on(value: object) -> bool:
    """The checks Agent Chat UI makes before it shows buttons for an interrupt."""
    if not isinstance(value, dict):
        return False
    actions, configs = value.get("action_requests"), value.get("review_configs")
    return (
        isinstance(actions, list)
        and bool(actions)
        and all(isinstance(a, dict) and isinstance(a.get("name"), str) for a in actions)
        and all(isinstance(a.get("args"), dict) for a in actions)
        and isinstance(configs, list)
        and bool(configs)
        and all(isinstance(c, dict) and isinstance(c.get("action_name"), str) for c in configs)
        and all(isinstance(c.get("allowed_decisions"), list) for c in configs)
    )


# the wire


def test_batched_mode_raises_one_langchain_hitl_request_per_turn(parts: Assembly) -> None:
    ran: Ran = []
    agent = ours(parts, ran, [ApprovalMiddleware({"append_line": True})], "a", "b")
    (raised,) = start(agent).interrupts
    TypeAdapter(HITLRequest).validate_python(raised.value)
    assert agent_chat_ui_acts_on(raised.value)
    assert [a["args"]["line"] for a in raised.value["action_requests"]] == ["a", "b"]
    decisions = [
        {"type": "edit", "edited_action": {"name": "append_line", "arguments": {"line": "A"}}},
        {"type": "reject", "message": "not b"},
    ]
    result = resume(agent, {"decisions": decisions})  # a scalar resume, as Agent Chat UI sends
    assert result.interrupts == ()
    assert ran == ["A"]  # langchain 1.0's `arguments` is read as `args`


def test_batched_answers_build_each_tools_decision_types_once_not_per_answer(
    parts: Assembly, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []
    real = decisions_module.create_model

    def counted(model: str, /, **fields: Any) -> Any:
        built.append(model)
        return real(model, **fields)

    monkeypatch.setattr(decisions_module, "create_model", counted)
    middleware = ApprovalMiddleware({"append_line": True})
    for thread in ("t1", "t2", "t3"):
        agent = ours(parts, [], [middleware], "a")
        config: Any = {"configurable": {"thread_id": thread}}
        agent.invoke({"messages": [{"role": "user", "content": "go"}]}, config, durability="sync")
        resume_all = Command(resume={"decisions": [{"type": "approve"}]})
        agent.invoke(resume_all, config, durability="sync")

    assert built == ["append_line_EditedAction", "append_line_EditDecision"]  # pydantic is slow


def test_batched_mode_asks_again_only_about_calls_decided_nowhere_else(parts: Assembly) -> None:
    ran: Ran = []
    agent = ours(parts, ran, [ApprovalMiddleware({"append_line": True})], "a", "b")
    (_raised,) = start(agent).interrupts
    records = parts.ledger.thread_records("t1")
    first = next(r for r in records if r.args == {"line": "a"})
    parts.ledger.decide("t1", {first.tool_call_id: {"type": "approve"}}, actor="bob")
    (again,) = agent.invoke(None, CONFIG, version="v2", durability="sync").interrupts
    assert [a["args"]["line"] for a in again.value["action_requests"]] == ["b"]
    resume(agent, {"decisions": [{"type": "approve"}]})
    assert sorted(ran) == ["a", "b"]


def test_per_call_mode_raises_a_tool_approval_request_per_call_answered_by_id(
    parts: Assembly,
) -> None:
    ran: Ran = []
    gate = ApprovalMiddleware({"append_line": True}, interrupt_mode="per_call")
    agent = ours(parts, ran, [gate], "a", "b")
    raised = start(agent).interrupts
    assert len(raised) == 2
    for each in raised:
        TypeAdapter(ToolApprovalRequest).validate_python(each.value)
    by_line = {i.value["args"]["line"]: i.id for i in raised}
    with pytest.raises(ValidationError):  # LangGraph checks the answer against the schema
        resume(agent, {by_line["a"]: {"type": "edit", "edited_action": {"name": "other"}}})
    assert ran == []
    resume(agent, {by_line["a"]: {"type": "approve"}, by_line["b"]: {"type": "reject"}})
    assert ran == ["a"]


# the stock middleware's defects


def flips_after(first: int) -> Callable[[ToolCallRequest], bool]:
    """A `when` predicate that asks about the first `first` calls, then stops asking."""
    asked: list[bool] = []

    def when(request: ToolCallRequest) -> bool:
        asked.append(True)
        return len(asked) <= first

    return when


@pytest.mark.parametrize("mode", ["batched", "per_call"])
def test_a_when_predicate_that_flips_on_resume_does_not_run_a_rejected_call(
    parts: Assembly, mode: Any
) -> None:
    config: Any = {"append_line": {"allowed_decisions": ["approve", "reject"], "when": None}}

    def gated(cls: Any) -> Any:
        return cls(
            {"append_line": config["append_line"] | {"when": flips_after(1)}},
            interrupt_mode=mode,
        )

    ran_stock: Ran = []
    agent = stock(ran_stock, [gated(HumanInTheLoopMiddleware)], "x")
    raised = start(agent).interrupts
    resume(
        agent,
        {raised[0].id: {"type": "reject"}}
        if mode == "per_call"
        else {"decisions": [{"type": "reject"}]},
    )
    assert ran_stock == ["x"], "the stock middleware no longer runs it: update the note"

    ran: Ran = []
    agent = ours(parts, ran, [gated(ApprovalMiddleware)], "x")
    raised = start(agent).interrupts
    resume(
        agent,
        {raised[0].id: {"type": "reject"}}
        if mode == "per_call"
        else {"decisions": [{"type": "reject"}]},
    )
    assert ran == []


class JumpToTools(AgentMiddleware[Any, Any, Any]):
    """Another middleware using LangChain's documented `jump_to="tools"`."""

    @hook_config(can_jump_to=["tools"])
    def after_model(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        last = state["messages"][-1]
        return {"jump_to": "tools"} if getattr(last, "tool_calls", None) else None


def test_a_middleware_jumping_to_the_tools_before_the_gate_cannot_skip_it(
    parts: Assembly,
) -> None:
    """`after_model` hooks run last-listed first: here the jump comes before the gate asks."""
    ran_stock: Ran = []
    agent = stock(ran_stock, [HumanInTheLoopMiddleware({"append_line": True}), JumpToTools()], "x")
    assert start(agent).interrupts == ()  # nobody was asked
    assert ran_stock == ["x"], "the stock middleware is no longer skipped: update the note"

    ran: Ran = []
    agent = ours(parts, ran, [ApprovalMiddleware({"append_line": True}), JumpToTools()], "x")
    (raised,) = start(agent).interrupts  # asked at the tool instead
    TypeAdapter(ToolApprovalRequest).validate_python(raised.value)
    assert ran == []
    resume(agent, {raised.id: {"type": "reject", "message": "no"}})
    assert ran == []
    messages = agent.get_state(CONFIG).values["messages"]
    (told,) = [m for m in messages if isinstance(m, ToolMessage)]
    assert told.status == "error" and "no" in str(told.content)


def test_a_rejected_call_is_not_run_when_a_middleware_jumps_to_the_tools_after_the_gate(
    parts: Assembly,
) -> None:
    """The rejected call stays in the model's message (history stays valid); the tools node is
    reached with it by `jump_to` (langchain#37093, #40491). langchain 1.5 filters it on that
    route; ours refuses it at the tool whatever the route."""
    ran_stock: Ran = []
    agent = stock(ran_stock, [JumpToTools(), HumanInTheLoopMiddleware({"append_line": True})], "x")
    start(agent)
    resume(agent, {"decisions": [{"type": "reject"}]})
    assert ran_stock == []  # fixed upstream in the installed langchain

    ran: Ran = []
    agent = ours(parts, ran, [JumpToTools(), ApprovalMiddleware({"append_line": True})], "x")
    start(agent)
    resume(agent, {"decisions": [{"type": "reject"}]})
    assert ran == []
    (record,) = parts.ledger.thread_records("t1")
    assert record.status == "rejected"


def test_an_edited_calls_result_tells_the_model_not_to_reissue_its_own(parts: Assembly) -> None:
    edit = {"type": "edit", "edited_action": {"name": "append_line", "args": {"line": "B"}}}
    for agent, ran in (
        (stock(r := [], [HumanInTheLoopMiddleware({"append_line": True})], "a"), r),
        (ours(parts, r2 := [], [ApprovalMiddleware({"append_line": True})], "a"), r2),
    ):
        start(agent)
        resume(agent, {"decisions": [edit]})
        assert ran == ["B"]
        (told,) = [
            m for m in agent.get_state(CONFIG).values["messages"] if isinstance(m, ToolMessage)
        ]
        assert "Do not re-issue your original call" in str(told.content)
        assert '"line": "B"' in str(told.content)


# answers given straight to the graph are held to the call's policy


STRICT: Any = {"append_line": {"allowed_decisions": ["approve", "reject"]}}


@pytest.mark.parametrize(
    "refused",
    [
        {"type": "edit", "edited_action": {"name": "append_line", "args": {"line": "EVIL"}}},
        {"type": "respond", "message": "pretend it ran"},
        {"type": "edit", "edited_action": {"name": "delete_all", "args": {}}},
        {"type": "bogus"},
        {"type": "edit"},
        "maybe",
    ],
    ids=["edit-not-allowed", "respond-not-allowed", "other-tool", "bogus", "no-action", "text"],
)
def test_a_batched_answer_the_calls_policy_refuses_is_dropped_and_the_call_asked_again(
    parts: Assembly, refused: object
) -> None:
    ran: Ran = []
    agent = ours(parts, ran, [ApprovalMiddleware(STRICT)], "a")
    start(agent)
    (again,) = resume(agent, {"decisions": [refused]}).interrupts
    assert [a["args"] for a in again.value["action_requests"]] == [{"line": "a"}]
    assert ran == []
    (record,) = parts.ledger.thread_records("t1")
    assert record.status == "pending"
    resume(agent, {"decisions": [{"type": "reject"}]})
    assert ran == []


def test_a_batched_answer_that_no_longer_fits_the_calls_waiting_is_asked_again(
    parts: Assembly,
) -> None:
    """Shown [a, b]; a is decided elsewhere; the answer for [a, b] comes back: it no longer
    fits (one call waits), so b is asked about again, never matched by position."""
    ran: Ran = []
    agent = ours(parts, ran, [ApprovalMiddleware({"append_line": True})], "a", "b")
    start(agent)
    first = next(r for r in parts.ledger.thread_records("t1") if r.args == {"line": "a"})
    parts.ledger.decide("t1", {first.tool_call_id: {"type": "approve"}}, actor="bob")
    stale = {"decisions": [{"type": "reject"}, {"type": "approve"}]}
    (again,) = resume(agent, stale).interrupts
    assert [a["args"] for a in again.value["action_requests"]] == [{"line": "b"}]
    (again,) = resume(agent, {"decisions": "not a list"}).interrupts  # still no wedge
    resume(agent, {"decisions": [{"type": "reject"}]})
    assert ran == ["a"]


def test_a_call_id_the_model_reuses_from_an_earlier_turn_is_a_clear_error(
    parts: Assembly,
) -> None:
    same = {"tool_calls": [{"name": "append_line", "args": {"line": "a"}, "id": "X"}]}
    model = ScriptedChatModel.from_replies([same, "Done.", same, "Done again."])
    ran: Ran = []
    agent = create_agent(
        model, tools=[recording_tool(ran)], middleware=[ApprovalMiddleware({"append_line": True})]
    )
    agent = bind_ledger(agent.copy(update={"checkpointer": parts.saver}), parts.ledger)
    start(agent)
    resume(agent, {"decisions": [{"type": "approve"}]})
    with pytest.raises(ValueError, match="reused the tool call ID"):
        start(agent)
    assert ran == ["a"]


def test_a_call_id_reused_from_a_call_that_expired_earlier_is_a_clear_error(
    parts: Assembly,
) -> None:
    """An expired call is settled too: its ID reused in a later turn is not taken for it."""
    same = {"tool_calls": [{"name": "append_line", "args": {"line": "a"}, "id": "X"}]}
    model = ScriptedChatModel.from_replies([same, "Done.", same, "Done again."])
    ran: Ran = []
    gate = ApprovalMiddleware(
        {"append_line": InterruptOnConfig(allowed_decisions=["approve"], expires_after=0)}
    )
    agent = create_agent(model, tools=[recording_tool(ran)], middleware=[gate])
    agent = bind_ledger(agent.copy(update={"checkpointer": parts.saver}), parts.ledger)
    start(agent)
    assert [r.tool_call_id for r in parts.ledger.expire_overdue(actor="hitl sweep")] == ["X"]
    resume(agent, {"decisions": [{"type": "approve"}]})  # the expiry stands
    with pytest.raises(ValueError, match="reused the tool call ID"):
        start(agent)
    assert ran == []


def test_ask_unlisted_without_a_ledger_refuses_rather_than_run_unasked() -> None:
    ran: Ran = []
    agent = stock(ran, [ApprovalMiddleware({}, ask_unlisted=True)], "a")
    with pytest.raises(ValueError, match="ask_unlisted=True\\) needs a ledger"):
        start(agent)
    assert ran == []


@pytest.mark.parametrize(
    ("option", "says"),
    [
        ({"expires_after": "1h"}, "expires_after"),
        ({"approvers": "alice"}, "approvers"),
        ({"on_expire": "ignore"}, "on_expire"),
        ({"allowed_decisions": ["approve", "maybe"]}, "allowed_decisions"),
    ],
)
def test_ledger_options_of_the_wrong_type_are_refused_when_the_gate_is_built(
    option: dict[str, Any], says: str
) -> None:
    config: Any = {"allowed_decisions": ["approve", "reject"]} | option
    with pytest.raises(ValueError, match=says):
        ApprovalMiddleware({"append_line": config})
