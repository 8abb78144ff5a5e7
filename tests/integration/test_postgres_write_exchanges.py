"""A PostgreSQL write sends the statements it leaves waiting (`execute_later`: results nobody
reads) with its next statement, or with its COMMIT: in order, and all or nothing."""

import contextlib
import time

import psycopg
import pytest

from hitl.checkpoints.database import Cursor, execute_later
from hitl.checkpoints.errors import SwallowedFailure
from hitl.checkpoints.ledger import Ledger, open_ledger
from tests.support.postgres import fresh_database
from tests.support.sql import hold_write_lock

INSERT_LEASE = "INSERT INTO hitl_leases (thread_id, holder, expires_at) VALUES (?, 'h', 1.0)"


def _leased(ledger: Ledger) -> list[str]:
    rows = ledger._read(lambda cur: cur.execute("SELECT thread_id FROM hitl_leases").fetchall())
    return sorted(str(row[0]) for row in rows)


@pytest.mark.postgres
def test_a_statement_left_waiting_runs_before_the_next_one_and_commits_with_the_write() -> None:
    def insert_then_count(cur: Cursor) -> object:
        execute_later(cur, INSERT_LEASE, ("a",))
        return cur.execute("SELECT COUNT(*) FROM hitl_leases").fetchone()

    with fresh_database() as url, open_ledger(url) as ledger:
        ledger.migrate()
        assert ledger._write(insert_then_count) == (1,)  # it ran first: the count sees it
        ledger._write(lambda cur: execute_later(cur, INSERT_LEASE, ("b",)))  # with the COMMIT
        assert _leased(ledger) == ["a", "b"]


@pytest.mark.postgres
def test_a_statement_left_waiting_that_fails_fails_its_write_which_leaves_nothing() -> None:
    def fails_at_next_statement(cur: Cursor) -> None:
        execute_later(cur, INSERT_LEASE, ("c",))
        execute_later(cur, INSERT_LEASE, ("a",))  # taken: a duplicate key
        cur.execute("SELECT 1")

    def fails_at_commit(cur: Cursor) -> None:
        execute_later(cur, INSERT_LEASE, ("d",))
        execute_later(cur, INSERT_LEASE, ("a",))

    with fresh_database() as url, open_ledger(url) as ledger:
        ledger.migrate()
        ledger._write(lambda cur: execute_later(cur, INSERT_LEASE, ("a",)))
        for work in (fails_at_next_statement, fails_at_commit):
            with pytest.raises(psycopg.errors.UniqueViolation):
                ledger._write(work)
        assert _leased(ledger) == ["a"]  # nothing of either write
        ledger._write(lambda cur: execute_later(cur, INSERT_LEASE, ("e",)))  # and writes go on
        assert _leased(ledger) == ["a", "e"]


@pytest.mark.postgres
def test_a_write_whose_failed_statement_was_swallowed_is_not_reported_committed() -> None:
    """The server answers the COMMIT of a failed transaction with a rollback, not an error."""

    def swallows_the_failure(cur: Cursor) -> None:
        execute_later(cur, INSERT_LEASE, ("b",))
        execute_later(cur, INSERT_LEASE, ("a",))  # taken: a duplicate key
        with contextlib.suppress(psycopg.errors.UniqueViolation):
            cur.execute("SELECT 1")  # where the waiting statements' error is raised

    with fresh_database() as url, open_ledger(url) as ledger:
        ledger.migrate()
        ledger._write(lambda cur: execute_later(cur, INSERT_LEASE, ("a",)))
        with pytest.raises(SwallowedFailure):
            ledger._write(swallows_the_failure)
        assert _leased(ledger) == ["a"]


@pytest.mark.postgres
def test_a_write_runs_once_it_holds_the_write_lock_so_its_clock_is_read_under_it() -> None:
    """A lease's expiry, a request's time, a decision's deadline check: each `now` a write
    reads is taken with the lock held, not before a long wait for it."""
    started: list[float] = []

    def note_the_time(cur: Cursor) -> None:
        started.append(time.monotonic())
        cur.execute("SELECT 1")

    with fresh_database() as url, open_ledger(url) as ledger:
        ledger.migrate()
        hold_write_lock(url, 1.0)
        asked = time.monotonic()
        ledger._write(note_the_time)
    assert started[0] - asked > 0.5  # it waited for the lock before it began
