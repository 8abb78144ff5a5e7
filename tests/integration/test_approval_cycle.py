"""The approval graph on a file database: what runs, when, what is refused, and what survives
a restart."""

import contextlib
import threading
import time
from pathlib import Path

import pytest
from langgraph.types import Command

from hitl.checkpoints.savers import open_saver
from hitl.checkpoints.urls import DatabaseName
from hitl.graph.policy import Policy, ToolRule
from hitl.service.errors import AlreadyDecided, InvalidDecision, NothingPending, ThreadNotFound
from hitl.service.workflow import EveryPending
from tests.support.fakes import ToolLog
from tests.support.harness import open_harness, open_test_service
from tests.support.prompts import SALLY, TWO_EMAILS
from tests.support.sql import checkpoint_table, execute


def _latest_reviews_on_disk(db: DatabaseName, thread_id: str) -> dict[str, dict[str, object]]:
    """The reviews (`hitl_reviews`) of the newest committed checkpoint, read by a saver of its
    own (its own connection, as another process would)."""
    with open_saver(db) as saver:
        found = saver.get_tuple({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}})
    assert found is not None
    return dict(found.checkpoint["channel_values"].get("hitl_reviews", {}))


def _rows_of(db: DatabaseName, thread_id: str) -> list[int]:
    """The thread's checkpoint, write and message rows, counted on a connection of their own."""
    return [
        int(execute(db, f"SELECT COUNT(*) FROM {table} WHERE thread_id = ?", (thread_id,))[0][0])
        for table in ("checkpoints", checkpoint_table(db, "writes"), "hitl_messages")
    ]


def test_the_approved_decision_is_on_disk_before_the_tool_starts(db: Path, log: ToolLog) -> None:
    seen_on_disk: dict[str, object] = {}
    with open_test_service(db, log) as service:
        view = service.run(SALLY, actor="alice")
        call_id = view.pending[0].tool_call_id

        def check_disk(name: str, tool_call_id: str) -> None:
            seen_on_disk.update(_latest_reviews_on_disk(db, view.thread_id).get(tool_call_id, {}))

        log.before_run = check_disk
        service.decide(view.thread_id, {call_id: "approve"}, actor="alice")
    assert seen_on_disk["decision"] == "approve"
    assert log.ids("send_email") == [call_id]


def test_sibling_calls_each_run_once_and_only_after_every_call_is_decided(
    db: Path, log: ToolLog
) -> None:
    with open_test_service(db, log) as service:
        view = service.run(TWO_EMAILS, actor="alice")
        first, second = (p.tool_call_id for p in view.pending)
        assert len(view.pending) == 2 and log.calls == []  # count_emails waits for the turn

        service.decide(view.thread_id, {first: "approve"}, actor="alice")

        partial = service.show(view.thread_id)
        assert partial.status == "interrupted"
        assert [p.tool_call_id for p in partial.pending] == [second]
        assert log.calls == []

    with open_test_service(db, log) as service:  # another process decides the rest
        service.decide(view.thread_id, {second: {"type": "reject", "message": "no"}}, actor="alice")
        done = service.show(view.thread_id)
    assert done.status == "done"
    assert sorted(log.ids()) == sorted([first, *log.ids("count_emails")])
    assert len(log.ids("count_emails")) == 1
    assert second not in log.ids()


def test_rejected_call_never_runs_even_after_a_restart(db: Path, log: ToolLog) -> None:
    with open_test_service(db, log) as service:
        view = service.run(SALLY, actor="alice")
        service.decide(
            view.thread_id, EveryPending({"type": "reject", "message": "not today"}), actor="alice"
        )
    with open_test_service(db, log) as service:
        after = service.show(view.thread_id)
        with pytest.raises(NothingPending):
            service.decide(view.thread_id, EveryPending("approve"), actor="alice")
    assert after.status == "done"
    assert "not today" in (after.answer or "")
    assert log.calls == []


def test_edited_call_runs_with_exactly_the_edited_args_and_the_model_is_told(
    db: Path, log: ToolLog
) -> None:
    with open_test_service(db, log) as service:
        view = service.run(SALLY, actor="alice")
        call_id = view.pending[0].tool_call_id
        edit = service.edit_answer(
            view.thread_id, call_id, {"message": "hello", "recipient": "s@x.org"}
        )
        service.decide(view.thread_id, {call_id: edit}, actor="alice")
        done = service.show(view.thread_id)
    assert log.calls == [("send_email", call_id, {"message": "hello", "recipient": "s@x.org"})]
    result = next(m for m in done.messages if m.get("tool_call_id") == call_id)
    told = str(result["content"])
    assert "reviewer replaced this tool call" in told
    assert 'Executed instead: send_email with arguments {"message": "hello"' in told


def test_respond_answer_becomes_the_tool_result_without_running_it(db: Path, log: ToolLog) -> None:
    with open_test_service(db, log) as service:
        view = service.run(SALLY, actor="alice")
        call_id = view.pending[0].tool_call_id
        service.decide(
            view.thread_id, {call_id: {"type": "respond", "message": "sent it"}}, actor="alice"
        )
        done = service.show(view.thread_id)
    result = next(m for m in done.messages if m.get("tool_call_id") == call_id)
    assert result["content"] == "sent it" and result["status"] == "success"
    assert log.calls == []


def test_a_second_answer_to_a_decided_call_is_refused_and_nothing_reruns(
    db: Path, log: ToolLog
) -> None:
    with open_test_service(db, log) as service:
        view = service.run(TWO_EMAILS, actor="alice")
        first = view.pending[0].tool_call_id
        service.decide(view.thread_id, {first: "approve"}, actor="alice")
        with pytest.raises(AlreadyDecided, match="already decided"):
            service.decide(view.thread_id, {first: "reject"}, actor="alice")
        service.decide(view.thread_id, EveryPending("approve"), actor="alice")
        with pytest.raises(AlreadyDecided):
            service.decide(view.thread_id, {first: "approve"}, actor="alice")
    assert sorted(log.ids("send_email")) == sorted(p.tool_call_id for p in view.pending)


def test_an_invalid_resume_sent_straight_to_langgraph_decides_nothing_and_asks_again(
    db: Path, log: ToolLog
) -> None:
    with open_harness(db, log) as parts:
        view = parts.service.run(SALLY, actor="alice")
        graph = parts.graph
        config = {"configurable": {"thread_id": view.thread_id}}
        bad = {"type": "edit", "edited_action": {"name": "delete_everything", "args": {}}}
        graph.invoke(Command(resume={"decisions": [bad]}), config, durability="sync")
        after = parts.service.show(view.thread_id)
        record = parts.ledger.get(view.thread_id, view.pending[0].tool_call_id)
    assert after.status == "interrupted" and log.calls == []
    assert [p.tool_call_id for p in after.pending] == [view.pending[0].tool_call_id]
    assert record is not None and record.status == "pending"


@pytest.mark.sqlite_only
def test_runs_leave_nothing_buffered_or_locked(db: Path, log: ToolLog) -> None:
    with open_harness(db, log) as parts:
        view = parts.service.run(SALLY, actor="alice")
        parts.service.decide(view.thread_id, EveryPending("approve"), actor="alice")
        saver = parts.saver
        on_disk = _rows_of(db, view.thread_id)  # read by another connection: what is committed
        assert not saver.conn.in_transaction
        saver.flush()  # writes whatever is still buffered
        assert _rows_of(db, view.thread_id) == on_disk
        pragmas = {
            name: saver.conn.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("journal_mode", "synchronous", "busy_timeout")
        }
    assert pragmas == {"journal_mode": "wal", "synchronous": 2, "busy_timeout": 30000}


def test_a_thread_never_shows_done_while_its_run_is_in_progress(db: DatabaseName) -> None:
    """Read by another process's service while runs go: between a checkpoint and the next
    one a run has saved writes not applied yet (visible at once where every row commits at
    once, on PostgreSQL); that is unfinished, not done."""
    seen: set[str] = set()

    def watch(thread_id: str, stop: threading.Event) -> None:
        with open_test_service(db, ToolLog()) as watcher:
            while not stop.is_set():
                with contextlib.suppress(ThreadNotFound):
                    seen.add(watcher.show(thread_id).status)

    for n in range(10):
        thread_id, stop = f"watched-{n}", threading.Event()
        watching = threading.Thread(target=watch, args=(thread_id, stop))
        with open_test_service(db, ToolLog()) as service:
            watching.start()
            time.sleep(0.05)  # the watcher is reading before the run starts
            service.run(SALLY, thread_id, actor="alice")
            stop.set()
            watching.join()
    assert "done" not in seen
    assert "interrupted" in seen


def test_text_that_is_not_utf8_is_refused_with_a_clear_error(db: Path, log: ToolLog) -> None:
    with open_test_service(db, log) as service:
        with pytest.raises(InvalidDecision, match="not valid UTF-8"):
            service.run("caf\udce9", actor="alice")
        view = service.run(SALLY, actor="alice")
        call_id = view.pending[0].tool_call_id
        with pytest.raises(InvalidDecision, match="not valid UTF-8"):
            service.decide(
                view.thread_id, {call_id: {"type": "reject", "message": "\ud800"}}, actor="b"
            )
        assert service.show(view.thread_id).pending[0].status == "pending"


def test_cancelling_calls_whose_policy_does_not_offer_reject_still_works(
    db: Path, log: ToolLog
) -> None:
    policy = Policy(rules={"send_email": ToolRule(allowed_decisions=("approve", "edit"))})
    with open_test_service(db, log, policy) as service:
        view = service.run(SALLY, actor="alice")
        after = service.run("never mind", view.thread_id, actor="alice", cancel_pending=True)
    assert after.status == "done" and log.calls == []
