"""Standing approvals and quorum through the `hitl` CLI, in real processes: `approve
--remember`, `hitl allow add|list|revoke`, refusals with their exit codes, and a quorum
call's progress in `pending`."""

from pathlib import Path

from tests.support.cli import Workspace, assert_refused
from tests.support.prompts import SALLY

ONLY_BOB = 'ToolRule(approvers=["bob"])'
QUORUM = "ToolRule(quorum=2)"


def test_an_approval_remembered_with_the_cli_approves_the_next_call_until_revoked(
    tmp_path: Path,
) -> None:
    workspace = Workspace(tmp_path)
    policy = workspace.write_policy(ONLY_BOB)
    first = workspace.json("run", SALLY, "--as", "alice", extra_env=policy)
    assert_refused(
        workspace,
        "allow",
        "add",
        "--tool",
        "send_email",
        "--expires-in",
        "1d",
        "--as",
        "mallory",
        exit_code=12,
        error_type="NotPermitted",
        says=["'mallory' may not create a standing approval for send_email", "only bob"],
        as_json=True,
    )
    assert_refused(
        workspace,
        "approve",
        first["thread_id"],
        "--as",
        "bob",
        "--remember",
        "soon",
        exit_code=2,
        says=["'soon' is not a duration"],
        as_json=True,
    )
    workspace.json(
        "approve",
        first["thread_id"],
        "--as",
        "bob",
        "--remember",
        "7d",
        "--remember-scope",
        "requester",
        extra_env=policy,
    )
    [standing] = workspace.json("allow", "list")["standing"]
    assert (standing["created_by"], standing["requester"]) == ("bob", "alice")

    second = workspace.json("run", SALLY, "--as", "alice", extra_env=policy)
    assert second["pending"] == [] and len(workspace.sent()) == 2
    audit = workspace.json("audit", second["thread_id"])["audit"]
    assert [e["detail"]["standing_id"] for e in audit if e["event"] == "approved_by_standing"] == [
        standing["id"]
    ]

    revoked = workspace.json("allow", "revoke", standing["id"], "--as", "carol")
    assert revoked["revoked_by"] == "carol"
    assert workspace.json("allow", "list")["standing"] == []
    third = workspace.json("run", SALLY, "--as", "alice", extra_env=policy)
    assert len(third["pending"]) == 1
    assert_refused(
        workspace,
        "allow",
        "revoke",
        standing["id"],
        exit_code=26,
        error_type="StandingNotFound",
        says=["it is revoked"],
        as_json=True,
    )


def test_a_quorum_call_shows_its_approvals_in_pending_and_runs_after_the_second(
    tmp_path: Path,
) -> None:
    workspace = Workspace(tmp_path)
    policy = workspace.write_policy(QUORUM)  # every process runs under it: no re-ask
    started = workspace.json("run", SALLY, "--as", "alice", extra_env=policy)
    thread = started["thread_id"]
    workspace.json("approve", thread, "--as", "bob", extra_env=policy)
    [waiting] = workspace.json("pending")["pending"]
    assert (waiting["quorum"], waiting["approvals"]) == (2, ["bob"])
    assert "1 of 2 approvals: bob" in workspace.run("pending").stdout
    assert_refused(
        workspace,
        "approve",
        thread,
        "--as",
        "bob",
        exit_code=6,
        error_type="AlreadyVoted",
        says=["'bob' already voted on this call (1 of 2 approvals: bob)"],
        as_json=True,
        extra_env=policy,
    )
    assert workspace.sent() == []
    done = workspace.json("approve", thread, "--as", "carol", extra_env=policy)
    assert done["status"] == "done" and len(workspace.sent()) == 1
