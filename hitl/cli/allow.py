"""`hitl allow`: standing approvals (a decision turned into a rule), listed, added, revoked.

Commands only translate arguments and output; the service does the work, on the database or
on a running `hitl serve` (--url), like `hitl approve`.
"""

import json
from typing import Any

import click

from hitl.checkpoints.records import StandingApproval, iso
from hitl.cli.output import emit, json_option
from hitl.service import errors
from hitl.service.timespec import parse_duration


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    try:
        return None if value is None else parse_duration(value)
    except ValueError as e:
        raise click.BadParameter(str(e), ctx, param) from None


def _object(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as e:
        problem = f"not JSON ({e}); give the call's args as an object"
        raise click.BadParameter(problem, ctx, param) from None
    if not isinstance(parsed, dict):
        raise click.BadParameter("give the call's args as a JSON object", ctx, param)
    return parsed


def describe(standing: StandingApproval) -> str:
    """One line for people: its ID, scope, who made it, until when (or why it ended)."""
    scope = [f"tool {standing.tool}"]
    if standing.args_hash:
        scope.append(f"args_hash {standing.args_hash[:12]}…")
    if standing.requester:
        scope.append(f"requester {standing.requester}")
    if standing.thread_id:
        scope.append(f"thread {standing.thread_id}")
    line = f"{standing.id}  {', '.join(scope)}  by {standing.created_by}"
    if standing.revoked_at is not None:
        return f"{line}  revoked {iso(standing.revoked_at)} by {standing.revoked_by}"
    return f"{line}  until {iso(standing.expires_at)}"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def allow() -> None:
    """Standing approvals: approve a tool's calls without asking, until revoked or expired."""


@allow.command("add")
@click.option("--tool", required=True, help="The tool whose calls it approves.")
@click.option(
    "--args-json", "args", callback=_object, help="Only calls with exactly these args (JSON)."
)
@click.option("--requester", help="Only calls this person asked for.")
@click.option("--thread", "thread_id", help="Only calls of this thread.")
@click.option(
    "--expires-in",
    "expires_after",
    required=True,
    callback=_duration,
    help="How long it stands (e.g. 8h, 7d).",
)
@click.option("--as", "actor", envvar="HITL_ACTOR", help="Who creates it [env HITL_ACTOR].")
@json_option
def add(
    tool: str,
    args: dict[str, Any] | None,
    requester: str | None,
    thread_id: str | None,
    expires_after: float,
    actor: str | None,
    as_json: bool,
) -> None:
    """Approve calls of a tool without asking; only someone who may approve it can (the rules
    recorded with the tool's newest call say who)."""
    from hitl.cli.main import _actor, _fail, _service  # the group is registered by main

    with _service(as_json) as service:
        try:
            standing = service.allow(
                tool,
                actor=_actor(actor),
                expires_after=expires_after,
                args=args,
                requester=requester,
                thread_id=thread_id,
            )
        except errors.DOMAIN_ERRORS as e:
            _fail(e, as_json)
    emit(as_json, standing.to_json(), lambda: click.echo(f"added {describe(standing)}"))


@allow.command("list")
@click.option("--all", "include_inactive", is_flag=True, help="Revoked and expired ones too.")
@json_option
def list_(include_inactive: bool, as_json: bool) -> None:
    """The standing approvals in force, newest first."""
    from hitl.cli.main import _fail, _service

    with _service(as_json, read_only_ok=True) as service:
        try:
            found = service.standing_approvals(include_inactive=include_inactive)
        except errors.DOMAIN_ERRORS as e:
            _fail(e, as_json)

    def human() -> None:
        for standing in found:
            click.echo(describe(standing))
        if not found:
            click.echo("no standing approvals" + ("" if include_inactive else " in force"))

    emit(as_json, {"standing": [s.to_json() for s in found]}, human)


@allow.command()
@click.argument("standing_id")
@click.option("--as", "actor", envvar="HITL_ACTOR", help="Who revokes it [env HITL_ACTOR].")
@json_option
def revoke(standing_id: str, actor: str | None, as_json: bool) -> None:
    """Revoke a standing approval: calls asked about from now on wait for a person."""
    from hitl.cli.main import _actor, _fail, _service

    with _service(as_json) as service:
        try:
            revoked = service.revoke_standing(standing_id, actor=_actor(actor))
        except errors.DOMAIN_ERRORS as e:
            _fail(e, as_json)
    emit(as_json, revoked.to_json(), lambda: click.echo(f"revoked {describe(revoked)}"))
