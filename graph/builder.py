"""`build_graph`: the demo agent, built from the public parts a user's agent uses.

It is LangChain's `create_agent` with `ApprovalMiddleware` in batched mode (the shape Agent
Chat UI acts on; `hitl` decides call by call in either mode), the policy (`HITL_POLICY`)
turned into its `interrupt_on`, and the conversation kept in the message log:

START → model ─(tool calls)→ approval (one interrupt per turn) → tools ─→ model
              └─(no tool calls)→ END
"""

from collections.abc import Sequence
from functools import partial
from typing import Annotated, Any

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AnyMessage, ToolCall
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt.tool_node import ToolCallRequest

from hitl.graph.gate import OnPolicyChange, bind_ledger
from hitl.graph.ledger import ApprovalLedger
from hitl.graph.message_log import MessageLogChannel
from hitl.graph.middleware import ApprovalMiddleware, ApprovalState, InterruptOnConfig
from hitl.graph.policy import Policy, ToolRule

GRAPH_ID = "agent"


class DemoState(ApprovalState):
    """`create_agent`'s state, with the conversation stored once per message, not once per
    checkpoint (`add_messages` semantics otherwise)."""

    messages: Annotated[list[AnyMessage], MessageLogChannel]


def build_graph(
    *,
    model: BaseChatModel,
    tools: Sequence[BaseTool],
    policy: Policy,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    ledger: ApprovalLedger | None = None,
    on_policy_change: OnPolicyChange = "reask",
) -> CompiledStateGraph[Any]:
    """Compile the demo agent; run it with `durability="sync"` to keep decisions safe.

    With a `ledger` (the project's), decisions are one-wins and tools run exactly once; without
    one the gate is LangChain's middleware (used as the baseline of the benchmarks).
    `on_policy_change` says what becomes of a call asked under another version of its rule.
    """
    gate = ApprovalMiddleware(
        interrupt_on(policy, tools), interrupt_mode="batched", on_policy_change=on_policy_change
    )
    agent: CompiledStateGraph[Any] = create_agent(
        model,
        list(tools),
        middleware=[gate],
        state_schema=DemoState,
        checkpointer=checkpointer,
        name=GRAPH_ID,
    )
    return bind_ledger(agent, ledger) if ledger is not None else agent


def interrupt_on(policy: Policy, tools: Sequence[BaseTool]) -> dict[str, bool | InterruptOnConfig]:
    """The middleware's `interrupt_on` for a policy: one entry per tool, so none is unlisted."""
    return {tool.name: _config(policy.rule_for(tool.name)) for tool in tools}


def _config(rule: ToolRule) -> bool | InterruptOnConfig:
    if rule.ask == "never":
        return False
    config = InterruptOnConfig(
        allowed_decisions=list(rule.allowed_decisions),
        description=partial(_describe, rule),
        on_expire=rule.on_expire,
        allow_self_approval=rule.allow_self_approval,
    )
    if callable(rule.ask):
        config["when"] = partial(_asks, rule)
    if rule.expires_after is not None:
        config["expires_after"] = rule.expires_after
    if rule.approvers is not None:
        config["approvers"] = sorted(rule.approvers)
    if rule.remind_after is not None:
        config["remind_after"] = rule.remind_after
    if rule.escalate_after is not None:
        config["escalate_after"] = rule.escalate_after
    if rule.escalate_to is not None:
        config["escalate_to"] = sorted(rule.escalate_to)
    if rule.quorum != 1 or rule.quorum_distinct_roles or not rule.reject_vetoes:
        config["quorum"] = rule.quorum
        config["quorum_distinct_roles"] = rule.quorum_distinct_roles
        config["reject_vetoes"] = rule.reject_vetoes
    return config


def _describe(rule: ToolRule, call: ToolCall, state: Any, runtime: Any) -> str:
    return rule.describe(call)


def _asks(rule: ToolRule, request: ToolCallRequest) -> bool:
    return rule.needs_review(request.tool_call["args"])
