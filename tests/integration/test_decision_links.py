"""Signed decision links: made only for a person who may approve the call, opened by any
client without effect (GET, HEAD: a mail scanner's prefetch), used once by a POST, bound to
the call's args and deadline, and stored only as a hash."""

import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest

from hitl.app import Assembly
from hitl.checkpoints.ledger import Clock
from hitl.checkpoints.maintenance import copy_database
from hitl.checkpoints.stores import open_link_store, open_webhook_store
from hitl.checkpoints.urls import DatabaseName
from hitl.graph.policy import Policy, ToolRule
from hitl.service.errors import AlreadyDecided, LinkGone, NotPermitted
from hitl.service.links import LINK_PATH, DecisionLinks
from hitl.service.webhooks import WebhookDispatcher
from hitl.service.workflow import EveryPending
from tests.support.fakes import FakeClock, ToolLog
from tests.support.harness import open_harness
from tests.support.http import Api, assert_error, only_call, open_api
from tests.support.plugins import NAMED_APPROVERS, plugin_spec
from tests.support.prompts import SALLY
from tests.support.sql import execute
from tests.support.webhooks import LOCAL_RECEIVERS, serving

PUBLIC = "https://hitl.example.com"
ROLES = {
    "alice": ("viewer", "approver"),
    "bob": ("viewer", "approver"),
    "victor": ("viewer",),
    "root": ("viewer", "approver", "admin"),
}
"""Each person's roles, as their API tokens would give them."""
ROUNDS = 3


def _roles(name: str) -> Sequence[str]:
    return ROLES.get(name, ())


@contextmanager
def _open(
    db: DatabaseName, log: ToolLog, clock: Clock = time.time, public_url: str | None = PUBLIC
) -> Iterator[tuple[Assembly, DecisionLinks]]:
    """A process's service and its decision links, on the policy that names approvers."""
    with open_harness(db, log, NAMED_APPROVERS, clock) as parts, open_link_store(db) as store:
        yield parts, DecisionLinks(parts.ledger, store, _roles, public_url=public_url)


def _secret(url: str) -> str:
    return url.split(LINK_PATH, 1)[1]


def test_a_link_is_made_only_for_a_person_who_may_approve_the_call_and_is_the_same_each_time(
    db: Path, log: ToolLog
) -> None:
    with _open(db, log) as (parts, links):
        view = parts.service.run(SALLY, actor="alice")
        call = view.pending[0].tool_call_id
        for_bob = links.make(view.thread_id, call, "bob", created_by="root")
        again = links.make(view.thread_id, call, "bob", created_by="webhook")
        for_root = links.make(view.thread_id, call, "root", created_by="root")  # by its role
        refused = {}
        for name in ("alice", "victor", "role:admin"):
            with pytest.raises(NotPermitted) as e:
                links.make(view.thread_id, call, name, created_by="root")
            refused[name] = str(e.value)
    assert for_bob.url.startswith(f"{PUBLIC}{LINK_PATH}hl_") and again.url == for_bob.url
    assert for_root.url != for_bob.url
    assert len(_secret(for_bob.url)) >= 43  # 256 bits, base64url
    assert "separation of duties" in refused["alice"]
    assert "only alice, bob, role:admin may" in refused["victor"]
    assert "not a person" in refused["role:admin"]


def test_a_link_is_stored_only_as_its_hash_and_never_in_the_audit_trail(
    db: Path, log: ToolLog
) -> None:
    with _open(db, log) as (parts, links):
        view = parts.service.run(SALLY, actor="alice")
        made = links.make(view.thread_id, view.pending[0].tool_call_id, "bob", created_by="x")
        links.decide(parts.service, _secret(made.url), "approve")
    secret = _secret(made.url)
    stored = repr(
        [
            execute(db, f"SELECT * FROM {table}")
            for table in ("hitl_links", "hitl_audit", "hitl_approvals")
        ]
    )
    assert secret not in stored
    assert hashlib.sha256(secret.encode()).hexdigest() in stored


def test_a_link_decides_once_and_the_tool_runs_once(db: Path, log: ToolLog) -> None:
    with _open(db, log) as (parts, links):
        view = parts.service.run(SALLY, actor="alice")
        call = view.pending[0].tool_call_id
        secret = _secret(links.make(view.thread_id, call, "bob", created_by="root").url)
        decided = links.decide(parts.service, secret, "approve")
        with pytest.raises(LinkGone, match="used already"):
            links.decide(parts.service, secret, "reject")
        state = links.view(secret).state
        done = parts.service.show(view.thread_id)
    assert [(r.decided_by, r.status) for r in decided.records] == [("bob", "approved")]
    assert state == "used" and done.status == "done"
    assert log.ids("send_email") == [call]


def test_a_link_of_an_expired_approval_decides_nothing_and_none_is_made_for_it(
    db: Path, log: ToolLog
) -> None:
    clock = FakeClock()
    with _open(db, log, clock) as (parts, links):
        view = parts.service.run(SALLY, actor="alice")
        call = view.pending[0].tool_call_id
        made = links.make(view.thread_id, call, "bob", created_by="root")
        clock.advance(3601)
        state = links.view(_secret(made.url)).state
        with pytest.raises(LinkGone, match="expired"):
            links.decide(parts.service, _secret(made.url), "approve")
        with pytest.raises(LinkGone, match="expired"):
            links.make(view.thread_id, call, "bob", created_by="root")
        record = parts.service.call_record(view.thread_id, call)
    assert made.to_json()["expires_at"] == view.pending[0].expires_at and state == "expired"
    assert record.status == "pending" and log.calls == []  # the sweep settles it, not the link


def test_a_link_made_before_the_call_was_asked_again_with_other_args_decides_nothing(
    db: Path, log: ToolLog
) -> None:
    with _open(db, log) as (parts, links):
        view = parts.service.run(SALLY, actor="alice")
        call = view.pending[0].tool_call_id
        made = links.make(view.thread_id, call, "bob", created_by="root")
        asked = parts.service.call_record(view.thread_id, call)
        parts.ledger.request(  # what the approval node does when the model changes the args
            thread_id=view.thread_id,
            tool_call_id=call,
            interrupt_id=asked.interrupt_id,
            tool=asked.tool,
            args=asked.args | {"recipient": "mallory@example.com"},
            requester="alice",
            needs_review=True,
            allowed_decisions=asked.allowed_decisions,
            description=asked.description,
            expires_after=3600,
            approvers=asked.approvers,
            allow_self_approval=False,
        )
        state = links.view(_secret(made.url)).state
        with pytest.raises(LinkGone, match="asked about this call again"):
            links.decide(parts.service, _secret(made.url), "approve")
        fresh = links.make(view.thread_id, call, "bob", created_by="root")
        record = parts.service.call_record(view.thread_id, call)
    assert state == "args_changed" and record.status == "pending"
    assert fresh.url != made.url and fresh.args_hash == record.args_hash
    assert log.calls == []


def test_a_link_to_a_call_someone_else_decided_decides_nothing(db: Path, log: ToolLog) -> None:
    with _open(db, log) as (parts, links):
        view = parts.service.run(SALLY, actor="alice")
        made = links.make(view.thread_id, view.pending[0].tool_call_id, "bob", created_by="x")
        parts.service.decide(view.thread_id, EveryPending("reject"), actor="root")
        shown = links.view(_secret(made.url))
        with pytest.raises(LinkGone, match="already decided by root"):
            links.decide(parts.service, _secret(made.url), "approve")
    assert shown.state == "decided" and shown.decisions == []
    assert log.calls == []


def _race(*contenders: Callable[[], object]) -> list[str]:
    """Run the contenders at the same instant, each in a thread; each one's outcome."""
    barrier = threading.Barrier(len(contenders))
    outcomes: list[str] = [""] * len(contenders)

    def run(i: int, contender: Callable[[], object]) -> None:
        barrier.wait(timeout=30)
        try:
            contender()
            outcomes[i] = "won"
        except (LinkGone, AlreadyDecided) as e:
            outcomes[i] = type(e).__name__

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(contenders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return outcomes


def test_two_requests_with_one_link_racing_record_one_decision_and_run_the_tool_once(
    db: Path, log: ToolLog
) -> None:
    with _open(db, log) as (one, links_one), _open(db, log) as (other, links_other):
        for _ in range(ROUNDS):
            view = one.service.run(SALLY, actor="alice")
            call = view.pending[0].tool_call_id
            secret = _secret(links_one.make(view.thread_id, call, "bob", created_by="x").url)
            outcomes = _race(
                partial(links_one.decide, one.service, secret, "approve"),
                partial(links_other.decide, other.service, secret, "approve"),
            )
            assert sorted(outcomes) == ["LinkGone", "won"]
            assert log.ids("send_email").count(call) == 1
            audit = [e.event for e in one.service.audit(view.thread_id)]
            assert audit.count("decided") == 1


def test_a_link_racing_an_inbox_decision_records_one_decision(db: Path, log: ToolLog) -> None:
    with _open(db, log) as (one, links), _open(db, log) as (other, _):
        winners = set()
        for _ in range(ROUNDS):
            view = one.service.run(SALLY, actor="alice")
            call = view.pending[0].tool_call_id
            secret = _secret(links.make(view.thread_id, call, "bob", created_by="x").url)
            outcomes = _race(
                partial(links.decide, one.service, secret, "approve"),
                partial(
                    other.service.decide,
                    view.thread_id,
                    {call: "reject"},
                    actor="root",
                    roles=ROLES["root"],
                ),
            )
            assert sorted(outcomes) in (["AlreadyDecided", "won"], ["LinkGone", "won"])
            record = one.service.call_record(view.thread_id, call)
            link_won = outcomes[0] == "won"
            winners.add(record.decided_by)
            assert record.decided_by == ("bob" if link_won else "root")
            assert log.ids("send_email").count(call) == (1 if link_won else 0)
            # a link that lost to the inbox was given back: it says the call was decided
            assert links.view(secret).state == ("used" if link_won else "decided")


def test_an_approval_requested_webhook_carries_a_link_for_each_approver_named_in_the_rule(
    db: Path, log: ToolLog
) -> None:
    with serving() as receiver, open_webhook_store(db) as store, _open(db, log) as (parts, links):
        _, secret = store.add_endpoint(receiver.url("/hook"), created_by="ops")
        receiver.secrets["/hook"] = secret
        view = parts.service.run(SALLY, actor="alice")
        with WebhookDispatcher(
            store, destinations=LOCAL_RECEIVERS, body=links.add_to_payload
        ) as dispatcher:
            dispatcher.run_once()
        [requested] = receiver.received
        sent = requested.payload["data"]["links"]
        stored = store.deliveries()[0].payload
        again = links.make(view.thread_id, view.pending[0].tool_call_id, "bob", created_by="x")
        usable = links.view(_secret(sent["bob"])).decisions
    # by name only: not alice, who asked (no self-approval), nor `role:admin`
    assert list(sent) == ["bob"] and sent["bob"] == again.url
    assert requested.valid and "links" not in stored and _secret(sent["bob"]) not in stored
    assert usable == ["approve", "reject"]


# over HTTP: the API that makes links, and the confirmation page


@pytest.fixture
def links_api(tmp_path: Path, db: DatabaseName) -> Iterator[Api]:
    environ = {"HITL_POLICY": plugin_spec("NAMED_APPROVERS"), "HITL_PUBLIC_URL": PUBLIC + "/"}
    with open_api(tmp_path, environ, db=db) as api:
        yield api


def _page(url: str) -> str:
    """A link's path on the service under test (its URL names the public address)."""
    assert url.startswith(PUBLIC + LINK_PATH), url
    return url[len(PUBLIC) :]


def _wait_done(api: Api, thread_id: str) -> None:
    deadline = time.monotonic() + 30
    while api.thread(thread_id)["status"] != "done":
        assert time.monotonic() < deadline, "the thread did not finish"
        time.sleep(0.05)


def test_a_prefetching_client_decides_nothing_and_the_link_still_works_after(
    links_api: Api,
) -> None:
    api = links_api
    view = api.start(by="alice")
    call = only_call(view)
    made = api.post(f"/approvals/{view['thread_id']}/{call}/links", json={"for": "bob"}, by="root")
    assert made.status_code == 201, made.text
    page = _page(made.json()["url"])
    before = api.state()
    for _ in range(3):  # what a mail scanner does, again and again
        shown = api.get(page, by=None, headers={"Accept": "text/html"})
        head = api.call("HEAD", page, by=None)
        assert (shown.status_code, head.status_code) == (200, 200)
    assert api.state() == before  # nothing decided, nothing written
    assert shown.headers["Cache-Control"] == "no-store"
    assert shown.headers["Referrer-Policy"] == "no-referrer"
    assert "default-src 'self'" in shown.headers["Content-Security-Policy"]
    for shows in ("send_email", "sally@example.com", "alice", "bob", "Approve", "Reject"):
        assert shows in shown.text
    form = {"link": page.removeprefix(LINK_PATH), "decision": "approve"}
    decided = api.post(LINK_PATH.rstrip("/"), data=form, by=None)
    assert decided.status_code == 200 and "Approved" in decided.text, decided.text
    _wait_done(api, view["thread_id"])
    again = api.post(LINK_PATH.rstrip("/"), data=form, by=None)
    reopened = api.get(page, by=None)
    assert api.sent_ids() == [call]  # the tool ran once
    assert again.status_code == 410 and "used already" in again.text
    assert reopened.status_code == 410 and "used already" in reopened.text


def test_making_a_link_over_http_is_for_oneself_or_by_an_admin_and_only_for_an_approver(
    links_api: Api,
) -> None:
    api = links_api
    view = api.start(by="alice")
    path = f"/approvals/{view['thread_id']}/{only_call(view)}/links"
    own = api.post(path, json={"for": "bob"}, by="bob")
    assert own.status_code == 201 and own.json()["for"] == "bob"
    assert_error(api.post(path, json={"for": "root"}, by="bob"), 403, "Forbidden", "only an admin")
    assert_error(api.post(path, json={"for": "victor"}, by="victor"), 403, "Forbidden")
    assert_error(
        api.post(path, json={"for": "alice"}, by="root"), 403, "NotPermitted", "separation"
    )
    assert_error(api.post(path, json={"for": "victor"}, by="root"), 403, "NotPermitted")
    assert_error(api.post(path, json={}, by="root"), 422, "InvalidRequest", "for")
    unknown = f"/approvals/{view['thread_id']}/call_nope/links"
    assert_error(api.post(unknown, json={"for": "bob"}, by="root"), 404, "UnknownToolCall")


def test_a_link_that_is_not_one_gets_a_plain_page_that_says_so(links_api: Api) -> None:
    api = links_api
    shown = api.get(LINK_PATH + "hl_not-a-real-link", by=None)
    posted = api.post(
        LINK_PATH.rstrip("/"), data={"link": "hl_nope", "decision": "approve"}, by=None
    )
    for answer in (shown, posted):
        assert answer.status_code == 404 and "not valid" in answer.text
        assert "Traceback" not in answer.text
        assert answer.headers["Referrer-Policy"] == "no-referrer"


def test_a_link_made_before_the_database_was_copied_still_decides_on_the_copy(
    tmp_path: Path, log: ToolLog
) -> None:
    source, target = tmp_path / "source.sqlite", tmp_path / "copy.sqlite"
    with _open(source, log) as (parts, links):
        view = parts.service.run(SALLY, actor="alice")
        call = view.pending[0].tool_call_id
        made = links.make(view.thread_id, call, "bob", created_by="root")
    copy_database(source, target)
    with _open(target, log) as (parts, links):
        again = links.make(view.thread_id, call, "bob", created_by="root")
        links.decide(parts.service, _secret(made.url), "approve")
    assert again.url == made.url  # the key moved with the links
    assert log.ids("send_email") == [call]


def test_a_link_whose_person_lost_the_role_that_admitted_them_is_refused_when_used(
    db: Path, log: ToolLog
) -> None:
    roles = dict(ROLES)
    with open_harness(db, log, NAMED_APPROVERS) as parts, open_link_store(db) as store:
        links = DecisionLinks(parts.ledger, store, lambda n: roles.get(n, ()), public_url=PUBLIC)
        view = parts.service.run(SALLY, actor="alice")
        made = links.make(view.thread_id, view.pending[0].tool_call_id, "root", created_by="x")
        roles["root"] = ("viewer",)  # root's admin token was revoked, a viewer's made
        with pytest.raises(NotPermitted, match="only alice, bob, role:admin may"):
            links.decide(parts.service, _secret(made.url), "approve")
        state = links.view(_secret(made.url)).state
    assert state == "ready" and log.calls == []  # refused by the ledger: the claim was given back


def test_a_link_to_a_quorum_call_records_a_vote_and_its_page_says_the_call_still_waits(
    tmp_path: Path,
) -> None:
    environ = {"HITL_POLICY": plugin_spec("QUORUM_OF_TWO"), "HITL_PUBLIC_URL": PUBLIC}
    with open_api(tmp_path, environ) as api:
        view = api.start(SALLY, by="alice")
        thread_id, call = view["thread_id"], only_call(view)
        made = api.post(f"/approvals/{thread_id}/{call}/links", json={"for": "bob"}, by="bob")
        form = {"link": _secret(made.json()["url"]), "decision": "approve"}
        voted = api.post(LINK_PATH.rstrip("/"), data=form, by=None)
        assert voted.status_code == 200, voted.text
        assert "1 of 2 approvals: bob" in voted.text and "waits" in voted.text
        for wrong in ("None", "will not run", "Pending as"):
            assert wrong not in voted.text
        assert api.sent_ids() == []
        again = api.post(f"/approvals/{thread_id}/{call}/links", json={"for": "bob"}, by="bob")
        assert_error(again, 409, "AlreadyVoted", "'bob' already voted")  # no link to nothing
        api.finished(api.post(f"/threads/{thread_id}/approve", json={"call": call}, by="alice"))
        assert api.sent_ids() == [call]


def test_an_approval_escalated_webhook_carries_a_link_for_each_person_it_let_decide(
    db: Path, log: ToolLog
) -> None:
    clock = FakeClock()
    rule = ToolRule(
        approvers=["bob"],
        expires_after=timedelta(hours=1),
        escalate_after=timedelta(minutes=30),
        escalate_to=["carol", "role:oncall"],
    )
    policy = Policy(rules={"send_email": rule})
    with (
        serving() as receiver,
        open_webhook_store(db) as store,
        open_harness(db, log, policy, clock) as parts,
        open_link_store(db) as link_store,
    ):
        links = DecisionLinks(parts.ledger, link_store, _roles, public_url=PUBLIC)
        _, secret = store.add_endpoint(receiver.url("/hook"), created_by="ops")
        receiver.secrets["/hook"] = secret
        view = parts.service.run(SALLY, actor="alice")
        with WebhookDispatcher(
            store, destinations=LOCAL_RECEIVERS, body=links.add_to_payload
        ) as dispatcher:
            dispatcher.run_once()
            clock.advance(30 * 60)
            parts.service.nudge()
            dispatcher.run_once()
        requested, escalated = receiver.received
        sent = escalated.payload["data"]["links"]
        decided = links.decide(parts.service, _secret(sent["carol"]), "approve")
    assert list(requested.payload["data"]["links"]) == ["bob"]
    assert escalated.payload["type"] == "approval.escalated" and escalated.valid
    assert list(sent) == ["carol"]  # who may decide now and could not before, by name
    assert [(r.decided_by, r.status) for r in decided.records] == [("carol", "approved")]
    assert log.ids("send_email") == [view.pending[0].tool_call_id]


def test_a_call_asked_again_after_a_policy_change_gets_a_new_link_not_the_used_one(
    db: Path, log: ToolLog
) -> None:
    before = Policy(rules={"send_email": ToolRule(approvers=["bob"])})
    after = Policy(rules={"send_email": ToolRule(approvers=["bob"], expires_after=timedelta(1))})
    with open_harness(db, log, before) as parts:
        view = parts.service.run(SALLY, actor="alice")
    call = view.pending[0].tool_call_id
    with open_harness(db, log, after) as parts, open_link_store(db) as store:
        links = DecisionLinks(parts.ledger, store, _roles, public_url=PUBLIC)
        used = links.make(view.thread_id, call, "bob", created_by="webhook")
        links.decide(parts.service, _secret(used.url), "approve")  # then re-asked: new rule
        assert [p.tool_call_id for p in parts.service.show(view.thread_id).pending] == [call]
        again = links.make(view.thread_id, call, "bob", created_by="webhook")
        assert again.url != used.url and links.view(_secret(again.url)).state == "ready"
        links.decide(parts.service, _secret(again.url), "approve")
        assert links.view(_secret(used.url)).state == "used"
    assert log.ids("send_email") == [call]
