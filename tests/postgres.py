"""The PostgreSQL the tests use: one fresh schema per test on the server at `HITL_TEST_PG`.

Without a reachable server these tests are skipped with a one-line reason, unless
`HITL_TEST_REQUIRE_PG=1` (CI sets it): then they fail, so CI cannot pass without them.
"""

import os
import uuid
from collections.abc import Iterator
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
