"""A row written into the database by someone else is refused before anything runs: a
checkpoint that names code to import or call, a pickle, an approval nobody gave."""

import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import ormsgpack
import pytest

from hitl.checkpoints.errors import UntrustedCheckpointError
from hitl.checkpoints.urls import DatabaseName
from hitl.graph.policy import Policy, ToolRule
from hitl.service.errors import LedgerTampered
from tests.support.fakes import ToolLog
from tests.support.harness import open_harness, open_test_service
from tests.support.prompts import SALLY
from tests.support.sql import database_fingerprint, execute

EXT_CONSTRUCTOR_POS_ARGS = 1  # LangGraph's msgpack tag for "import module.name, call it with args"


def _forge_newest_checkpoint(db: Path, thread_id: str, payload: tuple[str, bytes]) -> None:
    conn = sqlite3.connect(db)
    with conn:
        row = conn.execute(
            "SELECT checkpoint_ns, checkpoint_id, metadata FROM checkpoints WHERE thread_id = ? "
            "ORDER BY checkpoint_id DESC LIMIT 1",
            (thread_id,),
        ).fetchone()
        conn.execute(
            "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, "
            "parent_checkpoint_id, type, checkpoint, metadata) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (thread_id, row[0], row[1][:-1] + "z", row[1], *payload, row[2]),
        )
    conn.close()


def _checkpoint_calling(module: str, name: str, args: list[object]) -> bytes:
    ext = ormsgpack.Ext(EXT_CONSTRUCTOR_POS_ARGS, ormsgpack.packb((module, name, args)))
    return ormsgpack.packb(
        {
            "v": 4,
            "id": "forged",
            "ts": "2026-01-01T00:00:00+00:00",
            "channel_values": {"messages": ext},
            "channel_versions": {},
            "versions_seen": {},
        }
    )


@pytest.mark.sqlite_only  # forges the SQLite file's checkpoint rows
def test_a_forged_row_naming_os_system_is_refused_and_nothing_runs(
    tmp_path: Path, db: Path, log: ToolLog
) -> None:
    marker = tmp_path / "pwned"
    with open_test_service(db, log) as service:
        thread_id = service.run(SALLY, actor="alice").thread_id
    _forge_newest_checkpoint(
        db, thread_id, ("msgpack", _checkpoint_calling("os", "system", [f"touch {marker}"]))
    )
    with open_test_service(db, log) as service, pytest.raises(UntrustedCheckpointError) as error:
        service.show(thread_id)
    assert "os.system" in str(error.value) and "nothing was imported or called" in str(error.value)
    assert not marker.exists()


EXT_DELTA_SNAPSHOT = 7  # LangGraph's msgpack tag for "a channel's value, kept whole"


def _newest_checkpoint_blob(db: Path, thread_id: str) -> bytes:
    (blob,) = execute(
        db,
        "SELECT checkpoint FROM checkpoints WHERE thread_id = ? AND type = 'msgpack' "
        "ORDER BY checkpoint_id DESC LIMIT 1",
        (thread_id,),
    )[0]
    return bytes(blob)


@pytest.mark.sqlite_only  # forges the SQLite file's checkpoint rows
@pytest.mark.parametrize("wrapped", ["a call of os.system", "a whole checkpoint"])
def test_a_forged_row_wrapped_in_a_delta_snapshot_is_refused_and_nothing_runs(
    tmp_path: Path, db: Path, log: ToolLog, wrapped: str
) -> None:
    marker = tmp_path / "pwned"
    with open_test_service(db, log) as service:
        thread_id = service.run(SALLY, actor="alice").thread_id
    if wrapped == "a call of os.system":
        inner = _checkpoint_calling("os", "system", [f"touch {marker}"])
    else:
        inner = _newest_checkpoint_blob(db, thread_id)
    forged = ormsgpack.packb(ormsgpack.Ext(EXT_DELTA_SNAPSHOT, inner))
    _forge_newest_checkpoint(db, thread_id, ("msgpack", forged))
    with open_test_service(db, log) as service, pytest.raises(UntrustedCheckpointError) as error:
        service.show(thread_id)
    assert not marker.exists() and log.calls == []
    assert ("os.system" if "os.system" in wrapped else "delta snapshot") in str(error.value)


@pytest.mark.sqlite_only  # forges the SQLite file's checkpoint rows
def test_a_pickled_row_is_refused_without_unpickling(
    tmp_path: Path, db: Path, log: ToolLog
) -> None:
    with open_test_service(db, log) as service:
        thread_id = service.run(SALLY, actor="alice").thread_id
    # a pickle that would call os.system if it were ever loaded
    marker = tmp_path / "pwned"
    evil = b"cos\nsystem\n(V" + f"touch {marker}".encode() + b"\ntR."
    _forge_newest_checkpoint(db, thread_id, ("pickle", evil))
    with (
        open_test_service(db, log) as service,
        pytest.raises(UntrustedCheckpointError, match="pickle"),
    ):
        service.show(thread_id)
    assert not marker.exists()


def test_a_row_forged_to_approved_is_refused_and_reported(db: Path, log: ToolLog) -> None:
    with open_test_service(db, log) as service:
        view = service.run(SALLY, actor="alice")
        call_id = view.pending[0].tool_call_id
    execute(
        db,
        "UPDATE hitl_approvals SET status = 'approved', decided_by = 'carol', "
        'decision = \'{"type":"approve"}\', approved_args_hash = args_hash',
    )
    with open_test_service(db, log) as service:
        report = service.verify_audit()
        with pytest.raises(LedgerTampered):
            service.resume(view.thread_id)
    assert log.calls == []
    assert [(b.thread_id, "no approval" in b.problem) for b in report.broken] == [
        (view.thread_id, True)
    ]
    assert call_id in report.broken[0].problem


_FLIP_REJECTED_TO_APPROVED = (
    "UPDATE hitl_approvals SET status = 'approved', decision = '{\"type\":\"approve\"}' "
    "WHERE status = 'rejected'"
)
"""What a hand edit of a rejected call makes of it: approved, its approved hash left empty."""


def test_a_rejected_call_flipped_to_approved_is_named_and_its_resume_stops(
    db: DatabaseName, log: ToolLog
) -> None:
    with open_harness(db, log) as parts:
        view = parts.service.run(SALLY, actor="alice")
        call_id = view.pending[0].tool_call_id
        reject = {"type": "reject", "message": "no"}
        parts.ledger.decide(view.thread_id, {call_id: reject}, actor="bob")  # not resumed yet
    execute(db, _FLIP_REJECTED_TO_APPROVED)
    with open_test_service(db, log) as service:
        report = service.verify_audit()
        with pytest.raises(LedgerTampered, match=call_id):
            service.resume(view.thread_id)
    assert log.calls == []
    assert [b.thread_id for b in report.broken] == [view.thread_id]
    assert call_id in report.broken[0].problem


def test_a_rejected_call_flipped_to_approved_after_it_was_applied_is_named(
    db: DatabaseName, log: ToolLog
) -> None:
    with open_test_service(db, log) as service:
        view = service.run(SALLY, actor="alice")
        call_id = view.pending[0].tool_call_id
        service.decide(view.thread_id, {call_id: {"type": "reject", "message": "no"}}, actor="bob")
    execute(db, _FLIP_REJECTED_TO_APPROVED)
    with open_test_service(db, log) as service:
        report = service.verify_audit()
    assert [b.thread_id for b in report.broken] == [view.thread_id]
    assert call_id in report.broken[0].problem and "rejected" in report.broken[0].problem


@pytest.mark.sqlite_only  # forges the SQLite file's checkpoint rows
def test_a_decision_on_a_thread_whose_checkpoint_is_refused_records_nothing(
    tmp_path: Path, db: Path, log: ToolLog
) -> None:
    marker = tmp_path / "pwned"
    with open_test_service(db, log) as service:
        view = service.run(SALLY, actor="alice")
    forged = _checkpoint_calling("os", "system", [f"touch {marker}"])
    _forge_newest_checkpoint(db, view.thread_id, ("msgpack", forged))
    before = database_fingerprint(db)
    with open_test_service(db, log) as service, pytest.raises(UntrustedCheckpointError):
        service.decide(
            view.thread_id, {view.pending[0].tool_call_id: {"type": "approve"}}, actor="bob"
        )
    assert database_fingerprint(db) == before
    assert not marker.exists() and log.calls == []


def test_a_finished_call_set_to_outcome_unknown_by_sql_is_not_retried_by_a_reconcile(
    db: DatabaseName, log: ToolLog
) -> None:
    """A forged "outcome unknown" would have a person retry, and so run again, a call that
    finished: the reconcile checks the row against its chain first, as a start does."""
    with open_test_service(db, log) as service:
        view = service.run(SALLY, actor="alice")
        call_id = view.pending[0].tool_call_id
        service.decide(view.thread_id, {call_id: "approve"}, actor="bob")
    execute(db, "UPDATE hitl_approvals SET status = 'outcome_unknown' WHERE status = 'succeeded'")
    with open_test_service(db, log) as service:
        with pytest.raises(LedgerTampered, match=call_id):
            service.reconcile(view.thread_id, call_id, "retry", actor="carol")
        report = service.verify_audit()
    assert log.ids("send_email") == [call_id]  # once, before the forgery
    assert [b.thread_id for b in report.broken] == [view.thread_id]


def _asked_with_rules(service: Any) -> tuple[str, str]:
    view = service.run(SALLY, actor="alice")
    return view.thread_id, view.pending[0].tool_call_id


def test_a_deadline_rule_flipped_to_approve_by_sql_is_named_and_the_sweep_does_not_approve(
    db: DatabaseName, log: ToolLog
) -> None:
    rule = ToolRule(ask="always", expires_after=timedelta(seconds=0), on_expire="reject")
    policy = Policy(rules={"send_email": rule})
    with open_harness(db, log, policy) as parts:
        thread_id, call_id = _asked_with_rules(parts.service)
    execute(db, "UPDATE hitl_approvals SET on_expire = 'approve'")
    with open_harness(db, log, policy) as parts:
        parts.service.sweep()
        record = parts.ledger.get(thread_id, call_id)
        report = parts.service.verify_audit()
    assert log.calls == []  # the forged rule approved nothing
    assert record is not None and record.status == "pending"
    assert [b.thread_id for b in report.broken] == [thread_id]
    assert "on_expire" in report.broken[0].problem


def test_approvers_widened_by_sql_are_named_and_a_decision_under_them_is_refused(
    db: DatabaseName, log: ToolLog
) -> None:
    policy = Policy(rules={"send_email": ToolRule(ask="always", approvers=("bob",))})
    with open_harness(db, log, policy) as parts:
        thread_id, call_id = _asked_with_rules(parts.service)
    execute(db, "UPDATE hitl_approvals SET approvers = NULL")  # anyone may now approve
    with open_harness(db, log, policy) as parts:
        with pytest.raises(LedgerTampered, match="approvers"):
            parts.service.decide(thread_id, {call_id: "approve"}, actor="mallory")
        report = parts.service.verify_audit()
    assert log.calls == []
    assert [b.thread_id for b in report.broken] == [thread_id]
