"""What the ledger commits to SQLite without an fsync, and what it never does: the `applied`
mark means nothing after the machine's crash (the only one that loses such a commit), so it
skips the sync; a thread's lease is a file lock and commits nothing; a request, a decision, a
tool's start and its result are each synced before the next step."""

import sqlite3
from pathlib import Path

import pytest

from hitl.checkpoints.ledger import lease_holder, open_ledger
from hitl.checkpoints.ledger._leases import lease_file
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


def test_leases_commit_nothing_and_applied_marks_commit_without_a_sync(db: Path) -> None:
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
    assert len(unsynced) == 1 and unsynced[0].startswith("UPDATE hitl_approvals SET applied = 1")
    assert [f.split(" ")[0] for f in synced] == ["INSERT", "UPDATE", "UPDATE", "UPDATE"], committed
    assert not any("hitl_leases" in s for s in statements)


def test_a_lease_on_sqlite_is_a_locked_file_that_names_its_holder(db: Path) -> None:
    with open_ledger(db) as ledger:
        with ledger.lease("t") as holder:
            path = Path(lease_file(str(db), "t"))
            assert path.read_text() == holder
            with sqlite3.connect(db) as conn:
                assert lease_holder(conn.cursor(), "t") == holder
                assert conn.execute("SELECT COUNT(*) FROM hitl_leases").fetchone() == (0,)
        assert not path.exists()  # released: removed
        with sqlite3.connect(db) as conn:
            assert lease_holder(conn.cursor(), "t") is None


def test_a_lease_file_left_by_a_dead_holder_is_taken_over(db: Path) -> None:
    path = Path(lease_file(str(db), "t"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("host~00000000:1:deadbeef:deadbeef")  # nobody holds its lock
    with sqlite3.connect(db) as conn:
        assert lease_holder(conn.cursor(), "t") is None
    with open_ledger(db) as ledger, ledger.lease("t", wait=0.0) as holder:
        assert path.read_text() == holder


def test_an_applied_mark_made_under_the_lease_commits_with_its_release(db: Path) -> None:
    with open_ledger(db) as ledger:
        request_call(ledger, "t", "a")
        ledger.decide("t", {"a": {"type": "approve"}}, actor="bob")
        with ledger.traced() as statements, ledger.lease("t"):
            ledger.mark_applied("t", ["a"], at="release")
            assert ledger.unapplied_calls("t") == {"a"}  # not yet: at the release
        assert ledger.unapplied_calls("t") == set()
        ledger.mark_applied("t", ["a"], at="release")  # no lease held: nothing to do

    committed = transactions_by_sync(statements)
    assert len(committed) == 1, committed  # the mark, at the release (the lease: no commit)
    assert committed[0][0].startswith("UPDATE hitl_approvals SET applied = 1"), committed
    assert committed[0][1] == "NORMAL"


def test_an_applied_mark_without_a_lease_held_is_written_at_once(db: Path) -> None:
    with open_ledger(db) as ledger:
        request_call(ledger, "t", "a")
        ledger.decide("t", {"a": {"type": "approve"}}, actor="bob")
        ledger.mark_applied("t", ["a"], at="release")
        assert ledger.unapplied_calls("t") == set()
