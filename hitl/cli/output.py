"""How every `hitl` command prints: JSON for machines with `--json`, text for people, errors
as one line (or one JSON object) with the command's exit code, and a long command's progress
on a terminal."""

import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")


def emit(as_json: bool, data: Any, human: Callable[[], None]) -> None:
    """Print `data` as JSON, or call `human` to print it for people."""
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        human()


def fail(error: Exception, exit_code: int, as_json: bool) -> NoReturn:
    """Say what went wrong and exit with `exit_code`."""
    if as_json:
        _echo_json_error(type(error).__name__, str(error), exit_code)
    else:
        click.echo(f"error: {error}", err=True)
    sys.exit(exit_code)


def fail_usage(error: click.ClickException, as_json: bool) -> NoReturn:
    """Say what was wrong with the command line (an unknown option, a missing argument, a bad
    value) as click does, or with `as_json` as every other error, and exit with its code (2)."""
    if not as_json:
        error.show()
        sys.exit(error.exit_code)
    message = error.format_message().rstrip()
    ctx = getattr(error, "ctx", None)  # only usage errors know their command
    if ctx is not None:
        message += (
            f"{'' if message.endswith(('.', '?', ')')) else '.'} See `{ctx.command_path} --help`."
        )
    _echo_json_error(type(error).__name__, message, error.exit_code)
    sys.exit(error.exit_code)


def wants_json(argv: Sequence[str]) -> bool:
    """Whether a command line asks for JSON: `--json` anywhere before a bare `--`, even where
    the command does not take it (a usage error is then told in JSON too)."""
    return "--json" in argv[: argv.index("--")] if "--" in argv else "--json" in argv


def _echo_json_error(kind: str, message: str, exit_code: int) -> None:
    error = {"type": kind, "message": message, "exit_code": exit_code}
    click.echo(json.dumps({"error": error}))


ProgressCallback = Callable[[str, int, int], None]
"""What `hitl.checkpoints.maintenance.Progress` is told: a stage, units done, units in all."""
PROGRESS_INTERVAL_SECONDS = 0.1
"""Least time between two updates of a stage's line (its first and last are always shown)."""


@contextmanager
def progress_on_terminal(as_json: bool) -> Iterator[ProgressCallback]:
    """A callback that shows a long command's progress on stderr, if stderr is a terminal and
    the command prints text: a person waits there; a script or a log file wants the result."""
    if as_json or not sys.stderr.isatty():
        yield _quiet
        return
    line = _ProgressLine(click.get_current_context().command_path)
    try:
        yield line
    finally:
        line.end()  # an error's message starts on a line of its own


def _quiet(stage: str, done: int, total: int) -> None:
    pass


class _ProgressLine:
    """One line per stage on stderr, `hitl prune: threads 400/10000 (4%)`, rewritten in place
    until the stage is done."""

    def __init__(self, command: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._command = command
        self._clock = clock
        self._stage: str | None = None
        self._shown_at = 0.0
        self._open = False
        """A stage's line is on the screen, not ended yet."""

    def __call__(self, stage: str, done: int, total: int) -> None:
        if total <= 0:
            return
        now = self._clock()
        finished = done >= total
        if stage == self._stage and not finished:
            if now - self._shown_at < PROGRESS_INTERVAL_SECONDS:
                return
        elif stage != self._stage:
            self.end()
        self._stage, self._shown_at = stage, now
        text = f"{self._command}: {stage} {done}/{total} ({100 * done // total}%)"
        click.echo(f"\r{text}", err=True, nl=finished)
        self._open = not finished

    def end(self) -> None:
        if self._open:
            click.echo("", err=True)
            self._open = False
