"""Decision links against a real `hitl serve`: copied from the inbox in Debian's Chromium,
prefetched by a scanner without effect, opened and approved without signing in (the tool runs
once); made by `hitl link`, locally and with `--url`. With `HITL_SCREENSHOTS=1` the
confirmation page is saved as `docs/link-confirm.png`."""

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, expect

from tests.support.browser import card_of, needs_chromium, sign_in
from tests.support.cli import describe, hitl
from tests.support.environment import hitl_environment, process_environment
from tests.support.plugins import plugin_spec
from tests.support.processes import free_port
from tests.support.prompts import SALLY
from tests.support.services import HitlService, make_token, running_service, start_and_wait

DOCS = Path(__file__).resolve().parents[2] / "docs"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HitlService]:
    """A service whose emails Alice or Bob approve (not the one who asked), with its own
    address as its public URL."""
    port = free_port()
    env = {
        "HITL_POLICY": plugin_spec("NAMED_APPROVERS"),
        "HITL_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    with running_service(tmp_path_factory.mktemp("links"), env=env, port=port) as running:
        yield running


@pytest.fixture(scope="module")
def tokens(service: HitlService) -> dict[str, str]:
    return {name: make_token(service, name, "approver") for name in ("alice", "bob")}


def _ask(service: HitlService, token: str) -> tuple[str, str]:
    with service.client(token) as api:
        thread = start_and_wait(api, SALLY)
    return thread["thread_id"], thread["pending"][0]["tool_call_id"]


def _sent(service: HitlService) -> list[str]:
    if not service.outbox.exists():
        return []
    lines = service.outbox.read_text().splitlines()
    return [json.loads(line)["tool_call_id"] for line in lines if line]


@needs_chromium
def test_a_link_copied_in_the_inbox_survives_a_prefetch_and_approves_once_in_the_browser(
    service: HitlService, tokens: dict[str, str], context: BrowserContext
) -> None:
    thread_id, call = _ask(service, tokens["alice"])
    inbox = context.new_page()
    sign_in(inbox, service, tokens["bob"])
    card = card_of(inbox, call)
    card.get_by_role("button", name="Copy link…").click()
    expect(card.get_by_label("A one-click link for")).to_have_value("bob")  # an approver: self
    card.get_by_role("button", name="Copy link", exact=True).click()
    box = card.locator("[data-link-url]")
    expect(box).to_have_value(re.compile(rf"^{re.escape(service.url)}/link/hl_[\w-]{{43}}$"))
    url = box.input_value()
    context.clear_cookies()  # the link is the credential: nobody is signed in below

    for _ in range(3):  # a mail scanner fetches every link, with GET and HEAD
        with httpx.Client(timeout=30) as scanner:
            assert scanner.get(url).status_code == 200
            assert scanner.head(url).status_code == 200
    page = context.new_page()
    page.goto(url)
    expect(page.get_by_role("heading", name="Decide on this call")).to_be_visible()
    expect(page.locator("[data-link-call]")).to_contain_text("sally@example.com")
    expect(page.locator("[data-link-call]")).to_contain_text("asked by alice")
    expect(page.locator("[data-link-form]")).to_contain_text("You decide as bob")
    if os.environ.get("HITL_SCREENSHOTS") == "1":
        page.screenshot(path=DOCS / "link-confirm.png", full_page=True)
    assert _sent(service).count(call) == 0  # opened many times: nothing decided

    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("heading", name="Decision recorded")).to_be_visible()
    expect(page.locator("[data-link-done]")).to_contain_text("Approved")
    assert _wait_sent(service, call) == 1  # the tool ran once
    with service.client(tokens["bob"]) as api:
        row = api.get(f"/approvals/{thread_id}/{call}").json()
    assert (row["decided_by"], row["decision"]) == ("bob", {"type": "approve"})
    page.goto(url)  # again: used
    expect(page.locator("[data-link-problem]")).to_contain_text("used already")
    secret = url.rsplit("/", 1)[1]
    assert "GET /link/… HTTP" in service.log() and secret not in service.log()


def _wait_sent(service: HitlService, call: str, seconds: float = 30) -> int:
    """How many times the call's email was sent, once it was (or after `seconds`)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and call not in _sent(service):
        time.sleep(0.1)
    return _sent(service).count(call)


def test_hitl_link_makes_the_same_link_locally_and_remotely_and_says_what_is_missing(
    service: HitlService, tokens: dict[str, str]
) -> None:
    thread_id, call = _ask(service, tokens["alice"])
    env = process_environment(hitl_environment(service.db, service.outbox))
    without = hitl(
        "link",
        thread_id,
        "--call",
        call,
        "--for",
        "bob",
        "--json",
        env=env,
        cwd=service.outbox.parent,
    )
    assert without.returncode == 10, describe(without)
    assert "HITL_PUBLIC_URL" in json.loads(without.stdout)["error"]["message"]

    env["HITL_PUBLIC_URL"] = service.url
    local = hitl(
        "link",
        thread_id,
        "--call",
        call,
        "--for",
        "bob",
        "--json",
        env=env,
        cwd=service.outbox.parent,
    )
    assert local.returncode == 0, describe(local)
    remote_env = env | {"HITL_URL": service.url, "HITL_TOKEN": tokens["bob"]}
    remote_env.pop("HITL_DB")
    remote = hitl(
        "link", thread_id, "--call", call, "--for", "bob", "--json", env=remote_env, cwd=Path("/")
    )
    assert remote.returncode == 0, describe(remote)
    assert json.loads(local.stdout)["url"] == json.loads(remote.stdout)["url"]
    assert json.loads(local.stdout)["for"] == "bob"

    refused = hitl(
        "link", thread_id, "--call", call, "--for", "alice", env=env, cwd=service.outbox.parent
    )
    assert refused.returncode == 12 and "separation of duties" in refused.stderr
    not_theirs = hitl(
        "link", thread_id, "--call", call, "--for", "alice", env=remote_env, cwd=Path("/")
    )
    assert not_theirs.returncode == 18 and "only an admin" in not_theirs.stderr
