"""Renewing a ledger's held leases from one thread, not one thread per lease.

A thread per hold cost every lease a thread start and a join, each a wait for the scheduler
(milliseconds on a busy machine), twice per approval cycle. The renewer starts with the first
lease, pushes each held lease's expiry every third of its TTL, and ends once no lease has
been held for `LINGER_SECONDS`. Dropping a lease waits for a renewal of it in flight, as the
join did: after `drop` nothing writes for that holder again.
"""

import threading
import time
from collections.abc import Callable

from hitl.checkpoints.errors import DatabaseBusy, DatabaseError

LINGER_SECONDS = 5.0
"""How long the renewer waits for a next lease before its thread ends."""

Renew = Callable[[str, str, float], None]
"""Push a lease's expiry: (thread_id, holder, ttl)."""


class LeaseRenewer:
    """Renews every lease `hold` registers until it is dropped, from one thread."""

    def __init__(self, renew: Renew, *, linger: float = LINGER_SECONDS) -> None:
        self._renew = renew
        self._linger = linger
        self._held: dict[str, tuple[str, float, float]] = {}  # holder → thread, ttl, due
        self._renewing: str | None = None
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def hold(self, thread_id: str, holder: str, ttl: float) -> None:
        """Renew `holder`'s lease of `thread_id` every `ttl / 3` seconds from now on."""
        with self._cond:
            self._held[holder] = (thread_id, ttl, time.monotonic() + ttl / 3)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="hitl-lease-renewer", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def drop(self, holder: str) -> None:
        """Stop renewing `holder`'s lease; returns once no renewal of it is in flight."""
        with self._cond:
            self._held.pop(holder, None)
            while self._renewing == holder:
                self._cond.wait()
            self._cond.notify_all()

    def _run(self) -> None:
        with self._cond:
            while True:
                if not self._held:
                    if not self._cond.wait(self._linger) and not self._held:
                        self._thread = None  # idle: the next `hold` starts another
                        return
                    continue
                holder, (thread_id, ttl, due) = min(self._held.items(), key=lambda h: h[1][2])
                if (left := due - time.monotonic()) > 0:
                    self._cond.wait(left)
                    continue
                self._held[holder] = (thread_id, ttl, time.monotonic() + ttl / 3)
                self._renewing = holder
                self._cond.release()  # hold and drop go on meanwhile (drop of it waits)
                try:
                    self._renew(thread_id, holder, ttl)
                except (DatabaseBusy, DatabaseError):
                    pass  # the next beat tries again; a lease outlives a few missed beats
                finally:
                    self._cond.acquire()
                    self._renewing = None
                    self._cond.notify_all()
