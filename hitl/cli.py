"""`hitl`: start threads, list pending approvals and decide them, from any process.

Commands only translate arguments and output; the work is done by `ApprovalService`.
"""

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import click

from checkpoints.serde import UntrustedCheckpointError
from checkpoints.sqlite import DatabaseError
from hitl import errors
from hitl.app import open_service
from hitl.service import ApprovalService
from hitl.settings import Settings
from hitl.views import HistoryEntry, PendingApproval, ThreadView

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
}
"""Exit code of each error; 0 is success, 2 a usage error, 1 anything unexpected."""

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
call_option = click.option(
    "--call", "tool_call_id", help="The tool call ID (default: all pending)."
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db", envvar="HITL_DB", help="SQLite file [env HITL_DB; default checkpoints/hitl.sqlite]."
)
@click.pass_context
def cli(ctx: click.Context, db: str | None) -> None:
    """Durable human approval of an agent's tool calls."""
    ctx.obj = Settings.from_env(os.environ, db=db)


@contextmanager
def _service(as_json: bool, *, create: bool = False) -> Iterator[ApprovalService]:
    settings: Settings = click.get_current_context().obj
    try:
        with open_service(settings, create=create) as service:
            yield service
    except tuple(EXIT_CODES) as e:
        _fail(e, as_json)


def _fail(error: Exception, as_json: bool) -> NoReturn:
    code = EXIT_CODES[type(error)]
    if as_json:
        click.echo(
            json.dumps(
                {"error": {"type": type(error).__name__, "message": str(error), "exit_code": code}}
            )
        )
    else:
        click.echo(f"error: {error}", err=True)
    sys.exit(code)


def _emit(as_json: bool, data: Any, human: Callable[[], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        human()


def _print_pending(items: list[PendingApproval], with_thread: bool) -> None:
    for p in items:
        where = f"thread {p.thread_id}  " if with_thread else ""
        click.echo(f"  {where}call {p.tool_call_id}  {p.tool}({json.dumps(p.args)})")
        click.echo(f"      since {p.since}; allowed: {', '.join(p.allowed_decisions)}")


def _print_view(view: ThreadView) -> None:
    click.echo(f"thread {view.thread_id}: {view.status}")
    if view.pending:
        click.echo("pending approvals:")
        _print_pending(view.pending, with_thread=False)
        click.echo(
            f"decide with: hitl approve {view.thread_id}  |  hitl reject {view.thread_id} "
            "--reason TEXT  (add --call ID for one call)"
        )
    if view.answer is not None:
        click.echo(view.answer)


def _show_view(view: ThreadView, as_json: bool) -> None:
    _emit(as_json, view.to_json(), lambda: _print_view(view))


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
@json_option
def run(prompt: str, thread_id: str | None, cancel_pending: bool, as_json: bool) -> None:
    """Send PROMPT to a new thread (or --thread); print the answer or the pending approvals."""
    with _service(as_json, create=True) as service:
        try:
            view = service.run(prompt, thread_id, cancel_pending=cancel_pending)
        except errors.HitlError as e:
            _fail(e, as_json)
        _show_view(view, as_json)


@cli.command()
@json_option
def pending(as_json: bool) -> None:
    """List the approvals waiting for a decision, across all threads."""
    with _service(as_json) as service:
        items = service.pending()

    def human() -> None:
        if not items:
            click.echo("nothing is waiting for a decision")
        _print_pending(items, with_thread=True)

    _emit(as_json, {"pending": [p.to_json() for p in items]}, human)


@cli.command()
@click.argument("thread_id")
@json_option
def show(thread_id: str, as_json: bool) -> None:
    """Show a thread: status, messages, pending approvals."""
    with _service(as_json) as service:
        try:
            view = service.show(thread_id)
        except errors.HitlError as e:
            _fail(e, as_json)

    def human() -> None:
        _print_view(view)
        click.echo("messages:")
        for m in view.messages:
            calls = "".join(
                f"\n      → {c['tool']}({json.dumps(c['args'])}) [{c['tool_call_id']}]"
                for c in m.get("tool_calls", [])
            )
            click.echo(f"  [{m['type']}] {m['content']}{calls}")

    _emit(as_json, view.to_json(), human)


@cli.command()
@click.argument("thread_id")
@json_option
def history(thread_id: str, as_json: bool) -> None:
    """List a thread's checkpoints: step, node, time, what was pending or decided."""
    with _service(as_json) as service:
        try:
            entries = service.history(thread_id)
        except errors.HitlError as e:
            _fail(e, as_json)

    def human() -> None:
        for e in entries:
            click.echo(_history_line(e))

    _emit(as_json, {"thread_id": thread_id, "history": [e.to_json() for e in entries]}, human)


def _history_line(e: HistoryEntry) -> str:
    line = f"step {e.step:>3}  {e.created_at}  {e.node}"
    if e.pending:
        line += f"  pending: {', '.join(e.pending)}"
    if e.decided:
        line += "  decided: " + ", ".join(f"{k}={v}" for k, v in e.decided.items())
    return line


def _decide(thread_id: str, tool_call_id: str | None, answer: object, as_json: bool) -> None:
    with _service(as_json) as service:
        try:
            if tool_call_id is None:
                view = service.decide_all(thread_id, answer)
            else:
                view = service.decide(thread_id, {tool_call_id: answer})
        except errors.HitlError as e:
            _fail(e, as_json)
        _show_view(view, as_json)


@cli.command()
@click.argument("thread_id")
@call_option
@json_option
def approve(thread_id: str, tool_call_id: str | None, as_json: bool) -> None:
    """Approve one pending call (--call) or all of a thread's pending calls."""
    _decide(thread_id, tool_call_id, {"type": "approve"}, as_json)


@cli.command()
@click.argument("thread_id")
@call_option
@click.option("--reason", help="Why; the model is told.")
@json_option
def reject(thread_id: str, tool_call_id: str | None, reason: str | None, as_json: bool) -> None:
    """Reject one pending call (--call) or all of them; the tool never runs."""
    answer = {"type": "reject"} | ({"message": reason} if reason else {})
    _decide(thread_id, tool_call_id, answer, as_json)


@cli.command()
@click.argument("thread_id")
@click.option("--call", "tool_call_id", required=True, help="The tool call ID.")
@click.option("--args", "args_json", required=True, help="The new arguments, as a JSON object.")
@json_option
def edit(thread_id: str, tool_call_id: str, args_json: str, as_json: bool) -> None:
    """Run a pending call with other arguments (checked against the tool's schema first)."""
    try:
        args = json.loads(args_json)
    except json.JSONDecodeError as e:
        raise click.BadParameter(f"not valid JSON: {e}", param_hint="--args") from None
    if not isinstance(args, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--args")
    with _service(as_json) as service:
        try:
            view = service.edit(thread_id, tool_call_id, args)
        except errors.HitlError as e:
            _fail(e, as_json)
        _show_view(view, as_json)


@cli.command()
@click.argument("thread_id")
@click.option("--call", "tool_call_id", required=True, help="The tool call ID.")
@click.option("--message", required=True, help="The answer the model gets instead of the tool's.")
@json_option
def respond(thread_id: str, tool_call_id: str, message: str, as_json: bool) -> None:
    """Answer a pending call in the tool's place, without running it."""
    _decide(thread_id, tool_call_id, {"type": "respond", "message": message}, as_json)


def main() -> None:
    """Entry point of the `hitl` command."""
    cli()
