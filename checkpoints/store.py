"""One SQLite connection and the two kinds of transaction every store of ours runs.

The ledger, the run queue, the token store and the webhook outbox each own a few tables in
the checkpoint database; they share how a write waits for other writers (bounded, then
`DatabaseBusy`) and how a read sees one snapshot.
"""

import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import closing
from typing import TypeVar

from checkpoints.sqlite import LOCK_WAIT_SECONDS, DatabaseBusy, DatabaseError, is_busy

T = TypeVar("T")


class SqliteStore:
    """A store on one connection. Thread-safe: one lock around the connection.

    `SCHEMA` holds the statements that create the store's tables if missing (idempotent);
    they run in one write transaction when the store opens.
    """

    SCHEMA: tuple[str, ...] = ()

    def __init__(
        self, conn: sqlite3.Connection, *, path: str = "", lock_wait: float = LOCK_WAIT_SECONDS
    ) -> None:
        conn.isolation_level = None  # transactions are explicit: BEGIN IMMEDIATE ... COMMIT
        self._conn = conn
        self._path = path
        self._lock = threading.RLock()
        self._lock_wait = lock_wait
        if self.SCHEMA:
            self._write(lambda cur: [cur.execute(s) for s in self.SCHEMA])

    def _write(self, work: Callable[[sqlite3.Cursor], T]) -> T:
        """Run `work` in one write transaction, waiting (bounded) for other writers."""
        deadline = time.monotonic() + self._lock_wait
        delay = 0.01
        while True:
            with self._lock:
                cur = self._conn.cursor()
                try:
                    cur.execute("BEGIN IMMEDIATE")
                    try:
                        result = work(cur)
                        cur.execute("COMMIT")
                        return result
                    except BaseException:
                        cur.execute("ROLLBACK")
                        raise
                except sqlite3.OperationalError as e:
                    if not is_busy(e):
                        raise DatabaseError(self._path, e) from e
                    if time.monotonic() >= deadline:
                        raise DatabaseBusy(self._path, self._lock_wait) from e
                finally:
                    cur.close()
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def _read(self, work: Callable[[sqlite3.Cursor], T]) -> T:
        """Run `work` in one read transaction: every statement sees the same snapshot."""
        with self._lock, closing(self._conn.cursor()) as cur:
            cur.execute("BEGIN")
            try:
                return work(cur)
            finally:
                cur.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
