"""Fixtures of the end-to-end tests: `langgraph dev` on each backend, a CLI workspace, the
browser and a fresh profile in it."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, expect, sync_playwright

from tests.support.browser import CHROMIUM, EXPECT_TIMEOUT_MS, LAUNCH_ARGS
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


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, for the tests of one module."""
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield chromium
        chromium.close()
    finally:
        playwright.stop()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookie); fails the test if a page throws."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    errors: list[str] = []
    context.on("page", lambda page: page.on("pageerror", lambda e: errors.append(str(e))))
    yield context
    context.close()
    assert errors == [], "uncaught errors in the page's script"
