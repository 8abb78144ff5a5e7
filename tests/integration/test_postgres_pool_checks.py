"""The PostgreSQL pool checks a connection before lending it only when it has been idle: a
connection the server dropped meanwhile is replaced, and one used moments ago costs no extra
round trip."""

import uuid
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from hitl.checkpoints.database import _db
from hitl.checkpoints.ledger import open_ledger
from tests.support.postgres import fresh_database, server_url

pytestmark = pytest.mark.postgres


def _named(url: str) -> tuple[str, str]:
    name = f"hitl_pool_{uuid.uuid4().hex[:8]}"
    return f"{url}&application_name={name}", name


def test_a_connection_the_server_dropped_while_idle_is_replaced_before_it_is_lent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with fresh_database() as plain:
        url, name = _named(plain)
        with open_ledger(url) as ledger:
            assert ledger.get("t", "c") is None
            with psycopg.connect(server_url(), autocommit=True) as admin:
                dropped = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = %s",
                    (name,),
                ).fetchall()
            assert dropped and all(ok for (ok,) in dropped)
            monkeypatch.setattr(_db, "IDLE_CHECK_SECONDS", 0.0)  # as if idle for long

            assert ledger.get("t", "c") is None  # not "server closed the connection"


def test_a_connection_used_moments_ago_is_lent_without_a_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checks: list[object] = []
    real = ConnectionPool.check_connection

    def counted(conn: psycopg.Connection[Any]) -> None:
        checks.append(conn)
        real(conn)

    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(counted))
    with fresh_database() as plain:
        url, _ = _named(plain)
        with open_ledger(url) as ledger:
            ledger.get("t", "c")
            checks.clear()
            for _ in range(5):
                ledger.get("t", "c")

    assert checks == []
