"""How every `hitl` command prints: JSON for machines with `--json`, text for people, and
errors as one line (or one JSON object) with the command's exit code."""

import json
import sys
from collections.abc import Callable
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
        click.echo(
            json.dumps(
                {
                    "error": {
                        "type": type(error).__name__,
                        "message": str(error),
                        "exit_code": exit_code,
                    }
                }
            )
        )
    else:
        click.echo(f"error: {error}", err=True)
    sys.exit(exit_code)
