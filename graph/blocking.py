"""Async code run from sync code: the `hitl` CLI and service run graphs synchronously, and a
user's graph may be built by an async factory or use async-only tools (MCP's)."""

import asyncio
import contextvars
import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_to_completion(make: Callable[[], Awaitable[T]]) -> T:
    """Await `make()` on an event loop of its own: in this thread, or in another one when this
    thread already runs a loop (a notebook, `langgraph dev`). The loop is closed after: what
    `make()` binds to it (a persistent MCP session, an `AsyncClient`) does not outlive it."""

    async def call() -> T:
        return await make()

    try:
        asyncio.get_running_loop()
    except RuntimeError:  # the usual case: no loop in this thread
        return asyncio.run(call())
    context = contextvars.copy_context()  # LangGraph's config and runtime travel in it
    with ThreadPoolExecutor(max_workers=1) as other:
        return other.submit(context.run, asyncio.run, call()).result()


def blocking(coroutine_function: Callable[..., Awaitable[T]]) -> Callable[..., T]:
    """A sync function with the same signature (a tool passes `config` to one that asks)."""

    @functools.wraps(coroutine_function)
    def run(*args: Any, **kwargs: Any) -> T:
        return run_to_completion(lambda: coroutine_function(*args, **kwargs))

    return run
