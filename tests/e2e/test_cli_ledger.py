"""The approvals ledger through the `hitl` CLI: who asked and who decided, the inbox, separation
of duties, the audit chain, reconcile and sweep — real processes on one SQLite file each."""

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import (
    Workspace,
    assert_refused,
    calls_by_recipient,
    describe,
    error_message,
    read_only_copy,
)
from tests.support.prompts import PAIR, SALLY
from tests.support.sql import damage_table


@dataclass(frozen=True)
class Inbox:
    """Four threads asked for by four people, built once, copied for each test."""

    db: Path
    alice: str
    """SALLY, started with `--as alice`; one call pending."""
    alice_call: str
    bob: str
    """PAIR, started with `--as bob`; two calls pending."""
    bob_calls: tuple[str, str]
    carol: str
    """SALLY, started with `HITL_ACTOR=carol`; one call pending."""
    carol_call: str
    decided: str
    """SALLY, started by dave (`--as`, over `HITL_ACTOR=mallory`), approved by erin
    (`HITL_ACTOR`) with `DECIDED_COMMENT`; the email was sent."""
    decided_call: str


DECIDED_COMMENT = "dave checked the address with sally"
SELF_REVIEW_RULE = 'ToolRule(approvers=["alice", "carol"], allow_self_approval=False)'
"""Only alice or carol may approve send_email, and never for a run they started themselves."""


def only_call(view: dict[str, Any]) -> str:
    [call] = view["pending"]
    return str(call["tool_call_id"])


@pytest.fixture(scope="module")
def inbox(tmp_path_factory: pytest.TempPathFactory) -> Inbox:
    # Every CLI start costs about a second: the tests share these threads, each on a copy.
    workspace = Workspace(tmp_path_factory.mktemp("inbox"))
    alice = workspace.json("run", SALLY, "--as", "alice")
    bob = workspace.json("run", PAIR, "--as", "bob")
    carol = workspace.json("run", SALLY, extra_env={"HITL_ACTOR": "carol"})
    dave = workspace.json("run", SALLY, "--as", "dave", extra_env={"HITL_ACTOR": "mallory"})
    decided = workspace.json(
        "approve",
        dave["thread_id"],
        "--comment",
        DECIDED_COMMENT,
        extra_env={"HITL_ACTOR": "erin"},
    )
    assert decided["status"] == "done"
    bob_first, bob_second = (p["tool_call_id"] for p in bob["pending"])
    return Inbox(
        db=workspace.db,
        alice=alice["thread_id"],
        alice_call=only_call(alice),
        bob=bob["thread_id"],
        bob_calls=(bob_first, bob_second),
        carol=carol["thread_id"],
        carol_call=only_call(carol),
        decided=dave["thread_id"],
        decided_call=only_call(dave),
    )


@pytest.fixture
def copied(tmp_path: Path, inbox: Inbox) -> Workspace:
    """This test's own copy of the inbox database."""
    return Workspace.copy_of(inbox.db, tmp_path)


def listed(page: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(thread_id, tool_call_id, requester) of each approval on a `hitl pending` page."""
    return [(p["thread_id"], p["tool_call_id"], p["requester"]) for p in page["pending"]]


def paging(page: dict[str, Any]) -> tuple[int, int, int]:
    return page["total"], page["offset"], page["limit"]


# who asked, who decided


def test_the_audit_trail_names_the_requester_and_the_decider_with_their_comment(
    copied: Workspace, inbox: Inbox
) -> None:
    trail = copied.json("audit", inbox.decided)

    assert trail["thread_id"] == inbox.decided
    entries = trail["audit"]
    assert [e["event"] for e in entries] == [
        "requested",
        "decided",
        "tool_started",
        "tool_finished",
    ]
    assert {e["tool_call_id"] for e in entries} == {inbox.decided_call}
    requested, decided = entries[0], entries[1]
    assert requested["actor"] == "dave"  # --as wins over HITL_ACTOR
    assert decided["actor"] == "erin"
    assert decided["detail"]["decision"] == "approve"
    assert decided["detail"]["comment"] == DECIDED_COMMENT
    assert decided["detail"]["approved_args_hash"] == requested["detail"]["args_hash"]


def test_the_human_audit_trail_names_the_tool_runner_as_a_process_not_by_its_token(
    copied: Workspace, inbox: Inbox
) -> None:
    entries = copied.json("audit", inbox.decided)["audit"]
    token = next(e["actor"] for e in entries if e["event"] == "tool_started")
    host, pid = token.split("~")[0], token.split(":")[1]

    result = copied.run("audit", inbox.decided)

    assert result.returncode == 0, describe(result)
    started = next(line for line in result.stdout.splitlines() if "tool_started" in line)
    assert f"by tool runner (process {pid} on {host})" in started, started
    assert token not in result.stdout


def test_pending_shows_who_asked_for_each_call_and_pages_through_them(
    copied: Workspace, inbox: Inbox
) -> None:
    everything = copied.json("pending")

    assert paging(everything) == (4, 0, 50)
    assert [thread for thread, _, _ in listed(everything)] == [
        inbox.alice,
        inbox.bob,
        inbox.bob,
        inbox.carol,
    ]  # oldest first; the decided thread waits for nobody
    assert set(listed(everything)) == {
        (inbox.alice, inbox.alice_call, "alice"),
        (inbox.bob, inbox.bob_calls[0], "bob"),
        (inbox.bob, inbox.bob_calls[1], "bob"),
        (inbox.carol, inbox.carol_call, "carol"),
    }

    second = copied.json("pending", "--limit", "1", "--offset", "1")

    assert paging(second) == (4, 1, 1)
    assert second["pending"] == everything["pending"][1:2]


def test_pending_filters_by_requester_thread_and_age(copied: Workspace, inbox: Inbox) -> None:
    by_bob = copied.json("pending", "--requester", "bob")
    assert paging(by_bob) == (2, 0, 50)
    assert {call for _, call, _ in listed(by_bob)} == set(inbox.bob_calls)

    of_carol = copied.json("pending", "--thread", inbox.carol)
    assert listed(of_carol) == [(inbox.carol, inbox.carol_call, "carol")]
    assert paging(of_carol)[0] == 1

    waiting_an_hour = copied.json("pending", "--older-than", "1h")
    assert (waiting_an_hour["pending"], waiting_an_hour["total"]) == ([], 0)


def test_pending_sorts_by_thread_id_descending(copied: Workspace, inbox: Inbox) -> None:
    page = copied.json("pending", "--sort", "thread_id", "--desc")

    threads = [thread for thread, _, _ in listed(page)]
    assert threads == sorted([inbox.alice, inbox.bob, inbox.bob, inbox.carol], reverse=True)
    assert page["total"] == 4


def test_an_age_pending_cannot_read_is_a_usage_error(copied: Workspace) -> None:
    assert_refused(
        copied,
        "pending",
        "--older-than",
        "xyz",
        exit_code=2,
        says=["Invalid value for --older-than", "'xyz' is not a duration", "30m, 2h, 1d"],
        as_json=False,
    )


# one decision per call, and only by someone the policy allows


def test_a_second_decision_by_someone_else_is_refused_naming_the_first_decider(
    copied: Workspace, inbox: Inbox
) -> None:
    assert_refused(
        copied,
        "reject",
        inbox.decided,
        "--call",
        inbox.decided_call,
        "--as",
        "frank",
        exit_code=6,
        error_type="AlreadyDecided",
        says=[
            inbox.decided_call,
            "already decided by erin",
            "(approve)",
            "it is now succeeded",
            "nothing was run again",
            f"hitl audit {inbox.decided}",
        ],
        as_json=True,
    )

    rejected = copied.json("reject", inbox.alice, "--as", "erin", "--reason", "not today")
    assert rejected["status"] == "done"

    assert_refused(
        copied,
        "approve",
        inbox.alice,
        "--call",
        inbox.alice_call,
        "--as",
        "frank",
        exit_code=6,
        says=["already decided by erin", "(reject: not today)", "it is now rejected"],
        as_json=False,
    )
    assert copied.sent() == []


def test_only_a_named_approver_who_did_not_start_the_run_may_approve(
    workspace: Workspace,
) -> None:
    started = workspace.json(
        "run", PAIR, "--as", "alice", extra_env=workspace.write_policy(SELF_REVIEW_RULE)
    )
    thread = started["thread_id"]
    to = calls_by_recipient(started)
    to_bob, to_carol = to["bob@example.com"], to["carol@example.org"]
    # the rule was saved with the calls: the deciders below have no HITL_POLICY at all (and
    # apply decisions under the recorded rule: the default re-asks them, see test_policy_change)
    keep = {"HITL_ON_POLICY_CHANGE": "keep"}

    assert_refused(
        workspace,
        "approve",
        thread,
        "--as",
        "alice",
        exit_code=12,
        error_type="NotPermitted",
        says=["'alice' asked for this call", "separation of duties", "another person must"],
        as_json=True,
    )
    assert_refused(
        workspace,
        "approve",
        thread,
        "--call",
        to_bob,
        "--as",
        "mallory",
        exit_code=12,
        says=["'mallory' may not approve calls of send_email", "only alice, carol may"],
        as_json=False,
    )

    approved = workspace.json("approve", thread, "--call", to_bob, "--as", "carol", extra_env=keep)
    assert approved["status"] == "interrupted"
    assert [p["tool_call_id"] for p in approved["pending"]] == [to_carol]

    # the requester may still say no to their own agent
    done = workspace.json("reject", thread, "--call", to_carol, "--as", "alice", extra_env=keep)
    assert done["status"] == "done"
    assert workspace.sent_ids() == [to_bob]


def test_a_call_id_of_another_thread_is_refused_with_exit_5_naming_that_thread(
    copied: Workspace, inbox: Inbox
) -> None:
    assert_refused(
        copied,
        "approve",
        inbox.alice,
        "--call",
        inbox.bob_calls[0],
        exit_code=5,
        error_type="UnknownToolCall",
        says=[
            f"{inbox.bob_calls[0]!r} belongs to thread {inbox.bob}, not {inbox.alice!r}",
            f"pending calls of {inbox.alice!r}: {inbox.alice_call}",
        ],
        as_json=True,
    )


# the audit chain


def test_audit_verify_passes_on_an_untouched_database(copied: Workspace, inbox: Inbox) -> None:
    report = copied.json("audit", "--verify")

    with closing(sqlite3.connect(copied.db)) as conn:
        entries = conn.execute("SELECT COUNT(*) FROM hitl_audit").fetchone()[0]
    assert {k: report[k] for k in ("ok", "threads", "entries", "broken")} == {
        "ok": True,
        "threads": 4,
        "entries": entries,
        "broken": [],
    }
    assert report["heads"].keys() == {inbox.alice, inbox.bob, inbox.carol, inbox.decided}


def test_audit_verify_prints_each_chains_head_hash_for_people_too(
    copied: Workspace, inbox: Inbox
) -> None:
    """The heads are what an operator keeps elsewhere, to detect a truncated chain."""
    heads = copied.json("audit", "--verify")["heads"]

    result = copied.run("audit", "--verify")

    assert result.returncode == 0, describe(result)
    printed = [line.split() for line in result.stdout.splitlines() if line.startswith("head ")]
    assert printed == [["head", "thread", t, heads[t]] for t in sorted(heads)], describe(result)


def test_the_args_hash_pending_and_show_print_binds_a_decision_as_printed(
    copied: Workspace, inbox: Inbox
) -> None:
    """`--if-args-hash` takes the `args_hash` people read in `pending` and `show`."""
    args_hash = copied.json("show", inbox.alice)["pending"][0]["args_hash"]
    for command in (("pending", "--thread", inbox.alice), ("show", inbox.alice)):
        result = copied.run(*command)
        assert f"args_hash {args_hash}" in result.stdout, describe(result)
    printed = (
        copied.run("pending", "--thread", inbox.alice).stdout.split("args_hash ")[1].split()[0]
    )

    decided = copied.json(
        "approve", inbox.alice, "--call", inbox.alice_call, "--if-args-hash", printed
    )

    assert decided["status"] == "done"


def tamper(db: Path, sql: str, thread_id: str) -> None:
    """Change the audit trail behind the program's back, as someone with the file could."""
    with closing(sqlite3.connect(db)) as conn, conn:
        assert conn.execute(sql, (thread_id,)).rowcount == 1


ALTER_THE_DECISION = (
    'UPDATE hitl_audit SET detail = \'{"comment":"the CEO said yes","decision":"approve"}\' '
    "WHERE thread_id = ? AND seq = 2"
)
DELETE_THE_DECISION = "DELETE FROM hitl_audit WHERE thread_id = ? AND seq = 2"


def test_audit_verify_exits_15_naming_the_altered_entry(copied: Workspace, inbox: Inbox) -> None:
    tamper(copied.db, ALTER_THE_DECISION, inbox.decided)

    report = copied.json("audit", "--verify", exit_code=15)

    assert report["ok"] is False
    assert report["broken"] == [
        {"thread_id": inbox.decided, "seq": 2, "problem": "was altered (its hash does not match)"}
    ]


def test_audit_verify_exits_15_naming_the_deleted_entry(copied: Workspace, inbox: Inbox) -> None:
    tamper(copied.db, DELETE_THE_DECISION, inbox.decided)

    result = copied.run("audit", "--verify")

    assert result.returncode == 15, describe(result)
    assert f"BROKEN  thread {inbox.decided}  entry 2: entry 2 is missing" in result.stdout
    assert "4 threads" in result.stdout
    assert "1 broken" in result.stdout


def test_audit_verify_exits_15_when_an_entry_no_longer_holds_json(
    copied: Workspace, inbox: Inbox
) -> None:
    tamper(
        copied.db,
        "UPDATE hitl_audit SET detail = 'approved' WHERE thread_id = ? AND seq = 2",
        inbox.decided,
    )

    report = copied.json("audit", "--verify", exit_code=15)

    assert [(b["thread_id"], b["seq"]) for b in report["broken"]] == [(inbox.decided, 2)]


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "human"])
@pytest.mark.parametrize("command", ["audit --verify", "approve"])
def test_a_damaged_table_is_named_as_damage_with_exit_22_and_what_to_do(
    copied: Workspace, inbox: Inbox, command: str, as_json: bool
) -> None:
    damage_table(copied.db, "hitl_audit")
    args = command.split() if command != "approve" else ["approve", inbox.alice, "--as", "bob"]

    result = copied.run(*args, *(["--json"] if as_json else []))

    message = error_message(result, exit_code=22, as_json=as_json)
    assert "Traceback" not in result.stderr
    assert "is damaged" in message and "restore it from a backup" in message


@pytest.mark.parametrize("folder", ["read-only folder", "writable folder"])
def test_a_read_only_database_is_read_and_verified_and_a_decision_on_it_says_it_is_read_only(
    inbox: Inbox, folder: str
) -> None:
    with read_only_copy(inbox.db, folder_writable=folder == "writable folder") as backup:
        listed = {p["thread_id"] for p in backup.json("pending")["pending"]}
        assert listed == {inbox.alice, inbox.bob, inbox.carol}
        assert [p["tool_call_id"] for p in backup.json("show", inbox.alice)["pending"]] == [
            inbox.alice_call
        ]
        assert backup.json("audit", "--verify")["ok"] is True

        refused = backup.json("approve", inbox.alice, "--as", "bob", exit_code=10)

        assert "is read-only" in refused["error"]["message"]


def test_a_read_only_database_whose_indexes_predate_an_upgrade_is_still_read(
    inbox: Inbox, tmp_path: Path
) -> None:
    """A program that may not write the file cannot swap an index (`INDEX_UPGRADES`): it
    reads the file as it is."""
    older = tmp_path / "older.sqlite"
    with closing(sqlite3.connect(inbox.db)) as source, closing(sqlite3.connect(older)) as copy:
        source.backup(copy)
        copy.execute("DROP INDEX hitl_approvals_decided_unapplied")
        copy.execute(
            "CREATE INDEX hitl_approvals_unapplied ON hitl_approvals (decided_at) WHERE applied = 0"
        )
        copy.commit()
    with read_only_copy(older) as backup:
        listed = {p["thread_id"] for p in backup.json("pending")["pending"]}
    assert listed == {inbox.alice, inbox.bob, inbox.carol}


# reconcile and sweep


def test_reconciling_a_call_whose_outcome_is_known_is_refused_with_exit_14(
    copied: Workspace, inbox: Inbox
) -> None:
    assert_refused(
        copied,
        "reconcile",
        inbox.decided,
        "--call",
        inbox.decided_call,
        "--retry",
        exit_code=14,
        error_type="NotReconcilable",
        says=[inbox.decided_call, "is succeeded, not outcome_unknown", "hitl pending"],
        as_json=True,
    )


def test_reconciling_an_unknown_thread_is_refused_with_exit_3(copied: Workspace) -> None:
    assert_refused(
        copied,
        "reconcile",
        "no-such-thread",
        "--call",
        "call_nope",
        "--skip",
        exit_code=3,
        says=["no thread 'no-such-thread'"],
        as_json=False,
    )


def test_reconcile_without_an_action_is_a_usage_error(copied: Workspace, inbox: Inbox) -> None:
    assert_refused(
        copied,
        "reconcile",
        inbox.alice,
        "--call",
        inbox.alice_call,
        exit_code=2,
        says=["choose one of --retry, --mark-done or --skip"],
        as_json=False,
    )


def test_a_sweep_with_nothing_overdue_settles_nothing_and_changes_nothing(
    copied: Workspace,
) -> None:
    before = copied.state()

    report = copied.json("sweep")

    assert report == {
        "expired": [],
        "orphaned": [],
        "resumed": [],
        "busy": [],
        "failed": {},
        "queued": [],
        "reminded": [],
        "escalated": [],
    }
    assert copied.state() == before
