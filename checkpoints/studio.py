"""The checkpointer `langgraph.json` gives `langgraph dev`: the project's database, async.

LangGraph calls these entry points with no arguments, so they read the process environment
themselves (when the server starts, never at import time); nothing else in storage does.
"""

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from hitl.checkpoints.database import DEFAULT_DB
from hitl.checkpoints.savers import Saver, open_async_saver
from hitl.checkpoints.urls import (
    DatabaseName,
    PostgresUrl,
    is_postgres,
    parse_database,
    parse_pool_size,
)


def studio_database(environ: Mapping[str, str]) -> DatabaseName:
    """`HITL_DB` (default `checkpoints/hitl.sqlite`, or a PostgreSQL URL with the pool size
    `HITL_PG_POOL_SIZE` gives), as `hitl` reads them."""
    db = parse_database(environ.get("HITL_DB") or DEFAULT_DB)
    if not is_postgres(db):
        return db
    return PostgresUrl(str(db), pool_size=parse_pool_size(environ.get("HITL_PG_POOL_SIZE")))


@asynccontextmanager
async def open_studio_checkpointer() -> AsyncIterator[Saver]:
    """Open the database of `studio_database`, read when the server starts."""
    async with open_async_saver(studio_database(os.environ)) as saver:
        yield saver
