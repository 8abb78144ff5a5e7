"""The conversation channel: appends without reading the history, reads it only on demand.

`add_messages` keeps the conversation as one list that every checkpoint stores in full, so a
long-lived thread writes its whole history at every step. `MessageLogChannel` has the same
semantics (append; a message with a known ID replaces it; `RemoveMessage`) but its value is a
`MessageHistory`: the part a checkpoint saver stored (read lazily, newest first, through the
saver) plus the messages appended since. A saver that knows the log (the project's) stores
each message once and a small reference per checkpoint; any other saver gets a plain list and
behaves exactly as with `add_messages`.
"""

import threading
import uuid
from collections.abc import Collection, Iterator, Sequence
from typing import Any, Protocol, Self, cast, overload, runtime_checkable

from langchain_core.messages import (
    AnyMessage,
    RemoveMessage,
    convert_to_messages,
    message_chunk_to_message,
)
from langgraph.channels.base import BaseChannel
from langgraph.errors import EmptyChannelError, ErrorCode, InvalidUpdateError, create_error_message
from langgraph.graph.message import add_messages

from hitl.compat import MISSING, get_overwrite

Node = tuple[str, str | None, int, AnyMessage]
"""One message of the log: (node_id, parent_id, depth, message); depth is its index."""

FIRST_READ = 8
"""How many of the newest stored messages the first lazy read fetches (then doubling)."""


@runtime_checkable
class SavedMessages(Protocol):
    """The port a saver implements: a stored branch of the conversation, read on demand."""

    tail: str | None
    length: int

    def load(self, tail: str, limit: int) -> list[Node]:
        """Up to `limit` messages of the branch ending at node `tail`, oldest first."""
        ...

    def depths_of(self, tail: str, message_ids: Sequence[str]) -> dict[str, int]:
        """Which of these message IDs are on the branch ending at `tail`, at what depth."""
        ...


class _StoredPart:
    """The stored part of a history, read from the newest message backwards, each once.

    Shared by every history derived from the same loaded checkpoint, so what one step read
    the next need not read again.
    """

    def __init__(self, saved: SavedMessages) -> None:
        self.saved = saved
        self.length = saved.length
        self._newest_first: list[AnyMessage] = []
        self._next: str | None = saved.tail  # the node the next read starts at
        self._lock = threading.Lock()

    def newest(self, count: int) -> list[AnyMessage]:
        """The newest `count` stored messages, newest first (reading more if needed)."""
        count = min(count, self.length)
        with self._lock:
            while len(self._newest_first) < count:
                if self._next is None:  # the branch ended early: never guess, never loop
                    raise LookupError(
                        f"the stored conversation holds {len(self._newest_first)} of its "
                        f"{self.length} messages; restore the database from a backup"
                    )
                want = max(count - len(self._newest_first), FIRST_READ, len(self._newest_first))
                nodes = self.saved.load(self._next, want)
                if not nodes:
                    raise LookupError(
                        f"the stored conversation is missing message node {self._next!r}; "
                        "restore the database from a backup"
                    )
                self._newest_first.extend(node[3] for node in reversed(nodes))
                self._next = nodes[0][1]
            return self._newest_first[:count]

    def read_depths(self, message_ids: Collection[str]) -> dict[str, int] | None:
        """The depth of each of these message IDs among the stored messages, if every one of
        them has been read already (a short thread's first read takes them all); else None."""
        with self._lock:
            if len(self._newest_first) < self.length:
                return None
            newest = self.length - 1
            return {
                m.id: newest - k
                for k, m in enumerate(self._newest_first)
                if m.id is not None and m.id in message_ids
            }

    @property
    def in_memory(self) -> bool:
        """Whether reading it needs no database (a saver read it all up front)."""
        return bool(getattr(self.saved, "in_memory", False))

    def at(self, index: int) -> AnyMessage:
        return self.newest(self.length - index)[-1]


class MessageHistory(Sequence[AnyMessage]):
    """An immutable conversation: a stored part, read lazily, plus messages appended since.

    Reading the newest messages (`[-1]`, `reversed`) reads only those; `len` reads nothing;
    iterating from the start reads everything once.
    """

    __slots__ = ("_appended", "_stored")

    def __init__(self, stored: _StoredPart | None = None, appended: tuple[Node, ...] = ()) -> None:
        self._stored = stored
        self._appended = appended

    @classmethod
    def of(cls, saved: SavedMessages) -> "MessageHistory":
        return cls(_StoredPart(saved))

    @classmethod
    def from_messages(cls, messages: Sequence[AnyMessage]) -> "MessageHistory":
        return cls().appending(messages)

    # the saver's side

    @property
    def tail(self) -> str | None:
        """The newest message's node."""
        if self._appended:
            return self._appended[-1][0]
        return self._stored.saved.tail if self._stored else None

    @property
    def length(self) -> int:
        return len(self)

    @property
    def is_stored(self) -> bool:
        """Whether part of it came from a saver that stores the log."""
        return self._stored is not None

    def unsaved(self) -> tuple[Node, ...]:
        """The messages appended since the stored part was loaded."""
        return self._appended

    # appending

    def appending(self, messages: Sequence[AnyMessage]) -> "MessageHistory":
        """This history with `messages` (new IDs only) added at the end."""
        nodes = list(self._appended)
        parent, depth = self.tail, len(self)
        for message in messages:
            node_id = uuid.uuid4().hex
            nodes.append((node_id, parent, depth, message))
            parent, depth = node_id, depth + 1
        return MessageHistory(self._stored, tuple(nodes))

    def depths_of(self, message_ids: Sequence[str]) -> dict[str, int]:
        """The index of each of these message IDs in the history, if it holds it."""
        found = {n[3].id: n[2] for n in self._appended if n[3].id in message_ids}
        rest = [i for i in message_ids if i not in found]
        if rest and self._stored is not None and self._stored.saved.tail is not None:
            read = self._stored.read_depths(set(rest))
            if read is None:  # not all read yet: ask the saver's index
                read = self._stored.saved.depths_of(self._stored.saved.tail, rest)
            found.update(read)
        return cast(dict[str, int], found)

    # Sequence

    def __len__(self) -> int:
        return (self._stored.length if self._stored else 0) + len(self._appended)

    @overload
    def __getitem__(self, index: int) -> AnyMessage: ...
    @overload
    def __getitem__(self, index: slice) -> list[AnyMessage]: ...
    def __getitem__(self, index: int | slice) -> AnyMessage | list[AnyMessage]:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step == 1 and self._stored is not None:  # read from the newest back to `start`
                if stop <= start:
                    return []
                stored = self._stored.length
                older = self._stored.newest(stored - start)[::-1] if start < stored else []
                newer = [node[3] for node in self._appended[max(0, start - stored) :]]
                return [*older, *newer][: stop - start]
            return list(self)[index]
        size = len(self)
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError("message index out of range")
        stored = self._stored.length if self._stored else 0
        if index >= stored:
            return self._appended[index - stored][3]
        assert self._stored is not None
        return self._stored.at(index)

    def __iter__(self) -> Iterator[AnyMessage]:
        if self._stored is not None:
            yield from reversed(self._stored.newest(self._stored.length))
        for node in self._appended:
            yield node[3]

    def __reversed__(self) -> Iterator[AnyMessage]:
        for node in reversed(self._appended):
            yield node[3]
        if self._stored is None:
            return
        read = 0
        while read < self._stored.length:
            batch = self._stored.newest(max(FIRST_READ, 2 * read))
            yield from batch[read:]
            read = len(batch)

    def __add__(self, other: Sequence[AnyMessage]) -> list[AnyMessage]:
        return [*self, *other]

    def __radd__(self, other: Sequence[AnyMessage]) -> list[AnyMessage]:
        return [*other, *self]

    def as_message_list(self) -> list[AnyMessage]:
        """The plain list (what a serializer writes when a node returns this history)."""
        return list(self)

    @property
    def in_memory(self) -> bool:
        """Whether reading it needs no database."""
        return self._stored is None or self._stored.in_memory

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MessageHistory | list | tuple):
            return len(self) == len(other) and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"MessageHistory({len(self)} messages)"

    def __reduce__(self) -> tuple[type[list[AnyMessage]], tuple[list[AnyMessage]]]:
        """Pickled (and deep-copied) as the plain list: the stored part reads through a
        saver's connection, which does not travel."""
        return list, (list(self),)


class MessageLogChannel(BaseChannel[MessageHistory, Any, Any]):
    """`add_messages` semantics on a `MessageHistory` (see the module doc)."""

    __slots__ = ("value",)

    def __init__(self, typ: Any = list) -> None:
        super().__init__(typ)
        self.value: MessageHistory | Any = MISSING

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MessageLogChannel)

    def __hash__(self) -> int:
        return hash(MessageLogChannel)

    @property
    def ValueType(self) -> Any:
        return list[AnyMessage]

    @property
    def UpdateType(self) -> Any:
        return list[AnyMessage] | AnyMessage

    def copy(self) -> Self:
        new = self.__class__(self.typ)
        new.key = self.key
        new.value = self.value  # immutable: shared
        return new

    def from_checkpoint(self, checkpoint: Any) -> Self:
        new = self.__class__(self.typ)
        new.key = self.key
        if checkpoint is MISSING or checkpoint is None:
            new.value = MISSING
        elif isinstance(checkpoint, MessageHistory):
            new.value = checkpoint
        elif isinstance(checkpoint, list):  # a saver that does not store the log, or older
            new.value = MessageHistory.from_messages(checkpoint)
        elif isinstance(checkpoint, SavedMessages):
            new.value = MessageHistory.of(checkpoint)
        else:
            new.value = MessageHistory.from_messages(list(checkpoint))
        return new

    def update(self, values: Sequence[Any]) -> bool:
        if not values:
            return False
        current = MessageHistory() if self.value is MISSING else self.value
        incoming: list[AnyMessage] = []
        for n, value in enumerate(values):
            is_overwrite, replacement = get_overwrite(value)
            if not is_overwrite:
                incoming.extend(_as_messages(value))
                continue
            # as BinaryOperatorAggregate: the writes before it apply, the ones after do not
            if any(get_overwrite(later)[0] for later in values[n + 1 :]):
                raise InvalidUpdateError(
                    create_error_message(
                        message="Can receive only one Overwrite value per super-step.",
                        error_code=ErrorCode.INVALID_CONCURRENT_GRAPH_UPDATE,
                    )
                )
            self.value = MessageHistory.from_messages(_as_messages(replacement or []))
            return True
        self.value = _merged(current, incoming)
        return True

    def get(self) -> MessageHistory:
        """The history; a plain list when it is all in memory (a saver that does not store
        the log, or an async runtime that read it up front), as `add_messages` gives."""
        if self.value is MISSING:
            raise EmptyChannelError()
        history = cast(MessageHistory, self.value)
        return cast(MessageHistory, list(history)) if history.in_memory else history

    def is_available(self) -> bool:
        return self.value is not MISSING

    def checkpoint(self) -> Any:
        """The history, for a saver that stores the log (it loaded it); else a plain list."""
        if self.value is MISSING:
            return MISSING
        history = cast(MessageHistory, self.value)
        return history if history.is_stored else MessageList(history)


class MessageList(list[AnyMessage]):
    """A plain list that says it is this channel's conversation: a saver that stores the log
    stores it as one; any other stores it as the list it is."""

    is_message_log = True


def _as_messages(value: Any) -> list[AnyMessage]:
    # as add_messages: a list is many messages, a tuple is one ("user", "hi")
    items = list(value) if isinstance(value, list | MessageHistory) else [value]
    messages = [
        cast(AnyMessage, message_chunk_to_message(cast(Any, m))) for m in convert_to_messages(items)
    ]
    for m in messages:
        if m.id is None:
            m.id = str(uuid.uuid4())
    return messages


def _merged(current: MessageHistory, incoming: list[AnyMessage]) -> MessageHistory:
    """`current` with `incoming` applied as `add_messages` would, appending when it can."""
    if not incoming:
        return current
    ids = [cast(str, m.id) for m in incoming]
    if (
        not any(isinstance(m, RemoveMessage) for m in incoming)
        and len(set(ids)) == len(ids)
        and not current.depths_of(ids)
    ):
        return current.appending(incoming)
    # a replacement or a removal (an edit in Studio, say): keep the stored part if the change
    # is after it, else store the whole branch anew (once; rare)
    old = list(current)
    new = cast(list[AnyMessage], add_messages(cast(Any, old), cast(Any, incoming)))
    kept = 0
    while kept < min(len(old), len(new)) and new[kept] is old[kept]:
        kept += 1
    stored = current._stored.length if current._stored else 0
    if current._stored is not None and kept >= stored:
        base = MessageHistory(current._stored, current._appended[: kept - stored])
        return base.appending(new[kept:])
    return MessageHistory.from_messages(new)
