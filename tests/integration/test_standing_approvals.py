"""Standing approvals on the ledger: a decision turned into a rule approves the calls in its
scope without asking, in the transaction that registers them, until it expires or is revoked;
only someone who may approve the tool can create one, and the audit names it."""

import threading
import time

import pytest

from hitl.checkpoints.errors import InvalidStanding, NotPermitted, StandingNotFound
from hitl.checkpoints.ledger import Ledger, Remember, open_ledger
from hitl.checkpoints.urls import DatabaseName
from tests.support.fakes import FakeClock
from tests.support.ledger import request_call

DAY = 86_400.0
APPROVE = {"type": "approve"}


def _status(ledger: Ledger, thread_id: str, call_id: str) -> str:
    record = ledger.get(thread_id, call_id)
    assert record is not None
    return record.status


def _asked_and_remembered(ledger: Ledger, remember: Remember, **fields: object) -> None:
    """bob approves alice's first call and remembers it."""
    request_call(ledger, "t1", "first", **fields)
    ledger.decide("t1", {"first": APPROVE}, actor="bob", remember=remember)


def test_a_remembered_approval_approves_later_calls_and_the_audit_names_it(
    db: DatabaseName,
) -> None:
    with open_ledger(db) as ledger:
        _asked_and_remembered(ledger, Remember(expires_after=DAY))
        [standing] = ledger.standing_approvals()
        request_call(ledger, "t2", "later", args={"recipient": "x@y.org"})
        record = ledger.get("t2", "later")
        assert record is not None
        assert (record.status, record.decided_by) == ("approved", f"standing:{standing.id}")
        entry = ledger.audit_trail("t2")[-1]
        assert entry.event == "approved_by_standing"
        assert entry.detail["standing_id"] == standing.id
        assert entry.detail["created_by"] == "bob"
        assert [e.event for e in ledger.audit_trail("t1")][-2:] == ["standing_created", "decided"]
        assert ledger.verify_audit().ok


@pytest.mark.parametrize(
    ("remember", "covered", "not_covered"),
    [
        (  # exactly the approved args
            Remember(expires_after=DAY, args=True),
            {"thread_id": "t2", "args": {"recipient": "first@x.org"}},
            {"thread_id": "t2", "args": {"recipient": "other@x.org"}},
        ),
        (  # alice's calls only
            Remember(expires_after=DAY, requester=True),
            {"thread_id": "t2", "requester": "alice"},
            {"thread_id": "t2", "requester": "mallory"},
        ),
        (  # this thread only
            Remember(expires_after=DAY, thread=True),
            {"thread_id": "t1"},
            {"thread_id": "t2"},
        ),
    ],
    ids=["args", "requester", "thread"],
)
def test_a_standing_approval_covers_only_its_scope(
    db: DatabaseName,
    remember: Remember,
    covered: dict[str, object],
    not_covered: dict[str, object],
) -> None:
    with open_ledger(db) as ledger:
        _asked_and_remembered(ledger, remember)
        request_call(ledger, call_id="in", **covered)  # type: ignore[arg-type]
        request_call(ledger, call_id="out", **not_covered)  # type: ignore[arg-type]
        assert _status(ledger, str(covered["thread_id"]), "in") == "approved"
        assert _status(ledger, str(not_covered["thread_id"]), "out") == "pending"


def test_a_call_asked_after_revocation_or_expiry_waits_and_one_approved_before_stays(
    db: DatabaseName,
) -> None:
    clock = FakeClock()
    with open_ledger(db, clock=clock) as ledger:
        _asked_and_remembered(ledger, Remember(expires_after=DAY))
        request_call(ledger, "t2", "before")  # covered: approved now
        [standing] = ledger.standing_approvals()
        ledger.revoke_standing(standing.id, actor="carol")
        request_call(ledger, "t2", "after_revoke")
        assert _status(ledger, "t2", "before") == "approved"
        assert _status(ledger, "t2", "after_revoke") == "pending"
        assert ledger.audit_trail("t1")[-1].event == "standing_revoked"
        with pytest.raises(StandingNotFound, match="it is revoked"):
            ledger.revoke_standing(standing.id, actor="carol")

        ledger.allow("send_email", actor="bob", expires_after=60)
        request_call(ledger, "t3", "in_time")
        clock.advance(61)
        request_call(ledger, "t3", "too_late")
        assert _status(ledger, "t3", "in_time") == "approved"
        assert _status(ledger, "t3", "too_late") == "pending"
        assert ledger.standing_approvals() == []
        assert len(ledger.standing_approvals(include_inactive=True)) == 2


def test_only_someone_who_may_approve_the_tool_can_create_one(db: DatabaseName) -> None:
    with open_ledger(db) as ledger:
        request_call(ledger, "t1", "c1", approvers=["bob", "role:finance"])
        with pytest.raises(NotPermitted, match="'mallory' may not create a standing approval"):
            ledger.allow("send_email", actor="mallory", expires_after=DAY)
        with pytest.raises(NotPermitted, match="'mallory' may not approve calls"):
            ledger.decide(
                "t1", {"c1": APPROVE}, actor="mallory", remember=Remember(expires_after=DAY)
            )
        assert _status(ledger, "t1", "c1") == "pending"  # refused whole: nothing recorded
        ledger.allow("send_email", actor="erin", roles=["finance"], expires_after=DAY)
        with pytest.raises(InvalidStanding, match="no call of 'wire_money' was asked about"):
            ledger.allow("wire_money", actor="bob", expires_after=DAY)


def test_a_standing_approval_does_not_approve_what_its_creator_could_not(
    db: DatabaseName,
) -> None:
    with open_ledger(db) as ledger:
        request_call(ledger, "t1", "c1", allow_self_approval=False)
        with pytest.raises(NotPermitted, match="separation of duties"):
            ledger.allow("send_email", actor="alice", requester="alice", expires_after=DAY)
        ledger.allow("send_email", actor="alice", expires_after=DAY)
        request_call(ledger, "t2", "alices_own", allow_self_approval=False)
        request_call(ledger, "t2", "bobs", requester="bob", allow_self_approval=False)
        assert _status(ledger, "t2", "alices_own") == "pending"  # she may not approve it
        assert _status(ledger, "t2", "bobs") == "approved"
        request_call(ledger, "t3", "now_approvers_only", approvers=["carol"])
        assert _status(ledger, "t3", "now_approvers_only") == "pending"  # the policy narrowed


def test_standing_approvals_are_refused_for_quorum_tools(db: DatabaseName) -> None:
    with open_ledger(db) as ledger:
        request_call(ledger, "t1", "c1", quorum=2)
        with pytest.raises(NotPermitted, match="need 2 approvals"):
            ledger.allow("send_email", actor="bob", expires_after=DAY)
        request_call(ledger, "t1", "single")
        ledger.allow("send_email", actor="bob", expires_after=DAY)
        request_call(ledger, "t2", "quorum_again", quorum=2)
        assert _status(ledger, "t2", "quorum_again") == "pending"


REQUESTS = 40


def test_a_revocation_racing_requests_leaves_each_call_approved_before_it_or_asked_after_it(
    db: DatabaseName,
) -> None:
    """Two ledgers on one database: one registers calls as fast as it can while the other
    revokes the standing approval that covers them. Each call is either approved by it (and
    registered before the revocation) or waits for a person (registered after): none is
    approved by a revoked standing approval."""
    with open_ledger(db) as asking, open_ledger(db) as revoking:
        _asked_and_remembered(asking, Remember(expires_after=DAY))
        [standing] = asking.standing_approvals()
        started = threading.Barrier(2)

        def ask() -> None:
            started.wait(timeout=30)
            for n in range(REQUESTS):
                request_call(asking, "t2", f"c{n}")

        def revoke() -> None:
            started.wait(timeout=30)
            time.sleep(0.01)  # let some calls in first
            revoking.revoke_standing(standing.id, actor="carol")

        threads = [threading.Thread(target=ask), threading.Thread(target=revoke)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        [revoked] = asking.standing_approvals(include_inactive=True)
        assert revoked.revoked_at is not None
        records = [asking.get("t2", f"c{n}") for n in range(REQUESTS)]
        statuses = [r.status for r in records if r is not None]
        assert len(statuses) == REQUESTS
        # once one call waits, every later one waits: the revocation fell between two
        first_waiting = statuses.index("pending") if "pending" in statuses else REQUESTS
        assert statuses == ["approved"] * first_waiting + ["pending"] * (REQUESTS - first_waiting)
        for record in records:
            assert record is not None
            if record.status == "approved":
                assert record.decided_at is not None and record.decided_at <= revoked.revoked_at
            else:
                assert record.requested_at >= revoked.revoked_at
        assert asking.verify_audit().ok


WHY = {"rule": "interrupt_on", "rule_version": "v1", "policy_version": "p1"}


def test_a_call_a_standing_approval_let_through_verifies_with_the_why_it_was_asked_with(
    db: DatabaseName,
) -> None:
    with open_ledger(db) as ledger:
        _asked_and_remembered(ledger, Remember(expires_after=DAY), why=WHY)
        request_call(ledger, "t2", "later", why=WHY)
        record = ledger.get("t2", "later")
        assert record is not None and record.status == "approved" and record.why == WHY
        assert ledger.verify_audit().broken == []


def test_a_policy_change_re_asks_a_call_a_standing_approval_let_through(
    db: DatabaseName,
) -> None:
    changed = WHY | {"rule_version": "v2", "policy_version": "p2"}
    with open_ledger(db) as ledger:
        _asked_and_remembered(ledger, Remember(expires_after=DAY), why=WHY)
        request_call(ledger, "t2", "later", why=WHY)  # approved by bob's standing approval
        # the deploy names only carol: bob's standing approval no longer covers the call
        request_call(ledger, "t2", "later", why=changed, reask=True, approvers=["carol"])
        record = ledger.get("t2", "later")
        assert record is not None and (record.status, record.why) == ("pending", changed)
        assert ledger.audit_trail("t2")[-1].detail["voided"]["decided_by"].startswith("standing:")
        assert ledger.verify_audit().ok


def test_a_re_ask_is_matched_under_the_calls_own_requester_not_whoever_resumed_it(
    db: DatabaseName,
) -> None:
    rules = {"approvers": ["alice", "bob"], "allow_self_approval": False}
    changed = WHY | {"rule_version": "v2", "policy_version": "p2"}
    with open_ledger(db) as ledger:
        request_call(ledger, "t1", "alices", why=WHY, **rules)  # alice asked
        ledger.allow("send_email", actor="alice", expires_after=DAY)
        # the policy changed; the thread is resumed by bob, whom the gate names as requester
        request_call(ledger, "t1", "alices", why=changed, reask=True, requester="bob", **rules)
        record = ledger.get("t1", "alices")
        assert record is not None and record.requester == "alice"
        assert record.status == "pending"  # not approved by alice's own standing approval
