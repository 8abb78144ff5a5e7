"""The web inbox in a real browser (Debian's Chromium) deciding the calls of a user's own
`create_agent` agent (`HITL_GRAPH`) served by `hitl serve`: approved runs once, rejected never,
edited runs with the reviewer's arguments and the model is told."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, expect

from tests.support.browser import card_of, needs_chromium, sign_in
from tests.support.services import (
    HitlService,
    make_token,
    running_service,
    service_env,
    start_and_wait,
    wait_run,
)
from tests.support.user_agents import one_append, side_lines, user_settings

pytestmark = [pytest.mark.slow, needs_chromium]


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[HitlService, dict[str, str]]]:
    folder = tmp_path_factory.mktemp("users-agent")
    settings = user_settings(folder, "agent", one_append("from the model"))
    with running_service(folder, env=service_env(folder, settings)) as service:
        yield service, settings
        print(f"--- tail of the service log ---\n{service.log()[-6000:]}")


def ask(api: httpx.Client) -> tuple[str, str]:
    thread = start_and_wait(api, "append a line")
    assert thread["status"] == "interrupted", thread
    (pending,) = thread["pending"]
    return thread["thread_id"], pending["tool_call_id"]


def finished(api: httpx.Client, thread_id: str) -> dict[str, Any]:
    wait_run(api, api.get(f"/threads/{thread_id}").json()["runs"][0]["run_id"])
    thread: dict[str, Any] = api.get(f"/threads/{thread_id}").json()
    return thread


def test_the_inbox_approves_rejects_and_edits_a_users_agents_calls(
    served: tuple[HitlService, dict[str, str]], context: BrowserContext
) -> None:
    service, settings = served
    alice = make_token(service, "alice", "approver")
    page = context.new_page()
    sign_in(page, service, alice)
    with service.client(alice) as api:
        approved = ask(api)
        rejected = ask(api)
        edited = ask(api)

        card = card_of(page, approved[1])
        expect(card).to_contain_text("append_line")
        card.get_by_role("button", name="Approve").click()
        expect(card.locator("[data-result]")).to_contain_text("Approved")
        assert finished(api, approved[0])["status"] == "done"
        assert side_lines(settings) == ["from the model"]

        card = card_of(page, rejected[1])
        card.get_by_role("button", name="Reject…").click()
        card.get_by_label("Reason").fill("not today")
        card.get_by_role("button", name="Reject the call").click()
        expect(card.locator("[data-result]")).to_contain_text("Rejected")
        assert finished(api, rejected[0])["status"] == "done"
        assert side_lines(settings) == ["from the model"]

        card = card_of(page, edited[1])
        card.get_by_role("button", name="Edit…").click()
        line = card.get_by_role("textbox", name="Line")
        expect(line).to_have_value("from the model")
        line.fill("from the reviewer")
        card.get_by_role("button", name="Run with these arguments").click()
        expect(card.locator("[data-result]")).to_contain_text("Edited")
        thread = finished(api, edited[0])
    assert side_lines(settings) == ["from the model", "from the reviewer"]
    told = [m for m in thread["messages"] if m["type"] == "tool"]
    assert "Executed instead: append_line" in told[-1]["text"]
