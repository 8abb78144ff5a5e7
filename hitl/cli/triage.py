"""`hitl assign`, `hitl snooze` and `hitl bulk`: triage of pending calls.

Commands only translate arguments and output; the work is done by `ApprovalService.assign`,
`ApprovalService.snooze` and `hitl.service.bulk` (each call decided on its own, through
`ApprovalService.decide`), or by the same operations of a running service (`--url`).
"""

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

import click

from hitl.checkpoints.ledger import InboxQuery
from hitl.cli.output import emit, json_option
from hitl.service.settings import default_actor
from hitl.service.timespec import parse_moment

if TYPE_CHECKING:
    from hitl.cli.remote import RemoteService
    from hitl.service.bulk import BulkReport
    from hitl.service.workflow import ApprovalService

actor_option = click.option(
    "--as",
    "actor",
    envvar="HITL_ACTOR",
    help="Who is acting, as recorded in the ledger [env HITL_ACTOR; default: the OS user].",
)
call_option = click.option("--call", "tool_call_id", required=True, help="The tool call ID.")


@contextmanager
def _service(as_json: bool) -> "Iterator[ApprovalService | RemoteService]":
    """The service on the `--db` database, or the running one (`--url`): `hitl`'s own, whose
    domain errors exit with their codes."""
    from hitl.cli.main import _service as service  # loaded by now: `hitl` is main's group

    with service(as_json) as opened:
        yield opened


def _who(actor: str | None) -> str:
    return actor or default_actor({})


@click.command()
@click.argument("thread_id")
@call_option
@click.option("--to", "assignee", help="A person's name, role:NAME, or me.")
@click.option("--nobody", is_flag=True, help="Unassign the call.")
@actor_option
@json_option
def assign(
    thread_id: str,
    tool_call_id: str,
    assignee: str | None,
    nobody: bool,
    actor: str | None,
    as_json: bool,
) -> None:
    """Assign a pending call to a person or role (not a decision; shown in the inbox)."""
    if (assignee is None) == (not nobody):
        raise click.UsageError("give --to NAME (or role:NAME, or me), or --nobody")
    who = _who(actor)
    remote = click.get_current_context().find_root().meta.get("remote") is not None
    target = who if assignee == "me" and not remote else assignee  # else the service's "me"
    with _service(as_json) as service:
        record = service.assign(thread_id, tool_call_id, target, actor=who)
    emit(
        as_json,
        record.to_json(),
        lambda: click.echo(f"call {tool_call_id} assigned to {record.assignee or 'nobody'}"),
    )


@click.command()
@click.argument("thread_id")
@call_option
@click.option("--until", help="A duration from now (2h, 1d) or an ISO 8601 time.")
@click.option("--off", is_flag=True, help="Unsnooze: show the call in the inbox again.")
@actor_option
@json_option
def snooze(
    thread_id: str,
    tool_call_id: str,
    until: str | None,
    off: bool,
    actor: str | None,
    as_json: bool,
) -> None:
    """Hide a pending call from `hitl pending` until a time; it still expires on its deadline."""
    if (until is None) == (not off):
        raise click.UsageError("give --until TIME (e.g. 2h), or --off")
    moment = None
    if until is not None:
        try:
            moment = parse_moment(until, time.time())
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--until") from None
    with _service(as_json) as service:
        record = service.snooze(thread_id, tool_call_id, moment, actor=_who(actor))

    def human() -> None:
        if record.snoozed_until is None:
            click.echo(f"call {tool_call_id} is shown in the inbox again")
        else:
            click.echo(f"call {tool_call_id} snoozed until {record.to_json()['snoozed_until']}")

    emit(as_json, record.to_json(), human)


@click.group()
def bulk() -> None:
    """Approve or reject every pending call of a filter, each decided on its own."""


def _selection(command: Any) -> Any:
    for option in reversed(
        [
            click.option("--tool", help="Only calls of this tool."),
            click.option("--thread", "thread_id", help="Only calls of this thread."),
            click.option("--requester", help="Only calls requested by this person."),
            click.option(
                "--assigned-to",
                multiple=True,
                help="Only calls assigned to this person, role:NAME or me (repeatable).",
            ),
            click.option("--include-snoozed", is_flag=True, help="Snoozed calls too."),
            click.option("--comment", help="A note recorded with each decision."),
            click.option("--yes", is_flag=True, help="Do not ask for confirmation."),
            actor_option,
            json_option,
        ]
    ):
        command = option(command)
    return command


@bulk.command("approve")
@_selection
def bulk_approve(**options: Any) -> None:
    """Approve every pending call of the filter (one confirmation, a report per call)."""
    _bulk({"type": "approve"}, **options)


@bulk.command("reject")
@click.option("--reason", help="Why; the model is told.")
@_selection
def bulk_reject(reason: str | None, **options: Any) -> None:
    """Reject every pending call of the filter (one confirmation, a report per call)."""
    _bulk({"type": "reject"} | ({"message": reason} if reason else {}), **options)


def _bulk(
    answer: dict[str, Any],
    *,
    tool: str | None,
    thread_id: str | None,
    requester: str | None,
    assigned_to: tuple[str, ...],
    include_snoozed: bool,
    comment: str | None,
    yes: bool,
    actor: str | None,
    as_json: bool,
) -> None:
    from hitl.service.bulk import decide_all, select

    remote = click.get_current_context().find_root().meta.get("remote") is not None
    if as_json and not yes:
        raise click.UsageError("--json needs --yes: there is no one to confirm")
    who = _who(actor)
    query = InboxQuery(
        tool=tool,
        thread_id=thread_id,
        requester=requester,
        assigned_to=tuple(who if a == "me" and not remote else a for a in assigned_to) or None,
        snoozed="show" if include_snoozed else "hide",
    )
    with _service(as_json) as service:
        targets = select(service, query)
        if not targets:
            emit(as_json, {"decision": answer["type"], "counts": {}, "items": []}, _nothing)
            return
        if not yes:
            for t in targets:
                click.echo(f"  thread {t.thread_id}  call {t.tool_call_id}  {t.tool}")
            verb = "Approve" if answer["type"] == "approve" else "Reject"
            click.confirm(f"{verb} these {len(targets)} calls?", abort=True)
        if remote:  # the service decides each call as the token's owner
            report = cast("RemoteService", service).decide_all(targets, answer, comment=comment)
        else:
            local = cast("ApprovalService", service)
            report = decide_all(local, targets, answer, actor=who, comment=comment)
    emit(as_json, report.to_json(), lambda: _print_report(report))
    if any(i.outcome != "decided" for i in report.items):
        sys.exit(BULK_INCOMPLETE_EXIT)


BULK_INCOMPLETE_EXIT = 25
"""`hitl bulk` recorded its decision for some calls only: the report says why not the others."""


def _nothing() -> None:
    click.echo("no pending call matches; nothing was decided")


def _print_report(report: "BulkReport") -> None:
    for item in report.items:
        line = f"  {item.outcome:<16} thread {item.thread_id}  call {item.tool_call_id}"
        click.echo(line + (f": {item.message}" if item.outcome != "decided" else ""))
    counts = ", ".join(f"{n} {outcome.replace('_', ' ')}" for outcome, n in report.counts.items())
    click.echo(counts)


__all__ = ["assign", "bulk", "snooze"]
