"""The checkpoint saver on PostgreSQL: LangGraph's `PostgresSaver`, with the message log.

Each operation borrows a connection from the process's pool for the database (shared with
the stores), so a service's worker threads read in parallel. A run's rows are buffered and
committed at the same points as on SQLite (`CommitPoints`): the stock saver's statements are
recorded, not sent, and a commit sends a graph thread's rows in one transaction, in one
pipeline (`ThreadBuffers`: a buffer per thread, commits in turn). An approval cycle: 4 commits
in 6 round trips, where each put and each step's writes was a commit of its own (14, in 18).
A checkpoint's new message rows go before it, so every stored reference resolves.
"""

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, closing, contextmanager, nullcontext
from typing import Any, cast

import psycopg
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.postgres import PostgresSaver
from psycopg.rows import DictRow, dict_row, tuple_row
from psycopg_pool import PoolTimeout

from hitl.checkpoints.database import (
    PgConnection,
    PgCursor,
    rolled_back_on_failure,
    to_postgres,
)
from hitl.checkpoints.errors import DatabaseBusy, DatabaseError, MissingMessage, SchemaMissing
from hitl.checkpoints.savers import _message_log as message_log
from hitl.checkpoints.savers._commit_points import CommitPoints
from hitl.checkpoints.savers._message_log_saver import MessageLogSaver, Writes
from hitl.checkpoints.savers._serde import make_strict_serializer
from hitl.checkpoints.savers._thread_buffers import ThreadBuffers
from hitl.checkpoints.savers._threaded_async import AsyncInWorkerThreads
from hitl.checkpoints.urls import as_postgres

MIGRATION_LOCK = "hashtext('hitl-migrate:' || current_schema())"
"""Held (per schema) while tables are created or migrated, so processes starting together
do not race each other's `CREATE TABLE`."""
MIGRATION_WAIT_SECONDS = 120.0
"""How long a start waits for another process that is creating or migrating the tables."""
MIGRATION_LOCK_POLL_SECONDS = 0.05
_MISSING_NODE = (
    "SELECT n.thread_id FROM unnest(%s::text[], %s::text[], %s::text[]) "
    "AS n(thread_id, checkpoint_ns, node_id) WHERE NOT EXISTS (SELECT 1 FROM hitl_messages m "
    "WHERE m.thread_id = n.thread_id AND m.checkpoint_ns = n.checkpoint_ns "
    "AND m.node_id = n.node_id) LIMIT 1"
)
"""The thread of a stored message a new checkpoint follows that is gone (`CHECK_NODE`, for all
of a commit's checkpoints in one statement, after their rows: one answer to wait for)."""


class _Recorder:
    """Stands for the stock saver's cursor in `put` and `put_writes`: keeps its statements."""

    def __init__(self) -> None:
        self.statements: Writes = []

    def execute(self, query: str, params: Any = None) -> None:
        self.statements.append((query, [params]))

    def executemany(self, query: str, params_seq: Iterable[Any]) -> None:
        self.statements.append((query, list(params_seq)))


class HitlPostgresSaver(AsyncInWorkerThreads, MessageLogSaver, PostgresSaver):
    """`PostgresSaver` on a connection pool, storing conversations as a message log, its
    rows buffered between commit points (see the module doc)."""

    def __init__(
        self, pool: Any, *, url: str = "", side_effect_nodes: Iterable[str] = ("tools",)
    ) -> None:
        super().__init__(pool, serde=make_strict_serializer())
        # the stock saver serializes every call on one lock, needed only for a single
        # connection: with a pool each call has its own
        self.lock = cast(threading.Lock, nullcontext())
        self._pool: Any = pool
        self._url = url
        self._commit_points = CommitPoints(side_effect_nodes)
        self._buffers = ThreadBuffers(self._writer, where=url)
        self._recording = threading.local()

    @property
    def commits(self) -> int:
        """The commits of buffered rows so far."""
        return self._buffers.commits

    def setup(self) -> None:
        """The stock tables (LangGraph's versioned migrations, as the stock `setup` applies
        them) and the message log's, on one connection that holds the schema's migration
        lock meanwhile: processes starting together do not race to create them."""
        with self._pool.connection() as conn, closing(conn.cursor(row_factory=dict_row)) as cur:
            if self._up_to_date(cur):
                return  # every start but the first: no lock, no DDL
            _take_migration_lock(cur, self._url)
            try:
                cur.execute(self.MIGRATIONS[0])
                row = cur.execute(
                    "SELECT v FROM checkpoint_migrations ORDER BY v DESC LIMIT 1"
                ).fetchone()
                version = -1 if row is None else int(row["v"])
                for v in range(version + 1, len(self.MIGRATIONS)):
                    cur.execute(self.MIGRATIONS[v])
                    cur.execute("INSERT INTO checkpoint_migrations (v) VALUES (%s)", (v,))
                for statement in message_log.SCHEMA:
                    cur.execute(to_postgres(statement))
            finally:
                cur.execute(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})")

    def _up_to_date(self, cur: psycopg.Cursor[DictRow]) -> bool:
        """Whether every table is there at its newest version."""
        found = cur.execute(
            "SELECT to_regclass('checkpoint_migrations') IS NOT NULL AND "
            "to_regclass('hitl_messages') IS NOT NULL AS ok"
        ).fetchone()
        if found is None or not found["ok"]:
            return False
        row = cur.execute("SELECT MAX(v) AS v FROM checkpoint_migrations").fetchone()
        return (
            row is not None and row["v"] is not None and int(row["v"]) == len(self.MIGRATIONS) - 1
        )

    def flush(self, thread_id: str | None = None) -> None:
        """Commit the thread's buffered rows (a run that stopped without reaching a commit
        point), or every thread's; a failure is raised (each thread's rows apart, so one that
        fails does not keep the others from their commit)."""
        if thread_id is not None:
            self._buffers.commit(thread_id)
            return
        failures = list(self._buffers.commit_all())  # (every thread's tried first)
        if failures:
            raise failures[0]

    def _committed_before_reading(self, thread_id: object = None) -> None:
        """The rows buffered for the thread (`None`: for every thread) committed, so a read
        sees them. A failure drops those rows and their run is told; the read goes on, on
        what is on disk. Once a read has done this, the stock read's own cursor does not."""
        if getattr(self._recording, "committed", False):
            return
        if thread_id is None:
            for _ in self._buffers.commit_all():
                pass
            return
        with contextlib.suppress(Exception):
            self._buffers.commit(str(thread_id))

    @contextmanager
    def _reading_thread(self, config: RunnableConfig | None) -> Iterator[None]:
        """Around a stock read of the thread `config` names (of every thread, if none): its
        rows committed first, by themselves (a read of one thread never waits for another
        thread's commit)."""
        self._committed_before_reading((config or {}).get("configurable", {}).get("thread_id"))
        self._recording.committed = True
        try:
            yield
        finally:
            self._recording.committed = False

    @contextmanager
    def _writer(self) -> Iterator[Callable[[Writes], None]]:
        with self._pool.connection() as conn:

            def write(statements: Writes) -> None:
                with rolled_back_on_failure(conn):
                    _write_in_one_exchange(conn, statements)

            yield write

    @contextmanager
    def _recorded(self) -> Iterator[Writes]:
        """The statements the stock saver runs on `_cursor` meanwhile, kept, not sent."""
        recorder = self._recording.into = _Recorder()
        try:
            yield recorder.statements
        finally:
            self._recording.into = None

    @contextmanager
    def _reading(self) -> Iterator[PgCursor]:
        with self._pool.connection() as conn, closing(conn.cursor(row_factory=tuple_row)) as cur:
            yield PgCursor(cur)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        configurable = config["configurable"]
        logged, messages = self._logged(
            str(configurable["thread_id"]), configurable["checkpoint_ns"], checkpoint
        )
        with self._recorded() as statements:
            saved = super().put(config, logged, metadata, new_versions)
        messages = [
            (s if s is message_log.CHECK_NODE else to_postgres(s), rows) for s, rows in messages
        ]
        thread_id = str(configurable["thread_id"])
        number = self._buffers.add(
            thread_id,
            messages + statements,
            checkpoint_id=str(checkpoint["id"]),
            follows=configurable.get("checkpoint_id"),
        )
        if self._commit_points.checkpoint_commits(logged):
            self._buffers.commit(thread_id, number)
        return saved

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        with self._recorded() as statements:
            super().put_writes(config, writes, task_id, task_path)
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        checkpoint_id = str(configurable["checkpoint_id"])
        number = self._buffers.add(thread_id, statements, follows=checkpoint_id)
        if self._commit_points.writes_commit(checkpoint_id, writes):
            self._buffers.commit(thread_id, number)

    @contextmanager
    def _cursor(self, *, pipeline: bool = False) -> Iterator[psycopg.Cursor[DictRow]]:
        """In `put` and `put_writes`, a recorder; else the stock cursor, after the buffered
        rows are committed (a read sees them, a delete follows them)."""
        recorder = getattr(self._recording, "into", None)
        if recorder is not None:
            yield cast(psycopg.Cursor[DictRow], recorder)
            return
        self._committed_before_reading()
        with super()._cursor(pipeline=pipeline) as cur:
            yield cur

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        with self._reading_thread(config):
            found = super().get_tuple(config)
        return self._commit_points.loaded(self._with_logs(found))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """The stock `list`, read whole before the first is yielded: the stock generator keeps
        its pooled connection while the caller works on each checkpoint, and the caller's
        message reads would then need a second one (a pool drained by such callers waits)."""
        with self._reading_thread(config):
            page = list(super().list(config, filter=filter, before=before, limit=limit))
        for found in page:
            yield cast(CheckpointTuple, self._with_logs(found))

    def delete_thread(self, thread_id: str) -> None:
        """Delete the thread's checkpoints, writes, blobs and stored messages, together."""
        self._committed_before_reading(thread_id)
        with self._pool.connection() as conn, conn.transaction(), closing(conn.cursor()) as cur:
            for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes", "hitl_messages"):
                cur.execute(f"DELETE FROM {table} WHERE thread_id = %s", (str(thread_id),))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) that these runs created."""
        if not run_ids:
            return
        self._committed_before_reading()
        with self._pool.connection() as conn, conn.transaction(), closing(conn.cursor()) as cur:
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS _doomed (thread_id TEXT, checkpoint_ns TEXT, "
                "checkpoint_id TEXT) ON COMMIT DELETE ROWS"
            )
            cur.execute(
                "INSERT INTO _doomed SELECT thread_id, checkpoint_ns, checkpoint_id "
                "FROM checkpoints WHERE metadata->>'run_id' = ANY(%s)",
                (list(run_ids),),
            )
            for table in ("checkpoint_writes", "checkpoints"):
                cur.execute(
                    f"DELETE FROM {table} WHERE (thread_id, checkpoint_ns, checkpoint_id) IN "
                    "(SELECT thread_id, checkpoint_ns, checkpoint_id FROM _doomed)"
                )

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, blob, write and message of a thread under a new thread ID
        (the ledger is not copied: see `BatchingSqliteSaver.copy_thread`)."""
        columns = {
            "checkpoints": "checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, "
            "checkpoint, metadata",
            "checkpoint_blobs": "checkpoint_ns, channel, version, type, blob",
            "checkpoint_writes": "checkpoint_ns, checkpoint_id, task_id, task_path, idx, "
            "channel, type, blob",
            "hitl_messages": "checkpoint_ns, node_id, parent_id, depth, message_id, type, value",
        }
        self._committed_before_reading(source_thread_id)
        with self._pool.connection() as conn, conn.transaction(), closing(conn.cursor()) as cur:
            for table, rest in columns.items():
                cur.execute(
                    f"INSERT INTO {table} (thread_id, {rest}) SELECT %s, {rest} FROM {table} "
                    "WHERE thread_id = %s ON CONFLICT DO NOTHING",
                    (target_thread_id, source_thread_id),
                )

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """LangGraph's retention call; the message rows go with `delete` (a kept checkpoint
        may still refer to any of a thread's messages after `keep_latest`)."""
        super().prune(thread_ids, strategy=strategy)
        if strategy == "delete":
            with self._reading() as cur:
                cur.execute(
                    "DELETE FROM hitl_messages WHERE thread_id = ANY(?)",
                    ([str(t) for t in thread_ids],),
                )

    # async reads, in a worker thread (the writes: `AsyncInWorkerThreads`)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        def found() -> CheckpointTuple | None:
            with self._reading_thread(config):
                stored = PostgresSaver.get_tuple(self, config)
            return self._commit_points.loaded(self._with_logs(stored, {}))

        return await asyncio.to_thread(found)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        def page() -> list[CheckpointTuple]:
            preload: dict[str, Any] = {}
            with self._reading_thread(config):
                stored = list(
                    PostgresSaver.list(self, config, filter=filter, before=before, limit=limit)
                )
            return [cast(CheckpointTuple, self._with_logs(found, preload)) for found in stored]

        for item in await asyncio.to_thread(page):
            yield item


def _write_in_one_exchange(conn: psycopg.Connection[Any], statements: Writes) -> None:
    """Run `statements` in one transaction, sent together (a pipeline: one wait for the
    server's answers, two if a checkpoint follows stored messages, checked before the
    COMMIT). Not psycopg's `transaction()`: in a pipeline it waits at BEGIN and at COMMIT."""
    checks: list[tuple[Any, ...]] = []
    with conn.pipeline(), conn.cursor(binary=True) as cur:
        cur.execute("BEGIN")
        for statement, rows in statements:
            if statement is message_log.CHECK_NODE:
                checks += rows
            else:
                cur.executemany(statement, rows)
        if checks:
            missing = cur.execute(_MISSING_NODE, [list(c) for c in zip(*checks, strict=True)])
            if (row := missing.fetchone()) is not None:
                raise MissingMessage(row[0])
        cur.execute("COMMIT")


def _take_migration_lock(cur: psycopg.Cursor[DictRow], url: str) -> None:
    """Take the schema's migration lock (a session advisory lock) by polling for it.

    Not `pg_advisory_lock`: a statement waiting for the lock keeps its transaction open, and
    the holder's `CREATE INDEX CONCURRENTLY` (a LangGraph migration) waits for every open
    transaction of the database to end, so processes starting together deadlocked.
    """
    deadline = time.monotonic() + MIGRATION_WAIT_SECONDS
    while True:
        row = cur.execute(f"SELECT pg_try_advisory_lock({MIGRATION_LOCK}) AS taken").fetchone()
        if row is not None and row["taken"]:
            return
        if time.monotonic() > deadline:
            raise DatabaseBusy(url, MIGRATION_WAIT_SECONDS)
        time.sleep(MIGRATION_LOCK_POLL_SECONDS)


@contextmanager
def open_postgres_saver(url: str, *, create: bool = True) -> Iterator[HitlPostgresSaver]:
    """Open the checkpoint saver on the PostgreSQL database at `url` (tables created or
    migrated first; without `create`, a database without them is refused), on the process's
    pool for that database (of `url.pool_size` if it is a `PostgresUrl`; see
    `checkpoints.database`)."""
    try:
        handle = PgConnection(as_postgres(url))
    except (psycopg.Error, PoolTimeout) as e:
        raise DatabaseError(url, e) from e
    try:
        saver = HitlPostgresSaver(handle.pool, url=url)
        try:
            if not create:
                with handle.connection() as conn:
                    found = conn.execute("SELECT to_regclass('checkpoints')").fetchone()
                if found is None or found[0] is None:
                    raise SchemaMissing(url)
            saver.setup()
        except psycopg.Error as e:
            raise DatabaseError(url, e) from e
        yield saver
        saver.flush()
    finally:
        handle.close()


@asynccontextmanager
async def open_async_postgres_saver(url: str) -> AsyncIterator[HitlPostgresSaver]:
    opened = open_postgres_saver(url)
    saver = await asyncio.to_thread(opened.__enter__)
    try:
        yield saver
    finally:
        await asyncio.to_thread(opened.__exit__, None, None, None)
