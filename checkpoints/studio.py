"""The checkpointer `langgraph.json` gives `langgraph dev`: the project's database, async."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from checkpoints.sqlite import DEFAULT_DB, open_async_saver


@asynccontextmanager
async def open_studio_checkpointer() -> AsyncIterator[AsyncSqliteSaver]:
    """Open `HITL_DB` (default `checkpoints/hitl.sqlite`), read when the server starts."""
    async with open_async_saver(os.environ.get("HITL_DB") or DEFAULT_DB) as saver:
        yield saver
