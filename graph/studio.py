"""The graph `langgraph.json` exposes to `langgraph dev` / Studio, compiled without a checkpointer.

The platform supplies the checkpointer (see `checkpoints/studio.py`). Settings are read when the
server builds the graph, never at import time.
"""

import asyncio
import functools
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from langgraph.graph.state import CompiledStateGraph

from hitl.checkpoints.ledger import make_ledger
from hitl.checkpoints.studio import studio_database
from hitl.graph.builder import build_graph
from hitl.graph.gate import bind_ledger
from hitl.graph.loading import load_graph, require_gate
from hitl.graph.plugins import load_on_policy_change, load_policy, load_tools


@asynccontextmanager
async def make_graph() -> AsyncIterator[CompiledStateGraph[Any]]:
    """The graph `HITL_GRAPH` names (the user's own, with its gates bound to the ledger), or
    the demo agent built from the `HITL_*` settings of the server's environment.

    The server enters this for each run or read of a thread. The graph is built once per
    process and settings (`unbound_graph`); what each entry adds is the ledger it opens on the
    checkpointer's database (`HITL_DB`, off the event loop), bound to the graph and closed when
    the run ends, so Studio's runs register, decide and journal calls like the CLI's and leave
    nothing open.
    """
    environ = dict(os.environ)
    db = studio_database(environ)  # with its pool size, as the checkpointer's
    graph = await asyncio.to_thread(unbound_graph, _graph_settings(environ))
    ledger = await asyncio.to_thread(make_ledger, db)
    try:
        yield bind_ledger(graph, ledger)
    finally:
        await asyncio.to_thread(ledger.close)


@functools.lru_cache(maxsize=8)
def unbound_graph(settings: tuple[tuple[str, str], ...]) -> CompiledStateGraph[Any]:
    """The graph the `HITL_*` settings name, without a ledger: built (tools, models, compiled)
    once per process and settings, not for every run (it is immutable; binding copies it)."""
    from hitl.graph.model import make_model

    environ = dict(settings)
    if spec := environ.get("HITL_GRAPH"):
        users = load_graph(spec)  # an async factory runs here, off the event loop
        require_gate(users, spec, allow_ungated=environ.get("HITL_ALLOW_UNGATED") == "1")
        return users
    return build_graph(
        model=make_model(environ.get("HITL_MODEL")),
        tools=load_tools(environ),
        policy=load_policy(environ),
        on_policy_change=load_on_policy_change(environ),
    )


def _graph_settings(environ: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in environ.items() if k.startswith("HITL_")))
