"""The gate for hand-built `StateGraph`s: `ApprovalToolNode` in place of `ToolNode`, and
`route_to_tools` in place of `tools_condition`.

    builder.add_node("tools", ApprovalToolNode(tools, interrupt_on={"send_email": True}))
    builder.add_conditional_edges("agent", route_to_tools, ["tools", END])
    builder.add_edge("tools", "agent")

`route_to_tools` sends each unanswered call of the model's latest turn to its own `tools` task,
so the calls of one turn wait at the same time and are decided independently (each is its own
interrupt, with its own ID). The gate is the one `ApprovalMiddleware` applies in `per_call`
mode, with the same options and the same guarantees when a ledger is bound.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_core.messages import AnyMessage
from langchain_core.tools import BaseTool
from langgraph.graph import END
from langgraph.prebuilt import ToolNode
from langgraph.types import Send

from hitl.graph import gate
from hitl.graph.gate import OnPolicyChange
from hitl.graph.middleware import ApprovalMiddleware, InterruptOnConfig

TOOLS_NODE = "tools"


class ApprovalToolNode(ToolNode):
    """A `ToolNode` that runs a call only once a person (or the policy) approved it."""

    def __init__(
        self,
        tools: Sequence[BaseTool | Callable[..., Any]],
        *,
        interrupt_on: Mapping[str, bool | InterruptOnConfig],
        description_prefix: str = "Tool execution requires approval",
        ask_unlisted: bool = False,
        on_policy_change: OnPolicyChange = "reask",
        name: str = TOOLS_NODE,
        **tool_node_options: Any,
    ) -> None:
        gate = ApprovalMiddleware(
            interrupt_on,
            description_prefix=description_prefix,
            interrupt_mode="per_call",
            ask_unlisted=ask_unlisted,
            on_policy_change=on_policy_change,
        )
        super().__init__(
            tools,
            name=name,
            wrap_tool_call=gate.wrap_tool_call,
            awrap_tool_call=gate.awrap_tool_call,
            **tool_node_options,
        )
        self.gate = gate


def route_to_tools(
    state: Mapping[str, Any] | Sequence[AnyMessage], *, node: str = TOOLS_NODE
) -> list[Send] | str:
    """After the model: one `tools` task per unanswered call of its latest turn, or the end."""
    messages = state if isinstance(state, Sequence) else state.get("messages", [])
    calls = gate.unanswered_calls(messages)
    return [Send(node, [call]) for call in calls] if calls else END
