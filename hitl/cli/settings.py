"""The settings a command runs with: its database (`--db` before the command's name or after
it, else `HITL_DB`) and the rest of the environment, read when the command needs them."""

import os
import shlex
from typing import Any

import click
from click.core import ParameterSource

from hitl.cli.output import fail
from hitl.service.errors import InvalidSettings
from hitl.service.settings import Settings

INVALID_SETTINGS_EXIT = 10
"""The exit code of unusable settings, as `EXIT_CODES` in `hitl.cli.main` numbers them."""
_TYPED_DB = "hitl.typed_db"
"""`ctx.meta` key (shared by every command of one command line): the last `--db` typed."""


def _note_typed_db(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if param.name and ctx.get_parameter_source(param.name) == ParameterSource.COMMANDLINE:
        ctx.meta[_TYPED_DB] = value


DB_OPTION: dict[str, Any] = {
    "envvar": "HITL_DB",
    "expose_value": False,  # commands read it through `settings()`
    "callback": _note_typed_db,
    "help": "SQLite file or postgresql:// URL [env HITL_DB; default checkpoints/hitl.sqlite].",
}
"""`--db`, as `hitl` takes it and as every command that reads the database takes it again
(after its name, where people type it too); the last one typed wins, then `HITL_DB`."""


def settings(as_json: bool) -> Settings:
    """The settings of the running command; unusable ones end it with their error."""
    ctx = click.get_current_context()
    try:
        return Settings.from_env(os.environ, db=ctx.meta.get(_TYPED_DB))
    except InvalidSettings as e:  # a pool size (HITL_PG_POOL_SIZE) that is no number
        fail(e, INVALID_SETTINGS_EXIT, as_json)
    except ValueError as e:
        raise click.BadParameter(str(e), ctx=ctx, param_hint="--db / HITL_DB") from e


def typed_db_option() -> str:
    """`--db X ` if the user typed `--db X`, for the commands a hint suggests ('' if not: the
    next command reads the same `HITL_DB`)."""
    typed = click.get_current_context().meta.get(_TYPED_DB)
    return "" if typed is None else f"--db {shlex.quote(typed)} "
