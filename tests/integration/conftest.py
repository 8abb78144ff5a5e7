"""The real graph on a file SQLite database, with the offline model and recording tools."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from checkpoints.ledger import Clock, open_ledger
from checkpoints.sqlite import open_saver
from graph.builder import build_graph
from graph.decisions import DecisionSchemas
from graph.offline_model import OfflineChatModel
from graph.policy import Policy, default_policy
from hitl.service import ApprovalService
from tests.fakes import ToolLog, make_recording_tools

TWO_EMAILS = (
    "count my emails of the last 3 days and send bob@example.com an email saying 'hi' "
    "and send carol@example.org an email saying 'yo'"
)
ONE_EMAIL = "Send sally@example.com an email saying 'hi'"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "hitl.sqlite"


@pytest.fixture
def log() -> ToolLog:
    return ToolLog()


@contextmanager
def open_test_service(
    db: Path, log: ToolLog, policy: Policy | None = None, clock: Clock = time.time
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
