"""The real graph on a file SQLite database, with the offline model and recording tools."""

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.conformance import validate

from hitl.checkpoints.ledger import Clock, open_ledger
from hitl.checkpoints.savers import open_saver
from hitl.checkpoints.urls import DatabaseName
from hitl.graph.builder import build_graph
from hitl.graph.decisions import DecisionSchemas
from hitl.graph.offline_model import OfflineChatModel
from hitl.graph.policy import Policy, default_policy
from hitl.service.workflow import ApprovalService
from tests.fakes import ToolLog, make_recording_tools
from tests.postgres import fresh_database

TWO_EMAILS = (
    "count my emails of the last 3 days and send bob@example.com an email saying 'hi' "
    "and send carol@example.org an email saying 'yo'"
)
ONE_EMAIL = "Send sally@example.com an email saying 'hi'"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DatabaseName]:
    """The database of a test, once on each backend: a SQLite file, then a PostgreSQL schema
    (tests marked `sqlite_only` run on the file only)."""
    if request.param == "sqlite":
        yield tmp_path / "hitl.sqlite"
        return
    with fresh_database() as url:
        yield url


@pytest.fixture
def log() -> ToolLog:
    return ToolLog()


@contextmanager
def open_test_service(
    db: DatabaseName, log: ToolLog, policy: Policy | None = None, clock: Clock = time.time
) -> Iterator[ApprovalService]:
    """A service as a fresh process would build it: new connections, new graph."""
    tools = make_recording_tools(log)
    with open_saver(db) as saver, open_ledger(db, clock=clock) as ledger:
        graph = build_graph(
            model=OfflineChatModel(),
            tools=tools,
            policy=policy or default_policy(),
            checkpointer=saver,
            ledger=ledger,
        )
        yield ApprovalService(graph, saver, DecisionSchemas(tools), ledger)


def assert_conformant(saver_factory: Any) -> None:
    """LangGraph's checkpointer conformance suite passes on the savers `saver_factory` makes
    (a `checkpointer_test` async generator), every capability ours claim included."""
    report = asyncio.run(validate(saver_factory))
    failures = {
        name: [str(f) for f in result.failures]
        for name, result in report.results.items()
        if result.passed is False
    }
    assert failures == {}
    base = ("put", "put_writes", "get_tuple", "list", "delete_thread")
    assert all(report.results[name].passed for name in base)
    assert report.results["copy_thread"].passed and report.results["delete_for_runs"].passed
    assert report.results["prune"].passed
