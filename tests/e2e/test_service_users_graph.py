"""`hitl serve` serving a user's hand-built `StateGraph` (`HITL_GRAPH`): a retrieval node before
the model, two parallel gated calls waiting at once, decided separately by two remote CLIs."""

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.cli import hitl
from tests.support.environment import hitl_environment, process_environment
from tests.support.services import (
    make_token,
    running_service,
    service_env,
    start_and_wait,
    wait_run,
)
from tests.support.user_agents import one_append, side_lines, two_appends, user_settings

pytestmark = pytest.mark.slow


def remote(url: str, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = process_environment(hitl_environment(extra={"HITL_URL": url, "HITL_TOKEN": token}))
    return hitl(*args, env=env, cwd=Path("/"))


def test_two_parallel_calls_of_a_hand_built_graph_are_decided_by_two_processes(
    tmp_path: Path,
) -> None:
    settings = user_settings(tmp_path, "handmade", two_appends("left", "right"))
    with running_service(tmp_path, env=service_env(tmp_path, settings)) as service:
        bob = make_token(service, "bob", "approver")
        carol = make_token(service, "carol", "approver")
        with service.client(bob) as client:
            thread = start_and_wait(client, "append two lines", thread_id="t1")
        assert thread["status"] == "interrupted"
        calls = {p["args"]["line"]: p["tool_call_id"] for p in thread["pending"]}
        assert sorted(calls) == ["left", "right"]
        approve = remote(service.url, bob, "approve", "t1", "--call", calls["left"], "--json")
        reject = remote(service.url, carol, "reject", "t1", "--call", calls["right"], "--json")
        assert approve.returncode == 0, approve.stderr
        assert reject.returncode == 0, reject.stderr
        shown = remote(service.url, bob, "show", "t1", "--json")
        view = json.loads(shown.stdout)
        assert view["status"] == "done"
        assert [m["type"] for m in view["messages"]][:2] == ["human", "system"]
        assert side_lines(settings) == ["left"]
        audit = json.loads(remote(service.url, bob, "audit", "t1", "--json").stdout)["audit"]
        decided = {e["tool_call_id"]: e["actor"] for e in audit if e["event"] == "decided"}
        assert decided == {calls["left"]: "bob", calls["right"]: "carol"}


def test_a_users_tool_that_raises_fails_its_run_naming_the_node_without_a_traceback(
    tmp_path: Path,
) -> None:
    settings = user_settings(tmp_path, "agent", one_append()) | {"TOOL_FAILS": "disk full"}
    with running_service(tmp_path, env=service_env(tmp_path, settings)) as service:
        bob = make_token(service, "bob", "approver")
        with service.client(bob) as client:
            start_and_wait(client, "please append", thread_id="t1")
            accepted = client.post("/threads/t1/approve", json={})
            assert accepted.status_code == 202, accepted.text
            run = wait_run(client, accepted.json()["run"]["run_id"])
            (unknown,) = client.get("/approvals").json()["pending"]
        log = service.log()
    assert run["status"] == "failed"
    assert run["error"]["type"] == "AgentFailed"
    assert "node 'tools' raised RuntimeError: disk full" in run["error"]["message"]
    assert unknown["status"] == "outcome_unknown"  # it raised mid-run: not run again unasked
    assert "disk full" in log and "Traceback" not in log  # the agent's failure, not our bug
