"""How every `hitl` command prints: JSON for machines with `--json`, text for people, and
errors as one line (or one JSON object) with the command's exit code."""

import json
import sys
from collections.abc import Callable, Sequence
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
