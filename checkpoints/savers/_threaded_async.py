"""The async half of our savers: each async method runs its sync twin in a worker thread.

So async runtimes (`langgraph dev`) write the database with the same code as the CLI and the
service, and never block their event loop on it. Reads (`aget_tuple`, `alist`) stay in each
saver: they read a conversation up front, which differs by backend.
"""

import asyncio
from collections.abc import Sequence
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata


class AsyncInWorkerThreads:
    """A mixin, placed before the LangGraph saver it completes."""

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        saved: RunnableConfig = await asyncio.to_thread(
            cast(Any, self).put, config, checkpoint, metadata, new_versions
        )
        return saved

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await asyncio.to_thread(cast(Any, self).put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(cast(Any, self).delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await asyncio.to_thread(cast(Any, self).delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await asyncio.to_thread(cast(Any, self).copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await asyncio.to_thread(cast(Any, self).prune, thread_ids, strategy=strategy)
