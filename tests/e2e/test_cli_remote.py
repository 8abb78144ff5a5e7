"""`hitl --url URL --token T ...`: the same commands against a running service, the same output.

Local and remote mode read the same database here, so their output must be identical.
"""

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import describe, hitl
from tests.support.environment import hitl_environment, process_environment
from tests.support.prompts import SALLY
from tests.support.services import HitlService, make_token, running_service

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HitlService]:
    with running_service(tmp_path_factory.mktemp("remote")) as running:
        yield running


@pytest.fixture(scope="module")
def bob(service: HitlService) -> str:
    return make_token(service, "bob", "approver")


def cli_env(service: HitlService, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of `hitl` on the service's database and outbox, with `extra`."""
    return process_environment(hitl_environment(service.db, service.outbox, extra))


def local(service: HitlService, *args: str) -> subprocess.CompletedProcess[str]:
    return hitl(*args, env=cli_env(service), cwd=service.db.parent)


def remote(service: HitlService, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = cli_env(service, {"HITL_URL": service.url, "HITL_TOKEN": token})
    env.pop("HITL_DB")  # remote mode must not need the database
    return hitl(*args, env=env, cwd=Path("/"))


def started(service: HitlService, token: str) -> str:
    done = remote(service, token, "run", SALLY, "--json")
    assert done.returncode == 0, describe(done)
    view = json.loads(done.stdout)
    assert view["status"] == "interrupted"
    return str(view["thread_id"])


def test_reading_commands_print_the_same_remotely_as_locally(
    service: HitlService, bob: str
) -> None:
    thread_id = started(service, bob)
    for command in (
        ("pending",),
        ("pending", "--thread", thread_id, "--json"),
        ("show", thread_id),
        ("show", thread_id, "--json"),
        ("show", thread_id, "--messages", "1", "--before", "1", "--json"),
        ("show", thread_id, "--before", "9", "--json"),  # a page it lacks: exit 20
        ("history", thread_id),
        ("history", thread_id, "--limit", "2", "--json"),
        ("audit", thread_id),
        ("audit", "--verify"),
    ):
        here, there = local(service, *command), remote(service, bob, *command)
        assert (there.returncode, there.stdout) == (here.returncode, here.stdout), command


def test_a_remote_approval_runs_the_tool_once_and_is_recorded_as_the_tokens_name(
    service: HitlService, bob: str
) -> None:
    thread_id = started(service, bob)
    approved = remote(service, bob, "approve", thread_id, "--comment", "checked")
    assert approved.returncode == 0, describe(approved)
    assert f"thread {thread_id}: done" in approved.stdout
    audit = json.loads(local(service, "audit", thread_id, "--json").stdout)["audit"]
    decided = [e for e in audit if e["event"] == "decided"]
    assert [(e["actor"], e["detail"]["comment"]) for e in decided] == [("bob", "checked")]
    sent = [json.loads(line) for line in service.outbox.read_text().splitlines()]
    call_id = decided[0]["tool_call_id"]
    assert [s["tool_call_id"] for s in sent].count(call_id) == 1


def test_a_refused_decision_has_the_local_exit_code_and_message(
    service: HitlService, bob: str
) -> None:
    thread_id = started(service, bob)
    call_id = json.loads(remote(service, bob, "show", thread_id, "--json").stdout)["pending"][0][
        "tool_call_id"
    ]
    assert remote(service, bob, "reject", thread_id, "--call", call_id).returncode == 0
    here = local(service, "approve", thread_id, "--call", call_id, "--as", "carol")
    there = remote(service, bob, "approve", thread_id, "--call", call_id)
    assert here.returncode == there.returncode == 6
    assert there.stderr == here.stderr
    assert "already decided by bob" in there.stderr


def test_a_new_thread_id_that_would_not_survive_a_url_is_refused_remotely_as_locally(
    service: HitlService, bob: str
) -> None:
    here = local(service, "run", SALLY, "--thread", "a/b")
    there = remote(service, bob, "run", SALLY, "--thread", "a/b")
    assert here.returncode == there.returncode == 2, describe(there)
    assert there.stderr == here.stderr
    assert "letters, digits and . _ : @ -" in there.stderr


def test_remote_mode_says_what_is_wrong_with_the_token_the_role_or_the_address(
    service: HitlService,
) -> None:
    viewer = make_token(service, "vera", "viewer")
    thread_id = started(service, service.admin_token)
    bad = remote(service, "hitl_not-a-token", "pending")
    assert bad.returncode == 17 and "not valid" in bad.stderr
    forbidden = remote(service, viewer, "approve", thread_id)
    assert forbidden.returncode == 18 and "'approver'" in forbidden.stderr
    claimed = remote(service, service.admin_token, "approve", thread_id, "--as", "alice")
    assert claimed.returncode == 2 and "--as does not apply with --url" in claimed.stderr
    env = cli_env(service, {"HITL_URL": "http://127.0.0.1:9"})
    unreachable = hitl("--token", viewer, "pending", env=env, cwd=Path("/"))
    assert unreachable.returncode == 19 and "cannot reach the hitl service" in unreachable.stderr
    assert json.loads(local(service, "show", thread_id, "--json").stdout)["status"] == "interrupted"


def test_standing_approvals_are_added_listed_and_revoked_remotely_under_the_tokens_name(
    service: HitlService, bob: str
) -> None:
    started(service, bob)  # a call of send_email was asked about: its rules are known
    scope = ("--tool", "send_email", "--thread", "x", "--expires-in", "1h")
    added = remote(service, bob, "allow", "add", *scope, "--json")
    assert added.returncode == 0, describe(added)
    standing = json.loads(added.stdout)
    assert (standing["created_by"], standing["thread_id"]) == ("bob", "x")
    assert local(service, "allow", "list").stdout == remote(service, bob, "allow", "list").stdout
    revoked = remote(service, bob, "allow", "revoke", standing["id"], "--json")
    assert revoked.returncode == 0, describe(revoked)
    assert json.loads(revoked.stdout)["revoked_by"] == "bob"
    again = remote(service, bob, "allow", "revoke", standing["id"], "--json")
    assert again.returncode == 26, describe(again)
    assert json.loads(again.stdout)["error"]["type"] == "StandingNotFound"
