"""The inbox's quorum progress and standing approvals in a real browser against a real
`hitl serve`: a vote updates the card live ("1 of 2 approvals: alice"), "Always allow…"
creates a standing approval, and the standing approvals page lists it and revokes it. With
`HITL_SCREENSHOTS=1` it saves docs/inbox-quorum.png and docs/standing.png."""

import os
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.support.browser import card_of, needs_chromium, sign_in
from tests.support.environment import importable
from tests.support.prompts import SALLY
from tests.support.services import make_token, running_service, start_and_wait

DOCS = Path(__file__).resolve().parents[2] / "docs"
POLICY = """\
from hitl.graph.policy import Policy, ToolRule

POLICY = Policy(rules={
    "send_email": ToolRule(quorum=2, description="Two people sign off on every email"),
    "count_emails": ToolRule(description="Counting emails reads the mailbox"),
})
"""

pytestmark = [pytest.mark.slow, needs_chromium]


def test_the_inbox_shows_quorum_progress_and_remembers_and_revokes_standing_approvals(
    tmp_path: Path, context: BrowserContext
) -> None:
    (tmp_path / "quorum_policy.py").write_text(POLICY)
    env = {"HITL_POLICY": "quorum_policy:POLICY", **importable(tmp_path)}
    with running_service(tmp_path, env=env) as service:
        alice = make_token(service, "alice", "approver")
        bob = make_token(service, "bob", "approver")
        with service.client(alice) as api:
            email = start_and_wait(api, SALLY)
            count = start_and_wait(api, "How many emails did I get in the last 5 days?")
        [email_call] = [p["tool_call_id"] for p in email["pending"]]
        [count_call] = [p["tool_call_id"] for p in count["pending"]]

        page = context.new_page()
        sign_in(page, service, alice)
        card = card_of(page, email_call)
        expect(card).to_contain_text("0 of 2 approvals")
        expect(card.get_by_role("button", name="Always allow…")).to_have_count(0)
        card.get_by_role("button", name="Approve", exact=True).click()
        expect(card_of(page, email_call).locator("[data-quorum]")).to_contain_text(
            "1 of 2 approvals: alice"
        )
        if os.environ.get("HITL_SCREENSHOTS") == "1":
            page.screenshot(path=DOCS / "inbox-quorum.png", full_page=True)

        with service.client(bob) as api:
            api.post(
                f"/threads/{email['thread_id']}/approve", json={"call": email_call}
            ).raise_for_status()
        page.mouse.move(0, 0)  # a card in use stays until the reviewer leaves it
        expect(card_of(page, email_call)).to_have_count(0)  # decided: it leaves the inbox

        counting = card_of(page, count_call)
        counting.get_by_role("button", name="Always allow…").click()
        counting.get_by_label("Remember for", exact=True).select_option("7d")
        counting.get_by_role("button", name="Allow this and later calls").click()
        expect(counting.locator("[data-result]")).to_contain_text("Approved")

        page.goto(f"{service.url}/standing")
        row = page.locator("[data-standing]")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("count_emails")
        expect(row).to_contain_text("asked by alice")
        with service.client(alice) as api:
            again = start_and_wait(api, "How many emails did I get in the last 5 days?")
        assert again["pending"] == []  # remembered: not asked
        if os.environ.get("HITL_SCREENSHOTS") == "1":
            page.screenshot(path=DOCS / "standing.png", full_page=True)
        row.get_by_role("button", name="Revoke").click()
        expect(page.locator("[data-standing]")).to_have_count(0)
        expect(page.locator("[data-standing-ended]")).to_contain_text("revoked by alice")
