"""The service's background work: runs from the queue, the periodic sweep and prune, inbox
changes.

Each worker thread has its own `ApprovalService` (its own connections), so threads never
share a SQLite connection or a saver's write batch.
"""

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from typing import Any

from hitl.app import open_service
from hitl.checkpoints.database import PgListener
from hitl.checkpoints.errors import ThreadBusy
from hitl.checkpoints.ledger import Ledger, mark_done, mark_live, new_token
from hitl.checkpoints.maintenance import PruneReport
from hitl.checkpoints.stores import Run, RunKind, RunQueue
from hitl.server.events import INBOX, EventBus, run_topic, thread_topic
from hitl.service.errors import DOMAIN_ERRORS, AgentFailed, Busy
from hitl.service.settings import Settings
from hitl.service.views import SweepReport
from hitl.service.workflow import SWEEP_ACTOR, ApprovalService, MovesOn

log = logging.getLogger("hitl.server")
BUSY_RETRY_SECONDS = 1.0
HEARTBEAT_SECONDS = 10.0
LATENCIES_KEPT = 10_000


class QueueRuns:
    """Move threads on in a worker: each continuation is a durable run in the queue (the
    HTTP service's way: a request answers `202` as soon as the run is queued)."""

    def __init__(self, queue: RunQueue, on_queued: Callable[[Run], None]) -> None:
        self._queue = queue
        self._on_queued = on_queued

    def resume(
        self, service: ApprovalService, thread_id: str, *, actor: str, after: str | None
    ) -> Run:
        return self._enqueue(thread_id, "resume", {}, actor)

    def send(
        self,
        service: ApprovalService,
        thread_id: str,
        prompts: list[str],
        *,
        actor: str,
        cancel_pending: bool,
    ) -> Run:
        payload = {"messages": prompts, "cancel_pending": cancel_pending}
        return self._enqueue(thread_id, "message", payload, actor)

    def has_queued_run(self, thread_id: str) -> bool:
        return bool(self._queue.of_thread(thread_id, limit=1))

    def _enqueue(self, thread_id: str, kind: RunKind, payload: dict[str, Any], actor: str) -> Run:
        run = self._queue.enqueue(thread_id, kind, payload, actor=actor)  # durable from here
        self._on_queued(run)
        return run


class ServicePool:
    """One `ApprovalService` per OS thread, opened on first use, all closed by `close()`."""

    def __init__(self, settings: Settings, bus: EventBus, moves_on: MovesOn) -> None:
        self._settings = settings
        self._bus = bus
        self._moves_on = moves_on
        self._local = threading.local()
        self._lock = threading.Lock()
        self._stack = ExitStack()

    def get(self) -> ApprovalService:
        service: ApprovalService | None = getattr(self._local, "service", None)
        if service is None:
            # opened outside the lock: one thread's slow open must not hold up the others'
            with ExitStack() as opening:
                service = opening.enter_context(
                    open_service(self._settings, moves_on=self._moves_on, observer=self._observe)
                )
                with self._lock:
                    self._stack.push(opening.pop_all())
            self._local.service = service
        return service

    @property
    def per_thread(self) -> "PerThreadService":
        """A stand-in that forwards each call to the calling thread's service."""
        return PerThreadService(self)

    def _observe(self, thread_id: str, update: Callable[[], dict[str, Any]]) -> None:
        topic = thread_topic(thread_id)
        if self._bus.has_subscribers(topic):
            self._bus.publish(topic, "update", update())

    def close(self) -> None:
        with self._lock:
            self._stack.close()


class PerThreadService(ApprovalService):
    """An `ApprovalService` whose every attribute is the calling thread's service's
    (`pool.get()`), so one object can be handed out on the event loop and used safely from
    any worker thread (each thread has its own connections)."""

    def __init__(self, pool: ServicePool) -> None:  # no super().__init__: it owns nothing
        object.__setattr__(self, "_pool", pool)

    def __getattribute__(self, name: str) -> Any:
        pool: ServicePool = object.__getattribute__(self, "_pool")
        return getattr(pool.get(), name)


@dataclass
class RunStats:
    """What this process's workers did, for `/metrics`."""

    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCIES_KEPT))
    """Seconds from acceptance to the end of each run since the last scrape (the newest,
    if nobody scrapes)."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, run: Run) -> None:
        if run.finished_at is not None:
            with self._lock:
                self.latencies.append(run.finished_at - run.created_at)

    def drain(self) -> list[float]:
        with self._lock:
            latencies = list(self.latencies)
            self.latencies.clear()
        return latencies


SWEEP_LEASE = "__hitl_periodic_sweep__"
"""The lease a process holds while it sweeps (a name no thread ID of ours takes)."""
PRUNE_LEASE = "__hitl_periodic_prune__"
"""The lease a process holds while it prunes on schedule."""


class Background:
    """The threads that do the service's work; `start()` after a restart finishes every run
    that was in flight when the last process died."""

    def __init__(
        self,
        pool: ServicePool,
        queue: RunQueue,
        ledger: Ledger,
        bus: EventBus,
        *,
        workers: int = 2,
        sweep_interval: float = 30.0,
        poll_interval: float = 0.5,
        extra: list[Callable[[threading.Event], None]] | None = None,
        prune_interval: float = 0.0,
        prune: Callable[[], PruneReport] | None = None,
    ) -> None:
        self._pool, self._queue, self._ledger, self._bus = pool, queue, ledger, bus
        self._workers = workers
        self._sweep_interval = sweep_interval
        self._poll = poll_interval
        self._extra = extra or []
        self._prune_interval = prune_interval
        self._prune = prune
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._running: set[str] = set()
        self._running_lock = threading.Lock()
        self.stats = RunStats()
        self.requeued_at_start = 0

    def start(self) -> None:
        self.requeued_at_start = self._queue.requeue_dead()
        targets: list[tuple[str, Callable[[], None]]] = [
            (f"hitl-worker-{n}", self._work) for n in range(self._workers)
        ]
        targets += [("hitl-inbox-watch", self._watch_inbox), ("hitl-heartbeat", self._beat)]
        if self._sweep_interval > 0:
            targets.append(("hitl-sweep", self._sweep))
        if self._prune_interval > 0 and self._prune is not None:
            targets.append(("hitl-prune", self._prune_periodically))
        targets += [(f"hitl-extra-{n}", _bind(f, self._stop)) for n, f in enumerate(self._extra)]
        for name, target in targets:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking runs and wait (bounded) for the ones in progress."""
        self._stop.set()
        self.wake()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def wake(self) -> None:
        """A run was queued: let an idle worker take it now."""
        with self._wake:
            self._wake.notify_all()

    @property
    def busy_workers(self) -> int:
        with self._running_lock:
            return len(self._running)

    # the threads

    def _work(self) -> None:
        service = self._open_service()
        if service is None:
            return
        while not self._stop.is_set():
            token = new_token()
            mark_live(token)
            try:
                run = self._queue.claim(token)
            except Exception:
                log.exception("could not claim a run")
                run = None
            if run is None:
                mark_done(token)
                with self._wake:
                    self._wake.wait(self._poll)
                continue
            with self._running_lock:
                self._running.add(token)
            try:
                self._execute(service, run)
            except Exception:  # the queue could not record how it went: it runs again
                log.exception("could not record what became of run %s", run.run_id)
            finally:
                with self._running_lock:
                    self._running.discard(token)
                mark_done(token)

    def _execute(self, service: ApprovalService, run: Run) -> None:
        topic = thread_topic(run.thread_id)
        self._bus.publish(topic, "run", run.to_json())
        error: BaseException | None = None
        try:
            execute(service, run)
        except Busy as e:  # another process runs the thread: try again shortly
            self._queue.postpone(run.run_id, run.runner, BUSY_RETRY_SECONDS, str(e))
            return
        except DOMAIN_ERRORS as e:
            error = e
        except Exception as e:  # the agent's own code failed, or (with a traceback) ours
            error = AgentFailed.of(e)
            if error is None:
                log.exception("run %s of thread %s failed", run.run_id, run.thread_id)
                error = e
            else:
                log.warning("run %s of thread %s: %s", run.run_id, run.thread_id, error)
        except BaseException as e:  # a tool that calls sys.exit(): keep serving
            log.exception("run %s of thread %s failed", run.run_id, run.thread_id)
            error = e
        finished = self._queue.finish(run.run_id, run.runner, error=error)
        if finished is None:
            return  # taken for dead meanwhile, and claimed again by another worker
        self.stats.record(finished)
        self._bus.publish(topic, "run", finished.to_json())
        self._bus.publish(run_topic(run.run_id), "run", finished.to_json())
        if self._bus.has_subscribers(topic):
            with suppress(*DOMAIN_ERRORS):
                self._bus.publish(topic, "state", service.show(run.thread_id).to_json())

    def _open_service(self) -> ApprovalService | None:
        """This thread's service; retried until it opens (a busy database at start), or None
        once the service stops."""
        while not self._stop.is_set():
            try:
                return self._pool.get()
            except Exception:
                log.exception("could not open the approval service; retrying")
                self._stop.wait(BUSY_RETRY_SECONDS)
        return None

    @property
    def alive_workers(self) -> int:
        """Worker threads still running (each survives any one run's failure)."""
        return sum(t.is_alive() for t in self._threads if t.name.startswith("hitl-worker-"))

    def _watch_inbox(self) -> None:
        """Tell inbox streams when anything was recorded, by any process (the audit grows
        with every request, decision, expiry and tool run). On PostgreSQL a NOTIFY wakes the
        watcher at once, and another process's runs are heard of too: a queued one wakes
        the workers, a finished one whoever waits on it. The audit head is still read every
        `poll_interval`, and workers still poll, whatever happens."""
        head = -1
        listener: PgListener | None = None
        while not self._stop.is_set():
            try:
                if listener is None:
                    listener = self._ledger.audit_listener()
                if listener is None:
                    self._stop.wait(self._poll)
                else:
                    self._hear(listener.wait(self._poll))
            except Exception:
                log.warning("inbox notifications stopped; polling until they are back")
                if listener is not None:
                    with suppress(Exception):
                        listener.close()
                listener = None
                self._stop.wait(self._poll)
            try:
                now = self._ledger.audit_head()
            except Exception:
                log.exception("could not read the audit head")
                continue
            if now != head:
                head = now
                self._bus.publish(INBOX, "changed", {"audit_head": now})
        if listener is not None:
            listener.close()

    def _hear(self, notifications: list[tuple[str, str]]) -> None:
        for topic, payload in notifications:
            if topic != "runs":
                continue
            if not payload:
                self.wake()  # a run was queued, maybe by another process
            elif self._bus.has_subscribers(run_topic(payload)):
                self._bus.publish(run_topic(payload), "finished", {"run_id": payload})

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            with self._running_lock:
                running = list(self._running)
            try:
                self._queue.heartbeat(running)
            except Exception:
                log.exception("could not write the heartbeat")

    def _sweep(self) -> None:
        service = self._open_service()
        if service is None:
            return
        while not self._stop.wait(self._sweep_interval):
            try:
                # one sweeper at a time across the processes on this database; the others
                # skip the round (each expiry is a compare-and-set anyway, so this saves work)
                with self._ledger.lease(SWEEP_LEASE, wait=0):
                    report = queue_sweep(service, self._queue)
            except ThreadBusy:
                continue
            except Exception:
                log.exception("the periodic sweep failed")
                continue
            if report.queued:
                self.wake()
            if report.expired or report.queued:
                log.info("sweep: %d expired, %d queued", len(report.expired), len(report.queued))

    def _prune_periodically(self) -> None:
        assert self._prune is not None
        while not self._stop.wait(self._prune_interval):
            try:
                with self._ledger.lease(PRUNE_LEASE, wait=0):  # one process at a time
                    report = self._prune()
            except ThreadBusy:
                continue
            except Exception:  # a busy or broken database: the next round tries again
                log.exception("the periodic prune failed")
                continue
            log.info(
                "prune: %d threads trimmed, %d deleted, %d untouched; %d → %d bytes",
                report.threads_trimmed,
                report.threads_deleted,
                report.threads_kept,
                report.bytes_before,
                report.bytes_after,
            )


def queue_sweep(
    service: ApprovalService, queue: RunQueue, *, grace: float | None = None
) -> SweepReport:
    """`hitl sweep` for the service: settle what is overdue or orphaned, then queue a resume
    of each thread that can move on, for the workers (nothing runs in the caller)."""
    expired, orphaned, threads = service.settle(grace=grace)
    reminded, escalated = service.nudge()
    queued = [
        thread_id
        for thread_id in threads
        if queue.enqueue_resume(thread_id, actor=SWEEP_ACTOR) is not None
    ]
    return SweepReport(
        expired=expired,
        orphaned=orphaned,
        resumed=[],
        busy=[],
        failed={},
        queued=queued,
        reminded=reminded,
        escalated=escalated,
    )


def execute(service: ApprovalService, run: Run) -> None:
    """Do one run. A second attempt (its first runner died) continues from the checkpoint
    if the first one saved the message, and sends it otherwise."""
    if run.kind == "message":
        payload = run.payload
        if run.attempts > 1 and service.has_message(run.thread_id, run.run_id):
            service.resume(run.thread_id)
            return
        service.run(
            payload["messages"],
            run.thread_id,
            actor=run.actor,
            cancel_pending=bool(payload.get("cancel_pending")),
            message_id=run.run_id,
        )
    else:
        service.resume(run.thread_id)


def _bind(f: Callable[[threading.Event], None], stop: threading.Event) -> Callable[[], None]:
    return lambda: f(stop)
