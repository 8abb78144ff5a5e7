"""The PostgreSQL the tests use: one fresh schema per test on the server at `HITL_TEST_PG`, and
a way to hold a transaction at a chosen point.

Without a reachable server these tests are skipped with a one-line reason, unless
`HITL_TEST_REQUIRE_PG=1` (CI sets it): then they fail, so CI cannot pass without them.
"""

import os
import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from urllib.parse import quote

import psycopg
import pytest

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/test"


def server_url() -> str:
    return os.environ.get("HITL_TEST_PG") or DEFAULT_SERVER


@cache
def _unreachable() -> str | None:
    """Why the server cannot be used (None: it can)."""
    try:
        with psycopg.connect(server_url(), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as e:
        return f"PostgreSQL at {server_url()} is not reachable ({str(e).splitlines()[0]})"
    return None


def require_postgres() -> None:
    """Skip (or, in CI, fail) the calling test when the server is not there."""
    reason = _unreachable()
    if reason is None:
        return
    if os.environ.get("HITL_TEST_REQUIRE_PG") == "1":
        pytest.fail(f"{reason}; CI needs it (HITL_TEST_REQUIRE_PG=1)", pytrace=False)
    pytest.skip(f"{reason}; set HITL_TEST_PG to run the PostgreSQL tests")


@contextmanager
def fresh_database() -> Iterator[str]:
    """A URL whose tables all land in a new, empty schema (dropped afterwards)."""
    require_postgres()
    schema = f"hitl_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in server_url() else "?"
    try:
        yield f"{server_url()}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(server_url(), autocommit=True) as conn:
            conn.execute("SET lock_timeout = '20s'")  # a connection left in a transaction
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


PAUSE_LOCK_CLASS = 7_357
"""The first key of the advisory lock `paused_at_first_delete` holds (not one of ours)."""


@contextmanager
def paused_at_first_delete(url: str, table: str) -> Iterator[Callable[[], None]]:
    """Hold every transaction at its first `DELETE FROM table` until the block ends (a statement
    trigger waits for an advisory lock held here); yields a function that returns once one is
    held there."""
    key = random.randrange(1, 1 << 31)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION hitl_test_pause() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"PERFORM pg_advisory_xact_lock({PAUSE_LOCK_CLASS}, {key}); RETURN NULL; END $$"
        )
        conn.execute(
            f"CREATE TRIGGER hitl_test_pause BEFORE DELETE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION hitl_test_pause()"
        )
        conn.execute("SELECT pg_advisory_lock(%s, %s)", (PAUSE_LOCK_CLASS, key))

        def held() -> None:
            deadline = time.monotonic() + 30
            while not conn.execute(
                "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND classid = %s AND objid = %s AND objsubid = 2",
                (PAUSE_LOCK_CLASS, key),
            ).fetchone()[0]:  # type: ignore[index]
                assert time.monotonic() < deadline, f"nothing reached a DELETE FROM {table}"
                time.sleep(0.02)

        try:
            yield held
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", (PAUSE_LOCK_CLASS, key))
