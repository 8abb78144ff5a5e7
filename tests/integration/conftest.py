"""Fixtures of the in-process tests: the database of each backend, a tool log, the HTTP API."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from hitl.checkpoints.urls import DatabaseName
from tests.support.fakes import ToolLog
from tests.support.http import Api, open_api
from tests.support.postgres import fresh_database


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


@pytest.fixture
def api(tmp_path: Path, db: DatabaseName) -> Iterator[Api]:
    """The HTTP API in this process on the test's database, with a token per name of `TOKENS`."""
    with open_api(tmp_path, db=db) as opened:
        yield opened
