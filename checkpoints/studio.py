"""The checkpointer `langgraph.json` gives `langgraph dev`: the project's database, async."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from checkpoints.sqlite import DEFAULT_DB, BatchingSqliteSaver, open_async_saver


@asynccontextmanager
async def open_studio_checkpointer() -> AsyncIterator[BatchingSqliteSaver]:
    """Open `HITL_DB` (default `checkpoints/hitl.sqlite`), read when the server starts."""
    async with open_async_saver(os.environ.get("HITL_DB") or DEFAULT_DB) as saver:
        yield saver
