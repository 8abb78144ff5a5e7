"""`build_graph`: the one place the approval graph is assembled.

START → agent ─(tool calls)→ approval ×N (one per call, Send) → tools ─→ agent
              └─(no tool calls)→ END                     └─(args changed since approved)→ approval
"""

from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from hitl.graph.ledger import ApprovalLedger
from hitl.graph.nodes import (
    make_agent_node,
    make_approval_node,
    make_route_after_agent,
    make_route_after_tools,
    make_tools_node,
)
from hitl.graph.policy import Policy
from hitl.graph.state import ApprovalTask, State

GRAPH_ID = "agent"


def build_graph(
    *,
    model: BaseChatModel,
    tools: Sequence[BaseTool],
    policy: Policy,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    ledger: ApprovalLedger | None = None,
) -> CompiledStateGraph[Any]:
    """Compile agent → approval → tools; run it with `durability="sync"` to keep decisions safe.

    With a `ledger` (the project's), decisions are one-wins and tools run exactly once; without
    one the graph is plain LangGraph (used as the baseline of the benchmarks).
    """
    builder = StateGraph(State)
    builder.add_node("agent", make_agent_node(model, tools))
    builder.add_node("approval", make_approval_node(tools, ledger), input_schema=ApprovalTask)
    builder.add_node("tools", make_tools_node(tools, ledger))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", make_route_after_agent(policy, tools), ["approval", END])
    builder.add_edge("approval", "tools")
    builder.add_conditional_edges(
        "tools", make_route_after_tools(policy, tools), ["agent", "approval"]
    )
    return builder.compile(checkpointer=checkpointer, name=GRAPH_ID)
