"""The three nodes and the router between them.

`approval` runs once per tool call (fanned out with `Send`), so every gated call of a turn is
pending at the same time and can be decided on its own, in any order. It has no side effect
before `interrupt()`: LangGraph re-runs it from the start on resume. Tools run only in `tools`,
once every call of the turn has a review.
"""

from collections.abc import Sequence
from typing import Any, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, ToolCall, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.graph import END
from langgraph.prebuilt import ToolNode
from langgraph.types import Send, interrupt

from graph.decisions import (
    DecisionSchemas,
    DecisionType,
    ToolApprovalRequest,
    answer_text,
    apply_decision,
    as_decision,
    edit_notice,
)
from graph.policy import Policy
from graph.state import ApprovalTask, Review, State, runs_tool


def last_tool_turn(messages: Sequence[AnyMessage]) -> AIMessage | None:
    """The newest model message, if it asked for tools."""
    for m in reversed(messages):
        if isinstance(m, AIMessage):
            return m if m.tool_calls else None
    return None


def answered_call_ids(messages: Sequence[AnyMessage]) -> set[str]:
    """IDs of the calls that already have a result (or an answer in place of one)."""
    return {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}


def make_agent_node(model: BaseChatModel, tools: Sequence[BaseTool]) -> Any:
    """The `agent` node: one model call; nothing else, so a resume never calls the model again."""
    bound = model.bind_tools(list(tools)) if tools else model

    def agent(state: State, config: RunnableConfig) -> dict[str, Any]:
        return {"messages": [bound.invoke(state["messages"], config)]}

    return agent


def make_route_after_agent(policy: Policy, tools: Sequence[BaseTool]) -> Any:
    """The router after `agent`: one `approval` task per tool call, or the end of the run.

    The policy is evaluated here, once, and its verdict saved in each task's input.
    """
    known = {t.name for t in tools}

    def route_after_agent(state: State) -> list[Send] | str:
        turn = last_tool_turn(state["messages"])
        if turn is None:
            return END
        sends = []
        for call in turn.tool_calls:
            rule = policy.rule_for(call["name"])
            task = ApprovalTask(
                tool_call=call,
                # an unknown tool is left to `tools`, which answers the model with an error
                needs_review=call["name"] in known and rule.needs_review(call["args"]),
                allowed_decisions=list(rule.allowed_decisions),
                description=rule.describe(call),
            )
            sends.append(Send("approval", task))
        return sends

    return route_after_agent


def make_approval_node(tools: Sequence[BaseTool]) -> Any:
    """The `approval` node: ask a person about one call, if the policy's saved verdict says so."""
    schemas = DecisionSchemas(tools)

    def approval(task: ApprovalTask) -> dict[str, Any]:
        call = task["tool_call"]
        call_id = cast(str, call["id"])
        if not task["needs_review"]:
            auto = Review(
                tool_call_id=call_id, name=call["name"], decision="auto", args=dict(call["args"])
            )
            return {"reviews": {call_id: auto}}
        allowed = cast(list[DecisionType], task["allowed_decisions"])
        request = ToolApprovalRequest(
            type="tool_approval",
            tool_call_id=call_id,
            name=call["name"],
            args=dict(call["args"]),
            description=task["description"],
            allowed_decisions=allowed,
        )
        schema = schemas.for_call(call["name"], allowed)
        answer = interrupt(request, response_schema=schema)  # type: ignore[call-overload]
        review = apply_decision(call, as_decision(answer), allowed)
        update: dict[str, Any] = {"reviews": {call_id: review}}
        if not runs_tool(review):
            update["messages"] = [
                ToolMessage(
                    content=answer_text(review),
                    name=call["name"],
                    tool_call_id=call_id,
                    status="error" if review["decision"] == "reject" else "success",
                )
            ]
        return update

    return approval


def make_tools_node(tools: Sequence[BaseTool]) -> Any:
    """The `tools` node: run the approved calls of the turn, with exactly the approved args.

    A call that already has a result is skipped, so re-running this node never repeats a
    finished call's side effect.
    """
    tool_node = ToolNode(list(tools), handle_tool_errors=True)

    def tools_(state: State, config: RunnableConfig) -> dict[str, Any]:
        turn = last_tool_turn(state["messages"])
        if turn is None:
            return {}
        reviews = state.get("reviews", {})
        done = answered_call_ids(state["messages"])
        approved: list[tuple[ToolCall, Review]] = [
            (cast(ToolCall, call | {"args": reviews[cid]["args"]}), reviews[cid])
            for call in turn.tool_calls
            if (cid := cast(str, call["id"])) in reviews
            and runs_tool(reviews[cid])
            and cid not in done
        ]
        if not approved:
            return {}
        request = AIMessage(content="", tool_calls=[call for call, _ in approved])
        results = tool_node.invoke({"messages": [request]}, config)["messages"]
        edited = {r["tool_call_id"] for _, r in approved if r["decision"] == "edit"}
        return {
            "messages": [
                _with_edit_notice(m, reviews) if m.tool_call_id in edited else m for m in results
            ]
        }

    return tools_


def _with_edit_notice(result: ToolMessage, reviews: dict[str, Review]) -> ToolMessage:
    notice = edit_notice(reviews[result.tool_call_id])
    return result.model_copy(update={"content": notice + str(result.content)})
