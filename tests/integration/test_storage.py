"""The saver on disk: the conformance suite, all-or-nothing batches; another process's
write lock, which writes wait out and reads (and opening the stores) do not wait for."""

import multiprocessing as mp
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from langgraph.checkpoint.conformance import checkpointer_test
from langgraph.checkpoint.sqlite import SqliteSaver

from hitl.checkpoints.database import Store, store_connection, writing
from hitl.checkpoints.errors import DatabaseBusy
from hitl.checkpoints.ledger import InboxQuery, make_ledger, open_ledger
from hitl.checkpoints.maintenance import migrate
from hitl.checkpoints.savers import BatchingSqliteSaver, open_saver
from hitl.checkpoints.stores import RunQueue, TokenStore, make_webhook_store
from hitl.service.workflow import EveryPending
from tests.support.conformance import assert_conformant
from tests.support.fakes import ToolLog
from tests.support.harness import open_test_service
from tests.support.ledger import request_call
from tests.support.prompts import SALLY

pytestmark = pytest.mark.sqlite_only  # reads and writes the SQLite file itself


FAIL_SECOND_WRITE = (
    "CREATE TRIGGER fail_second_write BEFORE INSERT ON writes WHEN NEW.idx = 1 "
    "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
)


def test_the_saver_passes_langgraph_checkpoint_conformance(tmp_path: Path) -> None:
    made = iter(range(1_000))

    @checkpointer_test(name="BatchingSqliteSaver")
    async def ours() -> AsyncIterator[BatchingSqliteSaver]:
        with open_saver(tmp_path / f"conformance-{next(made)}.sqlite") as saver:
            yield saver

    assert_conformant(ours)


def _task_writes(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(
            conn.execute("SELECT COUNT(*) FROM writes WHERE task_id = 'task-1'").fetchone()[0]
        )


def _write_two_values(saver: SqliteSaver) -> None:
    saver.setup()
    saver.conn.execute(FAIL_SECOND_WRITE)
    saver.conn.commit()
    config = {"configurable": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "c1"}}
    with pytest.raises(sqlite3.IntegrityError, match="injected failure"):
        saver.put_writes(config, [("messages", "first"), ("messages", "second")], "task-1")
        if isinstance(saver, BatchingSqliteSaver):
            saver.flush()


def test_a_batch_that_fails_halfway_leaves_no_row_behind(tmp_path: Path) -> None:
    with open_saver(tmp_path / "ours.sqlite") as saver:
        _write_two_values(saver)
        saver.conn.execute("DROP TRIGGER fail_second_write")
    assert _task_writes(tmp_path / "ours.sqlite") == 0


def test_the_stock_saver_keeps_the_first_half_of_a_failed_batch(tmp_path: Path) -> None:
    """The failure mode the test above guards against (so that test can fail)."""
    conn = sqlite3.connect(tmp_path / "stock.sqlite", check_same_thread=False)
    _write_two_values(SqliteSaver(conn))
    conn.close()
    assert _task_writes(tmp_path / "stock.sqlite") == 1


def test_a_tool_step_whose_writes_fail_is_resumed_with_the_journaled_result_not_rerun(
    db: Path, log: ToolLog
) -> None:
    with open_test_service(db, log) as service:
        view = service.run(SALLY, actor="alice")
        call_id = view.pending[0].tool_call_id
        with sqlite3.connect(db) as conn:  # the tools task's writes fail after the first row
            # (create_agent sends each tool call to `tools` as a task of its own, a push)
            tools_task = "NEW.task_path LIKE '~__pregel_push%' AND"
            conn.execute(FAIL_SECOND_WRITE.replace("WHEN", f"WHEN {tools_task}"))
        with pytest.raises(sqlite3.IntegrityError):
            service.decide(view.thread_id, {call_id: "approve"}, actor="bob")
        with sqlite3.connect(db) as conn:
            conn.execute("DROP TRIGGER fail_second_write")
        assert log.ids("send_email") == [call_id]
        service.resume(view.thread_id)
        done = service.show(view.thread_id)
    assert done.status == "done"
    assert log.ids("send_email") == [call_id]  # ran once; the resume used the journal
    result = next(m for m in done.messages if m.get("tool_call_id") == call_id)
    assert result["content"] == "sent to sally@example.com"


HOLD_WRITE_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""


@pytest.mark.slow
def test_approvals_wait_out_a_write_lock_held_for_ten_seconds_by_another_process(
    db: Path, log: ToolLog
) -> None:
    with open_test_service(db, log) as service:
        views = [service.run(SALLY, actor="alice") for _ in range(3)]
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_WRITE_LOCK, str(db), "10"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        started = time.monotonic()
        with open_test_service(db, log) as service:
            for v in views:
                service.decide(v.thread_id, EveryPending("approve"), actor="bob")
            done = [service.show(v.thread_id).status for v in views]
        waited = time.monotonic() - started
    finally:
        holder.wait(timeout=30)
    assert holder.returncode == 0
    assert done == ["done"] * 3
    assert sorted(log.ids("send_email")) == sorted(v.pending[0].tool_call_id for v in views)
    assert waited >= 5  # they really waited for the lock, and then went on


def test_stores_open_and_read_at_once_while_another_process_holds_the_write_lock(
    tmp_path: Path,
) -> None:
    db = tmp_path / "hitl.sqlite"
    migrate(db)
    took: dict[str, float] = {}

    def timed(what: str, step: Callable[[], object]) -> None:
        started = time.monotonic()
        step()
        took[what] = time.monotonic() - started

    def opened(make: Callable[[], Store]) -> Callable[[], None]:
        return lambda: make().close()

    def open_and_close_saver() -> None:
        with open_saver(db):
            pass

    def inbox() -> None:
        ledger.mark_orphaned_runs()  # as every inbox read does first
        ledger.inbox(InboxQuery())

    with open_ledger(db) as ledger:
        request_call(ledger, "t", "a")
        request_call(ledger, "t", "b")
        ledger.decide("t", {"b": {"type": "approve"}}, actor="bob")
        ledger.begin("t", [("b", {"recipient": "b@x.org"})])  # running, its runner alive
        queue = RunQueue(store_connection(db), path=str(db))
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_WRITE_LOCK, str(db), "8"], stdout=subprocess.PIPE, text=True
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
            # a write of the queue waits for the lock, holding the queue's own lock meanwhile
            write = threading.Thread(
                target=timed,
                args=("a write of the queue", lambda: queue.enqueue("t2", "resume", {}, actor="x")),
            )
            write.start()
            time.sleep(0.5)
            timed("a read of the queue", queue.counts)
            timed("the inbox", inbox)
            timed("opening the saver", open_and_close_saver)
            timed("opening the ledger", opened(lambda: make_ledger(db)))
            timed("opening the run queue", opened(lambda: RunQueue(store_connection(db))))
            timed("opening the tokens", opened(lambda: TokenStore(store_connection(db))))
            timed("opening the webhooks", opened(lambda: make_webhook_store(db)))
        finally:
            holder.wait(timeout=30)
        write.join()
        queue.close()
    assert holder.returncode == 0
    waited = took.pop("a write of the queue")
    assert {what: seconds for what, seconds in took.items() if seconds > 1.0} == {}
    assert waited >= 5  # the write really waited for the other process


def test_this_processs_writers_take_turns_without_meeting_sqlites_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two stores and the saver, each on its own connection to one file, written from six
    threads at once: each write waits for this process's turn, never in SQLite's busy handler
    (which sleeps 1, 2, 5... ms between tries; here, with no busy timeout, SQLite refuses at
    once and our writers sleep before they try again)."""
    db = tmp_path / "hitl.sqlite"
    with open_ledger(db) as first, open_ledger(db) as second, open_saver(db) as saver:
        for conn in (first._conn, second._conn, saver.conn):
            conn.execute("PRAGMA busy_timeout=0")  # type: ignore[union-attr]
        refused: list[BaseException] = []
        retries: list[float] = []
        real_sleep = time.sleep

        def counted_sleep(seconds: float) -> None:
            retries.append(seconds)
            real_sleep(seconds)

        monkeypatch.setattr(time, "sleep", counted_sleep)

        def write(n: int) -> None:
            try:
                for i in range(40):
                    if n % 3 == 2:
                        with saver.cursor() as cur:
                            cur.execute("CREATE TABLE IF NOT EXISTS side (x)")
                            cur.execute("INSERT INTO side VALUES (?)", (i,))
                    else:
                        request_call(first if n % 3 else second, f"t{n}", f"c{i}")
            except BaseException as e:  # a busy refusal, as `is_busy` would see it
                refused.append(e)

        threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert refused == [] and retries == []
        assert sum(len(first.thread_records(f"t{n}")) for n in range(6)) == 4 * 40


def test_a_process_forked_while_a_writer_holds_its_turn_can_write(tmp_path: Path) -> None:
    """A fork copies the turn's lock as held, by a thread the child does not have."""
    db = tmp_path / "hitl.sqlite"
    with open_ledger(db) as ledger:
        request_call(ledger, "t", "a")
        with _another_thread_holding_the_turn(db):
            child = mp.get_context("fork").Process(target=_request_in_child, args=(db,))
            child.start()
        child.join(60)
        assert child.exitcode == 0
        assert ledger.get("t", "b") is not None


@contextmanager
def _another_thread_holding_the_turn(db: Path) -> Iterator[None]:
    """Inside the block another thread of this process holds its turn to write `db`."""
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with writing(str(db.resolve()), time.monotonic() + 30, db, 30):
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(30)
    try:
        yield
    finally:
        release.set()
        holder.join()


def _request_in_child(db: Path) -> None:
    with open_ledger(db, lock_wait=5) as ledger:
        request_call(ledger, "t", "b")


def test_a_write_that_waits_out_its_turn_leaves_the_savers_rows_to_the_saver(
    tmp_path: Path,
) -> None:
    """A ledger write that would carry the saver's rows, refused because another thread kept
    this process's turn past its deadline, gives the saver back: it commits them itself."""
    db = tmp_path / "hitl.sqlite"
    with open_saver(db) as saver, open_ledger(db, lock_wait=0.3) as ledger:
        saver.commit_with(ledger)
        request_call(ledger, "t", "a", committed_by=saver)  # queued: the next write carries it
        with _another_thread_holding_the_turn(db), pytest.raises(DatabaseBusy):
            request_call(ledger, "t", "b", needs_review=False)  # a write of its own
        flushed = threading.Thread(target=saver.flush, daemon=True)
        flushed.start()
        flushed.join(10)
        assert not flushed.is_alive()  # the saver's lock was given back
        assert ledger.get("t", "a") is not None
