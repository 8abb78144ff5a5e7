"""Async code run from sync code (an async graph factory, an MCP tool in a `hitl` run): to
completion, on a loop of its own, with the caller's context (LangGraph's config travels in it)."""

import asyncio
import contextvars

from hitl.graph.blocking import blocking, run_to_completion

seen = contextvars.ContextVar("seen", default="unset")


async def read_context() -> str:
    return seen.get()


def test_a_coroutine_runs_to_completion_from_sync_code_with_the_callers_context() -> None:
    seen.set("the run's config")
    assert run_to_completion(read_context) == "the run's config"


def test_inside_a_running_loop_it_runs_on_another_thread_with_the_callers_context() -> None:
    async def caller() -> str:
        seen.set("set inside the loop")
        return run_to_completion(read_context)  # a notebook calling graph.invoke

    assert asyncio.run(caller()) == "set inside the loop"


def test_a_blocking_function_keeps_the_coroutines_signature_for_tools() -> None:
    async def call_tool(query: str, config: object = None) -> str:
        return query.upper()

    run = blocking(call_tool)
    assert run("notes") == "NOTES"
    assert run.__wrapped__ is call_tool  # type: ignore[attr-defined]  # tools read its signature
