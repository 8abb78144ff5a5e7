"""`hitl webhook`: register signed-webhook endpoints, read the delivery log, dispatch by hand.

Commands only translate arguments and output; the work is done by `WebhookStore` and
`WebhookDispatcher`.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NoReturn, cast

import click

from hitl.checkpoints.errors import DatabaseBusy, DatabaseCorrupt, DatabaseError, WebhookError
from hitl.checkpoints.records import iso
from hitl.checkpoints.stores import (
    DELIVERY_STATUSES,
    EVENT_TYPES,
    MAX_OFFSET,
    Delivery,
    DeliveryStatus,
    Endpoint,
    WebhookStore,
    open_webhook_store,
)
from hitl.cli.output import emit, fail, json_option
from hitl.cli.settings import settings
from hitl.service.settings import default_actor

if TYPE_CHECKING:  # httpx loads with the commands that send or check, not with `hitl`
    from hitl.service.links import DecisionLinks
    from hitl.service.webhooks import Destinations

EXIT_CODES: dict[type[Exception], int] = {
    WebhookError: 10,
    DatabaseCorrupt: 22,  # before DatabaseError: the first kind that matches is taken
    DatabaseError: 10,
    DatabaseBusy: 13,
}
"""Exit code of each error, as `hitl`'s own table numbers them (10: bad input, 13: busy)."""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def webhook() -> None:
    """Signed webhooks of approval events, and their delivery log."""


@contextmanager
def _store(as_json: bool, *, create: bool = False) -> Iterator[WebhookStore]:
    """The store of the `--db` file; an error of the block exits with its code."""
    db = settings(as_json).db
    try:
        with open_webhook_store(db, create=create) as store:
            yield store
    except tuple(EXIT_CODES) as e:
        _fail(e, as_json)


def _fail(error: Exception, as_json: bool) -> NoReturn:
    fail(error, next(c for kind, c in EXIT_CODES.items() if isinstance(error, kind)), as_json)


def _destinations(as_json: bool) -> "Destinations":
    """Where webhooks may go, by `HITL_WEBHOOK_ALLOW_PRIVATE`."""
    from hitl.service.webhooks import Destinations

    return Destinations.from_env(settings(as_json).environ or {})


@contextmanager
def _links(as_json: bool) -> "Iterator[DecisionLinks | None]":
    """What adds decision links to `approval.requested` bodies: None without a public URL
    (`HITL_PUBLIC_URL`), as in the service."""
    chosen = settings(as_json)
    if chosen.public_url is None:
        yield None
        return
    from hitl.checkpoints.ledger import open_ledger
    from hitl.checkpoints.stores import open_link_store, open_token_store
    from hitl.service.links import DecisionLinks, token_roles

    try:
        with (
            open_ledger(chosen.db, create=False) as ledger,
            open_link_store(chosen.db) as store,
            open_token_store(chosen.db) as tokens,
        ):
            yield DecisionLinks(ledger, store, token_roles(tokens), public_url=chosen.public_url)
    except tuple(EXIT_CODES) as e:
        _fail(e, as_json)


def _events(endpoint: Endpoint) -> str:
    return "all events" if endpoint.events is None else ", ".join(endpoint.events)


@webhook.command()
@click.argument("url")
@click.option(
    "--event",
    "events",
    multiple=True,
    type=click.Choice(EVENT_TYPES),
    help="An event type to send (repeat for several; default: all).",
)
@click.option(
    "--secret",
    envvar="HITL_WEBHOOK_SECRET",
    help="The signing secret [env HITL_WEBHOOK_SECRET; default: a new random one].",
)
@click.option(
    "--as",
    "actor",
    envvar="HITL_ACTOR",
    help="Who adds it, as recorded [env HITL_ACTOR; default: the OS user].",
)
@json_option
def add(
    url: str, events: tuple[str, ...], secret: str | None, actor: str | None, as_json: bool
) -> None:
    """Send approval events to URL. Prints the signing secret, shown only this once."""
    from hitl.service.webhooks import add_endpoint

    with _store(as_json, create=True) as store:
        endpoint, secret = add_endpoint(
            store,
            _destinations(as_json),
            url,
            events=list(events) or None,
            secret=secret,
            created_by=actor or default_actor({}),
        )

    def human() -> None:
        click.echo(f"added webhook {endpoint.id}: {endpoint.url} ({_events(endpoint)})")
        click.echo(f"signing secret (shown only now; keep it with the receiver): {secret}")

    emit(as_json, {"endpoint": endpoint.to_json(), "secret": secret}, human)


@webhook.command(name="list")
@click.option("--all", "include_removed", is_flag=True, help="Include removed endpoints.")
@json_option
def list_(include_removed: bool, as_json: bool) -> None:
    """List the endpoints (never their secrets)."""
    with _store(as_json) as store:
        endpoints = store.list_endpoints(include_removed=include_removed)

    def human() -> None:
        if not endpoints:
            click.echo("no webhooks; add one with: hitl webhook add URL")
        for e in endpoints:
            state = "" if e.active else "  (removed)"
            click.echo(
                f"{e.id}  {e.url}  {_events(e)}  added {iso(e.created_at)} by {e.created_by}{state}"
            )

    emit(as_json, {"endpoints": [e.to_json() for e in endpoints]}, human)


@webhook.command()
@click.argument("webhook_id")
@json_option
def remove(webhook_id: str, as_json: bool) -> None:
    """Stop sending to an endpoint. Its pending deliveries are dropped (marked dead)."""
    with _store(as_json) as store:
        endpoint = store.remove_endpoint(webhook_id)
    emit(
        as_json,
        {"endpoint": endpoint.to_json()},
        lambda: click.echo(f"removed webhook {endpoint.id} ({endpoint.url})"),
    )


@webhook.command()
@click.option(
    "--status", type=click.Choice(DELIVERY_STATUSES), help="Only deliveries in this state."
)
@click.option("--webhook", "webhook_id", help="Only deliveries to this endpoint.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(0, MAX_OFFSET), default=0, show_default=True)
@json_option
def deliveries(
    status: str | None, webhook_id: str | None, limit: int, offset: int, as_json: bool
) -> None:
    """Show the delivery log. Newest first: attempts, last answer or error, next attempt."""
    with _store(as_json) as store:
        found = store.deliveries(
            status=cast(DeliveryStatus | None, status),
            webhook_id=webhook_id,
            limit=limit,
            offset=offset,
        )

    def human() -> None:
        if not found:
            click.echo("no deliveries")
        for d in found:
            click.echo(_delivery_line(d))

    emit(as_json, {"deliveries": [d.to_json() for d in found]}, human)


def _delivery_line(d: Delivery) -> str:
    line = f"{d.id:>6}  {d.status:<9}  {d.event_type:<18}  {d.event_id}  {d.webhook_id}"
    line += f"  attempts {d.attempts}"
    if d.status == "delivered":
        line += f"  delivered {iso(d.delivered_at)} (HTTP {d.last_status_code})"
    elif d.status == "pending":
        line += f"  next {iso(d.next_attempt_at)}"
    if d.last_error:
        line += f"\n        last error: {d.last_error}"
    return line


@webhook.command()
@click.argument("delivery_id", type=int)
@json_option
def redeliver(delivery_id: int, as_json: bool) -> None:
    """Send a dead delivery again. From a first attempt, by `dispatch` or the service."""
    with _store(as_json) as store:
        delivery = store.redeliver(delivery_id)
    emit(
        as_json,
        {"delivery": delivery.to_json()},
        lambda: click.echo(f"delivery {delivery.id} is pending again"),
    )


@webhook.command()
@json_option
def dispatch(as_json: bool) -> None:
    """Send what is due now. Enqueues new events, then attempts every due delivery (cron)."""
    from hitl.service.webhooks import WebhookDispatcher  # httpx, for this command only

    with (
        _store(as_json) as store,
        _links(as_json) as links,
        WebhookDispatcher(
            store,
            destinations=_destinations(as_json),
            body=None if links is None else links.add_to_payload,
        ) as dispatcher,
    ):
        attempted = 0
        while True:  # until a pass finds less than a full batch due: the backlog is drained
            done = dispatcher.run_once()
            attempted += done
            if done < dispatcher.batch:
                break
        counts = store.counts()
    emit(
        as_json,
        {"attempted": attempted, "counts": counts},
        lambda: click.echo(
            f"{attempted} deliveries attempted; "
            + ", ".join(f"{n} {status}" for status, n in counts.items())
        ),
    )
