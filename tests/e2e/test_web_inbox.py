"""The web inbox in a real browser (Debian's Chromium) against a real `hitl serve`.

Sign in through the form, watch calls arrive without a reload, decide them from their cards,
and check what the ledger and the outbox say. With `HITL_SCREENSHOTS=1` the last test also
saves the pictures in `docs/`.
"""

import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect

from tests.support.browser import card_of, needs_chromium, sign_in
from tests.support.cli import calls_by_recipient
from tests.support.environment import importable
from tests.support.prompts import SALLY
from tests.support.services import (
    HitlService,
    make_token,
    running_service,
    start_and_wait,
    wait_run,
)

DOCS = Path(__file__).resolve().parents[2] / "docs"

pytestmark = [pytest.mark.slow, needs_chromium]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HitlService]:
    """One service for the tests that find their own cards by thread and call."""
    with running_service(tmp_path_factory.mktemp("inbox")) as running:
        yield running
        print(f"--- tail of the service log ---\n{running.log()[-6000:]}")


def mark_document(page: Page) -> None:
    """Tag the loaded document; `assert_not_reloaded` fails if the page was loaded again."""
    page.evaluate("window.hitlTestMarker = true")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.hitlTestMarker === true"), "the page was reloaded"


def ask(service: HitlService, token: str, prompt: str = SALLY) -> tuple[str, list[str]]:
    """Start a thread through the API; its ID and its pending calls' IDs."""
    with service.client(token) as api:
        thread = start_and_wait(api, prompt)
    assert thread["status"] == "interrupted", thread
    return thread["thread_id"], [p["tool_call_id"] for p in thread["pending"]]


def ledger_row(api: httpx.Client, thread_id: str, call_id: str) -> dict[str, Any]:
    rows = api.get(f"/threads/{thread_id}/approvals").json()["approvals"]
    (row,) = [r for r in rows if r["tool_call_id"] == call_id]
    return dict(row)


def wait_latest_run(api: httpx.Client, thread_id: str) -> None:
    """Wait for the thread's newest run (the resume a decision queued) to finish."""
    runs = api.get(f"/threads/{thread_id}").json()["runs"]
    wait_run(api, runs[0]["run_id"])


def sent(service: HitlService) -> list[dict[str, Any]]:
    if not service.outbox.exists():
        return []
    return [json.loads(line) for line in service.outbox.read_text().splitlines() if line]


def test_a_bad_token_on_the_sign_in_form_is_refused_and_a_good_one_opens_the_page_asked_for(
    service: HitlService, context: BrowserContext
) -> None:
    thread_id, _ = ask(service, service.admin_token)
    page = context.new_page()
    page.goto(f"{service.url}/threads/{thread_id}")
    expect(page).to_have_url(re.compile(r"/login\?next="))  # no cookie: sign in first

    page.get_by_label("API token").fill("hitl_not-a-real-token")
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("alert")).to_contain_text("not valid")
    expect(page.get_by_label("API token")).to_have_attribute("aria-invalid", "true")
    assert not [c for c in context.cookies() if c["name"] == "hitl_token"]

    page.get_by_label("API token").fill(make_token(service, "una", "viewer"))
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{service.url}/threads/{thread_id}")
    (cookie,) = [c for c in context.cookies() if c["name"] == "hitl_token"]
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/")


def test_an_approver_sees_calls_arrive_live_and_approves_and_rejects_them(
    service: HitlService, context: BrowserContext
) -> None:
    alice = make_token(service, "alice", "approver")
    page = context.new_page()
    sign_in(page, service, alice)
    expect(page.locator(".who")).to_contain_text("alice")
    expect(page.locator(".who")).to_contain_text("approver")
    mark_document(page)

    approved_thread, (approved,) = ask(service, alice, "Send ann@example.com an email saying 'hi'")
    rejected_thread, (rejected,) = ask(service, alice, "Send tom@example.com an email saying 'no'")

    card = card_of(page, approved)
    expect(card).to_contain_text("ann@example.com")
    expect(card_of(page, rejected)).to_contain_text("tom@example.com")
    assert_not_reloaded(page)
    expect(page).to_have_title(re.compile(r"^\(\d+\) Inbox"))

    before = len(sent(service))
    card.get_by_role("button", name="Approve").click()
    expect(card.locator("[data-result]")).to_contain_text("Approved")
    with service.client(alice) as api:
        wait_latest_run(api, approved_thread)
        emails = sent(service)[before:]
        assert [(e["tool_call_id"], e["recipient"]) for e in emails] == [
            (approved, "ann@example.com")
        ]
        row = ledger_row(api, approved_thread, approved)
        assert (row["decided_by"], row["decision"]) == ("alice", {"type": "approve"})

    card = card_of(page, rejected)
    card.get_by_role("button", name="Reject…").click()
    card.get_by_label("Reason").fill("Tom left the company")
    card.get_by_role("button", name="Reject the call").click()
    expect(card.locator("[data-result]")).to_contain_text("Rejected")
    with service.client(alice) as api:
        wait_latest_run(api, rejected_thread)
        row = ledger_row(api, rejected_thread, rejected)
        assert row["decided_by"] == "alice"
        assert row["decision"] == {"type": "reject", "message": "Tom left the company"}
    assert len(sent(service)) == before + 1  # the rejected email was never sent
    assert_not_reloaded(page)


def test_an_invalid_edit_is_stopped_in_the_browser_and_a_valid_one_runs_the_new_args(
    service: HitlService, context: BrowserContext
) -> None:
    erin = make_token(service, "erin", "approver")
    page = context.new_page()
    sign_in(page, service, erin)
    thread_id, (call_id,) = ask(service, erin)
    edits: list[str] = []
    page.on("request", lambda r: edits.append(r.url) if r.url.endswith("/edit") else None)

    card = card_of(page, call_id)
    card.get_by_role("button", name="Edit…").click()
    recipient = card.get_by_label("Recipient")
    expect(recipient).to_have_value("sally@example.com")
    recipient.fill("")
    card.get_by_role("button", name="Run with these arguments").click()

    expect(recipient).to_have_attribute("aria-invalid", "true")
    expect(card.locator(".field__error:visible")).to_have_count(1)
    expect(card.locator("[data-result]")).to_contain_text("nothing was sent")
    assert edits == []
    with service.client(erin) as api:
        assert api.get(f"/approvals/{thread_id}/{call_id}").json()["status"] == "pending"

    recipient.fill("sam@exa")
    _, (newer,) = ask(service, erin)  # the inbox refreshes while erin types
    expect(card_of(page, newer)).to_be_visible()
    expect(recipient).to_have_value("sam@exa")
    expect(recipient).to_be_focused()

    before = len(sent(service))
    recipient.fill("sam@example.com")
    card.get_by_label("Message").fill("Hi Sam,\nsee you at noon.")
    card.get_by_role("button", name="Run with these arguments").click()
    expect(card.locator("[data-result]")).to_contain_text("Edited")
    assert len(edits) == 1
    with service.client(erin) as api:
        wait_latest_run(api, thread_id)
        assert ledger_row(api, thread_id, call_id)["decided_by"] == "erin"
    (email,) = sent(service)[before:]
    assert (email["tool_call_id"], email["recipient"], email["message"]) == (
        call_id,
        "sam@example.com",
        "Hi Sam,\nsee you at noon.",
    )


def test_a_call_decided_elsewhere_while_its_card_is_shown_says_who_decided_it(
    service: HitlService, context: BrowserContext
) -> None:
    carol = make_token(service, "carol", "approver")
    bob = make_token(service, "bob", "approver")
    page = context.new_page()
    sign_in(page, service, carol)
    thread_id, (call_id,) = ask(service, carol)
    card = card_of(page, call_id)
    approve = card.get_by_role("button", name="Approve")
    approve.hover()  # carol is about to click: the card stays under her pointer

    with service.client(bob) as api:
        api.post(f"/threads/{thread_id}/approve", json={"call": call_id}).raise_for_status()
    expect(card).to_contain_text("No longer waiting here")  # the live update came
    approve.click()

    expect(card.locator("[data-result]")).to_contain_text(
        re.compile(r"Already approved by bob (just now|\d+ min ago)")
    )
    expect(card.get_by_role("button", name="Approve")).to_have_count(0)
    with service.client(carol) as api:
        assert ledger_row(api, thread_id, call_id)["decided_by"] == "bob"


def test_a_viewer_reads_the_inbox_but_gets_no_decision_buttons(
    service: HitlService, context: BrowserContext
) -> None:
    victor = make_token(service, "victor", "viewer")
    _, (call_id,) = ask(service, service.admin_token)
    page = context.new_page()
    sign_in(page, service, victor)

    card = card_of(page, call_id)
    expect(card).to_contain_text("sally@example.com")
    expect(page.locator(".who")).to_contain_text("viewer")
    expect(card.get_by_role("button")).to_have_count(0)
    expect(card.locator("form")).to_have_count(0)


def test_the_thread_page_tells_the_story_and_follows_the_run(
    service: HitlService, context: BrowserContext
) -> None:
    tess = make_token(service, "tess", "approver")
    thread_id, (call_id,) = ask(service, tess)
    page = context.new_page()
    sign_in(page, service, tess)
    page.goto(f"{service.url}/threads/{thread_id}")
    mark_document(page)

    expect(page.get_by_role("heading", level=1)).to_contain_text(thread_id)
    expect(page.locator("[data-region=status]")).to_contain_text("waiting for a decision")
    expect(page.locator(".msg--human")).to_contain_text(SALLY)
    expect(card_of(page, call_id)).to_be_visible()

    with service.client(tess) as api:
        answer = api.post(
            f"/threads/{thread_id}/approve", json={"call": call_id, "comment": "fine by me"}
        )
        answer.raise_for_status()
        wait_run(api, answer.json()["run"]["run_id"])

    expect(page.locator("[data-region=status]")).to_contain_text("done")
    expect(page.locator(".msg--tool")).to_contain_text("Email sent to sally@example.com")
    decision = page.locator(f'[data-decision-row="{call_id}"]')
    expect(decision).to_contain_text("tess")
    expect(decision).to_contain_text("fine by me")
    audit = page.locator("[data-region=audit]")
    for event in ("requested", "decided"):
        expect(audit).to_contain_text(event)
    assert_not_reloaded(page)


DEMO_POLICY = """\
from datetime import timedelta

from hitl.graph.policy import Policy, ToolRule

POLICY = Policy(rules={
    "send_email": ToolRule(
        description="The agent wants to send an email on your behalf",
        expires_after=timedelta(hours=2),
    ),
    "count_emails": ToolRule(
        description="The agent wants to look through your mailbox",
        expires_after=timedelta(minutes=4),
    ),
})
"""


def test_deadlines_tick_and_the_inbox_fits_a_phone(tmp_path: Path, browser: Browser) -> None:
    (tmp_path / "inbox_demo_policy.py").write_text(DEMO_POLICY)
    env = {"HITL_POLICY": "inbox_demo_policy:POLICY", **importable(tmp_path)}
    screenshots = os.environ.get("HITL_SCREENSHOTS") == "1"
    with running_service(tmp_path, env=env) as service:
        alice = make_token(service, "alice", "approver")
        with service.client(alice) as api:
            thread = start_and_wait(
                api,
                "Send ann@example.com an email saying 'The Q3 numbers are in the shared folder.' "
                "and send tom@example.com an email saying 'Lunch on Friday?'",
            )
            story, calls = thread["thread_id"], calls_by_recipient(thread)
            first, second = calls["ann@example.com"], calls["tom@example.com"]
            api.post(f"/threads/{story}/approve", json={"call": first}).raise_for_status()
            answer = api.post(
                f"/threads/{story}/reject",
                json={"call": second, "reason": "Not from the work address, please"},
            )
            answer.raise_for_status()
            wait_run(api, answer.json()["run"]["run_id"])
        _, (email,) = ask(
            service,
            alice,
            "Send sally@example.com an email saying 'Contract attached. "
            "Could you sign it by Thursday?'",
        )
        _, (count,) = ask(service, alice, "How many emails did I get in the last 5 days?")
        _, (hello,) = ask(service, alice)

        context = browser.new_context(viewport={"width": 1100, "height": 900})
        try:
            page = context.new_page()
            sign_in(page, service, alice)
            expect(page.locator("[data-card]")).to_have_count(3)
            expect(page.locator("[data-live]")).to_have_text("live")
            if screenshots:
                page.screenshot(path=DOCS / "inbox.png", full_page=True)
            urgent = card_of(page, count).locator("[data-deadline]")
            expect(urgent).to_have_class(re.compile("deadline--urgent"))
            expect(urgent).to_have_text(re.compile(r"^[0-4]:\d\d left$"))
            shown = urgent.inner_text()
            expect(urgent).not_to_have_text(shown)  # it ticks without a reload
            relaxed = card_of(page, email).locator("[data-deadline]")
            expect(relaxed).to_have_class(re.compile("deadline--ok"))
            card_of(page, count).get_by_role("button", name="Edit…").click()
            days = card_of(page, count).get_by_label("Last N Days")
            expect(days).to_have_attribute("type", "number")
            expect(days).to_have_value("5")
            card_of(page, count).get_by_role("button", name="Cancel").click()
            expect(days).to_be_hidden()

            page.goto(f"{service.url}/threads/{story}")
            expect(page.locator("[data-region=status]")).to_contain_text("done")
            expect(page.locator("[data-live]")).to_have_text("live")
            if screenshots:
                page.screenshot(path=DOCS / "thread.png", full_page=True)

            page.set_viewport_size({"width": 390, "height": 844})
            page.goto(f"{service.url}/")
            card_of(page, hello).get_by_role("button", name="Edit…").click()
            expect(page.locator("[data-live]")).to_have_text("live")
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            page.goto(f"{service.url}/threads/{story}")
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            page.goto(f"{service.url}/")
            expect(page.locator("[data-live]")).to_have_text("live")
            if screenshots:
                page.screenshot(path=DOCS / "inbox-phone.png")
        finally:
            context.close()


def test_the_thread_list_shows_a_finished_thread_and_finds_it_by_an_id_prefix(
    service: HitlService, context: BrowserContext
) -> None:
    lena = make_token(service, "lena", "approver")
    finished = f"refund-{uuid.uuid4().hex[:8]}"
    with service.client(lena) as api:
        thread = start_and_wait(api, SALLY, thread_id=finished)
        (call,) = [p["tool_call_id"] for p in thread["pending"]]
        answer = api.post(f"/threads/{finished}/approve", json={"call": call})
        answer.raise_for_status()
        wait_run(api, answer.json()["run"]["run_id"])
    ask(service, lena)  # a newer thread, still waiting
    page = context.new_page()
    sign_in(page, service, lena)

    page.get_by_role("link", name="All threads").click()
    expect(page).to_have_url(f"{service.url}/threads")
    row = page.locator(f'[data-thread-row="{finished}"]')
    expect(row).to_contain_text("finished")
    expect(page.locator("[data-thread-row]").first).to_contain_text("waiting for a decision")

    page.get_by_label("Thread ID starts with").fill(finished[:10])
    page.get_by_label("Status").select_option("finished")
    page.get_by_role("button", name="Find").click()

    expect(page.locator("[data-thread-row]")).to_have_count(1)
    expect(row).to_contain_text("finished")
    expect(page.get_by_label("Thread ID starts with")).to_have_value(finished[:10])
    row.get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(finished)
    expect(page.locator("[data-region=status]")).to_contain_text("done")

    page.set_viewport_size({"width": 375, "height": 812})
    page.goto(f"{service.url}/threads")
    expect(row).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375


WORDS_BROKEN_ACROSS_LINES = r"""(root) => {
    // IDs, hashes and code may break anywhere; a word of prose must not.
    const tokens = "code, pre, .id, .code, .args-inline, time";
    const broken = [];
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const parent = node.parentElement;
        if (parent.closest(tokens) || !parent.checkVisibility()) continue;
        for (const word of node.textContent.matchAll(/[^\s\-\u2013\u2014\/]+/g)) {
            const range = document.createRange();
            range.setStart(node, word.index);
            range.setEnd(node, word.index + word[0].length);
            const rects = [...range.getClientRects()].filter((r) => r.width > 0);
            const lines = new Set(rects.map((r) => Math.round(r.top)));
            const where = parent.className || parent.tagName;
            if (lines.size > 1) broken.push(`${word[0]} (in ${where})`);
        }
    }
    return broken;
}"""


def test_at_phone_width_prose_wraps_between_words_and_only_ids_break_anywhere(
    service: HitlService, browser: Browser
) -> None:
    pat = make_token(service, "pat", "approver")
    with service.client(pat) as api:
        thread = start_and_wait(api, PHONE_PROMPT)
        story, calls = thread["thread_id"], calls_by_recipient(thread)
        api.post(
            f"/threads/{story}/approve",
            json={"call": calls["ann@example.com"], "comment": PHONE_COMMENT},
        ).raise_for_status()
        answer = api.post(
            f"/threads/{story}/reject",
            json={"call": calls["tom@example.com"], "reason": PHONE_REASON},
        )
        answer.raise_for_status()
        wait_run(api, answer.json()["run"]["run_id"])
    context = browser.new_context(viewport={"width": 375, "height": 812})
    try:
        page = context.new_page()
        sign_in(page, service, pat)
        page.goto(f"{service.url}/threads/{story}")
        expect(page.locator("[data-region=status]")).to_contain_text("done")
        expect(page.locator("[data-region=decisions]")).to_contain_text("whatsoever")

        broken = page.locator("#main").evaluate(WORDS_BROKEN_ACROSS_LINES)

        assert broken == [], f"words of prose split across lines at 375 px: {broken}"
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        prose = page.locator(".msg__text, td.wrap, .alert, .summary").evaluate_all(
            "es => es.map(e => [getComputedStyle(e).wordBreak, getComputedStyle(e).overflowWrap])"
        )
        assert prose and set(map(tuple, prose)) == {("normal", "break-word")}, prose
        thread_id = page.locator("h1 .id")
        assert thread_id.evaluate("e => getComputedStyle(e).overflowWrap") == "anywhere"
    finally:
        context.close()


PHONE_PROMPT = (
    "Send ann@example.com an email saying 'Unfortunately the quarterly reconciliation "
    "spreadsheet is incomplete; please double-check the departmental expenditures.' "
    "and send tom@example.com an email saying 'Congratulations on your extraordinarily "
    "successful presentation yesterday afternoon!'"
)
PHONE_COMMENT = "Verified the recipient's responsibilities with accounting beforehand"
PHONE_REASON = "Unnecessary congratulations; no communication whatsoever today"


def test_the_api_reference_renders_for_a_signed_in_reader_with_no_other_site_reachable(
    service: HitlService, context: BrowserContext
) -> None:
    elsewhere: list[str] = []

    def only_this_service(route: Route) -> None:
        if route.request.url.startswith(service.url):
            route.continue_()
        else:  # as on a machine without internet: nothing but the service answers
            elsewhere.append(route.request.url)
            route.abort()

    context.route("**/*", only_this_service)
    page = context.new_page()
    sign_in(page, service, service.admin_token)
    page.goto(f"{service.url}/docs")

    expect(page.locator(".swagger-ui .info .title")).to_contain_text("hitl")
    expect(page.locator(".opblock-summary-path", has_text="/approvals").first).to_be_visible()
    assert elsewhere == []
