"""The conversation stored append-only beside the checkpoints, one row per message.

A checkpoint holds only a reference to the newest message of its conversation
(`{LOG_REF_KEY: node_id, "length": n}`); each message row names its parent, so the rows form
a tree whose branches are the thread's forks (time travel, `update_state`). A checkpoint
therefore costs the same bytes at message 10 and at message 10,000, and a message is written
once, in the transaction of the first checkpoint that holds it.
"""

import hashlib
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, TypeGuard

from hitl.checkpoints.database import Cursor
from hitl.checkpoints.errors import MissingMessage

LOG_REF_KEY = "__hitl_log__"
"""The key that marks a checkpoint's channel value as a reference into `hitl_messages`."""

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS hitl_messages (
        thread_id TEXT NOT NULL,
        checkpoint_ns TEXT NOT NULL DEFAULT '',
        node_id TEXT NOT NULL,
        parent_id TEXT,
        depth INTEGER NOT NULL,
        message_id TEXT,
        type TEXT NOT NULL,
        value BLOB NOT NULL,
        PRIMARY KEY (thread_id, checkpoint_ns, node_id)
    )""",
    "CREATE INDEX IF NOT EXISTS hitl_messages_by_message_id "
    "ON hitl_messages (thread_id, checkpoint_ns, message_id)",
)
INSERT_NODES = (
    "INSERT OR IGNORE INTO hitl_messages (thread_id, checkpoint_ns, node_id, parent_id, depth, "
    "message_id, type, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_CHAIN = """
WITH RECURSIVE chain(node_id, parent_id, depth, message_id, type, value, n) AS (
    SELECT node_id, parent_id, depth, message_id, type, value, 1 FROM hitl_messages
    WHERE thread_id = ? AND checkpoint_ns = ? AND node_id = ?
    UNION ALL
    SELECT m.node_id, m.parent_id, m.depth, m.message_id, m.type, m.value, c.n + 1
    FROM hitl_messages m JOIN chain c
      ON m.thread_id = ? AND m.checkpoint_ns = ? AND m.node_id = c.parent_id
    WHERE c.n < ?
)
"""
"""The `limit` messages of a branch ending at a node, walking parent links (newest first)."""

Loads = Callable[[tuple[str, bytes]], Any]
Dumps = Callable[[Any], tuple[str, bytes]]
CursorFactory = Callable[[], AbstractContextManager[Cursor]]
"""Lends a cursor for the length of a `with` block (the saver's `_reading`)."""
Node = tuple[str, str | None, int, Any]
"""One stored message: (node_id, parent_id, depth, message)."""


class LoggedMessages(Protocol):
    """What the graph's message channel checkpoints: its newest node, and the nodes not yet
    stored (the saver writes those, then keeps only a reference)."""

    tail: str | None
    length: int

    def unsaved(self) -> Sequence[Node]: ...


def is_logged(value: object) -> TypeGuard[LoggedMessages]:
    """Whether a channel value is a message log: asked of every value at every checkpoint, so
    by its type's method (a runtime protocol check costs tens of microseconds a value)."""
    kind = type(value)
    return callable(getattr(kind, "unsaved", None)) and all(
        hasattr(value, name) for name in ("tail", "length")
    )


def is_log_ref(value: object) -> bool:
    """Whether a stored channel value is a reference into `hitl_messages`."""
    return isinstance(value, dict) and LOG_REF_KEY in value


def log_ref(tail: str | None, length: int) -> dict[str, Any]:
    return {LOG_REF_KEY: tail, "length": length}


def node_rows(
    thread_id: str, checkpoint_ns: str, nodes: Iterable[Node], dumps: Dumps
) -> list[tuple[Any, ...]]:
    """`hitl_messages` rows for messages a checkpoint holds that are not stored yet."""
    return [
        (thread_id, checkpoint_ns, node_id, parent_id, depth, message.id, *dumps(message))
        for node_id, parent_id, depth, message in nodes
    ]


@dataclass(frozen=True)
class SavedLog:
    """A stored conversation, as a loaded checkpoint refers to it; read on demand."""

    tail: str | None
    length: int
    source: "SqliteMessageSource"

    def load(self, tail: str, limit: int) -> list[Node]:
        return self.source.load(tail, limit)

    def depths_of(self, tail: str, message_ids: Sequence[str]) -> dict[str, int]:
        return self.source.depths_of(tail, message_ids)


@dataclass(frozen=True)
class LoadedLog:
    """A stored conversation read in full up front, for async runtimes: their event loop
    must not block on a lazy read (`langgraph dev` refuses it)."""

    tail: str | None
    length: int
    nodes: dict[str, Node]
    in_memory = True

    def load(self, tail: str, limit: int) -> list[Node]:
        found: list[Node] = []
        node: str | None = tail
        while node is not None and len(found) < limit:
            found.append(self.nodes[node])
            node = self.nodes[node][1]
        found.reverse()
        return found

    def depths_of(self, tail: str, message_ids: Sequence[str]) -> dict[str, int]:
        wanted = set(message_ids)
        return {n[3].id: n[2] for n in self.load(tail, self.length) if n[3].id in wanted}


class SqliteMessageSource:
    """Reads one thread's stored messages, for the lazy histories a loaded checkpoint holds."""

    def __init__(
        self, cursor: CursorFactory, loads: Loads, thread_id: str, checkpoint_ns: str
    ) -> None:
        self._cursor = cursor
        self._loads = loads
        self._key = (thread_id, checkpoint_ns)

    def saved(self, ref: dict[str, Any]) -> SavedLog:
        return SavedLog(tail=ref[LOG_REF_KEY], length=int(ref["length"]), source=self)

    def loaded(self, ref: dict[str, Any], known: dict[str, Node]) -> LoadedLog:
        """The conversation read now, in full; `known` nodes (read for another checkpoint of
        the thread) are not read again, and what is read is added to them."""
        tail, length = ref[LOG_REF_KEY], int(ref["length"])
        if tail is not None and tail not in known:
            known.update((node[0], node) for node in self.load(tail, length))
        return LoadedLog(tail, length, known)

    def load(self, tail: str, limit: int) -> list[Node]:
        """Up to `limit` messages ending at node `tail`, oldest first."""
        with self._cursor() as cur:
            rows = cur.execute(
                _CHAIN + "SELECT node_id, parent_id, depth, type, value FROM chain",
                (*self._key, tail, *self._key, limit),
            ).fetchall()
        if not rows:
            raise MissingMessage(self._key[0])
        rows.reverse()
        return [
            (node_id, parent_id, depth, self._loads((type_, value)))
            for node_id, parent_id, depth, type_, value in rows
        ]

    def depths_of(self, tail: str, message_ids: Sequence[str]) -> dict[str, int]:
        """The depth of each of these message IDs on the branch ending at `tail` (one indexed
        query; a candidate found on another branch is checked by walking up to it)."""
        if not message_ids:
            return {}
        marks = ", ".join("?" for _ in message_ids)
        with self._cursor() as cur:
            candidates = cur.execute(
                "SELECT message_id, node_id, depth FROM hitl_messages WHERE thread_id = ? AND "
                f"checkpoint_ns = ? AND message_id IN ({marks})",
                (*self._key, *message_ids),
            ).fetchall()
            if not candidates:
                return {}
            found = cur.execute(
                "SELECT depth FROM hitl_messages WHERE thread_id = ? AND checkpoint_ns = ? "
                "AND node_id = ?",
                (*self._key, tail),
            ).fetchone()
            if found is None:
                raise MissingMessage(self._key[0])
            tail_depth = found[0]
            shallowest = min(depth for _, _, depth in candidates)
            on_branch = {
                node_id
                for (node_id,) in cur.execute(
                    _CHAIN + "SELECT node_id FROM chain",
                    (*self._key, tail, *self._key, tail_depth - shallowest + 1),
                )
            }
        return {mid: depth for mid, node_id, depth in candidates if node_id in on_branch}


def reachable_nodes(
    cur: Cursor, thread_id: str, checkpoint_ns: str, tails: Iterable[str]
) -> set[str]:
    """Every message node on the branches ending at these tails."""
    found: set[str] = set()
    for tail in tails:
        if tail in found:
            continue
        found.update(
            node_id
            for (node_id,) in cur.execute(
                _CHAIN + "SELECT node_id FROM chain",
                (thread_id, checkpoint_ns, tail, thread_id, checkpoint_ns, 1 << 62),
            )
        )
    return found


def tails_of(channel_values: dict[str, Any]) -> list[str]:
    """The message nodes a stored checkpoint's references point at."""
    return [
        value[LOG_REF_KEY]
        for value in channel_values.values()
        if is_log_ref(value) and value[LOG_REF_KEY] is not None
    ]


def delete_unreachable(
    cur: Cursor,
    thread_id: str,
    checkpoint_ns: str,
    keep_tails: Iterable[str],
    *,
    max_depth: int | None = None,
) -> int:
    """Delete the thread's message rows that no kept checkpoint's branch reaches (with
    `max_depth`, only those at most that deep: rows a run appends meanwhile are deeper)."""
    keep = reachable_nodes(cur, thread_id, checkpoint_ns, keep_tails)
    cur.execute("CREATE TEMP TABLE IF NOT EXISTS _hitl_keep (node_id TEXT PRIMARY KEY)")
    cur.execute("DELETE FROM _hitl_keep")
    cur.executemany("INSERT INTO _hitl_keep VALUES (?)", [(n,) for n in keep])
    cur.execute(
        "DELETE FROM hitl_messages WHERE thread_id = ? AND checkpoint_ns = ? AND depth <= ? "
        "AND node_id NOT IN (SELECT node_id FROM _hitl_keep)",
        (thread_id, checkpoint_ns, (1 << 62) if max_depth is None else max_depth),
    )
    deleted: int = cur.rowcount
    cur.execute("DELETE FROM _hitl_keep")
    return deleted


def is_message_list(value: object) -> bool:
    """Whether a channel value is a conversation the graph's message channel marked as one
    (a new thread's, or an older checkpoint's list), to be stored as a log too. A plain
    `add_messages` list is left as it is: that channel could not read a reference back."""
    return isinstance(value, list) and bool(getattr(value, "is_message_log", False))


CHECK_NODE = "SELECT 1 FROM hitl_messages WHERE thread_id = ? AND checkpoint_ns = ? AND node_id = ?"
"""The saver checks, in the transaction that commits a checkpoint, that the stored message
its new messages follow is still there."""


def stored_base(nodes: Sequence[Node], tail: str | None) -> str | None:
    """The stored node a history's new messages follow (its tail, if nothing is new)."""
    return nodes[0][1] if nodes else tail


def content_rows(
    thread_id: str, checkpoint_ns: str, messages: Sequence[Any], dumps: Dumps
) -> tuple[list[tuple[Any, ...]], str | None]:
    """Rows for a plain list of messages, each node named by its content and its parent's
    name (so storing the same list again, at the next step, adds nothing); and its tail."""
    rows: list[tuple[Any, ...]] = []
    parent: str | None = None
    for depth, message in enumerate(messages):
        type_, blob = dumps(message)
        digest = hashlib.sha256(f"{parent}\0{type_}\0".encode() + blob).hexdigest()[:32]
        rows.append((thread_id, checkpoint_ns, digest, parent, depth, message.id, type_, blob))
        parent = digest
    return rows, parent
