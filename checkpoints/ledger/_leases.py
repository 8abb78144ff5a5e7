"""Who is running a thread: runner tokens, leases, and whether a runner is still alive.

`ThreadLeases` is the ledger's part that holds a thread's lease (one runner per thread). On
SQLite a lease is a locked file beside the database (`<file>-leases/`), not a row: every
process that can open the file runs on this host, a lock costs no commit, and the kernel
drops it when its process dies. On PostgreSQL, whose processes may run on several hosts, it
is a row of `hitl_leases` with an expiry its holder keeps pushing.

A token is `host:pid:nonce:nonce`, one per lease hold or tool-call attempt. While a token is
live its process holds an exclusive `flock` on a small file named after it, in a folder shared
by the host's processes: any process on this host can test it, the kernel drops it the moment
the process dies (even by `kill -9`), a paused process keeps it, and a token its process is
done with (or never held) is dead whatever else that process does. A token of another host is
alive while its lease in the database has not expired.
"""

import contextlib
import fcntl
import hashlib
import os
import re
import socket
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from hitl.checkpoints.database import (
    LOCK_WAIT_SECONDS,
    Cursor,
    Store,
    execute_later,
    main_file,
)
from hitl.checkpoints.errors import DatabaseBusy, DatabaseError, ThreadBusy
from hitl.checkpoints.ledger._renewal import LeaseRenewer

LEASE_TTL_SECONDS = 30.0
"""How long a lease lasts unless renewed (its holder renews it every third of that)."""

_process_tokens: dict[int, str] = {}  # by pid, so a forked child makes its own
_held: dict[str, int] = {}  # this process's live tokens → the descriptor holding their lock
_held_lock = threading.Lock()
_renewers_lock = threading.Lock()
_releases_lock = threading.Lock()


def runner_token() -> str:
    """This process's token, made on first use (never at import time)."""
    pid = os.getpid()
    if pid not in _process_tokens:
        _process_tokens[pid] = f"{host_id()}:{pid}:{uuid.uuid4().hex[:8]}"
    return _process_tokens[pid]


def new_token() -> str:
    """A token for one lease hold or one execution attempt."""
    return f"{runner_token()}:{uuid.uuid4().hex[:8]}"


_TOKEN = re.compile(r"(?P<host>[^:~]+)~[0-9a-f]{8}:(?P<pid>\d+):[0-9a-f]{8}:[0-9a-f]{8}")


@dataclass(frozen=True)
class RunnerProcess:
    """Which process a token names: what a person needs of it (the nonces say nothing)."""

    host: str
    """The host name, without the id of its lock folder."""
    pid: int


def runner_process(token: str) -> RunnerProcess | None:
    """The host and process of a token made by `new_token`; None for any other text (a
    person's name, `policy`, `deadline`)."""
    found = _TOKEN.fullmatch(token)
    if found is None:
        return None
    return RunnerProcess(found["host"], int(found["pid"]))


def mark_live(token: str) -> None:
    """Hold the token's lock until `mark_done` (or until this process dies)."""
    with _held_lock:
        if token in _held:
            return
        fd = os.open(_lock_file(token), os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new token: nobody else holds it
        _held[token] = fd


def mark_done(token: str) -> None:
    """Release the token: from now on every process sees it dead."""
    with _held_lock:
        fd = _held.pop(token, None)
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(_lock_file(token))
        os.close(fd)


def alive_on_this_host(token: str) -> bool | None:
    """True or False for a token of this host; None when this host cannot tell."""
    parts = token.split(":")
    if len(parts) < 4 or parts[0] != host_id() or not parts[1].isdigit():
        return None
    if int(parts[1]) == os.getpid():
        with _held_lock:
            return token in _held
    try:
        fd = os.open(_lock_file(token), os.O_RDONLY)
    except FileNotFoundError:
        return False  # released, or never held
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True  # its process holds it
    finally:
        os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(_lock_file(token))  # its process died holding it: tidy up
    return False


@cache
def host_id() -> str:
    """This host as tokens name it: the host name and the id of its lock folder.

    Two containers may share a host name (and pid 1) but not their `/tmp`: with the folder's
    id in it, a token from the other one is not judged by this one's locks (it is another
    host, alive while its lease lasts), so neither takes the other's runs for dead.
    """
    marker = _live_folder() / ".host-id"
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        for _ in range(50):  # its creator may not have written it yet
            if folder_id := marker.read_text().strip():
                break
            time.sleep(0.01)
    else:
        folder_id = uuid.uuid4().hex[:8]
        with os.fdopen(fd, "w") as f:
            f.write(folder_id)
    return f"{socket.gethostname()}~{folder_id}"


def _lock_file(token: str) -> str:
    return str(_live_folder() / hashlib.sha256(token.encode()).hexdigest()[:32])


@cache
def _live_folder() -> Path:
    """The host-wide folder of token locks, made on first use, writable by every user."""
    folder = Path(tempfile.gettempdir()) / "hitl-live"
    folder.mkdir(exist_ok=True)
    with contextlib.suppress(PermissionError):
        folder.chmod(0o1777)  # sticky: anyone may add a lock, only its owner remove it
    return folder


def lease_holder(cur: Cursor, thread_id: str) -> str | None:
    """The live holder of a thread's lease, or None if it is free, expired or its holder died."""
    if isinstance(cur, sqlite3.Cursor):
        db_file = main_file(cur)
        return file_lease_holder(lease_file(db_file, thread_id)) if db_file else None
    row = cur.execute(
        "SELECT holder, expires_at FROM hitl_leases WHERE thread_id = ?", (thread_id,)
    ).fetchone()
    if row is None:
        return None
    here = alive_on_this_host(row[0])
    if here is not None:  # on this host, liveness decides: a paused holder keeps its lease
        return str(row[0]) if here else None
    return str(row[0]) if row[1] >= time.time() else None


def lease_file(db_file: str, thread_id: str) -> str:
    """The file whose lock is the thread's lease on the SQLite file `db_file`."""
    name = hashlib.sha256(thread_id.encode()).hexdigest()[:32]
    return os.path.join(f"{db_file}-leases", name)


def try_file_lease(path: str, holder: str) -> tuple[int | None, str | None]:
    """Lock the lease file at `path` for `holder`: (its descriptor, None); or (None, the
    holder it names) if a live process holds it. The file names its holder while held and is
    removed when released; a file left by a process that died is taken over. A file this user
    may not open is `DatabaseError` (the folder and its files must be writable by every user
    that runs threads of the database)."""
    folder = os.path.dirname(path)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except FileNotFoundError:
            _make_lease_folder(folder)
            continue
        except PermissionError as e:
            raise DatabaseError(folder, e) from e
        if os.fstat(fd).st_uid == os.getuid():
            with contextlib.suppress(OSError):
                os.fchmod(fd, 0o666)  # whoever holds it next may be another user
        if not _lock_briefly_contended(fd, fcntl.LOCK_EX):
            named = os.pread(fd, 512, 0).decode("utf-8", "replace").strip()
            os.close(fd)
            return None, named or "another process"
        if not _still_at(path, fd):  # released (removed) between our open and our lock
            os.close(fd)
            continue
        name = holder.encode()
        left = os.fstat(fd).st_size  # (under the lock: a name nobody can change meanwhile)
        # over a longer name left by a holder that died: padded (readers strip it), then
        # cut; never truncated to nothing first: ext4 then flushes the file when it is closed,
        # as for a file rewritten in place (~150 µs a lease)
        os.pwrite(fd, name.ljust(left), 0)
        if left > len(name):
            os.ftruncate(fd, len(name))
        return fd, None


def _make_lease_folder(folder: str) -> None:
    """The lease folder, open to whoever may write the database (as SQLite's `-wal` and `-shm`
    files are: they take the database file's permissions), whatever this process's umask."""
    os.makedirs(folder, exist_ok=True)
    db_file = folder.removesuffix("-leases")
    with contextlib.suppress(OSError):
        mode = os.stat(db_file).st_mode & 0o666
        os.chmod(folder, mode | (mode & 0o444) >> 2)  # searchable where readable


def drop_file_lease(path: str, fd: int) -> None:
    """Release a lease `try_file_lease` took: remove its file while still holding the lock (a
    process that opened it before sees, once it has the lock, that it is gone), then unlock."""
    with contextlib.suppress(OSError):
        os.unlink(path)
    os.close(fd)


def file_lease_holder(path: str) -> str | None:
    """Who holds the lease file at `path`, or None if nobody does (or its holder died)."""
    while True:
        try:
            fd = os.open(path, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            if not _lock_briefly_contended(fd, fcntl.LOCK_SH):
                return os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
            if _still_at(path, fd):
                return None
        finally:
            os.close(fd)  # (and with it our shared lock)
        # released and taken again between our open and our lock: look at the new file


def _lock_briefly_contended(fd: int, kind: int) -> bool:
    """Take `kind` of lock on `fd` without waiting on a holder, but through a reader's moment
    (`file_lease_holder` locks a file shared for microseconds): False if it stays held."""
    for attempt in range(3):
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt < 2:
                time.sleep(0.001)
    return False


def _still_at(path: str, fd: int) -> bool:
    """Whether the file open at `fd` is still the one at `path` (not removed or replaced)."""
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def try_lease(cur: Cursor, thread_id: str, holder: str, ttl: float) -> str | None:
    """Take (or renew) the lease for `holder`, under the write lock; return the other live
    holder if it is taken. A free thread's row is inserted at once (one statement: with the
    lock's, one exchange); a row there is judged (its holder dead or expired: taken over)."""
    expires_at = time.time() + ttl
    inserted = cur.execute(
        "INSERT INTO hitl_leases (thread_id, holder, expires_at) VALUES (?, ?, ?) "
        "ON CONFLICT (thread_id) DO NOTHING RETURNING holder",
        (thread_id, holder, expires_at),
    ).fetchone()
    if inserted is not None:
        return None
    current = lease_holder(cur, thread_id)
    if current is not None and current != holder:
        return current
    cur.execute(
        "UPDATE hitl_leases SET holder = ?, expires_at = ? WHERE thread_id = ?",
        (holder, expires_at, thread_id),
    )
    return None


def runner_alive(cur: Cursor, thread_id: str, runner: str) -> bool:
    """Whether the attempt that started a call of this thread may still be executing it."""
    here = alive_on_this_host(runner)
    if here is not None:
        return here
    holder = lease_holder(cur, thread_id)  # another host: alive while its process's lease is
    return holder is not None and holder.rsplit(":", 1)[0] == runner.rsplit(":", 1)[0]


class ThreadLeases(Store):
    """The ledger's thread leases (a part of `Ledger`): one runner per thread at a time."""

    @contextlib.contextmanager
    def lease(
        self, thread_id: str, *, wait: float = LOCK_WAIT_SECONDS, ttl: float = LEASE_TTL_SECONDS
    ) -> Iterator[str]:
        """Hold the thread's lease (waiting up to `wait` seconds); renewed while held.

        A lease whose holder is gone (on this host: no longer holds its token's lock; on
        another: stopped renewing) is taken over at once. On SQLite it is a file lock (see the
        module doc): `ttl` does not apply, the kernel frees it when its holder dies.
        """
        if self._file:
            with self._file_lease(thread_id, wait) as holder:
                yield holder
            return
        holder = new_token()
        deadline = time.monotonic() + wait
        delay = 0.01
        while True:
            mark_live(holder)  # before the commit: anyone who reads the new row sees it alive
            # unsynced on SQLite: the crash that could lose it ends the holder it names
            current = self._write(lambda cur: try_lease(cur, thread_id, holder, ttl), durable=False)
            if current is None:
                break
            mark_done(holder)
            if time.monotonic() >= deadline:
                raise ThreadBusy(thread_id, current)
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
        renewer = self._renewer()
        renewer.hold(thread_id, holder, ttl)
        at_release = self._keep_for_release(thread_id, holder)
        try:
            yield holder
        finally:
            renewer.drop(holder)
            mark_done(holder)  # from now on the row, if it stays, names a dead holder
            self._keep_for_release(thread_id, holder, done=True)

            def release(cur: Cursor) -> None:
                for work in at_release:
                    work(cur)
                execute_later(  # (with the COMMIT)
                    cur,
                    "DELETE FROM hitl_leases WHERE thread_id = ? AND holder = ?",
                    (thread_id, holder),
                )

            # never mask the block's own error
            with contextlib.suppress(DatabaseBusy, DatabaseError):
                self._write(release, durable=False)

    @contextlib.contextmanager
    def _file_lease(self, thread_id: str, wait: float) -> Iterator[str]:
        """`lease` on a SQLite file: a lock on a file beside it; work kept for the release
        (`at_release`) is one unsynced write then."""
        holder = new_token()
        path = lease_file(self._file, thread_id)
        deadline = time.monotonic() + wait
        delay = 0.01
        while True:
            fd, current = try_file_lease(path, holder)
            if fd is not None:
                break
            if time.monotonic() >= deadline:
                raise ThreadBusy(thread_id, current or "another process")
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
        at_release = self._keep_for_release(thread_id, holder)
        try:
            yield holder
        finally:
            self._keep_for_release(thread_id, holder, done=True)
            try:
                if at_release:  # never mask the block's own error
                    with contextlib.suppress(DatabaseBusy, DatabaseError):
                        self._write(lambda cur: [w(cur) for w in at_release], durable=False)
            finally:
                drop_file_lease(path, fd)

    def at_release(self, thread_id: str, work: Callable[[Cursor], object]) -> bool:
        """Run `work` in the transaction that releases the thread's lease this process holds
        (unsynced, as the release): one commit instead of two, for bookkeeping that may wait
        that long and be lost with it. False (nothing kept) if no lease of it is held here."""
        with _releases_lock:
            for (leased, _), works in self._releases().items():
                if leased == thread_id:
                    works.append(work)
                    return True
        return False

    def _keep_for_release(
        self, thread_id: str, holder: str, *, done: bool = False
    ) -> list[Callable[[Cursor], object]]:
        """The list `at_release` fills for this hold (made now; with `done`, taken out)."""
        with _releases_lock:
            if done:
                return self._releases().pop((thread_id, holder), [])
            kept: list[Callable[[Cursor], object]] = []
            self._releases()[(thread_id, holder)] = kept
            return kept

    def _releases(self) -> dict[tuple[str, str], list[Callable[[Cursor], object]]]:
        """The work each lease held here runs when released (call with `_releases_lock`)."""
        found: dict[tuple[str, str], list[Callable[[Cursor], object]]] | None
        found = self.__dict__.get("_lease_releases")
        if found is None:
            found = self.__dict__["_lease_releases"] = {}
        return found

    def _renewer(self) -> LeaseRenewer:
        """This ledger's renewer of held leases, made on first use."""
        with _renewers_lock:
            renewer: LeaseRenewer | None = self.__dict__.get("_lease_renewer")
            if renewer is None:
                renewer = self.__dict__["_lease_renewer"] = LeaseRenewer(self._renew)
            return renewer

    def _renew(self, thread_id: str, holder: str, ttl: float) -> None:
        """Push the lease's expiry (the renewer's beat, every third of `ttl`)."""
        self._write(
            lambda cur: cur.execute(
                "UPDATE hitl_leases SET expires_at = ? WHERE thread_id = ? AND holder = ?",
                (time.time() + ttl, thread_id, holder),
            ),
            durable=False,
        )
