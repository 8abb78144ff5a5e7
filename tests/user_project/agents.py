"""A user's own agents, as `HITL_GRAPH` names them (`tests/user_project/agents.py:agent`).

Each tool call appends a line to the file `SIDE_FILE` names: the side effect the tests count
(`HOLD_FILE` keeps the tool waiting after it, for a test to kill the process there;
`TOOL_FAILS` makes it raise instead).
The chat model is the one `HITL_MODEL` names (a script, in the tests); `GATE_MODE` chooses
`ApprovalMiddleware`'s interrupt mode. `mcp_agent` takes its tools from the MCP server in
`notes_server.py` (notes in the file `NOTES_FILE` names).
"""

import os
import sys
import time
from pathlib import Path
from typing import Any, TypedDict

from langchain.agents import create_agent
from langchain_core.messages import AnyMessage, SystemMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode

from hitl import (
    ApprovalMiddleware,
    ApprovalToolNode,
    chat_model,
    mcp_interrupt_on,
    route_to_tools,
)


@tool
def append_line(line: str) -> str:
    """Append a line to the side-effect file."""
    if os.environ.get("TOOL_FAILS"):
        raise RuntimeError(os.environ["TOOL_FAILS"])
    with Path(os.environ["SIDE_FILE"]).open("a", encoding="utf-8") as out:
        out.write(line + "\n")
    _hold()
    return f"appended {line!r}"


def _hold() -> None:
    """With `HOLD_FILE` set: say the line is written (`HOLD_FILE.started`), then wait until
    that file exists, so a test can kill the process inside the tool."""
    hold = os.environ.get("HOLD_FILE")
    if not hold:
        return
    Path(hold + ".started").write_text("", encoding="utf-8")
    deadline = time.monotonic() + 60
    while not Path(hold).exists() and time.monotonic() < deadline:
        time.sleep(0.05)


@tool
def read_lines() -> str:
    """Read the side-effect file (harmless: never asked about)."""
    path = Path(os.environ["SIDE_FILE"])
    return path.read_text(encoding="utf-8") if path.exists() else ""


TOOLS = [append_line, read_lines]


def agent() -> CompiledStateGraph[Any]:
    """`create_agent` with `ApprovalMiddleware`, as LangChain's docs write it."""
    mode = os.environ.get("GATE_MODE", "batched")
    return create_agent(
        chat_model(),
        tools=TOOLS,
        middleware=[
            ApprovalMiddleware(
                {"append_line": True, "read_lines": False},
                interrupt_mode=mode,  # type: ignore[arg-type]
            )
        ],
    )


async def mcp_agent() -> CompiledStateGraph[Any]:
    """An async factory, as MCP tools need: the server's tools, gated by their annotations."""
    from langchain_mcp_adapters.client import MultiServerMCPClient
    from langchain_mcp_adapters.sessions import StdioConnection

    server: StdioConnection = {
        "command": sys.executable,
        "args": [str(Path(__file__).with_name("notes_server.py"))],
        "transport": "stdio",
        "env": {"NOTES_FILE": os.environ["NOTES_FILE"]},
    }
    tools = await MultiServerMCPClient({"notes": server}).get_tools()
    return create_agent(
        chat_model(), tools=tools, middleware=[ApprovalMiddleware(mcp_interrupt_on(tools))]
    )


def handmade() -> StateGraph[Any]:
    """A hand-built graph: a retrieval step before the model, then the gated tools."""
    model = chat_model().bind_tools(TOOLS)

    def retrieve(state: MessagesState) -> dict[str, list[AnyMessage]]:
        return {"messages": [SystemMessage("Retrieved: the file holds one line per call.")]}

    def call_model(state: MessagesState) -> dict[str, list[AnyMessage]]:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("retrieve", retrieve)
    builder.add_node("agent", call_model)
    rule = {"allowed_decisions": ["approve", "edit", "reject", "respond"]}
    if os.environ.get("SELF_APPROVAL") == "0":  # the sender may not approve their own calls
        rule["allow_self_approval"] = False
    builder.add_node("tools", ApprovalToolNode(TOOLS, interrupt_on={"append_line": rule}))
    builder.add_edge(START, "retrieve")
    builder.add_edge("retrieve", "agent")
    builder.add_conditional_edges("agent", route_to_tools, ["tools", END])
    builder.add_edge("tools", "agent")
    return builder


def ungated() -> CompiledStateGraph[Any]:
    """An agent with no approval gate at all."""
    return create_agent(chat_model(), tools=TOOLS)


class Counter(TypedDict):
    count: int


def no_messages() -> StateGraph[Any]:
    """A graph whose state has no conversation."""
    builder = StateGraph(Counter)
    builder.add_node("inc", lambda state: {"count": state["count"] + 1})
    builder.add_edge(START, "inc")
    return builder


def broken() -> CompiledStateGraph[Any]:
    """A factory that fails, as one missing its model's API key does."""
    raise RuntimeError("OPENAI_API_KEY is not set")


def mixed() -> StateGraph[Any]:
    """A gated tools node, and beside it a plain `ToolNode` nobody guards."""
    builder = handmade()
    builder.add_node("admin_tools", ToolNode([read_lines]))
    builder.add_edge("admin_tools", "agent")
    return builder


def with_breakpoint() -> CompiledStateGraph[Any]:
    """A gated graph compiled with a static breakpoint before its tools."""
    return handmade().compile(interrupt_before=["tools"])
