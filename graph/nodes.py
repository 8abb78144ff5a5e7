"""The three nodes and the router between them.

`approval` runs once per tool call (fanned out with `Send`), so every gated call of a turn is
pending at the same time and can be decided on its own, in any order. Before `interrupt()` it
only registers the call in the ledger, idempotently: LangGraph re-runs it from the start on
resume. Tools run only in `tools`, once every call of the turn has a review, each journaled in
the ledger so that no replay runs it twice.
"""

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, ToolCall, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.graph import END
from langgraph.prebuilt import ToolNode
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.types import Interrupt, Overwrite, Send, interrupt

from hitl.graph import gate
from hitl.graph.decisions import (
    DecisionSchemas,
    DecisionType,
    ToolApprovalRequest,
    answer_text,
    apply_decision,
    as_decision,
    edit_notice,
)
from hitl.graph.errors import CallInProgress
from hitl.graph.ledger import ApprovalLedger, LedgerRecord
from hitl.graph.policy import Policy
from hitl.graph.state import ApprovalTask, Review, State, runs_tool

Update = dict[str, Any]
"""A node's partial state update."""


class StateNode(Protocol):
    """A node that reads the whole state (`agent`, `tools`)."""

    def __call__(self, state: State, config: RunnableConfig) -> Update: ...


class TaskNode(Protocol):
    """A node that reads one `Send` task (`approval`)."""

    def __call__(self, state: ApprovalTask, config: RunnableConfig) -> Update: ...


Router = Callable[[State], list[Send] | str]
"""A conditional edge: the next node's name, or one `Send` per task."""


def last_tool_turn(messages: Sequence[AnyMessage]) -> AIMessage | None:
    """The newest model message, if it asked for tools."""
    return gate.current_turn(messages)[0]


def make_agent_node(model: BaseChatModel, tools: Sequence[BaseTool]) -> StateNode:
    """The `agent` node: one model call; nothing else, so a resume never calls the model again."""
    bound = model.bind_tools(list(tools)) if tools else model

    def agent(state: State, config: RunnableConfig) -> dict[str, Any]:
        reply = bound.invoke(list(state["messages"]), config)
        if isinstance(reply, AIMessage) and reply.tool_calls:  # a new turn: new reviews
            return {"messages": [reply], "reviews": Overwrite({})}
        return {"messages": [reply]}

    return agent


def make_route_after_agent(policy: Policy, tools: Sequence[BaseTool]) -> Router:
    """The router after `agent`: one `approval` task per tool call, or the end of the run.

    The policy is evaluated here, once, and its verdict saved in each task's input.
    """
    known = {t.name for t in tools}

    def route_after_agent(state: State) -> list[Send] | str:
        turn = last_tool_turn(state["messages"])
        if turn is None:
            return END
        requester = state.get("requester")
        return [
            Send("approval", approval_task(policy, known, call, requester))
            for call in turn.tool_calls
        ]

    return route_after_agent


def make_route_after_tools(policy: Policy, tools: Sequence[BaseTool]) -> Router:
    """The router after `tools`: back to `agent`, or back to `approval` for calls whose
    approved args no longer match what would run (the state changed after the decision)."""
    known = {t.name for t in tools}

    def route_after_tools(state: State) -> list[Send] | str:
        turn, done = gate.current_turn(state["messages"])
        unanswered = [c for c in (turn.tool_calls if turn else []) if c["id"] not in done]
        if not unanswered:
            return "agent"
        reviews = state.get("reviews", {})
        requester = state.get("requester")
        asks = []
        for call in unanswered:
            review = reviews.get(cast(str, call["id"]))
            current = cast(ToolCall, call | {"args": review["args"]}) if review else call
            task = approval_task(policy, known, current, requester)
            asks.append(Send("approval", task | {"needs_review": True}))
        return asks

    return route_after_tools


def approval_task(
    policy: Policy, known: set[str], call: ToolCall, requester: str | None
) -> ApprovalTask:
    """The saved input of one `approval` task: the call and the policy's verdict on it."""
    rule = policy.rule_for(call["name"])
    return ApprovalTask(
        tool_call=call,
        # an unknown tool is left to `tools`, which answers the model with an error
        needs_review=call["name"] in known and rule.needs_review(call["args"]),
        allowed_decisions=list(rule.allowed_decisions),
        description=rule.describe(call),
        requester=requester,
        expires_after=rule.expires_after.total_seconds() if rule.expires_after else None,
        on_expire=rule.on_expire,
        approvers=sorted(rule.approvers) if rule.approvers is not None else None,
        allow_self_approval=rule.allow_self_approval,
    )


def make_approval_node(tools: Sequence[BaseTool], ledger: ApprovalLedger | None) -> TaskNode:
    """The `approval` node: ask a person about one call, unless the ledger already knows.

    Replay-safe: registering the call in the ledger is idempotent, and a decision recorded
    there (by the CLI, the service, an expiry, or an earlier resume) is applied without
    asking again. Without a ledger it is plain LangGraph: the resume value is the decision.
    """
    schemas = DecisionSchemas(tools)

    def approval(state: ApprovalTask, config: RunnableConfig) -> dict[str, Any]:
        task = state  # the input of this `Send`, not the graph's state
        call = task["tool_call"]
        call_id = cast(str, call["id"])
        allowed = cast(list[DecisionType], task["allowed_decisions"])
        if ledger is None:
            if not task["needs_review"]:
                return {"reviews": {call_id: _auto_review(call)}}
            schema = schemas.for_call(call["name"], allowed)
            answer = interrupt(_request(task, None), response_schema=schema)  # type: ignore[call-overload]
            return _decided(call, apply_decision(call, as_decision(answer), allowed))
        thread_id = str(config["configurable"]["thread_id"])
        record = ledger.request(
            thread_id=thread_id,
            tool_call_id=call_id,
            interrupt_id=Interrupt.from_ns(None, config["configurable"]["checkpoint_ns"]).id,
            tool=call["name"],
            args=call["args"],
            requester=task.get("requester") or gate.graph_actor(config),  # Studio: no requester
            needs_review=task["needs_review"],
            allowed_decisions=allowed,
            description=task["description"],
            expires_after=task.get("expires_after"),
            on_expire=task.get("on_expire", "reject"),
            approvers=task.get("approvers"),
            allow_self_approval=task.get("allow_self_approval", True),
        )
        while record.status == "pending":
            answer = interrupt(  # type: ignore[call-overload]
                _request(task, record), response_schema=schemas.for_call(call["name"], allowed)
            )
            record = ledger.answer_from_graph(
                thread_id, call_id, as_decision(answer), actor=gate.graph_actor(config)
            )
        if not task["needs_review"] and record.decided_by is not None:
            return {"reviews": {call_id: _auto_review(call)}}
        return _decided(call, gate.review_of(call, record))

    return approval


def make_tools_node(tools: Sequence[BaseTool], ledger: ApprovalLedger | None) -> StateNode:
    """The `tools` node: run the approved calls of the turn, with exactly the approved args.

    With a ledger, each call is journaled before it starts and when it ends: a call that
    already finished gets its journaled result instead of running again (a replay, a fork,
    a resume after a crash); a call whose earlier attempt never finished is not run again
    but raised to a person (`outcome_unknown`); a call whose args are not the approved ones
    is left unanswered, and `route_after_tools` asks about it again.
    """
    journal = _Journal(ledger) if ledger else None
    tool_node = ToolNode(
        list(tools),
        handle_tool_errors=True,
        wrap_tool_call=journal.wrap if journal else None,
    )

    def tools_(state: State, config: RunnableConfig) -> dict[str, Any]:
        turn, done = gate.current_turn(state["messages"])
        if turn is None:
            return {}
        reviews = state.get("reviews", {})
        approved: list[tuple[ToolCall, Review]] = [
            (cast(ToolCall, call | {"args": reviews[cid]["args"]}), reviews[cid])
            for call in turn.tool_calls
            if (cid := cast(str, call["id"])) in reviews
            and runs_tool(reviews[cid])
            and cid not in done
        ]
        if not approved:
            return {}
        if journal is None:
            results = _run(tool_node, [call for call, _ in approved], config)
        else:
            results = journal.run(tool_node, approved, config)
        edited = {r["tool_call_id"] for _, r in approved if r["decision"] == "edit"}
        return {
            "messages": [
                _with_edit_notice(m, reviews) if m.tool_call_id in edited else m for m in results
            ]
        }

    return tools_


class _Journal:
    """The exactly-once rules of the tools node, on top of the ledger."""

    def __init__(self, ledger: ApprovalLedger) -> None:
        self._ledger = ledger

    def run(
        self, tool_node: ToolNode, approved: list[tuple[ToolCall, Review]], config: RunnableConfig
    ) -> list[ToolMessage]:
        thread_id = str(config["configurable"]["thread_id"])
        results: list[ToolMessage] = []
        remaining = approved
        while True:
            to_run: list[ToolCall] = []
            unknown: list[str] = []
            turn = self._ledger.begin(
                thread_id, [(cast(str, c["id"]), c["args"]) for c, _ in remaining]
            )
            for call, _ in remaining:
                cid = cast(str, call["id"])
                begun = turn[cid]
                if begun.action == "run":
                    to_run.append(call)
                elif begun.action == "done" and begun.record is not None:
                    results.append(gate.journaled(call, begun.record))
                elif begun.action == "unknown":
                    unknown.append(cid)
                elif begun.action == "busy":
                    raise CallInProgress(cid)
                # "ask": left unanswered; route_after_tools sends it back to `approval`
            results.extend(_run(tool_node, to_run, config))
            if not unknown:
                return results
            # the interrupt discards this node's writes; what ran is journaled and comes back
            asked = [c for c, _ in remaining if c["id"] in unknown]
            answer = interrupt(gate.outcome_unknown_request(asked))
            for cid, action, text in gate.reconcile_answers(answer, unknown):
                self._ledger.reconcile_from_graph(
                    thread_id, cid, action, actor=gate.graph_actor(config), result=text
                )
            remaining = [(c, r) for c, r in remaining if c["id"] in unknown]

    def wrap(self, request: ToolCallRequest, execute: Callable[[ToolCallRequest], Any]) -> Any:
        """Journal each call's result the moment it returns (ToolNode runs calls in threads)."""
        config = request.runtime.config
        cid = cast(str, request.tool_call["id"])
        with gate.attempt(self._ledger, config, cid):
            result = execute(request)
        gate.finish(self._ledger, config, cid, result)
        return result


def _run(tool_node: ToolNode, calls: list[ToolCall], config: RunnableConfig) -> list[ToolMessage]:
    if not calls:
        return []
    request = AIMessage(content="", tool_calls=calls)
    return list(tool_node.invoke({"messages": [request]}, config)["messages"])


def _request(task: ApprovalTask, record: LedgerRecord | None) -> ToolApprovalRequest:
    call = task["tool_call"]
    request = ToolApprovalRequest(
        type="tool_approval",
        tool_call_id=cast(str, call["id"]),
        name=call["name"],
        args=dict(call["args"]),
        description=task["description"],
        allowed_decisions=cast(list[DecisionType], task["allowed_decisions"]),
    )
    if task.get("requester"):
        request["requester"] = cast(str, task.get("requester"))
    if record is not None and record.expires_at is not None:
        request["expires_at"] = datetime.fromtimestamp(record.expires_at, UTC).isoformat()
    return request


def _auto_review(call: ToolCall) -> Review:
    return Review(
        tool_call_id=cast(str, call["id"]),
        name=call["name"],
        decision="auto",
        args=dict(call["args"]),
    )


def _decided(call: ToolCall, review: Review) -> dict[str, Any]:
    update: dict[str, Any] = {"reviews": {review["tool_call_id"]: review}}
    if not runs_tool(review):
        update["messages"] = [
            ToolMessage(
                content=answer_text(review),
                name=call["name"],
                tool_call_id=review["tool_call_id"],
                status="error" if review["decision"] == "reject" else "success",
            )
        ]
    return update


def _with_edit_notice(result: ToolMessage, reviews: dict[str, Review]) -> ToolMessage:
    notice = edit_notice(reviews[result.tool_call_id])
    return result.model_copy(update={"content": notice + str(result.content)})
