"""The composition root: settings in, a ready `ApprovalService` out."""

import time
from collections.abc import Iterator
from contextlib import contextmanager

from hitl.checkpoints.ledger import Clock, open_ledger
from hitl.checkpoints.savers import open_saver
from hitl.graph.builder import build_graph
from hitl.graph.decisions import DecisionSchemas
from hitl.graph.model import ModelConfigError, make_model
from hitl.graph.plugins import PluginError, load_policy, load_tools
from hitl.service.errors import InvalidSettings
from hitl.service.settings import Settings
from hitl.service.workflow import ApprovalService, MovesOn, Observer


@contextmanager
def open_service(
    settings: Settings,
    *,
    create: bool = True,
    clock: Clock | None = None,
    moves_on: MovesOn | None = None,
    observer: Observer | None = None,
) -> Iterator[ApprovalService]:
    """Open the database and build the graph from `settings`; close the database after.

    With `create=False` a missing database file is an error (a mistyped path), not a new file.
    `clock` (UNIX seconds) replaces the system clock for deadlines and times (tests);
    `moves_on` says how a thread moves on after a decision or a message (default: in this
    process, before the call returns); `observer` receives each step of every run (the HTTP
    service streams them).
    """
    environ = settings.environ or {}
    try:
        tools = load_tools(environ)
        policy = load_policy(environ)
        model = make_model(settings.model)
    except (PluginError, ModelConfigError) as e:
        raise InvalidSettings(str(e)) from e
    with (
        open_saver(settings.db, create=create) as saver,
        open_ledger(settings.db, clock=clock or time.time) as ledger,
    ):
        graph = build_graph(
            model=model, tools=tools, policy=policy, checkpointer=saver, ledger=ledger
        )
        yield ApprovalService(
            graph, saver, DecisionSchemas(tools), ledger, moves_on=moves_on, observer=observer
        )
