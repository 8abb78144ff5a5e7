"""Triage of pending calls: reminders and escalation sent once by racing sweeps, escalation
widening who may decide (and recorded so the tamper check accepts it), assignment, snooze,
and bulk decisions racing single ones."""

import multiprocessing as mp
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest

from hitl.checkpoints.errors import LedgerTampered, NotPending, NotPermitted
from hitl.checkpoints.ledger import SCHEMA_VERSION, InboxQuery, Ledger, open_ledger
from hitl.checkpoints.stores import open_webhook_store
from hitl.graph.policy import Policy, ToolRule
from hitl.service import errors
from hitl.service.bulk import Target, decide_all, select
from hitl.service.webhooks import WebhookDispatcher
from hitl.service.workflow import SWEEP_ACTOR, ApprovalService
from tests.support.fakes import FakeClock, ToolLog
from tests.support.harness import open_test_service
from tests.support.ledger import back_to_first_schema, request_call
from tests.support.prompts import SALLY
from tests.support.sql import execute
from tests.support.webhooks import LOCAL_RECEIVERS, serving

NUDGED = {
    "expires_after": 3600.0,
    "remind_after": 600.0,
    "escalate_after": 1800.0,
    "escalate_to": ["carol", "role:oncall"],
    "approvers": ["bob"],
}
SWEEPERS = 4
ROUNDS = 3


def _events(ledger: Ledger, thread_id: str) -> list[str]:
    return [e.event for e in ledger.audit_trail(thread_id)]


def _race(*racers: Callable[[], None]) -> None:
    """Run `racers` in threads released at the same instant; wait for all of them."""
    barrier = threading.Barrier(len(racers))

    def run(racer: Callable[[], None]) -> None:
        barrier.wait(timeout=30)
        racer()

    threads = [threading.Thread(target=run, args=(racer,)) for racer in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)


def _sweep(ledger: Ledger, sent: list[tuple[str, str]]) -> None:
    sent.extend(("reminded", r.tool_call_id) for r in ledger.remind_due(actor="s"))
    sent.extend(("escalated", r.tool_call_id) for r in ledger.escalate_due(actor="s"))


def test_racing_sweeps_send_each_reminder_and_escalation_once(db: Path) -> None:
    clock = FakeClock()
    with open_ledger(db, clock=clock) as first, open_ledger(db, clock=clock) as second:
        for n in range(ROUNDS):
            calls = [(f"t{n}", f"c{n}-{k}") for k in range(3)]
            for thread_id, call in calls:
                request_call(first, thread_id, call, **NUDGED)
            clock.advance(1800)  # both due at once
            sent: list[tuple[str, str]] = []
            _race(*(partial(_sweep, (first, second)[i % 2], sent) for i in range(SWEEPERS)))
            assert Counter(sent) == Counter(
                (kind, call) for _, call in calls for kind in ("reminded", "escalated")
            )
            events = Counter(_events(first, f"t{n}"))
            assert (events["reminded"], events["escalated"]) == (3, 3)
            assert first.remind_due(actor="s") == first.escalate_due(actor="s") == []
        assert first.verify_audit().ok


def _sweep_in_a_process(db: Path, barrier: Barrier, results: "mp.Queue[list[str]]") -> None:
    with open_ledger(db) as ledger:
        barrier.wait(timeout=60)
        sent = [f"reminded:{r.tool_call_id}" for r in ledger.remind_due(actor="sweep")]
        sent += [f"escalated:{r.tool_call_id}" for r in ledger.escalate_due(actor="sweep")]
        results.put(sent)


def test_sweeps_racing_in_processes_send_each_reminder_and_escalation_once(db: Path) -> None:
    calls = [f"c{k}" for k in range(5)]
    with open_ledger(db) as ledger:
        for call in calls:  # both already due when the sweeps start
            request_call(
                ledger, "t", call, **(NUDGED | {"remind_after": 0.0, "escalate_after": 0.01})
            )
    time.sleep(0.05)
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(SWEEPERS), ctx.Queue()
    procs = [
        ctx.Process(target=_sweep_in_a_process, args=(db, barrier, results))
        for _ in range(SWEEPERS)
    ]
    for proc in procs:
        proc.start()
    sent = Counter(item for _ in procs for item in results.get(timeout=120))
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    assert sent == Counter(f"{kind}:{call}" for call in calls for kind in ("reminded", "escalated"))
    with open_ledger(db) as ledger:
        events = Counter(_events(ledger, "t"))
        assert (events["reminded"], events["escalated"]) == (len(calls), len(calls))
        assert ledger.verify_audit().ok


def test_escalation_lets_its_target_decide_and_not_before(db: Path) -> None:
    clock = FakeClock()
    with open_ledger(db, clock=clock) as ledger:
        request_call(ledger, "t", "c", **NUDGED)
        clock.advance(1799)
        assert ledger.escalate_due(actor="sweep") == []
        with pytest.raises(NotPermitted, match="only bob may"):
            ledger.decide("t", {"c": {"type": "approve"}}, actor="carol")
        clock.advance(1)
        (escalated,) = ledger.escalate_due(actor="sweep")
        assert escalated.approvers == ["bob", "carol", "role:oncall"]
        (entry,) = [e for e in ledger.audit_trail("t") if e.event == "escalated"]
        assert entry.detail["approvers_added"] == ["carol", "role:oncall"]
        assert entry.detail["rules"]["approvers"] == ["bob", "carol", "role:oncall"]
        (decided,) = ledger.decide("t", {"c": {"type": "approve"}}, actor="dan", roles=["oncall"])
        assert decided.status == "approved"
        assert ledger.verify_audit().ok


def test_approvers_forged_after_an_escalation_are_still_named_as_tampering(db: Path) -> None:
    clock = FakeClock()
    with open_ledger(db, clock=clock) as ledger:
        request_call(ledger, "t", "c", **NUDGED)
        clock.advance(1800)
        ledger.escalate_due(actor="sweep")
    execute(db, """UPDATE hitl_approvals SET approvers = '["mallory"]'""")
    with open_ledger(db, clock=clock) as ledger:
        with pytest.raises(LedgerTampered, match="approvers"):
            ledger.decide("t", {"c": {"type": "approve"}}, actor="mallory")
        assert not ledger.verify_audit().ok


def test_an_escalation_forged_before_it_is_due_is_named_as_tampering(db: Path) -> None:
    with open_ledger(db) as ledger:
        request_call(ledger, "t", "c", **NUDGED)
    execute(db, """UPDATE hitl_approvals SET escalate_to = '["mallory"]'""")
    with open_ledger(db) as ledger:
        assert "escalate_to" in ledger.verify_audit().broken[0].problem


def test_a_snoozed_call_is_hidden_from_the_default_inbox_and_still_expires(db: Path) -> None:
    clock = FakeClock()
    with open_ledger(db, clock=clock) as ledger:
        request_call(ledger, "t", "a", expires_after=600.0)
        request_call(ledger, "t", "b")
        ledger.snooze("t", "a", clock.now + 3600, actor="bob")

        def ids(**query: Any) -> list[str]:
            return [r.tool_call_id for r in ledger.inbox(InboxQuery(**query))[0]]

        assert (ids(), ids(snoozed="show"), ids(snoozed="only")) == (["b"], ["a", "b"], ["a"])
        assert ledger.inbox(InboxQuery())[1] == 1
        clock.advance(601)
        (expired,) = ledger.expire_overdue(actor="sweep")
        assert (expired.tool_call_id, expired.status) == ("a", "expired")
        assert _events(ledger, "t").count("snoozed") == 1
        with pytest.raises(NotPending):
            ledger.snooze("t", "a", clock.now + 60, actor="bob")


def test_a_snooze_that_ends_shows_the_call_again_and_lets_its_reminder_go(db: Path) -> None:
    clock = FakeClock()
    with open_ledger(db, clock=clock) as ledger:
        request_call(ledger, "t", "a", remind_after=60.0)
        ledger.snooze("t", "a", clock.now + 600, actor="bob")
        clock.advance(120)
        assert ledger.remind_due(actor="sweep") == []  # snoozed: not now
        clock.advance(600)
        assert [r.tool_call_id for r in ledger.inbox()[0]] == ["a"]
        assert [r.tool_call_id for r in ledger.remind_due(actor="sweep")] == ["a"]


def test_the_inbox_filters_by_assignee_and_assignment_is_audited(db: Path) -> None:
    with open_ledger(db) as ledger:
        for call in ("a", "b", "c"):
            request_call(ledger, "t", call)
        ledger.assign("t", "a", "bob", actor="alice")
        ledger.assign("t", "b", "role:oncall", actor="alice")
        ledger.assign("t", "c", "bob", actor="alice")
        ledger.assign("t", "c", None, actor="bob")

        def ids(*assignees: str) -> list[str]:
            query = InboxQuery(assigned_to=assignees)
            return [r.tool_call_id for r in ledger.inbox(query)[0]]

        assert (ids("bob"), ids("bob", "role:oncall"), ids()) == (["a"], ["a", "b"], [])
        (unassigned,) = [e for e in ledger.audit_trail("t") if e.detail.get("previous") == "bob"]
        assert (unassigned.event, unassigned.actor, unassigned.detail["assignee"]) == (
            "assigned",
            "bob",
            None,
        )
        assert ledger.verify_audit().ok


def test_only_who_may_approve_a_call_or_an_admin_may_assign_or_snooze_it(db: Path) -> None:
    with open_ledger(db) as ledger:
        request_call(ledger, "t", "c", approvers=["bob", "role:finance"])
        with pytest.raises(NotPermitted, match="'eve' may not assign"):
            ledger.assign("t", "c", "eve", actor="eve")
        with pytest.raises(NotPermitted, match="'eve' may not snooze"):
            ledger.snooze("t", "c", ledger.clock() + 60, actor="eve")
        ledger.assign("t", "c", "bob", actor="fred", roles=["finance"])
        ledger.assign("t", "c", "carol", actor="root", roles=["admin"])
        assert _events(ledger, "t") == ["requested", "assigned", "assigned"]


def test_the_sweep_reminds_escalates_and_webhooks_carry_both(db: Path, log: ToolLog) -> None:
    clock = FakeClock()
    rule = ToolRule(
        approvers=["bob"],
        expires_after=timedelta(hours=1),
        remind_after=timedelta(minutes=10),
        escalate_after=timedelta(minutes=30),
        escalate_to=["carol"],
    )
    with serving() as receiver, open_webhook_store(db) as store:
        _, secret = store.add_endpoint(
            receiver.url("/hook"),
            created_by="ops",
            events=["approval.reminder", "approval.escalated"],
        )
        receiver.secrets["/hook"] = secret
        with open_test_service(db, log, Policy(rules={"send_email": rule}), clock) as service:
            view = service.run(SALLY, actor="alice")
            call = view.pending[0].tool_call_id
            clock.advance(600)
            first = service.sweep()
            clock.advance(1200)
            second = service.sweep()
            third = service.sweep()
            with pytest.raises(errors.NotPermitted):
                service.decide(view.thread_id, {call: "approve"}, actor="dan")
            service.decide(view.thread_id, {call: "approve"}, actor="carol")
        with WebhookDispatcher(store, destinations=LOCAL_RECEIVERS) as dispatcher:
            assert dispatcher.run_once() == 2
    assert ([r.tool_call_id for r in first.reminded], first.escalated) == ([call], [])
    assert (second.reminded, [r.tool_call_id for r in second.escalated]) == ([], [call])
    assert (third.reminded, third.escalated) == ([], [])
    assert log.ids("send_email") == [call]  # carol, escalated to, approved it
    reminder, escalated = (r.payload for r in receiver.received)
    assert (reminder["type"], reminder["actor"]) == ("approval.reminder", SWEEP_ACTOR)
    assert reminder["data"]["status"] == "pending" and reminder["data"]["tool"] == "send_email"
    assert escalated["type"] == "approval.escalated"
    assert escalated["data"]["approvers"] == ["bob", "carol"]
    assert escalated["data"]["approvers_added"] == ["carol"]
    assert all(r.valid for r in receiver.received)


def _ask_many(service: ApprovalService, count: int) -> list[tuple[str, str]]:
    calls = []
    for _ in range(count):
        view = service.run(SALLY, actor="alice")
        calls.append((view.thread_id, view.pending[0].tool_call_id))
    return calls


def _bulk_approve(service: ApprovalService, targets: list[Target], out: dict[str, Any]) -> None:
    out["report"] = decide_all(service, targets, {"type": "approve"}, actor="bulk-bob")


def _reject_one(service: ApprovalService, thread_id: str, call: str, out: dict[str, Any]) -> None:
    try:
        service.decide(thread_id, {call: {"type": "reject"}}, actor="single-sue")
        out["single"] = "won"
    except errors.AlreadyDecided as e:
        out["single"] = f"refused: {e.by}"


def test_a_bulk_approval_racing_a_single_decision_decides_the_call_once(
    db: Path, log: ToolLog
) -> None:
    with open_test_service(db, log) as bulk_side, open_test_service(db, log) as single_side:
        for _ in range(ROUNDS):
            calls = _ask_many(bulk_side, 3)
            targets = select(bulk_side, InboxQuery(tool="send_email"))
            assert {(t.thread_id, t.tool_call_id) for t in targets} == set(calls)
            raced_thread, raced_call = calls[1]
            out: dict[str, Any] = {}
            _race(
                partial(_bulk_approve, bulk_side, targets, out),
                partial(_reject_one, single_side, raced_thread, raced_call, out),
            )
            items = {i.tool_call_id: i for i in out["report"].items}
            raced = items[raced_call]
            if out["single"] == "won":
                assert (raced.outcome, raced.decided_by) == ("already_decided", "single-sue")
            else:
                assert out["single"] == "refused: bulk-bob" and raced.outcome == "decided"
            others = [items[c] for _, c in calls if c != raced_call]
            assert [i.outcome for i in others] == ["decided", "decided"]
            decided = [
                e
                for e in bulk_side.audit(raced_thread)
                if e.event == "decided" and e.tool_call_id == raced_call
            ]
            assert len(decided) == 1
        assert bulk_side.verify_audit().ok


def test_a_bulk_decision_reports_each_call_it_may_not_decide(db: Path, log: ToolLog) -> None:
    policy = Policy(rules={"send_email": ToolRule(approvers=["bob"])})
    with open_test_service(db, log, policy) as service:
        (allowed, _) = _ask_many(service, 2)
        service.decide(allowed[0], {allowed[1]: "reject"}, actor="bob")
        targets = [
            Target(allowed[0], allowed[1], tool="send_email"),
            *select(service, InboxQuery()),
        ]
        report = decide_all(service, targets, {"type": "approve"}, actor="eve")
    assert [i.outcome for i in report.items] == ["already_decided", "not_permitted"]
    assert report.items[0].decided_by == "bob"
    assert "only bob may" in (report.items[1].message or "")
    assert log.calls == []


def test_snoozing_into_the_past_is_refused_with_what_to_do(db: Path, log: ToolLog) -> None:
    with open_test_service(db, log) as service:
        view = service.run(SALLY, actor="alice")
        call = view.pending[0].tool_call_id
        with pytest.raises(errors.InvalidTriage, match="not in the future"):
            service.snooze(view.thread_id, call, 1.0, actor="bob")
        with pytest.raises(errors.InvalidTriage, match="give a person's name"):
            service.assign(view.thread_id, call, "  ", actor="bob")
        assert [e.event for e in service.audit(view.thread_id)] == ["requested"]


def test_a_ledger_at_the_first_schema_is_upgraded_keeping_its_pending_calls(db: Path) -> None:
    with open_ledger(db) as ledger:
        request_call(ledger, "t", "c")
    back_to_first_schema(db)
    with open_ledger(db) as ledger:
        assert ledger.schema_version() == SCHEMA_VERSION
        assert ledger.assign("t", "c", "bob", actor="bob").assignee == "bob"
        assert [r.tool_call_id for r in ledger.inbox(InboxQuery(assigned_to=("bob",)))[0]] == ["c"]
        assert ledger.verify_audit().ok


def test_a_bulk_approval_of_a_quorum_call_reports_a_vote_not_a_decision(
    db: Path, log: ToolLog
) -> None:
    policy = Policy(rules={"send_email": ToolRule(quorum=2)})
    with open_test_service(db, log, policy) as service:
        [(thread_id, call)] = _ask_many(service, 1)
        first = decide_all(service, select(service, InboxQuery()), {"type": "approve"}, actor="bob")
        assert [(i.outcome, i.message) for i in first.items] == [
            ("voted", "1 of 2 approvals: bob; the call waits for more approvals")
        ]
        assert service.call_record(thread_id, call).status == "pending" and log.calls == []
        second = decide_all(
            service, select(service, InboxQuery()), {"type": "approve"}, actor="ann"
        )
        assert [i.outcome for i in second.items] == ["decided"]
        assert log.ids("send_email") == [call]
