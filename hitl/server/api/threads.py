"""Threads and runs: start, continue, read, follow live."""

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from hitl.checkpoints.stores import Token
from hitl.server.api.bodies import ContinueThread, StartThread
from hitl.server.api.common import (
    MAX_WAIT_SECONDS,
    RUN_ENDED,
    AsApprover,
    Queue,
    Service,
    ended_run,
    queue,
    sse,
    viewer,
)
from hitl.server.events import Event, EventBus, thread_topic
from hitl.server.workers import ServicePool
from hitl.service.errors import ThreadNotFound
from hitl.service.views import MAX_MESSAGES_PAGE, MESSAGES_PAGE
from hitl.service.workflow import MAX_OFFSET, ApprovalService, ThreadFilter, ThreadQuery

router = APIRouter()

MAX_PREFIX = 200
"""The longest ID prefix a search takes: a thread ID's longest."""


@router.get("/threads", tags=["threads"])
def list_threads(
    svc: Service,
    status: Annotated[
        ThreadFilter,
        Query(description="waiting: a call waits for a person; running: a run is open"),
    ] = "all",
    prefix: Annotated[
        str, Query(max_length=MAX_PREFIX, description="only IDs that start with this")
    ] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    who: Token = viewer,
) -> dict[str, Any]:
    """Every thread, newest activity first, with its status and how many of its calls wait
    for a person; filtered by status, searched by an ID prefix, paged."""
    query = ThreadQuery(status=status, prefix=prefix, limit=limit, offset=offset)
    return svc.list_threads(query).to_json()


@router.post("/threads", tags=["threads"], status_code=202, responses=RUN_ENDED)
def start_thread(body: StartThread, act: AsApprover) -> dict[str, Any]:
    """Start a thread with a prompt (or messages); 202 with the run to follow. An ID that
    exists already is 409: continue that thread with `POST /threads/{id}/runs`."""
    sent = act.service.send(body.texts(), body.thread_id, actor=act.who.name, expect="new")
    return act.accepted(sent.run)


@router.post("/threads/{thread_id}/runs", tags=["threads"], status_code=202, responses=RUN_ENDED)
def continue_thread(thread_id: str, body: ContinueThread, act: AsApprover) -> dict[str, Any]:
    """Send a new message to an existing thread: 409 while it waits for decisions, unless
    `cancel_pending` (its pending calls are then rejected)."""
    sent = act.service.send(
        body.texts(),
        thread_id,
        actor=act.who.name,
        cancel_pending=body.cancel_pending,
        expect="existing",
    )
    return act.accepted(sent.run)


@router.get("/threads/{thread_id}", tags=["threads"])
def get_thread(
    thread_id: str,
    svc: Service,
    q: Queue,
    messages: Annotated[
        int, Query(ge=1, le=MAX_MESSAGES_PAGE, description="how many messages: a page")
    ] = MESSAGES_PAGE,
    before: Annotated[
        int | None, Query(ge=1, description="a position (`messages_next_before`): the page before")
    ] = None,
    who: Token = viewer,
) -> dict[str, Any]:
    """The thread's status, pending approvals, the newest `messages` of its conversation (or
    those before position `before`), and its latest runs (`queued`: its first run has not
    started yet)."""
    runs = [r.to_json() for r in q.of_thread(thread_id, limit=5)]
    return _view_or_queued(svc, thread_id, runs, messages, before) | {"runs": runs}


@router.get("/threads/{thread_id}/history", tags=["threads"])
def get_history(
    thread_id: str,
    svc: Service,
    limit: Annotated[int | None, Query(ge=1, le=10_000)] = None,
    before: Annotated[str | None, Query(description="a checkpoint ID: the next page")] = None,
    who: Token = viewer,
) -> dict[str, Any]:
    """The thread's checkpoints, oldest first: all, or the newest `limit` (before `before`)."""
    entries = svc.history(thread_id, limit=limit, before=before)
    older = entries[0].checkpoint_id if limit is not None and len(entries) == limit else None
    data = {"thread_id": thread_id, "history": [e.to_json() for e in entries]}
    return data | ({"next_before": older} if older else {})


@router.get("/threads/{thread_id}/audit", tags=["threads"])
def get_audit(thread_id: str, svc: Service, who: Token = viewer) -> dict[str, Any]:
    """The thread's hash-chained audit trail, oldest first."""
    return {"thread_id": thread_id, "audit": [e.to_json() for e in svc.audit(thread_id)]}


@router.get("/threads/{thread_id}/approvals", tags=["threads"])
def get_thread_approvals(thread_id: str, svc: Service, who: Token = viewer) -> dict[str, Any]:
    """Every call of the thread the ledger knows, decided or not, with who decided."""
    svc.show(thread_id)
    return {
        "thread_id": thread_id,
        "approvals": [r.to_json() for r in svc.thread_records(thread_id)],
    }


@router.get("/threads/{thread_id}/stream", tags=["threads"])
async def stream_thread(thread_id: str, request: Request, who: Token = viewer) -> StreamingResponse:
    """Server-sent events of the thread: `state` first, then `run` (queued, running, done,
    failed), `update` (what each node did) and `state` again after each run."""
    pool: ServicePool = request.app.state.pool
    runs = [r.to_json() for r in await asyncio.to_thread(queue(request).of_thread, thread_id, 1)]
    first = await asyncio.to_thread(lambda: _view_or_queued(pool.get(), thread_id, runs))
    bus: EventBus = request.app.state.bus
    return sse(request, bus, thread_topic(thread_id), Event(0, "state", first), None)


@router.get("/runs/{run_id}", tags=["threads"])
async def get_run(
    run_id: str,
    request: Request,
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT_SECONDS)] = 0,
    who: Token = viewer,
) -> dict[str, Any]:
    """A run's status; with `wait=S`, answer when it has finished or after S seconds."""
    run = await ended_run(request, run_id, wait)
    if run is None:
        raise HTTPException(404, f"no run {run_id!r}; runs are listed in GET /threads/{{id}}")
    return run


def _view_or_queued(
    svc: ApprovalService,
    thread_id: str,
    runs: list[dict[str, Any]],
    messages: int = MESSAGES_PAGE,
    before: int | None = None,
) -> dict[str, Any]:
    """The thread's view; for a thread whose first run is queued, a `queued` stand-in."""
    try:
        return svc.show(thread_id, messages=messages, before=before).to_json()
    except ThreadNotFound:
        if not runs:
            raise
        return {
            "thread_id": thread_id,
            "status": "queued",
            "pending": [],
            "messages": [],
            "messages_total": 0,
            "messages_next_before": None,
        }
