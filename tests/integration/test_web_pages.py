"""The web inbox's pages as a browser receives them (HTML), from the service in this process:
what they say, not how they look (that is `tests/e2e/test_web_inbox.py`)."""

import re
from html import unescape

from tests.support.http import Api
from tests.support.prompts import COUNT

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
    assert 'href="/threads?prefix=no-such-' in page.text  # where to look instead


RUNNER_TOKEN = re.compile(r"[^\s:]+~[0-9a-f]{8}:\d+:[0-9a-f]{8}:[0-9a-f]{8}")
"""A runner token as the ledger records it (`host~folder:pid:nonce:nonce`)."""


def test_the_audit_table_names_the_tool_runner_as_a_process_not_by_its_token(api: Api) -> None:
    thread_id = api.start()["thread_id"]
    [call] = api.thread(thread_id)["pending"]
    api.finished(api.post(f"/threads/{thread_id}/approve", json={"call": call["tool_call_id"]}))
    trail = api.get(f"/threads/{thread_id}/audit").json()["audit"]
    runner = next(e["actor"] for e in trail if e["event"] == "tool_started")
    assert RUNNER_TOKEN.fullmatch(runner), runner  # the API keeps the token itself

    page = api.get(f"/threads/{thread_id}", headers=BROWSING)

    actors = re.findall(r'<td data-label="Actor"[^>]*>(.*?)</td>', page.text, re.S)
    shown = [text_of(a).strip() for a in actors]
    pid = runner.split(":")[1]
    assert f"tool runner (process {pid} on {runner.split('~')[0]})" in shown, shown
    assert not [a for a in shown if RUNNER_TOKEN.search(a)], shown
    assert "alice" in shown


def test_a_thread_list_offset_that_only_looks_like_digits_is_read_as_the_first_page(
    api: Api,
) -> None:
    page = api.get("/threads", params={"offset": "²"}, headers=BROWSING)  # str.isdigit() says yes
    assert page.status_code == 200, page.text


def test_a_long_threads_page_shows_its_newest_messages_and_loads_earlier_ones_on_request(
    api: Api,
) -> None:
    thread_id = api.start(COUNT)["thread_id"]
    for _ in range(5):  # 24 messages: more than a page
        api.finished(api.post(f"/threads/{thread_id}/runs", json={"prompt": COUNT}))

    page = api.get(f"/threads/{thread_id}", headers=BROWSING)
    earlier = re.search(r'<a href="([^"]+)" data-earlier>', page.text)
    assert earlier is not None and "4 before these 20" in text_of(page.text)
    assert page.text.count('<li class="msg ') == 20
    longer = api.get(unescape(earlier.group(1)), headers=BROWSING)

    assert longer.text.count('<li class="msg ') == 24
    assert "data-earlier" not in longer.text
    assert f'data-refresh="/ui/threads/{thread_id}?messages=40"' in longer.text
