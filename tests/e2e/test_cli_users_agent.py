"""The `hitl` command on a user's own `create_agent` agent (`HITL_GRAPH`), every step in a
process of its own: started, listed and decided from different processes, killed inside the
tool, and decided by eight processes at once."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import hitl
from tests.support.environment import HITL, hitl_environment, process_environment
from tests.support.processes import eventually
from tests.support.user_agents import graph_spec, one_append, side_lines, user_settings

pytestmark = pytest.mark.slow


def environment(tmp_path: Path, replies: list[Any], **extra: str) -> dict[str, str]:
    settings = user_settings(tmp_path, "agent", replies) | extra
    return process_environment(hitl_environment(tmp_path / "hitl.sqlite", extra=settings))


def ok(*args: str, env: dict[str, str], cwd: Path) -> Any:
    result = hitl(*args, "--json", env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


def test_a_users_agent_started_listed_and_decided_by_separate_processes(tmp_path: Path) -> None:
    env = environment(tmp_path, one_append("hello"))
    started = ok("run", "--thread", "t1", "please append", env=env, cwd=tmp_path)
    assert started["status"] == "interrupted"
    (waiting,) = ok("pending", env=env, cwd=tmp_path)["pending"]
    assert (waiting["tool"], waiting["args"]) == ("append_line", {"line": "hello"})
    assert side_lines(env) == []
    decided = ok("approve", "t1", "--as", "bob", env=env, cwd=tmp_path)
    assert decided["status"] == "done"
    assert side_lines(env) == ["hello"]
    ok("resume", "t1", env=env, cwd=tmp_path)  # a second resume runs nothing again
    assert side_lines(env) == ["hello"]


def test_a_process_killed_inside_the_users_tool_leaves_outcome_unknown_never_a_rerun(
    tmp_path: Path,
) -> None:
    hold = tmp_path / "hold"
    env = environment(tmp_path, one_append("once"), HOLD_FILE=str(hold))
    ok("run", "--thread", "t1", "please append", env=env, cwd=tmp_path)
    approving = subprocess.Popen(
        [str(HITL), "approve", "t1", "--as", "bob"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    eventually(lambda: Path(f"{hold}.started").exists(), "the tool started")
    os.kill(approving.pid, signal.SIGKILL)
    approving.wait()
    assert side_lines(env) == ["once"]
    hold.write_text("")  # a tool started again would not wait
    ok("sweep", env=env, cwd=tmp_path)
    ok("resume", "t1", env=env, cwd=tmp_path)
    (unknown,) = ok("pending", env=env, cwd=tmp_path)["pending"]
    assert unknown["status"] == "outcome_unknown"
    assert side_lines(env) == ["once"]  # neither the sweep nor a resume ran it again
    ok("reconcile", "t1", "--call", unknown["tool_call_id"], "--mark-done", env=env, cwd=tmp_path)
    assert ok("show", "t1", env=env, cwd=tmp_path)["status"] == "done"
    assert side_lines(env) == ["once"]


def test_eight_processes_deciding_one_call_of_a_users_agent_one_wins_the_tool_runs_once(
    tmp_path: Path,
) -> None:
    env = environment(tmp_path, one_append("raced"))
    ok("run", "--thread", "t1", "please append", env=env, cwd=tmp_path)
    deciders = [
        subprocess.Popen(
            [str(HITL), "approve" if n % 2 == 0 else "reject", "t1", "--as", f"person{n}"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(8)
    ]
    codes = [d.wait(timeout=120) for d in deciders]
    assert codes.count(0) == 1, codes
    records = ok("show", "t1", env=env, cwd=tmp_path)
    assert records["status"] == "done"
    winner = codes.index(0)
    assert side_lines(env) == (["raced"] if winner % 2 == 0 else [])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(side_lines(env)) > 1:
        time.sleep(0.1)
    assert len(side_lines(env)) <= 1


def test_a_users_tool_that_raises_is_a_clear_error_naming_the_node_not_a_traceback(
    tmp_path: Path,
) -> None:
    env = environment(tmp_path, one_append(), TOOL_FAILS="disk full")
    ok("run", "--thread", "t1", "please append", env=env, cwd=tmp_path)
    failed = hitl("approve", "t1", env=env, cwd=tmp_path)
    assert failed.returncode == 21, failed.stderr + failed.stdout
    assert "Traceback" not in failed.stderr
    assert "node 'tools' raised RuntimeError: disk full" in failed.stderr
    assert "hitl resume" in failed.stderr
    (unknown,) = ok("pending", env=env, cwd=tmp_path)["pending"]
    assert unknown["status"] == "outcome_unknown"  # it raised mid-run: not run again unasked
    retry = ("reconcile", "t1", "--call", unknown["tool_call_id"], "--retry", "--json")
    failed = hitl(*retry, env=env, cwd=tmp_path)
    assert failed.returncode == 21, failed.stderr + failed.stdout
    error = json.loads(failed.stdout)["error"]
    assert (error["type"], error["exit_code"]) == ("AgentFailed", 21)


def test_an_agent_with_mcp_tools_is_served_by_the_cli_and_its_destructive_tool_waits(
    tmp_path: Path,
) -> None:
    """An async factory loading MCP tools (stdio server), run by the sync CLI: the read-only
    tool runs unasked, the destructive one waits and runs once, approved by another process."""
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me\n", encoding="utf-8")
    calls = [{"name": "list_notes", "args": {}}, {"name": "delete_notes", "args": {}}]
    env = environment(tmp_path, [{"tool_calls": calls}, "Done."], NOTES_FILE=str(notes)) | {
        "HITL_GRAPH": graph_spec("mcp_agent")
    }
    started = ok("run", "--thread", "t1", "tidy up", env=env, cwd=tmp_path)
    assert started["status"] == "interrupted"
    (waiting,) = ok("pending", env=env, cwd=tmp_path)["pending"]
    assert waiting["tool"] == "delete_notes" and "may change or delete" in waiting["description"]
    assert notes.exists()
    done = ok("approve", "t1", "--as", "bob", env=env, cwd=tmp_path)
    assert done["status"] == "done"
    assert not notes.exists()
    results = {m["tool"]: m["text"] for m in done["messages"] if m["type"] == "tool"}
    assert results["delete_notes"] == "deleted"
    assert results["list_notes"] in ("keep me\n", "(no notes)")  # the turn's calls run at once
    audit = ok("audit", "t1", env=env, cwd=tmp_path)["audit"]
    assert [e["event"] for e in audit].count("tool_finished") == 2
