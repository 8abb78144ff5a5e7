"""The HTTP service's own stores: the run queue, API tokens, the webhook outbox, decision links."""

from hitl.checkpoints.database import MAX_OFFSET
from hitl.checkpoints.stores._links import Link, LinkStore, open_link_store
from hitl.checkpoints.stores._runs import (
    FINISHED,
    MAX_ATTEMPTS,
    OTHER_HOST_SILENCE_SECONDS,
    Run,
    RunKind,
    RunQueue,
    open_run_queue,
)
from hitl.checkpoints.stores._tokens import (
    Role,
    Token,
    TokenStore,
    open_token_store,
)
from hitl.checkpoints.stores._webhooks import (
    DELIVERY_STATUSES,
    EVENT_TYPES,
    Claim,
    Delivery,
    DeliveryStatus,
    Endpoint,
    WebhookStore,
    make_webhook_store,
    open_webhook_store,
)

__all__ = [
    "DELIVERY_STATUSES",
    "EVENT_TYPES",
    "FINISHED",
    "MAX_ATTEMPTS",
    "MAX_OFFSET",
    "OTHER_HOST_SILENCE_SECONDS",
    "Claim",
    "Delivery",
    "DeliveryStatus",
    "Endpoint",
    "Link",
    "LinkStore",
    "Role",
    "Run",
    "RunKind",
    "RunQueue",
    "Token",
    "TokenStore",
    "WebhookStore",
    "make_webhook_store",
    "open_link_store",
    "open_run_queue",
    "open_token_store",
    "open_webhook_store",
]
