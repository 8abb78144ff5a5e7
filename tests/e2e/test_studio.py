"""`langgraph dev` serves the demo agent (langgraph.json's default graph) to SDK clients, in the
shape Agent Chat UI acts on, and keeps its state in our database."""

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from langchain.agents.middleware.human_in_the_loop import HITLRequest
from langgraph_sdk.client import SyncLangGraphClient, get_sync_client
from pydantic import TypeAdapter

from hitl.checkpoints.urls import DatabaseName
from tests.support.environment import REPO_ROOT
from tests.support.sql import execute
from tests.support.studio import (
    E2E_METADATA,
    StudioServer,
    agent_chat_ui_acts_on,
    run_studio_server,
)

pytestmark = pytest.mark.slow

GRAPH_ID = "agent"
EMAIL_REQUEST: dict[str, Any] = {
    "messages": [{"role": "user", "content": "Send sally@example.com an email saying 'hi'"}]
}
WATCHER_SETTLE_SECONDS = 2.0


def start_email_run(client: SyncLangGraphClient) -> str:
    """A new thread whose first run stops at the approval of one `send_email` call."""
    thread_id: str = client.threads.create(metadata=E2E_METADATA)["thread_id"]
    client.runs.wait(thread_id, GRAPH_ID, input=EMAIL_REQUEST)
    return thread_id


def pending_approval(client: SyncLangGraphClient, thread_id: str) -> str:
    """The thread's one pending interrupt, checked to be LangChain's batched request for the
    email to Sally that Agent Chat UI shows with its buttons; the call's ID."""
    state = client.threads.get_state(thread_id)
    interrupts = state["interrupts"]
    assert len(interrupts) == 1, interrupts
    value = interrupts[0]["value"]
    TypeAdapter(HITLRequest).validate_python(value)
    assert agent_chat_ui_acts_on(value), value
    (action,) = value["action_requests"]
    assert action["name"] == "send_email"
    assert action["args"] == {"recipient": "sally@example.com", "message": "hi"}
    assert value["review_configs"][0]["allowed_decisions"] == [
        "approve",
        "edit",
        "reject",
        "respond",
    ]
    assert client.threads.get(thread_id)["status"] == "interrupted"
    (call,) = state["values"]["messages"][-1]["tool_calls"]
    return str(call["id"])


def resume(client: SyncLangGraphClient, thread_id: str, answer: object) -> list[dict[str, Any]]:
    """Answer the pending approval and wait; the thread's messages once the run has finished."""
    client.runs.wait(thread_id, GRAPH_ID, command={"resume": answer})
    state = client.threads.get_state(thread_id)
    assert state["interrupts"] == [], state["interrupts"]
    assert state["next"] == []
    assert client.threads.get(thread_id)["status"] == "idle"
    values = state["values"]
    assert isinstance(values, dict), values
    messages: list[dict[str, Any]] = values["messages"]
    return messages


def final_answer(messages: list[dict[str, Any]]) -> str:
    last = messages[-1]
    assert last["type"] == "ai", last
    assert not last.get("tool_calls"), last
    return str(last["content"])


def tool_result(messages: list[dict[str, Any]], tool_call_id: str) -> dict[str, Any]:
    (result,) = [m for m in messages if m["type"] == "tool" and m["tool_call_id"] == tool_call_id]
    return result


def outbox(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def checkpointed_threads(db: DatabaseName) -> set[str]:
    """Thread IDs with checkpoints in `db`, read through a connection of our own."""
    return {row[0] for row in execute(db, "SELECT DISTINCT thread_id FROM checkpoints")}


def ledger_rows(db: DatabaseName) -> dict[str, tuple[str, str]]:
    """tool_call_id → (status, decided_by) in the ledger, read through our own connection."""
    rows = execute(db, "SELECT tool_call_id, status, decided_by FROM hitl_approvals")
    return {call: (status, by) for call, status, by in rows}


def assert_no_reload(server: StudioServer, workers_at_start: frozenset[int] | None) -> None:
    assert server.process.poll() is None, "langgraph dev exited during the test"
    # uvicorn watches only *.py files; a reload here means our writes (or an edit of the
    # source made while the test ran) restarted the server under the client
    assert server.reloads() == [], "langgraph dev reloaded during the test"
    assert server.worker_pids() == workers_at_start, "the uvicorn worker was replaced"


def test_studio_run_pauses_for_approval_and_resumes_from_the_sdk(studio: StudioServer) -> None:
    client = get_sync_client(url=studio.url)
    workers_at_start = studio.worker_pids()

    approved = start_email_run(client)
    call_id = pending_approval(client, approved)
    assert outbox(studio.outbox_path) == [], "the email was sent before it was approved"

    messages = resume(client, approved, {"decisions": [{"type": "approve"}]})
    assert tool_result(messages, call_id)["status"] == "success"
    assert "sally@example.com" in final_answer(messages)
    sent = outbox(studio.outbox_path)
    assert [(e["recipient"], e["message"], e["tool_call_id"]) for e in sent] == [
        ("sally@example.com", "hi", call_id)
    ]

    rejected = start_email_run(client)
    rejected_call = pending_approval(client, rejected)
    no = {"decisions": [{"type": "reject", "message": "not today"}]}
    messages = resume(client, rejected, no)
    result = tool_result(messages, rejected_call)
    assert result["status"] == "error"
    assert "not today" in result["content"]
    answer = final_answer(messages)
    assert "rejected" in answer
    assert "not today" in answer
    assert outbox(studio.outbox_path) == sent, "a rejected email was sent"

    # the platform kept both threads in our database, not in its own in-memory store
    assert {approved, rejected} <= checkpointed_threads(studio.db_path)
    # and Studio's answers went through the ledger like the CLI's: recorded, journaled
    rows = ledger_rows(studio.db_path)
    assert rows[call_id] == ("succeeded", "studio")
    assert rows[rejected_call] == ("rejected", "studio")
    assert_no_reload(studio, workers_at_start)


def test_a_database_inside_the_watched_project_does_not_trigger_reloads(tmp_path: Path) -> None:
    # the default HITL_DB, checkpoints/hitl.sqlite, lies in the folder `langgraph dev` watches;
    # a name of our own there keeps a developer's database untouched
    db = REPO_ROOT / "checkpoints" / f"e2e-{uuid.uuid4().hex}.sqlite"
    try:
        with run_studio_server(tmp_path, db) as server:
            client = get_sync_client(url=server.url)
            workers_at_start = server.worker_pids()
            thread_id = start_email_run(client)
            pending_approval(client, thread_id)
            final_answer(resume(client, thread_id, {"decisions": [{"type": "approve"}]}))
            assert len(outbox(server.outbox_path)) == 1
            assert thread_id in checkpointed_threads(db)
            # the watcher debounces changes for up to 1.6 s before it decides to reload
            time.sleep(WATCHER_SETTLE_SECONDS)
            assert_no_reload(server, workers_at_start)
    finally:
        for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            path.unlink(missing_ok=True)
