"""What the API's routes share: the roles they require, the service and queue they use,
the `202` answer, server-sent events."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, cast

from fastapi import Depends, Request, Response
from fastapi.responses import StreamingResponse

from hitl.checkpoints.stores import Role, Run, RunQueue, Token
from hitl.server.auth import require, signed_in
from hitl.server.events import Event, EventBus
from hitl.server.workers import ServicePool
from hitl.service.workflow import ApprovalService

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
"""An SSE stream sends a comment this often, so proxies do not close it."""
RECHECK_SECONDS = 2.0
"""An SSE stream reads its token again this often, and before each event: a revoked token's
streams end within this time (its reader's reconnection is then refused with `401`)."""

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
    how its `202` answer is made (a queued run, and where to follow it)."""

    request: Request
    response: Response
    service: ApprovalService
    queue: RunQueue
    who: Token

    def accepted(self, run: Run | None, **extra: Any) -> dict[str, Any]:
        """The `202` answer: the run, and where to follow it."""
        if run is None:  # the pool's services queue every continuation (`QueueRuns`)
            raise RuntimeError("the service ran the thread in the request; expected a queued run")
        self.response.status_code = 202
        self.response.headers["Location"] = f"/runs/{run.run_id}"
        links = {
            "run": f"/runs/{run.run_id}",
            "thread": f"/threads/{run.thread_id}",
            "stream": f"/threads/{run.thread_id}/stream",
        }
        return {"thread_id": run.thread_id, "run": run.to_json(), "links": links, **extra}


def acting(role: Role) -> Callable[..., Awaitable[Acting]]:
    """A dependency: the request as an `Acting`, by a token that must include `role`."""

    async def bundle(
        request: Request,
        response: Response,
        who: Token = Depends(require(role)),  # noqa: B008
    ) -> Acting:
        pool: ServicePool = request.app.state.pool
        service = pool.per_thread
        return Acting(request, response, service, queue(request), who)

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
