"""`langgraph dev` serving a user's `create_agent` agent (`HITL_GRAPH`) to `langgraph-sdk`,
resumed the way LangChain's docs write it: a scalar `{"decisions": [...]}` in batched mode (what
Agent Chat UI sends), `{interrupt_id: decision}` per call; and a thread Studio started, decided
with the CLI."""

import json
from pathlib import Path
from typing import Any

import pytest
from langchain.agents.middleware.human_in_the_loop import HITLRequest, ToolApprovalRequest
from langgraph_sdk.client import SyncLangGraphClient, get_sync_client
from pydantic import TypeAdapter

from tests.support.cli import hitl
from tests.support.environment import hitl_environment, process_environment
from tests.support.studio import E2E_METADATA, agent_chat_ui_acts_on, run_studio_server
from tests.support.user_agents import side_lines, two_appends, user_settings

pytestmark = pytest.mark.slow

GRAPH_ID = "agent"
REQUEST: dict[str, Any] = {"messages": [{"role": "user", "content": "append two lines"}]}


def started(client: SyncLangGraphClient) -> str:
    thread_id: str = client.threads.create(metadata=E2E_METADATA)["thread_id"]
    client.runs.wait(thread_id, GRAPH_ID, input=REQUEST)
    return thread_id


def test_batched_mode_is_one_interrupt_resumed_with_a_scalar_decisions_list(
    tmp_path: Path,
) -> None:
    settings = user_settings(tmp_path, "agent", two_appends("yes", "no"), mode="batched")
    with run_studio_server(tmp_path, tmp_path / "hitl.sqlite", settings) as studio:
        client = get_sync_client(url=studio.url, timeout=60)
        thread_id = started(client)
        (raised,) = client.threads.get_state(thread_id)["interrupts"]
        TypeAdapter(HITLRequest).validate_python(raised["value"])
        assert agent_chat_ui_acts_on(raised["value"])
        decisions = [{"type": "approve"}, {"type": "reject", "message": "not this one"}]
        client.runs.wait(thread_id, GRAPH_ID, command={"resume": {"decisions": decisions}})
        assert client.threads.get(thread_id)["status"] == "idle"
        assert side_lines(settings) == ["yes"]
        cli = process_environment(hitl_environment(tmp_path / "hitl.sqlite", extra=settings))
        audit = json.loads(hitl("audit", thread_id, "--json", env=cli, cwd=tmp_path).stdout)
        requested = [e for e in audit["audit"] if e["event"] == "requested"]
        assert [e["actor"] for e in requested] == ["studio", "studio"]  # not "unknown"


def test_per_call_mode_is_resumed_by_interrupt_id(tmp_path: Path) -> None:
    settings = user_settings(tmp_path, "agent", two_appends("yes", "no"), mode="per_call")
    with run_studio_server(tmp_path, tmp_path / "hitl.sqlite", settings) as studio:
        client = get_sync_client(url=studio.url, timeout=60)
        thread_id = started(client)
        raised = client.threads.get_state(thread_id)["interrupts"]
        assert len(raised) == 2
        for each in raised:
            TypeAdapter(ToolApprovalRequest).validate_python(each["value"])
        answers = {
            i["id"]: {"type": "approve"} if i["value"]["args"]["line"] == "yes" else "reject"
            for i in raised
        }
        client.runs.wait(thread_id, GRAPH_ID, command={"resume": answers})
        assert client.threads.get(thread_id)["status"] == "idle"
        assert side_lines(settings) == ["yes"]


def test_a_studio_thread_decided_with_the_cli_shows_done_after_one_empty_run(
    tmp_path: Path,
) -> None:
    """What Studio shows (documented in docs/operations.md): its runtime keeps its own record of
    a thread's status, which only its own runs update. The CLI's decision runs the thread to
    its end in our database; Studio lists it as interrupted until a run with no input is
    started on it, which finds nothing left to do and shows the finished thread."""
    settings = user_settings(tmp_path, "agent", two_appends("yes", "no"))
    with run_studio_server(tmp_path, tmp_path / "hitl.sqlite", settings) as studio:
        client = get_sync_client(url=studio.url, timeout=60)
        thread_id = started(client)
        cli = process_environment(hitl_environment(tmp_path / "hitl.sqlite", extra=settings))
        decided = hitl("approve", thread_id, "--as", "bob", env=cli, cwd=tmp_path)
        assert decided.returncode == 0, decided.stderr
        assert sorted(side_lines(settings)) == ["no", "yes"]  # they ran in parallel
        assert client.threads.get(thread_id)["status"] == "interrupted"  # Studio's own record
        client.runs.wait(thread_id, GRAPH_ID, input=None)
        assert client.threads.get(thread_id)["status"] == "idle"
        state = client.threads.get_state(thread_id)
        assert state["interrupts"] == [] and state["next"] == []
        assert sorted(side_lines(settings)) == ["no", "yes"]  # nothing ran twice
