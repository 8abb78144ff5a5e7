"""SQLite connections as every store and saver of ours opens them: WAL, `synchronous=FULL`,
a busy timeout, checked to be writable."""

import sqlite3
from pathlib import Path

from hitl.checkpoints.errors import DatabaseError

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
        raise DatabaseError(path, e) from e
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
        raise DatabaseError(path, e) from e
    return conn
