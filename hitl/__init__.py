"""Durable human approval for LangGraph agents.

What you add to your own agent:

- `ApprovalMiddleware`: a drop-in for LangChain's `HumanInTheLoopMiddleware` in
  `create_agent(..., middleware=[...])`;
- `ApprovalToolNode` and `route_to_tools`: the same gate for a hand-built `StateGraph`;
- `mcp_interrupt_on`: the gate's settings for tools loaded from MCP servers, from their
  annotations;
- `ScriptedChatModel`: a chat model that plays a script, to drive your tools offline.

Serve the agent with `HITL_GRAPH=./agent.py:agent hitl ...` (CLI, `hitl serve`, Studio); the
service supplies the checkpointer and binds its ledger (`bind_ledger`) to the gates.
The names load on first use, so the `hitl` command starts without loading LangChain's agents.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hitl.graph.gate import bind_ledger
    from hitl.graph.mcp import mcp_interrupt_on
    from hitl.graph.middleware import ApprovalMiddleware, InterruptOnConfig
    from hitl.graph.model import chat_model
    from hitl.graph.scripted_model import ScriptedChatModel
    from hitl.graph.tool_node import ApprovalToolNode, route_to_tools

_EXPORTS = {
    "ApprovalMiddleware": ("hitl.graph.middleware", "ApprovalMiddleware"),
    "InterruptOnConfig": ("hitl.graph.middleware", "InterruptOnConfig"),
    "ApprovalToolNode": ("hitl.graph.tool_node", "ApprovalToolNode"),
    "route_to_tools": ("hitl.graph.tool_node", "route_to_tools"),
    "mcp_interrupt_on": ("hitl.graph.mcp", "mcp_interrupt_on"),
    "ScriptedChatModel": ("hitl.graph.scripted_model", "ScriptedChatModel"),
    "bind_ledger": ("hitl.graph.gate", "bind_ledger"),
    "chat_model": ("hitl.graph.model", "chat_model"),
}

__all__ = [
    "ApprovalMiddleware",
    "ApprovalToolNode",
    "InterruptOnConfig",
    "ScriptedChatModel",
    "bind_ledger",
    "chat_model",
    "mcp_interrupt_on",
    "route_to_tools",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hitl' has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = getattr(import_module(module), attribute)
    globals()[name] = value
    return value
