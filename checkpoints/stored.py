"""A thread's newest checkpoint read as plain data, without LangGraph or LangChain.

`hitl show` needs three things from a checkpoint: its conversation, whether steps are left
to run, and whether a task waits at an interrupt. LangGraph answers through the compiled graph
(`get_state`), which costs the import of LangGraph and LangChain and the graph's build — most
of a second — for a read of a few rows. This module reads those rows itself, decoding msgpack
into plain values (`StoredObject`: a class's module, name and fields; nothing is imported or
built from what a row names), and gives up (`NotPlain`) on anything it would have to guess:
a value a finished task wrote to the conversation in the open step, an object other than
LangChain's four message classes, a database other than a SQLite file. The caller then asks
the graph, as before.

What it mirrors (LangGraph 1.2, `_prepare_state_snapshot` with `live=True`): the step's tasks
are the nodes the checkpoint schedules (`branch:to:*` channels, `Send` packets, `__start__`,
as `scheduled_nodes` in the SQLite saver reads them); a task waits at an interrupt when it
wrote one and no output since.
"""

import sqlite3
import zlib
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ormsgpack

from hitl.checkpoints.errors import NotPlain

EXT_PYDANTIC_V2 = 5
"""LangGraph's msgpack extension code for a pydantic model (`jsonplus.EXT_PYDANTIC_V2`)."""
COMPRESSED = "msgpack+zlib"
"""The serializer's compressed format (`hitl.checkpoints.savers`' `COMPRESSED`)."""
NULL_TASK_ID = "00000000-0000-0000-0000-000000000000"
"""The task ID of writes that are input to the step, not a task's (LangGraph's)."""
CONTROL_CHANNELS = frozenset({"__error__", "__error_source_node__", "__interrupt__", "__resume__"})
"""Writes that say what happened to a task rather than what it produced (LangGraph's)."""
MESSAGE_CLASSES = frozenset(
    {
        ("langchain_core.messages.human", "HumanMessage"),
        ("langchain_core.messages.ai", "AIMessage"),
        ("langchain_core.messages.tool", "ToolMessage"),
        ("langchain_core.messages.system", "SystemMessage"),
    }
)
LOG_REF_KEY = "__hitl_log__"
"""The message log's reference in a checkpoint (`hitl.checkpoints.savers.LOG_REF_KEY`)."""
_MAX_INFLATED = 1 << 30
_WINDOW = """
WITH RECURSIVE chain(node_id, parent_id, n) AS (
    SELECT node_id, parent_id, 1 FROM hitl_messages
    WHERE thread_id = ? AND checkpoint_ns = '' AND node_id = ?
    UNION ALL
    SELECT m.node_id, m.parent_id, c.n + 1
    FROM hitl_messages m JOIN chain c
      ON m.thread_id = ? AND m.checkpoint_ns = '' AND m.node_id = c.parent_id
    WHERE c.n < ?
)
SELECT c.n, m.type, m.value FROM chain c JOIN hitl_messages m
  ON m.thread_id = ? AND m.checkpoint_ns = '' AND m.node_id = c.node_id
WHERE c.n = 1 OR c.n > ?
"""
"""The messages of a branch from its `n`th newest node back, and its newest: the walk up the
parent links reads node IDs only; values are read for the messages returned."""
Page = Callable[[int], range]
"""Given a conversation's length, the positions of the messages to read."""


@dataclass(frozen=True)
class StoredObject:
    """An object as a row stores it: its class's module and name, and its fields."""

    module: str
    name: str
    fields: Any


@dataclass(frozen=True)
class StoredThread:
    """What a thread's newest checkpoint says, as plain data."""

    messages: list[StoredObject]
    """The conversation, or the page of it asked for, oldest first: each a LangChain
    message's fields."""
    scheduled: bool
    """Whether the step after the checkpoint has tasks (the run has not ended)."""
    interrupted: bool
    """Whether a task of that step waits at an interrupt."""
    page: range = range(0)
    """The positions of `messages` in the conversation."""
    length: int = 0
    """How many messages the conversation holds."""
    newest: StoredObject | None = None
    """Its last message, when the page does not end with it."""


def read_stored_thread(
    path: Path | str, thread_id: str, page: Page | None = None
) -> StoredThread | None:
    """The newest checkpoint of `thread_id` in the SQLite file at `path`, with its whole
    conversation or the `page` of it; None if it has none.

    `NotPlain` if it cannot be read without the graph (see the module's docstring); what
    `page` raises passes through."""
    if not Path(path).is_file():
        raise NotPlain("no SQLite file")
    try:
        conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise NotPlain(str(e)) from None
    with closing(conn):
        try:
            conn.execute("BEGIN")  # one snapshot: a checkpoint with its own step's writes
            return _read(conn, thread_id, page or range)
        except (sqlite3.Error, ValueError, TypeError, KeyError, zlib.error) as e:
            raise NotPlain(str(e)) from None


def _read(conn: sqlite3.Connection, thread_id: str, page: Page) -> StoredThread | None:
    row = conn.execute(
        "SELECT checkpoint_id, type, checkpoint FROM checkpoints WHERE thread_id = ? AND "
        "checkpoint_ns = '' ORDER BY checkpoint_id DESC LIMIT 1",
        (thread_id,),
    ).fetchone()
    if row is None:
        return None
    checkpoint_id, type_, data = row
    checkpoint = _loads(type_, data)
    values = checkpoint["channel_values"]
    interrupted = _read_writes(conn, thread_id, checkpoint_id)
    scheduled = (
        "__start__" in values
        or bool(values.get("__pregel_tasks"))
        or any(key.startswith("branch:to:") for key in values)
    )
    length, messages, newest, positions = _messages(conn, thread_id, values.get("messages"), page)
    return StoredThread(messages, scheduled, interrupted, positions, length, newest)


def _read_writes(conn: sqlite3.Connection, thread_id: str, checkpoint_id: str) -> bool:
    """Whether a task of the open step waits at an interrupt; `NotPlain` if the step's writes
    change the conversation before the next checkpoint (the graph's reducer applies them)."""
    finished: set[str] = set()
    asked: set[str] = set()
    for task_id, channel, type_, data in conn.execute(
        "SELECT task_id, channel, type, value FROM writes WHERE thread_id = ? AND "
        "checkpoint_ns = '' AND checkpoint_id = ?",
        (thread_id, checkpoint_id),
    ):
        if channel == "messages":
            raise NotPlain("the open step wrote to the conversation")
        if task_id == NULL_TASK_ID:
            continue
        if channel == "__interrupt__":
            if _loads(type_, data):
                asked.add(task_id)
        elif channel not in CONTROL_CHANNELS:
            finished.add(task_id)
    return bool(asked - finished)


def _messages(
    conn: sqlite3.Connection, thread_id: str, value: Any, page: Page
) -> tuple[int, list[StoredObject], StoredObject | None, range]:
    """The conversation's length, the page of its messages, its newest message if the page
    does not end with it, and the page's positions."""
    if value is None:
        return 0, [], None, page(0)
    if not isinstance(value, dict) or LOG_REF_KEY not in value:
        raise NotPlain("a conversation outside the message log")
    tail, length = value[LOG_REF_KEY], int(value["length"])
    positions = page(length if tail is not None else 0)
    if tail is None or not positions:
        return 0 if tail is None else length, [], None, positions
    skip = length - positions.stop  # the newer messages the walk passes over
    rows = conn.execute(
        _WINDOW, (thread_id, tail, thread_id, length - positions.start, thread_id, skip)
    ).fetchall()
    found = {n: _loads(type_, data) for n, type_, data in rows}
    wanted = range(skip + 1, length - positions.start + 1)
    if any(n not in found for n in wanted):
        raise NotPlain("a message of the log is missing")
    messages = [found[n] for n in reversed(wanted)]
    newest = found[1] if skip else None
    for m in [*messages, *([newest] if newest else [])]:
        if not isinstance(m, StoredObject) or (m.module, m.name) not in MESSAGE_CLASSES:
            raise NotPlain("a conversation holding something else than a message")
    return length, messages, newest, positions


def _loads(type_: str, data: bytes) -> Any:
    if type_ == COMPRESSED:
        inflater = zlib.decompressobj()
        data, type_ = inflater.decompress(data, _MAX_INFLATED), "msgpack"
        if inflater.unconsumed_tail or not inflater.eof:
            raise NotPlain("compressed data that does not inflate")
    if type_ != "msgpack":
        raise NotPlain(f"the format {type_!r}")
    return ormsgpack.unpackb(data, ext_hook=_plain, option=ormsgpack.OPT_NON_STR_KEYS)


def _plain(code: int, data: bytes) -> StoredObject:
    unpacked = ormsgpack.unpackb(data, ext_hook=_plain, option=ormsgpack.OPT_NON_STR_KEYS)
    return StoredObject(
        str(unpacked[0]), str(unpacked[1]), unpacked[2] if code == EXT_PYDANTIC_V2 else None
    )
