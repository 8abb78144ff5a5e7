"""One database connection and the two kinds of transaction every store of ours runs.

The ledger, the run queue, the token store and the webhook outbox each own a few tables in
the checkpoint database; they share how a write waits for other writers (bounded, then
`DatabaseBusy`) and how a read sees one snapshot.

Writes are serialized on both backends: SQLite has one writer (`BEGIN IMMEDIATE`; this
process's writers, the saver's too, take turns before it: `writing`), and on PostgreSQL every
store write first takes one transaction-scoped advisory lock. So each
write sees every write committed before it (a compare-and-set is a plain read, then an
update), and the audit rows' ids are allocated in commit order (the webhook outbox and the
inbox streams follow them as a cursor that only grows). Store writes are short; the
checkpoint saver, which writes the large rows, does not take the lock.

Reads never wait for a writer. In WAL mode SQLite lets readers read while another
connection, or another process, holds the write lock (a `VACUUM`, a migration); so a store
reads on connections of its own, never on the one a write may be waiting on (a write
waits inside SQLite for up to the busy timeout, holding the store's lock), and opening a
store takes the write lock only when a table is missing.
"""

import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, closing, contextmanager
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from hitl.checkpoints.database._db import (
    POOL_WAIT_SECONDS,
    Cursor,
    PgConnection,
    PgCursor,
    PostgresOnly,
    rolled_back_on_failure,
    scalar,
)
from hitl.checkpoints.database._sqlite import (
    BUSY_TIMEOUT_SECONDS,
    LOCK_WAIT_SECONDS,
    ReadOnlyConnection,
    connect,
    damage_named,
    is_busy,
    main_file,
    refused,
    writing,
)
from hitl.checkpoints.errors import DatabaseBusy, DatabaseError, PoolExhausted
from hitl.checkpoints.urls import DatabaseName, as_postgres, is_postgres

if TYPE_CHECKING:
    import psycopg

T = TypeVar("T")
_REPEATABLE_READ = 3  # psycopg.IsolationLevel.REPEATABLE_READ, without importing psycopg
LOCK_CLASS = 1_212_765_260
"""The first key of our advisory locks (b"HITL" as an int), so they cannot collide with
another application's one-key locks on the same database."""
WRITE_LOCK = f"{LOCK_CLASS}, hashtext('write:' || current_schema())"
"""The advisory lock key of store writes: one per schema, so databases (and test schemas)
sharing a server do not wait for each other."""
IDLE_READERS = 4
"""Read connections a SQLite store keeps open between reads (more are opened while more
threads read at once, and closed after)."""
_CREATES = re.compile(r"^\s*CREATE\s+(?:UNIQUE\s+)?(TABLE|INDEX)\s+IF\s+NOT\s+EXISTS\s+(\w+)", re.I)


def store_connection(
    db: DatabaseName, *, read_only_ok: bool = False
) -> sqlite3.Connection | PgConnection:
    """A connection for a store on `db` (a SQLite file, or a PostgreSQL URL on a pool of its
    `pool_size`); `DatabaseError` if it cannot be opened. `read_only_ok`: see `connect`."""
    if not is_postgres(db):
        return connect(db, read_only_ok=read_only_ok)
    import psycopg
    from psycopg_pool import PoolTimeout

    try:
        return PgConnection(as_postgres(db))
    except (psycopg.Error, PoolTimeout) as e:
        raise DatabaseError(db, e) from e


class _Lock(Protocol):
    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...

    def release(self) -> None: ...


class Carrier(Protocol):
    """Another writer on the same SQLite file that buffers rows until its next commit (the
    checkpoint saver): a store's write can commit them with its own (`Store.carry`)."""

    @property
    def lock(self) -> "_Lock":
        """Held while its buffer is taken, and until the write that took it ends."""
        ...

    def has_buffered(self) -> bool:
        """Whether rows wait (read without the lock: a hint, checked again under it)."""
        ...

    def has_queued_writes(self) -> bool:
        """Whether a store's write waits among them (`write_later`; a hint, as above)."""
        ...

    def write_buffered(self, cur: sqlite3.Cursor) -> list[Any]:
        """Write the buffered rows on `cur` and take them out of the buffer; what was taken."""
        ...

    def give_back(self, taken: list[Any]) -> None:
        """Put rows taken by a write that did not commit back at the buffer's front."""
        ...

    def write_later(self, work: Callable[[sqlite3.Cursor], object]) -> None:
        """Buffer a store's whole write, `work(cur)`, to run in the carrier's next commit."""
        ...


class Store:
    """A store on one connection (SQLite: one lock around it; PostgreSQL: the pool's). Thread-safe.

    `SCHEMA` holds the statements that create the store's tables if missing (idempotent);
    they run in one write transaction when the store opens (not on a read-only connection).
    """

    SCHEMA: tuple[str, ...] = ()

    def __init__(
        self,
        conn: sqlite3.Connection | PgConnection,
        *,
        path: str = "",
        lock_wait: float = LOCK_WAIT_SECONDS,
    ) -> None:
        self._file = ""  # SQLite: the file reads open their own connections on ("": none)
        self._busy_ms = max(1, int(min(lock_wait, BUSY_TIMEOUT_SECONDS) * 1000))
        if isinstance(conn, sqlite3.Connection):
            conn.isolation_level = None  # transactions are explicit: BEGIN IMMEDIATE ... COMMIT
            if lock_wait < BUSY_TIMEOUT_SECONDS:  # one statement never waits past the whole write
                conn.execute(f"PRAGMA busy_timeout={self._busy_ms}")
            if not isinstance(conn, ReadOnlyConnection):  # (no writer here to keep clear of)
                self._file = main_file(conn)
        self._conn = conn
        self._path = path
        self._lock = threading.RLock()
        self._lock_wait = lock_wait
        self._writing: int | None = None  # the thread inside `_write`, if any
        self._readers: list[sqlite3.Connection] = []  # idle read connections
        self._readers_lock = threading.Lock()  # held only to take one or give it back
        self._trace: Callable[[str], object] | None = None
        self._carrier: Carrier | None = None
        if self.SCHEMA and not self.read_only and not self._read(self._schema_in_place):
            self._write(lambda cur: [cur.execute(s) for s in self.SCHEMA])

    def _schema_in_place(self, cur: Cursor) -> bool:
        """Whether `SCHEMA` would change nothing (checked by a read: then opening the store
        does not wait for another process's write lock)."""
        return schema_in_place(cur, self.SCHEMA)

    @property
    def on_postgres(self) -> bool:
        return isinstance(self._conn, PgConnection)

    @property
    def read_only(self) -> bool:
        """Whether the store was opened read-only (a file this user may not write)."""
        return isinstance(self._conn, ReadOnlyConnection)

    @contextmanager
    def traced(self) -> Iterator[list[str]]:
        """The SQL statements this store runs meanwhile, as SQLite expands them: what an
        operation costs, and the text to ask `EXPLAIN QUERY PLAN` about.

        SQLite only (`NotImplementedError` on PostgreSQL: its server logs statements).
        """
        if isinstance(self._conn, PgConnection):
            raise NotImplementedError("tracing is SQLite's; on PostgreSQL set log_statement")
        seen: list[str] = []
        self._conn.set_trace_callback(seen.append)
        self._trace = seen.append  # and on the read connections, as each is lent
        try:
            yield seen
        finally:
            self._trace = None
            self._conn.set_trace_callback(None)

    def carry(self, carrier: Carrier) -> None:
        """Commit `carrier`'s buffered rows in this store's writes that ask for them
        (`_write(carry=True)`, or that must see a write of its own queued among them; SQLite,
        the same file): one commit, and one sync, where there were two. The carried rows are written
        first, so the store's own work sees them; if that work fails they still commit (they
        belong to someone else), and if they cannot be written the work goes on without them
        (they stay buffered, and their own writer meets the error)."""
        if not isinstance(self._conn, PgConnection):
            self._carrier = carrier

    def _write(
        self,
        work: Callable[[Cursor], T],
        *,
        durable: bool = True,
        carry: bool = False,
    ) -> T:
        """Run `work` in one write transaction, waiting (bounded) for other writers.

        `carry`: the carrier's buffered rows (`carry`) commit in it too: for the write that
        journals a tool's start, whose commit must also hold the steps that lead to the tool.
        Another write takes them only while one of this store's own writes waits among them
        (`write_later`: a request, for the interrupt that asks about it), so that it sees that
        write; else it leaves them (it would rewrite those tables' pages in one more commit,
        and their own commit point comes anyway: the tool's start, or the run's end).

        `durable=False` commits without an fsync of SQLite's WAL, for rows that mean nothing
        after the crash that could lose them: only the machine's crash loses such a commit,
        and it ends every process that uses the file (a lease names one of them). It is never
        lost behind a later durable commit: the WAL is written in order, and that commit syncs
        it all. PostgreSQL ignores it: its server can crash while our processes live on.
        """
        if isinstance(self._conn, PgConnection):
            return self._pg_transaction(work, write=True)
        deadline = time.monotonic() + self._lock_wait
        delay = 0.01
        carrier = self._carrier if durable else None
        while True:
            # the carrier's lock before SQLite's, as the carrier takes them (never the other
            # way round: its owner may be waiting for SQLite's lock while holding its own)
            nested = self._writing == threading.get_ident()  # (a write inside a write fails)
            carrying = (
                carrier is not None
                and not nested
                and (carrier.has_queued_writes() if not carry else carrier.has_buffered())
            )
            with ExitStack() as held:
                if carrying and carrier:
                    carrier.lock.acquire()
                    held.callback(carrier.lock.release)  # (even if no turn comes in time)
                held.enter_context(self._lock)
                held.enter_context(damage_named(self._path))
                held.enter_context(writing(self._file, deadline, self._path, self._lock_wait))
                cur = self._conn.cursor()
                outer, self._writing = self._writing, threading.get_ident()
                if not durable:
                    cur.execute("PRAGMA synchronous=NORMAL")  # in WAL mode: no fsync at commit
                try:
                    cur.execute("BEGIN IMMEDIATE")
                    taken: list[Any] = []
                    try:
                        if carrying and carrier:
                            taken = _carried(cur, carrier)
                        result = work(cur)
                    except BaseException:
                        if not taken:
                            cur.execute("ROLLBACK")
                            raise
                        cur.execute("ROLLBACK TO work")  # the carried rows are not ours to drop
                        _commit(cur, carrier, taken)
                        raise
                    _commit(cur, carrier, taken)
                    return result
                except sqlite3.OperationalError as e:
                    if not is_busy(e):
                        raise refused(self._path, e) from e
                    if time.monotonic() >= deadline:
                        raise DatabaseBusy(self._path, self._lock_wait) from e
                finally:
                    self._writing = outer
                    if not durable:
                        cur.execute("PRAGMA synchronous=FULL")
                    cur.close()
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def _read(self, work: Callable[[Cursor], T], *, one_statement: bool = False) -> T:
        """Run `work` in one read transaction: every statement sees the same snapshot.

        On SQLite it runs on a read connection of its own, without the store's lock, so it
        never waits behind a write (this process's or another's); inside a write of this
        thread, on the write's connection, so it sees what the write has done so far.
        `one_statement`: `work` runs a single statement, which sees one snapshot by itself:
        it runs without BEGIN and COMMIT (on PostgreSQL one round trip, not three).
        """
        if isinstance(self._conn, PgConnection):
            return self._pg_transaction(work, write=False, one_statement=one_statement)
        if not self._file or self._writing == threading.get_ident():
            with self._lock, damage_named(self._path), closing(self._conn.cursor()) as cur:
                return _in_read_transaction(cur, work)  # (`_file` only on SQLite)
        conn = self._lend_reader()
        try:
            with damage_named(self._path), closing(conn.cursor()) as cur:
                result = work(cur) if one_statement else _in_read_transaction(cur, work)
        except BaseException:
            conn.close()  # in whatever state the failure left it
            raise
        self._give_back(conn)
        return result

    def _lend_reader(self) -> sqlite3.Connection:
        with self._readers_lock:
            conn = self._readers.pop() if self._readers else None
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self._file,
                    check_same_thread=False,
                    isolation_level=None,
                    timeout=self._busy_ms / 1000,
                )
                conn.execute("PRAGMA query_only=1")  # a read that tried to write would wait
            except sqlite3.Error as e:
                raise refused(self._path, e) from e
        conn.set_trace_callback(self._trace)
        return conn

    def _give_back(self, conn: sqlite3.Connection) -> None:
        conn.set_trace_callback(None)
        with self._readers_lock:
            if len(self._readers) < IDLE_READERS:
                self._readers.append(conn)
                return
        conn.close()

    def _pg_transaction(
        self, work: Callable[[Cursor], T], *, write: bool, one_statement: bool = False
    ) -> T:
        """`work` in one transaction on a pooled connection of its own (no lock of ours: the
        pool is thread-safe, and the write lock is the database's); a read of one statement
        in that statement's own (the pool's connections commit each statement)."""
        import psycopg
        from psycopg_pool import PoolTimeout

        assert isinstance(self._conn, PgConnection)
        for attempt in (1, 2):
            try:
                with self._conn.connection() as conn:
                    if one_statement and not write:
                        with closing(conn.cursor()) as raw:
                            return work(PgCursor(raw))
                    if write:
                        return self._pg_write(conn, work)
                    # one snapshot for reads (set in BEGIN, and back to the default after, for
                    # the saver's own transactions)
                    conn.isolation_level = _REPEATABLE_READ
                    try:
                        with conn.transaction(), closing(conn.cursor()) as raw:
                            return work(PgCursor(raw))
                    finally:
                        if not conn.closed:
                            conn.isolation_level = None
            except psycopg.errors.LockNotAvailable as e:
                raise DatabaseBusy(self._path, self._lock_wait) from e
            except PoolTimeout as e:
                raise PoolExhausted(self._path, POOL_WAIT_SECONDS) from e
            except (psycopg.OperationalError, psycopg.errors.InsufficientPrivilege) as e:
                if attempt == 1 and not write and not isinstance(e, psycopg.errors.QueryCanceled):
                    continue  # a connection the server dropped: read again on another
                # a write is not retried: its commit may have landed before the drop
                raise DatabaseError(self._path, e) from e
        raise AssertionError("unreachable")

    def _pg_write(self, conn: "psycopg.Connection[Any]", work: Callable[[Cursor], T]) -> T:
        """`work` in a write transaction on `conn` (in autocommit mode: the transaction is
        ours to begin and end), read committed: each statement sees what committed before it,
        the write lock included. Its BEGIN goes with the lock, and what it left waiting
        (`execute_later`, `notify`) with its COMMIT: no round trip of their own."""
        wait_ms = max(1, int(self._lock_wait * 1000))
        with closing(conn.cursor()) as raw, rolled_back_on_failure(conn):
            cur = PgCursor(raw, commits_here=True)
            # one round trip, and before `work`: what it reads (the clock included) is read
            # under the lock, however long the wait was
            raw.execute(
                f"BEGIN; SELECT set_config('lock_timeout', '{wait_ms}', true), "
                f"pg_advisory_xact_lock({WRITE_LOCK})"
            )
            result = work(cur)
            cur.commit()
            return result

    def close(self) -> None:
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for reader in readers:
            reader.close()
        with self._lock:
            self._conn.close()


def _carried(cur: sqlite3.Cursor, carrier: Carrier) -> list[Any]:
    """Write `carrier`'s buffered rows at the start of a write transaction, then mark where the
    store's own work starts (`SAVEPOINT work`); nothing taken if they cannot be written."""
    cur.execute("SAVEPOINT carried")
    try:
        taken = carrier.write_buffered(cur)
    except Exception:  # e.g. a checkpoint whose message is missing: its writer will say so
        cur.execute("ROLLBACK TO carried")
        cur.execute("RELEASE carried")
        return []
    cur.execute("RELEASE carried")
    if taken:
        cur.execute("SAVEPOINT work")
    return taken


def _commit(cur: sqlite3.Cursor, carrier: Carrier | None, taken: list[Any]) -> None:
    """Commit the write; if that fails, the carried rows go back to their writer's buffer."""
    try:
        if taken:
            cur.execute("RELEASE work")
        cur.execute("COMMIT")
    except BaseException:
        if taken and carrier is not None:
            carrier.give_back(taken)
        if cur.connection.in_transaction:
            cur.execute("ROLLBACK")
        raise


def _in_read_transaction(cur: sqlite3.Cursor, work: Callable[[Cursor], T]) -> T:
    cur.execute("BEGIN")
    try:
        return work(cur)
    finally:
        cur.execute("COMMIT")


def schema_in_place(cur: Cursor, statements: Sequence[str]) -> bool:
    """Whether running `statements` (`CREATE ... IF NOT EXISTS`) would change nothing: every
    table and index they create exists. False for a statement it cannot judge (run them)."""
    on_postgres = isinstance(cur, PgCursor)
    for statement in statements:
        if isinstance(statement, PostgresOnly) and not on_postgres:
            continue
        created = _CREATES.match(statement)
        if created is None:
            return False
        kind, name = created.group(1).lower(), created.group(2)
        if on_postgres:
            found = scalar(cur.execute("SELECT to_regclass(?) IS NOT NULL", (name,)))
        else:
            found = cur.execute(
                "SELECT 1 FROM sqlite_master WHERE type = ? AND name = ?", (kind, name)
            ).fetchone()
        if not found:
            return False
    return True
