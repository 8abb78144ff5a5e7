"""`HITL_POLICY` changed between a request and its decision, in real `hitl` processes (the call
is re-asked, or applied under its recorded rule with `HITL_ON_POLICY_CHANGE=keep`), and
`hitl audit --export` verified offline by the standalone script of `examples/`."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.cli import Workspace, assert_refused, describe
from tests.support.environment import REPO_ROOT
from tests.support.prompts import COUNT, SALLY

VERIFIER = REPO_ROOT / "examples" / "verify_audit_export.py"
ANYONE = 'ToolRule(ask="always")'
"""send_email as first deployed: anyone may approve it."""
ONLY_CAROL = 'ToolRule(ask="always", approvers=["carol"])'
"""send_email after the deploy: only carol may approve it."""


def _asked(workspace: Workspace) -> tuple[str, str]:
    """alice's email, asked under the first deploy's rule: its thread and call."""
    started = workspace.json(
        "run", SALLY, "--as", "alice", extra_env=workspace.write_policy(ANYONE)
    )
    [call] = started["pending"]
    return started["thread_id"], call["tool_call_id"]


def _events(workspace: Workspace, thread: str) -> list[dict[str, Any]]:
    return list(workspace.json("audit", thread)["audit"])


def _verify(export: Path) -> subprocess.CompletedProcess[str]:
    """The verifier, as someone without hitl runs it: a bare Python, no site packages."""
    return subprocess.run(
        [sys.executable, "-I", "-S", str(VERIFIER), str(export)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_call_approved_after_hitl_policy_changed_its_rule_is_asked_again_not_run(
    workspace: Workspace,
) -> None:
    started = workspace.json(
        "run", SALLY, "--as", "alice", extra_env=workspace.write_policy(ANYONE)
    )
    thread, [call] = started["thread_id"], [p["tool_call_id"] for p in started["pending"]]
    deployed = workspace.write_policy(ONLY_CAROL)

    reasked = workspace.json("approve", thread, "--as", "bob", extra_env=deployed)

    assert reasked["status"] == "interrupted"
    assert [p["tool_call_id"] for p in reasked["pending"]] == [call]
    assert workspace.sent_ids() == []
    last = _events(workspace, thread)[-1]
    assert last["event"] == "re-requested"
    assert last["detail"]["voided"] == {"decision": "approve", "decided_by": "bob"}
    assert last["detail"]["rules"]["approvers"] == ["carol"]
    done = workspace.json("approve", thread, "--as", "carol", extra_env=deployed)
    assert done["status"] == "done"
    assert workspace.sent_ids() == [call]


def test_with_keep_a_call_approved_after_hitl_policy_changed_runs_under_its_recorded_rule(
    workspace: Workspace,
) -> None:
    started = workspace.json(
        "run", SALLY, "--as", "alice", extra_env=workspace.write_policy(ANYONE)
    )
    thread, [call] = started["thread_id"], [p["tool_call_id"] for p in started["pending"]]
    deployed = workspace.write_policy(ONLY_CAROL) | {"HITL_ON_POLICY_CHANGE": "keep"}

    done = workspace.json("approve", thread, "--as", "bob", extra_env=deployed)

    assert done["status"] == "done"
    assert workspace.sent_ids() == [call]
    kept = [e for e in _events(workspace, thread) if e["event"] == "policy_changed"]
    assert len(kept) == 1
    assert kept[0]["detail"]["on_policy_change"] == "keep"
    assert (
        kept[0]["detail"]["why"]["rule_version"]
        != kept[0]["detail"]["recorded_why"]["rule_version"]
    )


def test_an_unknown_on_policy_change_setting_is_refused_before_anything_is_written(
    workspace: Workspace,
) -> None:
    started = workspace.json("run", SALLY)
    assert_refused(
        workspace,
        "approve",
        started["thread_id"],
        exit_code=10,
        error_type="InvalidSettings",
        says=["HITL_ON_POLICY_CHANGE='ask'", "reask", "keep"],
        as_json=True,
        extra_env={"HITL_ON_POLICY_CHANGE": "ask"},
    )


def test_an_export_verifies_offline_and_an_edited_line_is_named(workspace: Workspace) -> None:
    sally = workspace.json("run", SALLY, "--as", "alice")
    workspace.json("approve", sally["thread_id"], "--as", "bob", "--comment", "ça va")
    workspace.json("run", COUNT)
    export = workspace.folder / "audit.jsonl"

    written = workspace.json("audit", "--export", str(export))
    verified = _verify(export)

    assert verified.returncode == 0, describe(verified)
    heads = workspace.json("audit", "--verify")["heads"]
    for thread, head in heads.items():
        assert f"head  thread {thread}  {head}" in verified.stdout
    lines = export.read_text(encoding="utf-8").splitlines()
    assert written == {"file": str(export), "entries": len(lines), "threads": 2}
    entries = [json.loads(line) for line in lines]
    assert set(entries[0]) == {
        *("thread_id", "seq", "at", "event", "actor", "tool_call_id", "detail"),
        *("prev_hash", "hash"),
    }
    edited = next(n for n, e in enumerate(entries) if e["event"] == "decided")
    entries[edited]["detail"]["comment"] = "ok"
    lines[edited] = json.dumps(entries[edited], ensure_ascii=False)
    export.write_text("\n".join(lines) + "\n", encoding="utf-8")

    broken = _verify(export)

    assert broken.returncode == 1, describe(broken)
    thread, seq = entries[edited]["thread_id"], entries[edited]["seq"]
    assert f"line {edited + 1}: thread {thread} entry {seq} was altered" in broken.stdout


def test_an_export_of_one_thread_to_stdout_holds_only_its_entries(workspace: Workspace) -> None:
    sally = workspace.json("run", SALLY)
    workspace.json("run", COUNT)

    result = workspace.run("audit", sally["thread_id"], "--export", "-")

    assert result.returncode == 0, describe(result)
    exported = [json.loads(line) for line in result.stdout.splitlines()]
    trail = _events(workspace, sally["thread_id"])
    assert [(e["thread_id"], e["seq"]) for e in exported] == [
        (sally["thread_id"], e["seq"]) for e in trail
    ]


def test_an_export_of_an_unknown_thread_fails_with_exit_3_and_writes_no_file(
    workspace: Workspace,
) -> None:
    workspace.json("run", COUNT)
    export = workspace.folder / "audit.jsonl"

    assert_refused(
        workspace,
        "audit",
        "no-such-thread",
        "--export",
        str(export),
        exit_code=3,
        error_type="ThreadNotFound",
        says=["no thread 'no-such-thread'"],
        as_json=True,
    )
    assert not export.exists()
    assert [p.name for p in workspace.folder.iterdir() if p.name.endswith(".partial")] == []


def test_an_export_is_refused_with_verify_with_json_on_stdout_and_against_a_service(
    workspace: Workspace,
) -> None:
    workspace.json("run", COUNT)
    for args, says in [
        (("audit", "--export", "a.jsonl", "--verify"), "--export and --verify are separate"),
        (("audit", "--export", "-"), "writes JSON Lines to stdout: drop --json"),
        (
            ("--url", "http://127.0.0.1:9", "--token", "t", "audit", "--export", "a.jsonl"),
            "run it without --url",
        ),
    ]:
        assert_refused(
            workspace, *args, exit_code=2, error_type="UsageError", says=[says], as_json=True
        )
    assert not (workspace.folder / "a.jsonl").exists()


def test_an_export_to_a_folder_that_does_not_exist_is_a_usage_error_naming_the_file(
    workspace: Workspace,
) -> None:
    workspace.json("run", COUNT)
    target = workspace.folder / "no-such-folder" / "audit.jsonl"

    assert_refused(
        workspace,
        "audit",
        "--export",
        str(target),
        exit_code=2,
        error_type="BadParameter",
        says=["cannot write", "No such file or directory", "a folder you may write"],
        as_json=True,
    )
    assert not target.parent.exists()
