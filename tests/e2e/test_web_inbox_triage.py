"""Triage in the web inbox, in a real browser against a real `hitl serve`: assignment shown
and filtered, a snoozed call hidden until asked for, and every shown call approved with one
confirmation. With `HITL_SCREENSHOTS=1` it saves docs/inbox-triage.png."""

import os
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Dialog, expect

from tests.support.browser import card_of, needs_chromium, sign_in
from tests.support.services import make_token, running_service, start_and_wait

DOCS = Path(__file__).resolve().parents[2] / "docs"
PROMPTS = [f"Send {name}@example.com an email saying 'hi'" for name in ("ann", "tom", "eve")]

pytestmark = [pytest.mark.slow, needs_chromium]


def test_an_approver_assigns_snoozes_and_approves_every_shown_call_at_once(
    tmp_path: Path, context: BrowserContext
) -> None:
    with running_service(tmp_path) as service:
        bob = make_token(service, "bob", "approver")
        with service.client(bob) as api:
            threads = [start_and_wait(api, prompt) for prompt in PROMPTS]
            (ann, tom, eve) = [t["pending"][0]["tool_call_id"] for t in threads]
            path = f"/approvals/{threads[0]['thread_id']}/{ann}/assign"
            api.post(path, json={"assignee": "carol"}).raise_for_status()
        page = context.new_page()
        sign_in(page, service, bob)

        expect(card_of(page, ann)).to_contain_text("assigned to carol")
        card_of(page, tom).get_by_role("button", name="Assign to me").click()
        expect(card_of(page, tom)).to_contain_text("assigned to bob")
        card_of(page, eve).get_by_role("button", name="Snooze 1 h").click()
        expect(card_of(page, eve)).to_contain_text("Snoozed for an hour")

        page.get_by_label("Assigned to").fill("me")
        page.get_by_role("button", name="Filter").click()
        expect(page.locator("[data-card]")).to_have_count(1)
        expect(card_of(page, tom)).to_be_visible()

        page.goto(f"{service.url}/?snoozed=show")
        expect(page.locator("[data-card]")).to_have_count(3)
        expect(card_of(page, eve)).to_contain_text("snoozed until")
        if os.environ.get("HITL_SCREENSHOTS") == "1":
            page.screenshot(path=DOCS / "inbox-triage.png", full_page=True)

        page.goto(f"{service.url}/")
        expect(page.locator("[data-card]")).to_have_count(2)  # eve's call is snoozed
        asked: list[str] = []

        def confirm(dialog: Dialog) -> None:
            asked.append(dialog.message)
            dialog.accept()

        page.on("dialog", confirm)
        page.get_by_role("button", name="Approve all shown").click()
        expect(page.locator("[data-bulk-result]")).to_have_text("Approve all shown: 2 decided.")
        assert asked == ["Approve these 2 calls? Each is still checked on its own."]
        with service.client(bob) as api:
            statuses = {
                r["tool_call_id"]: r["status"]
                for t in threads
                for r in api.get(f"/threads/{t['thread_id']}/approvals").json()["approvals"]
            }
            audit = api.get(f"/threads/{threads[1]['thread_id']}/audit").json()["audit"]
        assert statuses[eve] == "pending"
        assert {statuses[ann], statuses[tom]} <= {"approved", "running", "succeeded"}
        assert [e["event"] for e in audit][:3] == ["requested", "assigned", "decided"]
