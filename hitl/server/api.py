"""The JSON API: the CLI's operations over HTTP, on the same `ApprovalService`.

Starting a run or deciding answers `202` as soon as the work is durable (a decision in the
ledger, a run in the queue); a worker runs the thread, `GET /runs/{id}` tells how it ended,
and `GET /threads/{id}/stream` shows it live.
"""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from checkpoints.ledger import InboxQuery
from checkpoints.runs import FINISHED, Run, RunQueue
from checkpoints.tokens import Token, TokenStore
from checkpoints.webhooks import WebhookError, WebhookStore
from hitl.errors import AlreadyDecided, ThreadExists, ThreadNotFound
from hitl.server.auth import principal, require, token_summary
from hitl.server.events import INBOX, Event, EventBus, run_topic, thread_topic
from hitl.server.workers import Background, ServicePool, queue_sweep
from hitl.service import ApprovalService
from hitl.timespec import parse_duration, parse_moment

THREAD_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}$"
"""Thread IDs the API creates or accepts for a new thread: safe in a URL path as they are."""
HEARTBEAT_SECONDS = 15.0
MAX_WAIT_SECONDS = 60.0

viewer = Depends(require("viewer"))
approver = Depends(require("approver"))
admin = Depends(require("admin"))
router = APIRouter()


# request bodies


class UserMessage(BaseModel):
    role: Literal["user", "human"] = "user"
    content: str = Field(min_length=1)


class MessageInput(BaseModel):
    """A prompt, or a list of user messages."""

    prompt: str | None = Field(default=None, min_length=1)
    messages: list[UserMessage] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def one_of(self) -> "MessageInput":
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give either `prompt` or `messages`, not both and not neither")
        return self

    def texts(self) -> list[str]:
        return (
            [self.prompt] if self.prompt is not None else [m.content for m in self.messages or []]
        )


class StartThread(MessageInput):
    thread_id: str | None = Field(
        default=None,
        pattern=THREAD_ID_PATTERN,
        description="A new thread's ID (default: a UUID): letters, digits and . _ : @ -",
    )


class ContinueThread(MessageInput):
    cancel_pending: bool = False


class Decision(BaseModel):
    # a misspelt `call` must not be dropped: without it, the decision is for every pending call
    model_config = ConfigDict(extra="forbid")

    call: str | None = Field(default=None, description="The tool call ID (default: all pending).")
    comment: str | None = None
    args_hash: str | None = Field(
        default=None, description="Only if the call's args still hash to this (what you saw)."
    )

    @model_validator(mode="after")
    def hash_names_a_call(self) -> "Decision":
        if self.args_hash is not None and self.call is None:
            raise ValueError("`args_hash` needs `call`: a hash names one call's args")
        return self


class Reject(Decision):
    reason: str | None = None


class Edit(Decision):
    call: str = Field(description="The tool call ID.")
    args: dict[str, Any]


class Respond(Decision):
    call: str = Field(description="The tool call ID.")
    message: str = Field(min_length=1, description="What the model is told instead.")


class Reconcile(BaseModel):
    call: str
    action: Literal["retry", "mark_done", "skip"]
    result: str | None = None


class NewToken(BaseModel):
    name: str
    role: Literal["viewer", "approver", "admin"]


# plumbing


async def service(request: Request) -> ApprovalService:
    """The approval service of whichever worker thread runs the endpoint (resolved there:
    each thread has its own connections), without a thread hop for the dependency itself."""
    pool: ServicePool = request.app.state.pool
    return cast(ApprovalService, pool.per_thread)


def queue(request: Request) -> RunQueue:
    return cast(RunQueue, request.app.state.queue)


async def _queue_dependency(request: Request) -> RunQueue:
    return queue(request)  # no I/O: no need for a worker thread


Service = Annotated[ApprovalService, Depends(service)]
Queue = Annotated[RunQueue, Depends(_queue_dependency)]


def _accepted(run: Run, response: Response, **extra: Any) -> dict[str, Any]:
    response.status_code = 202
    response.headers["Location"] = f"/runs/{run.run_id}"
    return {
        "thread_id": run.thread_id,
        "run": run.to_json(),
        "links": {
            "run": f"/runs/{run.run_id}",
            "thread": f"/threads/{run.thread_id}",
            "stream": f"/threads/{run.thread_id}/stream",
        },
        **extra,
    }


def _enqueue(request: Request, run: Run) -> Run:
    background: Background = request.app.state.background
    background.wake()
    bus: EventBus = request.app.state.bus
    bus.publish(thread_topic(run.thread_id), "run", run.to_json())
    return run


def _resume(request: Request, q: RunQueue, thread_id: str, who: Token) -> Run:
    return _enqueue(request, q.enqueue(thread_id, "resume", {}, actor=who.name))


# who am I, health, metrics


@router.get("/healthz", tags=["service"])
def healthz(request: Request, response: Response) -> dict[str, Any]:
    """Liveness and readiness: no token needed; 503 if no worker thread is left to run runs."""
    background: Background = request.app.state.background
    counts = queue(request).counts()
    alive = background.alive_workers
    if not alive:
        response.status_code = 503
    return {
        "ok": alive > 0,
        "workers_alive": alive,
        "busy_workers": background.busy_workers,
        "queued": counts.get("queued", 0),
        "running": counts.get("running", 0),
    }


@router.get("/me", tags=["service"])
def me(who: Token = Depends(principal)) -> dict[str, Any]:  # noqa: B008
    """The caller's identity and role."""
    return token_summary(who)


@router.get("/metrics", tags=["service"], response_class=PlainTextResponse)
def metrics(request: Request, who: Token = viewer) -> PlainTextResponse:
    """Prometheus text: pending approvals, decisions, tool runs, run latency."""
    exposition = request.app.state.metrics.render()
    return PlainTextResponse(exposition, media_type="text/plain; version=0.0.4")


# threads


@router.post("/threads", tags=["threads"], status_code=202)
def start_thread(
    body: StartThread,
    request: Request,
    response: Response,
    q: Queue,
    svc: Service,
    who: Token = approver,
) -> dict[str, Any]:
    """Start a thread with a prompt (or messages); 202 with the run to follow. An ID that
    exists already is 409: continue that thread with `POST /threads/{id}/runs`."""
    thread_id = body.thread_id
    if thread_id is not None and (svc.exists(thread_id) or q.of_thread(thread_id, limit=1)):
        raise ThreadExists(thread_id)
    payload = {"messages": body.texts(), "cancel_pending": False}
    run = q.enqueue(thread_id or _new_id(), "message", payload, actor=who.name)
    return _accepted(_enqueue(request, run), response)


@router.post("/threads/{thread_id}/runs", tags=["threads"], status_code=202)
def continue_thread(
    thread_id: str,
    body: ContinueThread,
    request: Request,
    response: Response,
    q: Queue,
    svc: Service,
    who: Token = approver,
) -> dict[str, Any]:
    """Send a new message to an existing thread: 409 while it waits for decisions, unless
    `cancel_pending` (its pending calls are then rejected)."""
    if not svc.exists(thread_id) and not q.of_thread(thread_id, limit=1):
        raise ThreadNotFound(thread_id)
    if svc.exists(thread_id):  # else its first run is still queued: that run checks
        svc.check_can_send(thread_id, cancel_pending=body.cancel_pending)
    payload = {"messages": body.texts(), "cancel_pending": body.cancel_pending}
    run = q.enqueue(thread_id, "message", payload, actor=who.name)
    return _accepted(_enqueue(request, run), response)


@router.get("/threads/{thread_id}", tags=["threads"])
def get_thread(thread_id: str, svc: Service, q: Queue, who: Token = viewer) -> dict[str, Any]:
    """The thread's status, messages, pending approvals, and its latest runs (`queued`:
    its first run has not started yet)."""
    runs = [r.to_json() for r in q.of_thread(thread_id, limit=5)]
    return _view_or_queued(svc, thread_id, runs) | {"runs": runs}


@router.get("/threads/{thread_id}/history", tags=["threads"])
def get_history(thread_id: str, svc: Service, who: Token = viewer) -> dict[str, Any]:
    """The thread's checkpoints, oldest first."""
    return {"thread_id": thread_id, "history": [e.to_json() for e in svc.history(thread_id)]}


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
    return _sse(request, bus, thread_topic(thread_id), Event(0, "state", first), None)


@router.get("/runs/{run_id}", tags=["threads"])
async def get_run(
    run_id: str,
    request: Request,
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT_SECONDS)] = 0,
    who: Token = viewer,
) -> dict[str, Any]:
    """A run's status; with `wait=S`, answer when it has finished or after S seconds."""
    q = queue(request)
    bus: EventBus = request.app.state.bus
    with bus.subscription(run_topic(run_id)) as events:  # first, so no end is missed
        run = await asyncio.to_thread(q.get, run_id)
        if run is None:
            raise HTTPException(404, f"no run {run_id!r}; runs are listed in GET /threads/{{id}}")
        deadline = time.monotonic() + wait
        while not run.finished and time.monotonic() < deadline:
            left = deadline - time.monotonic()
            try:  # this process's workers say when it ends; other processes' are polled
                event = await asyncio.wait_for(events.get(), min(left, 1.0))
            except TimeoutError:
                run = await asyncio.to_thread(q.get, run_id) or run
                continue
            if event.data["status"] in FINISHED:
                return event.data
    return run.to_json()


# approvals


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
    offset: Annotated[int, Query(ge=0)] = 0,
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
    return _sse(request, bus, INBOX, await page(), page)


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
    request: Request,
    response: Response,
    q: RunQueue,
    svc: ApprovalService,
    thread_id: str,
    body: Decision,
    answer: object,
    who: Token,
) -> dict[str, Any]:
    try:
        if body.call is None:
            records = svc.record_all(
                thread_id, answer, actor=who.name, comment=body.comment, roles=who.roles
            )
        else:
            seen = {body.call: body.args_hash} if body.args_hash else None
            records = svc.record(
                thread_id,
                {body.call: answer},
                actor=who.name,
                comment=body.comment,
                seen_args_hashes=seen,
                roles=who.roles,
            )
    except AlreadyDecided as refused:
        if refused.status == "expired":  # too late: let the model learn it expired, now
            _resume(request, q, thread_id, who)
        raise
    run = _resume(request, q, thread_id, who)
    return _accepted(run, response, decided=[r.to_json() for r in records])


@router.post("/threads/{thread_id}/approve", tags=["approvals"], status_code=202)
def approve(
    thread_id: str,
    body: Decision,
    request: Request,
    response: Response,
    q: Queue,
    svc: Service,
    who: Token = approver,
) -> dict[str, Any]:
    """Approve one pending call (`call`) or all of the thread's pending calls."""
    return _decided(request, response, q, svc, thread_id, body, {"type": "approve"}, who)


@router.post("/threads/{thread_id}/reject", tags=["approvals"], status_code=202)
def reject(
    thread_id: str,
    body: Reject,
    request: Request,
    response: Response,
    q: Queue,
    svc: Service,
    who: Token = approver,
) -> dict[str, Any]:
    """Reject one pending call or all of them; `reason` is told to the model."""
    answer = {"type": "reject"} | ({"message": body.reason} if body.reason else {})
    return _decided(request, response, q, svc, thread_id, body, answer, who)


@router.post("/threads/{thread_id}/edit", tags=["approvals"], status_code=202)
def edit(
    thread_id: str,
    body: Edit,
    request: Request,
    response: Response,
    q: Queue,
    svc: Service,
    who: Token = approver,
) -> dict[str, Any]:
    """Run a pending call with other arguments, checked against the tool's schema first."""
    answer = svc.edit_answer(thread_id, body.call, body.args)
    return _decided(request, response, q, svc, thread_id, body, answer, who)


@router.post("/threads/{thread_id}/respond", tags=["approvals"], status_code=202)
def respond(
    thread_id: str,
    body: Respond,
    request: Request,
    response: Response,
    q: Queue,
    svc: Service,
    who: Token = approver,
) -> dict[str, Any]:
    """Answer a pending call in the tool's place, without running it."""
    answer = {"type": "respond", "message": body.message}
    return _decided(request, response, q, svc, thread_id, body, answer, who)


# operations


@router.post("/threads/{thread_id}/reconcile", tags=["operations"], status_code=202)
def reconcile(
    thread_id: str,
    body: Reconcile,
    request: Request,
    response: Response,
    q: Queue,
    svc: Service,
    who: Token = admin,
) -> dict[str, Any]:
    """Settle a call whose outcome is unknown (its runner died mid-call), then continue."""
    record = svc.record_reconcile(
        thread_id, body.call, body.action, actor=who.name, result=body.result
    )
    run = _resume(request, q, thread_id, who)
    return _accepted(run, response, reconciled=record.to_json())


@router.post("/threads/{thread_id}/resume", tags=["operations"], status_code=202)
def resume(
    thread_id: str,
    request: Request,
    response: Response,
    q: Queue,
    svc: Service,
    who: Token = admin,
) -> dict[str, Any]:
    """Continue a thread whose run stopped, from its last checkpoint."""
    if not svc.exists(thread_id):
        raise ThreadNotFound(thread_id)
    return _accepted(_resume(request, q, thread_id, who), response)


@router.post("/sweep", tags=["operations"])
def sweep(request: Request, svc: Service, q: Queue, who: Token = admin) -> dict[str, Any]:
    """Expire overdue approvals, flag crashed calls, and queue a resume of each thread that
    can move on (`queued`; the workers run them)."""
    report = queue_sweep(svc, q)
    if report.queued:
        background: Background = request.app.state.background
        background.wake()
    return report.to_json()


@router.get("/audit/verify", tags=["operations"])
def verify_audit(svc: Service, who: Token = viewer) -> dict[str, Any]:
    """Check every thread's hash chain."""
    return svc.verify_audit().to_json()


# tokens


@router.get("/tokens", tags=["tokens"])
def list_tokens(request: Request, who: Token = admin) -> dict[str, Any]:
    tokens: TokenStore = request.app.state.tokens
    return {"tokens": [t.to_json() for t in tokens.list()]}


@router.post("/tokens", tags=["tokens"], status_code=201)
def create_token(body: NewToken, request: Request, who: Token = admin) -> dict[str, Any]:
    """Make a token; its secret is in this answer only."""
    tokens: TokenStore = request.app.state.tokens
    token, secret = tokens.create(body.name, body.role, created_by=who.name)
    return token.to_json() | {"token": secret}


@router.delete("/tokens/{name}", tags=["tokens"])
def revoke_token(name: str, request: Request, who: Token = admin) -> dict[str, Any]:
    tokens: TokenStore = request.app.state.tokens
    return tokens.revoke(name).to_json()


# webhooks


class NewWebhook(BaseModel):
    url: str
    events: list[str] | None = Field(default=None, description="Default: every event.")
    secret: str | None = Field(default=None, description="Default: a new random secret.")


@router.get("/webhooks", tags=["webhooks"])
def list_webhooks(request: Request, who: Token = admin) -> dict[str, Any]:
    """The endpoints that receive events (never their secrets)."""
    store: WebhookStore = request.app.state.webhooks
    return {"webhooks": [e.to_json() for e in store.list_endpoints()]}


@router.post("/webhooks", tags=["webhooks"], status_code=201)
def add_webhook(body: NewWebhook, request: Request, who: Token = admin) -> dict[str, Any]:
    """Add an endpoint; its signing secret is in this answer only."""
    store: WebhookStore = request.app.state.webhooks
    try:
        endpoint, secret = store.add_endpoint(
            body.url, events=body.events, secret=body.secret, created_by=who.name
        )
    except WebhookError as e:
        raise HTTPException(422, str(e)) from None
    return endpoint.to_json() | {"secret": secret}


@router.delete("/webhooks/{webhook_id}", tags=["webhooks"])
def remove_webhook(webhook_id: str, request: Request, who: Token = admin) -> dict[str, Any]:
    store: WebhookStore = request.app.state.webhooks
    try:
        return store.remove_endpoint(webhook_id).to_json()
    except WebhookError as e:
        raise HTTPException(404, str(e)) from None


@router.get("/webhooks/deliveries", tags=["webhooks"])
def webhook_deliveries(
    request: Request,
    status: Literal["pending", "delivered", "dead"] | None = None,
    webhook_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    who: Token = admin,
) -> dict[str, Any]:
    """The delivery log, newest first: attempts, last status code and error."""
    store: WebhookStore = request.app.state.webhooks
    found = store.deliveries(status=status, webhook_id=webhook_id, limit=limit, offset=offset)
    return {"deliveries": [d.to_json() for d in found], "counts": store.counts()}


# helpers


def _view_or_queued(
    svc: ApprovalService, thread_id: str, runs: list[dict[str, Any]]
) -> dict[str, Any]:
    """The thread's view; for a thread whose first run is queued, a `queued` stand-in."""
    try:
        return svc.show(thread_id).to_json()
    except ThreadNotFound:
        if not runs:
            raise
        return {"thread_id": thread_id, "status": "queued", "pending": [], "messages": []}


def _new_id() -> str:
    return str(uuid.uuid4())


def _parsed(parse: Callable[[str], float], text: str, name: str) -> float:
    try:
        return parse(text)
    except ValueError as e:  # the shape of every other invalid parameter: type and `fields`
        problem = {"type": "value_error", "loc": ("query", name), "msg": str(e), "input": text}
        raise RequestValidationError([problem]) from None


def _sse(
    request: Request,
    bus: EventBus,
    topic: str,
    first: Event,
    refresh: Callable[[], Awaitable[Event]] | None,
) -> StreamingResponse:
    """Stream `first`, then the topic's events (or, with `refresh`, a fresh `refresh()` for
    each), with a comment line every few seconds to keep proxies from closing the stream."""

    async def events() -> AsyncIterator[str]:
        with bus.subscription(topic) as queue:
            yield "retry: 2000\n\n" + first.sse()
            while not await request.is_disconnected():
                try:
                    event = await asyncio.wait_for(queue.get(), HEARTBEAT_SECONDS)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if refresh is not None:
                    while not queue.empty():  # many changes at once: one refresh
                        queue.get_nowait()
                    event = await refresh()
                yield event.sse()

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
