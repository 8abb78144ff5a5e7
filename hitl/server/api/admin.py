"""Health, metrics and what admins do: reconcile, resume, sweep, prune, tokens, webhooks."""

import asyncio
from contextlib import suppress
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import PlainTextResponse

from hitl.checkpoints import maintenance
from hitl.checkpoints.errors import WebhookError
from hitl.checkpoints.stores import MAX_OFFSET, Token, TokenStore, WebhookStore
from hitl.server.api.bodies import NewToken, NewWebhook, Prune, Reconcile
from hitl.server.api.common import RUN_ENDED, AsAdmin, Queue, Service, admin, queue, viewer
from hitl.server.auth import principal, token_summary
from hitl.server.workers import Background, queue_sweep
from hitl.service import webhooks
from hitl.service.settings import Settings

router = APIRouter()
HEALTH_READ_SECONDS = 1.0
"""How long `/healthz` waits for the queue's counts before it answers without them."""


# who am I, health, metrics


@router.get("/healthz", tags=["service"])
async def healthz(request: Request, response: Response) -> dict[str, Any]:
    """Liveness and readiness: no token needed; 503 if no worker thread is left to run runs.

    Answered on the event loop, so never behind the request threads (they may all be waiting
    for another process's write lock); the queue's counts are `null` if they cannot be read
    within a second.
    """
    background: Background = request.app.state.background
    counts: dict[str, int | None] = {"queued": None, "running": None}
    with suppress(TimeoutError):  # off the request threads, and bounded
        counts |= await asyncio.wait_for(
            asyncio.to_thread(queue(request).open_counts), HEALTH_READ_SECONDS
        )
    alive = background.alive_workers
    if not alive:
        response.status_code = 503
    return {
        "ok": alive > 0,
        "workers_alive": alive,
        "busy_workers": background.busy_workers,
        **counts,
    }


@router.get("/me", tags=["service"])
def me(who: Token = Depends(principal)) -> dict[str, Any]:  # noqa: B008
    """The caller's identity and role."""
    return token_summary(who)


@router.get(  # not response_class: that would document its JSON errors as text too
    "/metrics",
    tags=["service"],
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(request: Request, who: Token = viewer) -> PlainTextResponse:
    """Prometheus text: pending approvals, decisions, tool runs, run latency."""
    exposition = request.app.state.metrics.render()
    return PlainTextResponse(exposition, media_type="text/plain; version=0.0.4")


# operations


@router.post(
    "/threads/{thread_id}/reconcile", tags=["operations"], status_code=202, responses=RUN_ENDED
)
def reconcile(thread_id: str, body: Reconcile, act: AsAdmin) -> dict[str, Any]:
    """Settle a call whose outcome is unknown (its runner died mid-call), then continue."""
    settled = act.service.reconcile(
        thread_id, body.call, body.action, actor=act.who.name, result=body.result
    )
    return act.accepted(settled.run, reconciled=settled.record.to_json())


@router.post(
    "/threads/{thread_id}/resume", tags=["operations"], status_code=202, responses=RUN_ENDED
)
def resume(thread_id: str, act: AsAdmin) -> dict[str, Any]:
    """Continue a thread whose run stopped, from its last checkpoint."""
    return act.accepted(act.service.continue_thread(thread_id, actor=act.who.name))


@router.post("/sweep", tags=["operations"])
def sweep(request: Request, svc: Service, q: Queue, who: Token = admin) -> dict[str, Any]:
    """Expire overdue approvals, flag crashed calls, and queue a resume of each thread that
    can move on (`queued`; the workers run them)."""
    report = queue_sweep(svc, q)
    if report.queued:
        background: Background = request.app.state.background
        background.wake()
    return report.to_json()


@router.post("/prune", tags=["operations"])
def prune(body: Prune, request: Request, who: Token = admin) -> dict[str, Any]:
    """Trim finished threads to their newest checkpoint, or delete those finished longer ago
    than `older_than`; threads that wait or run, ledger rows and audit trails stay."""
    settings: Settings = request.app.state.settings
    return maintenance.prune(
        settings.db,
        older_than=body.seconds(),
        dry_run=body.dry_run,
        vacuum=body.vacuum,
        full_vacuum=False,  # a whole-file rewrite would hold every writer up: the CLI's job
    ).to_json()


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


@router.get("/webhooks", tags=["webhooks"])
def list_webhooks(request: Request, who: Token = admin) -> dict[str, Any]:
    """The endpoints that receive events (never their secrets)."""
    store: WebhookStore = request.app.state.webhooks
    return {"webhooks": [e.to_json() for e in store.list_endpoints()]}


@router.post("/webhooks", tags=["webhooks"], status_code=201)
def add_webhook(body: NewWebhook, request: Request, who: Token = admin) -> dict[str, Any]:
    """Add an endpoint; its signing secret is in this answer only."""
    store: WebhookStore = request.app.state.webhooks
    settings: Settings = request.app.state.settings
    endpoint, secret = webhooks.add_endpoint(
        store,
        webhooks.Destinations.from_env(settings.environ or {}),
        body.url,
        events=body.events,
        secret=body.secret,
        created_by=who.name,
    )
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
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    who: Token = admin,
) -> dict[str, Any]:
    """The delivery log, newest first: attempts, last status code and error."""
    store: WebhookStore = request.app.state.webhooks
    found = store.deliveries(status=status, webhook_id=webhook_id, limit=limit, offset=offset)
    return {"deliveries": [d.to_json() for d in found], "counts": store.counts()}
