"""Rows waiting for their commit, one buffer per graph thread (the PostgreSQL saver's).

A commit takes one thread's rows, so a row the database refuses fails only its own run. A
thread's commits take turns (its rows land in order: a checkpoint may refer to a blob an
earlier step wrote), and whoever asks for a thread's rows to be committed (its commit point,
or a read) waits for a commit of them under way: it returns only once they are on disk, or
raises if they were dropped. Other threads' commits do not wait for it.

A failed commit drops its rows, and the rows its run buffered meanwhile (they follow them);
the run is then stopped at its commit point (`StepsLost`), or at its next step if it goes on
from a checkpoint that was dropped: it never commits a checkpoint that refers to rows that are
not there. A run that starts again from what is on disk is not stopped.
"""

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from hitl.checkpoints.errors import StepsLost

Writes = list[tuple[Any, list[tuple[Any, ...]]]]
Writer = Callable[[], AbstractContextManager[Callable[[Writes], None]]]
"""Opens what a commit needs (a connection) and gives the function that writes rows in one
transaction: rows are taken from their buffer only once it is open, so a wait for a
connection that times out drops nothing."""
LOST_THREADS_KEPT = 4096
"""How many threads with dropped rows are remembered (the newest): far more than can be
running in one process at once."""


@dataclass(frozen=True)
class _Step:
    """A step's rows as buffered: their number (in the order of every thread's steps) and the
    checkpoint they save, if they save one."""

    number: int
    checkpoint_id: str | None
    rows: Writes


@dataclass
class _Dropped:
    """What failed commits dropped of one thread: why, which checkpoints, which rows."""

    reason: str  # (the exception's words: kept, it would keep its frames and rows alive)
    checkpoints: set[str] = field(default_factory=set)
    batches: list[tuple[int, int]] = field(default_factory=list)  # first and last row numbers

    def holds(self, number: int) -> bool:
        return any(first <= number <= last for first, last in self.batches)


class ThreadBuffers:
    """Each graph thread's rows, in order, until a commit (see the module doc). Thread-safe."""

    def __init__(self, writer: Writer, *, where: str) -> None:
        self._writer = writer
        self._where = where  # the database, for `StepsLost`
        self._rows: dict[str, list[_Step]] = {}  # thread → its buffered steps, in order
        self._in_flight: set[str] = set()  # threads whose rows a commit is writing now
        self._dropped: dict[str, _Dropped] = {}
        self._numbered = 0
        self._lock = threading.Lock()  # held only to look, add or take
        self._turns: dict[str, tuple[threading.Lock, int]] = {}  # thread → its commits' lock, users
        self.commits = 0

    def add(
        self,
        thread_id: str,
        rows: Writes,
        *,
        checkpoint_id: str | None = None,
        follows: str | None = None,
    ) -> int:
        """Buffer a step's rows (a checkpoint's, `checkpoint_id`, or a task's writes) that
        follow the checkpoint `follows`; their number. `StepsLost` if that one was dropped."""
        with self._lock:
            dropped = self._dropped.get(thread_id)
            if dropped is not None and follows is not None and follows in dropped.checkpoints:
                if checkpoint_id is not None:  # (and what follows this one too)
                    dropped.checkpoints.add(checkpoint_id)
                raise StepsLost(self._where, thread_id, dropped.reason)
            self._numbered += 1
            self._rows.setdefault(thread_id, []).append(_Step(self._numbered, checkpoint_id, rows))
            return self._numbered

    def commit(self, thread_id: str, number: int | None = None) -> None:
        """Return once the thread's buffered rows are committed (by this call, or by one under
        way); with `number` (a row's), `StepsLost` if a failed commit dropped that row. A
        failure of this call's own commit is raised as it is."""
        with self._lock:
            pending = thread_id in self._rows or thread_id in self._in_flight
            if not pending:
                self._refuse_dropped(thread_id, number)
                return
        with self._turn(thread_id):
            with self._lock:
                self._refuse_dropped(thread_id, number)
                if thread_id not in self._rows:
                    return  # committed by the commit this one waited for
            with self._writer() as write:
                with self._lock:
                    taken = self._rows.pop(thread_id, [])
                    self._in_flight.add(thread_id)
                try:
                    write([statement for step in taken for statement in step.rows])
                except BaseException as e:
                    self._drop(thread_id, taken, e)
                    raise
                finally:
                    with self._lock:
                        self._in_flight.discard(thread_id)
            with self._lock:
                self.commits += 1

    def commit_all(self) -> Iterator[BaseException]:
        """Commit every thread's rows, each thread's apart; the failures (each dropped its
        rows, and their run is told)."""
        with self._lock:
            threads = set(self._rows) | self._in_flight
        for thread_id in threads:
            try:
                self.commit(thread_id)
            except Exception as e:
                yield e

    @contextmanager
    def _turn(self, thread_id: str) -> Iterator[None]:
        """The thread's commits, one at a time (a lock of its own, kept while anyone wants it)."""
        with self._lock:
            lock, users = self._turns.get(thread_id, (threading.Lock(), 0))
            self._turns[thread_id] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._lock:
                lock, users = self._turns[thread_id]
                if users == 1:
                    del self._turns[thread_id]
                else:
                    self._turns[thread_id] = (lock, users - 1)

    def _refuse_dropped(self, thread_id: str, number: int | None) -> None:
        dropped = self._dropped.get(thread_id)
        if number is not None and dropped is not None and dropped.holds(number):
            raise StepsLost(self._where, thread_id, dropped.reason)

    def _drop(self, thread_id: str, taken: list[_Step], cause: BaseException) -> None:
        with self._lock:
            dropped = self._dropped.pop(thread_id, None) or _Dropped(str(cause))
            dropped.reason = str(cause)
            taken = taken + self._rows.pop(thread_id, [])  # buffered meanwhile: they follow
            dropped.checkpoints |= {s.checkpoint_id for s in taken if s.checkpoint_id is not None}
            if taken:
                dropped.batches.append((taken[0].number, taken[-1].number))
            self._dropped[thread_id] = dropped  # (the newest last)
            if len(self._dropped) > LOST_THREADS_KEPT:
                del self._dropped[next(iter(self._dropped))]
