"""Reaching under the stores in tests (tampering, inspecting, fingerprinting), the same way on
both backends."""

import hashlib
import sqlite3
import threading
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg

from hitl.checkpoints.database import WRITE_LOCK, to_postgres
from hitl.checkpoints.urls import DatabaseName, is_postgres, writes_table


def execute(db: DatabaseName, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement (SQLite's dialect) on its own connection, committed; its rows."""
    if is_postgres(db):
        with psycopg.connect(str(db), autocommit=True) as conn:
            cur = conn.execute(to_postgres(sql), params or None)
            return list(cur.fetchall()) if cur.description else []
    with sqlite3.connect(Path(db)) as conn:
        return conn.execute(sql, params).fetchall()


def hold_write_lock(db: DatabaseName, seconds: float) -> None:
    """Take the stores' write lock from another connection and release it `seconds` later."""
    if is_postgres(db):
        conn = psycopg.connect(str(db), autocommit=True)
        conn.execute(f"SELECT pg_advisory_lock({WRITE_LOCK})")
        threading.Timer(seconds, conn.close).start()
        return
    other = sqlite3.connect(Path(db), check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    threading.Timer(seconds, lambda: (other.rollback(), other.close())).start()


def tables(db: DatabaseName) -> set[str]:
    """The tables of the database (PostgreSQL: of its schema)."""
    query = (
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        if is_postgres(db)
        else "SELECT name FROM sqlite_master WHERE type = 'table'"
    )
    return {str(r[0]) for r in execute(db, query)}


def checkpoint_table(db: DatabaseName, name: str) -> str:
    """LangGraph's table of that job on this backend (`writes` is `checkpoint_writes` there)."""
    return writes_table(is_postgres(db)) if name == "writes" else name


def checkpoints_on_disk(db: DatabaseName) -> int:
    """How many checkpoints another connection sees committed."""
    return int(execute(db, "SELECT COUNT(*) FROM checkpoints")[0][0])


def looking_mid_tool(db: DatabaseName, seen: list[tuple[int, str]]) -> Callable[[str, str], None]:
    """A tool's `before_run`: what another connection sees as the tool starts, into `seen`
    (the checkpoints on disk, the call's status)."""

    def look(name: str, call_id: str) -> None:
        status = execute(db, "SELECT status FROM hitl_approvals WHERE tool_call_id = ?", (call_id,))
        seen.append((checkpoints_on_disk(db), str(status[0][0])))

    return look


def database_fingerprint(db: DatabaseName) -> dict[str, tuple[int, str]] | None:
    """Row count and hash of every table (schema included), or None when there is no file."""
    if is_postgres(db):
        return _postgres_fingerprint(str(db))
    db = Path(db)
    if not db.exists():
        return None
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        tables = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name"
        ).fetchall()
        found: dict[str, tuple[int, str]] = {}
        for name, sql in tables:
            width = len(conn.execute(f'SELECT * FROM "{name}" LIMIT 0').description)
            order = ", ".join(str(i) for i in range(1, width + 1))
            rows = conn.execute(f'SELECT * FROM "{name}" ORDER BY {order}').fetchall()
            digest = hashlib.sha256(repr((sql, rows)).encode()).hexdigest()
            found[name] = (len(rows), digest)
    return found


def _postgres_fingerprint(url: str) -> dict[str, tuple[int, str]]:
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = "
            "current_schema() ORDER BY table_name"
        ).fetchall()
        found: dict[str, tuple[int, str]] = {}
        for (name,) in tables:
            columns = conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE "
                "table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
                (name,),
            ).fetchall()
            order = ", ".join(str(i) for i in range(1, len(columns) + 1))
            rows = conn.execute(f'SELECT * FROM "{name}" ORDER BY {order}').fetchall()
            digest = hashlib.sha256(repr((columns, rows)).encode()).hexdigest()
            found[name] = (len(rows), digest)
    return found


def copy_database(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite file (WAL included), through SQLite's backup API."""
    with (
        closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src,
        closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)


def damage_table(db: Path, table: str) -> None:
    """Overwrite the first page of one table of a SQLite file with bytes SQLite cannot read, as
    a failing disk would: the file opens, and its other tables still read."""
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the file itself
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        (root,) = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
    with db.open("r+b") as file:
        file.seek((root - 1) * page_size)
        file.write(b"\xff" * page_size)
