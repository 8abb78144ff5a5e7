"""The graph `langgraph.json` exposes to `langgraph dev` / Studio, compiled without a checkpointer.

The platform supplies the checkpointer (see `checkpoints/studio.py`). Settings are read when the
server builds the graph, never at import time.
"""

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from langgraph.graph.state import CompiledStateGraph

from hitl.checkpoints.ledger import make_ledger
from hitl.checkpoints.studio import studio_database
from hitl.graph.builder import build_graph
from hitl.graph.loading import load_graph, require_gate, serve
from hitl.graph.plugins import load_policy, load_tools


@asynccontextmanager
async def make_graph() -> AsyncIterator[CompiledStateGraph[Any]]:
    """The graph `HITL_GRAPH` names (the user's own, with its gates bound to the ledger), or
    the demo agent built from the `HITL_*` settings of the server's environment.

    The server enters this for each run or read of a thread; the ledger it opens on the
    checkpointer's database (`HITL_DB`, off the event loop) is closed when the run ends, so
    Studio's runs register, decide and journal calls like the CLI's and leave nothing open.
    """
    from hitl.graph.model import make_model

    environ = dict(os.environ)
    db = studio_database(environ)  # with its pool size, as the checkpointer's
    ledger = await asyncio.to_thread(make_ledger, db)
    try:
        if spec := environ.get("HITL_GRAPH"):
            users = await asyncio.to_thread(load_graph, spec)  # an async factory runs there
            require_gate(users, spec, allow_ungated=environ.get("HITL_ALLOW_UNGATED") == "1")
            yield serve(users, checkpointer=None, ledger=ledger)
        else:
            yield build_graph(
                model=make_model(environ.get("HITL_MODEL")),
                tools=load_tools(environ),
                policy=load_policy(environ),
                ledger=ledger,
            )
    finally:
        await asyncio.to_thread(ledger.close)
