"""The checkpoint saver on PostgreSQL: LangGraph's `PostgresSaver`, with the message log.

Each operation borrows a connection from the process's pool for the database (shared with
the stores), so a service's worker threads checkpoint in parallel. A checkpoint's new
message rows are written in the pipeline that writes the checkpoint, before it, so every stored
reference resolves, as on SQLite.
"""

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
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

from hitl.checkpoints.database import PgConnection, PgCursor, to_postgres
from hitl.checkpoints.errors import DatabaseBusy, DatabaseError, MissingMessage, SchemaMissing
from hitl.checkpoints.savers import _message_log as message_log
from hitl.checkpoints.savers._message_log_saver import MessageLogSaver
from hitl.checkpoints.savers._serde import make_strict_serializer
from hitl.checkpoints.savers._threaded_async import AsyncInWorkerThreads
from hitl.checkpoints.urls import as_postgres

MIGRATION_LOCK = "hashtext('hitl-migrate:' || current_schema())"
"""Held (per schema) while tables are created or migrated, so processes starting together
do not race each other's `CREATE TABLE`."""
MIGRATION_WAIT_SECONDS = 120.0
"""How long a start waits for another process that is creating or migrating the tables."""
MIGRATION_LOCK_POLL_SECONDS = 0.05


class HitlPostgresSaver(AsyncInWorkerThreads, MessageLogSaver, PostgresSaver):
    """`PostgresSaver` on a connection pool, storing conversations as a message log."""

    def __init__(self, pool: Any, *, url: str = "") -> None:
        super().__init__(pool, serde=make_strict_serializer())
        # the stock saver serializes every call on one lock, needed only for a single
        # connection: with a pool each call has its own
        self.lock = cast(threading.Lock, nullcontext())
        self._pool: Any = pool
        self._url = url
        self.commits = 0
        self._messages_to_put = threading.local()

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

    def flush(self) -> None:
        """Nothing is buffered: every checkpoint is committed when it is put."""

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
        self._messages_to_put.rows = messages  # written in the stock put's pipeline (`_cursor`)
        try:
            saved = super().put(config, logged, metadata, new_versions)
        finally:
            self._messages_to_put.rows = []
        self.commits += 1
        return saved

    @contextmanager
    def _cursor(self, *, pipeline: bool = False) -> Iterator[psycopg.Cursor[DictRow]]:
        """The stock cursor; in `put`, its checkpoint's new messages are written on it first,
        in the same pipeline (one exchange with the server where a transaction of their own
        took four)."""
        with super()._cursor(pipeline=pipeline) as cur:
            messages = getattr(self._messages_to_put, "rows", [])
            self._messages_to_put.rows = []
            for statement, rows in messages:
                if statement is message_log.CHECK_NODE:  # (a pipeline's result: fetched)
                    for row in rows:
                        if cur.execute(to_postgres(statement), row).fetchone() is None:
                            raise MissingMessage(row[0])
                else:
                    cur.executemany(to_postgres(cast(str, statement)), rows)
            yield cur

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._with_logs(super().get_tuple(config))

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
        page = list(super().list(config, filter=filter, before=before, limit=limit))
        for found in page:
            yield cast(CheckpointTuple, self._with_logs(found))

    def delete_thread(self, thread_id: str) -> None:
        """Delete the thread's checkpoints, writes, blobs and stored messages, together."""
        with self._pool.connection() as conn, conn.transaction(), closing(conn.cursor()) as cur:
            for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes", "hitl_messages"):
                cur.execute(f"DELETE FROM {table} WHERE thread_id = %s", (str(thread_id),))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) that these runs created."""
        if not run_ids:
            return
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
        return await asyncio.to_thread(
            lambda: self._with_logs(PostgresSaver.get_tuple(self, config), {})
        )

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
            return [
                cast(CheckpointTuple, self._with_logs(found, preload))
                for found in PostgresSaver.list(
                    self, config, filter=filter, before=before, limit=limit
                )
            ]

        for item in await asyncio.to_thread(page):
            yield item


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
