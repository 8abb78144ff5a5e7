"""What both checkpoint savers share: conversations stored as a message log.

The saver's `put` swaps each conversation for a reference (`_logged`) and commits the new
message rows with the checkpoint or before it; a loaded checkpoint's references become
conversations that read their messages on demand (`_with_logs`).
"""

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from langgraph.checkpoint.base import Checkpoint, CheckpointTuple

from hitl.checkpoints.database import Cursor
from hitl.checkpoints.errors import MissingMessage, UntrustedCheckpointError
from hitl.checkpoints.savers import _message_log as message_log
from hitl.checkpoints.savers._message_log import (
    Node,
    SqliteMessageSource,
    is_log_ref,
)
from hitl.compat import DeltaSnapshot

Writes = list[tuple[str, list[tuple[Any, ...]]]]
"""Statements with their rows, in order."""
Statement = str | Callable[[Any], object]
"""A buffered statement (run once per row), or a whole write of a store's, run on the cursor
(`BatchingSqliteSaver.write_later`)."""


class MessageLogSaver:
    """A mixin for a checkpoint saver with `serde` and a `_reading()` cursor factory."""

    serde: Any

    def _reading(self) -> AbstractContextManager[Cursor]:
        raise NotImplementedError

    @staticmethod
    def _write_buffered(cur: Cursor, statement: Statement, rows: list[tuple[Any, ...]]) -> None:
        """Run one buffered statement; a stored message a checkpoint follows must exist."""
        if callable(statement):
            statement(cur)
        elif statement is message_log.CHECK_NODE:  # a stored message a checkpoint follows
            for row in rows:
                if cur.execute(statement, row).fetchone() is None:
                    raise MissingMessage(row[0])
        else:
            cur.executemany(statement, rows)

    def _logged(self, thread_id: str, ns: str, checkpoint: Checkpoint) -> tuple[Checkpoint, Writes]:
        """The checkpoint with each conversation replaced by a reference to its newest message,
        and the statements that store the messages not stored yet (`write_messages` runs
        them), to be committed with the checkpoint or before it."""
        values = checkpoint["channel_values"]
        refs: dict[str, Any] = {}
        rows: list[tuple[Any, ...]] = []
        statements: Writes = []
        for channel, value in values.items():
            if message_log.is_logged(value):
                # every node appended since the load, at each checkpoint of the run: a few
                # rows, ignored when present, and never a reference to a row that is not
                nodes = value.unsaved()
                base = message_log.stored_base(nodes, value.tail)
                if base is not None:
                    statements.append((message_log.CHECK_NODE, [(thread_id, ns, base)]))
                rows += message_log.node_rows(thread_id, ns, nodes, self.serde.dumps_typed)
                refs[channel] = message_log.log_ref(value.tail, value.length)
            elif message_log.is_message_list(value):
                found, tail = message_log.content_rows(thread_id, ns, value, self.serde.dumps_typed)
                rows += found
                refs[channel] = message_log.log_ref(tail, len(value))
        if not refs:
            return checkpoint, statements
        if rows:
            statements.append((message_log.INSERT_NODES, rows))
        return {**checkpoint, "channel_values": {**values, **refs}}, statements

    def _with_logs(
        self, found: CheckpointTuple | None, preload: dict[str, Node] | None = None
    ) -> CheckpointTuple | None:
        """A loaded checkpoint whose conversations read their messages on demand; or, with
        `preload` (the nodes read so far), read now, for an async caller's event loop."""
        if found is None:
            return None
        values = _channel_values(found.checkpoint)
        if not any(is_log_ref(v) for v in values.values()):
            return found
        configurable = found.config["configurable"]
        source = SqliteMessageSource(
            self._reading,
            self.serde.loads_typed,
            str(configurable["thread_id"]),
            str(configurable.get("checkpoint_ns", "")),
        )
        found.checkpoint["channel_values"] = {
            k: (source.saved(v) if preload is None else source.loaded(v, preload))
            if is_log_ref(v)
            else v
            for k, v in values.items()
        }
        return found


def _channel_values(checkpoint: Any) -> dict[str, Any]:
    """A loaded checkpoint's values; `UntrustedCheckpointError` for a row that decoded to
    something else (a forged one: say, a whole checkpoint wrapped in a delta snapshot)."""
    values = checkpoint.get("channel_values") if isinstance(checkpoint, dict) else None
    if not isinstance(values, dict):
        what = "a delta snapshot" if isinstance(checkpoint, DeltaSnapshot) else "a value"
        raise UntrustedCheckpointError(f"{what} where a checkpoint belongs")
    return values
