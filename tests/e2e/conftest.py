"""Fixtures of the end-to-end tests: `langgraph dev` on each backend, a CLI workspace."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import Workspace
from tests.support.postgres import fresh_database
from tests.support.studio import StudioServer, run_studio_server


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def studio(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StudioServer]:
    """`langgraph dev` on the repo's `langgraph.json`, with its database outside the repo: a
    SQLite file, then a PostgreSQL schema (`HITL_DB`)."""
    if request.param == "sqlite":
        with run_studio_server(tmp_path, tmp_path / "hitl.sqlite") as server:
            yield server
        return
    with fresh_database() as url, run_studio_server(tmp_path, url) as server:
        yield server


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """An empty database of this test's own, for the CLI tests."""
    return Workspace(tmp_path)
