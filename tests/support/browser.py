"""Driving Debian's Chromium with Playwright against a real `hitl serve` (never a downloaded
browser): the marker that skips without it, signing in, finding a call's card."""

from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.support.services import HitlService

CHROMIUM = Path("/usr/bin/chromium")
EXPECT_TIMEOUT_MS = 15_000
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium); "
    "the test never downloads a browser",
)


def sign_in(page: Page, service: HitlService, token: str) -> None:
    page.goto(f"{service.url}/login")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{service.url}/")


def card_of(page: Page, call_id: str) -> Locator:
    return page.locator(f'[data-card][data-call="{call_id}"]')
