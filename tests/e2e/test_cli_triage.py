"""Triage through the `hitl` CLI: assign and filter by assignee, snooze and unsnooze, and a
bulk decision with one confirmation and a report per call — real processes on one file."""

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import HITL, Workspace, assert_refused, describe, hitl
from tests.support.environment import hitl_environment, process_environment
from tests.support.prompts import SALLY
from tests.support.services import make_token, running_service


@dataclass(frozen=True)
class Calls:
    db: Path
    calls: list[tuple[str, str]]
    """(thread_id, tool_call_id) of three SALLY threads started by alice, one call each."""


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Calls:
    workspace = Workspace(tmp_path_factory.mktemp("triage"))
    calls = []
    for _ in range(3):
        view = workspace.json("run", SALLY, "--as", "alice")
        calls.append((view["thread_id"], view["pending"][0]["tool_call_id"]))
    return Calls(workspace.db, calls)


@pytest.fixture
def copied(tmp_path: Path, three: Calls) -> Workspace:
    return Workspace.copy_of(three.db, tmp_path)


def _ids(page: dict[str, Any]) -> list[str]:
    return [p["tool_call_id"] for p in page["pending"]]


def test_pending_filters_by_assignee_and_me_is_the_acting_person(
    copied: Workspace, three: Calls
) -> None:
    (t1, c1), (t2, c2), _ = three.calls
    assigned = copied.json("assign", t1, "--call", c1, "--to", "bob", "--as", "carol")
    assert assigned["assignee"] == "bob"
    copied.json("assign", t2, "--call", c2, "--to", "me", "--as", "dan")

    assert _ids(copied.json("pending", "--assigned-to", "bob")) == [c1]
    mine = copied.json("pending", "--assigned-to", "me", extra_env={"HITL_ACTOR": "dan"})
    assert _ids(mine) == [c2] and mine["pending"][0]["assignee"] == "dan"
    shown = copied.run("pending")
    assert "assigned to bob" in shown.stdout, describe(shown)
    events = [e["event"] for e in copied.json("audit", t1)["audit"]]
    assert events == ["requested", "assigned"]


def test_a_snoozed_call_leaves_pending_until_it_is_unsnoozed(
    copied: Workspace, three: Calls
) -> None:
    (t1, c1), (_, c2), (_, c3) = three.calls
    copied.json("snooze", t1, "--call", c1, "--until", "2h", "--as", "bob")

    assert _ids(copied.json("pending")) == [c2, c3]
    assert _ids(copied.json("pending", "--snoozed", "only")) == [c1]
    copied.json("snooze", t1, "--call", c1, "--off", "--as", "bob")
    assert _ids(copied.json("pending")) == [c1, c2, c3]


def test_snoozing_into_the_past_is_refused_with_exit_24_and_nothing_written(
    copied: Workspace, three: Calls
) -> None:
    (t1, c1), _, _ = three.calls
    assert_refused(
        copied,
        "snooze",
        t1,
        "--call",
        c1,
        "--until",
        "2001-01-01T00:00:00Z",
        exit_code=24,
        says=["not in the future", "give a later time"],
        as_json=True,
        error_type="InvalidTriage",
    )


def test_a_bulk_approval_asks_once_then_reports_each_call(copied: Workspace, three: Calls) -> None:
    (t1, c1), (t2, c2), (t3, c3) = three.calls
    copied.json("approve", t3, "--call", c3, "--as", "erin")
    for thread_id, call in ((t1, c1), (t2, c2)):
        copied.json("assign", thread_id, "--call", call, "--to", "bob", "--as", "bob")

    declined = _bulk(copied, "n\n", "--assigned-to", "bob")
    assert declined.returncode == 1 and "Approve these 2 calls?" in declined.stdout
    assert _ids(copied.json("pending")) == [c1, c2]  # nothing decided

    approved = _bulk(copied, "y\n", "--tool", "send_email")
    assert approved.returncode == 0, describe(approved)
    assert "2 decided" in approved.stdout
    assert copied.json("pending")["total"] == 0
    audit = copied.json("audit", t1)["audit"]
    assert [(e["event"], e["actor"]) for e in audit if e["event"] == "decided"] == [
        ("decided", "bob")
    ]


def test_a_bulk_decision_on_json_needs_yes(copied: Workspace) -> None:
    assert_refused(
        copied,
        "bulk",
        "reject",
        "--tool",
        "send_email",
        exit_code=2,
        says=["--json needs --yes"],
        as_json=True,
    )


def _bulk(workspace: Workspace, answer: str, *filters: str) -> subprocess.CompletedProcess[str]:
    """`hitl bulk approve FILTERS --as bob`, answering the confirmation with `answer`."""
    return subprocess.run(
        [str(HITL), "bulk", "approve", *filters, "--as", "bob"],
        env=workspace.env(),
        cwd=workspace.folder,
        input=answer,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_assign_snooze_and_bulk_work_against_a_running_service_as_the_token(
    tmp_path: Path,
) -> None:
    with running_service(tmp_path) as service:
        bob = make_token(service, "bob", "approver")
        env = process_environment(
            hitl_environment(service.db, service.outbox, {"HITL_URL": service.url})
        )
        env |= {"HITL_TOKEN": bob}
        env.pop("HITL_DB")  # remote mode must not need the database

        def remote(*args: str, exit_code: int = 0) -> dict[str, Any]:
            done = hitl(*args, "--json", env=env, cwd=Path("/"))
            assert done.returncode == exit_code, describe(done)
            data: dict[str, Any] = json.loads(done.stdout)
            return data

        calls = []
        for _ in range(2):
            view = remote("run", SALLY)
            calls.append((view["thread_id"], view["pending"][0]["tool_call_id"]))
        (t1, c1), (t2, c2) = calls
        assert remote("assign", t1, "--call", c1, "--to", "me")["assignee"] == "bob"
        assert _ids(remote("pending", "--assigned-to", "me")) == [c1]
        remote("snooze", t2, "--call", c2, "--until", "1h")
        assert _ids(remote("pending")) == [c1]

        report = remote("bulk", "approve", "--assigned-to", "me", "--yes")

        assert [(i["tool_call_id"], i["outcome"]) for i in report["items"]] == [(c1, "decided")]
        assert report["items"][0]["tool"] == "send_email"
        audit = remote("audit", t1)["audit"]
        assert [e["actor"] for e in audit if e["event"] in ("assigned", "decided")] == [
            "bob",
            "bob",
        ]
