"""The ledger as a state machine, driven by hypothesis; and the examples it found, kept as plain
tests."""

from pathlib import Path

import pytest

from hitl.checkpoints.errors import LedgerTampered
from hitl.checkpoints.ledger import open_ledger
from tests.support.ledger import request_call
from tests.support.sql import execute

# what the machine found, kept as plain examples


def test_a_pending_call_whose_args_were_changed_by_sql_is_named_and_never_asked_about_for_ever(
    tmp_path: Path,
) -> None:
    db = tmp_path / "hitl.sqlite"
    with open_ledger(db) as ledger:
        request_call(ledger, "t", "a", args={"n": 1})
        execute(db, "UPDATE hitl_approvals SET args = '{\"n\":2}'")
        report = ledger.verify_audit()
        ledger.decide("t", {"a": {"type": "approve"}}, actor="bob")  # what the person was shown
        # the graph runs the args it asked about; before, `ask` here and a request that
        # returned the row as it was sent the call back and forth for ever
        with pytest.raises(LedgerTampered, match="'a'"):
            ledger.begin("t", [("a", {"n": 1})])
    assert [b.thread_id for b in report.broken] == ["t"]
    assert "call a" in report.broken[0].problem


@pytest.mark.parametrize("status", ["running", "succeeded", "failed", "outcome_unknown"])
def test_an_approved_call_marked_as_started_by_sql_is_named(tmp_path: Path, status: str) -> None:
    db = tmp_path / "hitl.sqlite"
    with open_ledger(db) as ledger:
        request_call(ledger, "t", "a")
        ledger.decide("t", {"a": {"type": "approve"}}, actor="bob")
        execute(db, "UPDATE hitl_approvals SET status = ?", (status,))
        report = ledger.verify_audit()
    assert [b.thread_id for b in report.broken] == ["t"]
    assert f"call a is {status}" in report.broken[0].problem


@pytest.mark.parametrize("status", ["approved", "running", "outcome_unknown"])
def test_a_finished_call_set_back_by_sql_is_named_and_does_not_run_again(
    tmp_path: Path, status: str
) -> None:
    db = tmp_path / "hitl.sqlite"
    args = {"recipient": "a@x.org"}
    with open_ledger(db) as ledger:
        request_call(ledger, "t", "a", args=args)
        ledger.decide("t", {"a": {"type": "approve"}}, actor="bob")
        assert ledger.begin("t", [("a", args)])["a"].action == "run"
        ledger.finish("t", "a", ok=True, result="sent")
        execute(db, "UPDATE hitl_approvals SET status = ?, runner = NULL", (status,))
        report = ledger.verify_audit()
        with pytest.raises(LedgerTampered):
            ledger.begin("t", [("a", args)])  # approved, before: `run`, a second time
    assert [b.thread_id for b in report.broken] == ["t"]


def test_a_turn_with_a_call_busy_elsewhere_tells_no_call_to_run(tmp_path: Path) -> None:
    with open_ledger(tmp_path / "hitl.sqlite") as ledger:
        request_call(ledger, "t", "a", args={"n": 1}, needs_review=False)
        request_call(ledger, "t", "b", args={"n": 2}, needs_review=False)
        ledger.begin("t", [("b", {"n": 2})])  # b runs (this process, still live)
        turn = ledger.begin("t", [("a", {"n": 1}), ("b", {"n": 2})])
        a = ledger.get("t", "a")
    assert a is not None and a.status == "approved"  # not started: the turn was rolled back
    assert turn["a"].action == "busy"  # before: `run`, for a start that was never recorded
