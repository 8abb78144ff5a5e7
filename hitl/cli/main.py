"""`hitl`: start threads, list pending approvals and decide them, from any process.

Commands only translate arguments and output; the work is done by `ApprovalService`.
"""

import errno
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias, TypeVar, cast

import click

from hitl.checkpoints.errors import (
    DatabaseBusy,
    DatabaseCorrupt,
    DatabaseError,
    TokenError,
    UntrustedCheckpointError,
)
from hitl.checkpoints.ledger import MAX_OFFSET, InboxQuery, SnoozeFilter, SortKey
from hitl.checkpoints.records import iso, parse_args_hash
from hitl.checkpoints.urls import display
from hitl.cli.allow import allow
from hitl.cli.db import db
from hitl.cli.links import link
from hitl.cli.output import (
    emit,
    fail,
    fail_usage,
    json_option,
    progress_on_terminal,
    wants_json,
)
from hitl.cli.settings import DB_OPTION, settings, typed_db_option
from hitl.cli.triage import assign, bulk, snooze
from hitl.cli.webhooks import webhook
from hitl.service import errors
from hitl.service.settings import check_public_url, default_actor
from hitl.service.timespec import parse_duration, parse_moment
from hitl.service.views import (
    MAX_MESSAGES_PAGE,
    MESSAGES_PAGE,
    EveryPending,
    HistoryEntry,
    PendingApproval,
    ThreadView,
    actor_label,
)

if TYPE_CHECKING:  # each command imports what it needs: `hitl --help` loads no LangGraph
    from hitl.checkpoints.ledger import Remember
    from hitl.checkpoints.maintenance import PruneReport
    from hitl.cli.remote import RemoteService
    from hitl.service.reading import Reader
    from hitl.service.workflow import ApprovalService, ReconcileAction

EXIT_CODES: dict[type[Exception], int] = {
    errors.ThreadNotFound: 3,
    errors.NothingPending: 4,
    errors.UnknownToolCall: 5,
    errors.AlreadyDecided: 6,
    errors.DecisionNotAllowed: 7,
    errors.InvalidDecision: 8,
    errors.PendingApprovalsExist: 9,
    errors.InvalidSettings: 10,
    DatabaseError: 10,
    UntrustedCheckpointError: 11,
    errors.NotPermitted: 12,
    errors.Busy: 13,
    errors.NotReconcilable: 14,
    errors.LedgerTampered: 15,
    errors.ArgsChanged: 16,
    errors.Unauthenticated: 17,
    errors.Forbidden: 18,
    errors.ServiceUnavailable: 19,
    errors.UnknownCheckpoint: 20,
    errors.MessagesOutOfRange: 20,
    errors.AgentFailed: 21,
    DatabaseCorrupt: 22,
    errors.LinkNotFound: 23,
    errors.LinkGone: 23,
    errors.InvalidThreadId: 2,  # a bad --thread, as a usage error
    errors.InvalidTriage: 24,
    errors.AlreadyVoted: 6,  # like an already decided call: this person's say is recorded
    errors.StandingNotFound: 26,
    errors.InvalidStanding: 27,
}
"""Exit code of each error; 0 is success, 2 a usage error, 1 anything unexpected."""
AUDIT_BROKEN_EXIT = 15
"""`hitl audit --verify` found a chain that does not verify."""

DISTRIBUTION = "hitl-approvals"
"""The name we are installed under: `hitl --version` prints its version."""
DEMO_PROMPT = "Send sally@example.com an email saying 'hi'"
"""What `hitl serve --demo` asks the (offline) model, so the inbox has something to decide."""

call_option = click.option(
    "--call", "tool_call_id", help="The tool call ID (default: all pending)."
)
actor_option = click.option(
    "--as",
    "actor",
    envvar="HITL_ACTOR",
    help="Who is acting, as recorded in the ledger [env HITL_ACTOR; default: the OS user].",
)
comment_option = click.option("--comment", help="A note recorded with the decision.")


def _args_hash(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    try:
        return None if value is None else parse_args_hash(value)
    except ValueError as e:
        raise click.BadParameter(str(e), ctx, param) from None


seen_option = click.option(
    "--if-args-hash",
    "seen_args_hash",
    callback=_args_hash,
    help="Only if the call's args still have this hash (its `args_hash`): what you reviewed.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    package_name=DISTRIBUTION, prog_name=DISTRIBUTION, message="%(prog)s %(version)s"
)
@click.option("--db", **DB_OPTION)
@click.option(
    "--url",
    envvar="HITL_URL",
    help="Talk to a running `hitl serve` at this URL instead of the database [env HITL_URL].",
)
@click.option("--token", envvar="HITL_TOKEN", help="The API token for --url [env HITL_TOKEN].")
@click.pass_context
def cli(ctx: click.Context, url: str | None, token: str | None) -> None:
    """Durable human approval of an agent's tool calls."""
    if url and not token:
        raise click.UsageError("--url needs --token (or HITL_TOKEN): the service's API token")
    ctx.meta["remote"] = (url, token) if url else None


Operations: TypeAlias = "ApprovalService | RemoteService"
"""What a command acts on: the database (local mode) or a running service (--url)."""
Reading: TypeAlias = "Reader | RemoteService"
"""What a command that only reads the ledger acts on: no graph is built for it."""
L = TypeVar("L")


@contextmanager
def _service(
    as_json: bool, *, create: bool = False, read_only_ok: bool = False
) -> Iterator[Operations]:
    """The service the command acts on; `read_only_ok` for a command that only reads (a
    backup or another user's file is read as it is)."""

    def local() -> AbstractContextManager["ApprovalService"]:
        from hitl.app import open_service

        return open_service(settings(as_json), create=create, read_only_ok=read_only_ok)

    with _connected(as_json, local) as service:
        yield service


@contextmanager
def _reader(as_json: bool) -> Iterator[Reading]:
    def local() -> AbstractContextManager["Reader"]:
        from hitl.app import open_reader

        return open_reader(settings(as_json))

    with _connected(as_json, local) as reader:
        yield reader


@contextmanager
def _connected(
    as_json: bool, local: "Callable[[], AbstractContextManager[L]]"
) -> "Iterator[L | RemoteService]":
    """The running service (--url), else what `local` opens on the database; the modules
    each side needs are imported here, once the command knows which one it uses."""
    ctx = click.get_current_context()
    remote = ctx.meta.get("remote")
    explicit = ctx.get_parameter_source("actor") == click.core.ParameterSource.COMMANDLINE
    if remote is not None and explicit:
        raise click.UsageError(
            "--as does not apply with --url: the service records you as your token's name"
        )
    try:
        if remote is not None:
            from hitl.cli.remote import RemoteService

            client = RemoteService(*remote)
            try:
                yield client
            finally:
                client.close()
        else:
            with local() as opened:
                yield opened
    except tuple(EXIT_CODES) as e:
        _fail(e, as_json)


def _fail(error: Exception, as_json: bool) -> NoReturn:
    """End the command with `error`'s exit code: its class's, or its nearest base's."""
    fail(error, next(EXIT_CODES[k] for k in type(error).__mro__ if k in EXIT_CODES), as_json)


def _print_pending(items: list[PendingApproval], with_thread: bool) -> None:
    for p in items:
        where = f"thread {p.thread_id}  " if with_thread else ""
        click.echo(f"  {where}call {p.tool_call_id}  {p.tool}({json.dumps(p.args)})")
        if p.status == "outcome_unknown":
            click.echo(
                f"      OUTCOME UNKNOWN: it started but never finished; settle it with hitl "
                f"{typed_db_option()}reconcile {p.thread_id} --call {p.tool_call_id} "
                "--retry|--mark-done|--skip"
            )
            continue
        line = f"      requested {p.requested_at}"
        if p.requester:
            line += f" by {p.requester}"
        if p.expires_at:
            line += f"; expires {p.expires_at}"
        click.echo(f"{line}; allowed: {', '.join(p.allowed_decisions)}")
        if p.assignee or p.snoozed_until or p.escalated_at:
            triage = [f"assigned to {p.assignee}"] if p.assignee else []
            triage += [f"snoozed until {p.snoozed_until}"] if p.snoozed_until else []
            triage += [f"escalated {p.escalated_at}"] if p.escalated_at else []
            click.echo(f"      {'; '.join(triage)}")
        if p.progress:
            click.echo(f"      {p.progress}")
        click.echo(f"      args_hash {p.args_hash}")  # what --if-args-hash takes


def _print_view(view: ThreadView) -> None:
    click.echo(f"thread {view.thread_id}: {view.status}")
    if view.pending:
        click.echo("pending approvals:")
        _print_pending(view.pending, with_thread=False)
        hitl = f"hitl {typed_db_option()}"
        click.echo(
            f"decide with: {hitl}approve {view.thread_id}  |  {hitl}reject {view.thread_id} "
            "--reason TEXT  (add --call ID for one call)"
        )
    if view.answer is not None:
        click.echo(view.answer)


def _show_view(view: ThreadView, as_json: bool) -> None:
    emit(as_json, view.to_json(), lambda: _print_view(view))


def _act(as_json: bool, thread_id: str, action: Callable[[Operations], object]) -> None:
    """Run one acting command on the service and print the thread it leaves."""
    with _service(as_json) as service:
        try:
            action(service)
            view = service.show(thread_id)
        except errors.DOMAIN_ERRORS as e:
            _fail(e, as_json)
        _show_view(view, as_json)


@cli.command()
@click.argument("prompt")
@click.option(
    "--thread", "thread_id", help="Continue this thread (a new ID starts a thread with that ID)."
)
@click.option(
    "--cancel-pending",
    is_flag=True,
    help="Reject the thread's pending calls first, then send the message.",
)
@actor_option
@json_option
def run(
    prompt: str, thread_id: str | None, cancel_pending: bool, actor: str | None, as_json: bool
) -> None:
    """Send PROMPT to a new thread (or --thread); print the answer or the pending approvals."""
    with _service(as_json, create=True) as service:
        try:
            sent = service.send(
                prompt, thread_id, actor=_actor(actor), cancel_pending=cancel_pending
            )
            view = service.show(sent.thread_id)
        except errors.DOMAIN_ERRORS as e:
            _fail(e, as_json)
        _show_view(view, as_json)


@cli.command()
@click.option("--tool", help="Only calls of this tool.")
@click.option("--thread", "thread_id", help="Only calls of this thread.")
@click.option("--requester", help="Only calls requested by this person.")
@click.option("--older-than", help="Only calls waiting longer than this (e.g. 30m, 2h, 1d).")
@click.option(
    "--expiring-before", help="Only calls whose deadline is before this (a duration or ISO time)."
)
@click.option(
    "--sort",
    type=click.Choice(["requested_at", "expires_at", "tool", "thread_id"]),
    default="requested_at",
    show_default=True,
)
@click.option("--desc", is_flag=True, help="Newest (or last) first.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(0, MAX_OFFSET), default=0, show_default=True)
@click.option(
    "--assigned-to",
    multiple=True,
    help="Only calls assigned to this person, role:NAME or me (repeatable).",
)
@click.option(
    "--snoozed",
    type=click.Choice(["hide", "show", "only"]),
    default="hide",
    show_default=True,
    help="Calls snoozed until later: hidden, shown too, or only them.",
)
@actor_option
@json_option
def pending(
    tool: str | None,
    thread_id: str | None,
    requester: str | None,
    older_than: str | None,
    expiring_before: str | None,
    sort: str,
    desc: bool,
    limit: int,
    offset: int,
    assigned_to: tuple[str, ...],
    snoozed: str,
    actor: str | None,
    as_json: bool,
) -> None:
    """List the approvals waiting for a person, across all threads (from the ledger's index)."""
    if click.get_current_context().find_root().meta.get("remote") is None:  # else the service's
        assigned_to = tuple(_actor(actor) if a == "me" else a for a in assigned_to)
    now = time.time()
    query = InboxQuery(
        tool=tool,
        thread_id=thread_id,
        requester=requester,
        older_than=None if older_than is None else now - _duration(older_than, "--older-than"),
        expiring_before=None
        if expiring_before is None
        else _moment(expiring_before, now, "--expiring-before"),
        sort=cast(SortKey, sort),
        descending=desc,
        limit=limit,
        offset=offset,
        assigned_to=assigned_to or None,
        snoozed=cast(SnoozeFilter, snoozed),
    )
    with _reader(as_json) as reader:
        page = reader.pending(query)

    def human() -> None:
        if not page.items:
            click.echo("nothing is waiting for a decision")
        _print_pending(page.items, with_thread=True)
        if page.total > offset + len(page.items):
            click.echo(f"({page.total} in all; next page: --offset {offset + len(page.items)})")

    emit(as_json, page.to_json(), human)


def _duration(text: str, option: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint=option) from None


def _moment(text: str, now: float, option: str) -> float:
    try:
        return parse_moment(text, now)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint=option) from None


def _actor(actor: str | None) -> str:
    return actor or default_actor({})


@cli.command()
@click.argument("thread_id")
@click.option(
    "--messages",
    "count",
    type=click.IntRange(1, MAX_MESSAGES_PAGE),
    default=MESSAGES_PAGE,
    show_default=True,
    help="How many messages to show: the newest (a page).",
)
@click.option(
    "--before",
    type=click.IntRange(min=1),
    help="Only messages older than this position (the next page, as the last one says).",
)
@json_option
def show(thread_id: str, count: int, before: int | None, as_json: bool) -> None:
    """Show a thread: status, pending approvals and its newest messages (a page)."""
    with _reader(as_json) as reader:  # the stored rows, else (None) the graph reads them
        try:
            found = reader.show(thread_id, messages=count, before=before)
        except errors.DOMAIN_ERRORS as e:
            _fail(e, as_json)
    if found is None:
        with _service(as_json, read_only_ok=True) as service:
            try:
                found = service.show(thread_id, messages=count, before=before)
            except errors.DOMAIN_ERRORS as e:
                _fail(e, as_json)
    view = found

    def human() -> None:
        _print_view(view)
        click.echo("messages:")
        if view.messages_next_before is not None:
            click.echo(
                f"  ({view.messages_next_before} earlier of {view.messages_total}: --before "
                f"{view.messages_next_before})"
            )
        for m in view.messages:
            calls = "".join(
                f"\n      → {c['tool']}({json.dumps(c['args'])}) [{c['tool_call_id']}]"
                for c in m.get("tool_calls", [])
            )
            click.echo(f"  [{m['type']}] {m.get('text', m['content'])}{calls}")

    emit(as_json, view.to_json(), human)


@cli.command()
@click.argument("thread_id")
@click.option(
    "--limit", type=click.IntRange(1, 10_000), help="Only the newest N checkpoints (a page)."
)
@click.option("--before", help="Only checkpoints older than this checkpoint ID (the next page).")
@json_option
def history(thread_id: str, limit: int | None, before: str | None, as_json: bool) -> None:
    """List a thread's checkpoints: step, node, time, what was pending or decided."""
    with _service(as_json, read_only_ok=True) as service:
        try:
            entries = service.history(thread_id, limit=limit, before=before)
        except errors.DOMAIN_ERRORS as e:
            _fail(e, as_json)
    older = entries[0].checkpoint_id if limit is not None and len(entries) == limit else None

    def human() -> None:
        for e in entries:
            click.echo(_history_line(e))
        if older:
            click.echo(f"(older checkpoints: --before {older})")

    data = {"thread_id": thread_id, "history": [e.to_json() for e in entries]}
    emit(as_json, data | ({"next_before": older} if older else {}), human)


def _history_line(e: HistoryEntry) -> str:
    line = f"step {e.step:>3}  {e.created_at}  {e.node}"
    if e.pending:
        line += f"  pending: {', '.join(e.pending)}"
    if e.decided:
        line += "  decided: " + ", ".join(f"{k}={v}" for k, v in e.decided.items())
    return line


def _decide(
    thread_id: str,
    tool_call_id: str | None,
    answer_for: Callable[[Operations], object],
    actor: str | None,
    comment: str | None,
    seen_args_hash: str | None,
    as_json: bool,
    remember: "Remember | None" = None,
) -> None:
    who = _actor(actor)
    if seen_args_hash is not None and tool_call_id is None:
        raise click.UsageError("--if-args-hash needs --call: a hash names one call's args")
    seen = {tool_call_id: seen_args_hash} if tool_call_id and seen_args_hash else None
    _act(
        as_json,
        thread_id,
        lambda service: service.decide(
            thread_id,
            EveryPending(answer_for(service))
            if tool_call_id is None
            else {tool_call_id: answer_for(service)},
            actor=who,
            comment=comment,
            seen_args_hashes=seen,
            remember=remember,
        ),
    )


def _remember_for(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    try:
        return None if value is None else parse_duration(value)
    except ValueError as e:
        raise click.BadParameter(str(e), ctx, param) from None


@cli.command()
@click.argument("thread_id")
@call_option
@actor_option
@comment_option
@seen_option
@click.option(
    "--remember",
    "remember_for",
    callback=_remember_for,
    help="Also approve the tool's later calls without asking, for this long (e.g. 8h, 7d).",
)
@click.option(
    "--remember-scope",
    "scopes",
    multiple=True,
    type=click.Choice(["args", "requester", "thread"]),
    help="With --remember: only calls with these args / of this requester / of this thread "
    "(repeat to narrow further; default: every call of the tool).",
)
@json_option
def approve(
    thread_id: str,
    tool_call_id: str | None,
    actor: str | None,
    comment: str | None,
    seen_args_hash: str | None,
    remember_for: float | None,
    scopes: tuple[str, ...],
    as_json: bool,
) -> None:
    """Approve one pending call (--call) or all of a thread's pending calls."""
    from hitl.checkpoints.ledger import Remember

    if scopes and remember_for is None:
        raise click.UsageError("--remember-scope needs --remember DURATION")
    remember = None
    if remember_for is not None:
        remember = Remember(
            remember_for,
            args="args" in scopes,
            requester="requester" in scopes,
            thread="thread" in scopes,
        )
    answer = {"type": "approve"}
    _decide(
        thread_id,
        tool_call_id,
        lambda _: answer,
        actor,
        comment,
        seen_args_hash,
        as_json,
        remember,
    )


@cli.command()
@click.argument("thread_id")
@call_option
@click.option("--reason", help="Why; the model is told.")
@actor_option
@comment_option
@seen_option
@json_option
def reject(
    thread_id: str,
    tool_call_id: str | None,
    reason: str | None,
    actor: str | None,
    comment: str | None,
    seen_args_hash: str | None,
    as_json: bool,
) -> None:
    """Reject one pending call (--call) or all of them; the tool never runs."""
    answer = {"type": "reject"} | ({"message": reason} if reason else {})
    _decide(thread_id, tool_call_id, lambda _: answer, actor, comment, seen_args_hash, as_json)


@cli.command()
@click.argument("thread_id")
@click.option("--call", "tool_call_id", required=True, help="The tool call ID.")
@click.option("--args", "args_json", required=True, help="The new arguments, as a JSON object.")
@actor_option
@comment_option
@seen_option
@json_option
def edit(
    thread_id: str,
    tool_call_id: str,
    args_json: str,
    actor: str | None,
    comment: str | None,
    seen_args_hash: str | None,
    as_json: bool,
) -> None:
    """Run a pending call with other arguments (checked against the tool's schema first)."""
    try:
        args = json.loads(args_json)
    except json.JSONDecodeError as e:
        raise click.BadParameter(f"not valid JSON: {e}", param_hint="--args") from None
    if not isinstance(args, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--args")
    _decide(
        thread_id,
        tool_call_id,
        lambda service: service.edit_answer(thread_id, tool_call_id, args),
        actor,
        comment,
        seen_args_hash,
        as_json,
    )


@cli.command()
@click.argument("thread_id")
@click.option("--call", "tool_call_id", required=True, help="The tool call ID.")
@click.option("--message", required=True, help="The answer the model gets instead of the tool's.")
@actor_option
@comment_option
@seen_option
@json_option
def respond(
    thread_id: str,
    tool_call_id: str,
    message: str,
    actor: str | None,
    comment: str | None,
    seen_args_hash: str | None,
    as_json: bool,
) -> None:
    """Answer a pending call in the tool's place, without running it."""
    answer = {"type": "respond", "message": message}
    _decide(thread_id, tool_call_id, lambda _: answer, actor, comment, seen_args_hash, as_json)


@cli.command()
@click.argument("thread_id")
@click.option("--call", "tool_call_id", required=True, help="The tool call ID.")
@click.option("--retry", "action", flag_value="retry", help="Run the call again.")
@click.option(
    "--mark-done", "action", flag_value="mark_done", help="It did take effect; do not run it."
)
@click.option(
    "--skip", "action", flag_value="skip", help="Do not run it; tell the model it was skipped."
)
@click.option("--result", help="With --mark-done: the result the model is given.")
@actor_option
@json_option
def reconcile(
    thread_id: str,
    tool_call_id: str,
    action: str | None,
    result: str | None,
    actor: str | None,
    as_json: bool,
) -> None:
    """Settle a call whose outcome is unknown (its process died mid-call), then continue."""
    if action is None:
        raise click.UsageError("choose one of --retry, --mark-done or --skip")
    if result is not None and action != "mark_done":
        raise click.BadParameter("only with --mark-done", param_hint="--result")
    _act(
        as_json,
        thread_id,
        lambda service: service.reconcile(
            thread_id,
            tool_call_id,
            cast("ReconcileAction", action),
            actor=_actor(actor),
            result=result,
        ),
    )


@cli.command()
@click.argument("thread_id")
@json_option
def resume(thread_id: str, as_json: bool) -> None:
    """Continue a thread whose run stopped (a crash, a lost resume) from its last checkpoint."""

    _act(as_json, thread_id, lambda service: service.continue_thread(thread_id, actor=_actor(None)))


@cli.command()
@json_option
def sweep(as_json: bool) -> None:
    """Expire overdue approvals, flag crashed calls, resume threads that can move on."""
    with _service(as_json) as service:
        try:
            report = service.sweep()
        except errors.DOMAIN_ERRORS as e:
            _fail(e, as_json)

    def human() -> None:
        for r in report.expired:
            click.echo(f"expired  thread {r.thread_id}  call {r.tool_call_id}  ({r.on_expire})")
        for r in report.orphaned:
            click.echo(f"outcome unknown  thread {r.thread_id}  call {r.tool_call_id}")
        for r in report.reminded:
            click.echo(f"reminded  thread {r.thread_id}  call {r.tool_call_id}")
        for r in report.escalated:
            to = ", ".join(r.escalate_to or [])
            click.echo(f"escalated  thread {r.thread_id}  call {r.tool_call_id}  (to {to})")
        for thread_id in report.busy:
            click.echo(f"busy (a later sweep looks again)  thread {thread_id}")
        for thread_id, why in report.failed.items():
            click.echo(f"FAILED  thread {thread_id}: {why}", err=True)
        queued = f", {len(report.queued)} queued to resume" if report.queued else ""
        click.echo(
            f"{len(report.expired)} expired, {len(report.orphaned)} outcome unknown, "
            f"{len(report.resumed)} threads resumed{queued}"
        )

    emit(as_json, report.to_json(), human)
    if report.failed:
        sys.exit(1)


@cli.command()
@click.argument("thread_id", required=False)
@click.option("--verify", is_flag=True, help="Check every thread's hash chain.")
@click.option(
    "--export",
    "export_to",
    metavar="FILE|-",
    help="Write every entry (or THREAD_ID's) as JSON Lines with its hashes, to verify offline.",
)
@json_option
def audit(thread_id: str | None, verify: bool, export_to: str | None, as_json: bool) -> None:
    """Print a thread's audit trail, verify every chain (exit 15 if one is broken), or export
    the trail to verify it elsewhere."""
    if export_to is not None:
        _export_audit(thread_id, verify, export_to, as_json)
        return
    if thread_id is None and not verify:
        raise click.UsageError("give a THREAD_ID, or --verify to check every chain")
    with _service(as_json, read_only_ok=True) as service:
        try:
            if verify:
                report = service.verify_audit()
            else:
                entries = service.audit(cast(str, thread_id))
        except errors.DOMAIN_ERRORS as e:
            _fail(e, as_json)
    if verify:
        data = report.to_json()

        def human_report() -> None:
            for b in report.broken:
                click.echo(f"BROKEN  thread {b.thread_id}  entry {b.seq}: {b.problem}")
            for thread_id, head in sorted(report.heads.items()):  # to keep elsewhere
                click.echo(f"head  thread {thread_id}  {head}")
            verdict = "every chain verifies" if report.ok else f"{len(report.broken)} broken"
            threads = f"{report.threads} thread{'' if report.threads == 1 else 's'}"
            click.echo(f"{threads}, {report.entries} entries: {verdict}")

        emit(as_json, data, human_report)
        if not report.ok:
            sys.exit(AUDIT_BROKEN_EXIT)
        return

    def human() -> None:
        for e in entries:
            who = f" by {actor_label(e.actor)}" if e.actor else ""
            call = f" call {e.tool_call_id}" if e.tool_call_id else ""
            detail = json.dumps(e.detail, sort_keys=True)
            click.echo(f"{e.seq:>4}  {iso(e.at)}  {e.event}{call}{who}  {detail}")

    emit(as_json, {"thread_id": thread_id, "audit": [e.to_json() for e in entries]}, human)


def _export_audit(thread_id: str | None, verify: bool, export_to: str, as_json: bool) -> None:
    from hitl.cli.export import STDOUT, export_lines

    if verify:
        raise click.UsageError(
            "--export and --verify are separate: export, then check the file with "
            "examples/verify_audit_export.py; hitl audit --verify checks the database"
        )
    if export_to == STDOUT and as_json:
        raise click.UsageError("--export - writes JSON Lines to stdout: drop --json")
    if click.get_current_context().meta.get("remote") is not None:
        raise click.UsageError("--export reads the database: run it without --url, on the database")
    with _service(as_json, read_only_ok=True) as service:
        try:
            entries = cast("ApprovalService", service).export_audit(thread_id)
            written = export_lines(entries, export_to)
        except errors.DOMAIN_ERRORS as e:
            _fail(e, as_json)
    if export_to == STDOUT:
        return
    threads = f"{written.threads} thread{'' if written.threads == 1 else 's'}"
    human = f"{written.entries} entries of {threads} written to {export_to}"
    emit(as_json, written.to_json(), lambda: click.echo(human))


@cli.command()
@click.option(
    "--older-than",
    "older_than",
    help="Delete threads finished longer ago than this (e.g. 30d), and runs as old; "
    "without it, keep each finished thread's newest checkpoint.",
)
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@click.option("--no-vacuum", is_flag=True, help="Do not give the freed space back to the system.")
@json_option
def prune(older_than: str | None, dry_run: bool, no_vacuum: bool, as_json: bool) -> None:
    """Trim or delete finished threads; never touches one that waits or runs."""
    ctx = click.get_current_context()
    if ctx.meta.get("remote") is not None:
        raise click.UsageError("prune works on the database file; on a service, POST /prune")
    age = None if older_than is None else _duration(older_than, "--older-than")
    from hitl.checkpoints.maintenance import prune as prune_database

    try:
        with progress_on_terminal(as_json) as progress:
            report = prune_database(
                settings(as_json).db,
                older_than=age,
                dry_run=dry_run,
                vacuum=not no_vacuum,
                progress=progress,
            )
    except DatabaseBusy as e:
        _fail(errors.Busy(str(e)), as_json)
    except DatabaseError as e:
        _fail(e, as_json)
    emit(as_json, report.to_json(), lambda: click.echo(_prune_summary(report)))


def _prune_summary(report: "PruneReport") -> str:
    dry = report.dry_run
    kept = ", ".join(f"{n} {why}" for why, n in sorted(report.kept.items()))
    size = f"{_megabytes(report.bytes_before)}"
    if not dry:
        size += f" → {_megabytes(report.bytes_after)}"
    return (
        f"{'dry run, nothing deleted: ' if dry else ''}{report.threads_examined} threads: "
        f"{report.threads_trimmed} {'to trim' if dry else 'trimmed'}, "
        f"{report.threads_deleted} {'to delete' if dry else 'deleted'}, "
        f"{report.threads_kept} untouched{f' ({kept})' if kept else ''}; "
        f"{'would delete' if dry else 'deleted'} {report.checkpoints_deleted} checkpoints, "
        f"{report.writes_deleted} writes, {report.messages_deleted} messages, "
        f"{report.runs_deleted} runs; file {size} in {report.seconds:.1f} s"
    )


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--workers", type=click.IntRange(1, 64), default=2, show_default=True, help="Run threads."
)
@click.option(
    "--sweep-interval",
    type=click.FloatRange(0),
    default=30.0,
    show_default=True,
    help="Seconds between sweeps of overdue approvals (0: never).",
)
@click.option(
    "--prune-interval",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="Seconds between prunes of finished threads, as `hitl prune` (0: never).",
)
@click.option(
    "--prune-older-than",
    help="With --prune-interval: delete threads finished longer ago than this (e.g. 30d).",
)
@click.option(
    "--demo", is_flag=True, help="Start a demo thread if nothing waits, so the inbox has a card."
)
@click.option(
    "--access-log/--no-access-log", default=True, help="Log every request (method, path, status)."
)
@click.option(
    "--public-url",
    envvar="HITL_PUBLIC_URL",
    help="Where people open the service (decision links start with it) [env HITL_PUBLIC_URL].",
)
def serve(
    host: str,
    port: int,
    workers: int,
    sweep_interval: float,
    prune_interval: float,
    prune_older_than: str | None,
    demo: bool,
    access_log: bool,
    public_url: str | None,
) -> None:
    """Start the HTTP service and web inbox (first start: prints an admin token)."""
    import uvicorn

    from hitl.app import open_service
    from hitl.checkpoints.stores import open_token_store
    from hitl.server.app import ServerOptions, create_app

    chosen = settings(False)
    if public_url:
        try:
            chosen = replace(chosen, public_url=check_public_url(public_url))
        except errors.InvalidSettings as e:
            _fail(e, False)
    if prune_older_than is not None and not prune_interval:
        raise click.UsageError("--prune-older-than needs --prune-interval: how often to prune")
    older_than = (
        None if prune_older_than is None else _duration(prune_older_than, "--prune-older-than")
    )
    # the port first: a start that cannot listen must not make (and lose) the first admin token
    try:
        listener = _listen(host, port)
    except OSError as e:
        _fail(errors.InvalidSettings(_cannot_listen(host, port, e)), False)
    with listener:
        port = listener.getsockname()[1]  # the one the system chose, for --port 0
        try:  # the settings too, before anything is printed: not a failure inside uvicorn
            with open_service(chosen):
                pass
        except errors.DOMAIN_ERRORS as e:
            _fail(e, False)
        except DatabaseError as e:
            _fail(e, False)
        try:
            with open_token_store(chosen.db) as tokens:
                first = tokens.create_first_admin(created_by="hitl serve")
        except DatabaseError as e:
            _fail(e, False)
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        click.echo(f"hitl: database {display(chosen.db)}")
        click.echo(f"hitl: web inbox at http://{shown}:{port}/  (API docs at /docs)")
        if first is not None:
            click.echo(f"hitl: first admin token (shown once, keep it safe): {first}")
        else:
            click.echo("hitl: sign in with a token from `hitl token create NAME --role admin`")
        options = ServerOptions(
            workers=workers,
            sweep_interval=sweep_interval,
            prune_interval=prune_interval,
            prune_older_than=older_than,
            demo_prompt=DEMO_PROMPT if demo else None,
        )
        config = uvicorn.Config(
            create_app(chosen, options),
            host=host,
            port=port,
            log_level="info",
            access_log=access_log,
        )
        with suppress(KeyboardInterrupt):  # uvicorn raises the Ctrl-C it handled once it stops
            uvicorn.Server(config).run(sockets=[listener])


def _listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host:port`, as uvicorn binds one (it listens once serving)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _cannot_listen(host: str, port: int, error: OSError) -> str:
    where = f"cannot listen on {host}:{port}"
    if error.errno == errno.EADDRINUSE:
        return (
            f"{where}: the port is in use (another `hitl serve`?); stop what uses it, or choose "
            "another port with --port"
        )
    return f"{where}: {error.strerror or error}; choose another address with --host or --port"


@cli.group()
def token() -> None:
    """Create, list and revoke the HTTP service's API tokens."""


@token.command("create")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["viewer", "approver", "admin"]),
    required=True,
    help="viewer reads; approver also decides; admin also reconciles and manages tokens.",
)
@json_option
def token_create(name: str, role: str, as_json: bool) -> None:
    """Make a token for NAME (the identity its decisions are recorded as); shown once."""
    from hitl.checkpoints.stores import open_token_store

    try:
        with open_token_store(settings(as_json).db) as tokens:
            made, secret = tokens.create(name, role, created_by=_actor(None))
    except (TokenError, DatabaseError) as e:
        _fail(errors.InvalidSettings(str(e)), as_json)
    emit(
        as_json,
        made.to_json() | {"token": secret},
        lambda: click.echo(f"{secret}\n(token for {name}, role {role}: shown once; keep it safe)"),
    )


@token.command("list")
@json_option
def token_list(as_json: bool) -> None:
    """List the active tokens (never their secrets)."""
    from hitl.checkpoints.stores import open_token_store

    try:
        with open_token_store(settings(as_json).db) as tokens:
            active = tokens.list()
    except DatabaseError as e:
        _fail(e, as_json)

    def human() -> None:
        for t in active:
            click.echo(f"{t.name:<24} {t.role:<9} created {iso(t.created_at)} by {t.created_by}")

    emit(as_json, {"tokens": [t.to_json() for t in active]}, human)


@token.command("revoke")
@click.argument("name")
@json_option
def token_revoke(name: str, as_json: bool) -> None:
    """Revoke NAME's token; it stops working at once."""
    from hitl.checkpoints.stores import open_token_store

    try:
        with open_token_store(settings(as_json).db) as tokens:
            revoked = tokens.revoke(name)
    except (TokenError, DatabaseError) as e:
        _fail(errors.InvalidSettings(str(e)), as_json)
    emit(as_json, revoked.to_json(), lambda: click.echo(f"revoked the token of {name}"))


cli.add_command(webhook)
cli.add_command(db)
for _triage_command in (assign, snooze, bulk):
    cli.add_command(_triage_command)
cli.add_command(link)
cli.add_command(allow)


class _Utf8Text(click.types.StringParamType):
    """Text that must be UTF-8: it reaches the database, which stores UTF-8 only.

    A shell passes bytes; Python turns one that does not decode into a lone surrogate, which
    would fail deep in a driver, as a traceback."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = super().convert(value, param, ctx)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            shown = text.encode("utf-8", "surrogateescape") if _escaped_bytes(text) else text
            self.fail(f"{shown!r} is not valid UTF-8; give it in UTF-8", param, ctx)
        return text


def _escaped_bytes(text: str) -> bool:
    """Whether every surrogate in `text` stands for a byte the shell passed (`surrogateescape`)."""
    return all(not 0xD800 <= ord(c) <= 0xDFFF or 0xDC80 <= ord(c) <= 0xDCFF for c in text)


_DATABASE_PARAMETERS = frozenset({"db", "source", "target"})
"""Parameters that name a database: a file name may be any bytes the file system takes."""


def _require_utf8(command: click.Command) -> None:
    """Make every text argument and option of `command` and its subcommands UTF-8 only, but
    database paths: one rule, so that no new option can forget it."""
    for param in command.params:
        if param.type is click.STRING and param.name not in _DATABASE_PARAMETERS:
            param.type = _Utf8Text()
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _require_utf8(sub)


def _take_db_after_the_name(command: click.Command) -> None:
    """Give every command that reads the database `--db` after its name too (`hitl pending
    --db X`, as people type it), but those that name their databases otherwise (`db copy`)."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _take_db_after_the_name(sub)
    elif not any(p.name in _DATABASE_PARAMETERS for p in command.params):
        command.params.append(click.Option(["--db"], **DB_OPTION))


_take_db_after_the_name(cli)
_require_utf8(cli)


def main() -> None:
    """Entry point of the `hitl` command."""
    as_json = wants_json(sys.argv[1:])
    try:
        # not click's standalone mode, which prints every usage error as text
        outcome = cli.main(standalone_mode=False)
    except click.ClickException as e:
        fail_usage(e, as_json)
    except click.Abort:  # Ctrl-C or end of input at a prompt, as click reports them
        click.echo("Aborted!", err=True)
        sys.exit(1)
    except BrokenPipeError:  # `hitl pending | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except Exception as e:  # a traceback only for our own bugs, not for the agent's code
        failed = errors.AgentFailed.of(e)
        if failed is None:
            raise
        _fail(failed, as_json)
    sys.exit(outcome if isinstance(outcome, int) else 0)  # `--help`, `--version`: 0
