"""The checkpointer `langgraph.json` gives `langgraph dev`: the project's database, async."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from hitl.checkpoints.database import DEFAULT_DB
from hitl.checkpoints.savers import Saver, open_async_saver
from hitl.checkpoints.urls import parse_database


@asynccontextmanager
async def open_studio_checkpointer() -> AsyncIterator[Saver]:
    """Open `HITL_DB` (default `checkpoints/hitl.sqlite`, or a PostgreSQL URL), read when the
    server starts."""
    async with open_async_saver(parse_database(os.environ.get("HITL_DB") or DEFAULT_DB)) as saver:
        yield saver
