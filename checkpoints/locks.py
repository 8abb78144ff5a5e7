"""Per-thread locks across processes: advisory `flock` on small files beside the database.

Deciding holds the thread's lock from reading what is pending to the end of the resumed run, so
two processes answering the same call at once are serialized: the second one sees the first's
decision and is refused, and the thread's history cannot fork. (Unix only.)
"""

import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class ThreadLocks:
    """Exclusive per-thread locks, shared by every process that uses the same database."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    @classmethod
    def beside(cls, db: Path) -> "ThreadLocks":
        """Locks in `<db>.locks/`."""
        return cls(db.with_name(db.name + ".locks"))

    @contextmanager
    def hold(self, thread_id: str) -> Iterator[None]:
        """Block until no other process holds this thread, then hold it."""
        self._folder.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(thread_id.encode()).hexdigest()[:32]
        with (self._folder / name).open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
            yield
