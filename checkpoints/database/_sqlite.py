"""SQLite connections as every store and saver of ours opens them: WAL, `synchronous=FULL`,
a busy timeout, checked to be writable."""

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hitl.checkpoints.errors import DatabaseCorrupt, DatabaseError

DEFAULT_DB = Path("checkpoints/hitl.sqlite")
"""Where the database lives unless `--db` / `HITL_DB` says otherwise (relative to the cwd)."""
BUSY_TIMEOUT_SECONDS = 30.0
LOCK_WAIT_SECONDS = 120.0
"""How long a write waits in all for another process's write lock before `DatabaseBusy`."""
PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}",
)


def is_busy(error: sqlite3.OperationalError) -> bool:
    """Whether SQLite refused because another connection holds the lock (worth waiting out)."""
    text = str(error).lower()
    return "locked" in text or "busy" in text


_DAMAGED = (11, 26)
"""SQLite's primary result codes for a damaged file: SQLITE_CORRUPT, SQLITE_NOTADB."""


def is_damaged(error: sqlite3.Error) -> bool:
    """Whether SQLite refused because the file is damaged ("database disk image is
    malformed", "file is not a database"): no retry or setting will help."""
    return getattr(error, "sqlite_errorcode", 0) & 0xFF in _DAMAGED


def refused(path: Path | str, error: BaseException) -> DatabaseError:
    """What we raise for an error SQLite gave on `path`: `DatabaseCorrupt` if it is damage."""
    if isinstance(error, sqlite3.Error) and is_damaged(error):
        return DatabaseCorrupt(path, error)
    return DatabaseError(path, error)


@contextmanager
def damage_named(path: Path | str) -> Iterator[None]:
    """Inside it, SQLite's word that the file is damaged is raised as `DatabaseCorrupt`
    (a statement fails with a bare `sqlite3.DatabaseError` when it reads a broken page)."""
    try:
        yield
    except sqlite3.DatabaseError as e:
        if not is_damaged(e):
            raise
        raise DatabaseCorrupt(path, e) from e


def connect(path: Path | str) -> sqlite3.Connection:
    """A connection with the project's pragmas, checked to be writable; `DatabaseError` if not."""
    if str(path).startswith(("postgresql:", "postgres:")):  # a URL that lost its "//" to Path
        raise DatabaseError(path, ValueError("a PostgreSQL URL is not a SQLite file"))
    parent = Path(path).parent
    if parent.exists() and not parent.is_dir():
        raise DatabaseError(path, NotADirectoryError(f"{str(parent)!r} is a file, not a folder"))
    try:
        parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, check_same_thread=False, timeout=BUSY_TIMEOUT_SECONDS)
    except (OSError, sqlite3.Error) as e:
        raise refused(path, e) from e
    try:
        if conn.execute("PRAGMA page_count").fetchone()[0] == 0:
            # a new file: pruning can then give pages back without a VACUUM of the whole file
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        for pragma in PRAGMAS:
            conn.execute(pragma)
        conn.execute("BEGIN IMMEDIATE")  # fails now, not mid-run, if the file is read-only
        conn.execute("ROLLBACK")
    except sqlite3.Error as e:
        conn.close()
        raise refused(path, e) from e
    return conn
