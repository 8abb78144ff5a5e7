"""The harness of the in-process tests: the service and its parts (graph, saver, ledger, clock),
built by the production composition root (`hitl.app.assemble`) on the offline model and tools
that record each call they run."""

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph

from hitl.app import Assembly, assemble
from hitl.checkpoints.database import LOCK_WAIT_SECONDS
from hitl.checkpoints.ledger import Clock
from hitl.checkpoints.urls import DatabaseName
from hitl.graph.builder import build_graph
from hitl.graph.offline_model import OfflineChatModel
from hitl.graph.policy import Policy, default_policy
from hitl.service.settings import Settings
from hitl.service.workflow import ApprovalService
from tests.support.environment import hitl_environment
from tests.support.fakes import ToolLog, make_recording_tools


def hitl_settings(
    db: DatabaseName, outbox: Path | None = None, extra: Mapping[str, str] | None = None
) -> Settings:
    """The settings a hitl process would read from the test environment (`hitl_environment`)."""
    return Settings.from_env(hitl_environment(db, outbox, extra))


@contextmanager
def open_harness(
    db: DatabaseName,
    log: ToolLog,
    policy: Policy | None = None,
    clock: Clock = time.time,
    *,
    lock_wait: float = LOCK_WAIT_SECONDS,
    extra: Mapping[str, str] | None = None,
) -> Iterator[Assembly]:
    """The service and its parts as a fresh process would build them (new connections, a new
    graph), with tools that record into `log` (and `extra` settings); closed after."""
    tools = make_recording_tools(log)
    settings = hitl_settings(db, extra=extra)
    with assemble(settings, clock=clock, tools=tools, policy=policy, lock_wait=lock_wait) as parts:
        yield parts


@contextmanager
def open_test_service(
    db: DatabaseName, log: ToolLog, policy: Policy | None = None, clock: Clock = time.time
) -> Iterator[ApprovalService]:
    """The harness's service, for a test that needs nothing else of it."""
    with open_harness(db, log, policy, clock) as parts:
        yield parts.service


def graph_without_ledger(
    checkpointer: BaseCheckpointSaver[Any], log: ToolLog
) -> CompiledStateGraph[Any]:
    """The harness's graph (offline model, recording tools, default policy) on another
    checkpointer and with no ledger: what a lease-less runtime such as Studio's runs, or the
    graph on LangGraph's stock saver."""
    return build_graph(
        model=OfflineChatModel(),
        tools=make_recording_tools(log),
        policy=default_policy(),
        checkpointer=checkpointer,
    )
