"""Opening the checkpoint saver on the database a `--db` value names: SQLite or PostgreSQL."""

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Union

from hitl.checkpoints.savers._sqlite import BatchingSqliteSaver
from hitl.checkpoints.savers._sqlite import open_async_saver as open_async_sqlite_saver
from hitl.checkpoints.savers._sqlite import open_saver as open_sqlite_saver
from hitl.checkpoints.urls import DatabaseName, as_postgres, is_postgres

if TYPE_CHECKING:
    from hitl.checkpoints.savers._postgres import HitlPostgresSaver

Saver = Union[BatchingSqliteSaver, "HitlPostgresSaver"]
"""Either saver: both store conversations as a message log and have `flush`."""


@contextmanager
def open_saver(
    db: DatabaseName, *, create: bool = True, read_only_ok: bool = False
) -> Iterator[Saver]:
    """The checkpoint saver on `db`, its tables created or migrated; without `create`, a
    database without them is refused (`SchemaMissing`); `read_only_ok`: a SQLite file this
    user may not write is opened read-only (the caller only reads)."""
    if is_postgres(db):
        from hitl.checkpoints.savers._postgres import open_postgres_saver  # psycopg only when used

        with open_postgres_saver(as_postgres(db), create=create) as saver:
            yield saver
    else:
        with open_sqlite_saver(db, create=create, read_only_ok=read_only_ok) as sqlite_saver:
            yield sqlite_saver


@asynccontextmanager
async def open_async_saver(db: DatabaseName) -> AsyncIterator[Saver]:
    """The same saver for async runtimes such as `langgraph dev`."""
    if is_postgres(db):
        from hitl.checkpoints.savers._postgres import open_async_postgres_saver

        async with open_async_postgres_saver(as_postgres(db)) as saver:
            yield saver
    else:
        async with open_async_sqlite_saver(db) as sqlite_saver:
            yield sqlite_saver
