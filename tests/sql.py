"""Reaching under the stores in tests (tampering, inspecting), the same way on both backends."""

import sqlite3
import threading
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
