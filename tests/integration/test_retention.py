"""`prune` on either backend: what it keeps, what it never touches, and the space it frees."""

import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig

from hitl.app import Assembly
from hitl.checkpoints.database import store_connection
from hitl.checkpoints.ledger import mark_done, mark_live, new_token, open_ledger
from hitl.checkpoints.maintenance import Pruner, file_bytes, prune
from hitl.checkpoints.savers import make_strict_serializer, open_saver
from hitl.checkpoints.stores import open_run_queue
from hitl.checkpoints.urls import DatabaseName, is_postgres
from hitl.service.errors import ThreadNotFound
from hitl.service.workflow import ApprovalService, EveryPending
from tests.support.fakes import ToolLog
from tests.support.harness import graph_without_ledger, open_harness, open_test_service
from tests.support.postgres import fresh_database, paused_at_first_delete
from tests.support.prompts import COUNT, SALLY, TWO_EMAILS
from tests.support.sql import checkpoint_table, database_fingerprint, execute, tables

LATER = 3600.0
"""How far the tests move the clock for `older_than`."""
THREAD_TABLES = (
    "checkpoints",
    "writes",
    "checkpoint_writes",
    "checkpoint_blobs",
    "hitl_messages",
    "hitl_approvals",
    "hitl_audit",
    "hitl_leases",
    "hitl_runs",
)


class Died(BaseException):
    """The process running a tool dies: nothing after the tool's start is recorded."""


def thread_rows(db: DatabaseName, thread_id: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the thread, in every table that has one (absent tables skipped)."""
    present = tables(db)
    return {
        table: sorted(
            execute(db, f"SELECT * FROM {table} WHERE thread_id = ?", (thread_id,)), key=repr
        )
        for table in THREAD_TABLES
        if table in present
    }


def count(db: DatabaseName, table: str, thread_id: str) -> int:
    """Rows of the thread in `table` (`writes`: LangGraph's writes table on either backend)."""
    table = checkpoint_table(db, table)
    return int(execute(db, f"SELECT COUNT(*) FROM {table} WHERE thread_id = ?", (thread_id,))[0][0])


def config(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}}


def state_of(parts: Assembly, thread_id: str) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The thread's values (its messages read now, while the database is open) and next."""
    snapshot = parts.graph.get_state(config(thread_id))
    values = dict(snapshot.values)
    values["messages"] = list(values.get("messages", []))
    return values, snapshot.next


def finished_thread(service: ApprovalService) -> str:
    """A thread whose two emails were approved and sent: done."""
    view = service.run(TWO_EMAILS, actor="alice")
    service.decide(view.thread_id, EveryPending("approve"), actor="bob")
    assert service.show(view.thread_id).status == "done"
    return view.thread_id


def crashed_mid_tool(db: Path) -> str:
    """A thread whose approved tool was running when its process died."""

    def die(name: str, tool_call_id: str) -> None:
        raise Died

    with open_test_service(db, ToolLog(before_run=die)) as service:
        view = service.run(SALLY, actor="alice")
        with pytest.raises(Died):
            service.decide(view.thread_id, EveryPending("approve"), actor="bob")
    return view.thread_id


def test_pruning_keeps_only_the_newest_checkpoint_of_a_finished_thread_and_the_same_state(
    db: Path, log: ToolLog
) -> None:
    with open_harness(db, log) as parts:
        service = parts.service
        done = finished_thread(service)
        before = state_of(parts, done)
        shown = service.show(done)
        assert len(service.history(done)) > 1

    report = prune(db)

    assert (report.threads_examined, report.threads_trimmed) == (1, 1)
    assert report.checkpoints_deleted > 0 and report.writes_deleted > 0
    assert count(db, "checkpoints", done) == 1
    with open_harness(db, log) as parts:
        service = parts.service
        assert state_of(parts, done) == before
        assert service.show(done) == shown
        assert len(service.history(done)) == 1
    assert prune(db).kept == {"already_pruned": 1}  # a second prune finds nothing to do


def test_trimming_deletes_the_messages_of_an_abandoned_branch_and_keeps_the_conversation(
    db: Path, log: ToolLog
) -> None:
    with open_harness(db, log) as parts:
        service = parts.service
        thread_id = service.run(COUNT, actor="alice").thread_id
        graph = parts.graph
        first_turn = next(
            s for s in graph.get_state_history(config(thread_id)) if s.next == ("model",)
        )
        # time travel: answer the first message differently; the first answer is abandoned
        graph.update_state(
            first_turn.config, {"messages": [HumanMessage("the last 5 days, please")]}, "__start__"
        )
        service.resume(thread_id)
        values, pending = state_of(parts, thread_id)
    assert pending == ()
    stored = count(db, "hitl_messages", thread_id)
    assert stored > len(values["messages"])  # the abandoned branch is still stored

    report = prune(db)

    assert report.messages_deleted == stored - len(values["messages"])
    assert count(db, "hitl_messages", thread_id) == len(values["messages"])
    with open_harness(db, log) as parts:
        assert state_of(parts, thread_id) == (values, ())


def test_threads_that_wait_or_run_are_left_byte_for_byte_and_the_pending_one_resumes_once(
    db: Path, log: ToolLog
) -> None:
    unknown = crashed_mid_tool(db)
    with open_test_service(db, log) as service:
        service.pending()  # flags the dead call `outcome_unknown`
    running = crashed_mid_tool(db)  # nobody looked yet: its call is still `running`
    with open_test_service(db, log) as service:
        pending = service.run(SALLY, actor="alice")
        done = finished_thread(service)
    held = {t: thread_rows(db, t) for t in (unknown, running, pending.thread_id)}

    report = prune(db, older_than=0.0, clock=lambda: time.time() + LATER)

    assert report.threads_deleted == 1 and count(db, "checkpoints", done) == 0
    assert report.kept == {"pending": 1, "running": 1, "unsettled": 1}
    assert {t: thread_rows(db, t) for t in held} == held
    assert prune(db).kept == report.kept  # nor does trimming touch them
    assert {t: thread_rows(db, t) for t in held} == held
    after = ToolLog()
    with open_test_service(db, after) as service:
        call = pending.pending[0].tool_call_id
        service.decide(pending.thread_id, EveryPending("approve"), actor="bob")
        assert service.show(pending.thread_id).status == "done"
    assert after.ids("send_email") == [call]


@pytest.mark.parametrize(
    ("decided", "reason"), [(False, "pending"), (True, "unsettled")], ids=["pending", "unapplied"]
)
def test_a_thread_the_ledger_holds_back_is_kept_even_if_its_checkpoint_looks_finished(
    db: Path, log: ToolLog, decided: bool, reason: str
) -> None:
    with open_harness(db, log) as parts:
        service = parts.service
        parts.saver.copy_thread(finished_thread(service), "copy")
    with open_ledger(db) as ledger:  # a call the checkpoints do not show (another runtime's)
        ledger.request(
            thread_id="copy",
            tool_call_id="call-1",
            interrupt_id=None,
            tool="send_email",
            args={"recipient": "sally@example.com", "message": "hi"},
            requester="alice",
            needs_review=True,
            allowed_decisions=["approve", "reject"],
            description="",
        )
        if decided:  # decided, and no run has applied it yet
            ledger.decide("copy", {"call-1": {"type": "approve"}}, actor="bob")
    before = thread_rows(db, "copy")

    report = prune(db, older_than=0.0, clock=lambda: time.time() + LATER)

    assert (report.threads_deleted, report.kept) == (1, {reason: 1})
    assert thread_rows(db, "copy") == before


def test_a_thread_whose_checkpoint_waits_or_stopped_midway_is_kept_even_without_ledger_rows(
    db: Path, log: ToolLog
) -> None:
    crashed = crashed_mid_tool(db)
    with open_harness(db, log) as parts:
        service = parts.service
        waiting = service.run(SALLY, actor="alice").thread_id
        for source in (crashed, waiting):  # the copies have no ledger rows: only the checkpoints
            parts.saver.copy_thread(source, f"copy-of-{source}")  # say what they are
    copies = [f"copy-of-{crashed}", f"copy-of-{waiting}"]
    before = {t: thread_rows(db, t) for t in copies}

    report = prune(db, older_than=0.0, clock=lambda: time.time() + LATER)

    assert report.kept == {"running": 1, "pending": 2, "incomplete": 1}
    assert {t: thread_rows(db, t) for t in copies} == before


def test_older_than_deletes_old_finished_threads_but_keeps_their_ledger_and_audit_chains(
    db: Path, log: ToolLog
) -> None:
    with open_test_service(db, log) as service:
        old = [finished_thread(service), service.run(COUNT, actor="carol").thread_id]
        pending = service.run(SALLY, actor="alice").thread_id
    with open_ledger(db) as ledger:
        audit = ledger.verify_audit()
        records = {t: ledger.thread_records(t) for t in old}
        trails = {t: ledger.audit_trail(t) for t in old}
    assert audit.ok and audit.threads == 3

    assert prune(db, older_than=LATER).kept == {"pending": 1, "recent": 2}  # not old enough
    report = prune(db, older_than=LATER / 2, clock=lambda: time.time() + LATER)

    assert (report.threads_deleted, report.kept) == (2, {"pending": 1})
    assert report.messages_deleted > 0
    gone = ("checkpoints", "writes", "hitl_messages")
    assert [count(db, table, t) for t in old for table in gone] == [0] * 6
    with open_ledger(db) as ledger:
        assert ledger.verify_audit() == audit  # every chain, every entry, the same heads
        assert {t: ledger.thread_records(t) for t in old} == records
    with open_test_service(db, log) as service:
        with pytest.raises(ThreadNotFound):
            service.show(old[0])
        assert {t: service.audit(t) for t in old} == trails
        assert service.show(pending).status == "interrupted"


def test_older_than_deletes_finished_runs_of_that_age_and_keeps_open_ones(db: Path) -> None:
    with open_run_queue(db) as queue:
        finished = queue.enqueue("t-1", "message", {"messages": ["hi"]}, actor="alice")
        runner = new_token()
        mark_live(runner)
        assert queue.claim(runner) is not None
        queue.finish(finished.run_id, runner)
        mark_done(runner)
        waiting = queue.enqueue("t-2", "message", {"messages": ["hi"]}, actor="alice")

        assert prune(db, older_than=LATER).runs_deleted == 0  # it ended just now
        assert prune(db, older_than=LATER, clock=lambda: time.time() + 2 * LATER).runs_deleted == 1

        assert queue.get(finished.run_id) is None
        assert queue.get(waiting.run_id) is not None


@pytest.mark.parametrize("older_than", [None, 0.0], ids=["trim", "delete"])
def test_a_thread_that_moved_on_after_the_judgement_is_skipped(
    db: Path, log: ToolLog, older_than: float | None
) -> None:
    with open_test_service(db, log) as service:
        thread_id = service.run(COUNT, actor="alice").thread_id
        pruner = Pruner(store_connection(db), path=str(db))
        loads = make_strict_serializer().loads_typed
        judged, kept = pruner.judge(
            [thread_id], loads, older_than=older_than, now=time.time() + LATER
        )
        assert [j.thread_id for j in judged] == [thread_id] and not kept
        service.run(COUNT, thread_id, actor="alice")  # a new run, between judgement and deletion
        before = thread_rows(db, thread_id)

        tally = pruner.apply(judged, dry_run=False)
        pruner.close()

    assert (tally.trimmed, tally.deleted, dict(tally.kept)) == (0, 0, {"changed": 1})
    assert thread_rows(db, thread_id) == before


def test_a_finished_thread_someone_is_about_to_run_is_not_deleted(db: Path, log: ToolLog) -> None:
    with open_test_service(db, log) as service:
        leased, queued = (service.run(COUNT, actor="alice").thread_id for _ in range(2))
    with open_run_queue(db) as queue, open_ledger(db) as ledger:
        queue.enqueue(queued, "message", {"messages": ["and now?"]}, actor="alice")
        with ledger.lease(leased):
            report = prune(db, older_than=0.0, clock=lambda: time.time() + LATER)
    assert (report.threads_deleted, report.kept) == (0, {"running": 2})
    assert count(db, "checkpoints", leased) > 1 and count(db, "checkpoints", queued) > 1


@pytest.mark.sqlite_only  # the file and its pages; PostgreSQL reuses space through autovacuum
def test_the_file_shrinks_after_pruning_many_finished_threads(db: Path, log: ToolLog) -> None:
    def grow(prefix: str) -> None:
        """200 more finished threads, with their whole history."""
        with open_harness(db, log) as parts:
            service = parts.service
            source = finished_thread(service)
            for n in range(200):
                parts.saver.copy_thread(source, f"{prefix}-{n}")

    grow("first")
    first = prune(db)

    assert first.threads_trimmed == 201
    assert first.bytes_after < first.bytes_before / 2
    assert file_bytes(db) == first.bytes_after
    with closing(sqlite3.connect(db)) as conn:  # later prunes free pages without a VACUUM
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental

    grow("second")
    second = prune(db)

    assert second.threads_trimmed == 201
    assert second.bytes_after < second.bytes_before / 2


def test_a_dry_run_deletes_nothing_and_counts_what_pruning_deletes(db: Path, log: ToolLog) -> None:
    with open_test_service(db, log) as service:
        finished_thread(service)
        service.run(COUNT, actor="carol")
        service.run(SALLY, actor="alice")
    before = database_fingerprint(db)

    dry = prune(db, dry_run=True)

    assert database_fingerprint(db) == before
    real = prune(db)
    counted = (
        "threads_trimmed",
        "checkpoints_deleted",
        "writes_deleted",
        "blobs_deleted",
        "messages_deleted",
    )
    assert [getattr(dry, c) for c in counted] == [getattr(real, c) for c in counted]
    assert dry.threads_trimmed == 2 and dry.kept == real.kept == {"pending": 1}


def test_a_thread_whose_newest_checkpoint_cannot_be_judged_safely_is_left_whole(
    db: Path, log: ToolLog
) -> None:
    with open_harness(db, log) as parts:
        service = parts.service
        source = service.run(COUNT, actor="alice").thread_id
        for copy in ("forged", "delta"):
            parts.saver.copy_thread(source, copy)
    newest = "SELECT MAX(checkpoint_id) FROM checkpoints WHERE thread_id = ?"
    if is_postgres(db):
        execute(  # a stored value that names a type the strict serializer refuses to build
            db,
            "UPDATE checkpoint_blobs SET type = 'pickle' WHERE thread_id = 'forged' AND "
            "channel = 'messages' AND version = (SELECT checkpoint -> 'channel_versions' ->> "
            f"'messages' FROM checkpoints WHERE thread_id = 'forged' AND checkpoint_id = "
            f"({newest}))",
            ("forged",),
        )
        execute(  # LangGraph's DeltaChannel: rebuilt from the older checkpoints' writes
            db,
            "UPDATE checkpoints SET metadata = jsonb_set(metadata, "
            "'{counters_since_delta_snapshot}', '{\"messages\": [3, 3]}') "
            f"WHERE thread_id = 'delta' AND checkpoint_id = ({newest})",
            ("delta",),
        )
    else:
        execute(  # a row that names a type the strict serializer refuses to build
            db,
            f"UPDATE checkpoints SET type = 'pickle' WHERE thread_id = 'forged' "
            f"AND checkpoint_id = ({newest})",
            ("forged",),
        )
        execute(  # LangGraph's DeltaChannel: rebuilt from the older checkpoints' writes
            db,
            "UPDATE checkpoints SET metadata = json_set(CAST(metadata AS TEXT), "
            "'$.counters_since_delta_snapshot', json('{\"messages\": [3, 3]}')) "
            f"WHERE thread_id = 'delta' AND checkpoint_id = ({newest})",
            ("delta",),
        )
    before = {t: thread_rows(db, t) for t in ("forged", "delta")}

    report = prune(db)

    assert report.kept == {"unreadable": 1, "delta_history": 1}
    assert report.threads_trimmed == 1  # the thread they were copied from
    assert {t: thread_rows(db, t) for t in before} == before


@pytest.mark.postgres
def test_a_checkpoint_committed_while_postgres_prunes_the_thread_stays_whole(log: ToolLog) -> None:
    """A runtime that takes no lease (Studio) may commit a checkpoint after the thread was
    judged again, inside the prune's transaction: PostgreSQL's saver takes no lock, so only
    what the prune deletes keeps that checkpoint whole. The prune is held at its first delete,
    once it has judged the thread again, while another saver commits."""
    with fresh_database() as url:
        with open_test_service(url, log) as service:
            thread_id = service.run(COUNT, actor="alice").thread_id
        with (
            ThreadPoolExecutor(1) as pool,
            paused_at_first_delete(url, checkpoint_table(url, "writes")) as held,
        ):
            pruning = pool.submit(prune, url)
            held()
            with open_saver(url) as saver:  # another process, with no lock of ours
                graph = graph_without_ledger(saver, ToolLog())
                graph.update_state(config(thread_id), {"messages": [HumanMessage("a note")]})
        report = pruning.result(timeout=60)
        with open_harness(url, log) as parts:
            values, _ = state_of(parts, thread_id)
    assert report.threads_trimmed == 1
    assert values["messages"][-1].content == "a note"  # the newer checkpoint, whole
