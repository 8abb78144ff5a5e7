"""Opening the SQLite checkpoint saver: WAL, `synchronous=FULL`, a busy timeout, strict serde.

`BatchingSqliteSaver` keeps the guarantee that matters — the checkpoint holding a decision is
committed before the tool it approves starts, and a tool's result is committed as soon as the
tool returns — while committing a whole approval cycle in four transactions instead of a dozen
(`CommitPoints`).
"""

import asyncio
import json
import random
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, asynccontextmanager, closing, contextmanager
from pathlib import Path
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.utils import load_pending_writes, search_where

from hitl.checkpoints.database import (
    LOCK_WAIT_SECONDS,
    ReadOnlyConnection,
    Store,
    connect,
    damage_named,
    is_busy,
    main_file,
    refused,
    table_exists,
    writing,
)
from hitl.checkpoints.errors import DatabaseBusy, DatabaseError, SchemaMissing
from hitl.checkpoints.savers import _message_log as message_log
from hitl.checkpoints.savers._commit_points import CommitPoints
from hitl.checkpoints.savers._message_log import Node
from hitl.checkpoints.savers._message_log_saver import MessageLogSaver, Statement
from hitl.checkpoints.savers._serde import make_strict_serializer
from hitl.checkpoints.savers._threaded_async import AsyncInWorkerThreads
from hitl.checkpoints.urls import is_postgres

Rows = list[tuple[Any, ...]]
LIST_PAGE_ROWS = 200
"""`list` reads pending writes for this many checkpoints at a time (SQLite's bound on
variables per statement is far above 3 × this)."""
_PUT_CHECKPOINT = (
    "INSERT OR REPLACE INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, "
    "parent_checkpoint_id, type, checkpoint, metadata) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_WRITES_COLUMNS = (
    "INTO writes (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, "
    "type, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_REPLACE_WRITES = "INSERT OR REPLACE " + _WRITES_COLUMNS
_INSERT_WRITES = "INSERT OR IGNORE " + _WRITES_COLUMNS


class BatchingSqliteSaver(AsyncInWorkerThreads, MessageLogSaver, SqliteSaver):
    """`SqliteSaver` that groups a run's rows into a few transactions (see the module doc),
    and stores conversations as an append-only log (`checkpoints.message_log`).

    Rows are buffered in memory (so no write lock is held while a model or tool runs) and
    committed, in order, at the `CommitPoints`, and before any read. A crash loses at most the
    buffered steps since the last commit, which have no side effects and are simply run again.

    When the ledger carries this saver's rows (`Store.carry`: the same file, a graph whose
    every tool is gated), the two side-effect points do not commit alone: the ledger's next
    tool start, journaled before the tool runs, commits them, or the run's end does (no
    other ledger write takes them). The journal is then what survives a crash: a replay finds
    the call started (and asks a person) or finished (and takes its recorded result), never
    runs it again.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        serde: SerializerProtocol | None = None,
        side_effect_nodes: Iterable[str] = ("tools",),
        path: Path | str = "",
    ) -> None:
        super().__init__(conn, serde=serde)
        self._path = str(path)
        self._file = "" if isinstance(conn, ReadOnlyConnection) else main_file(conn)
        self._commit_points = CommitPoints(side_effect_nodes)
        self._buffer: list[tuple[Statement, list[tuple[Any, ...]]]] = []
        self.commits = 0

    @property
    def carried(self) -> bool:
        """Whether a ledger commits the side-effect steps' rows (see the class doc)."""
        return self._commit_points.carried

    # handing buffered rows to a ledger write on the same file (`Store.carry`)

    def commit_with(self, ledger: Store) -> None:
        """Let `ledger`, a store on this file, commit the side-effect steps' rows (see the
        class doc). Only for a graph whose every tool call is journaled before it runs."""
        ledger.carry(self)
        self._commit_points.carried = True

    def has_buffered(self) -> bool:
        return bool(self._buffer)

    def has_queued_writes(self) -> bool:
        return any(callable(statement) for statement, _ in self._buffer)

    def write_buffered(self, cur: sqlite3.Cursor) -> list[Any]:
        """Write the buffered rows on another connection's open transaction (the caller
        holds `lock`); they leave the buffer."""
        taken, self._buffer = self._buffer, []
        try:
            for statement, rows in taken:
                self._write_buffered(cur, statement, rows)
        except BaseException:
            self._buffer = taken + self._buffer
            raise
        return taken

    def write_later(self, work: Callable[[sqlite3.Cursor], object]) -> None:
        """Run a store's whole write on this file in the next commit, after the rows buffered
        before it (`Ledger.request`: a call registered in the commit of the interrupt that
        asks about it). A commit whose rows fail keeps such writes for the next one."""
        self._save(work, [], commit=False)

    def give_back(self, taken: list[Any]) -> None:
        """Rows a write took and did not commit, back at the front (the caller holds `lock`)."""
        self._buffer = taken + self._buffer

    @contextmanager
    def cursor(self, transaction: bool = True) -> Iterator[sqlite3.Cursor]:
        """The stock cursor, after the buffered rows are written (and then committed with it).

        The buffered rows are other steps' (maybe another run's): if the caller's own work
        fails, only it is rolled back (to a savepoint) and the buffered rows still commit.
        """
        with self.lock, damage_named(self._path), ExitStack() as turn:
            self.setup()
            cur = self.conn.cursor()
            buffered: list[tuple[Statement, list[tuple[Any, ...]]]] = []
            committed = False
            try:
                if (transaction or self._buffer) and not self.conn.in_transaction:
                    deadline = time.monotonic() + LOCK_WAIT_SECONDS  # (released after `cur`)
                    turn.enter_context(writing(self._file, deadline, self._path, LOCK_WAIT_SECONDS))
                    self._begin_immediate(cur, deadline)
                buffered, self._buffer = self._buffer, []
                for statement, rows in buffered:
                    self._write_buffered(cur, statement, rows)
                if buffered:
                    cur.execute("SAVEPOINT caller")
                try:
                    yield cur
                except BaseException:
                    if not buffered:
                        raise
                    cur.execute("ROLLBACK TO caller")
                    cur.execute("RELEASE caller")
                    self.conn.commit()
                    committed = True
                    self.commits += 1
                    raise
                if buffered:
                    cur.execute("RELEASE caller")
                if transaction or buffered:
                    self.conn.commit()
                    self.commits += 1
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.rollback()
                if not committed:  # a ledger's queued write (a request) is not lost with rows
                    # that failed (maybe another run's): back to the buffer, for the next commit
                    self._buffer = [e for e in buffered if callable(e[0])] + self._buffer
                raise
            finally:
                cur.close()

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Cursor]:
        """A cursor for reading stored messages, without first committing the buffer (a
        commit, with its fsync): the messages a loaded checkpoint refers to were committed
        before it was read, in its transaction or an earlier one."""
        with self.lock, damage_named(self._path):
            self.setup()
            cur = self.conn.cursor()
            try:
                yield cur
            finally:
                cur.close()

    def setup(self) -> None:
        """The stock tables, and the message log's (read-only: checked to be there)."""
        if self.is_setup:
            return
        if isinstance(self.conn, ReadOnlyConnection):
            self._check_tables()
            return
        super().setup()
        for statement in message_log.SCHEMA:
            self.conn.execute(statement)
        self.conn.commit()

    def _check_tables(self) -> None:
        """On a read-only file, the tables `setup` would have created, as they are."""
        cur = self.conn.cursor()
        if not all(table_exists(cur, t) for t in ("checkpoints", "writes", "hitl_messages")):
            raise SchemaMissing(self._path)
        columns = {row[1] for row in cur.execute("PRAGMA table_info(writes)")}
        self._has_task_path = "task_path" in columns
        self.is_setup = True

    def get_next_version(self, current: str | None, channel: None) -> str:
        """The stock version (a 32-digit counter, then a random tie-break) with a six-digit
        tie-break instead of a float's sixteen: the counter alone orders versions, and each
        checkpoint repeats every version several times (the random digits do not compress)."""
        counter = 0 if current is None else int(str(current).split(".")[0])
        return f"{counter + 1:032}.{random.randrange(16**6):06x}"

    def _begin_immediate(self, cur: sqlite3.Cursor, deadline: float) -> None:
        """Take the write lock now, waiting until `deadline` for another process to release it."""
        while True:
            try:
                cur.execute("BEGIN IMMEDIATE")  # waits up to busy_timeout inside SQLite
                return
            except sqlite3.OperationalError as e:
                if not is_busy(e):
                    raise
                if time.monotonic() >= deadline:
                    raise DatabaseBusy(self._path, LOCK_WAIT_SECONDS) from e
                time.sleep(0.05)

    def _save(self, statement: Statement, rows: list[tuple[Any, ...]], *, commit: bool) -> None:
        if commit:
            with self.cursor() as cur:
                self._write_buffered(cur, statement, rows)
        else:
            with self.lock:
                self._buffer.append((statement, rows))

    def flush(self, thread_id: str | None = None) -> None:
        """Commit whatever is buffered (a run that stopped without reaching a commit point):
        every run's rows, which share one buffer (`thread_id` does not narrow it here)."""
        if self._buffer:
            with self.cursor(transaction=False):
                pass

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        configurable = config["configurable"]
        checkpoint, messages = self._logged(
            str(configurable["thread_id"]), configurable["checkpoint_ns"], checkpoint
        )
        for statement, rows in messages:
            self._save(statement, rows, commit=False)
        type_, blob = self.serde.dumps_typed(checkpoint)
        row = (
            str(configurable["thread_id"]),
            configurable["checkpoint_ns"],
            checkpoint["id"],
            configurable.get("checkpoint_id"),
            type_,
            blob,
            json.dumps(get_checkpoint_metadata(config, metadata), ensure_ascii=False).encode(
                "utf-8", "ignore"
            ),
        )
        commit = self._commit_points.checkpoint_commits(checkpoint)
        self._save(_PUT_CHECKPOINT, [row], commit=commit)
        return {
            "configurable": {
                "thread_id": configurable["thread_id"],
                "checkpoint_ns": configurable["checkpoint_ns"],
                "checkpoint_id": checkpoint["id"],
            }
        }

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        # (`_with_logs` refuses a forged checkpoint)
        return self._commit_points.loaded(self._with_logs(super().get_tuple(config)))

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        configurable = config["configurable"]
        statement = (
            _REPLACE_WRITES if all(w[0] in WRITES_IDX_MAP for w in writes) else _INSERT_WRITES
        )
        rows = [
            (
                str(configurable["thread_id"]),
                str(configurable["checkpoint_ns"]),
                str(configurable["checkpoint_id"]),
                task_id,
                task_path,
                WRITES_IDX_MAP.get(channel, idx),
                channel,
                *self.serde.dumps_typed(value),
            )
            for idx, (channel, value) in enumerate(writes)
        ]
        commit = self._commit_points.writes_commit(str(configurable["checkpoint_id"]), writes)
        self._save(statement, rows, commit=commit)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """The stock `list`, newest first, with each page's pending writes read in one query
        (the stock one reads them checkpoint by checkpoint): a history page of N costs two
        statements and O(N) rows, however long the thread."""
        return self._tuples(config, filter, before, limit, preload=None)

    def _tuples(
        self,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
        *,
        preload: dict[str, Node] | None,
    ) -> Iterator[CheckpointTuple]:
        """`list`'s checkpoints, their conversations lazy or, with `preload`, read now."""
        where, params = search_where(config, filter, before)
        query = (
            "SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, "
            f"checkpoint, metadata FROM checkpoints {where} ORDER BY checkpoint_id DESC"
        )
        if limit is not None:
            query += " LIMIT ?"
            params = (*params, limit)
        with self.cursor(transaction=False) as cur:
            rows = cur.execute(query, params).fetchall()
        for start in range(0, len(rows), LIST_PAGE_ROWS):
            page = rows[start : start + LIST_PAGE_ROWS]
            writes = self._writes_of(page)
            for thread_id, ns, checkpoint_id, parent_id, type_, checkpoint, metadata in page:
                found = CheckpointTuple(
                    _config_of(thread_id, ns, checkpoint_id),
                    self.serde.loads_typed((type_, checkpoint)),
                    cast(CheckpointMetadata, json.loads(metadata) if metadata else {}),
                    _config_of(thread_id, ns, parent_id) if parent_id else None,
                    load_pending_writes(writes.get((thread_id, ns, checkpoint_id), []), self.serde),
                )
                yield cast(CheckpointTuple, self._with_logs(found, preload))

    def _writes_of(self, page: Sequence[tuple[Any, ...]]) -> dict[tuple[str, str, str], Rows]:
        """The pending writes of a page of checkpoints: one indexed query per thread and
        namespace in the page (one, for a thread's history)."""
        found: dict[tuple[str, str, str], Rows] = {}
        groups: dict[tuple[str, str], Rows] = {}
        for row in page:
            groups.setdefault((row[0], row[1]), []).append(row)
        task_path = "task_path" if self._has_task_path else "''"
        with self.cursor(transaction=False) as cur:
            for (thread_id, ns), rows in groups.items():
                ids = [r[2] for r in rows]
                for checkpoint_id, *write in cur.execute(
                    f"SELECT checkpoint_id, task_id, channel, type, value, {task_path}, idx "
                    "FROM writes WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id IN "
                    f"({', '.join('?' * len(ids))})",
                    (thread_id, ns, *ids),
                ):
                    found.setdefault((thread_id, ns, checkpoint_id), []).append(tuple(write))
        return found

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) that these runs created."""
        if not run_ids:
            return
        marks = ", ".join("?" for _ in run_ids)
        with self.cursor() as cur:
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS _doomed (thread_id, checkpoint_ns, checkpoint_id)"
            )
            cur.execute("DELETE FROM _doomed")
            cur.execute(
                "INSERT INTO _doomed SELECT thread_id, checkpoint_ns, checkpoint_id "
                f"FROM checkpoints WHERE json_extract(CAST(metadata AS TEXT), '$.run_id') "
                f"IN ({marks})",
                list(run_ids),
            )
            for table in ("writes", "checkpoints"):
                cur.execute(
                    f"DELETE FROM {table} WHERE (thread_id, checkpoint_ns, checkpoint_id) IN "
                    "(SELECT thread_id, checkpoint_ns, checkpoint_id FROM _doomed)"
                )

    def delete_thread(self, thread_id: str) -> None:
        """Delete the thread's checkpoints, writes and stored messages."""
        with self.cursor() as cur:
            for table in ("checkpoints", "writes", "hitl_messages"):
                cur.execute(f"DELETE FROM {table} WHERE thread_id = ?", (str(thread_id),))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """LangGraph's retention call: keep each namespace's newest checkpoint (its writes and
        the messages it reaches), or delete the threads. It does not ask the ledger whether a
        thread still waits for a person: `hitl prune` (`checkpoints.retention`) does."""
        if strategy == "delete":
            for thread_id in thread_ids:
                self.delete_thread(thread_id)
            return
        if strategy != "keep_latest":
            raise ValueError(f"unknown prune strategy {strategy!r}: use 'keep_latest' or 'delete'")
        with self.cursor() as cur:
            for thread_id in map(str, thread_ids):
                newest = cur.execute(
                    "SELECT checkpoint_ns, MAX(checkpoint_id) FROM checkpoints "
                    "WHERE thread_id = ? GROUP BY checkpoint_ns",
                    (thread_id,),
                ).fetchall()
                for ns, checkpoint_id in newest:
                    for table in ("writes", "checkpoints"):
                        cur.execute(
                            f"DELETE FROM {table} WHERE thread_id = ? AND checkpoint_ns = ? "
                            "AND checkpoint_id < ?",
                            (thread_id, ns, checkpoint_id),
                        )
                    type_, blob = cur.execute(
                        "SELECT type, checkpoint FROM checkpoints WHERE thread_id = ? AND "
                        "checkpoint_ns = ? AND checkpoint_id = ?",
                        (thread_id, ns, checkpoint_id),
                    ).fetchone()
                    kept = self.serde.loads_typed((type_, blob))["channel_values"]
                    message_log.delete_unreachable(cur, thread_id, ns, message_log.tails_of(kept))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint and write of a thread under a new thread ID.

        The ledger is not copied: a pending call of the copy is asked about again, and a call
        that ran in the source is not journaled for the copy, so it is asked about too.
        """
        with self.cursor() as cur:
            cur.execute(
                "INSERT OR REPLACE INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, "
                "parent_checkpoint_id, type, checkpoint, metadata) SELECT ?, checkpoint_ns, "
                "checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata "
                "FROM checkpoints WHERE thread_id = ?",
                (target_thread_id, source_thread_id),
            )
            cur.execute(
                "INSERT OR REPLACE INTO writes (thread_id, checkpoint_ns, checkpoint_id, task_id, "
                "task_path, idx, channel, type, value) SELECT ?, checkpoint_ns, checkpoint_id, "
                "task_id, task_path, idx, channel, type, value FROM writes WHERE thread_id = ?",
                (target_thread_id, source_thread_id),
            )
            cur.execute(
                "INSERT OR IGNORE INTO hitl_messages (thread_id, checkpoint_ns, node_id, "
                "parent_id, depth, message_id, type, value) SELECT ?, checkpoint_ns, node_id, "
                "parent_id, depth, message_id, type, value FROM hitl_messages WHERE thread_id = ?",
                (target_thread_id, source_thread_id),
            )

    # async reads, in a worker thread (the writes: `AsyncInWorkerThreads`)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """`get_tuple` in a worker thread, with the conversation read there too."""
        return await asyncio.to_thread(
            lambda: self._commit_points.loaded(
                self._with_logs(SqliteSaver.get_tuple(self, config), {})
            )
        )

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        found = await asyncio.to_thread(  # a page of one thread shares its messages: one read
            lambda: list(self._tuples(config, filter, before, limit, preload={}))
        )
        for item in found:
            yield item


def _config_of(thread_id: str, checkpoint_ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint_id,
        }
    }


@contextmanager
def open_saver(
    path: Path | str, *, create: bool = True, read_only_ok: bool = False
) -> Iterator[BatchingSqliteSaver]:
    """Open the checkpoint saver on the SQLite file at `path`: without `create`, a missing
    file, or one without our tables, is refused instead of created; with `read_only_ok` (the
    caller only reads), a file this user may not write is opened read-only."""
    if not create and not is_postgres(path) and not Path(path).exists():
        raise DatabaseError(path, FileNotFoundError("no such database file; nothing was created"))
    with closing(connect(path, read_only_ok=read_only_ok)) as conn:
        saver = BatchingSqliteSaver(conn, serde=make_strict_serializer(), path=path)
        try:
            if not create and not table_exists(conn.cursor(), "checkpoints"):
                raise SchemaMissing(path)
            saver.setup()
        except sqlite3.Error as e:
            raise refused(path, e) from e
        yield saver
        saver.flush()


@asynccontextmanager
async def open_async_saver(path: Path | str) -> AsyncIterator[BatchingSqliteSaver]:
    """The same saver for async runtimes such as `langgraph dev` (its async methods use
    worker threads), so every runtime writes the database the same way."""
    opened = open_saver(path)
    saver = await asyncio.to_thread(opened.__enter__)  # file system calls off the event loop
    try:
        yield saver
    finally:
        await asyncio.to_thread(opened.__exit__, None, None, None)


def list_thread_ids(saver: SqliteSaver) -> list[str]:
    """Every thread in the database, newest activity first."""
    with saver.cursor(transaction=False) as cur:
        cur.execute(
            "SELECT thread_id FROM checkpoints WHERE checkpoint_ns = '' "
            "GROUP BY thread_id ORDER BY MAX(checkpoint_id) DESC"
        )
        return [row[0] for row in cur.fetchall()]
