"""What the API's routes share: the roles they require, the service and queue they use,
the answer to a request that starts a run (`202`, or `200` once it ended), long-polls of a
run, server-sent events."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, cast

import anyio.from_thread
from fastapi import Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from hitl.checkpoints.stores import FINISHED, Role, Run, RunQueue, Token
from hitl.server.auth import require, signed_in
from hitl.server.events import Event, EventBus, run_topic
from hitl.server.workers import ServicePool
from hitl.service.workflow import ApprovalService

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
"""An SSE stream sends a comment this often, so proxies do not close it."""
RECHECK_SECONDS = 2.0
"""An SSE stream reads its token again this often, and before each event: a revoked token's
streams end within this time (its reader's reconnection is then refused with `401`)."""

MAX_WAIT_SECONDS = 60.0
"""The longest long-poll: `GET /runs/{id}?wait=`, and `?wait=` on a request that starts a run."""

RUN_ENDED: dict[int | str, dict[str, Any]] = {
    200: {"description": "With `?wait=`: the run ended within the wait (`run` says how)"}
}
"""The second answer of a request that starts a run, for its OpenAPI entry."""

viewer = Depends(require("viewer"))
approver = Depends(require("approver"))
admin = Depends(require("admin"))


async def service(request: Request) -> ApprovalService:
    """The approval service of whichever worker thread runs the endpoint (resolved there:
    each thread has its own connections), without a thread hop for the dependency itself."""
    pool: ServicePool = request.app.state.pool
    return pool.per_thread


def queue(request: Request) -> RunQueue:
    return cast(RunQueue, request.app.state.queue)


async def _queue_dependency(request: Request) -> RunQueue:
    return queue(request)  # no I/O: no need for a worker thread


Service = Annotated[ApprovalService, Depends(service)]
Queue = Annotated[RunQueue, Depends(_queue_dependency)]


@dataclass(frozen=True)
class Acting:
    """One request that changes something: who acts, the service and queue it acts on, and
    how its answer is made (the run it queued, and where to follow it)."""

    request: Request
    response: Response
    service: ApprovalService
    queue: RunQueue
    who: Token
    wait: float = 0.0
    """`?wait=S`: answer when the queued run has ended, or after S seconds at most."""

    def accepted(self, run: Run | None, **extra: Any) -> dict[str, Any]:
        """`202` with the queued run and where to follow it; with `?wait=S`, `200` with the
        ended run if it ended within S seconds (one request instead of two per step)."""
        if run is None:  # the pool's services queue every continuation (`QueueRuns`)
            raise RuntimeError("the service ran the thread in the request; expected a queued run")
        state = run.to_json()
        if self.wait > 0:  # endpoints run in worker threads; the wait is on the event loop
            waited: dict[str, Any] | None
            waited = anyio.from_thread.run(ended_run, self.request, run.run_id, self.wait)
            state = waited or state
        ended = state.get("status") in FINISHED
        self.response.status_code = 200 if ended else 202
        if not ended:
            self.response.headers["Location"] = f"/runs/{run.run_id}"
        links = {
            "run": f"/runs/{run.run_id}",
            "thread": f"/threads/{run.thread_id}",
            "stream": f"/threads/{run.thread_id}/stream",
        }
        return {"thread_id": run.thread_id, "run": state, "links": links, **extra}


async def ended_run(request: Request, run_id: str, wait: float) -> dict[str, Any] | None:
    """The run as JSON once it has ended, or as it is after `wait` seconds (None: no such run).

    Its end is heard from this process's workers and, on PostgreSQL, from the database when
    another process ran it; without either, the queue is read again every second.
    """
    q = queue(request)
    bus: EventBus = request.app.state.bus
    with bus.subscription(run_topic(run_id)) as events:  # first, so no end is missed
        run = await asyncio.to_thread(q.get, run_id)
        if run is None:
            return None
        deadline = time.monotonic() + wait
        while not run.finished and time.monotonic() < deadline:
            left = deadline - time.monotonic()
            try:
                event = await asyncio.wait_for(events.get(), min(left, 1.0))
            except TimeoutError:
                run = await asyncio.to_thread(q.get, run_id) or run
                continue
            if event.data.get("status") in FINISHED:
                return dict(event.data)
            run = await asyncio.to_thread(q.get, run_id) or run  # another process's end
    return run.to_json()


def acting(role: Role) -> Callable[..., Awaitable[Acting]]:
    """A dependency: the request as an `Acting`, by a token that must include `role`."""

    async def bundle(
        request: Request,
        response: Response,
        who: Token = Depends(require(role)),  # noqa: B008
        wait: Annotated[
            float,
            Query(
                ge=0,
                le=MAX_WAIT_SECONDS,
                description="seconds to wait for the run this starts to end: `200` with the "
                "ended run, or `202` if it is still going",
            ),
        ] = 0,
    ) -> Acting:
        pool: ServicePool = request.app.state.pool
        service = pool.per_thread
        return Acting(request, response, service, queue(request), who, wait)

    return bundle


AsApprover = Annotated[Acting, Depends(acting("approver"))]
AsAdmin = Annotated[Acting, Depends(acting("admin"))]


def assignees(names: list[str] | None, who: Token) -> tuple[str, ...] | None:
    """An `assigned_to` filter with `me` standing for the caller: its name and roles."""
    if names is None:
        return None
    mine = (who.name, *(f"role:{r}" for r in who.roles))
    return tuple(dict.fromkeys(n for name in names for n in (mine if name == "me" else (name,))))


def sse(
    request: Request,
    bus: EventBus,
    topic: str,
    first: Event,
    refresh: Callable[[], Awaitable[Event]] | None,
) -> StreamingResponse:
    """Stream `first`, then the topic's events (or, with `refresh`, a fresh `refresh()` for
    each), with a comment line every few seconds to keep proxies from closing the stream,
    until the reader leaves or its token stops being valid."""

    async def events() -> AsyncIterator[str]:
        with bus.subscription(topic) as queue:
            yield "retry: 2000\n\n" + first.sse()
            sent = time.monotonic()
            while not await request.is_disconnected():
                try:
                    event: Event | None = await asyncio.wait_for(queue.get(), RECHECK_SECONDS)
                except TimeoutError:
                    event = None
                if not _still_signed_in(request):  # revoked while the stream was open
                    return
                if event is None:
                    if time.monotonic() - sent >= HEARTBEAT_SECONDS:
                        yield ": keep-alive\n\n"
                        sent = time.monotonic()
                    continue
                if refresh is not None:
                    while not queue.empty():  # many changes at once: one refresh
                        queue.get_nowait()
                    event = await refresh()
                yield event.sse()
                sent = time.monotonic()

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


def _still_signed_in(request: Request) -> bool:
    """Whether the stream's token is still valid; a token store that cannot answer right now
    (busy, a lost connection) is asked again at the next check instead of ending the stream
    with an error."""
    try:
        return signed_in(request) is not None
    except Exception:
        log.warning("could not re-check a stream's token; checking again shortly", exc_info=True)
        return True
