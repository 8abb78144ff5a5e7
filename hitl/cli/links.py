"""`hitl link`: a one-click decision link for a pending call and one person.

The command only translates arguments and output; `DecisionLinks` makes the link (locally, on
the database), or the service does (`--url`: `POST /approvals/{thread}/{call}/links`).
"""

import os
from pathlib import Path
from typing import Any

import click

from hitl.checkpoints.errors import DatabaseError
from hitl.checkpoints.urls import is_postgres
from hitl.cli.output import emit, fail, json_option
from hitl.cli.settings import settings
from hitl.service import errors
from hitl.service.settings import check_public_url, default_actor


@click.command("link")
@click.argument("thread_id")
@click.option("--call", "tool_call_id", required=True, help="The pending tool call's ID.")
@click.option(
    "--for",
    "identity",
    required=True,
    help="Who decides with it (recorded as them); they must be allowed to approve the call.",
)
@click.option(
    "--public-url",
    envvar="HITL_PUBLIC_URL",
    help="Where people open the service, e.g. https://hitl.example.com [env HITL_PUBLIC_URL].",
)
@json_option
def link(
    thread_id: str, tool_call_id: str, identity: str, public_url: str | None, as_json: bool
) -> None:
    """Print a link that lets one person approve or reject one pending call, once.

    The link is that person's credential for the call: send it to them only.
    """
    from hitl.cli.main import EXIT_CODES  # loaded by now: `hitl` is main's group

    ctx = click.get_current_context()
    remote = ctx.find_root().meta.get("remote")
    typed = ctx.get_parameter_source("public_url") == click.core.ParameterSource.COMMANDLINE
    if remote is not None and typed:
        raise click.UsageError(
            "--public-url does not apply with --url: the service makes the link with its own "
            "(hitl serve --public-url / HITL_PUBLIC_URL)"
        )
    try:
        made = (
            _remote(remote, thread_id, tool_call_id, identity)
            if remote is not None
            else _local(thread_id, tool_call_id, identity, public_url, as_json)
        )
    except tuple(EXIT_CODES) as e:
        fail(e, next(EXIT_CODES[k] for k in type(e).__mro__ if k in EXIT_CODES), as_json)

    def human() -> None:
        click.echo(made["url"])
        until = f" until {made['expires_at']}" if made["expires_at"] else ""
        click.echo(
            f"(for {made['for']} to approve or reject call {made['tool_call_id']}, once{until}; "
            "it acts as them: send it to them only)",
            err=True,
        )

    emit(as_json, made, human)


def _local(
    thread_id: str, tool_call_id: str, identity: str, public_url: str | None, as_json: bool
) -> dict[str, Any]:
    from hitl.checkpoints.ledger import open_ledger
    from hitl.checkpoints.stores import open_link_store, open_token_store
    from hitl.service.links import NO_PUBLIC_URL, DecisionLinks, token_roles

    chosen = settings(as_json)
    base = check_public_url(public_url) if public_url else chosen.public_url
    if base is None:
        raise errors.InvalidSettings(NO_PUBLIC_URL)
    if not is_postgres(chosen.db) and not Path(chosen.db).exists():  # make no empty file
        raise DatabaseError(chosen.db, FileNotFoundError("no such database file"))
    with (
        open_ledger(chosen.db, create=False) as ledger,
        open_link_store(chosen.db) as store,
        open_token_store(chosen.db) as tokens,
    ):
        links = DecisionLinks(ledger, store, token_roles(tokens), public_url=base)
        made = links.make(thread_id, tool_call_id, identity, created_by=default_actor(os.environ))
    return made.to_json()


def _remote(
    remote: tuple[str, str], thread_id: str, tool_call_id: str, identity: str
) -> dict[str, Any]:
    from hitl.cli.remote import RemoteService

    client = RemoteService(*remote)
    try:
        return client.make_link(thread_id, tool_call_id, identity)
    finally:
        client.close()
