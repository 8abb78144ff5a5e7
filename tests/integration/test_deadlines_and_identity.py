"""Deadlines settled by `sweep` on a controllable clock; who decided; separation of duties."""

from datetime import timedelta
from pathlib import Path

import pytest

from hitl.checkpoints.errors import NotPending
from hitl.checkpoints.ledger import open_ledger
from hitl.graph.policy import Policy, ToolRule
from hitl.service.errors import AlreadyDecided, NotPermitted
from hitl.service.workflow import SWEEP_ACTOR, EveryPending
from tests.support.fakes import FakeClock, ToolLog
from tests.support.harness import open_harness, open_test_service
from tests.support.ledger import request_call
from tests.support.prompts import SALLY

HOUR = 3600.0


def _policy(**send_email: object) -> Policy:
    return Policy(rules={"send_email": ToolRule(**send_email)})  # type: ignore[arg-type]


def test_an_overdue_approval_is_rejected_by_sweep_and_the_model_learns_it_expired(
    db: Path, log: ToolLog
) -> None:
    clock = FakeClock()
    policy = _policy(expires_after=timedelta(hours=1))
    with open_test_service(db, log, policy, clock) as service:
        view = service.run(SALLY, actor="alice")
        assert view.pending[0].expires_at == "2027-01-15T09:00:00.000+00:00"
        clock.advance(HOUR - 1)
        assert service.sweep().expired == []
        clock.advance(2)
        report = service.sweep()
        assert [r.tool_call_id for r in report.expired] == [view.pending[0].tool_call_id]
        assert report.resumed == [view.thread_id]
        again = service.sweep()  # idempotent
        done = service.show(view.thread_id)
        events = [(e.event, e.actor) for e in service.audit(view.thread_id)]
    assert again.expired == [] and again.resumed == []
    assert done.status == "done" and log.calls == []
    result = next(m for m in done.messages if m["type"] == "tool")
    assert "expired" in result["content"] and result["status"] == "error"
    assert ("expired", SWEEP_ACTOR) in events


def test_an_expiry_that_approves_runs_the_tool_once(db: Path, log: ToolLog) -> None:
    clock = FakeClock()
    policy = _policy(expires_after=timedelta(minutes=5), on_expire="approve")
    with open_test_service(db, log, policy, clock) as service:
        view = service.run(SALLY, actor="alice")
        clock.advance(301)
        service.sweep()
        service.sweep()
        done = service.show(view.thread_id)
    assert done.status == "done"
    assert log.ids("send_email") == [view.pending[0].tool_call_id]


def test_a_person_who_decides_in_time_wins_over_the_sweep_and_a_late_one_is_refused(
    db: Path, log: ToolLog
) -> None:
    clock = FakeClock()
    policy = _policy(expires_after=timedelta(hours=1))
    with open_test_service(db, log, policy, clock) as service:
        in_time, swept, late = (service.run(SALLY, actor="alice") for _ in range(3))
        clock.advance(HOUR - 60)
        service.decide(in_time.thread_id, EveryPending("approve"), actor="bob")
        clock.advance(2 * HOUR)
        # nobody has swept yet: the deadline still decides, not the late approver
        late_call = late.pending[0].tool_call_id
        with pytest.raises(AlreadyDecided, match="already decided by deadline"):
            service.decide(late.thread_id, {late_call: "approve"}, actor="bob")
        report = service.sweep()
        with pytest.raises(AlreadyDecided, match=f"already decided by {SWEEP_ACTOR}"):
            service.decide(swept.thread_id, {swept.pending[0].tool_call_id: "approve"}, actor="bob")
        assert service.show(late.thread_id).status == "done"  # the model learnt it expired
    assert [r.thread_id for r in report.expired] == [swept.thread_id]
    assert report.resumed == [swept.thread_id]
    assert log.ids("send_email") == [in_time.pending[0].tool_call_id]


def test_every_decision_records_who_made_it_and_their_comment(db: Path, log: ToolLog) -> None:
    with open_harness(db, log) as parts:
        view = parts.service.run(SALLY, actor="alice")
        call_id = view.pending[0].tool_call_id
        assert view.pending[0].requester == "alice"
        parts.service.decide(
            view.thread_id, {call_id: "approve"}, actor="bob", comment="looks fine"
        )
        record = parts.ledger.get(view.thread_id, call_id)
        decided = next(e for e in parts.service.audit(view.thread_id) if e.event == "decided")
    assert record is not None and record.decided_by == "bob" and record.reason == "looks fine"
    assert decided.actor == "bob"
    assert decided.detail["decision"] == "approve" and decided.detail["comment"] == "looks fine"


def test_a_requester_may_not_approve_their_own_call_when_the_policy_says_so(
    db: Path, log: ToolLog
) -> None:
    with open_test_service(db, log, _policy(allow_self_approval=False)) as service:
        view = service.run(SALLY, actor="alice")
        call_id = view.pending[0].tool_call_id
        with pytest.raises(NotPermitted, match="separation of duties"):
            service.decide(view.thread_id, {call_id: "approve"}, actor="alice")
        assert service.show(view.thread_id).pending[0].status == "pending"
        service.decide(view.thread_id, {call_id: "approve"}, actor="bob")
        done = service.show(view.thread_id)
    assert done.status == "done" and log.ids("send_email") == [call_id]


def test_only_the_named_approvers_may_approve_but_anyone_may_reject(db: Path, log: ToolLog) -> None:
    with open_test_service(db, log, _policy(approvers=["carol"])) as service:
        first = service.run(SALLY, actor="alice")
        second = service.run(SALLY, actor="alice")
        with pytest.raises(NotPermitted, match="only carol may"):
            service.decide(first.thread_id, EveryPending("approve"), actor="bob")
        service.decide(first.thread_id, EveryPending("approve"), actor="carol")
        service.decide(second.thread_id, EveryPending("reject"), actor="bob")
    assert log.ids("send_email") == [first.pending[0].tool_call_id]


def test_a_role_approves_through_a_token_of_that_role_and_never_as_a_claimed_name(
    db: Path, log: ToolLog
) -> None:
    with open_test_service(db, log, _policy(approvers=["role:admin"])) as service:
        view = service.run(SALLY, actor="alice")
        with pytest.raises(NotPermitted, match="names a role, not a person"):
            service.decide(view.thread_id, EveryPending("approve"), actor="role:admin")
        with pytest.raises(NotPermitted, match="only role:admin may"):
            service.decide(
                view.thread_id, EveryPending("approve"), actor="bob", roles=("approver",)
            )
        service.decide(
            view.thread_id, EveryPending("approve"), actor="root", roles=("approver", "admin")
        )
        service.resume(view.thread_id)
    assert log.ids("send_email") == [view.pending[0].tool_call_id]


def test_only_the_approvers_may_respond_in_the_tools_place(db: Path, log: ToolLog) -> None:
    """A response stands in for the tool's result: as strong as an approval."""
    with open_test_service(db, log, _policy(approvers=["carol"])) as service:
        view = service.run(SALLY, actor="alice")
        call_id = view.pending[0].tool_call_id
        answer = {"type": "respond", "message": "sent"}
        with pytest.raises(NotPermitted, match="only carol may"):
            service.decide(view.thread_id, {call_id: answer}, actor="bob")
        service.decide(view.thread_id, {call_id: answer}, actor="carol")
        done = service.show(view.thread_id)
    assert done.status == "done" and log.ids("send_email") == []


def test_a_late_batch_records_nothing_but_the_expiry_and_a_late_reject_still_counts(
    db: Path,
) -> None:
    clock = FakeClock()
    with open_ledger(db, clock=clock) as ledger:
        request_call(ledger, "t", "late", args={"n": 1}, expires_after=10.0, on_expire="approve")
        request_call(ledger, "t", "fresh", args={"n": 2})
        request_call(ledger, "t", "refused", args={"n": 3}, expires_after=10.0, on_expire="approve")
        clock.advance(20)
        with pytest.raises(NotPending):
            ledger.decide(
                "t", {"fresh": {"type": "approve"}, "late": {"type": "approve"}}, actor="b"
            )
        ledger.decide("t", {"refused": {"type": "reject"}}, actor="b")
        rows = {r.tool_call_id: (r.status, r.decided_by) for r in ledger.thread_records("t")}
    assert rows == {
        "late": ("expired", "deadline"),
        "fresh": ("pending", None),
        "refused": ("rejected", "b"),
    }
