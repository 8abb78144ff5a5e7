"""What the ledger commits to SQLite without an fsync, and what it never does: a thread's
lease and the `applied` mark mean nothing after the machine's crash (the only one that loses
such a commit), so they skip the sync; a request, a decision, a tool's start and its result
are each synced before the next step."""

from pathlib import Path

import pytest

from hitl.checkpoints.ledger import open_ledger
from tests.support.ledger import request_call

pytestmark = pytest.mark.sqlite_only  # SQLite's sync setting (PostgreSQL syncs every commit)


def transactions_by_sync(statements: list[str]) -> list[tuple[str, str]]:
    """Each write transaction's first change, with the `synchronous` mode it committed in."""
    mode, found, first = "FULL", [], None
    for statement in statements:
        text = " ".join(statement.split())
        if text.startswith("PRAGMA synchronous="):
            mode = text.split("=", 1)[1]
        elif text == "BEGIN IMMEDIATE":
            first = ""
        elif first == "" and text.split(" ", 1)[0] in ("INSERT", "UPDATE", "DELETE"):
            first = text
        elif text == "COMMIT" and first is not None:
            found.append((first[:40], mode))
            first = None
    return found


def test_only_leases_and_applied_marks_commit_without_a_sync(db: Path) -> None:
    with open_ledger(db) as ledger, ledger.traced() as statements:
        with ledger.lease("t"):
            request_call(ledger, "t", "a")
        ledger.decide("t", {"a": {"type": "approve"}}, actor="bob")
        with ledger.lease("t"):
            ledger.begin("t", [("a", {"recipient": "a@x.org"})])  # the start, then the result
            ledger.finish("t", "a", ok=True, result="sent")
            ledger.mark_applied("t", ["a"])

    committed = transactions_by_sync(statements)

    unsynced = [first for first, mode in committed if mode == "NORMAL"]
    synced = [first for first, mode in committed if mode == "FULL"]
    assert all("hitl_leases" in f or "SET applied = 1" in f for f in unsynced), committed
    assert len(unsynced) == 5  # two leases taken and released, one mark
    assert [f.split(" ")[0] for f in synced] == ["INSERT", "UPDATE", "UPDATE", "UPDATE"], committed


def test_an_applied_mark_made_under_the_lease_commits_with_its_release(db: Path) -> None:
    with open_ledger(db) as ledger:
        request_call(ledger, "t", "a")
        ledger.decide("t", {"a": {"type": "approve"}}, actor="bob")
        with ledger.traced() as statements, ledger.lease("t"):
            ledger.mark_applied("t", ["a"], with_release=True)
            assert ledger.unapplied_calls("t") == {"a"}  # not yet: at the release
        assert ledger.unapplied_calls("t") == set()
        ledger.mark_applied("t", ["a"], with_release=True)  # no lease held: nothing to do

    committed = transactions_by_sync(statements)
    assert len(committed) == 2, committed  # the lease taken; the mark with the release
    assert committed[1][0].startswith("UPDATE hitl_approvals SET applied = 1"), committed
    assert all(mode == "NORMAL" for _, mode in committed)


def test_an_applied_mark_without_a_lease_held_is_written_at_once(db: Path) -> None:
    with open_ledger(db) as ledger:
        request_call(ledger, "t", "a")
        ledger.decide("t", {"a": {"type": "approve"}}, actor="bob")
        ledger.mark_applied("t", ["a"], with_release=True)
        assert ledger.unapplied_calls("t") == set()
