"""`langgraph dev` enters `make_graph` for every run and read of a thread: the graph is built
once per process and settings, and each entry only binds a ledger of its own to it."""

import asyncio
from pathlib import Path
from typing import Any

import pytest

from hitl.graph import studio
from hitl.graph.gate import bound_ledger
from tests.support.environment import hitl_environment


async def two_entries() -> list[tuple[Any, Any]]:
    seen = []
    for _ in range(2):
        async with studio.make_graph() as graph:
            seen.append((graph, bound_ledger(graph.config or {})))
    return seen


def test_each_run_binds_its_own_ledger_to_one_graph_built_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in hitl_environment(tmp_path / "hitl.sqlite", tmp_path / "out").items():
        monkeypatch.setenv(name, value)
    studio.unbound_graph.cache_clear()
    (first, first_ledger), (second, second_ledger) = asyncio.run(two_entries())
    assert first_ledger is not None and second_ledger is not None
    assert first_ledger is not second_ledger  # each run's own, closed after it
    assert first.nodes["tools"] is second.nodes["tools"]  # one compiled graph, its tools
    assert studio.unbound_graph.cache_info().misses == 1
    monkeypatch.setenv("HITL_POLICY", "")  # other settings: built anew
    asyncio.run(two_entries())
    assert studio.unbound_graph.cache_info().misses == 2
