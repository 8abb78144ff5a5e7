"""The web inbox's pages as a browser receives them (HTML), from the service in this process:
what they say, not how they look (that is `tests/e2e/test_web_inbox.py`)."""

import re
from html import unescape

from tests.support.http import Api

BROWSING = {"Accept": "text/html"}


def text_of(html: str) -> str:
    """The page's text as a reader sees it, tags dropped."""
    return unescape(re.sub(r"<[^>]+>", "", html))


def test_the_unknown_thread_page_gives_advice_for_the_web_without_raw_markdown(api: Api) -> None:
    page = api.get("/threads/no-such-thread", headers=BROWSING)

    assert page.status_code == 404
    shown = text_of(page.text)
    assert "no-such-thread" in shown
    assert "`" not in shown, shown
    assert "--db" not in shown  # CLI advice: a browser has no command line
    assert 'href="/"' in page.text  # where to look instead
