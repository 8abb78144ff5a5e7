"""The composition root: settings in, a ready `ApprovalService` out (or every part, with
`assemble`), or a `Reader` for the commands that only read the ledger.

The graph's modules (LangGraph, LangChain, the tools) load when a service is assembled, not
when this module is imported: `hitl pending` never needs them.
"""

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hitl.checkpoints.database import LOCK_WAIT_SECONDS
from hitl.checkpoints.errors import DatabaseError
from hitl.checkpoints.ledger import Clock, Ledger, open_ledger
from hitl.checkpoints.urls import is_postgres
from hitl.service.errors import InvalidSettings
from hitl.service.reading import Reader
from hitl.service.settings import Settings

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool
    from langgraph.graph.state import CompiledStateGraph

    from hitl.checkpoints.savers import Saver
    from hitl.graph.policy import Policy
    from hitl.service.workflow import ApprovalService, MovesOn, Observer


@dataclass(frozen=True)
class Assembly:
    """What the composition root built from one `Settings`: the service and the parts under it.

    Front ends use `service`; the parts are there for what sits beside the service (an
    embedding application, a diagnostic, the test harness), and are closed with it.
    """

    service: "ApprovalService"
    graph: "CompiledStateGraph[Any]"
    """The compiled graph, on `saver` and `ledger` (what Studio's runtime would run)."""
    saver: "Saver"
    ledger: Ledger
    clock: Clock
    """The UNIX seconds the ledger stamps and judges deadlines by."""


@contextmanager
def assemble(
    settings: Settings,
    *,
    create: bool = True,
    clock: Clock | None = None,
    moves_on: "MovesOn | None" = None,
    observer: "Observer | None" = None,
    tools: "Sequence[BaseTool] | None" = None,
    policy: "Policy | None" = None,
    lock_wait: float = LOCK_WAIT_SECONDS,
    read_only_ok: bool = False,
) -> Iterator[Assembly]:
    """Open the database and build the graph and the service from `settings`; close the
    database after.

    With `create=False` a missing database file, or a database without our tables, is an
    error (a mistyped path or URL), not a new one. With `read_only_ok` (the caller only reads:
    `hitl pending`, `show`, `audit`), a SQLite file this user may not write is opened
    read-only instead of refused.
    `clock` (UNIX seconds) replaces the system clock for deadlines and times (tests);
    `moves_on` says how a thread moves on after a decision or a message (default: in this
    process, before the call returns); `observer` receives each step of every run (the HTTP
    service streams them). `tools` and `policy` replace the ones the settings name
    (`HITL_TOOLS`, `HITL_POLICY`): an application that embeds the service hands in its own
    objects. `lock_wait` bounds how long a ledger write waits for another writer's lock.
    """
    from hitl.checkpoints.savers import BatchingSqliteSaver, open_saver
    from hitl.graph.builder import build_graph
    from hitl.graph.decisions import DecisionSchemas
    from hitl.graph.errors import ModelConfigError, PluginError
    from hitl.graph.loading import load_graph, require_gate, serve, tools_of, ungated_tools
    from hitl.graph.model import make_model
    from hitl.graph.plugins import load_on_policy_change, load_policy, load_tools
    from hitl.service.workflow import ApprovalService

    environ = settings.environ or {}
    try:
        if settings.graph and tools is None and policy is None:
            users = load_graph(settings.graph)
            require_gate(
                users, settings.graph, allow_ungated=environ.get("HITL_ALLOW_UNGATED") == "1"
            )
            tools = tools_of(users)

            def build(saver: "Saver", ledger: Ledger) -> "CompiledStateGraph[Any]":
                return serve(users, checkpointer=saver, ledger=ledger)
        else:
            tools = list(tools) if tools is not None else load_tools(environ)
            demo_policy = policy if policy is not None else load_policy(environ)
            on_change = load_on_policy_change(environ)
            model = make_model(settings.model)

            def build(saver: "Saver", ledger: Ledger) -> "CompiledStateGraph[Any]":
                return build_graph(
                    model=model,
                    tools=tools,
                    policy=demo_policy,
                    checkpointer=saver,
                    ledger=ledger,
                    on_policy_change=on_change,
                )
    except (PluginError, ModelConfigError) as e:
        raise InvalidSettings(str(e)) from e
    clock = clock or time.time
    with (
        open_saver(settings.db, create=create, read_only_ok=read_only_ok) as saver,
        open_ledger(
            settings.db,
            clock=clock,
            lock_wait=lock_wait,
            create=create,
            read_only_ok=read_only_ok,
        ) as ledger,
    ):
        graph = build(saver, ledger)
        if isinstance(saver, BatchingSqliteSaver) and not ungated_tools(graph):
            saver.commit_with(ledger)  # every tool journaled: the start's commit carries the step
        service = ApprovalService(
            graph, saver, DecisionSchemas(tools), ledger, moves_on=moves_on, observer=observer
        )
        yield Assembly(service, graph, saver, ledger, clock)


@contextmanager
def open_service(
    settings: Settings,
    *,
    create: bool = True,
    clock: Clock | None = None,
    moves_on: "MovesOn | None" = None,
    observer: "Observer | None" = None,
    read_only_ok: bool = False,
) -> Iterator["ApprovalService"]:
    """The service `assemble` builds from `settings` (see there); the database closes after."""
    with assemble(
        settings,
        create=create,
        clock=clock,
        moves_on=moves_on,
        observer=observer,
        read_only_ok=read_only_ok,
    ) as assembly:
        yield assembly.service


@contextmanager
def open_reader(settings: Settings) -> Iterator[Reader]:
    """The ledger alone, for the commands that only read it (`hitl pending`): no graph, no
    model, no LangGraph. A missing SQLite file is an error, as `open_service(create=False)`."""
    if not is_postgres(settings.db) and not Path(settings.db).exists():
        raise DatabaseError(settings.db, FileNotFoundError(_NO_FILE))
    with open_ledger(settings.db, create=False, read_only_ok=True) as ledger:
        yield Reader(ledger, settings.db)


_NO_FILE = "no such database file; nothing was created"
