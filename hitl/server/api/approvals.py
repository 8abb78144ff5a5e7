"""The inbox and the decisions: list, stream, read one call, approve, reject, edit, respond."""

import asyncio
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse

from hitl.checkpoints.stores import Token
from hitl.server.api.bodies import Approve, Decision, Edit, Reject, Respond
from hitl.server.api.common import RUN_ENDED, Acting, AsApprover, Service, assignees, sse, viewer
from hitl.server.events import INBOX, Event, EventBus
from hitl.server.workers import ServicePool
from hitl.service.timespec import parse_duration, parse_moment
from hitl.service.workflow import MAX_OFFSET, EveryPending, InboxQuery, Remember

router = APIRouter()


@router.get("/approvals", tags=["approvals"])
def list_approvals(
    svc: Service,
    tool: str | None = None,
    thread_id: str | None = None,
    requester: str | None = None,
    older_than: Annotated[str | None, Query(description="e.g. 30m, 2h, 1d")] = None,
    expiring_before: Annotated[str | None, Query(description="a duration or ISO time")] = None,
    sort: Literal["requested_at", "expires_at", "tool", "thread_id"] = "requested_at",
    desc: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    assigned_to: Annotated[list[str] | None, Query(description="a name, role:NAME or me")] = None,
    snoozed: Literal["hide", "show", "only"] = "hide",
    who: Token = viewer,
) -> dict[str, Any]:
    """The approvals waiting for a person, across all threads (the ledger's inbox)."""
    now = time.time()
    query = InboxQuery(
        tool=tool,
        thread_id=thread_id,
        requester=requester,
        older_than=None
        if older_than is None
        else now - _parsed(parse_duration, older_than, "older_than"),
        expiring_before=None
        if expiring_before is None
        else _parsed(lambda t: parse_moment(t, now), expiring_before, "expiring_before"),
        sort=sort,
        descending=desc,
        limit=limit,
        offset=offset,
        assigned_to=assignees(assigned_to, who),
        snoozed=snoozed,
    )
    return svc.pending(query).to_json()


@router.get("/approvals/stream", tags=["approvals"])
async def stream_approvals(request: Request, who: Token = viewer) -> StreamingResponse:
    """Server-sent events of the inbox: `inbox` (the first page of pending approvals) now and
    whenever anything was requested, decided, expired or settled, by any process."""
    pool: ServicePool = request.app.state.pool

    async def page() -> Event:
        first = await asyncio.to_thread(lambda: pool.get().pending(InboxQuery(limit=100)))
        return Event(0, "inbox", first.to_json())

    bus: EventBus = request.app.state.bus
    return sse(request, bus, INBOX, await page(), page)


@router.get("/approvals/{thread_id}/{tool_call_id}", tags=["approvals"])
def get_approval(
    thread_id: str, tool_call_id: str, svc: Service, who: Token = viewer
) -> dict[str, Any]:
    """One call, whatever its status, with the JSON schemas of its answers and of its args."""
    record = svc.call_record(thread_id, tool_call_id)
    data = record.to_json()
    data["response_schema"] = svc.answer_schema(record.tool, record.allowed_decisions)
    data["args_schema"] = svc.args_schema(record.tool)
    return data


def _decided(
    act: Acting,
    thread_id: str,
    body: Decision,
    answer: object,
    remember: Remember | None = None,
) -> dict[str, Any]:
    """Decide through the service (recorded, then queued for a worker), answer `202`; a vote
    that leaves its quorum call pending queues nothing and answers `200` with `run: null`."""
    seen = {body.call: body.args_hash} if body.call and body.args_hash else None
    decided = act.service.decide(
        thread_id,
        EveryPending(answer) if body.call is None else {body.call: answer},
        actor=act.who.name,
        comment=body.comment,
        seen_args_hashes=seen,
        roles=act.who.roles,
        remember=remember,
    )
    if decided.run is None and all(r.status == "pending" for r in decided.records):
        act.response.status_code = 200
    records = [r.to_json() for r in decided.records]
    if act.response.status_code == 200:
        return {"thread_id": thread_id, "run": None, "decided": records}
    return act.accepted(decided.run, decided=records)


@router.post(
    "/threads/{thread_id}/approve",
    tags=["approvals"],
    status_code=202,
    responses=RUN_ENDED,
)
def approve(thread_id: str, body: Approve, act: AsApprover) -> dict[str, Any]:
    """Approve one pending call (`call`) or all of the thread's pending calls; a quorum
    call's approval is a vote (`200`, nothing queued, until the last one). With `remember`,
    also create a standing approval (see `/standing`)."""
    remember = None
    if body.remember is not None:
        wish = body.remember
        remember = Remember(
            expires_after=parse_duration(wish.expires_in),
            args=wish.args,
            requester=wish.requester,
            thread=wish.thread,
        )
    return _decided(act, thread_id, body, {"type": "approve"}, remember)


@router.post(
    "/threads/{thread_id}/reject", tags=["approvals"], status_code=202, responses=RUN_ENDED
)
def reject(thread_id: str, body: Reject, act: AsApprover) -> dict[str, Any]:
    """Reject one pending call or all of them; `reason` is told to the model."""
    answer = {"type": "reject"} | ({"message": body.reason} if body.reason else {})
    return _decided(act, thread_id, body, answer)


@router.post("/threads/{thread_id}/edit", tags=["approvals"], status_code=202, responses=RUN_ENDED)
def edit(thread_id: str, body: Edit, act: AsApprover) -> dict[str, Any]:
    """Run a pending call with other arguments, checked against the tool's schema first."""
    answer = act.service.edit_answer(thread_id, body.call, body.args)
    return _decided(act, thread_id, body, answer)


@router.post(
    "/threads/{thread_id}/respond", tags=["approvals"], status_code=202, responses=RUN_ENDED
)
def respond(thread_id: str, body: Respond, act: AsApprover) -> dict[str, Any]:
    """Answer a pending call in the tool's place, without running it."""
    answer = {"type": "respond", "message": body.message}
    return _decided(act, thread_id, body, answer)


def _parsed(parse: Callable[[str], float], text: str, name: str) -> float:
    try:
        return parse(text)
    except ValueError as e:  # the shape of every other invalid parameter: type and `fields`
        problem = {"type": "value_error", "loc": ("query", name), "msg": str(e), "input": text}
        raise RequestValidationError([problem]) from None
