"""Why each call was asked, and what becomes of a call asked under one policy and decided after
a deploy changed it: asked again under the new rule (`reask`, the default) or applied under the
recorded one (`keep`), on a file database, with the service as a fresh process builds it."""

import json
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from hitl.checkpoints.errors import LedgerTampered
from hitl.checkpoints.ledger import open_ledger
from hitl.checkpoints.urls import DatabaseName
from hitl.graph.policy import Policy, ToolRule, default_policy
from hitl.service.errors import NotPermitted
from tests.support.environment import REPO_ROOT
from tests.support.fakes import FakeClock, ToolLog
from tests.support.harness import open_harness
from tests.support.ledger import back_to_first_schema, request_call
from tests.support.prompts import SALLY, TWO_EMAILS
from tests.support.sql import execute

ASKED = Policy(rules={"send_email": ToolRule(), "count_emails": ToolRule(ask="never")})
"""send_email is asked about, anyone may approve it."""
ONLY_CAROL = Policy(
    rules={"send_email": ToolRule(approvers=["carol"]), "count_emails": ToolRule(ask="never")}
)
"""The deploy tightened send_email: only carol may approve it now."""
NEVER_ASKED = Policy(
    rules={"send_email": ToolRule(ask="never"), "count_emails": ToolRule(ask="never")}
)
"""The deploy relaxed send_email: it runs without asking anyone."""
OTHER_TOOL_CHANGED = Policy(
    rules={"send_email": ToolRule(), "count_emails": ToolRule(ask="always")}
)
"""The deploy changed count_emails' rule only."""
KEEP = {"HITL_ON_POLICY_CHANGE": "keep"}
VERIFIER = REPO_ROOT / "examples" / "verify_audit_export.py"


def _asked(db: DatabaseName, log: ToolLog, policy: Policy = ASKED) -> tuple[str, str]:
    with open_harness(db, log, policy) as parts:
        view = parts.service.run(SALLY, actor="alice")
    return view.thread_id, view.pending[0].tool_call_id


def _events(entries: list[Any], call_id: str) -> list[str]:
    return [e.event for e in entries if e.tool_call_id == call_id]


def test_each_request_records_the_rule_that_matched_and_the_policys_version(
    db: DatabaseName, log: ToolLog
) -> None:
    with open_harness(db, log, default_policy()) as parts:
        view = parts.service.run(TWO_EMAILS, actor="alice")
        trail = parts.service.audit(view.thread_id)
        records = {r.tool_call_id: r for r in parts.ledger.thread_records(view.thread_id)}
    why = {e.event: e.detail["why"] for e in trail if "why" in e.detail}

    assert why["requested"]["rule"] == "interrupt_on"
    assert why["approved_by_policy"]["rule"] == "never"  # count_emails: a `False` entry
    assert why["requested"]["policy_version"] == why["approved_by_policy"]["policy_version"]
    assert why["requested"]["rule_version"] != why["approved_by_policy"]["rule_version"]
    for e in trail:
        if "why" in e.detail:
            assert records[str(e.tool_call_id)].why == e.detail["why"]  # the row holds it too


def test_a_when_predicates_answer_is_recorded_with_the_rule(db: DatabaseName, log: ToolLog) -> None:
    outside = Policy(rules={"send_email": ToolRule(ask=lambda a: "example.com" in a["recipient"])})
    with open_harness(db, log, outside) as parts:
        view = parts.service.run(SALLY, actor="alice")
        [requested] = [e for e in parts.service.audit(view.thread_id) if e.event == "requested"]
    assert requested.detail["why"]["rule"] == "interrupt_on"
    assert requested.detail["why"]["when"] is True


def test_a_call_approved_after_a_deploy_changed_its_rule_is_asked_again_and_does_not_run(
    db: DatabaseName, log: ToolLog
) -> None:
    thread, call = _asked(db, log)
    with open_harness(db, log, ONLY_CAROL) as parts:
        # bob may approve under the rules the call was asked under; the resume re-asks it
        parts.service.decide(thread, {call: "approve"}, actor="bob")
        view = parts.service.show(thread)
        trail = parts.service.audit(thread)
        assert [p.tool_call_id for p in view.pending] == [call]
        assert log.ids("send_email") == []
        reasked = trail[-1]
        assert _events(trail, call)[-2:] == ["decided", "re-requested"]
        assert reasked.detail["reason"] == "policy_changed"
        assert reasked.detail["voided"] == {"decision": "approve", "decided_by": "bob"}
        assert reasked.detail["rules"]["approvers"] == ["carol"]
        asked = next(e for e in trail if e.event == "requested")
        assert reasked.detail["recorded_why"] == asked.detail["why"]
        assert reasked.detail["why"]["rule_version"] != asked.detail["why"]["rule_version"]

        with pytest.raises(NotPermitted):  # the new rule holds now
            parts.service.decide(thread, {call: "approve"}, actor="bob")
        parts.service.decide(thread, {call: "approve"}, actor="carol")
        assert parts.service.show(thread).status == "done"
        assert parts.ledger.verify_audit().ok
    assert log.ids("send_email") == [call]


def test_with_keep_a_decision_is_applied_under_the_rule_it_was_asked_under_and_says_so_once(
    db: DatabaseName, log: ToolLog
) -> None:
    thread, call = _asked(db, log)
    with open_harness(db, log, ONLY_CAROL, extra=KEEP) as parts:
        parts.service.decide(thread, {call: "approve"}, actor="bob")
        assert parts.service.show(thread).status == "done"
        trail = parts.service.audit(thread)
        assert parts.ledger.verify_audit().ok
    assert log.ids("send_email") == [call]
    kept = [e for e in trail if e.event == "policy_changed"]
    assert len(kept) == 1  # the approval and tools nodes both met it: recorded once
    assert kept[0].detail["on_policy_change"] == "keep"
    asked = next(e for e in trail if e.event == "requested")
    assert kept[0].detail["recorded_why"] == asked.detail["why"]
    assert "re-requested" not in _events(trail, call)


def test_a_deploy_that_changed_only_another_tools_rule_does_not_re_ask(
    db: DatabaseName, log: ToolLog
) -> None:
    thread, call = _asked(db, log)
    with open_harness(db, log, OTHER_TOOL_CHANGED) as parts:
        parts.service.decide(thread, {call: "approve"}, actor="bob")
        trail = parts.service.audit(thread)
    assert log.ids("send_email") == [call]
    assert {"re-requested", "policy_changed"}.isdisjoint(e.event for e in trail)


def test_a_call_re_asked_under_a_rule_that_never_asks_is_approved_by_the_policy_and_runs(
    db: DatabaseName, log: ToolLog
) -> None:
    thread, call = _asked(db, log)
    with open_harness(db, log, NEVER_ASKED) as parts:
        parts.service.decide(thread, {call: "approve"}, actor="bob")
        trail = parts.service.audit(thread)
        assert parts.ledger.verify_audit().ok
    assert log.ids("send_email") == [call]
    assert _events(trail, call)[:3] == ["requested", "decided", "approved_by_policy"]
    by_policy = next(e for e in trail if e.event == "approved_by_policy")
    assert by_policy.detail["why"]["rule"] == "never"
    assert by_policy.detail["voided"] == {"decision": "approve", "decided_by": "bob"}


def test_a_call_its_deadline_approved_after_the_rule_changed_is_asked_again(
    db: DatabaseName, log: ToolLog
) -> None:
    clock = FakeClock()
    lenient = ToolRule(expires_after=timedelta(hours=1), on_expire="approve")
    with open_harness(db, log, Policy(rules={"send_email": lenient}), clock) as parts:
        view = parts.service.run(SALLY, actor="alice")
    call = view.pending[0].tool_call_id
    clock.advance(3601)
    with open_harness(db, log, ONLY_CAROL, clock) as parts:  # the sweep runs the new deploy
        parts.service.sweep()
        events = _events(parts.service.audit(view.thread_id), call)
        assert parts.service.show(view.thread_id).status == "interrupted"
    assert events == ["requested", "expired", "re-requested"]
    assert log.ids("send_email") == []


def test_a_rejection_stands_whatever_the_new_rule_says(db: DatabaseName, log: ToolLog) -> None:
    thread, call = _asked(db, log)
    with open_harness(db, log, NEVER_ASKED) as parts:
        parts.service.decide(thread, {call: {"type": "reject", "message": "no"}}, actor="bob")
        assert parts.service.show(thread).status == "done"
        events = _events(parts.service.audit(thread), call)
    assert log.ids("send_email") == []
    assert {"re-requested", "approved_by_policy", "policy_changed"}.isdisjoint(events)


def test_a_row_whose_why_was_changed_by_sql_is_named_and_not_re_asked(
    db: DatabaseName, log: ToolLog
) -> None:
    thread, call = _asked(db, log)
    execute(
        db,
        "UPDATE hitl_approvals SET why = ? WHERE tool_call_id = ?",
        ('{"rule":"interrupt_on","rule_version":"forged","policy_version":"forged"}', call),
    )
    with open_harness(db, log, ONLY_CAROL) as parts:
        report = parts.ledger.verify_audit()
        assert [b.thread_id for b in report.broken] == [thread]
        assert "why" in report.broken[0].problem
        record = parts.ledger.get(thread, call)
        assert record is not None
        with pytest.raises(LedgerTampered):
            parts.ledger.request(
                thread_id=thread,
                tool_call_id=call,
                interrupt_id=record.interrupt_id,
                tool=record.tool,
                args=record.args,
                requester=record.requester,
                needs_review=True,
                allowed_decisions=["approve"],
                description="",
                why={"rule": "interrupt_on", "rule_version": "new", "policy_version": "new"},
                reask=True,
            )


@pytest.mark.sqlite_only
def test_a_ledger_from_before_why_upgrades_and_its_calls_are_applied_as_recorded(
    tmp_path: Path,
) -> None:
    db = tmp_path / "hitl.sqlite"
    with open_ledger(db) as ledger:
        request_call(ledger, "t", "old")  # asked before `why` was recorded
        ledger.decide("t", {"old": {"type": "approve"}}, actor="bob")
    back_to_first_schema(db)

    with open_ledger(db) as ledger:
        record = ledger.get("t", "old")
        assert record is not None and record.why is None and record.status == "approved"
        again = ledger.request(
            thread_id="t",
            tool_call_id="old",
            interrupt_id=None,
            tool="send_email",
            args=record.args,
            requester="alice",
            needs_review=True,
            allowed_decisions=["approve"],
            description="",
            why={"rule": "interrupt_on", "rule_version": "new", "policy_version": "new"},
            reask=True,
        )
        assert again.status == "approved"  # no recorded version: nothing to compare
        assert [e.event for e in ledger.audit_trail("t")] == ["requested", "decided"]
        assert ledger.verify_audit().ok


REASKERS = 2
ROUNDS = 10


@pytest.mark.sqlite_only
def test_two_processes_re_asking_the_same_call_at_once_re_ask_it_once(tmp_path: Path) -> None:
    """Two `Ledger`s on one file, released together by a barrier, round after round."""
    db = tmp_path / "hitl.sqlite"
    old = {"rule": "interrupt_on", "rule_version": "v1", "policy_version": "p1"}
    new = {"rule": "interrupt_on", "rule_version": "v2", "policy_version": "p2"}
    with open_ledger(db) as first, open_ledger(db) as second:
        for n in range(ROUNDS):
            call = f"call-{n}"
            request_call(first, "t", call, why=old)
            first.decide("t", {call: {"type": "approve"}}, actor="bob")
            barrier = threading.Barrier(REASKERS)
            record = first.get("t", call)
            assert record is not None

            def reask(ledger: Any, call: str, args: dict[str, Any], barrier: Any) -> None:
                barrier.wait()
                ledger.request(
                    thread_id="t",
                    tool_call_id=call,
                    interrupt_id=None,
                    tool="send_email",
                    args=args,
                    requester="alice",
                    needs_review=True,
                    allowed_decisions=["approve", "reject"],
                    description="",
                    why=new,
                    reask=True,
                )

            threads = [
                threading.Thread(target=reask, args=(ledger, call, record.args, barrier))
                for ledger in (first, second)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            events = _events(first.audit_trail("t"), call)
            assert events == ["requested", "decided", "re-requested"], events
            reasked = first.get("t", call)
            assert reasked is not None and reasked.status == "pending" and reasked.why == new
        assert first.verify_audit().ok


def test_an_export_read_a_page_at_a_time_holds_every_entry_in_chain_order_and_verifies(
    tmp_path: Path,
) -> None:
    db = tmp_path / "hitl.sqlite"
    with open_ledger(db) as ledger:
        for thread in ("t-b", "t-a", "t-ü"):
            for n in range(3):
                request_call(ledger, thread, f"{thread}-{n}", args={"text": "ça, 東京", "x": 0.1})
                ledger.decide(thread, {f"{thread}-{n}": {"type": "reject"}}, actor="bob")
        exported = list(ledger.export_audit(page=4))
        one = list(ledger.export_audit("t-a", page=4))
    export = tmp_path / "audit.jsonl"
    export.write_text(
        "".join(json.dumps(e.to_export(), ensure_ascii=False) + "\n" for e in exported),
        encoding="utf-8",
    )
    verified = subprocess.run(
        [sys.executable, "-I", "-S", str(VERIFIER), str(export)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert [(e.thread_id, e.seq) for e in exported] == sorted(
        (t, n) for t in ("t-a", "t-b", "t-ü") for n in range(1, 7)
    )
    assert [(e.thread_id, e.seq) for e in one] == [("t-a", n) for n in range(1, 7)]
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "3 threads: every chain verifies" in verified.stdout
