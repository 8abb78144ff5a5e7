"""Tools from an MCP server (started by the test over stdio, loaded with
`langchain-mcp-adapters`) are gated like any other, with the default verdict taken from the
server's annotations and overridable per tool."""

import asyncio
import sys
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain_core.tools import BaseTool
from langchain_mcp_adapters.client import MultiServerMCPClient
from langgraph.types import Command

from hitl import ApprovalMiddleware, ScriptedChatModel, bind_ledger, mcp_interrupt_on
from hitl.app import assemble
from tests.support.harness import hitl_settings
from tests.support.user_agents import USER_PROJECT

SERVER = USER_PROJECT / "notes_server.py"


def load_tools(notes: Path) -> list[BaseTool]:
    client = MultiServerMCPClient(
        {
            "notes": {
                "command": sys.executable,
                "args": [str(SERVER)],
                "transport": "stdio",
                "env": {"NOTES_FILE": str(notes)},
            }
        }
    )
    return asyncio.run(client.get_tools())


def test_annotations_decide_which_mcp_tools_ask_and_overrides_win(tmp_path: Path) -> None:
    tools = load_tools(tmp_path / "notes.txt")
    verdicts = mcp_interrupt_on(tools, overrides={"add_note": False})
    assert verdicts["list_notes"] is False  # readOnlyHint
    assert verdicts["add_note"] is False  # overridden
    delete = verdicts["delete_notes"]
    assert isinstance(delete, dict) and "change or delete" in str(delete.get("description"))
    assert isinstance(mcp_interrupt_on(tools)["add_note"], dict)  # no annotations: asks


def test_a_destructive_mcp_tool_waits_for_a_person_and_a_read_only_one_runs(
    tmp_path: Path,
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me\n", encoding="utf-8")
    tools = load_tools(notes)
    calls = [{"name": "list_notes", "args": {}}, {"name": "delete_notes", "args": {}}]
    model = ScriptedChatModel.from_replies([{"tool_calls": calls}, "Done."])
    gate = ApprovalMiddleware(mcp_interrupt_on(tools))
    config: Any = {"configurable": {"thread_id": "t1"}}
    with assemble(hitl_settings(tmp_path / "hitl.sqlite", tmp_path / "outbox.jsonl")) as parts:
        agent = create_agent(model, tools=tools, middleware=[gate])
        agent = bind_ledger(agent.copy(update={"checkpointer": parts.saver}), parts.ledger)

        async def run() -> Any:
            first = await agent.ainvoke(
                {"messages": [{"role": "user", "content": "tidy up"}]}, config, version="v2"
            )
            (raised,) = first.interrupts
            assert [a["name"] for a in raised.value["action_requests"]] == ["delete_notes"]
            assert notes.exists()
            decision = {"type": "reject", "message": "keep them"}
            return await agent.ainvoke(
                Command(resume={"decisions": [decision]}), config, version="v2"
            )

        done = asyncio.run(run())
        assert done.interrupts == ()
        assert notes.read_text(encoding="utf-8") == "keep me\n"
        records = {r.tool: (r.status, r.decided_by) for r in parts.ledger.thread_records("t1")}
        assert records == {
            "list_notes": ("succeeded", "policy"),
            "delete_notes": ("rejected", "studio"),
        }
