"""The HTTP service's composition root: settings in, a FastAPI app out.

Its lifespan opens the stores, puts back the runs a dead process left (so a restart finishes
them), and starts the background threads; shutdown waits for the runs in progress.
"""

import gc
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from hitl.checkpoints.database import store_connection
from hitl.checkpoints.ledger import InboxQuery, make_ledger
from hitl.checkpoints.maintenance import prune
from hitl.checkpoints.stores import (
    LinkStore,
    Run,
    RunQueue,
    TokenStore,
    WebhookStore,
    make_webhook_store,
)
from hitl.server import api, http_errors, link_pages, reference, ui
from hitl.server.events import EventBus, thread_topic
from hitl.server.metrics import Metrics
from hitl.server.workers import Background, QueueRuns, ServicePool, queue_sweep
from hitl.service.links import DecisionLinks, token_roles
from hitl.service.settings import Settings
from hitl.service.webhooks import Destinations, WebhookDispatcher

log = logging.getLogger("hitl.server")
MAX_BODY_BYTES = 1 << 20
"""Requests with a larger body are refused (413) before they are read."""


@dataclass(frozen=True)
class ServerOptions:
    workers: int = 2
    """Threads running the queued runs."""
    sweep_interval: float = 30.0
    """Seconds between sweeps of overdue approvals (0: never)."""
    prune_interval: float = 0.0
    """Seconds between prunes of finished threads (0: never; see `checkpoints.retention`)."""
    prune_older_than: float | None = None
    """With `prune_interval`: delete threads finished this many seconds ago, instead of
    trimming each finished thread to its newest checkpoint."""
    webhooks: bool = True
    """Deliver webhooks from this process."""
    poll_interval: float = 0.5
    demo_prompt: str | None = None
    """Start a thread with this prompt if nothing waits for a decision (a first look)."""


def create_app(settings: Settings, options: ServerOptions = ServerOptions()) -> FastAPI:
    """The service on the database of `settings`."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        bus = EventBus()
        ledger = make_ledger(settings.db)
        queue = RunQueue(store_connection(settings.db), path=str(settings.db))
        tokens = TokenStore(store_connection(settings.db), path=str(settings.db))
        link_store = LinkStore(store_connection(settings.db), path=str(settings.db))
        links = DecisionLinks(
            ledger, link_store, token_roles(tokens), public_url=settings.public_url
        )

        def queued(run: Run) -> None:  # a worker takes it now; streams of the thread hear of it
            background.wake()
            bus.publish(thread_topic(run.thread_id), "run", run.to_json())

        pool = ServicePool(settings, bus, QueueRuns(queue, queued))
        pool.get()  # fail now, not at the first request, if the settings are wrong
        webhooks = make_webhook_store(settings.db)
        destinations = Destinations.from_env(settings.environ or {})
        extra = [_deliver_webhooks(webhooks, destinations, links)] if options.webhooks else []
        background = Background(
            pool,
            queue,
            ledger,
            bus,
            workers=options.workers,
            sweep_interval=options.sweep_interval,
            poll_interval=options.poll_interval,
            extra=extra,
            prune_interval=options.prune_interval,
            prune=partial(
                prune,
                settings.db,
                older_than=options.prune_older_than,
                full_vacuum=False,  # a whole-file rewrite would hold every writer up
            ),
        )
        app.state.bus, app.state.pool, app.state.queue = bus, pool, queue
        app.state.tokens, app.state.background = tokens, background
        app.state.webhooks, app.state.settings = webhooks, settings
        app.state.links = links
        app.state.metrics = Metrics(ledger, queue, background.stats)
        background.start()
        # decisions recorded by a process that died before queuing their run: resume now
        queue_sweep(pool.get(), queue, grace=0.0)
        if options.demo_prompt and not ledger.inbox(InboxQuery(limit=1))[1]:
            queue.enqueue(
                str(uuid.uuid4()), "message", {"messages": [options.demo_prompt]}, actor="demo"
            )
            background.wake()
        if background.requeued_at_start:
            log.warning(
                "runs were in flight when the last process stopped; running them again: %d",
                background.requeued_at_start,
            )
        # what starting made (modules, the graph, the stores) lives as long as the process:
        # out of the collector's way, a full collection scans only what requests leave (else
        # one pass over ~146,000 objects, 57 ms, every few hundred cycles: a pause in some request)
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            background.stop()
            pool.close()
            for store in (queue, tokens, link_store, ledger, webhooks):
                store.close()

    app = FastAPI(
        title="hitl: human approval of agent tool calls",
        version="0.1.0",
        lifespan=lifespan,
        description="Approve, reject, edit or respond to an agent's tool calls, durably. "
        "Every endpoint but /healthz needs `Authorization: Bearer <token>` (in a browser, "
        "the web inbox's sign-in: this page too).",
        docs_url=None,  # `reference` serves them to signed-in readers, without a CDN
        redoc_url=None,
        openapi_url=None,
    )
    http_errors.install(app)
    app.include_router(api.router)
    reference.install(app)
    ui.install(app)
    link_pages.install(app)
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    return app


def _deliver_webhooks(
    store: WebhookStore, destinations: Destinations, links: DecisionLinks
) -> Callable[[threading.Event], None]:
    def deliver(stop: threading.Event) -> None:
        with WebhookDispatcher(
            store, destinations=destinations, body=links.add_to_payload
        ) as dispatcher:
            dispatcher.run_forever(stop)

    return deliver


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyLimit:
    """Refuse request bodies over `limit` bytes (413), declared or streamed."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(self.limit)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge(self.limit)
            return message

        try:
            await self.app(scope, counted, send)
        except _BodyTooLarge:
            await _too_large(self.limit)(scope, receive, send)


class _BodyTooLarge(HTTPException):
    """An HTTP error, not a plain one: FastAPI turns any other error raised while it reads a
    body into a 400, and lets an `HTTPException` through to the handlers as it is."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _too_large_message(limit))


def _too_large_message(limit: int) -> str:
    return f"the request body is larger than {limit} bytes; send less"


def _too_large(limit: int) -> JSONResponse:
    body = {"error": {"type": "TooLarge", "message": _too_large_message(limit), "status": 413}}
    return JSONResponse(body, status_code=413)
