"""SQLite connections as every store and saver of ours opens them: WAL, `synchronous=FULL`,
a busy timeout, checked to be writable (or, for a caller that only reads, opened read-only)."""

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hitl.checkpoints.errors import DatabaseBusy, DatabaseCorrupt, DatabaseError, DatabaseReadOnly

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


_writers: dict[str, threading.RLock] = {}
_writers_lock = threading.Lock()


def _forget_writers() -> None:
    """In a forked child: the turns of the parent's threads, which the child does not have
    (a turn held at the fork would otherwise stay held for ever)."""
    global _writers_lock
    _writers.clear()
    _writers_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_writers)


@contextmanager
def writing(file: str, deadline: float, name: Path | str, waited: float) -> Iterator[None]:
    """Hold this process's turn to write `file` (a database's main file; "": in memory, no
    turn) until the block ends; `DatabaseBusy` (as `name`, after `waited` seconds in all) if
    it is not this thread's by `deadline` (`time.monotonic()`).

    Taken before SQLite's write lock by every store and saver: this process's writers queue
    here and each goes the moment the one before commits, where SQLite's busy handler would
    have them poll the file's lock, sleeping 1, 2, 5, 10... ms between tries (a cycle of
    `hitl serve` waited out several such sleeps). Other processes still meet SQLite's lock.
    """
    if not file:
        yield
        return
    with _writers_lock:
        turn = _writers.setdefault(file, threading.RLock())
    if not turn.acquire(timeout=max(0.0, deadline - time.monotonic())):
        raise DatabaseBusy(name, waited)
    try:
        yield
    finally:
        turn.release()


def is_busy(error: sqlite3.OperationalError) -> bool:
    """Whether SQLite refused because another connection holds the lock (worth waiting out)."""
    text = str(error).lower()
    return "locked" in text or "busy" in text


_DAMAGED = (11,)
"""SQLite's primary result code for a damaged file, SQLITE_CORRUPT (not SQLITE_NOTADB: a
file that is no database at all is more likely the wrong path than a damaged one)."""


def is_damaged(error: sqlite3.Error) -> bool:
    """Whether SQLite refused because the file is damaged ("database disk image is
    malformed"): no retry or setting will help."""
    return getattr(error, "sqlite_errorcode", 0) & 0xFF in _DAMAGED


_READ_ONLY = 8
"""SQLite's primary result code SQLITE_READONLY (a file, or its folder, this user cannot write)."""


class ReadOnlyConnection(sqlite3.Connection):
    """A connection opened read-only (`connect(..., read_only_ok=True)`): stores and the saver
    skip their schema statements on it, and any write is refused as `DatabaseReadOnly`."""


def refused(path: Path | str, error: BaseException) -> DatabaseError:
    """What we raise for an error SQLite gave on `path`: `DatabaseCorrupt` if it is damage,
    `DatabaseReadOnly` if this user may not write it."""
    code = getattr(error, "sqlite_errorcode", 0) & 0xFF if isinstance(error, sqlite3.Error) else 0
    if code in _DAMAGED:
        return DatabaseCorrupt(path, error)
    if code == _READ_ONLY:
        return DatabaseReadOnly(path, error)
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


def connect(path: Path | str, *, read_only_ok: bool = False) -> sqlite3.Connection:
    """A connection with the project's pragmas, checked to be writable; `DatabaseError` if not.

    With `read_only_ok` (the caller only reads), a file this user may not write is opened
    read-only instead: a `ReadOnlyConnection`.
    """
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
        _check_writable(conn)
    except sqlite3.Error as e:
        failure = refused(path, e)
    else:
        if os.access(path, os.W_OK):  # in WAL mode that lock is taken in the -shm file only
            return conn
        failure = DatabaseReadOnly(path, PermissionError("this user may not write the file"))
    conn.close()
    if read_only_ok and isinstance(failure, DatabaseReadOnly):
        return _connect_read_only(path)
    raise failure


def main_file(conn: sqlite3.Connection | sqlite3.Cursor) -> str:
    """The file of the connection's main database ("" for one in memory)."""
    rows = conn.execute("PRAGMA database_list").fetchall()
    return next((str(row[2] or "") for row in rows if row[1] == "main"), "")


def _check_writable(conn: sqlite3.Connection) -> None:
    """Fail now, not mid-run, if the file is read-only: take the write lock and give it back
    at once. Another process holding it (a `VACUUM`, a migration) is no answer either way,
    and not worth waiting for: opening a store must not wait behind a writer (the file's
    permission is checked after)."""
    conn.execute("PRAGMA busy_timeout=0")
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    except sqlite3.OperationalError as e:
        if not is_busy(e):
            raise
    finally:
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")


def _connect_read_only(path: Path | str) -> ReadOnlyConnection:
    """`path` opened read-only; in a folder where SQLite cannot make the WAL's shared-memory
    file, as an immutable file (read as it is: SQLite then takes no lock, so a writer who may
    write there could change it meanwhile)."""
    uri = Path(path).resolve().as_uri()
    for mode in ("mode=ro", "immutable=1"):
        conn = sqlite3.connect(
            f"{uri}?{mode}",
            uri=True,
            factory=ReadOnlyConnection,
            check_same_thread=False,
            timeout=BUSY_TIMEOUT_SECONDS,
        )
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.Error as e:
            conn.close()
            error = e
    raise refused(path, error) from error
