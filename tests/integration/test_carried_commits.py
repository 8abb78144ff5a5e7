"""The ledger commits the checkpoint saver's buffered rows with its own (one sync where there
were two): the step before a tool is committed with the tool's start, the tool's step with
the run's end; what a failed or refused ledger write does to rows it carried; and what a
process killed between the tool's journaled result and the run's end leaves behind."""

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.memory import InMemorySaver

from hitl.app import assemble
from hitl.checkpoints.ledger import Ledger, open_ledger
from hitl.checkpoints.savers import BatchingSqliteSaver, open_saver
from hitl.graph.gate import bind_ledger
from hitl.graph.policy import Policy, ToolRule
from hitl.service.workflow import EveryPending
from tests.support.fakes import FakeClock, ToolLog, make_recording_tools
from tests.support.harness import (
    graph_without_ledger,
    hitl_settings,
    open_harness,
    open_test_service,
)
from tests.support.ledger import request_call
from tests.support.processes import kill_when_marked
from tests.support.prompts import COUNT, SALLY
from tests.support.sql import checkpoints_on_disk, looking_mid_tool

pytestmark = pytest.mark.sqlite_only  # the SQLite saver's transactions and the file itself


def _changes_per_commit(statements: list[str]) -> list[set[str]]:
    """The tables each committed write transaction changed, in commit order."""
    found: list[set[str]] = []
    tables: set[str] = set()
    for statement in statements:
        words = statement.split()
        verb = words[0].upper() if words else ""
        if verb in ("INSERT", "UPDATE", "DELETE", "REPLACE"):
            after = {"INSERT": "INTO", "REPLACE": "INTO", "DELETE": "FROM"}.get(verb)
            upper = [w.upper() for w in words]
            at = upper.index(after) + 1 if after in upper else 1
            tables.add(words[at].strip("(").lower())
        elif verb in ("COMMIT", "END"):
            if tables:
                found.append(tables)
            tables = set()
        elif verb in ("BEGIN", "ROLLBACK"):
            tables = set()
    return found


@contextmanager
def _every_statement(saver: BatchingSqliteSaver, ledger: Ledger) -> Iterator[list[str]]:
    """The statements of the saver's and the ledger's write connections, in the order run."""
    seen: list[str] = []
    lock = threading.Lock()

    def record(statement: str) -> None:
        with lock:
            seen.append(statement)

    saver.conn.set_trace_callback(record)
    ledger._conn.set_trace_callback(record)  # type: ignore[union-attr]
    try:
        yield seen
    finally:
        saver.conn.set_trace_callback(None)
        ledger._conn.set_trace_callback(None)  # type: ignore[union-attr]


def test_an_approved_cycle_commits_the_step_before_the_tool_with_its_start(
    db: Path, log: ToolLog
) -> None:
    with open_harness(db, log) as parts:
        view = parts.service.run(SALLY, actor="alice")
        call_id = view.pending[0].tool_call_id
        assert parts.saver.carried  # every tool is gated: the ledger may carry the steps
        parts.ledger.decide(view.thread_id, {call_id: {"type": "approve"}}, actor="bob")
        with _every_statement(parts.saver, parts.ledger) as statements:
            config: Any = {"configurable": {"thread_id": view.thread_id}}
            parts.graph.invoke(None, config, durability="sync")  # as the service runs it
        assert log.ids("send_email") == [call_id]

    commits = _changes_per_commit(statements)
    # the resume: the tool's start (with the step that schedules it), its result, the end
    # (with the tool step's writes); before, the step and the tool's writes committed alone
    assert len(commits) == 3, commits
    start, result, end = commits
    assert {"checkpoints", "writes", "hitl_approvals", "hitl_audit"} <= start
    assert result == {"hitl_approvals", "hitl_audit"}
    assert {"checkpoints", "writes"} <= end and not end & {"hitl_approvals", "hitl_audit"}


def test_an_approval_through_the_service_commits_six_times_and_leaves_it_marked_applied(
    db: Path, log: ToolLog
) -> None:
    with open_harness(db, log) as parts:
        with _every_statement(parts.saver, parts.ledger) as statements:
            view = parts.service.run(SALLY, actor="alice")
            call_id = view.pending[0].tool_call_id
            parts.service.decide(view.thread_id, {call_id: "approve"}, actor="bob")
        assert parts.ledger.unapplied_calls(view.thread_id) == set()
        assert log.ids("send_email") == [call_id]

    commits = _changes_per_commit(statements)
    # the interrupt (with the request and the steps before it), the decision, the tool's
    # start (with the resumed steps), its result, the end; then, the run over, the applied
    # mark (unsynced, where the lease's release was); leases themselves: none
    assert len(commits) == 6, commits
    assert commits[-1] == {"hitl_approvals"}
    asked = {"checkpoints", "writes", "hitl_approvals", "hitl_audit"}
    assert asked <= commits[0]
    assert not any("hitl_leases" in tables for tables in commits)


def test_a_long_running_saver_remembers_a_bounded_number_of_tool_steps(
    db: Path, log: ToolLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The saver notes which checkpoints schedule a tool (their writes commit at once): a
    note per approval cycle, the newest few thousand kept, not every one for ever."""
    monkeypatch.setattr("hitl.checkpoints.savers._commit_points.SIDE_EFFECT_STEPS_KEPT", 5)
    with open_harness(db, log) as parts:
        for n in range(20):
            view = parts.service.run(SALLY, f"t{n}", actor="alice")
            parts.service.decide(view.thread_id, EveryPending("approve"), actor="bob")
        assert len(log.ids("send_email")) == 20
        assert len(parts.saver._commit_points._side_effect_steps) == 5


def test_a_new_call_is_registered_in_the_commit_of_the_interrupt_that_asks_about_it(
    db: Path, log: ToolLog
) -> None:
    with open_harness(db, log) as parts:
        with _every_statement(parts.saver, parts.ledger) as statements:
            view = parts.service.run(SALLY, actor="alice")
        (pending,) = view.pending
        with sqlite3.connect(db) as conn:  # on disk, seen from another connection
            status = conn.execute(
                "SELECT status FROM hitl_approvals WHERE tool_call_id = ?",
                (pending.tool_call_id,),
            ).fetchone()
        assert status == ("pending",)
        assert parts.service.pending().items[0].tool_call_id == pending.tool_call_id

    commits = _changes_per_commit(statements)
    assert len(commits) == 1, commits  # the run's steps, its interrupt and the request
    assert {"checkpoints", "writes", "hitl_approvals", "hitl_audit"} <= commits[0]


def test_two_runners_registering_the_same_call_in_their_commits_register_it_once(
    db: Path,
) -> None:
    with (
        open_saver(db) as first_saver,
        open_ledger(db) as first,
        open_saver(db) as second_saver,
        open_ledger(db) as second,
    ):
        first_saver.commit_with(first)
        second_saver.commit_with(second)
        for ledger in (first, second):  # both see a new call, and preview its request
            saver = first_saver if ledger is first else second_saver
            request_call(ledger, "t", "a", committed_by=saver)
            assert ledger.get("t", "a") is None  # not written yet
        first_saver.flush()
        second_saver.flush()  # its request finds the row the first wrote, and keeps it
        record = first.get("t", "a")
        events = [e.event for e in first.audit_trail("t")]
    assert record is not None and record.status == "pending"
    assert events == ["requested"]


def test_a_request_committed_later_returns_the_row_its_commit_writes(db: Path) -> None:
    """The row a carried request returns is read, not written: it must be the one the
    interrupt's commit then writes, every column of it."""
    with open_saver(db) as saver, open_ledger(db, clock=FakeClock()) as ledger:
        saver.commit_with(ledger)
        asked = ledger.request(
            thread_id="t",
            tool_call_id="a",
            interrupt_id="i-1",
            tool="send_email",
            args={"recipient": "x@y.org", "body": "hi ünïcode"},
            requester="alice",
            needs_review=True,
            allowed_decisions=["approve", "edit", "reject"],
            description="Send it?",
            expires_after=60.0,
            approvers=["bob", "role:ops"],
            allow_self_approval=False,
            why={"rule": "send_email", "rule_version": "v1"},
            remind_after=10.0,
            escalate_after=20.0,
            escalate_to=["carol"],
            quorum=2,
            quorum_distinct_roles=True,
            reject_vetoes=False,
            committed_by=saver,
        )
        assert ledger.get("t", "a") is None  # not written yet: the interrupt's commit will
        saver.flush()
        assert ledger.get("t", "a") == asked


def test_an_answer_to_a_call_still_waiting_for_its_interrupts_commit_is_recorded(
    db: Path,
) -> None:
    """A resume value reaches the first interrupt that runs, even one whose call was only
    just registered (queued for the interrupt's commit): the decision must see that row."""
    with open_saver(db) as saver, open_ledger(db) as ledger:
        saver.commit_with(ledger)
        request_call(ledger, "t", "a", committed_by=saver)  # queued, not written yet
        record = ledger.answer_from_graph("t", "a", {"type": "approve"}, actor="bob")
        assert record.status == "approved"
        assert not saver.has_buffered()  # the request, and the rows before it, with it


def _buffer_one_checkpoint(saver: BatchingSqliteSaver, checkpoint_id: str) -> None:
    """Put a checkpoint that schedules a plain node: buffered, not committed."""
    checkpoint = empty_checkpoint()
    checkpoint["id"] = checkpoint_id
    checkpoint["channel_values"] = {"branch:to:agent": None}
    config: Any = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    saver.put(config, checkpoint, {}, {})
    assert saver.has_buffered()


def _approved_call(ledger: Ledger, call_id: str) -> list[tuple[str, dict[str, Any]]]:
    """A call of thread "t" the policy approves (written at once), as `begin` takes it."""
    args = {"recipient": f"{call_id}@x.org"}
    request_call(ledger, "t", call_id, args=args, needs_review=False)
    return [(call_id, args)]


def test_a_ledger_write_that_refuses_to_start_a_call_still_commits_the_rows_it_carried(
    db: Path,
) -> None:
    with open_saver(db) as saver, open_ledger(db) as ledger:
        saver.commit_with(ledger)
        calls = _approved_call(ledger, "a")
        assert ledger.begin("t", calls)["a"].action == "run"  # and still running, here
        _buffer_one_checkpoint(saver, "c1")
        assert ledger.begin("t", calls)["a"].action == "busy"  # refused: it writes nothing
        assert not saver.has_buffered()
        assert checkpoints_on_disk(db) == 1  # on disk, seen from another connection


def test_a_tools_start_commits_its_own_change_and_the_carried_rows_together(db: Path) -> None:
    with open_saver(db) as saver, open_ledger(db) as ledger:
        saver.commit_with(ledger)
        calls = _approved_call(ledger, "a")
        _buffer_one_checkpoint(saver, "c1")
        ledger.begin("t", calls)
        assert not saver.has_buffered()
        with sqlite3.connect(db) as conn:  # both on disk, seen from another connection
            status = conn.execute("SELECT status FROM hitl_approvals").fetchone()
        assert checkpoints_on_disk(db) == 1 and status == ("running",)


def test_a_decision_leaves_the_buffered_rows_to_their_own_commit(db: Path) -> None:
    """Only the tool's start carries them: a decision that did too would write the same pages
    of the checkpoint tables in one more commit."""
    with open_saver(db) as saver, open_ledger(db) as ledger:
        saver.commit_with(ledger)
        request_call(ledger, "t", "a")
        _buffer_one_checkpoint(saver, "c1")
        ledger.decide("t", {"a": {"type": "approve"}}, actor="bob")
        assert saver.has_buffered() and checkpoints_on_disk(db) == 0
        saver.flush()
        assert checkpoints_on_disk(db) == 1


class _FailingCarrier:
    """Rows that cannot be written (a checkpoint whose message is gone), or a commit that
    fails: what the ledger's write does with them."""

    def __init__(self, *, write_fails: bool) -> None:
        self.lock = threading.Lock()
        self.write_fails = write_fails
        self.buffer: list[Any] = ["row"]
        self.given_back: list[Any] = []

    def has_buffered(self) -> bool:
        return bool(self.buffer)

    def has_queued_writes(self) -> bool:
        return False

    def write_buffered(self, cur: sqlite3.Cursor) -> list[Any]:
        if self.write_fails:
            raise sqlite3.IntegrityError("a stored message this checkpoint follows is missing")
        cur.execute("CREATE TABLE IF NOT EXISTS carried (x)")
        cur.execute("INSERT INTO carried VALUES ('row')")
        taken, self.buffer = self.buffer, []
        return taken

    def give_back(self, taken: list[Any]) -> None:
        self.given_back += taken
        self.buffer = taken + self.buffer


def test_rows_that_cannot_be_written_stay_with_their_writer_and_the_ledger_write_goes_on(
    db: Path,
) -> None:
    with open_ledger(db) as ledger:
        carrier = _FailingCarrier(write_fails=True)
        ledger.carry(carrier)
        calls = _approved_call(ledger, "a")
        assert ledger.begin("t", calls)["a"].action == "run"
        record = ledger.get("t", "a")
        assert record is not None and record.status == "running"
        assert carrier.buffer == ["row"]


def test_a_ledger_write_that_fails_in_the_database_still_commits_the_rows_it_carried(
    db: Path,
) -> None:
    with open_ledger(db) as ledger:
        carrier = _FailingCarrier(write_fails=False)
        ledger.carry(carrier)
        calls = _approved_call(ledger, "a")
        ledger._conn.execute(  # type: ignore[union-attr]
            "CREATE TABLE IF NOT EXISTS carried (x)"
        )
        ledger._conn.execute(  # type: ignore[union-attr]
            "CREATE TRIGGER refuse AFTER INSERT ON hitl_audit "
            "BEGIN SELECT RAISE(ABORT, 'injected'); END"
        )
        with pytest.raises(sqlite3.IntegrityError, match="injected"):
            ledger.begin("t", calls)
        assert carrier.buffer == [] and carrier.given_back == []  # committed, not lost
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT COUNT(*) FROM carried").fetchone() == (1,)


def _approve_then_hang_after_the_result(
    db: Path, thread_id: str, call_id: str, marker: str
) -> None:
    original = Ledger.finish

    def finish_then_hang(self: Ledger, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        Path(marker).write_text("journaled")
        time.sleep(300)

    Ledger.finish = finish_then_hang  # type: ignore[method-assign]
    with open_test_service(db, ToolLog()) as service:
        service.decide(thread_id, {call_id: "approve"}, actor="bob")


@pytest.mark.slow
def test_a_process_killed_after_the_tools_result_was_journaled_resumes_with_that_result(
    db: Path, tmp_path: Path
) -> None:
    with open_test_service(db, ToolLog()) as service:
        view = service.run(SALLY, actor="alice")
    call_id = view.pending[0].tool_call_id
    marker = tmp_path / "journaled"
    args = (db, view.thread_id, call_id, str(marker))
    kill_when_marked(_approve_then_hang_after_the_result, args, marker)  # the step's writes:
    # not committed

    log = ToolLog()
    later = FakeClock(time.time() + 3600)  # the sweep's grace has passed
    with open_test_service(db, log, clock=later) as service:
        assert service.show(view.thread_id).status != "done"
        assert service.sweep().resumed == [view.thread_id]  # the decision was not applied
        done = service.show(view.thread_id)
    assert done.status == "done"
    assert log.calls == []  # not run again: the journal's result was taken
    result = next(m for m in done.messages if m.get("tool_call_id") == call_id)
    assert result["content"] == "sent to sally@example.com"


def test_a_run_on_another_checkpointer_gets_its_calls_registered_at_once(
    db: Path, log: ToolLog
) -> None:
    with open_harness(db, log) as parts:
        assert parts.saver.carried
        elsewhere = bind_ledger(graph_without_ledger(InMemorySaver(), log), parts.ledger)
        config: Any = {"configurable": {"thread_id": "t"}}
        elsewhere.invoke({"messages": [{"role": "user", "content": SALLY}]}, config)
        (record,) = parts.ledger.thread_records("t")
        assert record.status == "pending"  # on disk now: no commit of that saver will come
        assert not parts.saver.has_buffered()


def test_a_call_the_policy_lets_through_is_marked_applied_by_the_run_that_ran_it(
    db: Path, log: ToolLog
) -> None:
    with open_harness(db, log) as parts:
        view = parts.service.run(COUNT, actor="alice")  # registered in the tool's start commit
        (record,) = parts.ledger.thread_records(view.thread_id)
        assert (view.status, record.decided_by) == ("done", "policy")
        assert parts.ledger.unapplied_calls(view.thread_id) == set()
        assert parts.ledger.unapplied_threads(older_than=0) == []


def test_the_policy_is_asked_once_about_a_call_it_lets_through(db: Path) -> None:
    asked: list[dict[str, Any]] = []

    def ask_from_the_second_time(args: dict[str, Any]) -> bool:  # a quota, office hours...
        asked.append(args)
        return len(asked) > 1

    rules = {"count_emails": ToolRule(ask=ask_from_the_second_time), "send_email": ToolRule()}
    log = ToolLog()
    with open_harness(db, log, policy=Policy(rules=rules)) as parts:
        view = parts.service.run(COUNT, actor="alice")
        (record,) = parts.ledger.thread_records(view.thread_id)
    assert len(asked) == 1
    assert (view.status, record.status, record.decided_by) == ("done", "succeeded", "policy")
    assert log.ids("count_emails") == [record.tool_call_id]


def test_the_steps_before_the_tool_are_on_disk_even_while_another_run_holds_the_saver(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[int, str]] = []
    look_from_another_connection = looking_mid_tool(db, seen)

    rules = {"count_emails": ToolRule(ask="never"), "send_email": ToolRule()}
    log = ToolLog(before_run=look_from_another_connection)
    with open_harness(db, log, policy=Policy(rules=rules)) as parts:

        def while_another_run_commits(write: Callable[..., Any]) -> Callable[..., Any]:
            def contended(self: Ledger, *args: Any, **kwargs: Any) -> Any:
                held, done = threading.Event(), threading.Event()

                def another_run() -> None:  # its saver commit, holding the saver's lock
                    with parts.saver.lock:
                        held.set()
                        done.wait(0.2)

                other = threading.Thread(target=another_run)
                other.start()
                held.wait()
                try:
                    return write(self, *args, **kwargs)
                finally:
                    done.set()
                    other.join()

            return contended

        for name in ("request", "begin"):  # the call's writes before its tool starts
            monkeypatch.setattr(Ledger, name, while_another_run_commits(getattr(Ledger, name)))
        assert parts.service.run(COUNT, actor="alice").status == "done"
    ((checkpoints, status),) = seen
    assert status == "running" and checkpoints > 0  # the thread exists when its tool starts


def test_the_interrupt_is_heard_only_once_the_call_it_asks_about_is_on_disk(db: Path) -> None:
    rows_when_heard: list[list[tuple[str, str]]] = []

    def observer(thread_id: str, update: Callable[[], dict[str, Any]]) -> None:
        if "interrupts" in update():
            with sqlite3.connect(db) as conn:  # what another process sees at that moment
                rows_when_heard.append(
                    conn.execute("SELECT tool_call_id, status FROM hitl_approvals").fetchall()
                )

    tools = make_recording_tools(ToolLog())
    with assemble(hitl_settings(db), tools=tools, observer=observer) as parts:
        view = parts.service.run(SALLY, actor="alice")
    assert rows_when_heard == [[(view.pending[0].tool_call_id, "pending")]]


def test_a_saver_commit_that_fails_keeps_the_ledgers_queued_request_for_the_next(
    db: Path,
) -> None:
    with open_saver(db) as saver, open_ledger(db) as ledger:
        saver.commit_with(ledger)
        request_call(ledger, "t", "a", committed_by=saver)  # queued, not written
        saver._buffer.append(("INSERT INTO no_such_table VALUES (?)", [(1,)]))  # rows that fail
        with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
            saver.flush()
        saver.flush()  # the failed rows are gone with their commit; the request is not
        record = ledger.get("t", "a")
    assert record is not None and record.status == "pending"
