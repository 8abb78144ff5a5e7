"""The real graph on a file SQLite database, with the offline model and recording tools."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from checkpoints.backends import open_saver
from checkpoints.db import DatabaseName
from checkpoints.ledger import Clock, open_ledger
from graph.builder import build_graph
from graph.decisions import DecisionSchemas
from graph.offline_model import OfflineChatModel
from graph.policy import Policy, default_policy
from hitl.service import ApprovalService
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
