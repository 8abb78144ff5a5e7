"""Quorum on the ledger: a call that needs N distinct approvers stays pending, visibly, until
the N-th; one reject rejects it (unless rejects do not veto); the same person counts once,
however many processes approve at once, and the call is decided once."""

import multiprocessing as mp
from multiprocessing.synchronize import Barrier

import pytest

from hitl.checkpoints.errors import AlreadyVoted, LedgerTampered, NotPending, NotPermitted
from hitl.checkpoints.ledger import Ledger, Remember, open_ledger, progress
from hitl.checkpoints.urls import DatabaseName
from tests.support.fakes import FakeClock
from tests.support.ledger import request_call
from tests.support.sql import execute

APPROVE = {"type": "approve"}
DAY = 86_400.0


def _quorum_call(ledger: Ledger, call_id: str = "c1", **fields: object) -> None:
    request_call(ledger, "t1", call_id, quorum=2, **fields)


def test_a_quorum_call_stays_pending_with_its_votes_until_the_nth_distinct_approver(
    db: DatabaseName,
) -> None:
    with open_ledger(db) as ledger:
        _quorum_call(ledger)
        [after_one] = ledger.decide("t1", {"c1": APPROVE}, actor="bob")
        assert after_one.status == "pending"
        assert progress(after_one, ledger.votes("t1", "c1")) == "1 of 2 approvals: bob"
        [after_two] = ledger.decide("t1", {"c1": APPROVE}, actor="carol")
        assert (after_two.status, after_two.decided_by) == ("approved", "carol")
        events = [(e.event, e.actor) for e in ledger.audit_trail("t1")]
        assert events[1:] == [
            ("approval_vote", "bob"),
            ("approval_vote", "carol"),
            ("decided", "carol"),
        ]
        assert ledger.audit_trail("t1")[-1].detail["votes"] == ["bob", "carol"]
        assert ledger.verify_audit().ok


def test_the_same_approver_twice_counts_once(db: DatabaseName) -> None:
    with open_ledger(db) as ledger:
        _quorum_call(ledger)
        ledger.decide("t1", {"c1": APPROVE}, actor="bob")
        voted_once = r"already voted on this call \(1 of 2 approvals: bob\)"
        with pytest.raises(AlreadyVoted, match=voted_once):
            ledger.decide("t1", {"c1": APPROVE}, actor="bob")
        record = ledger.get("t1", "c1")
        assert record is not None and record.status == "pending"


def test_one_reject_rejects_a_quorum_call_unless_rejects_do_not_veto(db: DatabaseName) -> None:
    with open_ledger(db) as ledger:
        _quorum_call(ledger, "vetoed")
        ledger.decide("t1", {"vetoed": APPROVE}, actor="bob")
        [vetoed] = ledger.decide("t1", {"vetoed": {"type": "reject"}}, actor="carol")
        assert vetoed.status == "rejected"

        _quorum_call(ledger, "voted", reject_vetoes=False)
        [one_no] = ledger.decide("t1", {"voted": {"type": "reject"}}, actor="bob")
        assert one_no.status == "pending"
        [yes] = ledger.decide("t1", {"voted": APPROVE}, actor="carol")
        assert yes.status == "pending"
        assert progress(yes, ledger.votes("t1", "voted")) == (
            "1 of 2 approvals: carol; 1 of 2 rejects: bob"
        )
        [two_no] = ledger.decide("t1", {"voted": {"type": "reject"}}, actor="dave")
        assert two_no.status == "rejected"


def test_an_edit_of_a_quorum_call_is_refused(db: DatabaseName) -> None:
    with open_ledger(db) as ledger:
        _quorum_call(ledger, allowed_decisions=["approve", "edit", "reject"])
        edit = {"type": "edit", "edited_action": {"name": "send_email", "args": {}}}
        with pytest.raises(NotPermitted, match="need 2 approvals: one person may not edit"):
            ledger.decide("t1", {"c1": edit}, actor="bob")


def test_votes_for_args_asked_about_before_do_not_count(db: DatabaseName) -> None:
    with open_ledger(db) as ledger:
        _quorum_call(ledger)
        ledger.decide("t1", {"c1": APPROVE}, actor="bob")
        _quorum_call(ledger, args={"recipient": "someone-else@x.org"})  # re-requested
        [after] = ledger.decide("t1", {"c1": APPROVE}, actor="carol")
        assert after.status == "pending"
        assert [v.approver for v in ledger.votes("t1", "c1")] == ["carol"]


def test_distinct_roles_count_each_role_once(db: DatabaseName) -> None:
    with open_ledger(db) as ledger:
        _quorum_call(ledger, quorum_distinct_roles=True)
        with pytest.raises(NotPermitted, match="acts with none"):
            ledger.decide("t1", {"c1": APPROVE}, actor="bob")
        ledger.decide("t1", {"c1": APPROVE}, actor="bob", roles=["finance"])
        with pytest.raises(NotPermitted, match="someone of another role must approve"):
            ledger.decide("t1", {"c1": APPROVE}, actor="carol", roles=["finance"])
        [done] = ledger.decide("t1", {"c1": APPROVE}, actor="carol", roles=["finance", "legal"])
        assert done.status == "approved"
        assert [v.role for v in ledger.votes("t1", "c1")] == ["finance", "legal"]


def test_a_vote_written_by_sql_is_refused_not_counted(db: DatabaseName) -> None:
    with open_ledger(db) as ledger:
        _quorum_call(ledger)
        execute(
            db,
            "INSERT INTO hitl_votes (thread_id, tool_call_id, args_hash, approver, role, vote, at)"
            " SELECT thread_id, tool_call_id, args_hash, 'mallory', NULL, 'approve', 0 "
            "FROM hitl_approvals",
        )
        with pytest.raises(LedgerTampered, match="votes its audit trail does not record"):
            ledger.decide("t1", {"c1": APPROVE}, actor="bob")


def test_a_quorum_changed_by_sql_is_named_by_verify(db: DatabaseName) -> None:
    with open_ledger(db) as ledger:
        _quorum_call(ledger)
        execute(db, "UPDATE hitl_approvals SET quorum = 1")
        assert "quorum" in ledger.verify_audit().broken[0].problem
        with pytest.raises(LedgerTampered):
            ledger.decide("t1", {"c1": APPROVE}, actor="bob")


APPROVERS = 6


def _approve(db: DatabaseName, actor: str, barrier: Barrier, results: "mp.Queue[str]") -> None:
    with open_ledger(db) as ledger:
        barrier.wait(timeout=60)
        try:
            [record] = ledger.decide("t1", {"c1": APPROVE}, actor=actor)
            results.put(f"{actor}:{record.status}")
        except (AlreadyVoted, NotPending) as refused:
            results.put(f"{actor}:{type(refused).__name__}")


def test_approvers_racing_in_processes_decide_the_quorum_call_once_each_counting_once(
    db: DatabaseName,
) -> None:
    with open_ledger(db) as ledger:
        request_call(ledger, "t1", "c1", quorum=3)
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(APPROVERS), ctx.Queue()
    # three people, each approving from two processes at the same instant
    actors = [name for name in ("bob", "carol", "dave") for _ in range(2)]
    procs = [ctx.Process(target=_approve, args=(db, a, barrier, results)) for a in actors]
    for p in procs:
        p.start()
    outcomes = sorted(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    counted = [o for o in outcomes if o.endswith((":pending", ":approved"))]
    assert len({o.split(":")[0] for o in counted}) == len(counted) == 3  # one vote per person
    assert sum(o.endswith(":approved") for o in outcomes) == 1  # the third vote decides
    # the second process of each person is refused: voted already, or decided by then
    assert all(o.endswith((":AlreadyVoted", ":NotPending")) for o in outcomes if o not in counted)
    with open_ledger(db) as ledger:
        trail = ledger.audit_trail("t1")
        assert [e.event for e in trail].count("decided") == 1
        assert sorted(v.approver for v in ledger.votes("t1", "c1")) == ["bob", "carol", "dave"]
        assert ledger.verify_audit().ok


def test_votes_cast_under_rules_a_policy_change_replaced_do_not_count(db: DatabaseName) -> None:
    old = {"rule": "interrupt_on", "rule_version": "v1", "policy_version": "p1"}
    new = {"rule": "interrupt_on", "rule_version": "v2", "policy_version": "p2"}
    with open_ledger(db) as ledger:
        _quorum_call(ledger, why=old)
        ledger.decide("t1", {"c1": APPROVE}, actor="bob")
        _quorum_call(ledger, why=new, reask=True)  # the rule changed: asked again
        assert ledger.votes("t1", "c1") == []
        [after] = ledger.decide("t1", {"c1": APPROVE}, actor="carol")
        assert after.status == "pending"
        assert ledger.verify_audit().ok


def test_votes_cast_before_an_escalation_still_count_after_it(db: DatabaseName) -> None:
    clock = FakeClock()
    with open_ledger(db, clock=clock) as ledger:
        escalation = {"expires_after": 3600.0, "escalate_after": 60.0, "escalate_to": ["dave"]}
        _quorum_call(ledger, approvers=["bob", "carol"], **escalation)
        ledger.decide("t1", {"c1": APPROVE}, actor="bob")
        clock.advance(60)
        [escalated] = ledger.escalate_due(actor="sweep")
        assert escalated.approvers == ["bob", "carol", "dave"]
        [decided] = ledger.decide("t1", {"c1": APPROVE}, actor="dave")
        assert (decided.status, decided.decided_by) == ("approved", "dave")
        assert ledger.audit_trail("t1")[-1].detail["votes"] == ["bob", "dave"]
        assert ledger.verify_audit().ok


def test_an_approval_of_a_quorum_call_that_asks_to_be_remembered_is_refused_whole(
    db: DatabaseName,
) -> None:
    with open_ledger(db) as ledger:
        _quorum_call(ledger)
        with pytest.raises(NotPermitted, match="need 2 approvals"):
            ledger.decide("t1", {"c1": APPROVE}, actor="bob", remember=Remember(DAY))
        assert ledger.votes("t1", "c1") == [] and ledger.standing_approvals() == []
        ledger.decide("t1", {"c1": APPROVE}, actor="bob")
        with pytest.raises(NotPermitted, match="need 2 approvals"):
            ledger.decide("t1", {"c1": APPROVE}, actor="carol", remember=Remember(DAY))
        assert [v.approver for v in ledger.votes("t1", "c1")] == ["bob"]
