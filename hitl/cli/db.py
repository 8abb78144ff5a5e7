"""`hitl db`: create or migrate the schema, show it, copy an installation to another database.

Commands only translate arguments and output; the work is done in `checkpoints.schema` and
`checkpoints.copy`.
"""

from typing import TYPE_CHECKING, NoReturn

import click

from hitl.checkpoints.errors import CopyError, DatabaseBusy, DatabaseCorrupt, DatabaseError
from hitl.checkpoints.urls import DatabaseName, check_postgres_url, is_postgres, parse_database
from hitl.cli.output import emit, fail, json_option, progress_on_terminal
from hitl.cli.settings import settings

if TYPE_CHECKING:  # LangGraph's savers load with the command that needs them, not with `hitl`
    from hitl.checkpoints.maintenance import CopyReport, SchemaStatus

EXIT_CODES: dict[type[Exception], int] = {
    CopyError: 10,
    ValueError: 10,
    DatabaseCorrupt: 22,  # before DatabaseError: the first kind that matches is taken
    DatabaseError: 10,
    DatabaseBusy: 13,
}
"""Exit code of each error, as `hitl`'s own table numbers them (10: bad input, 13: busy)."""
COPY_MISMATCH_EXIT = 21
"""`hitl db copy` finished, but a count in the target differs from the source's."""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def db() -> None:
    """The database's schema, and moving an installation to another database."""


@db.command("migrate")
@json_option
def migrate_command(as_json: bool) -> None:
    """Create the missing tables and apply pending migrations (safe while services run)."""
    try:
        from hitl.checkpoints.maintenance import migrate

        with progress_on_terminal(as_json) as progress:
            found = migrate(settings(as_json).db, progress)
    except tuple(EXIT_CODES) as e:
        _fail(e, as_json)
    emit(as_json, found.to_json(), lambda: _print_status(found))


@db.command("status")
@json_option
def status_command(as_json: bool) -> None:
    """Show the schema's versions and every table's row count; changes nothing."""
    try:
        from hitl.checkpoints.maintenance import status

        with progress_on_terminal(as_json) as progress:
            found = status(settings(as_json).db, progress)
    except tuple(EXIT_CODES) as e:
        _fail(e, as_json)
    emit(as_json, found.to_json(), lambda: _print_status(found))


@db.command("copy")
@click.option("--from", "source", required=True, help="The database to copy (sqlite:///... ).")
@click.option(
    "--to", "target", required=True, help="The empty database to fill (postgresql://...)."
)
@json_option
def copy_command(source: str, target: str, as_json: bool) -> None:
    """Copy every thread, approval, audit entry, run, token and webhook; verify the counts.

    Stop the services using the source first; the target must be empty.
    """
    try:
        from hitl.checkpoints.maintenance import copy_database

        with progress_on_terminal(as_json) as progress:
            report = copy_database(_database(source), _database(target), progress)
    except tuple(EXIT_CODES) as e:
        _fail(e, as_json)
    emit(as_json, report.to_json(), lambda: _print_copy(report))
    if not report.verified:
        raise SystemExit(COPY_MISMATCH_EXIT)


def _fail(error: Exception, as_json: bool) -> NoReturn:
    fail(error, next(c for kind, c in EXIT_CODES.items() if isinstance(error, kind)), as_json)


def _database(value: str) -> DatabaseName:
    """A `--from`/`--to` value, refused (`ValueError`) as the settings refuse `--db`."""
    database = parse_database(value)
    if is_postgres(database):
        check_postgres_url(str(database))
    return database


def _print_status(found: "SchemaStatus") -> None:
    click.echo(f"database {found.database} ({found.backend})")
    click.echo(f"  ledger schema: version {found.ledger_version} of {found.ledger_target}")
    if found.checkpoint_target is not None:
        click.echo(
            f"  checkpoint schema (LangGraph): migration {found.checkpoint_version} "
            f"of {found.checkpoint_target}"
        )
    for table, rows in found.rows.items():
        click.echo(f"  {table:<26} {'missing' if rows is None else f'{rows} rows'}")
    click.echo("up to date" if found.up_to_date else "not up to date: run `hitl db migrate`")


def _print_copy(report: "CopyReport") -> None:
    click.echo(f"copied {report.source} → {report.target}")
    click.echo(
        f"  {report.threads} threads, {report.checkpoints} checkpoints, "
        f"{report.writes} pending writes"
    )
    for table, rows in report.rows.items():
        click.echo(f"  {table:<26} {rows} rows")
    if report.verified:
        click.echo("verified: every count in the target matches the source")
    else:
        click.echo("COUNTS DIFFER (the target is not a complete copy):")
        for line in report.mismatches:
            click.echo(f"  {line}")
