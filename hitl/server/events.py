"""Live events for the SSE streams: published from worker threads, read by async handlers.

Events are hints for screens, not a log: a subscriber that falls behind loses the oldest
ones, and every stream starts with the current state, so a reader can always catch up.
"""

import asyncio
import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

INBOX = "inbox"
"""The topic of inbox changes (approvals requested, decided, expired, settled)."""
QUEUE_SIZE = 256


def thread_topic(thread_id: str) -> str:
    return f"thread:{thread_id}"


def run_topic(run_id: str) -> str:
    """One run's `run` events only: a waiter on a run costs the workers nothing more (a
    thread's subscribers make them build `state` and `update` events)."""
    return f"run:{run_id}"


@dataclass(frozen=True)
class Event:
    id: int
    name: str
    data: dict[str, Any]

    def sse(self) -> str:
        """The event in `text/event-stream` framing."""
        return f"id: {self.id}\nevent: {self.name}\ndata: {json.dumps(self.data, default=str)}\n\n"


class EventBus:
    """Topics with any number of subscribers on any event loop; publish from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[Event]]]]
        self._subscribers = {}
        self._ids = itertools.count(1)

    def publish(self, topic: str, name: str, data: dict[str, Any]) -> None:
        event = Event(next(self._ids), name, data)
        with self._lock:
            subscribers = list(self._subscribers.get(topic, ()))
        for loop, queue in subscribers:
            with suppress(RuntimeError):  # its loop has closed
                loop.call_soon_threadsafe(_offer, queue, event)

    def has_subscribers(self, topic: str) -> bool:
        """Whether anyone listens (so a publisher can skip building an event)."""
        with self._lock:
            return bool(self._subscribers.get(topic))

    @contextmanager
    def subscription(self, topic: str) -> Iterator["asyncio.Queue[Event]"]:
        """A queue of `topic`'s events from now on, for the caller's event loop."""
        queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_SIZE)
        entry = (asyncio.get_running_loop(), queue)
        with self._lock:
            self._subscribers.setdefault(topic, set()).add(entry)
        try:
            yield queue
        finally:
            with self._lock:
                self._subscribers[topic].discard(entry)
                if not self._subscribers[topic]:
                    del self._subscribers[topic]


def _offer(queue: "asyncio.Queue[Event]", event: Event) -> None:
    if queue.full():  # a slow reader loses the oldest hint, never blocks the publisher
        queue.get_nowait()
    queue.put_nowait(event)
