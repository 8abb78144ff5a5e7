"""The graph `langgraph.json` exposes to `langgraph dev` / Studio, compiled without a checkpointer.

The platform supplies the checkpointer (see `checkpoints/studio.py`). Settings are read when the
server builds the graph, never at import time.
"""

import asyncio
import os
from typing import Any

from langgraph.graph.state import CompiledStateGraph

from hitl.checkpoints.database import DEFAULT_DB
from hitl.checkpoints.ledger import Ledger, make_ledger
from hitl.checkpoints.urls import parse_database
from hitl.graph.builder import build_graph
from hitl.graph.plugins import load_policy, load_tools

_ledgers: dict[str, Ledger] = {}  # one per database for the server's life


async def make_graph() -> CompiledStateGraph[Any]:
    """Build the approval graph from the `HITL_*` settings of the server's environment.

    The ledger is opened on the same file as the checkpointer (`HITL_DB`), once, off the
    event loop: Studio's runs register, decide and journal calls like the CLI's.
    """
    from hitl.graph.model import make_model

    environ = dict(os.environ)
    db = str(parse_database(environ.get("HITL_DB") or DEFAULT_DB))
    if db not in _ledgers:
        _ledgers[db] = await asyncio.to_thread(make_ledger, db)
    return build_graph(
        model=make_model(environ.get("HITL_MODEL")),
        tools=load_tools(environ),
        policy=load_policy(environ),
        ledger=_ledgers[db],
    )
